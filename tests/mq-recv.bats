#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

RECEIPT_RE='^[0-9a-f]{16}\.[0-9]+\.[kl][0-9a-f]{12}$'

# A handler that records its environment and standard input.
record_handler() {
	cat >"$BATS_TEST_TMPDIR/handler" <<-'EOF'
	#!/bin/sh
	d=$(dirname "$0")
	printf '%s\n' "$MQ_QUEUE" "$MQ_ID" "$MQ_RECEIPT" "$MQ_ATTEMPT" >"$d/env"
	cat >"$d/stdin"
	exit "${EXIT:-0}"
	EOF
	chmod +x "$BATS_TEST_TMPDIR/handler"
}

# Send and return the id of a message with body $1.
send() { printf '%s' "$1" | mq-send "$Q"; }

# plant_after: send a message, and free the id just before it in its
# bucket so that a file planted under that name is looked at first.
# Sets $planted (the path to plant at) and $behind (the real message).
plant_after() {
	local first
	first=$(send first)
	behind=$(send behind)
	mq-recv -o /dev/null "$Q"
	planted="$(bucket_of "$behind")/$first.0"
	[ ! -e "$planted" ]
}

# A file outside the queue that is a valid message of another queue:
# were a planted link to it followed, its body would come out.
decoy() {
	mq-init "$BATS_TEST_TMPDIR/other"
	printf 'SECRET' | mq-send -q "$BATS_TEST_TMPDIR/other"
	find "$BATS_TEST_TMPDIR/other/new" -type f -print -quit
}

@test "mq-recv: pop prints the oldest message and removes it" {
	send first >/dev/null
	send second >/dev/null
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output first
	assert_equal "$stderr" ""
	assert_equal "$(ready_count)" 1
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q"
	assert_output second
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" dead)" 0
}

@test "mq-recv: FIFO across many separate sends" {
	for i in $(seq 1 40); do
		echo "m$i" | mq-send -q "$Q"
	done
	for i in $(seq 1 40); do
		mq-recv "$Q"
	done >"$BATS_TEST_TMPDIR/got"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/got")" "$(seq 1 40 | sed 's/^/m/')"
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: -o FILE writes the body to FILE and nothing to stdout" {
	b="$BATS_TEST_TMPDIR/body.in"
	{ printf 'x\0y\n'; head -c 5000 /dev/urandom; } >"$b"
	mq-send -q "$Q" "$b"
	run --separate-stderr mq-recv -o "$BATS_TEST_TMPDIR/out" "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	cmp "$b" "$BATS_TEST_TMPDIR/out"
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-recv: -L prints the body and the receipt on stderr, and keeps the message in cur/" {
	id=$(send leased)
	start=$(now_ns)
	run --separate-stderr mq-recv -L 30 "$Q"
	assert_success
	assert_output leased
	[[ $stderr =~ $RECEIPT_RE ]]
	assert_equal "${stderr%%.*}" "$id"
	assert_equal "$(ready_count)" 0
	assert_equal "$(names_in cur | sed 's/\.[0-9]*$//')" "$stderr"
	deadline=$(lease_deadline "$stderr")
	left=$(( (deadline - start) / 1000000000 ))
	assert [ "$left" -ge 29 ]
	assert [ "$left" -le 31 ]
	# Held: no one else gets it.
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: -L with -o prints the receipt on stdout" {
	id=$(send leased)
	run --separate-stderr mq-recv -L 1m -o "$BATS_TEST_TMPDIR/out" "$Q"
	assert_success
	assert_output --regexp "$RECEIPT_RE"
	assert_equal "${output%%.*}" "$id"
	assert_equal "$stderr" ""
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out")" leased
	assert_equal "$(count_in "$Q" cur)" 1
	run mq-ack "$Q" "$output"
	assert_success
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-recv: exec gives the handler the body and MQ_QUEUE, MQ_ID, MQ_RECEIPT, MQ_ATTEMPT" {
	record_handler
	b="$BATS_TEST_TMPDIR/body.in"
	{ printf 'bin\0ary\n'; head -c 70000 /dev/urandom; } >"$b"
	id=$(mq-send "$Q" "$b")
	run --separate-stderr mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
	assert_success
	assert_equal "$stderr" ""
	mapfile -t env <"$BATS_TEST_TMPDIR/env"
	assert_equal "${env[0]}" "$Q"
	assert_equal "${env[1]}" "$id"
	[[ ${env[2]} =~ $RECEIPT_RE ]]
	assert_equal "${env[2]%%.*}" "$id"
	assert_equal "${env[3]}" 1
	cmp "$b" "$BATS_TEST_TMPDIR/stdin"
}

