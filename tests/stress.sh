#!/bin/sh
# stress.sh - the long reliability run (make stress): for STRESS_TIME
# seconds (default 300), rounds of the concurrency history of
# tests/reliability-history.bats, longer and with more processes: one
# queue, producers and consumers of every kind SIGKILLed at random, every
# operation logged and checked by tests/tools/history-check.py (nothing
# lost, nothing acked delivered again, no message held twice, every
# duplicate justified); every third round has a single consumer, where
# FIFO order is checked as well.  Prints what each round did and a
# summary; exits 1 if any round broke an invariant (its logs are kept and
# named), 0 otherwise.
#
# Environment: STRESS_TIME (seconds, default 300), MQ_BIN (programs to
# test, default build/bin), STRESS_ROUND (seconds of one round, default
# 60), STRESS_DIR (where logs go; default a new directory under /tmp,
# removed when everything passed unless STRESS_KEEP is set).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
PATH="$top/${MQ_BIN:-build/bin}:$PATH"
export PATH
tools="$top/tests/tools"
total=${STRESS_TIME:-300}
round_max=${STRESS_ROUND:-60}
dir=${STRESS_DIR:-$(mktemp -d /tmp/mq-stress.XXXXXX)}
mkdir -p "$dir"
for tool in mq-init mq-send mq-recv mq-ack mq-watch mq-fsck; do
	command -v "$tool" >/dev/null 2>&1 || {
		echo "stress: $tool not found in ${MQ_BIN:-build/bin} (run make)" >&2
		exit 1
	}
done
command -v python3 >/dev/null 2>&1 || { echo "stress: python3 is needed" >&2; exit 1; }
command -v bash >/dev/null 2>&1 || { echo "stress: bash is needed" >&2; exit 1; }

start=$(date +%s)
end=$((start + total))
n=0 failed=""
: >"$dir/totals"
echo "stress: $total s of history rounds with $(command -v mq-send | sed 's|/mq-send$||'), logs in $dir"
while :; do
	now=$(date +%s)
	# A round needs its run, then up to ~15 s to stop, drain and check.
	left=$((end - now - 15))
	[ "$left" -ge 5 ] || break
	secs=$round_max
	[ "$secs" -le "$left" ] || secs=$left
	n=$((n + 1))
	r="$dir/round$n"
	mkdir -p "$r"
	mq-init --lease 2 --max-attempts 1000 "$r/q" || exit 1
	case $((n % 3)) in
	0)
		kind="fifo, one exec consumer"
		args="-p 3 -b 1 -l 0 -x 1 -w 0 -s 0 -k 150" fifo=--fifo
		# Every other FIFO round, one mq-watch -j 1 instead.
		[ $((n % 6)) -eq 0 ] &&
		    kind="fifo, one mq-watch -j 1" args="-p 3 -b 1 -l 0 -x 0 -w 1 -j 1 -s 0 -k 150"
		;;
	*)
		kind="chaos, every consumer kind"
		args="-p 3 -b 1 -l 2 -x 2 -w 1 -s 1 -k 100" fifo=
		;;
	esac
	# shellcheck disable=SC2086
	timeout $((secs + 180)) bash "$tools/history-run.sh" -t "$secs" $args \
	    "$r/q" "$r/log" >"$r/run.out" 2>&1
	rc=$?
	# shellcheck disable=SC2086
	python3 "$tools/history-check.py" --expect-kills $fifo "$r/log" \
	    >"$r/check.out" 2>&1
	crc=$?
	grep '^totals ' "$r/check.out" >>"$dir/totals"
	line=$(grep '^totals ' "$r/check.out" | sed 's/^totals //')
	if [ "$rc" -ne 0 ] || [ "$crc" -ne 0 ]; then
		failed="$failed $n"
		echo "stress: round $n ($kind, $secs s): FAILED (run exit $rc, check exit $crc): $r"
		{ grep -A 3 '^VIOLATION' "$r/check.out"; grep 'history-run' "$r/run.out"; } |
		    sed 's/^/  /' | head -n 30
	else
		echo "stress: round $n ($kind, $secs s): ok: $line"
		[ -n "${STRESS_KEEP:-}" ] || rm -rf "$r"
	fi
done

elapsed=$(($(date +%s) - start))
echo "stress: $n rounds in $elapsed s"
awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); t[kv[1]] += kv[2] } }
    END {
	printf "stress: sent %d (acked-sent %d, killed %d), delivered %d messages in %d deliveries\n",
	    t["sent"], t["acked_sent"], t["killed_sends"], t["messages"], t["deliveries"]
	printf "stress: duplicates %d (unjustified %d), lost %d, acked then delivered again %d, held by two at once %d\n",
	    t["duplicates"], t["unjustified"], t["lost"], t["after_ack"], t["held_twice"]
	printf "stress: reordered where FIFO is promised %d, processes killed %d, violations %d\n",
	    t["reordered"], t["kills"], t["violations"]
    }' "$dir/totals"
if [ "$n" -eq 0 ]; then
	echo "stress: STRESS_TIME=$total is too short for a round (at least 20 s)"
	exit 1
fi
if [ -n "$failed" ]; then
	echo "stress: FAILED: rounds$failed; logs kept in $dir"
	exit 1
fi
echo "stress: OK"
[ -n "${STRESS_KEEP:-}" ] || rm -rf "$dir"
exit 0
