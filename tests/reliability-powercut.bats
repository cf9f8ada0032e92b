#!/usr/bin/env bats
# Power cut: a queue on a loop-mounted filesystem image takes a round of
# operations (sends, batch sends, claims, acks, retries, topic sends),
# each of which has reported success; then the power is cut under it
# with FS_IOC_SHUTDOWN and FS_GOING_FLAGS_NOLOGFLUSH (tests/tools/
# shutdown.c): every later write is dropped and whatever the filesystem
# held only in memory, its journal included, is gone.  The image as the
# disk holds it at that instant is copied before the filesystem is
# unmounted (so nothing an unmount might still write can help), checked
# as a boot would (e2fsck -fy for ext4; XFS replays its log when
# mounted), mounted, and the queue read back:
#
#  - invariant 1: every message whose mq-send printed its id, and that
#    was not acked, is delivered exactly once, byte-identical;
#  - invariant 2, as documented: acks, claims and retries are not
#    synced (mq-queue(5)), so a message acked just before the cut may be
#    delivered once more, whole; never twice, never in part.  How many
#    acks the cut undid is printed;
#  - nothing else is delivered, and mq-fsck --fix leaves a clean queue.
#
# Filesystems: ext4 with a journal, ext4 without one (what this
# machine's root filesystem is), and XFS when mkfs.xfs is there or can
# be installed.  Needs root and loop devices; skipped, saying why,
# without them.  Rounds are random but seeded (PC_SEED), and say their
# seed.
load helpers/common
load helpers/reliability

setup_file() {
	local why="" d=$BATS_FILE_TMPDIR
	if [ "$(id -u)" != 0 ]; then
		why="needs root to mount loop devices"
	elif ! command -v mkfs.ext4 >/dev/null || ! command -v e2fsck >/dev/null; then
		why="needs e2fsprogs (mkfs.ext4, e2fsck)"
	else
		mkdir -p "$d/probe"
		truncate -s 16M "$d/probe.img"
		if ! mkfs.ext4 -q -F "$d/probe.img" >/dev/null 2>&1 ||
		    ! mount -o loop "$d/probe.img" "$d/probe" 2>"$d/probe.err"; then
			why="cannot loop-mount an image here: $(head -n1 "$d/probe.err")"
		else
			umount "$d/probe"
		fi
		rm -f "$d/probe.img"
	fi
	echo "$why" >"$d/skip"
	# XFS: install xfsprogs when missing, as root with apt (bounded).
	if [ -z "$why" ] && ! command -v mkfs.xfs >/dev/null; then
		if command -v apt-get >/dev/null; then
			export DEBIAN_FRONTEND=noninteractive
			timeout 300 apt-get install -y -q xfsprogs >/dev/null 2>&1 ||
			    { timeout 300 apt-get update -q >/dev/null 2>&1 &&
			    timeout 300 apt-get install -y -q xfsprogs >/dev/null 2>&1; } ||
			    true
		fi
	fi
	if [ -n "$why" ]; then
		echo "mq: power-cut suite skipped: $why" >"$d/xfs"
	elif ! command -v mkfs.xfs >/dev/null; then
		echo "mkfs.xfs is not installed and apt-get install xfsprogs failed" >"$d/xfs"
	elif ! grep -qw xfs /proc/filesystems && ! modprobe xfs 2>/dev/null; then
		echo "the kernel has no XFS" >"$d/xfs"
	else
		: >"$d/xfs"
	fi
}

setup() {
	local why
	why=$(cat "$BATS_FILE_TMPDIR/skip")
	[ -z "$why" ] || skip "$why"
	setup_mq
	T=$BATS_TEST_TMPDIR
	CUT=$(tool shutdown)
	MNT="$T/mnt"
	mkdir -p "$MNT" "$T/src"
	: >"$T/sent"
	: >"$T/acked"
	: >"$T/held"
	NSRC=0
}

teardown() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	return 0
}

need_xfs() {
	local why
	why=$(cat "$BATS_FILE_TMPDIR/xfs")
	[ -z "$why" ] || skip "XFS: $why"
}

# fs_make TYPE: a fresh filesystem of TYPE (ext4, ext4-nojournal, xfs)
# in $T/img, mounted on $MNT.
fs_make() {
	FS=$1
	! mountpoint -q "$MNT" || umount "$MNT"
	rm -f "$T/img" "$T/img.cut"
	case $FS in
	ext4)
		truncate -s 64M "$T/img"
		mkfs.ext4 -q -F "$T/img" ;;
	ext4-nojournal)
		truncate -s 64M "$T/img"
		mkfs.ext4 -q -F -O ^has_journal "$T/img" ;;
	xfs)
		# The smallest XFS that mkfs.xfs makes; sparse, so cheap.
		truncate -s 320M "$T/img"
		mkfs.xfs -q -f "$T/img" ;;
	esac
	mount -o loop "$T/img" "$MNT"
}

