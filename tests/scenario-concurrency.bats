#!/usr/bin/env bats
# Several producers and consumers on one queue at once.
load helpers/common

# Four producers of 200 sends each; 50 each under AddressSanitizer,
# where every process start costs several milliseconds more.
setup() {
	setup_mq
	PRODUCERS=4
	PER_PRODUCER=200
	if under_asan; then PER_PRODUCER=50; fi
}
teardown() { bg_cleanup; }

# producer K: send "K I" for I = 1..PER_PRODUCER, one mq-send each.
producer() {
	local i
	for i in $(seq 1 "$PER_PRODUCER"); do
		printf '%s' "$1 $i" | mq-send -q "$Q" || echo "send $1 $i: $?" >>"$BATS_TEST_TMPDIR/errors"
	done
}

# consumer: pop until the producers are done and the queue is empty,
# one body per line; any status but 0 and 1 is an error.
consumer() {
	local rc
	for (( ; ; )); do
		mq-recv -t 1 "$Q" && { echo; continue; }
		rc=$?
		[ "$rc" -eq 1 ] || echo "recv: $rc" >>"$BATS_TEST_TMPDIR/errors"
		[ -f "$BATS_TEST_TMPDIR/producers.done" ] &&
		    [ "$(ready_count)" -eq 0 ] && return 0
	done
}

# drain FILE: pop until nothing is left, one body per line; returns the
# status of the last receive.
drain() {
	local rc
	for (( ; ; )); do
		mq-recv "$Q" || { rc=$?; break; }
		echo
	done >"$1"
	return "$rc"
}

expected() {
	local k
	for k in $(seq 1 "$PRODUCERS"); do
		seq 1 "$PER_PRODUCER" | sed "s/^/$k /"
	done | sort
}

# same_set FILE: FILE holds exactly the messages sent, each once.
same_set() {
	diff <(expected) <(sort "$1") | head -n 20
	[ "$(sort "$1" | uniq -d | wc -l)" -eq 0 ] || { echo duplicates; return 1; }
	cmp -s <(expected) <(sort "$1")
}

# in_order FILE: each producer's messages appear in FILE in the order
# they were sent.
in_order() {
	awk '{ if ($2 <= last[$1]) { print "out of order: " $0; bad = 1 }
	       last[$1] = $2 } END { exit bad }' "$1"
}

@test "scenario: concurrent producers, one consumer: every message once, each producer's order kept" {
	for k in $(seq 1 "$PRODUCERS"); do
		bg_start "p$k" producer "$k"
	done
	for k in $(seq 1 "$PRODUCERS"); do
		bg_wait 60 "p$k"
	done
	assert [ ! -e "$BATS_TEST_TMPDIR/errors" ]
	assert_equal "$(ready_count)" $((PRODUCERS * PER_PRODUCER))
	run drain "$BATS_TEST_TMPDIR/got"
	assert_failure 1
	run same_set "$BATS_TEST_TMPDIR/got"
	assert_success
	run in_order "$BATS_TEST_TMPDIR/got"
	assert_success
	assert_equal "$(find "$Q/cur" "$Q/tmp" "$Q/dead" "$Q/quarantine" -type f | wc -l)" 0
}

@test "scenario: concurrent producers and consumers: every message received exactly once" {
	for k in $(seq 1 "$PRODUCERS"); do
		bg_start "c$k" consumer
	done
	for k in $(seq 1 "$PRODUCERS"); do
		bg_start "p$k" producer "$k"
	done
	for k in $(seq 1 "$PRODUCERS"); do
		bg_wait 60 "p$k"
	done
	touch "$BATS_TEST_TMPDIR/producers.done"
	for k in $(seq 1 "$PRODUCERS"); do
		bg_wait 30 "c$k"
		assert_equal "$(bg_rc "c$k")" 0
	done
	assert [ ! -e "$BATS_TEST_TMPDIR/errors" ]
	for k in $(seq 1 "$PRODUCERS"); do
		cat "$BATS_TEST_TMPDIR/c$k.out"
	done >"$BATS_TEST_TMPDIR/got"
	run same_set "$BATS_TEST_TMPDIR/got"
	assert_success
	# One consumer sees each producer's messages in the order sent.
	for k in $(seq 1 "$PRODUCERS"); do
		run in_order "$BATS_TEST_TMPDIR/c$k.out"
		assert_success
	done
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/tmp" "$Q/dead" -type f | wc -l)" 0
}