@test "mq-recv: exec with a bare queue name gives MQ_QUEUE as a path" {
	record_handler
	mq-init work
	printf 'x' | mq-send -q work
	run mq-recv work -- "$BATS_TEST_TMPDIR/handler"
	assert_success
	assert_equal "$(head -n 1 "$BATS_TEST_TMPDIR/env")" "$MQ_ROOT/work"
}

@test "mq-recv: handler exit 0 acks the message" {
	send done >/dev/null
	run mq-recv "$Q" -- true
	assert_success
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
	assert_equal "$(count_in "$Q" dead)" 0
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: the handler's arguments pass through, options included" {
	send x >/dev/null
	run mq-recv "$Q" -- sh -c 'printf "%s|" "$@"' sh -w -t 1 --
	assert_success
	assert_output "-w|-t|1|--|"
}

@test "mq-recv: handler failure releases it (75); it comes back next with MQ_ATTEMPT 2" {
	record_handler
	id=$(send again)
	send later >/dev/null
	EXIT=3 run --separate-stderr mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: $id: handler exited 3; released"
	assert_equal "$(sed -n 4p "$BATS_TEST_TMPDIR/env")" 1
	first_receipt=$(sed -n 3p "$BATS_TEST_TMPDIR/env")
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
	assert_success
	assert_equal "$(sed -n 2p "$BATS_TEST_TMPDIR/env")" "$id"
	assert_equal "$(sed -n 4p "$BATS_TEST_TMPDIR/env")" 2
	assert [ "$(sed -n 3p "$BATS_TEST_TMPDIR/env")" != "$first_receipt" ]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/stdin")" again
	run mq-recv "$Q"
	assert_output later
}

@test "mq-recv: started with SIGCHLD ignored, it still settles the message by the handler's exit status" {
	# An ignored SIGCHLD survives exec; the kernel would then reap the
	# handler, and the decoder of a compressed body, before mq-recv
	# could learn how they ended.
	id=$(printf again | mq-send -z "$Q")
	run --separate-stderr python3 -c '
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execvp(sys.argv[1], sys.argv[1:])' mq-recv "$Q" -- \
	    sh -c 'cat >"$0"; exit 3' "$BATS_TEST_TMPDIR/stdin"
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: $id: handler exited 3; released"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/stdin")" again
	assert_equal "$(names_in new)" "$id.1"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-recv: a handler killed by a signal releases the message" {
	id=$(send x)
	run --separate-stderr mq-recv "$Q" -- sh -c 'kill -9 $$'
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: $id: handler killed by signal 9; released"
	assert_equal "$(names_in new)" "$id.1"
}