# power_cut: cut the power under $MNT now; then, as after a reboot, check
# the disk image and mount it again on $MNT.
power_cut() {
	local rc=0
	"$CUT" "$MNT"
	# What the disk holds now is what the power cut left: copy it
	# before the unmount, which must not get to write anything.
	cp --sparse=always "$T/img" "$T/img.cut"
	umount "$MNT"
	case $FS in
	ext4*)
		e2fsck -fy "$T/img.cut" >"$T/e2fsck.out" 2>&1 || rc=$?
		# 1: errors corrected; 2: corrected, reboot wanted.
		[ "$rc" -le 2 ] || fail "e2fsck after the cut exited $rc: $(cat "$T/e2fsck.out")"
		;;
	esac
	mount -o loop "$T/img.cut" "$MNT"
}

sha_of() { sha256sum <"$1" | cut -c1-64; }

# Operations.  Each records what it did once it has reported success:
# $T/sent "ID SHA" for every message sent (for a topic, ID is the
# topic's), $T/acked the SHA of every message acked, $T/held receipts.
op_send() {
	local q=${1:-$Q} f id
	NSRC=$((NSRC + 1))
	f="$T/src/$NSRC"
	head -c $((RANDOM % 20000)) /dev/urandom >"$f"
	printf '\n%s %s\n' "$NSRC" "$RANDOM" >>"$f"
	id=$(mq-send "$q" "$f")
	is_id "$id"
	echo "$id $(sha_of "$f")" >>"$T/sent"
	LAST="send"
}

op_batch() {
	local q=${1:-$Q} i n=$((1 + RANDOM % 8)) f ids
	NSRC=$((NSRC + 1))
	f="$T/src/$NSRC"
	for ((i = 0; i < n; i++)); do
		echo "line $NSRC.$i $RANDOM$RANDOM"
	done >"$f"
	ids=$(mq-send -l "$q" "$f")
	[ "$(echo "$ids" | wc -l)" = "$n" ]
	paste -d' ' <(echo "$ids") <(while read -r line; do
		printf '%s' "$line" | sha256sum | cut -c1-64
	done <"$f") >>"$T/sent"
	LAST="batch of $n"
}

op_claim() {
	local r rc=0
	r=$(mq-recv -L 2 -o /dev/null "$Q") || rc=$?
	[ "$rc" -le 1 ]
	[ "$rc" = 0 ] && echo "$r" >>"$T/held"
	LAST="claim"
}

# op_settle ack|retry|delay: settle the oldest receipt held.
op_settle() {
	local q=$Q r rc=0 sha
	r=$(head -n1 "$T/held")
	[ -n "$r" ] || { op_claim; return; }
	sed -i 1d "$T/held"
	case $1 in
	ack) mq-ack "$q" "$r" || rc=$? ;;
	retry) mq-ack --retry "$q" "$r" || rc=$? ;;
	delay) mq-ack --retry -d 1 "$q" "$r" || rc=$? ;;
	esac
	# 1: the lease ran out first (a slow machine); nothing was settled.
	[ "$rc" -le 1 ]
	if [ "$1" = ack ] && [ "$rc" = 0 ]; then
		sha=$(awk -v id="${r%%.*}" '$1 == id { print $2; exit }' "$T/sent")
		echo "$sha" >>"$T/acked"
	fi
	LAST="$1"
}
op_settle_ack() { op_settle ack; }
op_settle_retry() { op_settle retry; }
op_settle_delay() { op_settle delay; }

# random_ops COUNT: a random mix, most of them sends.
random_ops() {
	local i
	for ((i = 0; i < $1; i++)); do
		case $((RANDOM % 8)) in
		0 | 1 | 2) op_send ;;
		3) op_batch ;;
		4) op_claim ;;
		5) op_settle ack ;;
		6) op_settle retry ;;
		7) op_settle delay ;;
		esac
	done
}

