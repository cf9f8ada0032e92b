#!/usr/bin/env bats
# Concurrency history checker (issue 8): producers and consumers of every
# kind on one queue, SIGKILLed at random, every operation logged with its
# times and result; tests/tools/history-check.py checks invariants 1-4
# from the logs.  tests/stress.sh runs the same for longer.
load helpers/common

setup() {
	setup_mq
	TOOLS="$BATS_TEST_DIRNAME/tools"
	L="$BATS_TEST_TMPDIR/log"
	# A short lease, so the drain need not wait long for leases of
	# killed consumers; attempts enough that kills dead-letter nothing.
	mq-init --lease 2 --max-attempts 1000 "$Q"
	# Seconds of chaos: each program start costs several milliseconds
	# more under AddressSanitizer, so runs are shorter there.  The FIFO
	# runs take 8 s, or HISTORY_CHAOS when that is shorter.
	CHAOS=${HISTORY_CHAOS:-10} FIFO=8
	[ "$CHAOS" -ge "$FIFO" ] || FIFO=$CHAOS
	if under_asan; then CHAOS=6 FIFO=5; fi
}
teardown() { bg_cleanup; }

# The checker's summary, shown with the test's result.
show() { printf '%s\n' "$output" | sed 's/^/# /' >&3; }

@test "history: producers and four kinds of consumers under SIGKILL lose nothing, redeliver nothing acked, never hold a message twice" {
	run timeout 120 bash "$TOOLS/history-run.sh" -t "$CHAOS" -p 2 -b 1 \
	    -l 1 -x 1 -w 1 -s 1 -k 150 "$Q" "$L"
	assert_success
	run python3 "$TOOLS/history-check.py" --lease 2 --expect-kills "$L"
	show
	assert_success
	assert_line "history: lost 0"
	assert_line "history: acked then delivered again 0"
	assert_line "history: held by two consumers at once 0"
	assert_line --regexp '^history: duplicates [0-9]+ .*, unjustified 0$'
	assert_line --regexp '^history: kills [1-9]'
	assert_line 'history: OK'
}

@test "history: one consumer under SIGKILL delivers each producer's messages, and all of them, in commit order" {
	run timeout 120 bash "$TOOLS/history-run.sh" -t "$FIFO" -p 3 -b 1 \
	    -l 0 -x 1 -w 0 -s 0 -k 150 "$Q" "$L"
	assert_success
	run python3 "$TOOLS/history-check.py" --fifo --expect-kills "$L"
	show
	assert_success
	assert_line "history: lost 0"
	assert_line --regexp '^history: reordered 0 per producer, 0 against commit order'
	assert_line 'history: OK'
}

@test "history: one mq-watch -j 1 under SIGKILL keeps FIFO too" {
	run timeout 120 bash "$TOOLS/history-run.sh" -t "$FIFO" -p 2 -b 1 \
	    -l 0 -x 0 -w 1 -j 1 -s 0 -k 200 "$Q" "$L"
	assert_success
	run python3 "$TOOLS/history-check.py" --fifo --expect-kills "$L"
	show
	assert_success
}

# Bucket races, made certain with strace: the sender is held just before
# it opens its bucket to sync it, while a consumer empties the bucket and
# (there being a newer one) removes it.

# openat_index BUCKET MQ-SEND-ARGS...: which openat call of mq-send, run
# with those arguments on a copy of $Q (the argument QUEUE), opens
# new/BUCKET: the call strace must hold up (inject when=).
openat_index() {
	local b=$1 copy="$BATS_TEST_TMPDIR/dry" arg
	local -a args=()
	shift
	rm -rf "$copy"
	cp -a "$Q" "$copy"
	for arg in "$@"; do
		[ "$arg" = QUEUE ] && arg=$copy
		args+=("$arg")
	done
	strace -e trace=openat mq-send "${args[@]}" 2>&1 >/dev/null |
	    grep -n "\"new/$b\"" | head -n 1 | cut -d: -f1
}

need_strace() {
	command -v strace >/dev/null || skip "strace is not installed"
	strace -o /dev/null true 2>/dev/null || skip "ptrace is not allowed here"
}

# next_id HEX: make the queue's next id HEX (in this boot's epoch).
next_id() {
	printf '%s %s\n' "$(cat /proc/sys/kernel/random/boot_id)" "$1" >"$Q/seq"
}

