#!/usr/bin/env bats
# Hostile inputs (issue 8): what someone with write access to a queue, or
# a careless admin, may leave in it.  Symlinks, FIFOs, devices,
# directories and hard links planted in every state folder and as the
# config and counter; corrupted message files in every state folder;
# hostile ids and receipts.  Every consumer runs under timeout (a FIFO
# must not hang it), must deliver the message behind, never what a link
# points to; nothing outside the queue may change; mq-fsck must report
# what was planted.  tests/mq-recv.bats already covers mq-recv with a
# symlink, FIFO and directory in a bucket, and a symlink as a bucket;
# tests/mq-ack.bats hostile receipt texts; tests/scenario-format.bats
# damaged signed, sealed and compressed bodies, the bomb and max-size.
load helpers/common

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	# Another queue, outside this one, holding a valid message whose id
	# is the first id of any queue: a link to it planted under that
	# name would pass every check but the one that matters.
	O="$T/other"
	mq-init "$O"
	printf SECRET | mq-send -q "$O"
	DECOY=$(find "$O/new" -type f -print -quit)
	DECOY_SUM=$(cksum <"$DECOY")
}
teardown() { bg_cleanup; }

send() { printf '%s' "$1" | mq-send "$Q"; }

# outside_intact: the decoy is where it was, as it was.
outside_intact() {
	assert [ -f "$DECOY" ]
	assert_equal "$(cksum <"$DECOY")" "$DECOY_SUM"
	assert_equal "$(ready_count "$O")" 1
}

# plant KIND PATH: put a KIND at PATH: symlink (to the decoy), fifo,
# dev (a character device like /dev/null), dir (holding a file), hard
# (a hard link to the decoy).
plant() {
	case $1 in
	symlink) ln -s "$DECOY" "$2" ;;
	fifo) mkfifo "$2" ;;
	dev) mknod "$2" c 1 3 2>/dev/null || skip "mknod needs root" ;;
	dir) mkdir "$2" && echo inside >"$2/file" ;;
	hard) ln "$DECOY" "$2" ;;
	esac
}

# gap: send two messages and receive the first, so that a file planted
# under the first one's id sorts before the second ($BEHIND, body
# "behind").  $F is the freed id (the decoy's id too).
gap() {
	F=$(send first)
	BEHIND=$(send behind)
	mq-recv -o /dev/null "$Q"
	assert_equal "$F" "$(basename "$(dirname "$DECOY")")"
}

# planted_at FOLDER: where a planted file is taken for message $F.
planted_at() {
	case $1 in
	bucket) echo "$(bucket_of "$BEHIND")/$F.0" ;;
	cur) echo "$Q/cur/$F.1.l000000000000.0000000000000000001" ;;
	delay) echo "$Q/delay/0000000000000000001.$F.1" ;;
	dead) echo "$Q/dead/$F.1.failed" ;;
	esac
}

# consume FOLDER: receive everything with the consumer chosen for that
# folder (each kind of consumer meets planted files somewhere): the
# bodies on stdout.
consume() {
	case $1 in
	bucket) timeout 10 mq-watch --drain "$Q" ;;
	cur) timeout 10 mq-recv -L 1m -o "$T/body" "$Q" >"$T/receipt" &&
	     cat "$T/body" && mq-ack "$Q" "$(cat "$T/receipt")" ;;
	delay) timeout 10 mq-recv "$Q" -- cat ;;
	dead) timeout 10 mq-redrive "$Q" >/dev/null &&
	      timeout 10 mq-watch --drain "$Q" -- cat ;;
	esac
}