# delivered QUEUE DIR: receive everything QUEUE delivers once leases and
# delays have run out, each body into DIR; print their SHAs, sorted.
delivered() {
	local q=$1 dir=$2 i rc
	rm -rf "$dir" "$dir.err"
	mkdir -p "$dir"
	wait_for 30 after_ns "$(newest_deadline "$q")"
	for ((i = 0; i < 1000; i++)); do
		rc=0
		mq-recv "$q" -- sh -c 'cat >"$0/$MQ_ID.$$"' "$dir" 2>>"$dir.err" || rc=$?
		[ "$rc" = 1 ] && break
		[ "$rc" = 0 ] || fail "mq-recv after the cut exited $rc: $(cat "$dir.err")"
	done
	for f in "$dir"/*; do
		[ -e "$f" ] && sha_of "$f"
	done | sort
}

# check_queue QUEUE: after the cut, every message sent and not acked
# is delivered exactly once, byte-identical; an acked one at most once;
# nothing else; the queue is fsck-clean.
check_queue() {
	local q=$1 name=${1##*/} got lost=0 dup=0 back=0 extra=0 sha n
	got=$(delivered "$q" "$T/got-$name")
	cut -d' ' -f2 "$T/sent" | sort >"$T/want"
	sort "$T/acked" >"$T/acked.sorted"
	while read -r sha; do
		n=$(grep -cx "$sha" <<<"$got" || true)
		if grep -qx "$sha" "$T/acked.sorted"; then
			[ "$n" -le 1 ] || dup=$((dup + 1))
			back=$((back + n))
		else
			[ "$n" = 1 ] || { [ "$n" = 0 ] && lost=$((lost + 1)) || dup=$((dup + 1)); }
		fi
	done <"$T/want"
	extra=$(comm -23 <(echo "$got" | grep . | sort -u) <(sort -u "$T/want") | grep -c . || true)
	PC_SENT=$(grep -c . "$T/want" || true)
	PC_ACKED=$(grep -c . "$T/acked" || true)
	PC_BACK=$back
	if [ "$lost" != 0 ] || [ "$dup" != 0 ] || [ "$extra" != 0 ]; then
		{
			echo "$FS, queue $name, last operation before the cut: $LAST"
			echo "sent $PC_SENT, acked $PC_ACKED: lost $lost, delivered twice $dup, unknown $extra"
			echo "--- after the cut:"; (cd "$q" && find . -type f | sort)
			echo "--- lost+found:"; ls -l "$MNT/lost+found" 2>/dev/null
			echo "--- e2fsck:"; cat "$T/e2fsck.out" 2>/dev/null
		} >&2
		return 1
	fi
	fsck_clean "$q"
}

# round TYPE SEED OPS...: on a fresh TYPE filesystem, run OPS (words
# naming op_ functions, "random:N" for N random ones), cut the power
# right after the last reported success, and check the queue.
round() {
	local fs=$1 seed=$2 op
	shift 2
	RANDOM=$seed
	: >"$T/sent"; : >"$T/acked"; : >"$T/held"
	fs_make "$fs"
	Q="$MNT/q"
	mq-init "$Q"
	# The queue's folders are on disk before the round begins: what is
	# tested is the operations, not mq-init.
	sync -f "$MNT"
	for op in "$@"; do
		case $op in
		random:*) random_ops "${op#random:}" ;;
		*) $op ;;
		esac
	done
	power_cut
	check_queue "$Q"
	note "$fs seed $seed: sent $PC_SENT, acked $PC_ACKED ($PC_BACK delivered again), last: $LAST"
	umount "$MNT"
}

# rounds TYPE SEED OPS... ; ...: run each round on its own (a failed
# one does not hide the others), then fail if any did.
rounds() {
	local fs=$1 failed=0 spec rc
	shift
	for spec in "$@"; do
		# A plain subshell keeps set -e; one in a condition would not.
		# It runs without bats's per-command DEBUG trap, which would
		# take much of the time of a round's many short commands.
		set +e
		# shellcheck disable=SC2086
		(trap - DEBUG; set +T; set -e; round "$fs" $spec)
		rc=$?
		set -e
		if [ "$rc" != 0 ]; then
			failed=$((failed + 1))
			note "$fs round '$spec': FAILED"
		fi
	done
	[ "$failed" = 0 ] || fail "$failed of $# rounds failed on $fs"
}

# mixed TYPE: rounds of random operations, each ending on a different
# kind of operation, the power cut right after it.
mixed() {
	local s=${PC_SEED:-1000}
	local k=${PC_OPS:-20}
	rounds "$1" "$s random:$k op_send" "$((s + 1)) random:$k op_batch" \
	    "$((s + 2)) random:$k op_claim op_settle_ack" \
	    "$((s + 3)) random:$k op_claim op_settle_retry" \
	    "$((s + 4)) random:$k op_claim op_settle_delay"
}

@test "reliability: power cut on ext4 (journal) after sends, claims, acks and retries" {
	mixed ext4
}

@test "reliability: power cut on ext4 without a journal after sends, claims, acks and retries" {
	mixed ext4-nojournal
}

@test "reliability: power cut on XFS after sends, claims, acks and retries" {
	need_xfs
	mixed xfs
}

