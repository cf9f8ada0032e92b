#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

# Send and print the id of a message with body $1.
send() { printf '%s' "$1" | mq-send "$Q"; }

# Deliver the next message once and move it to dead/ (mq-ack --fail);
# print its id.
kill_next() {
	local r
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	echo "${r%%.*}"
}

# Receive the next message with a handler; print "ID ATTEMPT BODY".
deliver() {
	mq-recv "$Q" -- sh -c 'printf "%s %s %s\n" "$MQ_ID" "$MQ_ATTEMPT" "$(cat)"'
}

# Seconds since the epoch when file $1 last changed (its death).
ctime_of() { stat -c %Z "$1"; }

clock_past() { [ "$(date +%s)" -ge "$1" ]; }

@test "mq-redrive: moves every dead letter back to ready and prints the count" {
	a=$(send a)
	b=$(send b)
	c=$(send c)
	kill_next >/dev/null
	kill_next >/dev/null
	assert_equal "$(names_in dead)" "$a.1.failed
$b.1.failed"
	run --separate-stderr mq-redrive "$Q"
	assert_success
	assert_output 2
	assert_equal "$stderr" ""
	assert_equal "$(count_in "$Q" dead)" 0
	assert_equal "$(names_in new)" "$a.1
$b.1
$c.0"
	run mq-redrive "$Q"
	assert_success
	assert_output 0
}

@test "mq-redrive: keeps the attempt count: the next delivery is MQ_ATTEMPT old+1" {
	id=$(send again)
	kill_next >/dev/null
	run mq-redrive "$Q"
	assert_output 1
	assert_equal "$(names_in new)" "$id.1"
	run deliver
	assert_success
	assert_output "$id 2 again"
}

@test "mq-redrive: --reset starts afresh: the next delivery is MQ_ATTEMPT 1" {
	id=$(send fresh)
	kill_next >/dev/null
	run mq-redrive --reset "$Q"
	assert_success
	assert_output 1
	assert_equal "$(names_in new)" "$id.0"
	run deliver
	assert_output "$id 1 fresh"
}

@test "mq-redrive: a message that used up max-attempts gets one more delivery, or all of them with --reset" {
	mq-init --max-attempts 2 "$Q"
	id=$(send flaky)
	for i in 1 2; do
		run mq-recv "$Q" -- false
		assert_failure 75
	done
	assert_equal "$(names_in dead)" "$id.2.attempts"
	run mq-redrive "$Q"
	assert_output 1
	run mq-recv "$Q" -- sh -c 'echo "$MQ_ATTEMPT"; exit 1'
	assert_failure 75
	assert_line --index 0 3
	assert_equal "$(names_in dead)" "$id.3.attempts"
	run mq-redrive -r "$Q"
	assert_output 1
	run mq-recv "$Q" -- sh -c 'echo "$MQ_ATTEMPT"; exit 1'
	assert_failure 75
	assert_line --index 0 1
	assert_equal "$(count_in "$Q" dead)" 0
	run mq-recv "$Q" -- sh -c 'echo "$MQ_ATTEMPT"; exit 1'
	assert_line --index 0 2
	assert_equal "$(names_in dead)" "$id.2.attempts"
}

@test "mq-redrive: a redriven message keeps its id, headers and body, and loses its reason" {
	id=$(printf 'the body' | mq-send -H order-id=7 -H customer=acme "$Q")
	kill_next >/dev/null
	dead_show=$(mq-ls --show "$id" "$Q" | sed 1,2d)
	mq-redrive "$Q" >/dev/null
	run mq-ls --show "$id" "$Q"
	assert_success
	assert_line --index 1 "state: ready"
	assert_equal "$(sed 1,2d <<<"$output")" "$dead_show"
	assert_output --partial "order-id: 7"
	run mq-ls --json "$Q"
	refute_output --partial '"reason"'
}

