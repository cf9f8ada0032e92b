#!/usr/bin/env bats
# Processes that die at the wrong moment, and leases that run out.
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

send() { printf '%s' "$1" | mq-send "$Q"; }

@test "scenario: a consumer killed -9 mid-handler gives its message back at once" {
	id=$(send work)
	d=$BATS_TEST_TMPDIR
	# The default lease is 60 s: waiting it out would fail this test.
	bg_start holder mq-recv "$Q" -- sh -c "echo \$\$ >'$d/handler.pid'; exec sleep 60"
	wait_for 10 test -s "$d/handler.pid"
	bg_adopt "$(cat "$d/handler.pid")"
	assert_equal "$(cat "/proc/$(bg_pid holder)/comm")" mq-recv
	# Held while the holder lives.
	run mq-recv "$Q"
	assert_failure 1
	bg_start waiter mq-recv -t 30 "$Q" -- sh -c 'printf "%s %s " "$MQ_ID" "$MQ_ATTEMPT"; cat'
	wait_for 10 is_polling "$(bg_pid waiter)"
	killed=$(now_ms)
	kill -9 "$(bg_pid holder)"
	bg_wait 15 waiter
	took=$(( $(now_ms) - killed ))
	assert_equal "$(bg_rc waiter)" 0
	assert_equal "$(bg_out waiter)" "$id 2 work"
	assert [ "$took" -lt 5000 ]
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/dead" -type f | wc -l)" 0
}

@test "scenario: a consumer killed -9 mid-handler: the next plain receive gets the message" {
	send work >/dev/null
	d=$BATS_TEST_TMPDIR
	bg_start holder mq-recv "$Q" -- sh -c "echo \$\$ >'$d/handler.pid'; exec sleep 60"
	wait_for 10 test -s "$d/handler.pid"
	bg_adopt "$(cat "$d/handler.pid")"
	kill -9 "$(bg_pid holder)"
	bg_wait 10 holder
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output work
}

@test "scenario: an expired lease is redelivered with its attempt count raised" {
	id=$(send slow)
	r=$(mq-recv -L 1 -o /dev/null "$Q")
	deadline=$(lease_deadline "$r")
	run mq-recv "$Q"
	assert_failure 1
	start=$(now_ms)
	run --separate-stderr mq-recv -t 10 "$Q" -- sh -c 'printf "%s %s " "$MQ_ID" "$MQ_ATTEMPT"; cat'
	took=$(( $(now_ms) - start ))
	assert_success
	assert_output "$id 2 slow"
	assert after_ns "$deadline"
	# The waiting receive woke for the lease's end, not for its own.
	assert [ "$took" -lt 5000 ]
	assert_equal "$(find "$Q/new" "$Q/cur" -type f | wc -l)" 0
}

@test "scenario: a lease that expires on its last attempt goes to dead/, not lost" {
	mq-init --max-attempts 2 "$Q"
	id=$(send doomed)
	r1=$(mq-recv -L 1 -o /dev/null "$Q")
	wait_for 10 mq-recv -L 1 -o "$BATS_TEST_TMPDIR/body" "$Q" >"$BATS_TEST_TMPDIR/r2"
	r2=$(cat "$BATS_TEST_TMPDIR/r2")
	assert_equal "$(echo "$r2" | cut -d. -f1,2)" "$id.2"
	deadline=$(lease_deadline "$r2")
	wait_for 10 after_ns "$deadline"
	run mq-recv "$Q"
	assert_failure 1
	assert_equal "$(names_in dead)" "$id.2.attempts"
	assert_equal "$(tail -c 6 "$Q/dead/$id.2.attempts")" doomed
	assert_equal "$(find "$Q/new" "$Q/cur" -type f | wc -l)" 0
	run mq-ack "$Q" "$r2"
	assert_failure 1
}

@test "scenario: a producer killed mid-send leaves nothing deliverable" {
	fifo="$BATS_TEST_TMPDIR/in"
	mkfifo "$fifo"
	bg_start producer mq-send "$Q" "$fifo"
	# Read-write, so that opening never blocks, whatever mq-send does.
	exec 5<>"$fifo"
	# More than mq-send buffers, so part of the body reaches tmp/.
	head -c 100000 /dev/zero | tr '\0' h >&5
	wait_for 10 grep -rqs hhhh "$Q/tmp"
	kill -9 "$(bg_pid producer)"
	bg_wait 10 producer
	exec 5>&-
	assert_equal "$(count_in "$Q" tmp)" 1
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	# Young: it may be a send in progress, so mq-init leaves it.
	mq-init "$Q"
	assert_equal "$(count_in "$Q" tmp)" 1
	echo next | mq-send -q "$Q"
	run mq-recv "$Q"
	assert_output next
}

@test "scenario: a stale tmp/ file is never delivered and mq-init removes it" {
	id=$(send real)
	# A copy of a complete message, as a producer killed just before
	# its rename would leave it, two days old.
	old="12345.1764226594123456789.$id"
	cp "$(ready_file "$id")" "$Q/tmp/$old"
	touch -d '2 days ago' "$Q/tmp/$old"
	# Younger than the documented 36 hours: may be a send in progress.
	day="12346.1764226594123456789.0000000000000001"
	echo young >"$Q/tmp/$day"
	touch -d '1 day ago' "$Q/tmp/$day"
	new="12347.1764226594123456789.0000000000000002"
	echo new >"$Q/tmp/$new"
	run mq-recv "$Q"
	assert_output real
	run mq-recv "$Q"
	assert_failure 1
	run --separate-stderr mq-init "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(names_in tmp)" "$(printf '%s\n' "$day" "$new")"
	run mq-recv "$Q"
	assert_failure 1
}

@test "scenario: after a reboot that lost counter updates, new ids still sort after old ones" {
	a=$(send a)
	b=$(send b)
	# The counter as a power cut may leave it: back at an id already
	# used, and recorded under the boot before.
	printf '%s %s\n' 11111111-2222-3333-4444-555555555555 "$a" >"$Q/seq"
	c=$(send c)
	assert [ "$c" \> "$b" ]
	d=$(send d)
	assert [ "$d" \> "$c" ]
	for want in a b c d; do
		run mq-recv "$Q"
		assert_output "$want"
	done
}
