#!/usr/bin/env bats
load helpers/common
load helpers/readonly

setup() { setup_mq; }

teardown() {
	bg_cleanup
	ro_cleanup
}

# Send and print the id of a message with body $1 to queue ${2:-$Q}.
send() { printf '%s' "$1" | mq-send "${2:-$Q}"; }

# Claim the next message of ${1:-$Q} for a minute; print its receipt.
claim() { mq-recv -L 60 -o /dev/null "${1:-$Q}"; }

# json_fields KEY...: for each JSON object on stdin, one per line, print
# the values of KEYs separated by spaces.  Each line must parse on its
# own.  jq when installed, else python3.
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
    print(" ".join(str(int(o[k])) if isinstance(o[k], float) and o[k].is_integer() else str(o[k]) for k in sys.argv[1:]))' "$@"
	fi
}

# The keys of each JSON line on stdin, in order, comma-separated.
json_keys() {
	if command -v jq >/dev/null; then
		jq -R -r 'fromjson | keys_unsorted | join(",")'
	else
		python3 -c 'import json,sys
for l in sys.stdin:
    print(",".join(json.loads(l).keys()))'
	fi
}

# Counts "ready delayed inflight dead quarantine" of ${1:-$Q} by --json.
json_counts() {
	mq-stat --json "${1:-$Q}" | json_fields ready delayed inflight dead quarantine
}

# The same from the table: fields 2-6 of the one data line.
table_counts() {
	mq-stat "${1:-$Q}" | awk 'NR == 2 { print $2, $3, $4, $5, $6 }'
}

# The same from --prom: the mq_messages samples in state order.
prom_counts() {
	local out s line
	out=$(mq-stat --prom "${1:-$Q}")
	for s in ready delayed inflight dead quarantine; do
		line=$(grep -F "mq_messages{queue=\"$(basename "${1:-$Q}")\",state=\"$s\"} " <<<"$out")
		printf '%s ' "${line##* }"
	done | sed 's/ $//'
}

# The states mq-ls lists, counted, in the order of json_counts.
ls_counts() {
	mq-ls "${1:-$Q}" | awk '{ n[$2]++ } END {
	    print n["ready"] + 0, n["delayed"] + 0, n["inflight"] + 0,
	    n["dead"] + 0, n["quarantine"] + 0 }'
}

# assert_counts READY DELAYED INFLIGHT DEAD QUARANTINE: in all three
# formats, as mq-ls lists them, with --bytes too, and the bytes --bytes
# reports are those of the message files.
assert_counts() {
	local want="$*" bytes
	assert_equal "$(json_counts)" "$want"
	assert_equal "$(table_counts)" "$want"
	assert_equal "$(prom_counts)" "$want"
	assert_equal "$(ls_counts)" "$want"
	bytes=$(find "$Q/new" "$Q/delay" "$Q/cur" "$Q/dead" "$Q/quarantine" \
	    -mindepth 1 ! -type d ! -name '*.reason' -printf '%s\n' |
	    awk '{ n += $1 } END { print n + 0 }')
	assert_equal "$(mq-stat --bytes --json "$Q" |
	    json_fields ready delayed inflight dead quarantine bytes)" \
	    "$want $bytes"
}