# planted FOLDER KIND: the whole check for one kind in one folder.
planted() {
	local folder=$1 kind=$2 p rel fsck_status fsck_out
	gap
	p=$(planted_at "$folder")
	plant "$kind" "$p"
	rel=${p#"$Q/"}
	run --separate-stderr timeout 10 mq-fsck "$Q"
	fsck_status=$status fsck_out=$output
	run --separate-stderr consume "$folder"
	assert_success
	# Only the real message, never what a link points to.
	assert_output behind
	[[ $stderr != *SECRET* ]] || fail "SECRET in: $stderr"
	outside_intact
	[ "$kind" != dir ] ||
	    assert_equal "$(find "$Q/quarantine" -name file -exec cat {} +)" inside
	# Quarantined, not left where it was, not lost.
	assert [ ! -e "$p" ] && assert [ ! -L "$p" ]
	assert_equal "$(quarantined | grep -c "\\.$F\\.")" 1
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/delay" "$Q/dead" \
	    \( -type f -o -type l -o -type p -o -type c \) | wc -l)" 0
	# mq-fsck told of it before anyone consumed.
	assert_equal "$fsck_status" 1
	[[ $fsck_out == *"$Q: $rel: "* ]] ||
	    fail "mq-fsck did not report $rel: $fsck_out"
	run mq-fsck "$Q"
	assert_success
}

@test "hostile: a device planted in a bucket is quarantined; the message behind flows" {
	planted bucket dev
}

@test "hostile: a hard link to an outside message planted in a bucket is never delivered" {
	planted bucket hard
}

@test "hostile: mq-watch streams past a symlink, a FIFO and a directory planted in buckets" {
	ids=()
	for i in 1 2 3; do
		ids+=("$(send "m$i")")
		send "behind$i" >/dev/null
	done
	b=$(bucket_of "${ids[0]}")
	for id in "${ids[@]}"; do rm -f "$b/$id.0"; done
	ln -s "$DECOY" "$b/${ids[0]}.0"
	mkfifo "$b/${ids[1]}.0"
	mkdir "$b/${ids[2]}.0"
	echo inside >"$b/${ids[2]}.0/file"
	run --separate-stderr timeout 10 mq-watch --drain "$Q"
	assert_success
	assert_output "$(printf 'behind1\nbehind2\nbehind3')"
	assert_equal "$(quarantined | wc -l)" 3
	assert_equal "$(find "$Q/quarantine" -name file -exec cat {} +)" inside
	assert_equal "$(cksum <"$DECOY")" "$DECOY_SUM"
}

@test "hostile: a symlink planted in cur/ is quarantined, not followed" { planted cur symlink; }
@test "hostile: a FIFO planted in cur/ does not hang a consumer" { planted cur fifo; }
@test "hostile: a device planted in cur/ is quarantined" { planted cur dev; }
@test "hostile: a directory planted in cur/ is quarantined with its contents" { planted cur dir; }
@test "hostile: a hard link to an outside message planted in cur/ is never delivered" { planted cur hard; }

@test "hostile: a symlink planted in delay/ is quarantined, not followed" { planted delay symlink; }
@test "hostile: a FIFO planted in delay/ does not hang a consumer" { planted delay fifo; }
@test "hostile: a device planted in delay/ is quarantined" { planted delay dev; }
@test "hostile: a directory planted in delay/ is quarantined with its contents" { planted delay dir; }
@test "hostile: a hard link to an outside message planted in delay/ is never delivered" { planted delay hard; }

@test "hostile: a symlink planted in dead/ and redriven is quarantined, not followed" { planted dead symlink; }
@test "hostile: a FIFO planted in dead/ and redriven does not hang a consumer" { planted dead fifo; }
@test "hostile: a device planted in dead/ and redriven is quarantined" { planted dead dev; }
@test "hostile: a directory planted in dead/ and redriven is quarantined with its contents" { planted dead dir; }
@test "hostile: a hard link to an outside message planted in dead/ and redriven is never delivered" { planted dead hard; }

# planted_holder KIND: a KIND planted in groups/ as the holder of group
# A holds nothing up: the group's messages flow, in order.
planted_holder() {
	mkdir "$Q/groups"
	plant "$1" "$Q/groups/$(printf A | b2sum -l 128 | cut -d' ' -f1)"
	echo a1 | mq-send -q -g A "$Q"
	echo a2 | mq-send -q -g A "$Q"
	for m in a1 a2; do
		run --separate-stderr timeout 10 mq-recv "$Q"
		assert_equal "$stderr" ""
		assert_success
		assert_output "$m"
	done
	outside_intact
}

@test "hostile: a symlink planted as a group's holder is taken over, not followed" { planted_holder symlink; }
@test "hostile: a FIFO planted as a group's holder is taken over without hanging" { planted_holder fifo; }
@test "hostile: a directory planted as a group's holder is taken over" { planted_holder dir; }

@test "hostile: mq-ls, mq-stat and mq-purge meet planted files in every folder without following them" {
	gap
	plant symlink "$(planted_at bucket)"
	F2=$F
	for folder in cur delay dead; do
		F=$(send "x$folder")
		mq-recv -o /dev/null "$Q"
		plant fifo "$(planted_at "$folder")"
	done
	run --separate-stderr timeout 10 mq-ls "$Q"
	assert_success
	refute_output --partial SECRET
	run --separate-stderr timeout 10 mq-ls --show "$F2" "$Q"
	refute_output --partial SECRET
	run --separate-stderr timeout 10 mq-stat "$Q"
	assert_success
	run --separate-stderr timeout 10 mq-purge --state all --yes "$Q"
	assert_success
	outside_intact
	assert_equal "$(ready_count)" 0
}

# tmp/ holds drafts of senders at work: nothing there is ever delivered,
# and a file that is not a regular file is never a draft.  (A hard link
# may be one: a topic links its message into its subscribers' tmp/.)
@test "hostile: a symlink, FIFO, device or directory planted in tmp/ hangs nothing, is never delivered, and mq-fsck reports it; a hard link too, but for the report" {
	kinds="symlink fifo dir hard"
	mknod "$T/probe" c 1 3 2>/dev/null && kinds="$kinds dev"
	for kind in $kinds; do
		plant "$kind" "$Q/tmp/12345.1795766110424530997.$kind"
	done
	run --separate-stderr timeout 10 mq-fsck "$Q"
	fsck_status=$status fsck_out=$output
	run timeout 10 mq-send "$Q" <<<"fresh"
	assert_success
	run --separate-stderr timeout 10 mq-watch --drain "$Q"
	assert_success
	assert_output fresh
	outside_intact
	for kind in $kinds; do
		assert [ -e "$Q/tmp/12345.1795766110424530997.$kind" ] ||
		    assert [ -L "$Q/tmp/12345.1795766110424530997.$kind" ]
	done
	assert_equal "$fsck_status" 1
	for kind in ${kinds/hard/}; do
		[[ $fsck_out == *"$Q: tmp/12345.1795766110424530997.$kind: "* ]] ||
		    fail "mq-fsck did not report tmp/...$kind: '$fsck_out'"
	done
}

@test "hostile: stale entries of every kind in tmp/ are cleaned without following or emptying what they point to" {
	echo keep >"$T/outside"
	for kind in symlink fifo dir hard; do
		plant "$kind" "$Q/tmp/1.2.$kind"
	done
	ln -s "$T/outside" "$Q/tmp/1.2.symlink2"
	mknod "$Q/tmp/1.2.dev" c 1 3 2>/dev/null || true
	find "$Q/tmp" -mindepth 1 -maxdepth 1 -exec touch -h -d '3 days ago' {} +
	run --separate-stderr timeout 10 mq-fsck "$Q"
	assert_failure 1
	assert_output --partial "tmp/1.2.symlink: not a file a producer writes"
	# A new bucket makes mq-send clean stale drafts; so does mq-init.
	run timeout 10 mq-init "$Q"
	assert_success
	assert [ ! -L "$Q/tmp/1.2.symlink" ]
	assert [ ! -e "$Q/tmp/1.2.hard" ]
	assert [ ! -e "$Q/tmp/1.2.fifo" ]
	assert_equal "$(cat "$T/outside")" keep
	outside_intact
	# A directory is not removed with what it holds.
	run timeout 10 mq-fsck --fix "$Q"
	assert [ "$status" -ne 124 ] && assert [ "$status" -lt 128 ]
	assert_equal "$(cat "$Q/tmp/1.2.dir/file")" inside
}

# The config and the counter: read (and the counter written) in place.
as_file() {
	local kind=$1 file=$2 p="$Q/$2"
	send behind >/dev/null
	rm -f "$p"
	case $kind in
	symlink) ln -s "$O/$file" "$p" ;;
	hard) ln "$O/$file" "$p" ;;
	*) plant "$kind" "$p" ;;
	esac
	before=$(cksum <"$O/$file")
	run --separate-stderr timeout 10 mq-fsck "$Q"
	fsck_status=$status fsck_out=$output
	run --separate-stderr timeout 10 mq-send "$Q" <<<"new"
	send_status=$status send_err=$stderr
	run --separate-stderr timeout 10 mq-recv "$Q"
	recv_status=$status recv_out=$output
	run --separate-stderr timeout 10 mq-watch --drain "$Q"
	watch_status=$status
	# Nothing outside changed, nothing hung (timeout exits 124).
	assert_equal "$(cksum <"$O/$file")" "$before"
	outside_intact
	for s in "$send_status" "$recv_status" "$watch_status"; do
		assert [ "$s" -ne 124 ]
		assert [ "$s" -lt 128 ]
	done
	assert_equal "$fsck_status" 1
	[[ $fsck_out == *"$Q: $file: "* ]] ||
	    fail "mq-fsck did not report $file: $fsck_out"
}