@test "mq-recv: handler exit 100 moves the message to dead/ and exits 65" {
	id=$(send poison)
	run --separate-stderr mq-recv "$Q" -- sh -c 'cat >/dev/null; exit 100'
	assert_failure 65
	assert_equal "$stderr" "mq-recv: $Q: $id: handler failed permanently; moved to dead"
	assert_equal "$(names_in dead)" "$id.1.failed"
	assert_equal "$(tail -c 6 "$Q/dead/$id.1.failed")" poison
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: after max-attempts failed deliveries the message is in dead/" {
	mq-init --max-attempts 3 "$Q"
	record_handler
	id=$(send flaky)
	for attempt in 1 2; do
		EXIT=1 run --separate-stderr mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
		assert_failure 75
		assert_equal "$stderr" "mq-recv: $Q: $id: handler exited 1; released"
		assert_equal "$(sed -n 4p "$BATS_TEST_TMPDIR/env")" "$attempt"
		assert_equal "$(count_in "$Q" dead)" 0
	done
	EXIT=1 run --separate-stderr mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: $id: handler failed its last attempt; moved to dead"
	assert_equal "$(sed -n 4p "$BATS_TEST_TMPDIR/env")" 3
	assert_equal "$(names_in dead)" "$id.3.attempts"
	assert_equal "$(tail -c 5 "$Q/dead/$id.3.attempts")" flaky
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: nothing to receive exits 1 with nothing on stdout" {
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" ""
	run --separate-stderr mq-recv "$Q" -- sh -c 'echo ran'
	assert_failure 1
	assert_output ""
	run --separate-stderr mq-recv -L 10 -o "$BATS_TEST_TMPDIR/o" "$Q"
	assert_failure 1
	assert_output ""
	run --separate-stderr mq-recv -o "$BATS_TEST_TMPDIR/o" "$Q"
	assert_failure 1
	assert [ ! -e "$BATS_TEST_TMPDIR/o" ]
}

@test "mq-recv: -t 1 on an empty queue returns 1 after about a second" {
	start=$(now_ms)
	run --separate-stderr mq-recv -t 1 "$Q"
	took=$(( $(now_ms) - start ))
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" ""
	assert [ "$took" -ge 950 ]
	assert [ "$took" -lt 5000 ]
}

@test "mq-recv: a message sent while -t 10 waits is received at once" {
	bg_start recv mq-recv -t 10 "$Q"
	wait_for 10 is_polling "$(bg_pid recv)"
	sent=$(now_ms)
	send hello >/dev/null
	bg_wait 10 recv
	took=$(( $(now_ms) - sent ))
	assert_equal "$(bg_rc recv)" 0
	assert_equal "$(bg_out recv)" hello
	assert_equal "$(bg_err recv)" ""
	assert [ "$took" -lt 3000 ]
	assert_equal "$(ready_count)" 0
}

@test "mq-recv: -w waits for a message and receives it" {
	bg_start recv mq-recv -w "$Q" -- sh -c 'cat; echo " attempt $MQ_ATTEMPT"'
	wait_for 10 is_polling "$(bg_pid recv)"
	sent=$(now_ms)
	send waited >/dev/null
	bg_wait 10 recv
	took=$(( $(now_ms) - sent ))
	assert_equal "$(bg_rc recv)" 0
	assert_equal "$(bg_out recv)" "waited attempt 1"
	assert [ "$took" -lt 3000 ]
}

@test "mq-recv: -w that waited leaves nothing of itself behind once it has exited" {
	bg_start recv mq-recv -w "$Q"
	wait_for 10 is_polling "$(bg_pid recv)"
	send waited >/dev/null
	bg_wait 10 recv
	assert_equal "$(bg_rc recv)" 0
	assert_equal "$(bg_out recv)" waited
	# Its inotify descriptor is closed by a child once it has gone.
	no_waiter() { ! pgrep -f "mq-recv -w $Q\$" >/dev/null; }
	wait_for 10 no_waiter
	assert_equal "$(ready_count)" 0
}

@test "mq-recv: -w with a message ready returns it without waiting" {
	send ready >/dev/null
	run timeout 10 mq-recv -w "$Q"
	assert_success
	assert_output ready
}

@test "mq-recv: a failed write to stdout exits 74 and the message stays, unharmed" {
	record_handler
	b="$BATS_TEST_TMPDIR/body.in"
	head -c 300000 /dev/urandom >"$b"
	id=$(mq-send "$Q" "$b")
	run --separate-stderr bash -c 'mq-recv "$1" >/dev/full' _ "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-recv: stdout: No space left on device"
	assert_equal "$(names_in new)" "$id.0"
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q" -- "$BATS_TEST_TMPDIR/handler"
	assert_success
	assert_equal "$(sed -n 4p "$BATS_TEST_TMPDIR/env")" 1
	cmp "$b" "$BATS_TEST_TMPDIR/stdin"
}

