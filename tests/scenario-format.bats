#!/usr/bin/env bats
# Message format v1 (mq-queue(5)) end to end: every combination of
# compression, signing and sealing comes back byte for byte through every
# way of receiving; every kind of damage or forgery is quarantined, never
# delivered, and does not hold up the messages behind it.
#
# Messages are tampered with in place using dd, so the tests need nothing
# beyond coreutils.
load helpers/common

setup_file() {
	local top
	top="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
	PATH="$top/${MQ_BIN:-build/bin}:$PATH"
	# Key pairs made once for the whole file: alice produces, bob
	# consumes sealed bodies, mallory is nobody's friend.  trusted/ is a
	# directory of trusted keys holding alice's only.
	export K="$BATS_FILE_TMPDIR/keys"
	mkdir -p "$K/trusted"
	for n in alice bob mallory; do
		mq-keygen "$K/$n"
	done
	cp "$K/alice.pub" "$K/trusted/"
	# Bodies: empty, binary with NULs and every byte value, and a few MB
	# half text, half random.
	export B="$BATS_FILE_TMPDIR/bodies"
	mkdir -p "$B"
	: >"$B/empty"
	{
		printf 'a\0b\0\0\377\r\n\0'
		for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done
		head -c 8192 /dev/urandom
		printf '\0'
	} >"$B/binary"
	{ seq 1 250000; head -c 1M /dev/urandom; seq 1 1000; } >"$B/big"
}

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	# mq-watch's log lines are matched below in their plain form.
	unset JOURNAL_STREAM
}

teardown() { bg_cleanup; }

# ---- reading and editing message files in place -------------------------

# body_at FILE: offset of the first body byte (just after the blank line).
body_at() {
	LC_ALL=C awk '{ n += length($0) + 1 } $0 == "" { print n; exit }' "$1"
}

# header_keys FILE: the keys of the header lines, in order, on one line.
header_keys() {
	LC_ALL=C sed -n '/^$/q; 2,$s/:.*//p' "$1" | tr '\n' ' '
}

# header FILE KEY: the value of one header line.
header() {
	LC_ALL=C sed -n "/^\$/q; s/^$2: //p" "$1"
}

