#!/usr/bin/env bats
# inotify overflow (issue 8): a watcher whose inotify queue overflows
# (IN_Q_OVERFLOW, events dropped) must still deliver everything, since
# every wake leads to a full look at the queue.  The kernel sizes an
# inotify instance's queue from /proc/sys/fs/inotify/max_queued_events
# when the instance is made, so the limit is lowered only while the
# watcher starts, then put back (and teardown puts it back whatever
# happened): other programs on the machine keep their usual queue.  A
# bucket that cannot be watched at all (no watches left, injected with
# strace) must not hide a message sent there either.
load helpers/common

LIMIT=/proc/sys/fs/inotify/max_queued_events

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	[ -w "$LIMIT" ] && echo "$(cat "$LIMIT")" >"$LIMIT" 2>/dev/null ||
	    skip "$LIMIT cannot be written here"
	SAVED=$(cat "$LIMIT")
	N=2000
	if under_asan; then N=600; fi
}

teardown() {
	[ -n "${SAVED:-}" ] && echo "$SAVED" >"$LIMIT"
	bg_cleanup
}

# start_watcher: an idle mq-watch streaming bodies to watch.out, whose
# inotify queue holds 8 events.  It has received one message ("first"),
# so it watches the bucket the next messages go to: each of them is an
# event.  (Verified with strace: a read after the burst below returns 8
# events and IN_Q_OVERFLOW.)
start_watcher() {
	echo 8 >"$LIMIT"
	bg_start watch mq-watch "$Q"
	wait_for 10 is_polling "$(bg_pid watch)"
	echo "$SAVED" >"$LIMIT"
	# Its inotify instance is there and sleeps in poll.
	ls -l "/proc/$(bg_pid watch)/fd" | grep -q 'anon_inode:inotify'
	printf first | mq-send -q "$Q"
	wait_for 10 lines_out 1
	wait_for 10 is_polling "$(bg_pid watch)"
}

lines_out() { [ "$(wc -l <"$T/watch.out")" -ge "$1" ]; }

@test "overflow: a watcher stopped through a burst of sends wakes to an overflowed queue and delivers all, in order" {
	start_watcher
	# Stopped, it reads no event: the burst overflows its queue for sure.
	kill -STOP "$(bg_pid watch)"
	seq 1 "$N" | mq-send -q -l "$Q"
	assert_equal "$(ready_count)" "$N"
	kill -CONT "$(bg_pid watch)"
	wait_for 60 lines_out $((N + 1))
	assert_equal "$(cat "$T/watch.out")" "$(echo first; seq 1 "$N")"
	# Still watching: one more send arrives without a poll interval.
	printf after | mq-send -q "$Q"
	wait_for 10 lines_out $((N + 2))
	assert_equal "$(tail -n 1 "$T/watch.out")" after
	kill -TERM "$(bg_pid watch)"
	bg_wait 10 watch
	assert_equal "$(bg_rc watch)" 0
	assert_equal "$(find "$Q/new" "$Q/cur" -type f | wc -l)" 0
}

@test "overflow: a busy watcher with a tiny inotify queue misses nothing from four concurrent producers and a burst" {
	start_watcher
	per=$((N / 8))
	for p in 1 2 3 4; do
		bg_start "p$p" bash -c 'for i in $(seq 1 "$2"); do
			printf "p%s %s" "$1" "$i" | mq-send -q "$3" || exit 1
		done' _ "$p" "$per" "$Q"
	done
	seq 1 $((N / 2)) | sed 's/^/burst /' | mq-send -q -l "$Q"
	for p in 1 2 3 4; do
		bg_wait 120 "p$p"
		assert_equal "$(bg_rc "p$p")" 0
	done
	total=$((4 * per + N / 2 + 1))
	wait_for 60 lines_out "$total"
	sort "$T/watch.out" >"$T/got"
	{ echo first; for p in 1 2 3 4; do seq 1 "$per" | sed "s/^/p$p /"; done
	  seq 1 $((N / 2)) | sed 's/^/burst /'; } | sort >"$T/want"
	run diff "$T/want" "$T/got"
	assert_success
	# One consumer: each producer's order kept.
	for p in 1 2 3 4 burst; do
		run bash -c "grep '^$p ' '$T/watch.out' | awk '{print \$2}' | sort -nc"
		assert_success
	done
	kill -TERM "$(bg_pid watch)"
	bg_wait 10 watch
	assert_equal "$(bg_rc watch)" 0
}

@test "overflow: mq-recv -w with a tiny inotify queue still wakes for a message sent after a flood" {
	echo 8 >"$LIMIT"
	bg_start recv mq-recv -w "$Q" -- sh -c 'cat >/dev/null; exit 3'
	wait_for 10 is_polling "$(bg_pid recv)"
	echo "$SAVED" >"$LIMIT"
	kill -STOP "$(bg_pid recv)"
	# A flood of events that are not messages for it: leases in cur/.
	seq 1 200 | mq-send -q -l "$Q"
	for i in $(seq 1 50); do mq-recv -L 1h -o /dev/null "$Q" >/dev/null; done
	kill -CONT "$(bg_pid recv)"
	bg_wait 20 recv
	# It woke and took the oldest ready message (its handler failed).
	assert_equal "$(bg_rc recv)" 75
	assert_equal "$(find "$Q/new" -name '*.1' | wc -l)" 1
}

@test "overflow: a waiting mq-recv whose bucket cannot be watched (no inotify watches left) polls, and gets a message sent there" {
	command -v strace >/dev/null || skip "strace is not installed"
	echo first | mq-send -q "$Q"
	mq-recv -o /dev/null "$Q"
	# The emptied bucket stays, the newest of its priority: the
	# waiter's fourth watch, after new/, cur/ and delay/, is on it.
	# (LeakSanitizer cannot run under ptrace.)
	bg_start recv env ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	    strace -qq -o "$T/trace" -e trace=inotify_add_watch,poll \
	    -e inject=inotify_add_watch:error=ENOSPC:when=4 mq-recv -t 30 "$Q"
	wait_for 10 grep -q '^poll(' "$T/trace"
	# Killing strace would leave mq-recv running, detached: kill it too.
	bg_adopt "$(pgrep -P "$(bg_pid recv)")"
	grep -q 'new/[0-9a-f]*", .*= -1 ENOSPC' "$T/trace" ||
	    fail "the bucket's watch was not the one failed: $(cat "$T/trace")"
	echo second | mq-send -q "$Q"
	bg_wait 5 recv
	assert_equal "$(bg_rc recv)" 0
	assert_equal "$(bg_out recv)" second
}
