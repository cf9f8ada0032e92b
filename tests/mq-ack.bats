#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }

STALE="Stale receipt: lease expired or message already settled"

# lease [DUR]: send nothing, claim the oldest message with -L; prints the
# receipt.  The body goes to $BATS_TEST_TMPDIR/body.
lease() {
	mq-recv -L "${1:-60}" -o "$BATS_TEST_TMPDIR/body" "$Q"
}

send() { printf '%s' "$1" | mq-send "$Q"; }

# The attempt number the next exec delivery reports, and its body.
next_attempt() {
	mq-recv "$Q" -- sh -c 'printf "%s " "$MQ_ATTEMPT"; cat'
}

@test "mq-ack: ack removes the message" {
	id=$(send done)
	r=$(lease)
	assert_equal "${r%%.*}" "$id"
	run --separate-stderr mq-ack "$Q" "$r"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/delay" "$Q/dead" -type f | wc -l)" 0
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-ack: a second ack of the same receipt exits 1 with the stale line" {
	send once >/dev/null
	send other >/dev/null
	r=$(lease)
	mq-ack "$Q" "$r"
	before=$(snapshot)
	run --separate-stderr mq-ack "$Q" "$r"
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" "mq-ack: $r: $STALE"
	assert_equal "$(snapshot)" "$before"
	run mq-recv "$Q"
	assert_output other
}

@test "mq-ack: --retry puts the message back with its attempt count raised" {
	id=$(send again)
	send later >/dev/null
	r=$(lease)
	run --separate-stderr mq-ack --retry "$Q" "$r"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(count_in "$Q" cur)" 0
	# First in line again, its name counting the delivery.
	assert_equal "$(names_in new | head -n 1)" "$id.1"
	assert_equal "$(ready_count)" 2
	run next_attempt
	assert_success
	assert_output "2 again"
	run mq-recv "$Q"
	assert_output later
}

@test "mq-ack: -r is --retry, and a retried receipt is stale afterwards" {
	send x >/dev/null
	r=$(lease)
	mq-ack -r "$Q" "$r"
	run --separate-stderr mq-ack "$Q" "$r"
	assert_failure 1
	assert_equal "$stderr" "mq-ack: $r: $STALE"
	assert_equal "$(ready_count)" 1
}