@test "mq-recv: -o into a missing directory exits 74 and the message stays" {
	id=$(send kept)
	run --separate-stderr mq-recv -o "$BATS_TEST_TMPDIR/no/such/file" "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-recv: $BATS_TEST_TMPDIR/no/such/file: No such file or directory"
	assert_equal "$(names_in new)" "$id.0"
	run mq-recv "$Q"
	assert_output kept
}

@test "mq-recv: -L whose body cannot be written gives the message back" {
	id=$(send kept)
	run --separate-stderr bash -c 'mq-recv -L 60 "$1" >/dev/full' _ "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-recv: stdout: No space left on device"
	assert_equal "$(names_in new)" "$id.0"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-recv: a missing command exits 127 and leaves the message untouched" {
	id=$(send untouched)
	before=$(cat "$(ready_file "$id")" | od -c)
	run -127 --separate-stderr mq-recv "$Q" -- no-such-command-mq
	assert_failure 127
	assert_equal "$stderr" "mq-recv: no-such-command-mq: No such file or directory"
	assert_equal "$(names_in new)" "$id.0"
	assert_equal "$(cat "$(ready_file "$id")" | od -c)" "$before"
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q" -- sh -c 'echo "$MQ_ATTEMPT"'
	assert_output 1
}

@test "mq-recv: a command that is not executable exits 126 and leaves the message" {
	id=$(send untouched)
	printf 'echo hi\n' >"$BATS_TEST_TMPDIR/noexec"
	chmod 644 "$BATS_TEST_TMPDIR/noexec"
	run --separate-stderr mq-recv "$Q" -- "$BATS_TEST_TMPDIR/noexec"
	assert_failure 126
	assert_equal "$stderr" "mq-recv: $BATS_TEST_TMPDIR/noexec: Permission denied"
	assert_equal "$(names_in new)" "$id.0"
}

@test "mq-recv: a symlink planted in a bucket is quarantined, not followed, and does not block" {
	plant_after
	target=$(decoy)
	ln -s "$target" "$planted"
	before=$(cat "$target" | od -c)
	name=$(basename "$planted")
	run --separate-stderr timeout 10 mq-recv "$Q"
	assert_success
	assert_output behind
	assert_equal "$stderr" "mq-recv: $Q: $name: Damaged message file: moved to quarantine"
	assert [ ! -L "$planted" ]
	assert_equal "$(find "$Q/quarantine" -type l -name "*.$name" | wc -l)" 1
	assert_equal "$(cat "$target" | od -c)" "$before"
	assert_equal "$(ready_count "$BATS_TEST_TMPDIR/other")" 1
}

@test "mq-recv: a FIFO planted in a bucket is quarantined without blocking" {
	plant_after
	mkfifo "$planted"
	name=$(basename "$planted")
	run --separate-stderr timeout 10 mq-recv "$Q"
	assert_success
	assert_output behind
	assert_equal "$stderr" "mq-recv: $Q: $name: Damaged message file: moved to quarantine"
	assert [ ! -e "$planted" ]
	assert_equal "$(find "$Q/quarantine" -type p -name "*.$name" | wc -l)" 1
}

@test "mq-recv: a directory planted in a bucket is quarantined without blocking" {
	plant_after
	mkdir "$planted"
	echo inside >"$planted/file"
	name=$(basename "$planted")
	run --separate-stderr timeout 10 mq-recv "$Q"
	assert_success
	assert_output behind
	assert_equal "$stderr" "mq-recv: $Q: $name: Damaged message file: moved to quarantine"
	assert [ ! -e "$planted" ]
	assert_equal "$(find "$Q/quarantine" -mindepth 1 -maxdepth 1 -type d -name "*.$name" | wc -l)" 1
}

