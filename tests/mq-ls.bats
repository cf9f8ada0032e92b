#!/usr/bin/env bats
load helpers/common
load helpers/readonly

setup() { setup_mq; }

teardown() {
	bg_cleanup
	ro_cleanup
}

# Send and print the id of a message with body $1, with headers $2...
send() {
	local body=$1 h args=()
	shift
	for h in "$@"; do args+=(-H "$h"); done
	printf '%s' "$body" | mq-send "${args[@]}" "$Q"
}

# Claim the next message for a minute; print its receipt.
claim() { mq-recv -L 60 -o /dev/null "$Q"; }

# A queue with a message in every state, sent in this order:
#   $quar        damaged, found by a consumer and moved to quarantine
#   $inflight    claimed, not settled           (header who=in)
#   $delayed     released with a delay of 1h
#   $dead        failed                          (header who=dead)
#   $ready1, $ready2  ready, in that order     (headers on ready1)
populate() {
	quar=$(send 'cut short')
	truncate -s -3 "$(ready_file "$quar")"
	inflight=$(send in who=in)
	run --separate-stderr claim
	assert_success
	assert_equal "${output%%.*}" "$inflight"
	delayed=$(send later)
	r=$(claim)
	mq-ack --retry -d 1h "$Q" "$r"
	dead=$(send poison who=dead)
	r=$(claim)
	mq-ack --fail "$Q" "$r"
	ready1=$(send first order-id=1 customer=acme)
	ready2=$(send second)
}

json_fields() {
	if command -v jq >/dev/null; then
		local filter k sep=""
		filter="fromjson | ["
		for k in "$@"; do filter+="$sep.$k"; sep=","; done
		filter+='] | map(tostring) | join(" ")'
		jq -R -r "$filter"
	else
		python3 -c 'import json,sys
for l in sys.stdin:
    o = json.loads(l)
    print(" ".join(json.dumps(o[k], separators=(",", ":")) if isinstance(o[k], dict) else str(o[k]) for k in sys.argv[1:]))' "$@"
	fi
}

# The headers object of each JSON line, compact.
json_headers() {
	if command -v jq >/dev/null; then
		jq -R -c 'fromjson | .headers'
	else
		python3 -c 'import json,sys
for l in sys.stdin:
    print(json.dumps(json.loads(l)["headers"], separators=(",", ":")))'
	fi
}

@test "mq-ls: an empty queue lists nothing" {
	run --separate-stderr mq-ls "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run --separate-stderr mq-ls --json "$Q"
	assert_success
	assert_output ""
}

@test "mq-ls: one line per message: ready in FIFO order, then delayed, inflight, dead, quarantine" {
	populate 2>/dev/null
	run --separate-stderr mq-ls "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 6
	n='[0-9]+ +[0-9]+s'
	assert_line --index 0 --regexp "^$ready1 ready +$n +0 order-id=1 customer=acme\$"
	assert_line --index 1 --regexp "^$ready2 ready +$n +0\$"
	assert_line --index 2 --regexp "^$delayed delayed +$n +1\$"
	assert_line --index 3 --regexp "^$inflight inflight +$n +1 who=in\$"
	assert_line --index 4 --regexp "^$dead dead +$n +1 \\(failed\\) who=dead\$"
	assert_line --index 5 --regexp "^$quar quarantine +$n +0 \\(Damaged message file\\)\$"
	# The size is that of the file.
	size=$(stat -c %s "$(ready_file "$ready1")")
	assert_line --index 0 --regexp "^$ready1 ready +$size "
}

@test "mq-ls: listing a queue reads each message once, not the queue once per message" {
	command -v strace >/dev/null || skip "strace is not installed"
	seq 1 1000 | mq-send -q -l "$Q"
	# LeakSanitizer cannot run under ptrace.
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 strace -f -qq \
	    -o "$BATS_TEST_TMPDIR/trace" -e trace=openat,newfstatat,getdents64 \
	    mq-ls "$Q" >"$BATS_TEST_TMPDIR/out"
	assert_equal "$(wc -l <"$BATS_TEST_TMPDIR/out")" 1000
	calls=$(wc -l <"$BATS_TEST_TMPDIR/trace")
	# Each message was looked up by a walk of the whole queue: a
	# million calls for these thousand.
	[ "$calls" -lt 5000 ] || fail "$calls calls to list 1000 messages"
}

@test "mq-ls: --state lists only that state" {
	populate 2>/dev/null
	for st in ready delayed inflight dead quarantine; do
		run --separate-stderr mq-ls --state "$st" "$Q"
		assert_success
		assert_equal "$stderr" ""
		assert_equal "$(awk '{ print $2 }' <<<"$output" | sort -u)" "$st"
	done
	run mq-ls --state ready "$Q"
	assert_equal "$(awk '{ print $1 }' <<<"$output")" "$ready1
$ready2"
	run mq-ls -s dead "$Q"
	assert_output --regexp "^$dead dead "
	run mq-ls --state inflight "$Q"
	assert_equal "${#lines[@]}" 1
}

