#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

# pop_cmp EXPECTED_FILE: the oldest message's body is byte for byte the
# file's content.
pop_cmp() {
	mq-recv -o "$BATS_TEST_TMPDIR/popped" "$Q"
	cmp "$1" "$BATS_TEST_TMPDIR/popped"
}

@test "mq-send: stdin is one message and its id is printed" {
	run --separate-stderr mq-send "$Q" <<<'{"order":42}'
	assert_success
	assert is_id "$output"
	assert_equal "$stderr" ""
	assert_equal "$(names_in new)" "$output.0"
	run mq-recv "$Q"
	assert_output '{"order":42}'
}

@test "mq-send: the message lands in new/, nothing is left in tmp/" {
	id=$(printf 'body' | mq-send "$Q")
	f=$(ready_file "$id")
	assert_equal "$f" "$(bucket_of "$id")/$id.0"
	assert_equal "$(dirname "$(dirname "$f")")" "$Q/new"
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
	assert_equal "$(find "$Q/cur" "$Q/delay" "$Q/dead" -mindepth 1 | wc -l)" 0
	# The body is the file's tail, after the header (mq-queue(5)).
	assert_equal "$(tail -c 4 "$f")" body
	run head -n 1 "$f"
	assert_output "mq/1"
}

@test "mq-send: each FILE is one message, in order" {
	printf 'one\n' >"$BATS_TEST_TMPDIR/1"
	printf 'two\nlines\n' >"$BATS_TEST_TMPDIR/2"
	run --separate-stderr mq-send "$Q" "$BATS_TEST_TMPDIR/1" "$BATS_TEST_TMPDIR/2"
	assert_success
	assert_equal "${#lines[@]}" 2
	assert is_id "${lines[0]}"
	assert [ "${lines[1]}" \> "${lines[0]}" ]
	pop_cmp "$BATS_TEST_TMPDIR/1"
	pop_cmp "$BATS_TEST_TMPDIR/2"
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-send: - among the FILEs is standard input" {
	printf 'a' >"$BATS_TEST_TMPDIR/a"
	printf 'b' >"$BATS_TEST_TMPDIR/b"
	run mq-send "$Q" "$BATS_TEST_TMPDIR/a" - "$BATS_TEST_TMPDIR/b" <<<'from stdin'
	assert_success
	assert_equal "${#lines[@]}" 3
	run mq-recv "$Q"
	assert_output a
	run mq-recv "$Q"
	assert_output 'from stdin'
	run mq-recv "$Q"
	assert_output b
}

@test "mq-send: -l makes each line a message, without its newline" {
	run mq-send -l "$Q" < <(printf 'alpha\nbeta\n\ngamma')
	assert_success
	assert_equal "${#lines[@]}" 4
	for want in alpha beta '' gamma; do
		mq-recv -o "$BATS_TEST_TMPDIR/m" "$Q"
		printf '%s' "$want" >"$BATS_TEST_TMPDIR/want"
		cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/m"
	done
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-send: -l with input ending in a newline adds no empty message" {
	run mq-send -q -l "$Q" < <(printf 'x\ny\n')
	assert_success
	assert_equal "$(ready_count)" 2
}

@test "mq-send: -0 makes each NUL-terminated record a message, without the NUL" {
	run mq-send -0 "$Q" < <(printf 'first\0sec\nond\0\0last')
	assert_success
	assert_equal "${#lines[@]}" 4
	i=0
	for want in 'first' $'sec\nond' '' 'last'; do
		mq-recv -o "$BATS_TEST_TMPDIR/m" "$Q"
		printf '%s' "$want" >"$BATS_TEST_TMPDIR/want"
		cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/m"
		i=$((i + 1))
	done
	assert_equal "$i" 4
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-send: -l and -0 read FILE operands too" {
	printf '1\n2\n' >"$BATS_TEST_TMPDIR/f"
	run mq-send -l "$Q" "$BATS_TEST_TMPDIR/f"
	assert_equal "${#lines[@]}" 2
	run mq-recv "$Q"
	assert_output 1
	run mq-recv "$Q"
	assert_output 2
}

@test "mq-send: many lines go out in order with one id each" {
	seq 1 600 >"$BATS_TEST_TMPDIR/in"
	mq-send -l "$Q" <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/ids"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/ids")" 600
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/ids")" "$(cat "$BATS_TEST_TMPDIR/ids")"
	for i in 1 2 3; do
		run mq-recv "$Q"
		assert_output "$i"
	done
}

