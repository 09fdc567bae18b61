#!/usr/bin/env bash
# zmqkit quick start: installs what is missing, builds, then runs the demo or the test suite.
#
#   ./quickstart.sh demo              build (Release) and run the main demo
#   ./quickstart.sh test              build (Release) and run the whole test suite
#   ./quickstart.sh test --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   ./quickstart.sh fuzz [SECONDS]    build the libFuzzer targets (clang) and fuzz each for SECONDS
#                                     (default 60), growing the corpus in build/fuzz/corpus
#
# `test` ends with a short fuzzing run (5 s per target) after the test suite.
# Works on a fresh Debian 12 machine as root or as a user with sudo. Re-running is quick: packages
# already installed are not touched and the build is incremental (with ccache).
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
command=$1; shift
sanitize=OFF
fuzz_seconds=60
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=ON ;;
    [0-9]*) [ "$command" = fuzz ] || usage; fuzz_seconds=$arg ;;
    *) usage ;;
  esac
done
case $command in demo|test|fuzz) ;; *) usage ;; esac

packages=(build-essential cmake pkg-config ccache libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
          libgtest-dev libcli11-dev python3 python3-zmq python3-msgpack
          clang-14 libclang-rt-14-dev)  # clang: the libFuzzer targets
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

# Builds the fuzz targets with clang (libFuzzer + ASan + UBSan) and runs each for $1 seconds on
# a working copy of its seed corpus ($2: where that copy lives). A crash fails the run and leaves
# its input in build/fuzz/crashes: add it to tests/fuzz/regressions/<target>/ with the fix.
run_fuzzers() {
  local seconds=$1 corpus_root=$2 failed=0
  CXX=clang++-14 cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZMQKIT_FUZZ=ON \
    -DZMQKIT_WERROR=ON >/dev/null
  cmake --build build/fuzz -j "$jobs"
  mkdir -p build/fuzz/crashes
  for target in envelope_decoder broker_command journal_reader certificate; do
    mkdir -p "$corpus_root/$target"
    cp -n tests/fuzz/corpus/$target/* "$corpus_root/$target/" || true
    if build/fuzz/tests/fuzz/fuzz_$target -max_total_time="$seconds" -print_final_stats=1 \
         -artifact_prefix=build/fuzz/crashes/$target- "$corpus_root/$target" \
         >build/fuzz/$target.log 2>&1; then
      echo "fuzz $target: $(grep -o 'stat::number_of_executed_units: [0-9]*' build/fuzz/$target.log | \
        sed 's/.*: //') inputs in ${seconds} s, no crash"
    else
      echo "fuzz $target: FAILED — see build/fuzz/$target.log and build/fuzz/crashes/"
      tail -30 build/fuzz/$target.log
      failed=1
    fi
  done
  return $failed
}

if [ "$command" = fuzz ]; then
  run_fuzzers "$fuzz_seconds" build/fuzz/corpus
  exit $?
fi

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
    ctest --test-dir "$build_dir" -j $((jobs * 3)) --output-on-failure --timeout 120
    # Then a few seconds of fuzzing per target, from the seeds each time (a smoke run: the suite
    # already replays the corpus and every past crash; long runs are `./quickstart.sh fuzz`).
    corpus=$(mktemp -d)
    trap 'rm -rf "$corpus"' EXIT
    run_fuzzers 5 "$corpus"
    ;;
esac