# put FILE OFFSET TEXT: overwrite bytes at OFFSET with TEXT, in place.
put() {
	printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# byte_at FILE OFFSET: the value of one byte, in decimal.
byte_at() {
	dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' '
}

# flip FILE OFFSET: invert the lowest bit of one byte, in place.
flip() {
	local b
	b=$(byte_at "$1" "$2")
	[ -n "$b" ] || { echo "flip: no byte at $2 in $1" >&2; return 1; }
	printf "\\$(printf %03o $((b ^ 1)))" |
	    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# set_header FILE KEY VALUE: replace a header value by one of the same
# width, so nothing else in the file moves.
set_header() {
	local line old off
	line=$(LC_ALL=C grep -a -b -m1 "^$2: " "$1") ||
	    { echo "set_header: no $2 in $1" >&2; return 1; }
	off=$(( ${line%%:*} + ${#2} + 2 ))
	old=${line#*:}
	old=${old#"$2: "}
	[ "${#old}" -eq "${#3}" ] ||
	    { echo "set_header: '$3' is not as wide as '$old'" >&2; return 1; }
	put "$1" "$off" "$3"
}

# sig_at FILE: offset of the base64 signature in the 94-byte trailer.
sig_at() { echo $(( $(stat -c %s "$1") - 94 + 5 )); }

# ---- what consumers see ------------------------------------------------

# assert_quarantined ID REASON: ID was moved to quarantine/ exactly once
# with REASON as its sidecar, and is no longer ready or leased.
assert_quarantined() {
	local id=$1 reason=$2 q=${3:-$Q} f
	f=$(find "$q/quarantine" -type f -name "*.$id.*" ! -name '*.reason')
	if [ -z "$f" ] || [ "$(echo "$f" | wc -l)" -ne 1 ]; then
		echo "expected one quarantined file for $id, found: '$f'" >&2
		ls -la "$q/quarantine" >&2
		return 1
	fi
	[[ $(basename "$f") =~ ^[0-9]+\.$id\.[0-9] ]] ||
	    { echo "unexpected quarantine name: $f" >&2; return 1; }
	assert [ -f "$f.reason" ]
	assert_equal "$(cat "$f.reason")" "$reason"
	assert_equal "$(find "$q/new" "$q/cur" -name "$id.*" | wc -l)" 0
}

# quarantine_count [QUEUE]: messages (not sidecars) in quarantine/.
quarantine_count() {
	find "${1:-$Q}/quarantine" -type f ! -name '*.reason' | wc -l
}

# said TEXT PREFIX ID REASON [QUEUE]: some line of TEXT reports that ID
# went to quarantine for REASON, starting with PREFIX (a glob) and QUEUE.
said() {
	local line q=${5:-$Q}
	while IFS= read -r line; do
		# shellcheck disable=SC2053
		[[ $line == $2": $q: $3."*": $4: moved to quarantine" ]] && return 0
	done <<<"$1"
	echo "no quarantine line for $3 ($4) in:" >&2
	echo "$1" >&2
	return 1
}

# assert_empty_queue: nothing ready, leased or quarantined.
assert_empty_queue() {
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(quarantine_count)" 0
}

# roundtrip BODY KEYS: send BODY with "${send[@]}", check the stored
# header has exactly KEYS, and receive it with "${recv[@]}" four ways:
# popped to standard output, popped to -o FILE, as a handler's standard
# input, and from mq-watch's stream (body, then a newline).  Each copy
# must be BODY byte for byte, and nothing may be left behind.
roundtrip() {
	local body=$1 keys=$2 out="$T/out" way id f st
	for way in pop file exec watch; do
		id=$(mq-send "${send[@]}" "$Q" "$body")
		f=$(ready_file "$id")
		[ "$(header_keys "$f")" = "$keys" ] || {
			echo "$way $(basename "$body"): header has" \
			    "'$(header_keys "$f")', want '$keys'" >&2
			return 1
		}
		rm -f "$out"
		st=0
		case $way in
		pop) mq-recv "${recv[@]}" "$Q" >"$out" || st=$? ;;
		file) mq-recv "${recv[@]}" -o "$out" "$Q" || st=$? ;;
		exec) mq-recv "${recv[@]}" "$Q" -- sh -c 'exec cat >"$0"' \
		    "$out" || st=$? ;;
		watch) timeout 30 mq-watch --drain "${recv[@]}" "$Q" \
		    >"$out.stream" || st=$?
		    { cat "$body"; echo; } | cmp -s - "$out.stream" &&
			cp "$body" "$out" ;;
		esac
		[ "$st" -eq 0 ] ||
		    { echo "$way $(basename "$body"): exit $st" >&2; return 1; }
		cmp "$body" "$out" ||
		    { echo "$way $(basename "$body"): body differs" >&2; return 1; }
		assert_empty_queue
	done
}

# The header keys of each combination, in the order they are written.
KEYS_PLAIN="id time queue size "
KEYS_Z="id time queue size raw-size compression "
KEYS_S="id time queue size signer "
KEYS_SEAL="id time queue size raw-size sealed-to seal-key seal-header "

# ---- round trips -------------------------------------------------------

@test "format: plain bodies round-trip byte for byte through every receiver" {
	send=()
	recv=()
	for b in empty binary big; do
		roundtrip "$B/$b" "$KEYS_PLAIN"
	done
}

@test "format: -z bodies round-trip byte for byte through every receiver" {
	send=(-z)
	recv=()
	for b in empty binary big; do
		roundtrip "$B/$b" "$KEYS_Z"
	done
}

@test "format: -s signed bodies round-trip byte for byte through every receiver" {
	send=(-s "$K/alice.key")
	recv=(--verify "$K/alice.pub")
	for b in empty binary big; do
		roundtrip "$B/$b" "$KEYS_S"
	done
}

@test "format: --seal-to bodies round-trip byte for byte through every receiver" {
	send=(--seal-to "$K/bob.pub")
	recv=(--key "$K/bob.key")
	for b in empty binary big; do
		roundtrip "$B/$b" "$KEYS_SEAL"
	done
}

@test "format: -z -s bodies round-trip byte for byte through every receiver" {
	send=(-z -s "$K/alice.key")
	recv=(--verify "$K/trusted")
	for b in empty binary big; do
		roundtrip "$B/$b" "id time queue size raw-size compression signer "
	done
}

@test "format: -z --seal-to bodies round-trip byte for byte through every receiver" {
	send=(-z --seal-to "$K/bob.pub")
	recv=(--key "$K/bob.key")
	for b in empty binary big; do
		roundtrip "$B/$b" "id time queue size raw-size compression sealed-to seal-key seal-header "
	done
}

@test "format: -s --seal-to bodies round-trip byte for byte through every receiver" {
	send=(-s "$K/alice.key" --seal-to "$K/bob.pub")
	recv=(--verify "$K/alice.pub" --key "$K/bob.key")
	for b in empty binary big; do
		roundtrip "$B/$b" "id time queue size raw-size sealed-to seal-key seal-header signer "
	done
}

@test "format: -z -s --seal-to with headers round-trip byte for byte through every receiver" {
	send=(-z -s "$K/alice.key" --seal-to "$K/bob.pub" -H order=42 -H X-Trace=a:b)
	recv=(--verify "$K/alice.pub" --key "$K/bob.key")
	for b in empty binary big; do
		roundtrip "$B/$b" "id time queue size raw-size compression sealed-to seal-key seal-header signer h-order h-X-Trace "
	done
}

@test "format: a signed message reaches a consumer that trusts no key" {
	echo "signed" | mq-send -q -s "$K/alice.key" "$Q"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output "signed"
	assert_equal "$stderr" ""
}

@test "format: a plain message is readable text: mq/1, metadata, headers, blank line, body" {
	id=$(printf 'hello\n' | mq-send -H customer-id=7 -H note='two words' "$Q")
	f=$(ready_file "$id")
	run cat "$f"
	assert_line --index 0 "mq/1"
	assert_line --index 1 "id: $id"
	assert_line --index 2 --regexp '^time: [0-9]{19}$'
	assert_line --index 3 "queue: q"
	assert_line --index 4 "size: 00000000000000000006"
	assert_line --index 5 "h-customer-id: 7"
	assert_line --index 6 "h-note: two words"
	assert_line --index 7 "hello"
	assert_equal "${#lines[@]}" 8
	# The blank line that ends the header, then the body as sent.
	assert_equal "$(tail -c +"$(( $(body_at "$f") + 1 ))" "$f")" "hello"
	assert_equal "$(head -c "$(body_at "$f")" "$f" | tail -c 2 | od -An -c | tr -d ' ')" '\n\n'
	# The time is when it was sent, in nanoseconds.
	t=$(header "$f" time)
	assert [ $(( $(now_ns) - t )) -lt 60000000000 ]
	assert [ $(( $(now_ns) - t )) -ge 0 ]
}

# ---- compression -------------------------------------------------------

@test "format: -z shrinks a compressible body on disk" {
	yes "a line of a compressible log" | head -c 1000000 >"$T/log"
	id=$(mq-send -z "$Q" "$T/log")
	f=$(ready_file "$id")
	assert_equal "$(header "$f" compression)" deflate
	assert_equal "$(header "$f" raw-size)" 00000000000001000000
	size=$(stat -c %s "$f")
	assert [ "$size" -lt 20000 ]
	assert_equal "$(( 10#$(header "$f" size) + $(body_at "$f") ))" "$size"
	# Without -z the same body is stored as it is.
	id2=$(mq-send "$Q" "$T/log")
	f2=$(ready_file "$id2")
	assert_equal "$(header "$f2" compression)" ""
	assert [ "$(stat -c %s "$f2")" -gt 1000000 ]
	mq-recv -o "$T/out" "$Q"
	cmp "$T/log" "$T/out"
	mq-recv -o "$T/out" "$Q"
	cmp "$T/log" "$T/out"
}

@test "format: compress = auto compresses a large compressible body, not a small or random one" {
	echo "compress = auto" >>"$Q/config"
	seq 1 100000 >"$T/large"
	printf 'short and sweet\n' >"$T/small"
	head -c 200000 /dev/urandom >"$T/random"
	yes a | head -c 600 >"$T/medium"
	for b in large small random medium; do
		ids[${#ids[@]}]=$(mq-send "$Q" "$T/$b")
	done
	f=$(ready_file "${ids[0]}")
	assert_equal "$(header "$f" compression)" deflate
	assert [ "$(stat -c %s "$f")" -lt $(( $(stat -c %s "$T/large") / 2 )) ]
	for i in 1 2 3; do
		f=$(ready_file "${ids[$i]}")
		assert_equal "$(header_keys "$f")" "$KEYS_PLAIN"
	done
	# Below compress-min (1024 by default) a body stays plain, however
	# well it would compress; lowering the threshold changes that.
	echo "compress-min = 100" >>"$Q/config"
	id=$(mq-send "$Q" "$T/medium")
	assert_equal "$(header "$(ready_file "$id")" compression)" deflate
	for b in large small random medium medium; do
		mq-recv -o "$T/out" "$Q"
		cmp "$T/$b" "$T/out"
	done
	assert_empty_queue
}

@test "format: a 1 GiB compressible body round-trips with -z in bounded memory" {
	# About 10 s on either build: deflate and inflate run in zlib, which
	# ASan does not instrument, so the ASan build is not much slower.
	timed=0 tsend=() trecv=()
	if [ -x /usr/bin/time ]; then
		timed=1
		tsend=(/usr/bin/time -f %M -o "$T/send.rss")
		trecv=(/usr/bin/time -f %M -o "$T/recv.rss")
	fi
	run bash -c 'set -o pipefail
	    head -c 1G /dev/zero | "${@:2}" mq-send -z "$1"' _ "$Q" "${tsend[@]}"
	assert_success
	id=$output
	f=$(ready_file "$id")
	assert_equal "$(header "$f" raw-size)" 00000000001073741824
	assert [ "$(stat -c %s "$f")" -lt 4000000 ]
	run bash -c 'set -o pipefail
	    "${@:2}" mq-recv "$1" | cmp - <(head -c 1G /dev/zero)' _ "$Q" \
	    "${trecv[@]}"
	assert_success
	assert_empty_queue
	[ "$timed" = 1 ] || skip "no /usr/bin/time: memory not measured"
	# Maximum resident set size, in KiB: a few fixed buffers, not 1 GiB.
	for w in send recv; do
		kb=$(tail -n 1 "$T/$w.rss")
		echo "# $w: max RSS $kb KiB" >&3
		assert [ "$kb" -lt 20480 ]
	done
}

# ---- tampering with signed messages --------------------------------------

@test "format: a signed message with one body byte flipped is quarantined, the next delivered" {
	bad=$(echo "pay bob 10 EUR" | mq-send -s "$K/alice.key" "$Q")
	echo "next" | mq-send -q -s "$K/alice.key" "$Q"
	f=$(ready_file "$bad")
	flip "$f" $(( $(body_at "$f") + 8 ))
	run --separate-stderr mq-recv --verify "$K/alice.pub" -o "$T/out" "$Q"
	assert_success
	assert_equal "$(cat "$T/out")" next
	said "$stderr" mq-recv "$bad" "Bad signature"
	assert_quarantined "$bad" "Bad signature"
	run mq-recv --verify "$K/alice.pub" "$Q"
	assert_failure 1
	assert_output ""
}

@test "format: a signed message with a header value changed is quarantined, the next delivered" {
	for key_value in "h-order:43" "queue:r" "time:2"; do
		bad=$(echo "order 42" | mq-send -H order=42 -s "$K/alice.key" "$Q")
		echo "next" | mq-send -q -s "$K/alice.key" "$Q"
		f=$(ready_file "$bad")
		key=${key_value%%:*}
		old=$(header "$f" "$key")
		new=${key_value#*:}
		# Same width: only the first characters change.
		set_header "$f" "$key" "$new${old:${#new}}"
		run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
		assert_success
		assert_output next
		said "$stderr" mq-recv "$bad" "Bad signature"
		assert_quarantined "$bad" "Bad signature"
	done
	assert_equal "$(ready_count)" 0
}

@test "format: a signed message with its signature altered is quarantined, the next delivered" {
	bad=$(echo "hello" | mq-send -s "$K/alice.key" "$Q")
	echo "next" | mq-send -q -s "$K/alice.key" "$Q"
	f=$(ready_file "$bad")
	at=$(( $(sig_at "$f") + 10 ))
	# Another valid base64 character, so the trailer still decodes.
	if [ "$(byte_at "$f" "$at")" = 65 ]; then put "$f" "$at" B; else put "$f" "$at" A; fi
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$bad" "Bad signature"
	assert_quarantined "$bad" "Bad signature"
}

@test "format: a signed message whose trailer lost its newline is quarantined" {
	for c in X ' ' =; do
		bad=$(echo "hello" | mq-send -s "$K/alice.key" "$Q")
		echo "next" | mq-send -q -s "$K/alice.key" "$Q"
		f=$(ready_file "$bad")
		put "$f" $(( $(stat -c %s "$f") - 1 )) "$c"
		run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
		assert_success
		assert_output next
		said "$stderr" mq-recv "$bad" "Damaged message file"
		assert_quarantined "$bad" "Damaged message file"
		rm -f "$Q"/quarantine/*
	done
}

@test "format: a truncated signed message is quarantined, the next delivered" {
	yes "some body text" | head -c 5000 >"$T/body"
	for cut in 1 94 2000; do
		bad=$(mq-send -s "$K/alice.key" "$Q" "$T/body")
		echo "next" | mq-send -q -s "$K/alice.key" "$Q"
		f=$(ready_file "$bad")
		truncate -s "-$cut" "$f"
		run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
		assert_success
		assert_output next
		said "$stderr" mq-recv "$bad" "Damaged message file"
		assert_quarantined "$bad" "Damaged message file"
	done
}

@test "format: a signed message stripped of its signature is refused as unsigned" {
	bad=$(echo "hello" | mq-send -s "$K/alice.key" "$Q")
	echo "next" | mq-send -q -s "$K/alice.key" "$Q"
	f=$(ready_file "$bad")
	# Drop the signer line and the trailer; the size stays right.
	{ head -c "$(body_at "$f")" "$f" | grep -v '^signer: '
	  head -c -94 "$f" | tail -c +"$(( $(body_at "$f") + 1 ))"; } >"$T/stripped"
	cat "$T/stripped" >"$f"
	assert_equal "$(header_keys "$f")" "$KEYS_PLAIN"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$bad" "Unsigned, and signatures are required"
	assert_quarantined "$bad" "Unsigned, and signatures are required"
}

@test "format: two signed messages with their bodies swapped are both quarantined" {
	a=$(printf 'pay carol 100' | mq-send -s "$K/alice.key" "$Q")
	b=$(printf 'pay dave  999' | mq-send -s "$K/alice.key" "$Q")
	echo "next" | mq-send -q -s "$K/alice.key" "$Q"
	fa=$(ready_file "$a")
	fb=$(ready_file "$b")
	put "$fa" "$(body_at "$fa")" 'pay dave  999'
	put "$fb" "$(body_at "$fb")" 'pay carol 100'
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$a" "Bad signature"
	said "$stderr" mq-recv "$b" "Bad signature"
	assert_quarantined "$a" "Bad signature"
	assert_quarantined "$b" "Bad signature"
}

@test "format: two signed messages with body and signature swapped are both quarantined" {
	a=$(printf 'pay carol 100' | mq-send -s "$K/alice.key" "$Q")
	b=$(printf 'pay dave  999' | mq-send -s "$K/alice.key" "$Q")
	echo "next" | mq-send -q "$Q"
	fa=$(ready_file "$a")
	fb=$(ready_file "$b")
	tail -c +"$(( $(body_at "$fa") + 1 ))" "$fa" >"$T/tail-a"
	tail -c +"$(( $(body_at "$fb") + 1 ))" "$fb" >"$T/tail-b"
	dd if="$T/tail-b" of="$fa" bs=1 seek="$(body_at "$fa")" conv=notrunc status=none
	dd if="$T/tail-a" of="$fb" bs=1 seek="$(body_at "$fb")" conv=notrunc status=none
	# No --verify: a signed message is checked all the same.
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$a" "Bad signature"
	said "$stderr" mq-recv "$b" "Bad signature"
	assert_quarantined "$a" "Bad signature"
	assert_quarantined "$b" "Bad signature"
}

@test "format: a signed message copied into another queue under its name is quarantined there" {
	O="$T/other"
	mq-init "$O"
	id=$(echo "for q only" | mq-send -s "$K/alice.key" "$Q")
	# Use up the same id in the other queue, then plant the copy there
	# under its original name, where a real message of that id was.
	assert_equal "$(echo placeholder | mq-send "$O")" "$id"
	mq-recv "$O" >/dev/null
	mkdir -p "$O/new/$(basename "$(bucket_of "$id")")"
	cp "$(ready_file "$id")" "$O/new/$(basename "$(bucket_of "$id")")/$id.0"
	echo "next" | mq-send -q -s "$K/alice.key" "$O"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$O"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$id" "Signed for another queue" "$O"
	assert_quarantined "$id" "Signed for another queue" "$O"
	# The original is untouched and still good in its own queue.
	run mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output "for q only"
}

@test "format: a signed message copied into another queue under that queue's id is quarantined" {
	O="$T/other"
	mq-init "$O"
	echo filler | mq-send -q "$Q"
	id=$(echo "for q only" | mq-send -s "$K/alice.key" "$Q")
	# The other queue's next id, taken by a placeholder whose file the
	# copy replaces.
	slot=$(echo placeholder | mq-send "$O")
	assert [ "$slot" != "$id" ]
	cat "$(ready_file "$id")" >"$(ready_file "$slot" "$O")"
	echo "next" | mq-send -q -s "$K/alice.key" "$O"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$O"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$slot" "Damaged message file" "$O"
	assert_quarantined "$slot" "Damaged message file" "$O"
}

@test "format: a signed message duplicated in its queue under another id is delivered once" {
	id=$(echo "pay once" | mq-send -s "$K/alice.key" "$Q")
	dup=$(echo placeholder | mq-send "$Q")
	echo "next" | mq-send -q -s "$K/alice.key" "$Q"
	cp "$(ready_file "$id")" "$(ready_file "$dup")"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output "pay once"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$dup" "Damaged message file"
	assert_quarantined "$dup" "Damaged message file"
	run mq-recv --verify "$K/alice.pub" "$Q"
	assert_failure 1
}

@test "format: an unsigned message is quarantined by a consumer with --verify" {
	bad=$(echo "unsigned" | mq-send "$Q")
	echo "signed" | mq-send -q -s "$K/alice.key" "$Q"
	run --separate-stderr mq-recv --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output signed
	said "$stderr" mq-recv "$bad" "Unsigned, and signatures are required"
	assert_quarantined "$bad" "Unsigned, and signatures are required"
}

@test "format: a message signed by an unknown key is quarantined, --verify FILE or DIR" {
	for trust in "$K/alice.pub" "$K/trusted"; do
		bad=$(echo "from mallory" | mq-send -s "$K/mallory.key" "$Q")
		echo "from alice" | mq-send -q -s "$K/alice.key" "$Q"
		run --separate-stderr mq-recv --verify "$trust" "$Q"
		assert_success
		assert_output "from alice"
		said "$stderr" mq-recv "$bad" "Signed by a key that is not trusted"
		assert_quarantined "$bad" "Signed by a key that is not trusted"
	done
	# --verify is repeatable: trusting mallory too lets hers through.
	echo "from mallory" | mq-send -q -s "$K/mallory.key" "$Q"
	run mq-recv --verify "$K/trusted" --verify "$K/mallory.pub" "$Q"
	assert_success
	assert_output "from mallory"
}

@test "format: mq-watch --verify quarantines unsigned and unknown signers and goes on" {
	u=$(echo "unsigned" | mq-send "$Q")
	m=$(echo "from mallory" | mq-send -s "$K/mallory.key" "$Q")
	echo "from alice" | mq-send -q -s "$K/alice.key" "$Q"
	run --separate-stderr timeout 30 mq-watch --drain --verify "$K/alice.pub" "$Q"
	assert_success
	assert_output "from alice"
	said "$stderr" "*mq-watch" "$u" "Unsigned, and signatures are required"
	said "$stderr" "*mq-watch" "$m" "Signed by a key that is not trusted"
	assert_quarantined "$u" "Unsigned, and signatures are required"
	assert_quarantined "$m" "Signed by a key that is not trusted"
}

@test "format: require-signature and trusted-keys in the config bind every consumer" {
	printf '%s\n' "require-signature = yes" "trusted-keys = $K/trusted" >>"$Q/config"
	# send_three TAG: an unsigned, an untrusted and a good message.
	send_three() {
		ids=$(echo "u-$1" | mq-send "$Q"; echo "m-$1" | mq-send -s "$K/mallory.key" "$Q")
		echo "a-$1" | mq-send -q -s "$K/alice.key" "$Q"
	}
	check_refused() {
		local u m
		u=$(echo "$ids" | head -n 1)
		m=$(echo "$ids" | tail -n 1)
		said "$stderr" "$1" "$u" "Unsigned, and signatures are required"
		said "$stderr" "$1" "$m" "Signed by a key that is not trusted"
		assert_quarantined "$u" "Unsigned, and signatures are required"
		assert_quarantined "$m" "Signed by a key that is not trusted"
	}

	send_three pop
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output a-pop
	check_refused mq-recv

	send_three exec
	run --separate-stderr mq-recv "$Q" -- sh -c 'cat; echo ran >>"$0"' "$T/ran"
	assert_success
	assert_output a-exec
	assert_equal "$(cat "$T/ran")" ran
	check_refused mq-recv

	send_three stream
	run --separate-stderr timeout 30 mq-watch --drain "$Q"
	assert_success
	assert_output a-stream
	check_refused "*mq-watch"

	send_three handler
	run --separate-stderr timeout 30 mq-watch --drain "$Q" -- sh -c 'cat >>"$0"' "$T/handled"
	assert_success
	assert_equal "$(cat "$T/handled")" a-handler
	check_refused "*mq-watch"

	assert_equal "$(quarantine_count)" 8
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "format: require-signature = yes without trusted keys trusts no signer" {
	echo "require-signature = yes" >>"$Q/config"
	bad=$(echo "unsigned" | mq-send "$Q")
	forged=$(echo "signed by anyone" | mq-send -s "$K/alice.key" "$Q")
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	assert_quarantined "$bad" "Unsigned, and signatures are required"
	assert_quarantined "$forged" "Signed by a key that is not trusted"
}

@test "format: --verify or trusted-keys naming a directory with no key in it trusts no signer" {
	mkdir "$T/nokeys"
	for how in verify config; do
		bad=$(echo "unsigned" | mq-send "$Q")
		forged=$(echo "signed by anyone" | mq-send -s "$K/mallory.key" "$Q")
		if [ "$how" = verify ]; then
			run --separate-stderr mq-recv --verify "$T/nokeys" "$Q"
		else
			echo "trusted-keys = $T/nokeys" >>"$Q/config"
			run --separate-stderr mq-recv "$Q"
		fi
		assert_failure 1
		assert_output ""
		assert_quarantined "$bad" "Unsigned, and signatures are required"
		assert_quarantined "$forged" "Signed by a key that is not trusted"
	done
}

@test "format: trusted-keys may name one .pub file" {
	echo "trusted-keys = $K/alice.pub" >>"$Q/config"
	m=$(echo "from mallory" | mq-send -s "$K/mallory.key" "$Q")
	echo "from alice" | mq-send -q -s "$K/alice.key" "$Q"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output "from alice"
	said "$stderr" mq-recv "$m" "Signed by a key that is not trusted"
	assert_quarantined "$m" "Signed by a key that is not trusted"
}

@test "format: a quarantined message is not delivered to -o FILE and says no message" {
	bad=$(echo "unsigned" | mq-send "$Q")
	run --separate-stderr mq-recv --verify "$K/alice.pub" -o "$T/out" "$Q"
	assert_failure 1
	assert_output ""
	assert [ ! -e "$T/out" ]
	said "$stderr" mq-recv "$bad" "Unsigned, and signatures are required"
	assert_quarantined "$bad" "Unsigned, and signatures are required"
	# Quarantine is never cleaned up automatically.
	mq-recv "$Q" || true
	assert_equal "$(quarantine_count)" 1
}

# ---- sealed bodies -------------------------------------------------------

@test "format: a sealed body leaves no readable plaintext on disk" {
	for i in $(seq 1 2000); do echo "TOP-SECRET-PAYLOAD line $i"; done >"$T/secret"
	id=$(mq-send -H customer=acme --seal-to "$K/bob.pub" "$Q" "$T/secret")
	f=$(ready_file "$id")
	run grep -r -a -c TOP-SECRET "$Q"
	assert_failure 1
	run grep -r -a -c 'line 1999' "$Q"
	assert_failure 1
	# Metadata stays readable; the body is the secretstream of the text.
	assert_equal "$(header "$f" h-customer)" acme
	assert_equal "$(header "$f" sealed-to)" "$(cut -d' ' -f2 "$K/bob.pub")"
	assert_equal "$(( 10#$(header "$f" raw-size) ))" "$(stat -c %s "$T/secret")"
	mq-recv --key "$K/bob.key" -o "$T/out" "$Q"
	cmp "$T/secret" "$T/out"
}

@test "format: a sealed message is left in new/ for a consumer without the key" {
	id=$(echo "for bob" | mq-send --seal-to "$K/bob.pub" "$Q")
	echo "plain" | mq-send -q "$Q"
	# No key: the plain message behind it is delivered, the sealed one
	# is neither claimed nor quarantined.
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output plain
	assert_equal "$stderr" ""
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	assert_equal "$stderr" ""
	assert [ -f "$(ready_file "$id")" ]
	assert_equal "$(quarantine_count)" 0
	run --separate-stderr mq-recv "$Q" -- sh -c 'echo ran >"$0"' "$T/ran"
	assert_failure 1
	assert [ ! -e "$T/ran" ]
	run --separate-stderr timeout 30 mq-watch --drain "$Q"
	assert_success
	assert_output ""
	# Never claimed: its attempt count is still 0.
	assert_equal "$(basename "$(ready_file "$id")")" "$id.0"
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(quarantine_count)" 0
	# The wrong key is no better than none.
	run --separate-stderr mq-recv --key "$K/mallory.key" "$Q"
	assert_failure 1
	assert_output ""
	assert [ -f "$(ready_file "$id")" ]
	run mq-recv --key "$K/bob.key" "$Q"
	assert_success
	assert_output "for bob"
}

@test "format: a sealed message readdressed to another key cannot be opened by it" {
	id=$(echo "for bob" | mq-send --seal-to "$K/bob.pub" "$Q")
	echo "next" | mq-send -q --seal-to "$K/mallory.pub" "$Q"
	f=$(ready_file "$id")
	set_header "$f" sealed-to "$(cut -d' ' -f2 "$K/mallory.pub")"
	run --separate-stderr mq-recv --key "$K/mallory.key" "$Q"
	assert_success
	assert_output next
	refute_output --partial "for bob"
	said "$stderr" mq-recv "$id" "Damaged message file"
	assert_quarantined "$id" "Damaged message file"
}

@test "format: a damaged sealed body is quarantined, the next delivered" {
	head -c 200000 /dev/urandom >"$T/body"
	flipped=$(mq-send --seal-to "$K/bob.pub" "$Q" "$T/body")
	cut=$(mq-send --seal-to "$K/bob.pub" "$Q" "$T/body")
	echo "next" | mq-send -q --seal-to "$K/bob.pub" "$Q"
	f=$(ready_file "$flipped")
	flip "$f" $(( $(body_at "$f") + 100000 ))
	# Cut at the end of the first 64 KiB chunk and fix the size, so only
	# the missing final chunk gives it away.
	f=$(ready_file "$cut")
	at=$(body_at "$f")
	truncate -s $(( at + 65536 + 17 )) "$f"
	set_header "$f" size "$(printf %020d $(( 65536 + 17 )))"
	run --separate-stderr mq-recv --key "$K/bob.key" "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$flipped" "Damaged message file"
	said "$stderr" mq-recv "$cut" "Damaged message file"
	assert_quarantined "$flipped" "Damaged message file"
	assert_quarantined "$cut" "Damaged message file"
}

@test "format: a damaged compressed body is quarantined, the next delivered" {
	seq 1 100000 >"$T/body"
	bad=$(mq-send -z "$Q" "$T/body")
	echo "next" | mq-send -q -z "$Q"
	f=$(ready_file "$bad")
	flip "$f" $(( $(body_at "$f") + 1000 ))
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$bad" "Damaged message file"
	assert_quarantined "$bad" "Damaged message file"
}

@test "format: key in the queue config opens sealed bodies for every consumer" {
	echo "key = $K/bob.key" >>"$Q/config"
	echo "one" | mq-send -q --seal-to "$K/bob.pub" "$Q"
	echo "two" | mq-send -q -z --seal-to "$K/bob.pub" "$Q"
	echo "three" | mq-send -q --seal-to "$K/bob.pub" "$Q"
	run mq-recv "$Q"
	assert_output one
	run mq-recv "$Q" -- cat
	assert_output two
	run timeout 30 mq-watch --drain "$Q"
	assert_success
	assert_output three
}

@test "format: mq-watch --key opens sealed bodies, in stream and handler mode" {
	echo "one" | mq-send -q --seal-to "$K/bob.pub" "$Q"
	run --separate-stderr timeout 30 mq-watch --drain --key "$K/bob.key" "$Q"
	assert_success
	assert_output one
	echo "two" | mq-send -q --seal-to "$K/bob.pub" "$Q"
	run --separate-stderr timeout 30 mq-watch --drain --key "$K/bob.key" "$Q" -- cat
	assert_success
	assert_output two
}

# ---- key files ----------------------------------------------------------

@test "format: a secret key readable by others is refused with exit 78" {
	cp "$K/alice.key" "$T/alice.key"
	for mode in 644 640 604; do
		chmod "$mode" "$T/alice.key"
		run --separate-stderr mq-send -s "$T/alice.key" "$Q" <<<"x"
		assert_failure 78
		assert_output ""
		assert_equal "$stderr" "mq-send: $T/alice.key: Secret key is readable by others (chmod 600)"
	done
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
	echo "x" | mq-send -q --seal-to "$K/alice.pub" "$Q"
	run --separate-stderr mq-recv --key "$T/alice.key" "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-recv: $T/alice.key: Secret key is readable by others (chmod 600)"
	run --separate-stderr timeout 30 mq-watch --drain --key "$T/alice.key" "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-watch: $T/alice.key: Secret key is readable by others (chmod 600)"
	assert_equal "$(count_in "$Q" new)" 1
}

@test "format: a public key given as a secret key is not an mq key file" {
	cp "$K/alice.pub" "$T/private.pub"
	chmod 600 "$T/private.pub"
	run --separate-stderr mq-send -s "$T/private.pub" "$Q" <<<"x"
	assert_failure 78
	assert_equal "$stderr" "mq-send: $T/private.pub: Not an mq key file"
	# A .pub as it is made (0644) is no secret key either: the advice to
	# chmod it would be wrong.
	run --separate-stderr mq-send -s "$K/alice.pub" "$Q" <<<"x"
	assert_failure 78
	assert_equal "$stderr" "mq-send: $K/alice.pub: Not an mq key file"
	run --separate-stderr mq-recv --key "$K/bob.pub" "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-recv: $K/bob.pub: Not an mq key file"
	# And the other way round.
	run --separate-stderr mq-send --seal-to "$K/bob.key" "$Q" <<<"x"
	assert_failure 78
	assert_equal "$stderr" "mq-send: $K/bob.key: Not an mq key file"
	run --separate-stderr mq-recv --verify "$K/alice.key" "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-recv: $K/alice.key: Not an mq key file"
	echo "garbage" >"$T/garbage.pub"
	run --separate-stderr mq-send --seal-to "$T/garbage.pub" "$Q" <<<"x"
	assert_failure 78
	assert_equal "$stderr" "mq-send: $T/garbage.pub: Not an mq key file"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
}

@test "format: a missing key file exits 66 naming it" {
	run --separate-stderr mq-send -s "$T/none.key" "$Q" <<<"x"
	assert_failure 66
	assert_equal "$stderr" "mq-send: $T/none.key: No such file or directory"
	run --separate-stderr mq-recv --verify "$T/none.pub" "$Q"
	assert_failure 66
	assert_equal "$stderr" "mq-recv: $T/none.pub: No such file or directory"
	assert_equal "$(count_in "$Q" new)" 0
}

# ---- headers ------------------------------------------------------------

@test "format: invalid header names and values are refused with exit 65, nothing sent" {
	for h in "=v" "a b=v" "a_b=v" "a.b=v" "$(printf 'a%.0s' $(seq 65))=v" \
	    $'a=line\nbreak' $'a=tab\there' $'a=del\x7f' $'a=esc\x1b[0m'; do
		run --separate-stderr mq-send -H "$h" "$Q" <<<"body"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "mq-send: $Q: Header name or value not allowed"
	done
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
	# Headers must fit in the 4096-byte message header.
	run --separate-stderr mq-send -H "a=$(printf 'v%.0s' $(seq 5000))" "$Q" <<<"body"
	assert_failure 65
	assert_equal "$stderr" "mq-send: $Q: Header name or value not allowed"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
	# 64 characters is the longest name allowed.
	run mq-send -H "$(printf 'a%.0s' $(seq 64))=v" "$Q" <<<"body"
	assert_success
}

@test "format: two headers differing only in case are refused" {
	for pair in "Order=1 order=2" "order=1 order=1" "X-Id=1 x-ID=2"; do
		set -- $pair
		run --separate-stderr mq-send -H "$1" -H "$2" "$Q" <<<"body"
		assert_failure 65
		assert_equal "$stderr" "mq-send: $Q: Header name or value not allowed"
	done
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
}

@test "format: -H without '=' is a usage error" {
	run --separate-stderr mq-send -H order "$Q" <<<"body"
	assert_failure 64
	assert_equal "$stderr" "mq-send: -H: expected NAME=VALUE: order"
	assert_equal "$(count_in "$Q" new)" 0
}

@test "format: handlers get headers as MQ_H_ variables, in mq-recv and mq-watch" {
	handler='printf "%s|%s|%s|%s|%s\n" "$MQ_H_CUSTOMER_ID" "$MQ_H_X_TRACE_ID" "$MQ_H_NOTE" "${MQ_H_EMPTY-unset}" "$MQ_H_CITY"'
	send() {
		mq-send -q -H customer-id=7 -H X-Trace-ID=a=b -H note='two  words: yes' \
		    -H empty= -H city=Zürich "$@" "$Q" <<<"body"
	}
	send
	run --separate-stderr mq-recv "$Q" -- sh -c "$handler"
	assert_success
	assert_output "7|a=b|two  words: yes||Zürich"
	send -z -s "$K/alice.key" --seal-to "$K/bob.pub"
	run --separate-stderr mq-recv --key "$K/bob.key" "$Q" -- sh -c "$handler"
	assert_success
	assert_output "7|a=b|two  words: yes||Zürich"
	send
	run --separate-stderr timeout 30 mq-watch --drain "$Q" -- sh -c "$handler"
	assert_success
	assert_output "7|a=b|two  words: yes||Zürich"
}

@test "format: a handler sees only its own message's MQ_H_ variables" {
	echo "x" | mq-send -q -H customer-id=7 "$Q"
	# As when a handler of one queue runs a consumer of another.
	run --separate-stderr env MQ_H_PRIORITY=urgent MQ_H_CUSTOMER_ID=1 \
	    mq-recv "$Q" -- sh -c 'env | grep "^MQ_H_" | sort'
	assert_success
	assert_output "MQ_H_CUSTOMER_ID=7"
}

@test "format: mq-recv -H prints the headers, a blank line, then the body" {
	mq-send -q -H customer-id=7 -H note='a: b' "$Q" "$B/binary"
	run --separate-stderr bash -c 'mq-recv -H "$1" >"$2"' _ "$Q" "$T/out"
	assert_success
	{ printf 'customer-id: 7\nnote: a: b\n\n'; cat "$B/binary"; } | cmp - "$T/out"
	# Headers stay readable on sealed and compressed messages.
	echo "sealed" | mq-send -q -z -s "$K/alice.key" --seal-to "$K/bob.pub" -H order=42 "$Q"
	run --separate-stderr mq-recv -H --key "$K/bob.key" "$Q"
	assert_success
	assert_output $'order: 42\n\nsealed'
	# No headers: just the blank line.
	echo "bare" | mq-send -q "$Q"
	run mq-recv --headers "$Q"
	assert_output $'\nbare'
}

# planted_line_quarantined AFTER LINE [OPTION...]: a message sent with
# the options, LINE (backslash escapes as in printf %b) planted in its
# header after line AFTER, goes to quarantine/ and the message behind it
# is delivered.
planted_line_quarantined() {
	local after=$1 line=$2 id f
	shift 2
	id=$(echo "body" | mq-send "$@" "$Q")
	echo "next" | mq-send -q "$Q"
	f=$(ready_file "$id")
	{ head -n "$after" "$f"; printf '%b\n' "$line"; tail -n +"$((after + 1))" "$f"; } >"$T/edited"
	cat "$T/edited" >"$f"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$id" "Damaged message file"
	assert_quarantined "$id" "Damaged message file"
}

@test "format: a planted message with an invalid header line is quarantined" {
	for line in "h-a_b: 1" "h-a=b: 1" "h-a b: 1" "h-: 1" "x-other: 1" "size 5" "id: 1"; do
		planted_line_quarantined 5 "$line"
	done
}

@test "format: a planted message with a header repeated, in any case, is quarantined" {
	for line in "h-order: 2" "h-ORDER: 2" "h-Order: 1"; do
		planted_line_quarantined 6 "$line" -H order=1
	done
}

@test "format: a planted group or header value with a control character or CRLF is quarantined" {
	long=$(printf 'g%.0s' $(seq 129))
	for line in 'h-a: 1\r' 'h-a: x\033[2Jy' 'h-a: x\0y' 'group: g\001x' \
	    'group: g\r' "group: $long"; do
		planted_line_quarantined 5 "$line"
	done
	# At most 128 characters, as mq-send -g allows.
	id=$(echo "body" | mq-send -g "${long%g}" "$Q")
	run mq-recv "$Q"
	assert_success
	assert_output body
}

# ---- format version, garbage, limits ------------------------------------

@test "format: an unknown format version is quarantined, the next delivered" {
	id=$(echo "from the future" | mq-send "$Q")
	echo "next" | mq-send -q "$Q"
	f=$(ready_file "$id")
	put "$f" 0 "mq/2"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output next
	refute_output --partial "future"
	said "$stderr" mq-recv "$id" "Unknown message format version"
	assert_quarantined "$id" "Unknown message format version"
}

@test "format: garbage and empty files in new/ are quarantined, the next delivered" {
	for content in garbage empty random; do
		id=$(echo "body" | mq-send "$Q")
		echo "next" | mq-send -q "$Q"
		f=$(ready_file "$id")
		case $content in
		garbage) echo "hello, I am not a message" >"$f" ;;
		empty) : >"$f" ;;
		random) head -c 3000 /dev/urandom >"$f" ;;
		esac
		run --separate-stderr mq-recv "$Q"
		assert_success
		assert_output next
		said "$stderr" mq-recv "$id" "Damaged message file"
		assert_quarantined "$id" "Damaged message file"
	done
}

@test "format: max-size refuses an oversized send with exit 65 and leaves nothing" {
	echo "max-size = 1k" >>"$Q/config"
	head -c 1025 /dev/zero >"$T/big"
	head -c 1024 /dev/zero >"$T/fits"
	run --separate-stderr mq-send "$Q" "$T/big"
	assert_failure 65
	assert_output ""
	assert_equal "$stderr" "mq-send: $T/big: Larger than the queue's max-size"
	run --separate-stderr mq-send "$Q" <"$T/big"
	assert_failure 65
	assert_equal "$stderr" "mq-send: stdin: Larger than the queue's max-size"
	# The limit is on the body as sent, however well it compresses.
	head -c 1M /dev/zero >"$T/zeros"
	run --separate-stderr mq-send -z -s "$K/alice.key" "$Q" "$T/zeros"
	assert_failure 65
	assert_equal "$stderr" "mq-send: $T/zeros: Larger than the queue's max-size"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
	run mq-send -q "$Q" "$T/fits"
	assert_success
	mq-recv -o "$T/out" "$Q"
	cmp "$T/fits" "$T/out"
}

@test "format: max-size quarantines a larger message already in the queue" {
	big=$(head -c 5000 /dev/zero | mq-send "$Q")
	bomb=$(head -c 1M /dev/zero | mq-send -z "$Q")
	echo "next" | mq-send -q "$Q"
	echo "max-size = 4k" >>"$Q/config"
	run --separate-stderr mq-recv "$Q"
	assert_success
	assert_output next
	said "$stderr" mq-recv "$big" "Larger than the queue's max-size"
	said "$stderr" mq-recv "$bomb" "Larger than the queue's max-size"
	assert_quarantined "$big" "Larger than the queue's max-size"
	assert_quarantined "$bomb" "Larger than the queue's max-size"
}

@test "format: a compression bomb understating its raw-size is quarantined" {
	bomb=$(head -c 100M /dev/zero | mq-send -z "$Q")
	liar=$(seq 1 10000 | mq-send -z "$Q")
	echo "next" | mq-send -q "$Q"
	f=$(ready_file "$bomb")
	assert_equal "$(header "$f" raw-size)" 00000000000104857600
	set_header "$f" raw-size 00000000000000001000
	# Overstating it is as wrong as understating.
	f=$(ready_file "$liar")
	set_header "$f" raw-size 00000000000000099999
	run --separate-stderr mq-recv -o "$T/out" "$Q"
	assert_success
	assert_equal "$(cat "$T/out")" next
	said "$stderr" mq-recv "$bomb" "Damaged message file"
	said "$stderr" mq-recv "$liar" "Damaged message file"
	assert_quarantined "$bomb" "Damaged message file"
	assert_quarantined "$liar" "Damaged message file"
}