@test "mq-ack: --retry -d 2 keeps the message invisible until due, then it comes back" {
	id=$(send delayed)
	r=$(lease)
	start=$(now_ms)
	run mq-ack --retry -d 2 "$Q" "$r"
	assert_success
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(ready_count)" 0
	run names_in delay
	assert_output --regexp "^[0-9]{19}\\.$id\\.1$"
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	run --separate-stderr mq-recv -t 10 "$Q" -- sh -c 'printf "%s " "$MQ_ATTEMPT"; cat'
	took=$(( $(now_ms) - start ))
	assert_success
	assert_output "2 delayed"
	assert [ "$took" -ge 1900 ]
	assert [ "$took" -lt 6000 ]
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "mq-ack: --retry --delay accepts suffixed durations" {
	send x >/dev/null
	r=$(lease)
	start=$(now_ns)
	run mq-ack --retry --delay 1h "$Q" "$r"
	assert_success
	due=$(names_in delay | cut -d. -f1)
	left=$(( (due - start) / 1000000000 ))
	assert [ "$left" -ge 3599 ]
	assert [ "$left" -le 3601 ]
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-ack: --fail moves the message to dead/ at once" {
	id=$(send poison)
	r=$(lease)
	run --separate-stderr mq-ack --fail "$Q" "$r"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(names_in dead)" "$id.1.failed"
	assert_equal "$(tail -c 6 "$Q/dead/$id.1.failed")" poison
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(ready_count)" 0
	run mq-recv "$Q"
	assert_failure 1
	run --separate-stderr mq-ack -f "$Q" "$r"
	assert_failure 1
	assert_equal "$stderr" "mq-ack: $r: $STALE"
}

@test "mq-ack: --extend keeps the lease past its first end" {
	send held >/dev/null
	r=$(lease 1)
	first=$(lease_deadline "$r")
	start=$(now_ns)
	run --separate-stderr mq-ack --extend 1h "$Q" "$r"
	assert_success
	assert_equal "$stderr" ""
	now=$(lease_deadline "$r")
	left=$(( (now - start) / 1000000000 ))
	assert [ "$left" -ge 3599 ]
	assert [ "$left" -le 3601 ]
	# Past the first deadline, nobody else can take it ...
	wait_for 10 after_ns $((first + 300000000))
	run mq-recv "$Q"
	assert_failure 1
	assert_equal "$(count_in "$Q" cur)" 1
	# ... and the receipt still works.
	run mq-ack "$Q" "$r"
	assert_success
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-ack: an expired lease is reclaimed; the old receipt is refused and changes nothing" {
	id=$(send slow)
	r1=$(lease 1)
	first=$(lease_deadline "$r1")
	run mq-recv "$Q"
	assert_failure 1
	# The second consumer gets it once the first lease is over, not before.
	wait_for 10 lease 60 >"$BATS_TEST_TMPDIR/r2"
	r2=$(cat "$BATS_TEST_TMPDIR/r2")
	assert after_ns "$first"
	assert_equal "${r2%%.*}" "$id"
	assert_equal "$(echo "$r2" | cut -d. -f2)" 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/body")" slow
	before=$(snapshot)
	for op in "" --retry --fail "--extend 1h"; do
		# shellcheck disable=SC2086
		run --separate-stderr mq-ack $op "$Q" "$r1"
		assert_failure 1
		assert_equal "$stderr" "mq-ack: $r1: $STALE"
		assert_equal "$(snapshot)" "$before"
	done
	run mq-ack "$Q" "$r2"
	assert_success
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-ack: a well-formed receipt for a message never claimed exits 1" {
	send x >/dev/null
	before=$(snapshot)
	run --separate-stderr mq-ack "$Q" 0000010000000000.1.k0123456789ab
	assert_failure 1
	assert_equal "$stderr" "mq-ack: 0000010000000000.1.k0123456789ab: $STALE"
	assert_equal "$(snapshot)" "$before"
}

@test "mq-ack: hostile receipts exit 65 and change nothing" {
	send held >/dev/null
	r=$(lease)
	victim="$BATS_TEST_TMPDIR/victim"
	echo precious >"$victim"
	long=$(head -c 4096 /dev/zero | tr '\0' 'a')
	before=$(snapshot)
	for bad in ../../etc/passwd ../../victim "" "$long" -f --retry "-$r" \
	    "a/b" "$r/" "cur/$r" "../cur/$r" "$r.$(lease_deadline "$r")" \
	    "${r%?}" "$r"x " $r" "$(echo "$r" | tr a-f A-F)" ".." "."; do
		for op in "" --retry --fail "--extend 1h"; do
			# shellcheck disable=SC2086
			run --separate-stderr mq-ack $op "$Q" "$bad"
			assert_failure 65
			assert_output ""
			assert_equal "$stderr" "mq-ack: $bad: Not a receipt"
		done
	done
	assert_equal "$(snapshot)" "$before"
	assert_equal "$(cat "$victim")" precious
	assert [ -f /etc/passwd ]
	run mq-ack "$Q" "$r"
	assert_success
}

@test "mq-ack: several receipts in one call" {
	printf '1\n2\n3\n4\n' | mq-send -q -l "$Q"
	r1=$(lease) r2=$(lease) r3=$(lease)
	run --separate-stderr mq-ack "$Q" "$r1" "$r2" "$r3"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q"
	assert_output 4
}

@test "mq-ack: several receipts with --retry, --fail and --extend" {
	printf '1\n2\n3\n4\n' | mq-send -q -l "$Q"
	r1=$(lease) r2=$(lease)
	run mq-ack --fail "$Q" "$r1" "$r2"
	assert_success
	assert_equal "$(count_in "$Q" dead)" 2
	r3=$(lease 1) r4=$(lease 1)
	run mq-ack --extend 1h "$Q" "$r3" "$r4"
	assert_success
	for r in "$r3" "$r4"; do
		left=$(( ($(lease_deadline "$r") - $(now_ns)) / 1000000000 ))
		assert [ "$left" -ge 3500 ]
	done
	run mq-ack --retry "$Q" "$r3" "$r4"
	assert_success
	assert_equal "$(ready_count)" 2
}

@test "mq-ack: a bad or stale receipt among good ones: the good ones are settled" {
	printf '1\n2\n' | mq-send -q -l "$Q"
	r1=$(lease) r2=$(lease)
	mq-ack "$Q" "$r1"
	run --separate-stderr mq-ack "$Q" "$r1" ../../x "$r2"
	assert_failure 65
	assert_equal "$stderr" "mq-ack: $r1: $STALE"$'\n'"mq-ack: ../../x: Not a receipt"
	assert_equal "$(count_in "$Q" cur)" 0
	printf '3\n' | mq-send -q -l "$Q"
	r3=$(lease)
	run --separate-stderr mq-ack "$Q" "$r1" "$r3"
	assert_failure 1
	assert_equal "$stderr" "mq-ack: $r1: $STALE"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-ack: a missing queue exits 66 and names it" {
	run --separate-stderr mq-ack "$BATS_TEST_TMPDIR/nope" 0000010000000000.1.k0123456789ab
	assert_failure 66
	assert_equal "$stderr" "mq-ack: $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "mq-ack: usage errors exit 64 and settle nothing" {
	usage=$(usage_of mq-ack)
	assert_regex "$usage" '^usage: mq-ack .*\[--retry \[-d DUR\] \| --fail \| --extend DUR\] QUEUE RECEIPT\.\.\.$'
	send x >/dev/null
	r=$(lease)
	before=$(snapshot)
	run --separate-stderr mq-ack "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ack
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ack --retry --fail "$Q" "$r"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ack --fail --extend 1m "$Q" "$r"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ack -d 5 "$Q" "$r"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ack --extend 0 "$Q" "$r"
	assert_failure 64
	assert_equal "$stderr" "mq-ack: --extend: must be at least 1s"
	run --separate-stderr mq-ack --retry -d 1y "$Q" "$r"
	assert_failure 64
	assert_equal "$stderr" "mq-ack: -d: invalid duration: 1y"
	assert_equal "$(snapshot)" "$before"
}

@test "mq-ack: --help prints the usage on stdout and exits 0" {
	run --separate-stderr mq-ack --help
	assert_success
	assert_line --index 0 --regexp '^usage: mq-ack .*\[--retry \[-d DUR\] \| --fail \| --extend DUR\]'
	for opt in --retry --delay --fail --extend --help --version; do
		assert_output --partial -- "$opt"
	done
	assert_equal "$stderr" ""
}

@test "mq-ack: --version prints the program and version" {
	run --separate-stderr mq-ack --version
	assert_success
	assert_output --regexp '^mq-ack [0-9]+\.[0-9]+\.[0-9]+$'
}