# Check the Prometheus text exposition format of file $1: every sample
# line has the form of an mq sample, every metric has # HELP and # TYPE
# lines before its first sample, and a metric's samples are together.
check_prom() {
	local line name prev="" n=0
	declare -A help=() type=() finished=()
	while IFS= read -r line; do
		case $line in
		"# HELP "*)
			name=${line#\# HELP }; name=${name%% *}
			help[$name]=1 ;;
		"# TYPE "*)
			name=${line#\# TYPE }; name=${name%% *}
			[[ $line =~ ^#\ TYPE\ [a-z_]+\ gauge$ ]] ||
			    { echo "bad TYPE line: $line" >&2; return 1; }
			type[$name]=1 ;;
		*)
			[[ $line =~ ^mq_[a-z_]+\{queue=\"[^\"]*\"(,state=\"[a-z]+\")?\}\ [0-9.]+$ ]] ||
			    { echo "bad sample line: $line" >&2; return 1; }
			name=${line%%\{*}
			[ -n "${help[$name]:-}" ] && [ -n "${type[$name]:-}" ] ||
			    { echo "no HELP/TYPE before: $line" >&2; return 1; }
			if [ "$name" != "$prev" ]; then
				[ -z "${finished[$name]:-}" ] ||
				    { echo "$name samples split: $line" >&2; return 1; }
				[ -n "$prev" ] && finished[$prev]=1
				prev=$name
			fi
			n=$((n + 1)) ;;
		esac
	done <"$1"
	[ "$n" -gt 0 ] || { echo "no samples" >&2; return 1; }
}

@test "mq-stat: an empty queue counts zero everywhere" {
	assert_counts 0 0 0 0 0
	run --separate-stderr mq-stat --json "$Q"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "$(json_fields oldest_age_s oldest_lease_s <<<"$output")" "0 0"
	run mq-stat "$Q"
	assert_line --index 1 --regexp '^q +0 +0 +0 +0 +0 +- +-$'
	run mq-stat --bytes "$Q"
	assert_line --index 1 --regexp '^q +0 +0 +0 +0 +0 +0 +- +-$'
}

@test "mq-stat: counts right after send, claim, ack, delayed retry, fail and quarantine" {
	send one >/dev/null
	assert_counts 1 0 0 0 0

	r=$(claim)
	assert_counts 0 0 1 0 0

	mq-ack "$Q" "$r"
	assert_counts 0 0 0 0 0

	send two >/dev/null
	send three >/dev/null
	assert_counts 2 0 0 0 0
	r=$(claim)
	assert_counts 1 0 1 0 0
	mq-ack --retry -d 1h "$Q" "$r"
	assert_counts 1 1 0 0 0

	r=$(claim)
	assert_counts 0 1 1 0 0
	mq-ack --fail "$Q" "$r"
	assert_counts 0 1 0 1 0

	# A damaged file, found by a consumer, is counted in quarantine and
	# nowhere else.
	id=$(send 'to be cut short')
	truncate -s -4 "$(ready_file "$id")"
	assert_counts 1 1 0 1 0
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_equal "$(quarantined | wc -l)" 1
	assert_counts 0 1 0 1 1

	# A plain retry puts the message back in ready.
	send four >/dev/null
	r=$(claim)
	assert_counts 0 1 1 1 1
	mq-ack --retry "$Q" "$r"
	assert_counts 1 1 0 1 1
}

@test "mq-stat: --json is one object per queue with the documented keys in order" {
	mq-init "$MQ_ROOT/other"
	send a >/dev/null
	send b "$MQ_ROOT/other" >/dev/null
	claim "$MQ_ROOT/other" >/dev/null
	run --separate-stderr mq-stat --json "$Q" "$MQ_ROOT/other"
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 2
	assert_equal "$(json_keys <<<"$output" | sort -u)" \
	    "queue,path,ready,delayed,inflight,dead,quarantine,oldest_age_s,oldest_lease_s"
	# The bytes only when asked for, between the counts and the ages.
	run --separate-stderr mq-stat --json -b "$Q" "$MQ_ROOT/other"
	assert_success
	assert_equal "$(json_keys <<<"$output" | sort -u)" \
	    "queue,path,ready,delayed,inflight,dead,quarantine,bytes,oldest_age_s,oldest_lease_s"
	assert_equal "$(json_fields queue path ready inflight <<<"$output")" \
	    "q $Q 1 0
other $MQ_ROOT/other 0 1"
	# Ages are numbers, to the millisecond.
	assert_line --index 0 --regexp '"oldest_age_s":[0-9]+\.[0-9]{3},"oldest_lease_s":0\.000\}$'
	assert_line --index 1 --regexp '"oldest_age_s":0\.000,"oldest_lease_s":[0-9]+\.[0-9]{3}\}$'
	if command -v python3 >/dev/null; then
		python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <<<"$output"
	fi
}

@test "mq-stat: --json escapes a queue name that needs it" {
	q2="$BATS_TEST_TMPDIR/we\"ird\\name"
	mq-init "$q2"
	send x "$q2" >/dev/null
	run --separate-stderr mq-stat --json "$q2"
	assert_success
	assert_equal "$(json_fields queue ready <<<"$output")" "we\"ird\\name 1"
}

@test "mq-stat: --prom is well-formed exposition text with a sample per state" {
	mq-init "$MQ_ROOT/other"
	send a >/dev/null
	send b >/dev/null
	r=$(claim)
	mq-ack --fail "$Q" "$r"
	send c "$MQ_ROOT/other" >/dev/null
	# Without --bytes, no mq_bytes metric at all.
	mq-stat --prom "$Q" "$MQ_ROOT/other" >"$BATS_TEST_TMPDIR/prom"
	run check_prom "$BATS_TEST_TMPDIR/prom"
	assert_success
	run grep -c mq_bytes "$BATS_TEST_TMPDIR/prom"
	assert_output 0
	mq-stat --prom --bytes "$Q" "$MQ_ROOT/other" >"$BATS_TEST_TMPDIR/prom"
	run check_prom "$BATS_TEST_TMPDIR/prom"
	assert_success
	if command -v promtool >/dev/null; then
		run promtool check metrics <"$BATS_TEST_TMPDIR/prom"
		assert_success
	fi
	run grep -c '^mq_messages{' "$BATS_TEST_TMPDIR/prom"
	assert_output 10
	run grep '^mq_messages{queue="q",' "$BATS_TEST_TMPDIR/prom"
	assert_output 'mq_messages{queue="q",state="ready"} 1
mq_messages{queue="q",state="delayed"} 0
mq_messages{queue="q",state="inflight"} 0
mq_messages{queue="q",state="dead"} 1
mq_messages{queue="q",state="quarantine"} 0'
	run grep '^mq_messages{queue="other",state="ready"} ' "$BATS_TEST_TMPDIR/prom"
	assert_output 'mq_messages{queue="other",state="ready"} 1'
	for m in mq_bytes mq_oldest_ready_age_seconds mq_oldest_lease_age_seconds; do
		assert_equal "$(grep -c "^$m{queue=\"[a-z]*\"} " "$BATS_TEST_TMPDIR/prom")" 2
	done
	bytes=$(find "$Q/new" "$Q/dead" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
	run grep '^mq_bytes{queue="q"} ' "$BATS_TEST_TMPDIR/prom"
	assert_output "mq_bytes{queue=\"q\"} $bytes"
}

@test "mq-stat: an MQ_ROOT without queues prints nothing and exits 0" {
	mkdir -p "$MQ_ROOT/not-a-queue"
	run --separate-stderr mq-stat
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run --separate-stderr mq-stat --json
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
}

@test "mq-stat: --prom of an empty root is still well-formed" {
	mkdir -p "$MQ_ROOT"
	run --separate-stderr mq-stat --prom
	assert_success
	assert_equal "$stderr" ""
	refute_output --regexp '^mq_'
}

@test "mq-stat: the age of the oldest ready message is the oldest mtime of its bucket" {
	a=$(send older)
	b=$(send newer)
	run mq-stat --json "$Q"
	age=$(json_fields oldest_age_s <<<"$output")
	assert [ "${age%.*}" -lt 60 ]
	# Make the second message look sent an hour ago: the oldest is
	# now that one, whatever the order of ids.
	touch -d "@$(( $(date +%s) - 3600 ))" "$(ready_file "$b")"
	run mq-stat --json "$Q"
	age=$(json_fields oldest_age_s <<<"$output")
	assert [ "${age%.*}" -ge 3600 ]
	assert [ "${age%.*}" -lt 3660 ]
	run mq-stat "$Q"
	assert_line --index 1 --regexp '^q +2 +0 +0 +0 +0 +60m +-$'
	run mq-stat --prom "$Q"
	assert_line --regexp '^mq_oldest_ready_age_seconds\{queue="q"\} 36[0-5][0-9]\.[0-9]{3}$'
	touch -d "@$(( $(date +%s) - 3 * 86400 ))" "$(ready_file "$a")"
	run mq-stat "$Q"
	assert_line --index 1 --regexp '^q +2 +0 +0 +0 +0 +3d +-$'
	# The oldest leaves: the age is that of the next.
	mq-recv -o /dev/null "$Q"
	run mq-stat --json "$Q"
	age=$(json_fields oldest_age_s <<<"$output")
	assert [ "${age%.*}" -ge 3600 ]
	assert [ "${age%.*}" -lt 3660 ]
}

@test "mq-stat: counts from names agree with mq-ls over several buckets and every state" {
	seq 1 2500 | mq-send -q -l "$Q"
	seq 1 30 | mq-send -q -l -p 7 "$Q"
	seq 1 5 | mq-send -q -l -d 1h "$Q"
	for i in 1 2 3; do claim >/dev/null; done
	r=$(claim)
	mq-ack --fail "$Q" "$r"
	r=$(claim)
	mq-ack --retry -d 1h "$Q" "$r"
	# Buckets hold 1024 ids: the ready messages span at least three,
	# and priority 7 has its own.
	assert [ "$(find "$Q/new" -mindepth 1 -maxdepth 1 -type d | wc -l)" -ge 4 ]
	assert_counts 2525 6 3 1 0
}

@test "mq-stat: the oldest ready message is found in a later bucket and in any priority" {
	seq 1 1500 | mq-send -q -l "$Q"
	age() { mq-stat --json "$Q" | json_fields oldest_age_s; }
	assert [ "$(age | cut -d. -f1)" -lt 60 ]
	# The lowest bucket's messages are all looked at, not only its first
	# (how many it holds depends on how mq-send -l reserved ids).
	oldest=$(find "$Q/new" -mindepth 2 -type f | sort | head -n 1)
	newest=$(find "$Q/new" -mindepth 2 -type f | sort | tail -n 1)
	last=$(dirname "$oldest")/$(ls "$(dirname "$oldest")" | sort | tail -n 1)
	assert [ "$last" != "$oldest" ]
	touch -d "@$(( $(date +%s) - 1800 ))" "$last"
	assert [ "$(age | cut -d. -f1)" -ge 1800 ]
	# The first message of a later bucket: its sender waited longest.
	first=$(dirname "$newest")/$(ls "$(dirname "$newest")" | sort | head -n 1)
	assert [ "$(dirname "$first")" != "$(dirname "$oldest")" ]
	touch -d "@$(( $(date +%s) - 3600 ))" "$first"
	assert [ "$(age | cut -d. -f1)" -ge 3600 ]
	assert [ "$(age | cut -d. -f1)" -lt 3660 ]
	# A message of another priority, in a bucket of its own.
	mq-send -q -p 9 "$Q" </dev/null
	touch -d "@$(( $(date +%s) - 7200 ))" "$(find "$Q/new" -path '*/p9-*' -type f)"
	assert [ "$(age | cut -d. -f1)" -ge 7200 ]
	assert [ "$(age | cut -d. -f1)" -lt 7260 ]
}

@test "mq-stat: the age of the oldest ready message grows as it waits" {
	send waiting >/dev/null
	first=$(mq-stat --json "$Q" | json_fields oldest_age_s)
	grown() {
		local now
		now=$(mq-stat --json "$Q" | json_fields oldest_age_s)
		awk -v a="$first" -v b="$now" 'BEGIN { exit !(b >= a + 1) }'
	}
	wait_for 5 grown
}

@test "mq-stat: the oldest lease is counted from the claim" {
	send a >/dev/null
	claim >/dev/null
	run mq-stat --json "$Q"
	lease=$(json_fields oldest_lease_s <<<"$output")
	assert [ "${lease%.*}" -lt 60 ]
	assert_equal "$(json_fields oldest_age_s <<<"$output")" 0
	run mq-stat "$Q"
	assert_line --index 1 --regexp '^q +0 +0 +1 +0 +0 +- +[0-9]+s$'
}

@test "mq-stat: without QUEUE, every queue under MQ_ROOT in name order" {
	mq-init zeta alpha mid
	send z "$MQ_ROOT/zeta" >/dev/null
	send z "$MQ_ROOT/zeta" >/dev/null
	send a "$MQ_ROOT/alpha" >/dev/null
	# Not queues, or hidden: left out.
	mkdir "$MQ_ROOT/plain-dir" "$MQ_ROOT/.hidden"
	mq-init "$MQ_ROOT/.dotq"
	echo file >"$MQ_ROOT/file"
	run --separate-stderr mq-stat
	assert_success
	assert_equal "$stderr" ""
	assert_equal "${#lines[@]}" 4
	assert_line --index 0 --regexp '^QUEUE +READY +DELAYED +INFLIGHT +DEAD +QUARANTINE +OLDEST +LEASE$'
	assert_line --index 1 --regexp '^alpha +1 '
	assert_line --index 2 --regexp '^mid +0 '
	assert_line --index 3 --regexp '^zeta +2 '
	run mq-stat --json
	assert_equal "$(json_fields queue path ready <<<"$output")" \
	    "alpha $MQ_ROOT/alpha 1
mid $MQ_ROOT/mid 0
zeta $MQ_ROOT/zeta 2"
}

@test "mq-stat: bare queue names are under MQ_ROOT" {
	mq-init work
	send w "$MQ_ROOT/work" >/dev/null
	run mq-stat --json work
	assert_success
	assert_equal "$(json_fields queue path ready <<<"$output")" "work work 1"
}

@test "mq-stat: a missing queue exits 66, named, and the others are still shown" {
	mq-init a b
	send x "$MQ_ROOT/b" >/dev/null
	run --separate-stderr mq-stat a nope b
	assert_failure 66
	assert_equal "$stderr" "mq-stat: nope: No such file or directory"
	assert_equal "${#lines[@]}" 3
	assert_line --index 1 --regexp '^a +0 '
	assert_line --index 2 --regexp '^b +1 '
	run --separate-stderr mq-stat --json a "$BATS_TEST_TMPDIR/gone" b
	assert_failure 66
	assert_equal "$stderr" "mq-stat: $BATS_TEST_TMPDIR/gone: No such file or directory"
	assert_equal "$(json_fields queue ready <<<"$output")" "a 0
b 1"
	run --separate-stderr mq-stat --prom a nope b
	assert_failure 66
	assert_equal "$stderr" "mq-stat: nope: No such file or directory"
	assert_line 'mq_messages{queue="b",state="ready"} 1'
	refute_output --partial 'queue="nope"'
}

@test "mq-stat: a directory that is not a queue exits 66" {
	mkdir "$BATS_TEST_TMPDIR/plain"
	run --separate-stderr mq-stat "$BATS_TEST_TMPDIR/plain"
	assert_failure 66
	assert_output ""
	assert_regex "$stderr" "^mq-stat: $BATS_TEST_TMPDIR/plain: "
}

@test "mq-stat: without QUEUE and without MQ_ROOT exits 66" {
	run --separate-stderr mq-stat
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-stat: $MQ_ROOT: No such file or directory"
}

@test "mq-stat: changes nothing in the queue" {
	send a >/dev/null
	send b >/dev/null
	r=$(claim)
	mq-ack --fail "$Q" "$r"
	send c >/dev/null
	claim >/dev/null
	before=$(tree_snapshot "$Q")
	mq-stat "$Q" >/dev/null
	mq-stat --json "$Q" >/dev/null
	mq-stat --prom "$Q" >/dev/null
	assert_equal "$(tree_snapshot "$Q")" "$before"
}

@test "mq-stat: a user who may only read the queue can count it, and changes nothing" {
	ro_setup
	q="$RO_DIR/orders"
	mq-init -m 2750 -g "$RO_GROUP" "$q"
	send a "$q" >/dev/null
	send b "$q" >/dev/null
	send c "$q" >/dev/null
	r=$(claim "$q")
	mq-ack --fail "$q" "$r"
	r=$(claim "$q")
	mq-ack --retry -d 1h "$q" "$r"
	claim "$q" >/dev/null
	id=$(send d "$q")
	truncate -s -2 "$(ready_file "$id" "$q")"
	mq-fsck --fix "$q" >/dev/null || true
	send e "$q" >/dev/null
	before=$(tree_snapshot "$q")

	# The user really may not write.
	run --separate-stderr as_ro mq-send "$q" </dev/null
	assert_failure 77

	run --separate-stderr as_ro mq-stat "$q"
	assert_success
	assert_equal "$stderr" ""
	assert_line --index 1 --regexp '^orders +1 +1 +1 +1 +1 '
	run --separate-stderr as_ro mq-stat --json "$q"
	assert_success
	assert_equal "$(json_fields ready delayed inflight dead quarantine <<<"$output")" "1 1 1 1 1"
	run --separate-stderr as_ro mq-stat --prom "$q"
	assert_success
	assert_line 'mq_messages{queue="orders",state="quarantine"} 1'
	MQ_ROOT="$RO_DIR" run --separate-stderr as_ro mq-stat --json
	assert_success
	assert_equal "$(json_fields queue ready <<<"$output")" "orders 1"
	run --separate-stderr as_ro mq-ls "$q"
	assert_success
	assert_equal "${#lines[@]}" 5
	assert_equal "$(tree_snapshot "$q")" "$before"
}

@test "mq-stat: a queue it may not read exits 77 and the others are still shown" {
	[ "$(id -u)" -eq 0 ] && skip "root reads everything"
	mq-init a b
	chmod 000 "$MQ_ROOT/a/new"
	run --separate-stderr mq-stat a b
	chmod 700 "$MQ_ROOT/a/new"
	assert_failure 77
	assert_line --regexp '^b +0 '
}

@test "mq-stat: usage errors exit 64" {
	usage=$(usage_of mq-stat)
	assert_equal "$usage" "usage: mq-stat [-b] [--json | --prom] [QUEUE...]"
	run --separate-stderr mq-stat --json --prom "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	assert_output ""
	run --separate-stderr mq-stat --json --json "$Q"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-stat --bogus "$Q"
	assert_failure 64
	assert_equal "$(tail -n 1 <<<"$stderr")" "$(tail -n 1 <<<"$usage")"
}

@test "mq-stat: --help and --version" {
	run --separate-stderr mq-stat --help
	assert_success
	assert_line --index 0 'usage: mq-stat [-b] [--json | --prom] [QUEUE...]'
	for opt in --bytes --json --prom --help --version; do
		assert_output --partial -- "$opt"
	done
	assert_equal "$stderr" ""
	run --separate-stderr mq-stat --version
	assert_success
	assert_output --regexp '^mq-stat [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-stat: a failed write to stdout exits 74" {
	send a >/dev/null
	run --separate-stderr bash -c 'mq-stat "$1" >/dev/full' _ "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-stat: stdout: No space left on device"
}
