#!/bin/bash
# run-tests.sh - runs every test program and script given, adds up their counts, prints one
# "N passed, N failed" line and exits non-zero when anything failed.
#
# A CUnit program reports "tests: P passed, F failed"; a script without such a line counts as one
# test, passed when it exits 0. Exit status 77 means skipped (a script that needs /dev/fuse where
# there is none says so and exits 77).
set -u
passed=0
failed=0
skipped=0
failed_names=()
timeout_s=${TEST_TIMEOUT:-900}

for t in "$@"; do
	log=$(mktemp)
	echo "=== $t"
	start=$(date +%s)
	timeout -k 10 "$timeout_s" "./$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	end=$(date +%s)
	line=$(grep -E '^tests: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
	rm -f "$log"
	if [ "$rc" -eq 77 ]; then
		echo "--- $t: skipped ($((end - start))s)"
		skipped=$((skipped + 1))
		continue
	fi
	if [ -n "$line" ]; then
		p=$(echo "$line" | sed -E 's/^tests: ([0-9]+) passed.*/\1/')
		f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	elif [ "$rc" -eq 0 ]; then
		p=1 f=0
	else
		p=0 f=1
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed, timed out or failed outside any counted test
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ]; then
		failed_names+=("$t (exit $rc)")
		echo "--- $t: FAILED, exit $rc ($((end - start))s)"
	else
		echo "--- $t: ok ($((end - start))s)"
	fi
done

echo
for n in "${failed_names[@]+"${failed_names[@]}"}"; do
	echo "FAILED: $n"
done
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ] && [ "${#failed_names[@]}" -eq 0 ]
