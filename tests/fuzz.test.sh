#!/bin/bash
# fuzz.test.sh - every libFuzzer target FUZZ_CHECK_SECONDS (default 20) from its corpus, so that
# a regression input or a short run that crashes fails make check (tests/fuzz/run.sh).
exec tests/fuzz/run.sh --seconds="${FUZZ_CHECK_SECONDS:-20}"
