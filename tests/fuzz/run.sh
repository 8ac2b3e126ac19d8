#!/bin/bash
# run.sh - runs libFuzzer targets from their corpora and prints one line per target.
#
#   tests/fuzz/run.sh [--seconds=N] [--keep] [NAME...]
#
# NAME is a target without its prefix (codec, raft, wal...); the default is every target built
# in tests/fuzz/. Each runs N seconds (default 20) from tests/fuzz/corpus/NAME/ (seeds made by
# make fuzz-corpus, and the regression inputs of findings), with tests/fuzz/NAME.dict when it
# exists, 512 MB of memory at most and 10 s per input. New inputs go to a temporary directory,
# or with --keep to tests/fuzz/work/NAME/ (kept between runs; the committed corpus is never
# written). A crash, leak, sanitizer report, timeout or memory overrun is saved as
# tests/fuzz/artifacts/NAME-crash-... (the line to replay it is printed) and fails the run.
# FUZZ_ARGS adds libFuzzer options (FUZZ_ARGS=-jobs=2, say).
#
# Prints "tests: P passed, F failed" (tests/run-tests.sh counts each target) and exits non-zero
# when a target failed; 77 (skipped) when no target is built (no clang: see Makefile.in).
set -u
cd "$(dirname "$0")/../.."
seconds=20
keep=0
names=()
for a in "$@"; do
	case $a in
	--seconds=*) seconds=${a#*=} ;;
	--keep) keep=1 ;;
	-*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
	*) names+=("$a") ;;
	esac
done
if [ ${#names[@]} -eq 0 ]; then
	for p in tests/fuzz/fuzz_*; do
		[ -x "$p" ] && [ -f "$p.c" ] && names+=("${p#tests/fuzz/fuzz_}")
	done
fi
if [ ${#names[@]} -eq 0 ]; then
	echo "run.sh: no fuzz target is built (they need clang with libFuzzer: make fuzz-build)"
	exit 77
fi

mkdir -p tests/fuzz/artifacts
# ASan keeps 256 MB of freed memory in quarantine by default: with it, -rss_limit_mb=512 would
# measure the sanitizer, not the target
case ${ASAN_OPTIONS:-} in
*quarantine_size_mb=*) ;;
*) export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=32 ;;
esac
passed=0
failed=0
for n in "${names[@]}"; do
	prog=tests/fuzz/fuzz_$n
	corpus=tests/fuzz/corpus/$n
	if [ ! -x "$prog" ]; then
		echo "fuzz_$n: not built"
		failed=$((failed + 1))
		continue
	fi
	if [ "$keep" -eq 1 ]; then
		work=tests/fuzz/work/$n
		mkdir -p "$work"
	else
		work=$(mktemp -d /tmp/raftfs-fuzz-$n.XXXXXX)
	fi
	args=(-max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=512 -timeout=10
		-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1
		-artifact_prefix="tests/fuzz/artifacts/$n-")
	[ -f "tests/fuzz/$n.dict" ] && args+=(-dict="tests/fuzz/$n.dict")
	dirs=("$work")
	[ -d "$corpus" ] && dirs+=("$corpus")
	log=$(mktemp)
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
	"$prog" "${args[@]}" ${FUZZ_ARGS:-} "${dirs[@]}" >"$log" 2>&1
	rc=$?
	cov=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	edges=$(echo "$cov" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	feats=$(echo "$cov" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$cov" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz_$n: ok, ${seconds}s, ${runs:-?} runs (${rate:-?}/s), ${edges:-?} edges," \
			"${feats:-?} features, corpus ${corp:-?}, peak ${rss:-?} MB"
		passed=$((passed + 1))
	else
		tail -n 60 "$log"
		art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		echo "fuzz_$n: FAILED (exit $rc)${art:+, input saved as $art}"
		[ -n "$art" ] && echo "  replay: $prog $art"
		failed=$((failed + 1))
	fi
	rm -f "$log"
	[ "$keep" -eq 1 ] || rm -rf "$work"
done
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