@test "history: mq-send -l across two buckets, the first emptied by a consumer meanwhile, reports every message it made visible" {
	need_strace
	next_id 00000100000003fd
	printf '%s\n' a b c d e >"$BATS_TEST_TMPDIR/five"
	n=$(openat_index 0000010000000000 -l QUEUE "$BATS_TEST_TMPDIR/five")
	[ -n "$n" ]
	bg_start send strace -o /dev/null -e trace=openat \
	    -e inject=openat:delay_enter=3000000:when="$n" \
	    mq-send -l "$Q" "$BATS_TEST_TMPDIR/five"
	# The first three ids are in bucket ...0000, the last two in ...0400.
	wait_for 10 test -e "$Q/new/0000010000000400/0000010000000401.0"
	for want in a b c d; do
		run mq-recv "$Q"
		assert_output "$want"
	done
	bg_wait 20 send
	# All five were visible and four already delivered: the send
	# succeeded, and must say so, ids and all; the fifth is still there.
	assert_equal "$(bg_err send)" ""
	assert_equal "$(bg_rc send)" 0
	assert_equal "$(bg_out send | wc -l)" 5
	run mq-recv "$Q"
	assert_output e
}

@test "history: a single mq-send whose bucket a consumer empties and removes reports success" {
	need_strace
	next_id 00000100000003ff
	# A newer bucket, as a concurrent sender with a later id leaves.
	mkdir -m 700 "$Q/new/0000010000000400"
	echo one >"$BATS_TEST_TMPDIR/one"
	n=$(openat_index 0000010000000000 QUEUE "$BATS_TEST_TMPDIR/one")
	[ -n "$n" ]
	bg_start send strace -o /dev/null -e trace=openat \
	    -e inject=openat:delay_enter=3000000:when="$n" \
	    mq-send "$Q" "$BATS_TEST_TMPDIR/one"
	wait_for 10 test -e "$Q/new/0000010000000000/00000100000003ff.0"
	run mq-recv "$Q"
	assert_output one
	# This claim finds the bucket empty and removes it.
	run mq-recv "$Q"
	assert_failure 1
	assert [ ! -e "$Q/new/0000010000000000" ]
	bg_wait 20 send
	assert_equal "$(bg_err send)" ""
	assert_equal "$(bg_rc send)" 0
	assert_equal "$(bg_out send)" 00000100000003ff
}

# A group race, made certain with strace: a claimer that judged the
# group's holder gone is held just before it renames the holder's record
# away, while another claimer comes to the group's next message.

@test "history: a claimer that found a group's holder gone never lets a second message of the group be held with its own" {
	need_strace
	for m in a0 a1 a2; do echo "$m" | mq-send -q -g A "$Q"; done
	r=$(mq-recv -L 30 -o /dev/null "$Q")
	mq-ack "$Q" "$r"
	# The first claimer holds a1's lock while it takes the group over
	# from a0, gone; the rename of a0's record is its first.
	# (LeakSanitizer cannot run under ptrace.)
	bg_start first env ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
	    strace -o "$BATS_TEST_TMPDIR/first.trace" \
	    -e trace=renameat -e inject=renameat:delay_enter=3000000:when=1 \
	    mq-recv -L 30 "$Q"
	wait_for 10 grep -q '^renameat(' "$BATS_TEST_TMPDIR/first.trace"
	# The second finds a1 being claimed and comes to a2: it must not
	# take the group, now or by the first claimer's rename later.
	run --separate-stderr mq-recv -L 30 "$Q"
	assert_failure 1
	bg_wait 20 first
	assert_equal "$(bg_rc first)" 0
	assert_equal "$(bg_out first)" a1
	assert_equal "$(find "$Q/cur" -type f | wc -l)" 1
	assert_equal "$(ready_count)" 1
}

# The checker must be able to fail: hand-made histories, each with one
# violation, are caught; a clean one passes.

# history LINE...: write a run's logs with the given lines, each to the
# file its first word names (p1.log: ...).
history() {
	local line
	rm -rf "$L"
	mkdir -p "$L"
	printf 'Q start 100.000000\nQ stop 200.000000\n' >"$L/queue.log"
	for f in new cur delay dead quarantine tmp fsck; do
		echo "Q $f 0" >>"$L/queue.log"
	done
	for line in "$@"; do
		echo "${line#*: }" >>"$L/${line%%: *}"
	done
}

check() { run python3 "$TOOLS/history-check.py" "$@" "$L"; }

R1=0000010000000000.1.k00000000000a
R2=0000010000000000.2.k00000000000b

@test "history-check: a clean history passes" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "p1.log: S 1 2 100.2 100.3 0 0000010000000001" \
	    "x1.log: X x1.1 101.0 101.5 0" \
	    "x1.hlog: D x1.1 101.1 101.2 0000010000000000 1 $R1 producer 1 seq 1" \
	    "drain.log: R 150.0 producer 1 seq 2" \
	    "queue.log: Q drain 150.0 151.0 0"
	check --fifo
	assert_success
	assert_line "history: lost 0"
	assert_line "history: OK"
}

