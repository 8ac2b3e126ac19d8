#!/bin/bash
# test.sh - the whole test suite on a fresh machine: installs dependencies, then
#   1. gcc, -Werror: build, make check (every test);
#   2. clang, -Werror: build everything (warnings are the test);
#   3. clang with ASan+UBSan: make check again;
#   4. the committed .clang-format is respected.
# Leaves the tree built with gcc. Exit status is non-zero when any step failed.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

step() { echo; echo "##### $*"; }

step "gcc -Werror: build and check"
./configure --enable-werror CC=gcc >/dev/null
make clean >/dev/null
make -j"$jobs" check-build >/dev/null
make check

step "clang -Werror: build"
./configure --enable-werror CC=clang >/dev/null
make clean >/dev/null
make -j"$jobs" check-build >/dev/null
echo "clang build: ok"

step "clang ASan+UBSan: build and check"
./configure --enable-werror --enable-sanitize CC=clang >/dev/null
make clean >/dev/null
make -j"$jobs" check-build >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	SIM_SEEDS_SCALE=${SIM_SEEDS_SCALE_SANITIZE:-1} make check

step "format"
make check-format

step "restore the gcc build"
./configure CC=gcc >/dev/null
make clean >/dev/null
make -j"$jobs" >/dev/null
echo "all test steps passed"
