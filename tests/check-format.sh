#!/bin/sh
# check-format.sh - fails when a C file differs from what .clang-format makes of it.
cd "$(dirname "$0")/.." || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
	echo "check-format: clang-format not installed" >&2
	exit 1
fi
status=0
for f in $(git ls-files '*.c' '*.h'); do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "check-format: $f is not formatted (make format)"
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "check-format: ok"
exit $status
