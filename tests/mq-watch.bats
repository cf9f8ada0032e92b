#!/usr/bin/env bats
# mq-watch: handlers and their outcomes, backoff, concurrency and order,
# leases, timeouts, draining, signals, streaming, event-driven waiting,
# logging and systemd integration.  Long-running programs go through bg
# (helpers/watch.bash) so that teardown kills them whatever happens.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/watch

setup() { setup_watch; }
teardown() { teardown_watch; }

# An ISO 8601 UTC time, as mq-watch starts its log lines off systemd.
STAMP='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'

# --- handler outcomes -------------------------------------------------

@test "mq-watch: a handler exiting 0 gets the body and MQ_* environment, and acks" {
	handler h <<'EOF'
printf 'queue=%s id=%s receipt=%s attempt=%s\n' \
    "$MQ_QUEUE" "$MQ_ID" "$MQ_RECEIPT" "$MQ_ATTEMPT" >"$T/env.$MQ_ID"
cat >"$T/body.$MQ_ID"
EOF
	id=$(printf 'hello\nworld' | mq-send "$Q")
	run -0 --separate-stderr timeout 20 mq-watch --drain "$Q" -- "$T/h"
	assert_output ''
	# One log line per message: time, program, queue, id, attempt,
	# outcome, duration.
	assert_equal "${#stderr_lines[@]}" 1
	assert_regex "${stderr_lines[0]}" \
	    "^$STAMP mq-watch: $Q: $id attempt 1: ok \\([0-9]+\\.[0-9]{3}s\\)\$"
	run cat "$T/env.$id"
	assert_output --regexp "^queue=$Q id=$id receipt=$id\\.1\\.[^ ]+ attempt=1\$"
	printf 'hello\nworld' | cmp - "$T/body.$id"
	empty_queue
}

@test "mq-watch: a handler leads its own process group with no signal blocked or ignored, and only its message's MQ_* variables" {
	handler h <<'EOF'
{
	echo "pgid=$(($(cut -d' ' -f5 /proc/$$/stat) == $$))"
	env | grep -E '^MQ_(QUEUE|ID|RECEIPT|ATTEMPT|H_[A-Z_]*)=' |
	    cut -d= -f1 | sort | tr '\n' ' '
	echo "id=$MQ_ID"
} >"$T/seen"
# bash blocks SIGCHLD while it waits; what it inherited, its exec keeps.
exec grep -E '^Sig(Blk|Ign):' /proc/self/status >>"$T/seen"
EOF
	id=$(mq-send -H colour=red "$Q" </dev/null)
	run -0 env MQ_ID=stale MQ_H_OLD=x MQ_ATTEMPT=9 \
	    timeout 20 mq-watch --drain "$Q" -- "$T/h"
	run cat "$T/seen"
	assert_line --index 0 'pgid=1'
	assert_line --index 1 'MQ_ATTEMPT MQ_H_COLOUR MQ_ID MQ_QUEUE MQ_RECEIPT id='"$id"
	assert_line --index 2 --regexp $'^SigBlk:\t0+$'
	# Signals 1-31: glibc's posix_spawn leaves its own 32 and 33 ignored.
	ign=$(sed -n 's/^SigIgn:\t//p' "$T/seen")
	assert_equal "$(( 0x$ign & 0x7fffffff ))" 0
}

@test "mq-watch: a handler script without #! runs under /bin/sh, as execvp(3) runs it" {
	printf 'cat >"$T/body"\n' >"$T/plain"
	chmod +x "$T/plain"
	printf 'hello' | mq-send -q "$Q"
	run -0 timeout 20 mq-watch --drain "$Q" -- "$T/plain"
	run cat "$T/body"
	assert_output hello
	empty_queue
}