# A config that is not a regular file of this queue is refused, by name.
bad_config() {
	as_file "$1" config
	for s in "$send_status" "$recv_status" "$watch_status"; do
		assert [ "$s" -ne 0 ]
	done
	assert_regex "$send_err" "^mq-send: $Q: "
}

@test "hostile: a symlink as config is refused, not followed" { bad_config symlink; }
@test "hostile: a FIFO as config is refused without hanging" { bad_config fifo; }
@test "hostile: a device as config is refused" { bad_config dev; }
@test "hostile: a directory as config is refused" { bad_config dir; }
@test "hostile: a hard link to another queue's config is reported by mq-fsck" { as_file hard config; }

# A counter that is not a regular file of this queue stops sends; what
# was sent still flows.
bad_seq() {
	as_file "$1" seq
	assert [ "$send_status" -ne 0 ]
	assert_regex "$send_err" "^mq-send: $Q: "
	assert_equal "$recv_status" 0
	assert_equal "$recv_out" behind
}

@test "hostile: a symlink as seq is refused, not followed; receiving goes on" { bad_seq symlink; }
@test "hostile: a FIFO as seq is refused without hanging; receiving goes on" { bad_seq fifo; }
@test "hostile: a device as seq is refused; receiving goes on" { bad_seq dev; }
@test "hostile: a directory as seq is refused; receiving goes on" { bad_seq dir; }
@test "hostile: a hard link to another queue's seq is never written through" { bad_seq hard; }

