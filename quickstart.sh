#!/usr/bin/env bash
# zmqkit quick start: installs what is missing, builds, then runs the demo or the test suite.
#
#   ./quickstart.sh demo              build (Release) and run the main demo
#   ./quickstart.sh test              build (Release) and run the whole test suite
#   ./quickstart.sh test --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#
# Works on a fresh Debian 12 machine as root or as a user with sudo. Re-running is quick: packages
# already installed are not touched and the build is incremental (with ccache).
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
command=$1; shift
sanitize=OFF
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=ON ;;
    *) usage ;;
  esac
done
case $command in demo|test) ;; *) usage ;; esac

packages=(build-essential cmake pkg-config ccache libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
          libgtest-dev libcli11-dev python3 python3-zmq python3-msgpack)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "quickstart: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

jobs=$(nproc)
if [ "$sanitize" = ON ]; then
  build_dir=build/sanitize
  build_type=RelWithDebInfo
else
  build_dir=build/release
  build_type=Release
fi
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DZMQKIT_WERROR=ON \
  -DZMQKIT_SANITIZE="$sanitize" >/dev/null
cmake --build "$build_dir" -j "$jobs"

case $command in
  demo)
    exec "$build_dir/examples/compare_patterns" --svg "$build_dir/compare_patterns.svg"
    ;;
  test)
    # Most tests wait on sockets and child processes rather than the CPU, so run more than nproc.
    exec ctest --test-dir "$build_dir" -j $((jobs * 3)) --output-on-failure --timeout 120
    ;;
esac
