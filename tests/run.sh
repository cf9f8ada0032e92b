#!/bin/sh
# Run every bats file against the normal build, and the program suites
# against the ASan+UBSan build (when present), then print "N passed, N
# failed, N skipped" from the TAP output as the last line.  Exits non-zero
# if anything failed.  The fault-injection, power-cut, history and
# network suites run on the normal build only: they kill or trace
# hundreds of processes, each ten times slower under ASan, and they test
# the protocol rather than memory safety (make asan runs them all).
#
# With both builds, the run goes two ways at once, about half the work
# each: most of the normal build's suites, shown as they run; and beside
# them the ASan build's suites, then the normal build's SIDE suites, each
# in a bats process of its own whose TAP is kept and shown once the first
# way is done (the normal build's before the ASan build's).  Much of the
# suites' time is spent waiting (for a lease or a delay to run out, a
# handler, a sync), so two ways take little more than half as long; the
# tests wait for conditions, not fixed times, and so tolerate the load.
set -u
cd "$(dirname "$0")/.." || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
files=${TESTS:-tests/*.bats}
# make check keeps its runs short; make stress and the suites run alone
# use the long defaults.
export HISTORY_CHAOS="${HISTORY_CHAOS:-5}" PC_OPS="${PC_OPS:-8}" \
    CRASH_STRIDE="${CRASH_STRIDE:-2}" BRIDGE_N="${BRIDGE_N:-2000}" \
    DEPTH_N="${DEPTH_N:-2100}"
# The normal build's suites that run beside the ASan build's.
SIDE='reliability-history|reliability-powercut|scenario-nfs|scenario-bridge'

# suite NAME BIN FILES...: bats on FILES against the programs in BIN, its
# TAP (and bats' own messages) in $out/NAME, its status in $out/NAME.rc.
suite() {
	name=$1 bin=$2
	shift 2
	rc=0
	{
		echo "# tests against $bin"
		MQ_BIN=$bin bats --tap "$@" 2>&1 || rc=$?
	} >"$out/$name"
	echo "$rc" >"$out/$name.rc"
}

status=0
if [ -z "${TESTS:-}" ] && [ -z "${MQ_BIN:-}" ] && [ -d build/asan/bin ]; then
	all=$(ls tests/*.bats)
	asan=$(echo "$all" | grep -Ev \
	    'reliability-|scenario-(nfs|bridge|depth|concurrency|broker)|install')
	side=$(echo "$all" | grep -E "$SIDE")
	main=$(echo "$all" | grep -Ev "$SIDE")
	# shellcheck disable=SC2086
	{ suite asan build/asan/bin $asan; suite side build/bin $side; } &
	other=$!
	echo "# tests against build/bin"
	# shellcheck disable=SC2086
	MQ_BIN=build/bin bats --tap $main | tee "$out/main" || status=1
	wait "$other"
	cat "$out/side" "$out/asan"
	cat "$out/main" "$out/side" "$out/asan" >"$out/tap"
	for name in side asan; do
		[ "$(cat "$out/$name.rc" 2>/dev/null)" = 0 ] || status=1
	done
else
	# One build after the other, each shown as it runs.
	builds="${MQ_BIN:-build/bin}"
	[ -z "${MQ_BIN:-}" ] && [ -d build/asan/bin ] &&
	    builds="$builds build/asan/bin"
	for bin in $builds; do
		echo "# tests against $bin"
		# shellcheck disable=SC2086
		MQ_BIN=$bin bats --tap $files | tee -a "$out/tap" || status=1
	done
fi
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