# Corrupted message files: each kind in each state folder is quarantined,
# never delivered, never crashes a consumer or blocks the rest.

# corrupt HOW FILE
corrupt() {
	local f=$2 size
	case $1 in
	truncated) truncate -s -3 "$f" ;;
	empty) : >"$f" ;;
	absurd-size) sed -i 's/^size: [0-9]*$/size: 99999999999999999999/' "$f" ;;
	large-size) sed -i 's/^size: [0-9]*$/size: 00000000000999999999/' "$f" ;;
	negative-size) sed -i 's/^size: [0-9]*$/size: -0000000000000000001/' "$f" ;;
	magic) printf 'mq/2' | dd of="$f" bs=1 conv=notrunc status=none ;;
	no-header-end)
		{ printf 'mq/1\nid: %s\n' "$(basename "$f" | cut -c1-16)"
		  head -c 8000 /dev/zero | tr '\0' 'h'; } >"$f" ;;
	nul-in-header) printf '\0' | dd of="$f" bs=1 seek=8 conv=notrunc status=none ;;
	huge-file) truncate -s 1G "$f" ;;
	esac
}

CORRUPTIONS="truncated empty absurd-size large-size negative-size magic no-header-end nul-in-header huge-file"

# corrupted_in FOLDER: one message per corruption, moved to FOLDER, with
# a good message after each; every consumer kind then runs.
corrupted_in() {
	local folder=$1 how id f n=0 dest k
	for how in $CORRUPTIONS; do
		n=$((n + 1))
		id=$(send "bad $how")
		send "good $n" >/dev/null
		f=$(ready_file "$id")
		corrupt "$how" "$f"
		case $folder in
		cur) dest="$Q/cur/$id.1.k000000000000.0000000000000000001" ;;
		delay) dest="$Q/delay/0000000000000000001.$id.0" ;;
		dead) dest="$Q/dead/$id.1.attempts" ;;
		*) dest= ;;
		esac
		[ -z "$dest" ] || mv "$f" "$dest"
	done
	run --separate-stderr timeout 20 mq-ls "$Q"
	assert [ "$status" -lt 2 ]
	run --separate-stderr timeout 20 mq-stat "$Q"
	assert_success
	run --separate-stderr timeout 20 mq-fsck "$Q"
	assert_failure 1
	assert_equal "$(grep -c 'not a well-formed message' <<<"$output")" "$n"
	[ "$folder" = dead ] && { run timeout 20 mq-redrive "$Q"; assert_success; }
	# Half through mq-recv, the rest through mq-watch.
	for ((k = 1; k <= n / 2; k++)); do
		run --separate-stderr timeout 20 mq-recv "$Q" -- cat
		assert_success
		assert_output "good $k"
		[[ $stderr != *runtime\ error* ]] || fail "$stderr"
	done
	run --separate-stderr timeout 20 mq-watch --drain "$Q"
	assert_success
	assert_output "$(seq $((n / 2 + 1)) "$n" | sed 's/^/good /')"
	refute_output --partial bad
	assert_equal "$(quarantined | wc -l)" "$n"
	assert_equal "$(find "$Q/new" "$Q/cur" "$Q/delay" "$Q/dead" -type f | wc -l)" 0
}

