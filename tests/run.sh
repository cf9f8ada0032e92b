#!/bin/sh
# Run every bats file against the normal build, and the program suites
# against the ASan+UBSan build (when present), then print "N passed, N
# failed, N skipped" from the TAP output as the last line.  Exits non-zero
# if anything failed.  The fault-injection, power-cut, history and
# network suites run on the normal build only: they kill or trace
# hundreds of processes, each ten times slower under ASan, and they test
# the protocol rather than memory safety (make asan runs them all).
set -u
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
builds="${MQ_BIN:-build/bin}"
[ -z "${MQ_BIN:-}" ] && [ -d build/asan/bin ] && builds="$builds build/asan/bin"
files=${TESTS:-tests/*.bats}
# make check keeps its runs short; make stress and the suites run alone
# use the long defaults.
export HISTORY_CHAOS="${HISTORY_CHAOS:-5}" PC_OPS="${PC_OPS:-8}" \
    CRASH_STRIDE="${CRASH_STRIDE:-2}" BRIDGE_N="${BRIDGE_N:-2000}" \
    DEPTH_N="${DEPTH_N:-2100}"
status=0
for bin in $builds; do
	run=$files
	case $bin in
	*asan*)
		[ -z "${TESTS:-}" ] && [ -z "${MQ_BIN:-}" ] &&
			run=$(ls tests/*.bats | grep -Ev \
			    'reliability-|scenario-(nfs|bridge|depth|concurrency|broker)|install')
		;;
	esac
	echo "# tests against $bin"
	# shellcheck disable=SC2086
	MQ_BIN=$bin bats --tap $run | tee -a "$out/tap" || status=1
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