@test "mq-ls: --json is one object per message with the documented keys" {
	populate 2>/dev/null
	run --separate-stderr mq-ls --json "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 6
	if command -v python3 >/dev/null; then
		python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <<<"$output"
	fi
	assert_equal "$(json_fields id state attempts <<<"$output")" \
	    "$ready1 ready 0
$ready2 ready 0
$delayed delayed 1
$inflight inflight 1
$dead dead 1
$quar quarantine 0"
	assert_equal "$(json_headers <<<"$output")" \
	    '{"order-id":"1","customer":"acme"}
{}
{}
{"who":"in"}
{"who":"dead"}
{}'
	path=$(ready_file "$ready1")
	assert_equal "$(json_fields path <<<"${lines[0]}")" "${path#"$Q/"}"
	assert_equal "$(json_fields path reason <<<"${lines[4]}")" \
	    "dead/$dead.1.failed failed"
	assert_equal "$(json_fields reason <<<"${lines[5]}")" "Damaged message file"
	size=$(stat -c %s "$Q/dead/$dead.1.failed")
	assert_equal "$(json_fields size <<<"${lines[4]}")" "$size"
	# age_s to the millisecond; no reason key where there is none.
	assert_line --index 0 --regexp '"age_s":[0-9]+\.[0-9]{3},'
	refute_line --index 0 --partial '"reason"'
}

@test "mq-ls: --json with --state filters too" {
	populate 2>/dev/null
	run --separate-stderr mq-ls --json --state dead "$Q"
	assert_success
	assert_equal "$(json_fields id state <<<"$output")" "$dead dead"
}

@test "mq-ls: --json escapes header values" {
	id=$(send x 'note=say "hi"\back')
	run mq-ls --json "$Q"
	assert_success
	if command -v jq >/dev/null; then
		assert_equal "$(jq -R -r 'fromjson | .headers.note' <<<"$output")" 'say "hi"\back'
	fi
}

@test "mq-ls: the age is the time since the message was sent" {
	id=$(send old)
	touch -d "@$(( $(date +%s) - 5 * 3600 ))" "$(ready_file "$id")"
	run mq-ls "$Q"
	assert_output --regexp "^$id ready +[0-9]+ +5h +0\$"
}

@test "mq-ls: a file in quarantine without an id is listed with -" {
	send real >/dev/null
	echo junk >"$Q/new/junk"
	mq-fsck --fix "$Q" >/dev/null || true
	run mq-ls --state quarantine "$Q"
	assert_success
	assert_output --regexp '^- +quarantine +5 +[0-9]+s +0 \(Damaged message file\)$'
	run mq-ls --json --state quarantine "$Q"
	assert_equal "$(json_fields id state <<<"$output")" " quarantine"
}

@test "mq-ls: --show prints id, state, attempts, headers, a blank line and the body, and claims nothing" {
	populate 2>/dev/null
	before=$(snapshot)
	mq-ls --show "$ready1" "$Q" >"$BATS_TEST_TMPDIR/out"
	printf 'id: %s\nstate: ready\nattempts: 0\norder-id: 1\ncustomer: acme\n\nfirst' \
	    "$ready1" >"$BATS_TEST_TMPDIR/want"
	cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/out"
	assert_equal "$(snapshot)" "$before"
	# Still ready, and received first.
	run mq-ls --state ready "$Q"
	assert_line --index 0 --regexp "^$ready1 ready "
	run mq-recv "$Q" -- sh -c 'echo "$MQ_ID $MQ_ATTEMPT"; cat'
	assert_success
	assert_output "$ready1 1
first"
}

@test "mq-ls: --show finds a message in every state but quarantine" {
	populate 2>/dev/null
	run --separate-stderr mq-ls --show "$dead" "$Q"
	assert_success
	assert_output "id: $dead
state: dead
attempts: 1
who: dead

poison"
	run mq-ls --show "$delayed" "$Q"
	assert_success
	assert_line --index 1 "state: delayed"
	assert_line --index 2 "attempts: 1"
	run mq-ls --show "$inflight" "$Q"
	assert_success
	assert_line --index 1 "state: inflight"
	assert_line --index 3 "who: in"
	run --separate-stderr mq-ls --show "$quar" "$Q"
	assert_failure 66
	assert_equal "$stderr" "mq-ls: $quar: No such file or directory"
}