@test "hostile: corrupted files in a bucket are quarantined, never delivered; the rest flows" { corrupted_in bucket; }
@test "hostile: corrupted files in cur/ are quarantined once their lease is out; the rest flows" { corrupted_in cur; }
@test "hostile: corrupted files in delay/ are quarantined once due; the rest flows" { corrupted_in delay; }
@test "hostile: corrupted files in dead/ are quarantined when redriven; the rest flows" { corrupted_in dead; }

@test "hostile: any one byte of a plain message's header changed: never a crash, never a wrong body" {
	body='the body, exactly'
	id=$(send "$body")
	f=$(ready_file "$id")
	masks="1 32 128 10"
	if under_asan; then masks="1 10"; fi
	# Every variant at once: each header byte xor each mask (10: the
	# byte made a newline instead).
	mkdir "$T/v"
	python3 - "$f" "$T/v" $masks <<-'EOF'
	import sys
	src, out, masks = sys.argv[1], sys.argv[2], [int(m) for m in sys.argv[3:]]
	data = open(src, 'rb').read()
	end = data.index(b'\n\n') + 2
	n = 0
	for m in masks:
	    for off in range(end):
	        b = bytearray(data)
	        b[off] = 10 if m == 10 else b[off] ^ m
	        if b == data:
	            continue
	        n += 1
	        open('%s/%04d.%d.%d' % (out, n, off, m), 'wb').write(bytes(b))
	EOF
	tried=0 delivered=0
	for v in "$T"/v/*; do
		cp "$v" "$f"
		tried=$((tried + 1))
		run --separate-stderr timeout 10 mq-recv "$Q"
		[ "$status" -eq 0 ] || [ "$status" -eq 1 ] ||
		    fail "${v##*/}: mq-recv exit $status: $stderr"
		[[ $stderr != *runtime\ error* && $stderr != *Sanitizer* ]] ||
		    fail "${v##*/}: $stderr"
		if [ "$status" -eq 0 ]; then
			[ "$output" = "$body" ] ||
			    fail "${v##*/} delivered: '$output'"
			delivered=$((delivered + 1))
		fi
		[ ! -e "$f" ] || fail "${v##*/}: neither delivered nor quarantined"
	done
	echo "# $tried header corruptions tried, $delivered harmless ones delivered intact" >&3
	assert [ "$tried" -gt 100 ]
}

