#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

# Send and print the id of a message with body $1.
send() { printf '%s' "$1" | mq-send "$Q"; }

claim() { mq-recv -L 60 -o /dev/null "$Q"; }

# A queue with messages in every state: 1 in quarantine (a damaged
# message a consumer found), 1 in flight ($receipt), 1 delayed, 1 dead,
# 2 ready.
populate() {
	local id r
	id=$(send 'cut short')
	truncate -s -3 "$(ready_file "$id")"
	inflight=$(send in)
	receipt=$(claim 2>/dev/null)
	[ "${receipt%%.*}" = "$inflight" ]
	send later >/dev/null
	r=$(claim)
	mq-ack --retry -d 1h "$Q" "$r"
	send poison >/dev/null
	r=$(claim)
	mq-ack --fail "$Q" "$r"
	send first >/dev/null
	send second >/dev/null
	assert_state_counts 2 1 1 1 1
}

# Files of a state folder; quarantine without the .reason notes.
files_of() {
	case $1 in
	ready) find "$Q/new" -mindepth 2 -printf '%P\n' ;;
	delayed) find "$Q/delay" -mindepth 1 -printf '%P\n' ;;
	inflight) find "$Q/cur" -mindepth 1 -printf '%P\n' ;;
	dead) find "$Q/dead" -mindepth 1 -printf '%P\n' ;;
	quarantine) find "$Q/quarantine" -mindepth 1 ! -name '*.reason' -printf '%P\n' ;;
	esac | sort
}

# assert_state_counts READY DELAYED INFLIGHT DEAD QUARANTINE
assert_state_counts() {
	local got="" st
	for st in ready delayed inflight dead quarantine; do
		got+="$(files_of "$st" | wc -l) "
	done
	assert_equal "${got% }" "$*"
}

@test "mq-purge: without --yes counts, says so, exits 1 and removes nothing" {
	populate
	before=$(snapshot)
	for st in ready:2 delayed:1 dead:1 quarantine:1 all:5; do
		run --separate-stderr mq-purge --state "${st%:*}" "$Q"
		assert_failure 1
		assert_output ""
		assert_equal "$stderr" "mq-purge: $Q: would remove ${st#*:} message(s); add --yes to remove them"
		assert_equal "$(snapshot)" "$before"
	done
}

@test "mq-purge: without --yes and nothing to remove exits 0" {
	send x >/dev/null
	run --separate-stderr mq-purge --state dead "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" "mq-purge: $Q: would remove 0 message(s); add --yes to remove them"
	assert_equal "$(ready_count)" 1
}

@test "mq-purge: --yes removes exactly the state asked and prints the count" {
	for st in ready:2 delayed:1 dead:1 quarantine:1; do
		Q="$BATS_TEST_TMPDIR/q-${st%:*}"
		mq-init "$Q"
		populate
		declare -A was=()
		for other in ready delayed inflight dead quarantine; do
			was[$other]=$(files_of "$other")
		done
		run --separate-stderr mq-purge --state "${st%:*}" --yes "$Q"
		assert_success
		assert_output "${st#*:}"
		assert_equal "$stderr" ""
		assert_equal "$(files_of "${st%:*}")" ""
		for other in ready delayed inflight dead quarantine; do
			[ "$other" = "${st%:*}" ] && continue
			assert_equal "$(files_of "$other")" "${was[$other]}"
		done
		unset was
	done
}

@test "mq-purge: --state all removes everything but what is in flight" {
	populate
	run --separate-stderr mq-purge -s all -y "$Q"
	assert_success
	assert_output 5
	assert_state_counts 0 0 1 0 0
	assert_equal "$(find "$Q/quarantine" -mindepth 1 | wc -l)" 0
	# The consumer still holds its message, and can settle it.
	run mq-ack "$Q" "$receipt"
	assert_success
	assert_state_counts 0 0 0 0 0
	run mq-purge --state all --yes "$Q"
	assert_success
	assert_output 0
}

@test "mq-purge: a purged message is never delivered, and the queue goes on" {
	send gone1 >/dev/null
	send gone2 >/dev/null
	run mq-purge --state ready --yes "$Q"
	assert_output 2
	run mq-recv "$Q"
	assert_failure 1
	send kept >/dev/null
	run mq-recv "$Q"
	assert_success
	assert_output kept
}

@test "mq-purge: quarantine takes the .reason notes with the files" {
	send real >/dev/null
	echo junk >"$Q/new/junk"
	mkfifo "$Q/dead/not-a-name"
	mq-fsck --fix "$Q" >/dev/null || true
	assert_equal "$(find "$Q/quarantine" -name '*.reason' | wc -l)" 2
	run mq-purge --state quarantine --yes "$Q"
	assert_success
	assert_output 2
	assert_equal "$(find "$Q/quarantine" -mindepth 1 | wc -l)" 0
	assert_equal "$(ready_count)" 1
}

@test "mq-purge: --state inflight exits 64 and removes nothing" {
	populate
	before=$(snapshot)
	for st in inflight bogus; do
		run --separate-stderr mq-purge --state "$st" --yes "$Q"
		assert_failure 64
		assert_output ""
		assert_equal "$stderr" "mq-purge: --state: cannot purge: $st (ready, delayed, dead, quarantine, all)"
	done
	assert_equal "$(snapshot)" "$before"
}

@test "mq-purge: a missing queue exits 66" {
	run --separate-stderr mq-purge --state dead --yes "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-purge: $BATS_TEST_TMPDIR/nope: No such file or directory"
	run --separate-stderr mq-purge --state dead "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
}

@test "mq-purge: a bare queue name is under MQ_ROOT" {
	mq-init work
	Q="$MQ_ROOT/work"
	send x >/dev/null
	run --separate-stderr mq-purge --state ready work
	assert_failure 1
	assert_equal "$stderr" "mq-purge: work: would remove 1 message(s); add --yes to remove them"
	run mq-purge --state ready --yes work
	assert_success
	assert_output 1
}

@test "mq-purge: usage errors exit 64" {
	usage=$(usage_of mq-purge)
	assert_equal "$usage" "usage: mq-purge --state STATE [--yes] QUEUE"
	send x >/dev/null
	run --separate-stderr mq-purge --yes "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-purge --state ready
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-purge --state ready --yes "$Q" "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-purge --bogus --state ready --yes "$Q"
	assert_failure 64
	assert_equal "$(ready_count)" 1
}

@test "mq-purge: --help and --version" {
	run --separate-stderr mq-purge --help
	assert_success
	assert_line --index 0 'usage: mq-purge --state STATE [--yes] QUEUE'
	for opt in --state --yes --help --version; do
		assert_output --partial -- "$opt"
	done
	run mq-purge --version
	assert_success
	assert_output --regexp '^mq-purge [0-9]+\.[0-9]+\.[0-9]+$'
}