@test "mq-ls: --show keeps a binary body byte for byte, compressed or not" {
	b="$BATS_TEST_TMPDIR/body"
	{ printf 'a\0b\n'; head -c 40000 /dev/urandom; } >"$b"
	id=$(mq-send "$Q" "$b")
	mq-ls --show "$id" "$Q" >"$BATS_TEST_TMPDIR/out"
	tail -c +"$(( $(printf 'id: %s\nstate: ready\nattempts: 0\n\n' "$id" | wc -c) + 1 ))" \
	    "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/got"
	cmp "$b" "$BATS_TEST_TMPDIR/got"
	seq 1 5000 >"$BATS_TEST_TMPDIR/text"
	id=$(mq-send -z "$Q" "$BATS_TEST_TMPDIR/text")
	mq-ls --show "$id" "$Q" | sed '1,/^$/d' >"$BATS_TEST_TMPDIR/got"
	cmp "$BATS_TEST_TMPDIR/text" "$BATS_TEST_TMPDIR/got"
}

@test "mq-ls: --show with a bad id exits 65" {
	send x >/dev/null
	for bad in zz 00000100000000 00000100000000000 0000010000000000X 00000100000000AB; do
		run --separate-stderr mq-ls --show "$bad" "$Q"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "mq-ls: $bad: Not a message id"
	done
}

@test "mq-ls: --show with an unknown id exits 66" {
	send x >/dev/null
	run --separate-stderr mq-ls --show 00000100000000ff "$Q"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-ls: 00000100000000ff: No such file or directory"
}

@test "mq-ls: listing changes nothing in the queue" {
	populate 2>/dev/null
	before=$(tree_snapshot "$Q")
	mq-ls "$Q" >/dev/null
	mq-ls --json "$Q" >/dev/null
	mq-ls --state dead "$Q" >/dev/null
	mq-ls --show "$dead" "$Q" >/dev/null
	assert_equal "$(tree_snapshot "$Q")" "$before"
}

@test "mq-ls: a user who may only read the queue can list and show, and changes nothing" {
	ro_setup
	Q="$RO_DIR/orders"
	mq-init -m 2750 -g "$RO_GROUP" "$Q"
	populate 2>/dev/null
	before=$(tree_snapshot "$Q")
	run --separate-stderr as_ro mq-recv "$Q"
	assert_failure 77
	run --separate-stderr as_ro mq-ls "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 6
	assert_line --index 0 --regexp "^$ready1 ready .* order-id=1 customer=acme\$"
	assert_line --index 4 --regexp "^$dead dead .* \\(failed\\) who=dead\$"
	run --separate-stderr as_ro mq-ls --json "$Q"
	assert_success
	assert_equal "${#lines[@]}" 6
	run --separate-stderr as_ro mq-ls --show "$ready1" "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_output "id: $ready1
state: ready
attempts: 0
order-id: 1
customer: acme

first"
	assert_equal "$(tree_snapshot "$Q")" "$before"
}

@test "mq-ls: a missing queue exits 66" {
	run --separate-stderr mq-ls "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-ls: $BATS_TEST_TMPDIR/nope: No such file or directory"
	run --separate-stderr mq-ls --show 0000010000000000 "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_equal "$stderr" "mq-ls: $BATS_TEST_TMPDIR/nope: No such file or directory"
}

@test "mq-ls: --state bogus exits 64" {
	run --separate-stderr mq-ls --state bogus "$Q"
	assert_failure 64
	assert_output ""
	assert_equal "$stderr" "mq-ls: --state: unknown state: bogus (ready, delayed, inflight, dead, quarantine)"
	run --separate-stderr mq-ls --state all "$Q"
	assert_failure 64
}

@test "mq-ls: usage errors exit 64" {
	usage=$(usage_of mq-ls)
	assert_equal "$usage" "usage: mq-ls [--state STATE] [--json] QUEUE
       mq-ls --show ID [--key KEY] QUEUE"
	id=$(send x)
	run --separate-stderr mq-ls
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ls "$Q" "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ls --show "$id" --json "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ls --show "$id" --state ready "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-ls --key "$BATS_TEST_TMPDIR/k" "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	assert_output ""
}

@test "mq-ls: --help and --version" {
	run --separate-stderr mq-ls --help
	assert_success
	assert_line --index 0 'usage: mq-ls [--state STATE] [--json] QUEUE'
	for opt in --state --json --show --key --help --version; do
		assert_output --partial -- "$opt"
	done
	run --separate-stderr mq-ls --version
	assert_success
	assert_output --regexp '^mq-ls [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-ls: a failed write to stdout exits 74" {
	send x >/dev/null
	run --separate-stderr bash -c 'mq-ls "$1" >/dev/full' _ "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-ls: stdout: No space left on device"
}
