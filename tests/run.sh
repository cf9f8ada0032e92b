#!/bin/sh
# Run every bats file against the normal build and against the ASan+UBSan
# build (when present), then print "N passed, N failed, N skipped" from the
# TAP output as the last line.  Exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
builds="${MQ_BIN:-build/bin}"
[ -z "${MQ_BIN:-}" ] && [ -d build/asan/bin ] && builds="$builds build/asan/bin"
files=${TESTS:-tests/*.bats}
status=0
for bin in $builds; do
	echo "# tests against $bin"
	# shellcheck disable=SC2086
	MQ_BIN=$bin bats --tap $files | tee -a "$out/tap" || status=1
done
pass=$(grep -c '^ok .*' "$out/tap" | tr -d ' ')
skip=$(grep -c '^ok .* # skip' "$out/tap" | tr -d ' ')
fail=$(grep -c '^not ok ' "$out/tap" | tr -d ' ')
pass=$((pass - skip))
[ "$fail" -gt 0 ] && status=1
[ "$pass" -eq 0 ] && status=1
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
exit $status