@test "mq-watch: a failing handler's message is delayed by the backoff; the messages behind it still go through" {
	mq-init --backoff 1m "$Q"
	handler h <<'EOF'
body=$(cat)
echo "$body" >>"$T/seen"
[ "$body" != poison ]
EOF
	poison=$(echo poison | mq-send "$Q")
	good=$(echo good | mq-send "$Q")
	t0=$(clock_ms)
	run -0 --separate-stderr timeout 20 mq-watch --drain "$Q" -- "$T/h"
	t1=$(clock_ms)
	run cat "$T/seen"
	assert_output $'poison\ngood'
	assert_regex "$stderr" "$poison attempt 1: exit 1, retry in 60s \\("
	assert_regex "$stderr" "$good attempt 1: ok \\("
	# Failed once (attempt counted), due a minute after the failure.
	run files delay
	assert_output --regexp "^[0-9]{19}\\.$poison\\.1\$"
	due_ms=$(( 10#${output%%.*} / 1000000 ))
	between "retry due after start (ms)" $((due_ms - t0)) 60000 $((t1 - t0 + 60000))
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" dead)" 0
}

@test "mq-watch: exit 100 dead-letters the message at once" {
	mq-init --max-attempts 5 "$Q"
	handler h <<'EOF'
echo "$MQ_ATTEMPT" >>"$T/attempts"
exit 100
EOF
	id=$(echo bad | mq-send "$Q")
	run -0 --separate-stderr timeout 20 mq-watch --drain "$Q" -- "$T/h"
	assert_regex "$stderr" "$id attempt 1: exit 100, dead \\("
	run cat "$T/attempts"
	assert_output 1
	run files dead
	assert_output "$id.1.failed"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "mq-watch: started with SIGCHLD ignored, it still settles each message by its handler's exit status" {
	# An ignored SIGCHLD survives exec; the kernel would then reap the
	# handlers before mq-watch could learn how they ended.
	handler h <<'EOF'
exit "$(cat)"
EOF
	ok=$(echo 0 | mq-send "$Q")
	dead=$(echo 100 | mq-send "$Q")
	retry=$(echo 3 | mq-send -z "$Q")
	run -0 --separate-stderr timeout 20 python3 -c '
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execvp(sys.argv[1], sys.argv[1:])' mq-watch --drain "$Q" -- "$T/h"
	assert_equal "${#stderr_lines[@]}" 3
	assert_regex "${stderr_lines[0]}" "$ok attempt 1: ok \\("
	assert_regex "${stderr_lines[1]}" "$dead attempt 1: exit 100, dead \\("
	assert_regex "${stderr_lines[2]}" "$retry attempt 1: exit 3, retry in 1s \\("
	run files dead
	assert_output "$dead.1.failed"
	assert_equal "$(count_in "$Q" delay)" 1
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: a message failing max-attempts times goes to dead/" {
	# A zero backoff makes each retry ready at once, so --drain sees
	# every attempt.
	mq-init --max-attempts 3 --backoff 0 "$Q"
	handler h <<'EOF'
echo "$MQ_ATTEMPT" >>"$T/attempts"
exit 1
EOF
	id=$(echo flaky | mq-send "$Q")
	run -0 --separate-stderr timeout 20 mq-watch --drain "$Q" -- "$T/h"
	run cat "$T/attempts"
	assert_output $'1\n2\n3'
	assert_regex "$stderr" "$id attempt 3: exit 1, dead \\("
	run files dead
	assert_output "$id.3.attempts"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "mq-watch: the retry delay doubles with each attempt" {
	mq-init --backoff 1 --max-attempts 5 "$Q"
	handler h <<'EOF'
us=${EPOCHREALTIME/./}
echo $((us / 1000)) >"$T/fail.$MQ_ATTEMPT"
exit 1
EOF
	id=$(echo again | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 5 exists "$Q/delay/*.$id.1"
	d1=$(files delay)
	wait_for 8 exists "$Q/delay/*.$id.2"
	d2=$(files delay)
	due1=$(( 10#${d1%%.*} / 1000000 ))
	due2=$(( 10#${d2%%.*} / 1000000 ))
	fail1=$(cat "$T/fail.1")
	fail2=$(cat "$T/fail.2")
	# Attempt 1 is retried 1 s after it failed, attempt 2 after 2 s;
	# the retry does not run before it is due.  The upper bounds leave
	# a loaded machine a second and a half to notice a handler's end.
	b1=$((due1 - fail1)) b2=$((due2 - fail2))
	between "attempt 1 retry delay (ms)" "$b1" 990 2500
	between "attempt 2 retry delay (ms)" "$b2" 1990 3500
	between "attempt 2 start after attempt 1 due (ms)" $((fail2 - due1)) -10 2500
	log_has "$id attempt 1: exit 1, retry in 1s "
	log_has "$id attempt 2: exit 1, retry in 2s "
}

# --- concurrency and order ---------------------------------------------

@test "mq-watch: -j 3 runs three handlers at once" {
	# Each handler waits until all three have started: run one at a time
	# they would each give up after 8 s and fail.
	mkdir "$T/started" "$T/running"
	handler h <<'EOF'
touch "$T/started/$MQ_ID" "$T/running/$MQ_ID"
ls "$T/running" | wc -l >>"$T/concurrency"
end=$((SECONDS + 8))
until [ "$(ls "$T/started" | wc -l)" -ge 3 ]; do
	[ "$SECONDS" -lt "$end" ] || { rm "$T/running/$MQ_ID"; exit 1; }
	sleep 0.05
done
rm "$T/running/$MQ_ID"
EOF
	for i in 1 2 3 4 5 6; do echo "m$i"; done | mq-send -l -q "$Q"
	t0=$(clock_ms)
	run -0 --separate-stderr timeout 30 mq-watch --drain -j 3 "$Q" -- "$T/h"
	t1=$(clock_ms)
	assert_equal "$(grep -c ': ok (' <<<"$stderr")" 6
	refute_regex "$stderr" 'retry|dead'
	between "run time (ms)" $((t1 - t0)) 0 6000
	# Never more than three at once.
	between "handlers at once" "$(sort -n "$T/concurrency" | tail -1)" 1 3
	empty_queue
}

@test "mq-watch: a handler that cannot start while another runs: that one is settled by its own status, then exit 127" {
	# The first handler takes its program away, so that the second
	# message's cannot be found.
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
mv "$0" "$T/h.moved"
"$T/await-go" || exit 1
exit 3
EOF
	first=$(echo first | mq-send "$Q")
	bg watch mq-watch -j 2 "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -e "$T/h.moved"
	second=$(echo second | mq-send "$Q")
	wait_for 5 log_has 'No such file or directory'
	touch "$T/go"
	wait_exit 10 "$pid"
	assert_equal "$EXIT_STATUS" 127
	run cat "$T/watch.err"
	assert_equal "${#lines[@]}" 2
	assert_equal "${lines[0]}" "mq-watch: $T/h: No such file or directory"
	assert_regex "${lines[1]}" \
	    "^$STAMP mq-watch: $Q: $first attempt 1: exit 3, retry in 1s \\("
	run files delay
	assert_output --regexp "^[0-9]+\\.$first\\.1\$"
	run files new
	assert_output "$second.0"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: -j 1 handles messages in FIFO order" {
	handler h <<'EOF'
{ cat; echo; } >>"$T/order"
EOF
	seq 1 30 | mq-send -l -q "$Q"
	run -0 --separate-stderr timeout 30 mq-watch --drain -j 1 "$Q" -- "$T/h"
	seq 1 30 | cmp - "$T/order"
	empty_queue
}

@test "mq-watch: one message after another, a retry still takes its place and a higher priority goes first" {
	# From its second claim on, a consumer keeps the bucket it listed
	# (lib/cursor.c); what arrives before its position must still win.
	seq 1 6 | mq-send -l -q "$Q"
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	handler h <<EOF
b=\$(cat); echo "\$b" >>"$T/order"
case \$b in
3) mq-ack --retry "$Q" "$r" ;;
5) echo urgent | mq-send -q -p 5 "$Q" ;;
esac
EOF
	run -0 --separate-stderr timeout 30 mq-watch --drain -j 1 "$Q" -- "$T/h"
	printf '%s\n' 2 3 1 4 5 urgent 6 | cmp - "$T/order"
	empty_queue
}

# holding_handler: $T/h appends each body to $T/order and, at body 2,
# touches $T/at2 and waits (20 s at most) for $T/go.
holding_handler() {
	handler h <<EOF
b=\$(cat); echo "\$b" >>"$T/order"
if [ "\$b" = 2 ]; then
	touch "$T/at2"
	for i in \$(seq 400); do [ -e "$T/go" ] && break; sleep 0.05; done
fi
EOF
}

@test "mq-watch: a higher priority sent after a burst of arrivals still goes first" {
	# The kept bucket learns of arrivals from inotify: every event
	# pending must be read before the next claim, however many there
	# are (a burst fills more than one read's buffer).
	# Files, not lines: mq-send -l would reserve ids ahead and begin a
	# new bucket, which makes any consumer list afresh.
	mkdir "$T/in"
	for i in $(seq 403); do printf %s "$i" >"$T/in/$i"; done
	mq-send -q "$Q" "$T"/in/{1..3}
	holding_handler
	bg watch mq-watch --drain -j 1 "$Q" -- "$T/h"
	wait_for 10 test -e "$T/at2"
	mq-send -q "$Q" "$T"/in/{4..403}
	assert_equal "$(ls "$Q/new")" "$(basename "$(bucket_of 0000010000000003)")"
	echo urgent | mq-send -q -p 5 "$Q"
	touch "$T/go"
	wait_exit 60 "$BG_PID"
	assert_equal "$EXIT_STATUS" 0
	{ printf '%s\n' 1 2 urgent; seq 3 403; } | cmp - "$T/order"
	empty_queue
}

# hold_at_2 TRACE [INJECT]: run a watcher under strace over messages 1 2 3
# behind an emptied bucket of priority 5; while the handler holds 2,
# send an urgent message of priority 5 into that bucket; the order
# handled is left in $T/order.
hold_at_2() {
	rm -rf "$Q" "$T/order" "$T/at2" "$T/go"
	mq-init "$Q"
	echo old | mq-send -q -p 5 "$Q"
	mq-recv "$Q" >/dev/null
	mq-send -q "$Q" "$T"/in/{1..3}
	# LeakSanitizer cannot run under ptrace.
	bg watch env ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	    strace -qq -o "$1" -e trace=inotify_init1,inotify_add_watch \
	    ${2:+-e inject="$2"} mq-watch --drain -j 1 "$Q" -- "$T/h"
	wait_for 10 test -e "$T/at2"
	echo urgent | mq-send -q -p 5 "$Q"
	touch "$T/go"
	wait_exit 30 "$BG_PID"
	assert_equal "$EXIT_STATUS" 0
}

@test "mq-watch: a bucket ranked first that cannot be watched is not passed over for a kept one" {
	command -v strace >/dev/null || skip "strace is not installed"
	mkdir "$T/in"
	for i in 1 2 3; do printf %s "$i" >"$T/in/$i"; done
	holding_handler
	hold_at_2 "$T/ref"
	printf '%s\n' 1 2 urgent 3 | cmp - "$T/order"
	# The watch the claimer's cursor (the second inotify descriptor)
	# asks for on the emptied bucket of priority 5.
	ifd=$(sed -n 's/^inotify_init1(.*) *= \([0-9]*\)$/\1/p' "$T/ref" | sed -n 2p)
	[ -n "$ifd" ] || fail "no cursor in the untouched run"
	k=$(grep '^inotify_add_watch(' "$T/ref" |
	    grep -n -m1 "^inotify_add_watch($ifd, \"[^\"]*/new/p5-" | cut -d: -f1)
	[ -n "$k" ] || fail "the cursor never watched the bucket of priority 5"
	hold_at_2 "$T/trace" "inotify_add_watch:error=ENOSPC:when=$k"
	grep -q "^inotify_add_watch($ifd, \"[^\"]*/new/p5-.*(INJECTED)" "$T/trace" ||
	    fail "the failure did not land on the cursor's watch of p5"
	printf '%s\n' 1 2 urgent 3 | cmp - "$T/order"
	empty_queue
}

@test "mq-watch: a decoded body's feeder holds no other message: one retried meanwhile is taken again at once" {
	# A compressed body reaches its handler from a process forked for
	# it; that process must not keep the locks of the other messages
	# mq-watch held when it forked, or a message given back meanwhile
	# stays locked, unclaimable, for as long as the feeder lives.
	mq-init --backoff 0 --max-attempts 100 "$Q"
	c=$(echo c | mq-send "$Q")
	head -c 1M /dev/zero | mq-send -q -z "$Q"
	handler h <<EOF
echo "\$\$" >>"$T/bg.pids"
if [ "\$MQ_ATTEMPT" = 1 ] && [ "\$MQ_ID" = "$c" ]; then
	echo run >>"$T/c-runs"
	for i in \$(seq 400); do [ -e "$T/b-started" ] && break; sleep 0.05; done
	exit 1
elif [ "\$MQ_ATTEMPT" != 1 ]; then
	echo run >>"$T/c-runs"
	exit 0
fi
touch "$T/b-started"
# Reads nothing: the feeder blocks on a full pipe until this ends.
for i in \$(seq 400); do [ -e "$T/go" ] && break; sleep 0.05; done
EOF
	bg watch mq-watch -j 2 "$Q" -- "$T/h"
	wait_for 10 test -e "$T/b-started"
	c_ran_twice() { [ "$(wc -l <"$T/c-runs")" = 2 ]; }
	wait_for 10 c_ran_twice
	touch "$T/go"
	wait_for 10 empty_queue
}

# --- leases, timeouts, draining ------------------------------------------

@test "mq-watch: a handler outliving the lease keeps its message and runs once" {
	mq-init --lease 1 "$Q"
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
echo "$MQ_ID $MQ_ATTEMPT" >>"$T/runs"
sleep 4
EOF
	id=$(echo slow | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 5 test -s "$T/runs"
	# Another consumer waiting three times the lease gets nothing.
	run -1 mq-recv -t 3 "$Q"
	# Still held, under a lease that was renewed into the future.
	run files cur
	assert_output --regexp "^$id\\.1\\.[^.]+\\.[0-9]{19}\$"
	deadline_ms=$(( 10#${output##*.} / 1000000 ))
	between "lease left (ms)" $((deadline_ms - $(clock_ms))) 1 1000
	assert_equal "$(count_in "$Q" new)" 0
	wait_for 8 log_has "$id attempt 1: ok \\("
	run cat "$T/runs"
	assert_output "$id 1"
	refute log_has 'Stale|lease:'
	empty_queue
}

@test "mq-watch: --timeout kills a slow handler and counts a failed attempt" {
	id=$(echo stuck | mq-send "$Q")
	t0=$(clock_ms)
	run -0 --separate-stderr timeout 20 mq-watch --drain --timeout 1 "$Q" -- sleep 60
	t1=$(clock_ms)
	between "run time (ms)" $((t1 - t0)) 900 5000
	assert_regex "$stderr" "$id attempt 1: timed out, killed by signal 15, retry in 1s \\("
	run files delay
	assert_output --regexp "^[0-9]{19}\\.$id\\.1\$"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: --timeout ends what the handler started too, not only the handler" {
	handler h <<'EOF'
sleep 60 &
echo "$!" >>"$T/bg.pids"
echo "$!" >"$T/child"
wait
EOF
	id=$(echo stuck | mq-send "$Q")
	bg watch mq-watch --drain --timeout 1 "$Q" -- "$T/h"
	wait_exit 20 "$BG_PID"
	assert_equal "$EXIT_STATUS" 0
	log_has "$id attempt 1: timed out, killed by signal 15, retry in 1s \\("
	# Left running, the child would go on with the work of a message
	# that is retried meanwhile.
	wait_for 5 gone "$(cat "$T/child")"
}

@test "mq-watch: --timeout follows TERM with KILL for a handler that ignores TERM" {
	handler h <<'EOF'
trap '' TERM
exec sleep 60
EOF
	id=$(echo stubborn | mq-send "$Q")
	t0=$(clock_ms)
	run -0 --separate-stderr timeout 30 mq-watch --drain --timeout 1 "$Q" -- "$T/h"
	t1=$(clock_ms)
	# One second, then a grace period, then KILL: not the full minute.
	between "run time (ms)" $((t1 - t0)) 1900 15000
	assert_regex "$stderr" "$id attempt 1: timed out, killed by signal 9, retry in 1s \\("
	run files delay
	assert_output --regexp "^[0-9]{19}\\.$id\\.1\$"
}

@test "mq-watch: --drain handles the ready backlog and what arrives meanwhile, then exits 0" {
	handler h <<'EOF'
body=$(cat)
echo "$body" >>"$T/seen"
case $body in
first) echo late | mq-send -q "$MQ_QUEUE" ;;
fail) exit 1 ;;
esac
exit 0
EOF
	leased=$(echo leased | mq-send "$Q")
	for b in first fail second; do echo "$b"; done | mq-send -l -q "$Q"
	# (Only the lease matters here, not mq-recv's status.)
	run --separate-stderr mq-recv -L 1h "$Q"
	assert_output leased
	assert_equal "$(count_in "$Q" cur)" 1
	run -0 --separate-stderr timeout 20 mq-watch --drain "$Q" -- "$T/h"
	run cat "$T/seen"
	assert_output $'first\nfail\nsecond\nlate'
	# The failed message waits out its backoff, the leased one stays
	# with its holder: neither holds up the exit.
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" delay)" 1
	run files cur
	assert_output --regexp "^$leased\\.1\\."
	# An empty queue drains at once.
	rm -rf "$Q/delay"/* "$Q/cur"/*
	run -0 timeout 5 mq-watch --drain "$Q" -- "$T/h"
}

# --- signals ---------------------------------------------------------------

# A handler that holds its message until $T/go exists (at most 20 s).
gated_handler() {
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
echo "$MQ_ID" >>"$T/started"
"$T/await-go" || exit 1
echo "$MQ_ID" >>"$T/done"
EOF
}

@test "mq-watch: SIGTERM lets the running handler finish, acks it, claims nothing more, exits 0" {
	gated_handler
	id=$(echo inflight | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -s "$T/started"
	kill -TERM "$pid"
	wait_for 5 log_has 'signal 15'
	! gone "$pid"
	later=$(echo later | mq-send "$Q")
	touch "$T/go"
	wait_exit 10 "$pid"
	assert_equal "$EXIT_STATUS" 0
	run cat "$T/done"
	assert_output "$id"
	log_has "$id attempt 1: ok \\("
	# The message sent after the signal is still ready, untouched.
	run files new
	assert_output "$later.0"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: a second signal kills the handler and puts its message back uncounted" {
	gated_handler
	id=$(echo inflight | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -s "$T/started"
	kill -TERM "$pid"
	wait_for 5 log_has 'signal 15'
	kill -TERM "$pid"
	wait_exit 10 "$pid"
	assert_equal "$EXIT_STATUS" 0
	[ ! -e "$T/done" ]
	log_has "$id attempt 1: killed on shutdown, released"
	run files new
	assert_output "$id.0"
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "mq-watch: a handler that ended before the second signal is settled by its exit status" {
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
echo "$$" >"$T/handler"
"$T/await-go" || exit 1
exit 100
EOF
	id=$(echo poison | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -s "$T/handler"
	# Stopped, mq-watch sees the handler's end and both signals at once.
	# SIGSTOP takes effect only once mq-watch runs again, which a loaded
	# machine can put off past the handler's end: wait until it has.
	kill -STOP "$pid"
	wait_for 5 grep -q '^State:.*T (stopped)' "/proc/$pid/status"
	touch "$T/go"
	wait_for 10 gone "$(cat "$T/handler")"
	kill -TERM "$pid"
	kill -INT "$pid"
	kill -CONT "$pid"
	wait_exit 10 "$pid"
	assert_equal "$EXIT_STATUS" 0
	log_has "$id attempt 1: exit 100, dead \\("
	! log_has 'killed on shutdown'
	run files dead
	assert_output "$id.1.failed"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: a second signal kills what the handler started too" {
	handler h <<'EOF'
sleep 60 &
echo "$!" >>"$T/bg.pids"
echo "$!" >"$T/child"
wait
EOF
	id=$(echo inflight | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -s "$T/child"
	kill -TERM "$pid"
	wait_for 5 log_has 'signal 15'
	kill -TERM "$pid"
	wait_exit 10 "$pid"
	assert_equal "$EXIT_STATUS" 0
	log_has "$id attempt 1: killed on shutdown, released"
	# Its message is given back: nothing of the handler may go on with it.
	wait_for 5 gone "$(cat "$T/child")"
}

@test "mq-watch: SIGINT stops an idle watcher with status 0" {
	bg watch mq-watch "$Q" -- true
	pid=$BG_PID
	wait_for 5 watching "$pid"
	kill -INT "$pid"
	wait_exit 5 "$pid"
	assert_equal "$EXIT_STATUS" 0
}

# --- other consumers ---------------------------------------------------------

@test "mq-watch: a second consumer never receives a message the watcher holds" {
	mq-init --lease 1 "$Q"
	gated_handler
	handler other <<'EOF'
echo "$MQ_ID" >>"$T/other.runs"
EOF
	id=$(echo held | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 5 test -s "$T/started"
	bg watch2 mq-watch "$Q" -- "$T/other"
	pid2=$BG_PID
	wait_for 5 watching "$pid2"
	run -1 mq-recv "$Q"
	run -1 mq-recv -L 10 "$Q"
	# Longer than the lease, and the second watcher is waiting too.
	run -1 mq-recv -t 2 "$Q"
	touch "$T/go"
	wait_for 5 log_has "$id attempt 1: ok \\("
	! gone "$pid2"
	[ ! -e "$T/other.runs" ]
	run cat "$T/started"
	assert_output "$id"
	empty_queue
}

@test "mq-watch: a watcher killed with -9 gives its message back at once, lease or not" {
	mq-init --lease 1h "$Q"
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
touch "$T/started"
exec sleep 30
EOF
	id=$(echo orphaned | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 test -e "$T/started"
	kill -KILL "$pid"
	wait_exit 5 "$pid"
	# The handler is a process of its own and may still run; the
	# claim's lock died with the watcher, so the next consumer takes
	# the message now, not in an hour.
	t0=$(clock_ms)
	run -0 --separate-stderr timeout 10 mq-watch --drain "$Q" -- \
	    sh -c 'printf "%s attempt %s" "$(cat)" "$MQ_ATTEMPT"'
	t1=$(clock_ms)
	assert_output "orphaned attempt 2"
	between "redelivery after the kill (ms)" $((t1 - t0)) 0 2000
	empty_queue
}

@test "mq-watch: an idle watcher takes back the expired lease of a dead consumer" {
	handler h <<'EOF'
us=${EPOCHREALTIME/./}
echo "$MQ_ID $MQ_ATTEMPT $((us / 1000))" >"$T/runs"
EOF
	id=$(echo abandoned | mq-send "$Q")
	t0=$(clock_ms)
	# (Only the lease matters here, not mq-recv's status.)
	run --separate-stderr mq-recv -L 2 "$Q"
	assert_output abandoned
	assert_equal "$(count_in "$Q" cur)" 1
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 8 test -s "$T/runs"
	read -r rid attempt t1 <"$T/runs"
	assert_equal "$rid" "$id"
	assert_equal "$attempt" 2
	between "claim to redelivery (ms)" $((t1 - t0)) 1900 4000
}

# --- standard output mode ------------------------------------------------------

@test "mq-watch: without a command, bodies stream to stdout one a line and are acked" {
	printf 'one\ntwo words\nthree\n' | mq-send -l -q "$Q"
	timeout 20 mq-watch --drain "$Q" >"$T/out"
	printf 'one\ntwo words\nthree\n' | cmp - "$T/out"
	empty_queue
	# A running watcher streams what arrives later.
	bg watch mq-watch "$Q"
	wait_for 5 watching "$BG_PID"
	echo later | mq-send -q "$Q"
	wait_for 5 grep -qx later "$T/watch.out"
	wait_for 5 empty_queue
}

@test "mq-watch: SIGTERM stops a stream with a backlog after the batch it is writing" {
	# More than a pipe holds, so that mq-watch blocks writing to its
	# reader, which waits for the signal to have been sent.
	seq -f '%g.....................................................' 3000 |
	    mq-send -l -q "$Q"
	mkfifo "$T/fifo"
	BG_STDIN=$T/fifo bg reader bash -c 'IFS= read -r line &&
	    echo "$line" && touch "$T/started" && "$T/await-go" && cat'
	reader=$BG_PID
	bg watch bash -c 'exec mq-watch "$1" >"$2"' _ "$Q" "$T/fifo"
	pid=$BG_PID
	wait_for 10 test -e "$T/started"
	wait_for 10 sleeping "$pid"
	kill -TERM "$pid"
	touch "$T/go"
	wait_exit 20 "$pid"
	assert_equal "$EXIT_STATUS" 0
	wait_exit 10 "$reader"
	assert_equal "$EXIT_STATUS" 0
	run cat "$T/watch.err"
	assert_regex "$output" "^$STAMP mq-watch: $Q: signal 15: finishing 0 handler\\(s\\)\$"
	# What was streamed was acked, in order; the rest is still ready.
	streamed=$(wc -l <"$T/reader.out")
	left=$(count_in "$Q" new)
	assert_equal $((streamed + left)) 3000
	[ "$left" -gt 1000 ]
	seq -f '%g.....................................................' \
	    "$streamed" | cmp - "$T/reader.out"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-watch: a stream reader that quits early gets no message lost: the rest of the batch goes back" {
	seq 1 100 | mq-send -l -q "$Q"
	run -74 --separate-stderr bash -c \
	    'set -o pipefail; timeout 20 mq-watch --drain "$1" | head -n 3 >/dev/null; exit "${PIPESTATUS[0]}"' \
	    _ "$Q"
	assert_equal "$stderr" "mq-watch: stdout: Broken pipe"
	# What was written to the pipe is acked; the rest is ready again at
	# once, in order, none of it held.
	assert_equal "$(count_in "$Q" cur)" 0
	timeout 20 mq-watch --drain "$Q" >"$T/rest"
	first=$(head -n1 "$T/rest")
	[ "$first" -gt 3 ]
	seq "$first" 100 | cmp - "$T/rest"
	empty_queue
}

@test "mq-watch: a streamed batch syncs its claims before it decodes a body" {
	command -v strace >/dev/null || skip "strace is not installed"
	# Decoding can take long; until cur/ is synced, a sender's sync of
	# the bucket could make a claim's removal durable without its
	# arrival, and a power cut would then orphan the message.
	for i in 1 2 3; do
		head -c 150000 /dev/urandom | base64 -w0 >"$T/m$i"
		mq-send -z -q "$Q" "$T/m$i"
	done
	# LeakSanitizer cannot run under ptrace.
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 strace -f -qq \
	    -o "$T/trace" -e trace=renameat,renameat2,fsync,pread64 \
	    timeout 20 mq-watch --drain "$Q" >"$T/out"
	cat "$T/m1" "$T/m2" "$T/m3" | cmp - <(tr -d '\n' <"$T/out")
	empty_queue
	# Every claim (a rename into cur/), then one sync, then the bodies
	# (reads past the header).
	run awk '
	    /renameat/ && !synced { claims++ }
	    /fsync\(/ && claims { synced = 1 }
	    /pread64\(/ && claims { off = $0; sub(/.*, /, "", off)
		sub(/\).*/, "", off)
		if (off + 0 > 0) { if (!synced) early++; else late++ } }
	    END { print claims, synced + 0, early + 0, (late > 0) }' "$T/trace"
	assert_output "3 1 0 1"
}

@test "mq-watch: a slow stream reader gets no message another consumer also got" {
	mq-init --lease 1 "$Q"
	pad=$(head -c 16000 /dev/zero | tr '\0' x)
	for i in $(seq 1 40); do echo "$i $pad"; done | mq-send -l -q "$Q"
	# Lines of 16 kB fill the pipe after four; the reader then takes one
	# every 0.1 s, so a batch of 32 outlasts the lease of 1 s.  Another
	# consumer takes what is ready meanwhile.
	bg watch bash -c 'mq-watch --drain "$1" |
	    while read -r n _; do echo "$n"; sleep 0.1; done' _ "$Q"
	: >"$T/other"
	for _ in $(seq 1 300); do
		gone "$BG_PID" && break
		mq-recv "$Q" 2>/dev/null | cut -d" " -f1 >>"$T/other"
		sleep 0.1
	done
	wait_exit 30 "$BG_PID"
	sort -n "$T/watch.out" "$T/other" | grep . >"$T/all"
	# Each once: none written after its lease ran out and another
	# consumer took it too.
	seq 1 40 | cmp - "$T/all"
	empty_queue
}

@test "mq-watch: -0 ends each streamed body with a NUL" {
	printf 'a\nb' >"$T/m1"
	printf 'c' >"$T/m2"
	mq-send -q "$Q" "$T/m1" "$T/m2"
	timeout 20 mq-watch --drain -0 "$Q" >"$T/out"
	printf 'a\nb\0c\0' | cmp - "$T/out"
	empty_queue
}

# --- event-driven waiting ----------------------------------------------------

@test "mq-watch: mq-recv -t 10 returns a message sent while it waits, promptly" {
	bg recv mq-recv -t 10 "$Q"
	pid=$BG_PID
	wait_for 5 watching "$pid"
	t0=$(clock_ms)
	echo prompt | mq-send -q "$Q"
	wait_exit 10 "$pid"
	t1=$(clock_ms)
	run cat "$T/recv.err"
	assert_output ''
	run cat "$T/recv.out"
	assert_output prompt
	assert_equal "$EXIT_STATUS" 0
	between "send to mq-recv return (ms)" $((t1 - t0)) 0 3000
}

@test "mq-watch: mq-recv -t wakes for an expired lease without a new send" {
	echo lapsed | mq-send -q "$Q"
	run --separate-stderr mq-recv -L 1 "$Q"
	assert_output lapsed
	assert_equal "$(count_in "$Q" cur)" 1
	t0=$(clock_ms)
	run --separate-stderr timeout 10 mq-recv -t 5 "$Q"
	t1=$(clock_ms)
	assert_output lapsed
	assert_equal "$stderr" ''
	assert_equal "$status" 0
	between "lease end to mq-recv return (ms)" $((t1 - t0)) 0 2500
}

@test "mq-watch: a message sent to an idle watcher starts its handler promptly" {
	handler h <<'EOF'
us=${EPOCHREALTIME/./}
echo $((us / 1000)) >"$T/start.$MQ_ID"
EOF
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 5 watching "$BG_PID"
	for i in 1 2 3; do
		t0=$(clock_ms)
		id=$(echo "m$i" | mq-send "$Q")
		wait_for 5 test -s "$T/start.$id"
		lat=$(( $(cat "$T/start.$id") - t0 ))
		between "send to handler start (ms)" "$lat" 0 1500
		wait_for 5 log_has "$id attempt 1: ok"
		wait_for 5 watching "$BG_PID"
	done
}

@test "mq-watch: with MQ_POLL (the network filesystem fallback) no message is missed" {
	handler h <<'EOF'
echo "$MQ_ID" >>"$T/runs"
EOF
	MQ_POLL=1 bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 sleeping "$pid"
	for body in a b; do
		id=$(echo "$body" | mq-send "$Q")
		wait_for 5 grep -qx "$id" "$T/runs"
	done
	! gone "$pid"
	wait_for 5 empty_queue
}

@test "mq-watch: an idle watcher uses almost no CPU" {
	bg watch mq-watch "$Q" -- true
	pid=$BG_PID
	wait_for 5 watching "$pid"
	c0=$(cpu_ticks "$pid")
	sleep 3	# the measurement itself, not synchronisation
	c1=$(cpu_ticks "$pid")
	! gone "$pid"
	between "CPU ticks used idle for 3 s" $((c1 - c0)) 0 3
}

# --- logging and systemd ---------------------------------------------------------

@test "mq-watch: a log line stays whole while a handler writes to the same standard error" {
	command -v strace >/dev/null || skip "strace is not installed"
	# The first handler ends at once; the second writes to standard
	# error until the first one's log line is there.  Each write of
	# mq-watch is held a second, so that a line written in pieces has
	# the other handler's output in between.
	handler h <<'EOF'
echo "$$" >>"$T/bg.pids"
[ "$(cat)" = quick ] && exit 0
end=$((SECONDS + 30))
until [ -e "$T/go" ]; do
	[ "$SECONDS" -lt "$end" ] || exit 1
	echo noise >&2
	sleep 0.02
done
EOF
	quick=$(echo quick | mq-send "$Q")
	noisy=$(echo noisy | mq-send "$Q")
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 bg watch strace -qq \
	    -o /dev/null -e trace=write -e inject=write:delay_exit=1000000 \
	    mq-watch --drain -j 2 "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 20 log_has "$quick attempt 1"
	touch "$T/go"
	wait_exit 20 "$pid"
	assert_equal "$EXIT_STATUS" 0
	log_has "^$STAMP mq-watch: $Q: $quick attempt 1: ok \\([0-9.]+s\\)\$"
	log_has "^$STAMP mq-watch: $Q: $noisy attempt 1: ok \\([0-9.]+s\\)\$"
}

@test "mq-watch: under journald (JOURNAL_STREAM) log lines carry a priority and no time" {
	handler h <<'EOF'
[ "$(cat)" = good ] || exit 100
EOF
	good=$(echo good | mq-send "$Q")
	bad=$(echo bad | mq-send "$Q")
	JOURNAL_STREAM=8:12345 run -0 --separate-stderr \
	    timeout 20 mq-watch --drain "$Q" -- "$T/h"
	assert_equal "${#stderr_lines[@]}" 2
	assert_regex "${stderr_lines[0]}" "^<6>[^<]*$good attempt 1: ok \\([0-9.]+s\\)\$"
	assert_regex "${stderr_lines[1]}" "^<[0-5]>[^<]*$bad attempt 1: exit 100, dead \\("
	refute_regex "$stderr" "$STAMP"
}

@test "mq-watch: with NOTIFY_SOCKET it sends READY=1 once watching and STOPPING=1 on shutdown" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	sock="$T/notify.sock"
	[ "${#sock}" -lt 100 ] || sock="/tmp/mq-notify.$$.$RANDOM"
	cat >"$T/listen.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
while True:
    try:
        d = s.recv(4096)
    except socket.timeout:
        break
    print(d.decode(errors="replace"), flush=True)
    if b"STOPPING=1" in d.split(b"\n"):
        break
EOF
	bg notify python3 "$T/listen.py" "$sock"
	wait_for 10 test -S "$sock"
	handler h <<'EOF'
touch "$T/handled"
EOF
	NOTIFY_SOCKET=$sock bg watch mq-watch "$Q" -- "$T/h"
	pid=$BG_PID
	wait_for 5 grep -qx READY=1 "$T/notify.out"
	echo hi | mq-send -q "$Q"
	wait_for 5 test -e "$T/handled"
	kill -TERM "$pid"
	wait_exit 5 "$pid"
	assert_equal "$EXIT_STATUS" 0
	wait_for 5 grep -qx STOPPING=1 "$T/notify.out"
	run cat "$T/notify.out"
	assert_output $'READY=1\nSTOPPING=1'
	rm -f "$sock"
}

@test "mq-watch: contrib/systemd/mq-watch@.service passes systemd-analyze verify" {
	unit="$top/contrib/systemd/mq-watch@.service"
	[ -f "$unit" ] || skip "no $unit"
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	# verify insists that ExecStart's program exists: point it at the
	# build instead of the installed path.
	bin=$(command -v mq-watch)
	sed "s|/usr/local/bin/mq-watch|$bin|g" "$unit" >"$T/mq-watch@.service"
	run -0 systemd-analyze verify --man=no "$T/mq-watch@.service"
	assert_output ''
	grep -qx 'Type=notify' "$unit"
	grep -qx 'ProtectSystem=strict' "$unit"
	grep -q '^ReadWritePaths=' "$unit"
}

# --- usage and missing queue ---------------------------------------------------

@test "mq-watch: usage errors exit 64" {
	# The usage text is the synopsis --help shows (the lines up to the
	# first blank one), and names the contract's options.
	usage=$(mq-watch --help | sed '/^$/,$d')
	for opt in '[-j N]' '[--drain]' '[--timeout DUR]' '[-0]' \
	    'QUEUE [-- COMMAND [ARG...]]'; do
		[[ $usage == *"$opt"* ]]
	done
	assert_regex "$usage" '^usage: mq-watch '
	run -64 --separate-stderr mq-watch
	assert_equal "$stderr" "$usage"
	run -64 --separate-stderr mq-watch "$Q" extra
	assert_equal "$stderr" "$usage"
	run -64 --separate-stderr mq-watch "$Q" --
	assert_equal "$stderr" "$usage"
	run -64 --separate-stderr mq-watch --bogus "$Q"
	assert_equal "${stderr_lines[0]}" "mq-watch: unrecognized option '--bogus'"
	assert_equal "$(tail -n +2 <<<"$stderr")" "$usage"
	run -64 --separate-stderr mq-watch -j 0 "$Q" -- true
	assert_equal "$stderr" "mq-watch: -j: invalid count: 0"
	run -64 --separate-stderr mq-watch -j x "$Q" -- true
	assert_equal "$stderr" "mq-watch: -j: invalid count: x"
	run -64 --separate-stderr mq-watch --timeout 0 "$Q" -- true
	assert_equal "$stderr" "mq-watch: --timeout: must be at least 1s"
	run -64 --separate-stderr mq-watch --timeout soon "$Q" -- true
	assert_equal "$stderr" "mq-watch: --timeout: invalid duration: soon"
}

@test "mq-watch: a missing queue exits 66" {
	run --separate-stderr mq-watch "$T/nope" -- true
	assert_equal "$stderr" "mq-watch: $T/nope: No such file or directory"
	assert_equal "$status" 66
	run --separate-stderr mq-watch --drain "$T/nope"
	assert_equal "$stderr" "mq-watch: $T/nope: No such file or directory"
	assert_equal "$status" 66
	mkdir "$T/plain"
	run --separate-stderr mq-watch "$T/plain" -- true
	assert_equal "$stderr" "mq-watch: $T/plain: Not a queue (run mq-init)"
	assert_equal "$status" 66
}

@test "mq-watch: started with standard output and error closed, its handlers get them open (on /dev/null), not closed" {
	echo x | mq-send -q "$Q"
	run bash -c 'exec >&- 2>&-; exec mq-watch --drain "$1" -- sh -c \
	    "[ -e /proc/\$\$/fd/1 ] && [ -e /proc/\$\$/fd/2 ] && touch \"\$1/open\"" sh "$2"' \
	    sh "$Q" "$T"
	assert_success
	[ -e "$T/open" ] || fail "the handler's standard output or error was closed"
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-watch: streaming to a standard output left non-blocking waits for it (EAGAIN), bodies and separators whole" {
	head -c 4000000 /dev/urandom | base64 -w 0 >"$T/big"
	for i in 1 2 3; do mq-send -q "$Q" "$T/big"; done
	# A reader that starts once the pipe is full and the writer waits.
	export -f nonblocking wait_for writer_polls is_polling
	run bash -c 'nonblocking mq-watch --drain "$1" |
	    { wait_for 10 writer_polls && cat >"$2"; }
	    echo "${PIPESTATUS[0]}"' sh "$Q" "$T/got"
	assert_output 0
	assert_equal "$(wc -l <"$T/got")" 3
	for i in 1 2 3; do
		sed -n "${i}p" "$T/got" | tr -d '\n' | cmp - "$T/big"
	done
}
