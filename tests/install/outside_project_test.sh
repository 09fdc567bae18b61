#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds and runs a project outside this tree against
# it, once through find_package(zmqkit) and once through pkg-config.
#   outside_project_test.sh BUILD_DIR SOURCE_DIR [EXTRA_FLAGS]
set -euo pipefail
build=$1
source=$2
flags=${3:-}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cmake --install "$build" --prefix "$scratch/prefix" >/dev/null

cmake -S "$source/tests/install/consumer" -B "$scratch/cmake-build" \
  -DCMAKE_PREFIX_PATH="$scratch/prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
"$scratch/cmake-build/consumer"

pc_dir=$(dirname "$(find "$scratch/prefix" -name zmqkit.pc)")
# shellcheck disable=SC2046,SC2086  # pkg-config output and flags are meant to split into words
c++ -std=c++20 $flags "$source/tests/install/consumer/main.cc" -o "$scratch/pc-consumer" \
  $(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs zmqkit)
"$scratch/pc-consumer"
echo "find_package and pkg-config both work"