# leaser: claim with -L until nothing is left, printing receipts.
leaser() {
	while mq-recv -L 5m -o /dev/null "$Q"; do :; done
}

@test "scenario: concurrent leasing consumers never hold the same message" {
	seq 1 300 | mq-send -q -l "$Q"
	for k in 1 2 3 4; do
		bg_start "l$k" leaser
	done
	for k in 1 2 3 4; do
		bg_wait 60 "l$k"
	done
	cat "$BATS_TEST_TMPDIR"/l?.out >"$BATS_TEST_TMPDIR/receipts"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/receipts")" 300
	assert_equal "$(cut -d. -f1 "$BATS_TEST_TMPDIR/receipts" | sort -u | wc -l)" 300
	assert_equal "$(count_in "$Q" cur)" 300
	assert_equal "$(ready_count)" 0
	run mq-ack "$Q" $(cat "$BATS_TEST_TMPDIR/receipts")
	assert_success
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "scenario: concurrent exec consumers each handle a message once" {
	mkdir "$BATS_TEST_TMPDIR/seen"
	seq 1 100 | mq-send -q -l "$Q"
	# mkdir is atomic: a second handler for one id fails loudly.
	handler='mkdir "$SEEN/$MQ_ID" || exit 100; cat >"$SEEN/$MQ_ID/body"'
	for k in 1 2 3 4; do
		bg_start "x$k" env SEEN="$BATS_TEST_TMPDIR/seen" bash -c \
		    'for ((;;)); do mq-recv "$1" -- sh -c "$2" || exit $?; done' _ "$Q" "$handler"
	done
	for k in 1 2 3 4; do
		bg_wait 60 "x$k"
		assert_equal "$(bg_rc "x$k")" 1
	done
	assert_equal "$(ls "$BATS_TEST_TMPDIR/seen" | wc -l)" 100
	for f in "$BATS_TEST_TMPDIR"/seen/*/body; do
		cat "$f"
		echo
	done >"$BATS_TEST_TMPDIR/bodies"
	assert_equal "$(sort -n "$BATS_TEST_TMPDIR/bodies")" "$(seq 1 100)"
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/dead" -type f | wc -l)" 0
}

# bodies: what the consumers c1..c4 received, one body a line.
bodies() {
	local f
	for f in "$BATS_TEST_TMPDIR"/c?.out; do
		[ -s "$f" ] && { cat "$f"; echo; }
	done
}
got_slow() { [ "$(bodies | grep -c slow)" -eq "$1" ]; }

# drafts N: N senders have their messages in tmp/ (and so their ids).
drafts() { [ "$(count_in "$Q" tmp)" -eq "$1" ]; }

# A sender whose id falls in a bucket that consumers emptied and removed
# (a newer one exists) makes the bucket again, and its mkdir wakes every
# waiting consumer, each of which removes an empty bucket that is not the
# newest: the sends must still go through, once each.
@test "scenario: slow senders into a bucket consumers removed, with consumers waiting: each sent once" {
	# Three slow senders take the first ids, then wait for their bodies.
	for k in 1 2 3; do
		bg_start "slow$k" sh -c '{ until [ -f "$1" ]; do sleep 0.01; done
		    printf "slow %s" "$3"; } | mq-send -q "$2"' _ \
		    "$BATS_TEST_TMPDIR/go" "$Q" "$k"
	done
	wait_for 10 drafts 3
	# Their bucket (of 1024 ids), named by the first id it can hold.
	first=$(names_in tmp | sed 's/.*\.//' | sort | head -n 1)
	bucket=$(printf '%016x' $(( 16#$first & ~1023 )))
	seq 1 1100 | mq-send -q -l "$Q"
	assert [ -d "$Q/new/$bucket" ]
	run -0 mq-watch --drain "$Q"
	assert [ ! -d "$Q/new/$bucket" ]
	for k in 1 2 3 4; do
		bg_start "c$k" mq-recv -t 20 "$Q"
		wait_for 10 is_polling "$(bg_pid "c$k")"
	done
	touch "$BATS_TEST_TMPDIR/go"
	for k in 1 2 3; do
		bg_wait 20 "slow$k"
		assert_equal "$(bg_err "slow$k")" ''
		assert_equal "$(bg_rc "slow$k")" 0
	done
	wait_for 20 got_slow 3
	assert_equal "$(bodies | sort)" $'slow 1\nslow 2\nslow 3'
}