@test "hostile: mq-watch stops a compression bomb at the queue's max-size and goes on" {
	mq-init --max-size 1M "$Q"
	bomb=$(head -c 100M /dev/zero | mq-send -z "$Q" 2>&1) && fail "a 100M body went in: $bomb"
	# Sent before the limit, as by an older config: only a claim stops it.
	mq-init --max-size 0 "$Q"
	bomb=$(head -c 100M /dev/zero | mq-send -z "$Q")
	send after >/dev/null
	mq-init --max-size 1M "$Q"
	start=$(now_ms)
	run --separate-stderr timeout 20 mq-watch --drain "$Q"
	took=$(( $(now_ms) - start ))
	assert_success
	assert_output after
	assert [ "$took" -lt 5000 ]
	assert_equal "$(quarantined | grep -c "\\.$bomb\\.")" 1
}

@test "hostile: an oversized line among good ones in mq-send -l refuses the group and leaves nothing" {
	mq-init --max-size 10 "$Q"
	run --separate-stderr mq-send -l "$Q" < <(printf 'short1\n%s\nshort2\n' "$(head -c 20 /dev/zero | tr '\0' x)")
	assert_failure 65
	assert_output ""
	assert_equal "$stderr" "mq-send: $Q: Larger than the queue's max-size"
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" tmp)" 0
	run mq-send -q -l "$Q" < <(printf 'short1\nshort2\n')
	assert_success
	assert_equal "$(ready_count)" 2
}