@test "history-check: a successful send never delivered is lost" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "p1.log: S 1 2 100.2 100.3 0 0000010000000001" \
	    "drain.log: R 150.0 producer 1 seq 2" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "history: lost 1"
	assert_line "VIOLATION: lost: 1"
	assert_line --partial "producer 1 seq 1 (id 0000010000000000"
}

@test "history-check: a killed send may go either way; a failed one must deliver nothing" {
	history "p1.log: S 1 1 100.0 100.1 137 -" \
	    "p1.log: S 1 2 100.2 100.3 137 -" \
	    "p1.log: S 1 3 100.4 100.5 66 -" \
	    "drain.log: R 150.0 producer 1 seq 2" \
	    "drain.log: R 150.0 producer 1 seq 3" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: failed send delivered: 1"
	assert_line "  producer 1 seq 3 (exit 66)"
	assert_line "history: lost 0"
}

@test "history-check: a body nobody sent is caught" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "drain.log: R 150.0 producer 1 seq 1" \
	    "drain.log: R 150.0 producer 9 seq 9" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: delivered, never sent: 1"
}

@test "history-check: a delivery after a successful ack is caught, by time and by attempt" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "x1.log: X x1.1 101.0 101.5 0" \
	    "x1.hlog: D x1.1 101.1 101.2 0000010000000000 1 $R1 producer 1 seq 1" \
	    "drain.log: R 150.0 producer 1 seq 1" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: delivered after its ack succeeded: 1"
	# A later attempt, whatever the clock says.
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "x1.log: X x1.1 101.0 101.5 0" \
	    "x1.hlog: D x1.1 101.1 101.2 0000010000000000 1 $R1 producer 1 seq 1" \
	    "x2.log: X x2.1 100.5 101.6 137" \
	    "x2.hlog: D x2.1 100.9 101.0 0000010000000000 2 $R2 producer 1 seq 1" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: delivered after its ack succeeded: 1"
}

@test "history-check: two consumers surely holding one message at once are caught" {
	# Two leases of 2 s claimed 0.2 s apart: the first still held.
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "l1.log: L l1 101.0 101.1 0 0000010000000000.1.l00000000000a producer 1 seq 1" \
	    "l2.log: L l2 101.2 101.3 0 0000010000000000.2.l00000000000b producer 1 seq 1" \
	    "l2.log: A l2 101.4 101.5 0 0000010000000000.2.l00000000000b" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: held by two consumers at once: 1"
	# The same once the first lease ran out is a justified duplicate.
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "l1.log: L l1 101.0 101.1 0 0000010000000000.1.l00000000000a producer 1 seq 1" \
	    "l2.log: L l2 103.2 103.3 0 0000010000000000.2.l00000000000b producer 1 seq 1" \
	    "l2.log: A l2 103.4 103.5 0 0000010000000000.2.l00000000000b" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_success
	assert_line "history: duplicates 1 (not acked: lease ran out: 1), unjustified 0"
}

@test "history-check: two successful acks of one message are caught" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "x1.log: X x1.1 101.0 101.5 0" \
	    "x1.hlog: D x1.1 101.1 101.2 0000010000000000 1 $R1 producer 1 seq 1" \
	    "x2.log: X x2.1 101.0 101.5 0" \
	    "x2.hlog: D x2.1 101.1 101.2 0000010000000000 1 $R2 producer 1 seq 1" \
	    "queue.log: Q drain 150.0 151.0 0"
	check
	assert_failure 1
	assert_line "VIOLATION: acked twice: 1"
}

@test "history-check: with --fifo, out of order deliveries are caught; without, only counted" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "p1.log: S 1 2 100.2 100.3 0 0000010000000001" \
	    "drain.log: R 150.0 producer 1 seq 2" \
	    "drain.log: R 150.0 producer 1 seq 1" \
	    "queue.log: Q drain 150.0 151.0 0"
	check --fifo
	assert_failure 1
	assert_line --regexp '^history: reordered 1 per producer, 1 against commit order'
	assert_line "VIOLATION: reordered: 2"
	check
	assert_success
	assert_line --regexp '^history: reordered 1 per producer, 1 against commit order \(not promised'
}

@test "history-check: a message left in the queue, a failed fsck or a sanitizer report fails the run" {
	history "p1.log: S 1 1 100.0 100.1 0 0000010000000000" \
	    "drain.log: R 150.0 producer 1 seq 1" \
	    "queue.log: Q drain 150.0 151.0 0" \
	    "queue.log: Q cur 1" "queue.log: Q fsck 1" \
	    "x1.1.err: ==1==ERROR: AddressSanitizer: heap-use-after-free"
	check
	assert_failure 1
	assert_line "VIOLATION: left in the queue after the drain: 1"
	assert_line "VIOLATION: mq-fsck found problems after the run: 1"
	assert_line "VIOLATION: sanitizer report: 1"
}