# A claim renames its message out of its bucket; a later send into the
# same bucket syncs that bucket.  The claim itself is not synced, so
# after a cut the message must be found where it was or where it went.
claim_then_send() {
	rounds "$1" "7 op_send op_send op_claim op_send"
}

@test "reliability: power cut on ext4 (journal) after a claim and a send into its bucket" {
	claim_then_send ext4
}

@test "reliability: power cut on ext4 without a journal after a claim and a send into its bucket" {
	claim_then_send ext4-nojournal
}

@test "reliability: power cut on XFS after a claim and a send into its bucket" {
	need_xfs
	claim_then_send xfs
}

# A topic: every message whose send printed its id reaches each
# subscriber exactly once after the cut (the claims below run the
# recovery that finishes interrupted fan-outs).
topic_round() {
	local s
	RANDOM=42
	fs_make "$1"
	mq-init --subscribe "$MNT/T" "$MNT/a" "$MNT/b"
	sync -f "$MNT"
	Q="$MNT/T"
	for ((s = 0; s < 6; s++)); do op_send "$MNT/T"; done
	op_batch "$MNT/T"
	op_send "$MNT/T"
	power_cut
	check_queue "$MNT/a"
	check_queue "$MNT/b"
	fsck_clean "$MNT/T"
	[ -z "$(ls -A "$MNT/T/fanout" 2>/dev/null)" ]
	note "$1 topic: $PC_SENT messages reached both subscribers"
}

@test "reliability: power cut on ext4 (journal) after sends to a topic" {
	topic_round ext4
}

@test "reliability: power cut on ext4 without a journal after sends to a topic" {
	topic_round ext4-nojournal
}

@test "reliability: power cut on XFS after sends to a topic" {
	need_xfs
	topic_round xfs
}

# The harness itself: with every fsync and fdatasync of the sender made
# a no-op (strace turns them into calls that return 0 and do nothing),
# the same power cut must lose sends.  A suite that passed this would
# be unable to see a missing sync.
@test "reliability: power cut harness catches a sender that does not sync" {
	fs_make ext4
	Q="$MNT/q"
	mq-init "$Q"
	sync -f "$MNT"
	for s in 1 2 3 4 5; do
		echo "unsynced $s" >"$T/src/$s"
		id=$(traced_env strace -qq -o /dev/null \
		    -e inject=fsync,fdatasync,syncfs,sync_file_range:retval=0 \
		    mq-send "$Q" "$T/src/$s")
		echo "$id $(sha_of "$T/src/$s")" >>"$T/sent"
	done
	LAST=send
	power_cut
	run check_queue "$Q"
	assert_failure
	assert_output --partial "lost"
}

# pop_to_file TYPE [STRACE_ARGS...]: on a fresh TYPE filesystem, send a
# 5 MiB body and pop it with mq-recv -o into a new directory beside the
# queue (under strace with STRACE_ARGS when given), then cut the power.
# Sets GOT to the copy, or to nothing when the cut lost it.
pop_to_file() {
	local fs=$1
	shift
	fs_make "$fs"
	Q="$MNT/q"
	mq-init "$Q"
	head -c 5M /dev/urandom >"$T/src/body"
	mq-send -q "$Q" "$T/src/body"
	mkdir "$MNT/out"
	sync -f "$MNT"
	if [ $# -gt 0 ]; then
		traced_env strace -qq -o /dev/null "$@" mq-recv -o "$MNT/out/got" "$Q"
	else
		mq-recv -o "$MNT/out/got" "$Q"
	fi
	# The message is acked: the copy is all there is.
	[ "$(count_in "$Q" new)$(count_in "$Q" cur)" = 00 ]
	power_cut
	GOT=""
	[ -f "$MNT/out/got" ] && GOT="$MNT/out/got"
	return 0
}

@test "reliability: power cut right after mq-recv -o: FILE holds the whole body (ext4 with and without a journal, XFS)" {
	for fs in ext4 ext4-nojournal xfs; do
		[ "$fs" != xfs ] || [ -z "$(cat "$BATS_FILE_TMPDIR/xfs")" ] || continue
		pop_to_file "$fs"
		[ -n "$GOT" ] || fail "$fs: the copy is gone"
		cmp "$T/src/body" "$GOT" || fail "$fs: the copy differs"
	done
}

# The same harness with mq-recv's syncs made no-ops loses the copy or
# part of it: the test above could see a missing sync.
@test "reliability: power cut harness catches an mq-recv -o that does not sync" {
	pop_to_file ext4-nojournal \
	    -e inject=fsync,fdatasync,syncfs,sync_file_range:retval=0
	[ -z "$GOT" ] || ! cmp -s "$T/src/body" "$GOT"
}