@test "mq-redrive: only the chosen ids" {
	a=$(send a)
	b=$(send b)
	c=$(send c)
	for i in 1 2 3; do kill_next >/dev/null; done
	run --separate-stderr mq-redrive "$Q" "$a" "$c"
	assert_success
	assert_output 2
	assert_equal "$(names_in dead)" "$b.1.failed"
	assert_equal "$(names_in new)" "$a.1
$c.1"
	# An id that is not dead is ignored; the count says so.
	run --separate-stderr mq-redrive "$Q" "$a" 00000100000000ff
	assert_success
	assert_output 0
	assert_equal "$stderr" ""
	assert_equal "$(names_in dead)" "$b.1.failed"
}

@test "mq-redrive: a bad id exits 65 and moves nothing" {
	a=$(send a)
	kill_next >/dev/null
	for bad in zz 00000100000000 00000100000000AB "$a.1"; do
		run --separate-stderr mq-redrive "$Q" "$a" "$bad"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "mq-redrive: $bad: Not a message id"
		assert_equal "$(names_in dead)" "$a.1.failed"
	done
	assert_equal "$(count_in "$Q" new)" 0
}

@test "mq-redrive: restores the FIFO place: the redriven message comes before those sent after it" {
	a=$(send a)
	b=$(send b)
	kill_next >/dev/null
	c=$(send c)
	run mq-redrive "$Q"
	assert_output 1
	d=$(send d)
	for want in "$a 2 a" "$b 1 b" "$c 1 c" "$d 1 d"; do
		run deliver
		assert_success
		assert_output "$want"
	done
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-redrive: a bucket removed meanwhile is created again" {
	a=$(send a)
	kill_next >/dev/null
	# What a consumer may do with a bucket it emptied.
	find "$Q/new" -mindepth 1 -maxdepth 1 -type d -empty -delete
	assert_equal "$(find "$Q/new" -mindepth 1 | wc -l)" 0
	run mq-redrive "$Q"
	assert_success
	assert_output 1
	assert_equal "$(names_in new)" "$a.1"
	run deliver
	assert_output "$a 2 a"
}

@test "mq-redrive: --max-age and --min-age select by the time since death" {
	a=$(send a)
	b=$(send b)
	kill_next >/dev/null
	died=$(ctime_of "$Q/dead/$a.1.failed")
	# B dies five seconds later.
	wait_for 10 clock_past $((died + 5))
	kill_next >/dev/null

	# A just-dead letter is within an hour, and not an hour old.
	run --separate-stderr mq-redrive --min-age 1h "$Q"
	assert_success
	assert_output 0
	assert_equal "$(count_in "$Q" dead)" 2

	# Died at most 3s ago: B, not A.
	run mq-redrive --max-age 3 "$Q"
	assert_success
	assert_output 1
	assert_equal "$(names_in dead)" "$a.1.failed"
	assert_equal "$(names_in new)" "$b.1"

	# B dies again, now; at least 3s ago: A, not B.
	kill_next >/dev/null
	assert_equal "$(names_in dead)" "$a.1.failed
$b.2.failed"
	run mq-redrive --min-age 3s "$Q"
	assert_success
	assert_output 1
	assert_equal "$(names_in dead)" "$b.2.failed"
	assert_equal "$(names_in new)" "$a.1"

	run mq-redrive --max-age 1h "$Q"
	assert_output 1
	assert_equal "$(count_in "$Q" dead)" 0
}

@test "mq-redrive: age options and ids combine" {
	a=$(send a)
	b=$(send b)
	kill_next >/dev/null
	kill_next >/dev/null
	run mq-redrive --min-age 1h "$Q" "$a"
	assert_output 0
	run mq-redrive --max-age 1h --reset "$Q" "$b"
	assert_output 1
	assert_equal "$(names_in dead)" "$a.1.failed"
	assert_equal "$(names_in new)" "$b.0"
}

@test "mq-redrive: a bare queue name is under MQ_ROOT" {
	mq-init work
	Q="$MQ_ROOT/work"
	send x >/dev/null
	kill_next >/dev/null
	run mq-redrive work
	assert_success
	assert_output 1
	assert_equal "$(count_in "$Q" new)" 1
}