@test "hostile: ids given to mq-redrive and mq-ls --show: '..', '/', empty, 4 KiB, leading '-', format strings" {
	id=$(send held)
	r=$(mq-recv -L 1m -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	before=$(snapshot)
	long=$(head -c 4096 /dev/zero | tr '\0' 'a')
	upper=$(printf '%s' "$id" | sed 's/0/O/')
	upper2=$(printf '%s' "$id" | sed 's/1/A/')
	for bad in .. . / "" "$long" -x --reset "-$id" "$id/" "dead/$id" \
	    "../dead/$id.1.failed" "$id.1" "$id.1.failed" "${id%?}" "${id}0" \
	    "$upper" "$upper2" " $id" "$id " '%s%s%n%x' "$id"$'\n'x "$id"$'\n' \
	    "$(printf 'a\tb')" "$(printf '\xff\xfe')" "../../../../../etc/passwd" \
	    "$T/other/new/$(basename "$(dirname "$DECOY")")"; do
		run --separate-stderr mq-redrive "$Q" "$bad"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "mq-redrive: $bad: Not a message id"
		run --separate-stderr mq-ls --show "$bad" "$Q"
		assert_failure 65
		assert_output ""
		assert_equal "$stderr" "mq-ls: $bad: Not a message id"
	done
	assert_equal "$(snapshot)" "$before"
	outside_intact
	run mq-redrive "$Q" "$id"
	assert_success
}

@test "hostile: receipts with format strings, newlines, tabs and invalid UTF-8 are refused and change nothing" {
	send held >/dev/null
	r=$(mq-recv -L 1m -o /dev/null "$Q")
	before=$(snapshot)
	for bad in '%s%s%n%x' "%n${r}" "$r"$'\n' "$r"$'\t'x \
	    "$(printf '\xff')$r" "${r}$(printf '\xc3')" "$r/." "./$r" ; do
		for op in "" --retry --fail "--extend 1h"; do
			# shellcheck disable=SC2086
			run --separate-stderr mq-ack $op "$Q" "$bad"
			assert_failure 65
			assert_output ""
			assert_equal "$stderr" "mq-ack: $bad: Not a receipt"
		done
	done
	assert_equal "$(snapshot)" "$before"
	run mq-ack "$Q" "$r"
	assert_success
}

@test "hostile: settling a receipt whose lease file was replaced never reaches outside" {
	r=0000010000000005.1.l000000000000
	for kind in symlink fifo dev dir hard; do
		for op in "" --retry --fail "--extend 1h"; do
			rm -rf "$Q"/cur/* "$Q"/new/* "$Q"/dead/* "$Q"/delay/*
			plant "$kind" "$Q/cur/$r.9000000000000000001"
			# shellcheck disable=SC2086
			run --separate-stderr timeout 10 mq-ack $op "$Q" "$r"
			assert [ "$status" -ne 124 ]
			assert [ "$status" -lt 128 ]
			outside_intact
		done
	done
	# Whatever it did, a claim then delivers none of it.
	run --separate-stderr timeout 10 mq-watch --drain "$Q"
	assert_success
	assert_output ""
}

# stopped PID: PID sits in a tracing stop (strace holding it in a delay).
stopped() { grep -q '^State:.*t (tracing stop)' "/proc/$1/status" 2>/dev/null; }
held() { stopped "$1" && sleep 0.2 && stopped "$1"; }

@test "hostile: a message swapped for a link while mq-fsck --fix looks at it does not get the link's target chmodded" {
	command -v strace >/dev/null || skip "strace is not installed"
	send hi >/dev/null
	f=$(find "$Q/new" -type f)
	printf victim >"$T/victim"
	chmod 0644 "$T/victim"
	chmod 0640 "$f"
	# Which close ends fsck's look at the message: it is held there while
	# the message is swapped for a link, before fsck sets the mode.
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 strace -qq -o "$T/ref" \
	    -e trace=openat,close mq-fsck "$Q" >/dev/null || true
	k=$(grep -E '^(openat|close)\(' "$T/ref" | awk -v n="${f##*/}" '
	    index($0, "\"" n "\"") { seen = 1 } /^close\(/ { c++; if (seen) { print c; exit } }')
	[ -n "$k" ] || fail "fsck never closed ${f##*/}: $(cat "$T/ref")"
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 strace -qq -o /dev/null \
	    -e trace=close -e inject="close:delay_exit=4000000:when=$k" \
	    mq-fsck --fix "$Q" >"$T/fsck.out" 2>&1 &
	tracer=$!
	wait_for 10 sh -c 'pgrep -P "$1" >/dev/null' sh "$tracer" || fail "no fsck under strace"
	pid=$(pgrep -P "$tracer")
	wait_for 10 held "$pid" || fail "fsck never stopped at close $k"
	rm "$f"
	ln -s "$T/victim" "$f"
	wait "$tracer" || true
	said=$(cat "$T/fsck.out")
	assert_equal "$(stat -c %a "$T/victim")" 644
	[[ $said == *"mode differs from the queue's: not fixed"* ]] ||
	    fail "fsck said: $said"
}