@test "mq-send: a large -l batch is all delivered, in order, with few descriptors and bounded memory" {
	[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed"
	in=$BATS_TEST_TMPDIR/in
	awk 'BEGIN { for (i = 1; i <= 5000; i++) printf "%d %0500d\n", i, i }' >"$in"
	# Far fewer descriptors than messages in a group: a message's file
	# is closed once written.
	run bash -c 'ulimit -n 32 && exec /usr/bin/time -f %M -o "$1/rss" mq-send -l "$2" "$3" >"$1/ids"' \
	    _ "$BATS_TEST_TMPDIR" "$Q" "$in"
	assert_success
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/ids")" 5000
	assert_equal "$(sort -u "$BATS_TEST_TMPDIR/ids")" "$(cat "$BATS_TEST_TMPDIR/ids")"
	# KiB: the 2.5 MB input is not held, nor more than a group of drafts.
	# (AddressSanitizer keeps freed memory aside, so not under it.)
	under_asan || assert [ "$(tail -n 1 "$BATS_TEST_TMPDIR/rss")" -lt 16000 ]
	assert_equal "$(ls -A "$Q/tmp")" ""
	# Ready in input order, each id with its line.
	assert_equal "$(mq-ls --state ready "$Q" | awk '{ print $1 }')" \
	    "$(cat "$BATS_TEST_TMPDIR/ids")"
	for i in 1 1024 1025 2500 5000; do
		id=$(sed -n "${i}p" "$BATS_TEST_TMPDIR/ids")
		run mq-ls --show "$id" "$Q"
		assert_line --index 3 "$(sed -n "${i}p" "$in")"
	done
	run mq-recv "$Q"
	assert_output "$(head -n 1 "$in")"
}

@test "mq-send: -q prints nothing and still sends" {
	run --separate-stderr mq-send -q "$Q" <<<'quiet'
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	assert_equal "$(ready_count)" 1
	run mq-send -q -l "$Q" < <(printf 'a\nb\n')
	assert_output ""
	assert_equal "$(ready_count)" 3
}

@test "mq-send: a body with NUL bytes round-trips byte for byte" {
	b="$BATS_TEST_TMPDIR/bin"
	{ printf '\0\0\n\0\377\r\n'; head -c 200000 /dev/urandom; printf '\0'; } >"$b"
	mq-send -q "$Q" "$b"
	pop_cmp "$b"
}

@test "mq-send: an empty message is a message" {
	run mq-send "$Q" </dev/null
	assert_success
	assert is_id "$output"
	run --separate-stderr mq-recv -o "$BATS_TEST_TMPDIR/m" "$Q"
	assert_success
	assert [ -f "$BATS_TEST_TMPDIR/m" ]
	assert [ ! -s "$BATS_TEST_TMPDIR/m" ]
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-send: ids increase from one send to the next" {
	prev=""
	for i in 1 2 3 4 5 6; do
		id=$(echo "$i" | mq-send "$Q")
		assert is_id "$id"
		[ -z "$prev" ] || assert [ "$id" \> "$prev" ]
		prev=$id
	done
}

@test "mq-send: a missing queue exits 66 and names it" {
	run --separate-stderr mq-send "$BATS_TEST_TMPDIR/nope" <<<'x'
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR/nope: No such file or directory"
	assert [ ! -e "$BATS_TEST_TMPDIR/nope" ]
}

@test "mq-send: a missing bare-named queue exits 66" {
	run --separate-stderr mq-send nope <<<'x'
	assert_failure 66
	assert_equal "$stderr" "mq-send: nope: No such file or directory"
}

@test "mq-send: a directory that is not a queue exits 66" {
	mkdir "$BATS_TEST_TMPDIR/plain"
	run --separate-stderr mq-send "$BATS_TEST_TMPDIR/plain" <<<'x'
	assert_failure 66
	assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR/plain: Not a queue (run mq-init)"
	assert_equal "$(find "$BATS_TEST_TMPDIR/plain" -mindepth 1 | wc -l)" 0
}

@test "mq-send: a missing input file exits 66, naming the file, and sends nothing" {
	run --separate-stderr mq-send "$Q" "$BATS_TEST_TMPDIR/missing"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR/missing: No such file or directory"
	assert_equal "$(ready_count)" 0
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
}

@test "mq-send: a missing file among others: the others are sent, exit 66" {
	printf 'a' >"$BATS_TEST_TMPDIR/a"
	printf 'b' >"$BATS_TEST_TMPDIR/b"
	run --separate-stderr mq-send "$Q" "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/missing" "$BATS_TEST_TMPDIR/b"
	assert_failure 66
	assert_equal "${#lines[@]}" 2
	assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR/missing: No such file or directory"
	run mq-recv "$Q"
	assert_output a
	run mq-recv "$Q"
	assert_output b
}

@test "mq-send: a directory as FILE is refused (66), with or without -l or -0, and nothing is left behind" {
	for opt in "" -l -0; do
		run --separate-stderr mq-send $opt "$Q" "$BATS_TEST_TMPDIR"
		assert_failure 66
		assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR: Is a directory"
	done
	assert_equal "$(ready_count)" 0
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
}

@test "mq-send: a message is invisible until it is complete" {
	fifo="$BATS_TEST_TMPDIR/in"
	mkfifo "$fifo"
	bg_start sender mq-send "$Q" "$fifo"
	# Read-write, so that opening never blocks, whatever mq-send does.
	exec 5<>"$fifo"
	# More than mq-send buffers, so part of the body is in tmp/.
	head -c 100000 /dev/zero | tr '\0' x >&5
	wait_for 10 grep -rqs xxxx "$Q/tmp"
	run mq-recv "$Q"
	assert_failure 1
	assert_equal "$(ready_count)" 0
	printf 'second half' >&5
	exec 5>&-
	bg_wait 10 sender
	assert_equal "$(bg_rc sender)" 0
	assert is_id "$(bg_out sender)"
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
	run mq-recv "$Q"
	assert_output "$(head -c 100000 /dev/zero | tr '\0' x)second half"
}

@test "mq-send: -l sends a slow producer's lines as soon as the input pauses" {
	fifo="$BATS_TEST_TMPDIR/in"
	mkfifo "$fifo"
	bg_start sender mq-send -l "$Q" "$fifo"
	exec 5<>"$fifo"
	printf 'early\n' >&5
	# Receivable, and its id printed, while the sender still runs.
	run mq-recv -t 10 "$Q"
	assert_success
	assert_output early
	wait_for 10 test -s "$BATS_TEST_TMPDIR/sender.out"
	assert is_id "$(bg_out sender)"
	assert [ ! -e "$BATS_TEST_TMPDIR/sender.rc" ]
	printf 'late\n' >&5
	exec 5>&-
	bg_wait 10 sender
	assert_equal "$(bg_rc sender)" 0
	assert_equal "$(bg_out sender | wc -l)" 2
	run mq-recv "$Q"
	assert_output late
}

@test "mq-send: -l after a pause comes after what others sent meanwhile" {
	fifo="$BATS_TEST_TMPDIR/in"
	mkfifo "$fifo"
	bg_start sender mq-send -l "$Q" "$fifo"
	exec 5<>"$fifo"
	printf 'early\n' >&5
	wait_for 10 test -s "$BATS_TEST_TMPDIR/sender.out"
	echo other | mq-send -q "$Q"
	printf 'late\n' >&5
	exec 5>&-
	bg_wait 10 sender
	assert_equal "$(bg_rc sender)" 0
	for want in early other late; do
		run mq-recv "$Q"
		assert_output "$want"
	done
}

@test "mq-send: -l or -0 with empty input sends nothing" {
	run --separate-stderr mq-send -l "$Q" </dev/null
	assert_success
	assert_output ""
	run --separate-stderr mq-send -0 "$Q" </dev/null
	assert_success
	assert_output ""
	assert_equal "$(ready_count)" 0
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
}

@test "mq-send: a damaged counter fails the send (78) and leaves nothing behind" {
	echo junk >"$Q/seq"
	run --separate-stderr mq-send "$Q" <<<'x'
	assert_failure 78
	assert_output ""
	assert_equal "$stderr" "mq-send: $Q: Malformed queue config"
	assert_equal "$(ready_count)" 0
	assert_equal "$(find "$Q/tmp" -mindepth 1 | wc -l)" 0
	rm "$Q/seq"
	mq-init "$Q"
	run mq-send "$Q" <<<'x'
	assert_success
}

@test "mq-send: a 50 MB body streams in bounded memory and round-trips" {
	[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed"
	big="$BATS_TEST_TMPDIR/big"
	head -c 50000000 /dev/urandom >"$big"
	/usr/bin/time -f %M -o "$BATS_TEST_TMPDIR/rss.send" mq-send -q "$Q" <"$big"
	rss=$(tail -n 1 "$BATS_TEST_TMPDIR/rss.send")
	# KiB.  The body is 48828 KiB; a sender that held it would exceed this.
	assert [ "$rss" -lt 25000 ]
	/usr/bin/time -f %M -o "$BATS_TEST_TMPDIR/rss.recv" \
	    mq-recv -o "$BATS_TEST_TMPDIR/out" "$Q"
	rss=$(tail -n 1 "$BATS_TEST_TMPDIR/rss.recv")
	assert [ "$rss" -lt 25000 ]
	cmp "$big" "$BATS_TEST_TMPDIR/out"
}

@test "mq-send: -l and -0 together, or no queue, is a usage error" {
	usage=$(usage_of mq-send)
	assert_regex "$usage" '^usage: mq-send .*\[-l \| -0\].* QUEUE \[FILE\.\.\.\]$'
	run --separate-stderr mq-send -l -0 "$Q" </dev/null
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-send
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-send -x "$Q"
	assert_failure 64
	assert_equal "$stderr" "mq-send: invalid option -- 'x'"$'\n'"$usage"
	assert_equal "$(ready_count)" 0
}

@test "mq-send: --help prints the usage on stdout and exits 0" {
	run --separate-stderr mq-send --help
	assert_success
	assert_line --index 0 --regexp '^usage: mq-send .*\[-l \| -0\]'
	for opt in --lines --null --quiet --help --version; do
		assert_output --partial -- "$opt"
	done
	assert_equal "$stderr" ""
}

@test "mq-send: --version prints the program and version" {
	run --separate-stderr mq-send --version
	assert_success
	assert_output --regexp '^mq-send [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-send: --version to a full disk fails with 74" {
	run --separate-stderr bash -c 'mq-send --version >/dev/full'
	assert_failure 74
	assert_equal "$stderr" "mq-send: stdout: No space left on device"
}

@test "mq-send: ids to a full disk: the messages are sent, and it says the ids were not (74)" {
	printf 'one\ntwo\n' >"$BATS_TEST_TMPDIR/two"
	for how in "" -l; do
		run --separate-stderr bash -c "mq-send $how \"\$1\" \"\$2\" >/dev/full" sh "$Q" "$BATS_TEST_TMPDIR/two"
		assert_failure 74
		assert_equal "$stderr" "mq-send: stdout: No space left on device"
	done
	assert_equal "$(mq-recv "$Q")" "$(printf 'one\ntwo')"
	assert_equal "$(mq-recv "$Q")" one
	assert_equal "$(mq-recv "$Q")" two
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-send: max-size counts each byte of a body once, whether or not it is compressed" {
	mq-init --max-size 200k --compress auto "$Q"
	head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/fits"
	head -c 210000 /dev/urandom >"$BATS_TEST_TMPDIR/over"
	run -0 mq-send -q "$Q" "$BATS_TEST_TMPDIR/fits"
	run -65 --separate-stderr mq-send "$Q" "$BATS_TEST_TMPDIR/over"
	assert_equal "$stderr" "mq-send: $BATS_TEST_TMPDIR/over: Larger than the queue's max-size"
	mq-recv -o "$BATS_TEST_TMPDIR/got" "$Q"
	cmp "$BATS_TEST_TMPDIR/fits" "$BATS_TEST_TMPDIR/got"
}

@test "mq-send: a QUEUE ending in a slash names the queue: signed and topic messages are delivered" {
	T=$BATS_TEST_TMPDIR
	mq-keygen "$T/k"
	# The header records the queue's name, which a signature covers and
	# a subscriber checks a topic's copy against: "q/" is q.
	run -0 mq-send -q -s "$T/k.key" "$Q/" <<<signed
	run -0 grep -x "queue: ${Q##*/}" "$Q"/new/*/*
	run -0 mq-recv "$Q/"
	assert_output signed
	mq-init --subscribe "$T/topic" "$T/sub"
	run -0 mq-send -q "$T/topic//" <<<fanned
	run -0 mq-recv "$T/sub"
	assert_output fanned
	assert_equal "$(find "$Q/quarantine" "$T/sub/quarantine" -mindepth 1)" ""
}

@test "mq-send: --at after 2262 is refused (64), not delivered at once" {
	for at in 10000000000 99999999999999999999 9999-12-31T00:00Z; do
		run --separate-stderr mq-send --at "$at" "$Q" <<<later
		assert_failure 64
		assert_output ""
		assert_equal "$stderr" "mq-send: --at: out of range (1677 to 2262): $at"
	done
	id=$(mq-send --at 2262-04-11T00:00Z "$Q" <<<latest)
	assert_equal "$(ls "$Q/delay")" "9223286400000000000.$id.0"
	run mq-recv "$Q"
	assert_failure 1
}