@test "mq-recv: a symlink planted in a bucket is not followed by exec either" {
	plant_after
	ln -s "$(decoy)" "$planted"
	run --separate-stderr timeout 10 mq-recv "$Q" -- cat
	assert_success
	assert_output behind
}

@test "mq-recv: a symlink planted as a bucket is not followed and does not block" {
	target=$(decoy)
	send real >/dev/null
	# Named as the oldest possible bucket, so it is looked at first.
	ln -s "$(dirname "$target")" "$Q/new/0000000000000000"
	run --separate-stderr timeout 10 mq-recv "$Q"
	assert_success
	assert_output real
	assert_equal "$(ready_count "$BATS_TEST_TMPDIR/other")" 1
}

@test "mq-recv: a truncated message is quarantined and the next one delivered" {
	id=$(send 'this body will be cut short')
	send intact >/dev/null
	truncate -s -5 "$(ready_file "$id")"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output intact
	assert_regex "$stderr" "^mq-recv: $Q: $id\\.[0-9a-z.]+: Damaged message file: moved to quarantine$"
	assert_equal "$(quarantined | grep -c "\\.$id\\.")" 1
	assert_equal "$(count_in "$Q" cur)" 0
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-recv: a message grown after sending is quarantined, never delivered" {
	id=$(send short)
	printf 'appended' >>"$(ready_file "$id")"
	run --separate-stderr mq-recv "$Q" -- cat
	assert_failure 1
	assert_output ""
	assert_equal "$(quarantined | grep -c "\\.$id\\.")" 1
}

@test "mq-recv: a file with a message name but no header is quarantined" {
	plant_after
	printf 'no header here' >"$planted"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output behind
	assert_equal "$(quarantined | grep -c "\\.$(basename "$planted")\$")" 1
	assert_equal "$(quarantined | wc -l)" 1
}

@test "mq-recv: a missing queue exits 66 and names it" {
	run --separate-stderr mq-recv "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-recv: $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "mq-recv: usage errors exit 64" {
	usage=$(usage_of mq-recv)
	assert_regex "$usage" '^usage: mq-recv .*\[-w \| -t SECS\] \[-L DUR\] \[-o FILE\].* QUEUE \[-- COMMAND \[ARG\.\.\.\]\]$'
	send x >/dev/null
	run --separate-stderr mq-recv
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-recv -w -t 1 "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-recv "$Q" --
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-recv "$Q" extra
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-recv -o "$BATS_TEST_TMPDIR/o" "$Q" -- cat
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-recv -t soon "$Q"
	assert_failure 64
	assert_equal "$stderr" "mq-recv: -t: invalid duration: soon"
	run --separate-stderr mq-recv -L 0 "$Q"
	assert_failure 64
	assert_equal "$stderr" "mq-recv: -L: must be at least 1s"
	assert_equal "$(ready_count)" 1
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-recv: --help prints the usage on stdout and exits 0" {
	run --separate-stderr mq-recv --help
	assert_success
	assert_line --index 0 --regexp '^usage: mq-recv .*\[-w \| -t SECS\]'
	for opt in --wait --timeout --lease --output --help --version; do
		assert_output --partial -- "$opt"
	done
	assert_equal "$stderr" ""
}

@test "mq-recv: --version prints the program and version" {
	run --separate-stderr mq-recv --version
	assert_success
	assert_output --regexp '^mq-recv [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-recv: a standard output left non-blocking is waited for, not a failure (EAGAIN)" {
	head -c 4000000 /dev/urandom >"$BATS_TEST_TMPDIR/big"
	mq-send -q "$Q" "$BATS_TEST_TMPDIR/big"
	# A reader that starts once the pipe is full and the writer waits.
	export -f nonblocking wait_for writer_polls is_polling
	run bash -c 'nonblocking mq-recv "$1" |
	    { wait_for 10 writer_polls && cat >"$2"; }
	    echo "${PIPESTATUS[0]}"' sh "$Q" "$BATS_TEST_TMPDIR/got"
	assert_output 0
	cmp "$BATS_TEST_TMPDIR/big" "$BATS_TEST_TMPDIR/got"
}