@test "mq-redrive: a missing queue exits 66" {
	run --separate-stderr mq-redrive "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-redrive: $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "mq-redrive: usage errors exit 64" {
	usage=$(usage_of mq-redrive)
	assert_equal "$usage" "usage: mq-redrive [--reset] [--min-age DUR] [--max-age DUR] QUEUE [ID...]"
	send x >/dev/null
	kill_next >/dev/null
	run --separate-stderr mq-redrive
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-redrive --min-age soon "$Q"
	assert_failure 64
	assert_equal "$stderr" "mq-redrive: --min-age: invalid duration: soon"
	run --separate-stderr mq-redrive --max-age -1 "$Q"
	assert_failure 64
	run --separate-stderr mq-redrive --bogus "$Q"
	assert_failure 64
	assert_equal "$(count_in "$Q" dead)" 1
}

@test "mq-redrive: --help and --version" {
	run --separate-stderr mq-redrive --help
	assert_success
	assert_line --index 0 'usage: mq-redrive [--reset] [--min-age DUR] [--max-age DUR] QUEUE [ID...]'
	for opt in --reset --min-age --max-age --help --version; do
		assert_output --partial -- "$opt"
	done
	run mq-redrive --version
	assert_success
	assert_output --regexp '^mq-redrive [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-redrive: a symlink, FIFO or directory in dead/ under a dead-letter name is quarantined, named on stderr, not counted" {
	id=$(send real)
	kill_next >/dev/null
	echo outside >"$BATS_TEST_TMPDIR/target"
	ln -s "$BATS_TEST_TMPDIR/target" "$Q/dead/00000100000000a1.1.failed"
	mkfifo "$Q/dead/00000100000000a2.1.failed"
	mkdir "$Q/dead/00000100000000a3.1.failed"
	run --separate-stderr timeout 10 mq-redrive "$Q"
	assert_success
	assert_output 1
	# In the order of dead/'s listing.
	assert_equal "$(sort <<<"$stderr")" "mq-redrive: $Q: dead/00000100000000a1.1.failed: Damaged message file: moved to quarantine
mq-redrive: $Q: dead/00000100000000a2.1.failed: Damaged message file: moved to quarantine
mq-redrive: $Q: dead/00000100000000a3.1.failed: Damaged message file: moved to quarantine"
	assert_equal "$(names_in new)" "$id.1"
	assert_equal "$(ls -A "$Q/dead")" ""
	assert_equal "$(quarantined | sed 's/^[0-9]*\.//' | sort)" "00000100000000a1.1.failed
00000100000000a2.1.failed
00000100000000a3.1.failed"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/target")" outside
	run deliver
	assert_output "$id 2 real"
}

@test "mq-redrive: 40000 ID operands against 40000 dead letters cost about what 2 do, and move exactly those asked for" {
	a=$(send a)
	b=$(send b)
	c=$(send c)
	for i in 1 2 3; do kill_next >/dev/null; done
	# Dead letters nobody asks for, and ids of none; each id is looked
	# up among the dead letters, not compared with every one (4 s when it
	# was).
	(cd "$Q/dead" && printf '%016x.1.failed\n' \
	    $(seq 1099512676352 1099512716351) | xargs touch)
	mapfile -t ids < <(printf '%016x\n' $(seq 2199023255552 2199023295551))
	# The same walk of dead/ with two ids of none, timed side by side.
	t0=$(now_ms)
	run -0 mq-redrive "$Q" "${ids[@]:0:2}"
	assert_output 0
	base=$(($(now_ms) - t0))
	t0=$(now_ms)
	run --separate-stderr mq-redrive "$Q" "${ids[@]:0:20000}" "$c" \
	    "${ids[@]:20000}" "$b" "$c"
	t=$(($(now_ms) - t0))
	assert_success
	assert_output 2
	assert_equal "$stderr" ""
	assert_equal "$(names_in new)" "$b.1
$c.1"
	assert_equal "$(count_in "$Q" dead)" 40001
	[ -e "$Q/dead/$a.1.failed" ] || fail "$a was moved, not asked for"
	[ "$t" -lt $((10 * base + 500)) ] || fail "took $t ms, against $base ms for 2 ids"
}
