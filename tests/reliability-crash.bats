#!/usr/bin/env bats
# Crash at every step: each operation is first run once under strace to
# list its system calls; then, for every call N of that list, the
# operation is run again on a fresh queue and killed with SIGKILL on
# entry to call N (strace -e inject=NAME:signal=KILL:when=K), so that
# call and everything after it never happen.  After each kill the queue
# is recovered the way a user would (a claim; mq-fsck --fix) and checked:
#
#  - a send killed before its commit point (the rename into new/, or for
#    a topic into fanout/) leaves nothing deliverable; killed after it,
#    exactly one complete, byte-identical message; an id printed means
#    the message is deliverable;
#  - an ack that has unlinked its lease is never delivered again;
#  - a killed claim, pop, handler run or retry leaves the message
#    deliverable exactly once (after the lease runs out, or at once when
#    the dead holder kept a lock), and not to anyone while its lease
#    holds;
#  - a topic's message reaches every subscriber exactly once after its
#    commit point and none before, never some and not others;
#  - mq-fsck --fix repairs what it finds and a second mq-fsck is clean,
#    with no message lost.
#
# Every point is checked to have died on the call it aimed at, so a
# program whose calls change from run to run fails here rather than
# silently testing less.  Under ASan the runtime's own start-up calls
# (before the program opens anything of the queue's) are not killed.
load helpers/common
load helpers/reliability

setup() {
	setup_mq
	command -v strace >/dev/null || skip "strace is not installed"
	T=$BATS_TEST_TMPDIR
	# Larger than one read (128 KiB) so the body takes several reads
	# and writes, and binary.
	head -c 300000 /dev/urandom >"$T/body"
	printf 'one\ntwo\nthree\n' >"$T/lines"
}

# point_fail N WHAT: fail, naming the kill point and showing its queue.
point_fail() {
	local d="$T/k$1"
	{
		echo "kill point $1 ($(sed -n "$1p" "$T/names")): $2"
		echo "--- last calls:"; grep -E '^[a-z_0-9]+\(' "$d/trace" | tail -n 4
		echo "--- files:"; (cd "$d" && find . -path ./trace -prune -o -type f -print | sort)
		echo "--- stdout:"; cat "$d/out"
		echo "--- stderr:"; cat "$d/err"
	} >&2
	return 1
}

# crash_every_step NAME COMMIT_ERE: drive scenario NAME, made of
#   prep_NAME DIR    build the state the operation starts from in DIR
#   cmd_NAME DIR     set CMD to the operation (run with DIR/out, DIR/err)
#   now_NAME DIR N   (optional) checks right after the kill at call N
#   check_NAME DIR N checks once every lease and delay has run out
# COMMIT_ERE matches the strace line of the operation's commit point;
# its index in the untouched run is left in $COMMIT.  It runs in a
# subshell without bats's per-command DEBUG trap, which would otherwise
# take most of the time of these thousands of short commands; a failure
# still ends it (set -e) and fails the test.
crash_every_step() {
	(
		trap - DEBUG
		set +T
		crash_steps "$@"
	)
}

crash_steps() {
	local name=$1 ere=$2 ref="$T/ref" n total first stride rc where d open how
	local -a plan points
	COMMIT_ERE=$ere

	"prep_$name" "$ref"
	"cmd_$name" "$ref"
	traced_env strace -qq -o "$ref/trace" "${CMD[@]}" >"$ref/out" 2>"$ref/err" ||
		fail "$name: the untouched run failed: $(cat "$ref/err")"
	syscall_names "$ref/trace" >"$T/names"
	mapfile -t plan < <(echo; kill_plan "$T/names")
	total=$((${#plan[@]} - 1))
	COMMIT=$(first_line_matching "$ref/trace" "$ere")
	[ "$COMMIT" -gt 0 ] || fail "$name: no commit point /$ere/ in the trace"
	# Call 1 is the execve strace starts the program with, before it
	# can be stopped on entry: killing there would be not starting.
	# Under ASan each run costs ten times as much: the runtime's own
	# start-up calls are skipped (they come before the program opens the
	# queue), and by default only every second call is killed, plus
	# every call within three of the commit point; CRASH_STRIDE=1 tries
	# them all (but the allocator's, below).
	first=2 stride=${CRASH_STRIDE:-1}
	if under_asan; then
		first=$(first_line_matching "$ref/trace" "^openat\\(AT_FDCWD, \"$ref")
		[ "$first" -gt 0 ] || fail "$name: the queue is never opened"
		stride=${CRASH_STRIDE:-2}
	fi
	points=()
	for ((n = first; n <= total; n++)); do
		# The sanitizer's allocator maps memory a varying number of
		# times, so those calls cannot be aimed at by their count.
		if [ "$first" -gt 2 ] && [[ ${plan[n]% *} =~ ^(mmap|munmap|mprotect|madvise|mremap|brk)$ ]]; then
			continue
		fi
		if (((n - first) % stride == 0 || (n - COMMIT) * (n - COMMIT) <= 9)); then
			points+=("$n")
		fi
	done
	for n in "${points[@]}"; do
		d="$T/k$n"
		"prep_$name" "$d"
		"cmd_$name" "$d"
		rc=0
		# shellcheck disable=SC2086
		kill_at ${plan[n]} "$d/trace" "${CMD[@]}" >"$d/out" 2>"$d/err" || rc=$?
		[ "$rc" = 137 ] || point_fail "$n" "exited $rc instead of being killed"
		where=$(killed_where "$d/trace")
		if [ "$first" -gt 2 ]; then
			# Counted from the queue's opening: the sanitizer
			# runtime's start-up varies by a call or two.
			open=$(first_line_matching "$d/trace" "^openat\\(AT_FDCWD, \"$d")
			where="$((${where% *} - open + first)) ${where#* }"
		fi
		[ "$where" = "$n ${plan[n]% *}" ] ||
			point_fail "$n" "died at call '$where', not '$n ${plan[n]% *}': the calls differ from run to run"
		if declare -F "now_$name" >/dev/null; then
			"now_$name" "$d" "$n" || point_fail "$n" "check right after the kill"
		fi
	done
	wait_for 30 after_ns "$(newest_deadline "$T")"
	for n in "${points[@]}"; do
		"check_$name" "$T/k$n" "$n" || point_fail "$n" "check after recovery"
	done
	how="every call"
	[ "$stride" = 1 ] || how="1 call in $stride and every call within 3 of the commit"
	[ "$first" = 2 ] || how="$how, the sanitizer's memory mapping left out"
	note "$name: kill points tried: ${#points[@]} of calls $first-$total ($how; commit at $COMMIT)"
	echo "$name ${#points[@]} $first $total $stride" >>"${CRASH_COUNTS:-/dev/null}"
}

# The id a killed send printed, if any.
printed_id() { head -n1 "$1/out"; }

# --- a single send into a queue that already holds a message ---------

prep_send() { mkdir -p "$1"; mq-init "$1/q"; echo prior | mq-send -q "$1/q"; }
cmd_send() { CMD=(mq-send "$1/q" "$T/body"); }
check_send() {
	local d=$1 n=$2 id got
	id=$(printed_id "$d")
	fsck_clean "$d/q" || return 1
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$(cat "$d/got/1")" = prior ] || { echo "the earlier message is not first" >&2; return 1; }
	if [ "$n" -gt "$COMMIT" ]; then
		[ "$got" = 2 ] || { echo "committed send: $got messages, want 2" >&2; return 1; }
		cmp "$d/got/2" "$T/body" >&2 || return 1
	else
		[ "$got" = 1 ] || { echo "send killed before its commit delivered ($got)" >&2; return 1; }
		[ -z "$id" ] || { echo "printed $id but did not commit" >&2; return 1; }
	fi
	# The queue still works, and a new send comes after.
	echo after | mq-send -q "$d/q" || return 1
	[ "$(mq-recv "$d/q")" = after ]
}

@test "reliability: mq-send killed at every system call" {
	crash_every_step send '^renameat2\(.*"[0-9a-f]{16}/[0-9a-f]{16}\.0", RENAME_NOREPLACE\) = 0'
}

# --- a batch send (-l) into a fresh queue: its first bucket -----------

prep_batch() { mkdir -p "$1"; mq-init "$1/q"; }
cmd_batch() { CMD=(mq-send -l "$1/q" "$T/lines"); }
check_batch() {
	local d=$1 n=$2 want got i id ready
	local -a lines=(one two three)
	# Messages renamed into new/ before the kill are sent; the rest not.
	want=$(count_before "$T/ref/trace" "$COMMIT_ERE" "$n")
	ready=$(ready_ids "$d/q")
	while read -r id; do
		[ -z "$id" ] && continue
		grep -qx "$id" <<<"$ready" || { echo "printed $id, not in new/" >&2; return 1; }
	done <"$d/out"
	fsck_clean "$d/q" || return 1
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$got" = "$want" ] || { echo "$got messages delivered, want $want" >&2; return 1; }
	# Always a prefix of the input, in order: never a later line
	# without the earlier ones, never a part of a line.
	for ((i = 1; i <= got; i++)); do
		[ "$(cat "$d/got/$i")" = "${lines[i - 1]}" ] ||
			{ echo "message $i is '$(cat "$d/got/$i")'" >&2; return 1; }
	done
	echo after | mq-send -q "$d/q" || return 1
	[ "$(mq-recv "$d/q")" = after ]
}

@test "reliability: mq-send -l (a batch) killed at every system call" {
	crash_every_step batch '^renameat2\(.*"[0-9a-f]{16}/[0-9a-f]{16}\.0", RENAME_NOREPLACE\) = 0'
}

# --- claims and settlements of one message -----------------------------

prep_ready() { mkdir -p "$1"; mq-init "$1/q"; mq-send -q "$1/q" "$T/body"; }
prep_leased() { prep_ready "$1"; mq-recv -L 3 -o /dev/null "$1/q" >"$1/receipt"; }

# claim_now QUEUE: status of a lease-only claim made right now (0 got
# one, 1 nothing ready); the body it got is dropped.
claim_now() {
	local rc=0
	mq-recv -L 3 -o /dev/null "$1" >/dev/null 2>&1 || rc=$?
	echo "$rc"
}

# once DIR: after recovery the message is delivered exactly once, whole.
once() {
	local d=$1 got
	fsck_clean "$d/q" || return 1
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$got" = 1 ] || { echo "delivered $got times, want once" >&2; return 1; }
	cmp "$d/got/1" "$T/body" >&2
}

prep_claim() { prep_ready "$1"; }
cmd_claim() { CMD=(mq-recv -L 3 -o "$1/claimed" "$1/q"); }
now_claim() {
	local rc
	rc=$(claim_now "$1/q")
	# Once renamed into cur/ the message is the killed claimer's for
	# its lease: nobody else may have it.  Before that it is ready.
	if [ "$2" -gt "$COMMIT" ]; then
		[ "$rc" = 1 ] || { echo "a second claim got a leased message ($rc)" >&2; return 1; }
	else
		[ "$rc" = 0 ] || { echo "a second claim found nothing ($rc)" >&2; return 1; }
	fi
}
check_claim() { once "$1"; }

@test "reliability: mq-recv -L (a claim) killed at every system call" {
	# A claim renames to its lease, a name no one else chooses.
	crash_every_step claim '^renameat\(.*"[0-9a-f]{16}\.1\.l[0-9a-f]{12}\.[0-9]{19}"\) = 0'
}

# A claim of a grouped message also makes it its group's holder in
# groups/: a kill there must not hold up the group.
prep_grouped() {
	mkdir -p "$1"
	mq-init "$1/q"
	echo a1 | mq-send -q -g A "$1/q"
	echo a2 | mq-send -q -g A "$1/q"
}
cmd_grouped() { CMD=(mq-recv -L 3 -o "$1/claimed" "$1/q"); }
now_grouped() { now_claim "$@"; }
check_grouped() {
	local d=$1 got
	fsck_clean "$d/q" || return 1
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$got" = 2 ] || { echo "delivered $got of the group's 2 messages" >&2; return 1; }
	[ "$(cat "$d/got/1")" = a1 ] && [ "$(cat "$d/got/2")" = a2 ] ||
		{ echo "the group's messages came out of order" >&2; return 1; }
}

@test "reliability: mq-recv -L of a message in a group killed at every system call" {
	crash_every_step grouped '^renameat\(.*"[0-9a-f]{16}\.1\.l[0-9a-f]{12}\.[0-9]{19}"\) = 0'
}

prep_ack() { prep_leased "$1"; }
cmd_ack() { CMD=(mq-ack "$1/q" "$(cat "$1/receipt")"); }
now_ack() {
	local rc
	rc=$(claim_now "$1/q")
	[ "$rc" = 1 ] || { echo "a claim got a message being acked ($rc)" >&2; return 1; }
}
check_ack() {
	local d=$1 n=$2 got
	fsck_clean "$d/q" || return 1
	got=$(drain "$d/q" "$d/got") || return 1
	if [ "$n" -gt "$COMMIT" ]; then
		[ "$got" = 0 ] || { echo "acked message delivered again ($got)" >&2; return 1; }
	else
		[ "$got" = 1 ] || { echo "unacked message delivered $got times" >&2; return 1; }
		cmp "$d/got/1" "$T/body" >&2
	fi
}

@test "reliability: mq-ack killed at every system call" {
	crash_every_step ack '^unlinkat\([0-9]+, "[0-9a-f]{16}\.1\.l[0-9a-f]{12}\.[0-9]{19}", 0\) = 0'
}

@test "reliability: an ack that returned 0 is never delivered again" {
	prep_leased "$T/a"
	run mq-ack "$T/a/q" "$(cat "$T/a/receipt")"
	assert_success
	wait_for 10 after_ns "$(newest_deadline "$T/a")"
	fsck_clean "$T/a/q"
	run mq-recv "$T/a/q"
	assert_failure 1
}

prep_retry() { prep_leased "$1"; }
cmd_retry() { CMD=(mq-ack --retry "$1/q" "$(cat "$1/receipt")"); }
now_retry() {
	local rc
	rc=$(claim_now "$1/q")
	if [ "$2" -gt "$COMMIT" ]; then
		[ "$rc" = 0 ] || { echo "a retried message is not ready ($rc)" >&2; return 1; }
	else
		[ "$rc" = 1 ] || { echo "a claim got a leased message ($rc)" >&2; return 1; }
	fi
}
check_retry() { once "$1"; }

@test "reliability: mq-ack --retry killed at every system call" {
	crash_every_step retry '^renameat2\(.*"[0-9a-f]{16}/[0-9a-f]{16}\.1", RENAME_NOREPLACE\) = 0'
}

prep_delayed() { prep_leased "$1"; }
cmd_delayed() { CMD=(mq-ack --retry -d 1 "$1/q" "$(cat "$1/receipt")"); }
now_delayed() {
	local rc
	rc=$(claim_now "$1/q")
	[ "$rc" = 1 ] || { echo "a claim got a message held or delayed ($rc)" >&2; return 1; }
}
check_delayed() { once "$1"; }

@test "reliability: mq-ack --retry -d killed at every system call" {
	crash_every_step delayed '^renameat2\(.*"[0-9]{19}\.[0-9a-f]{16}\.1", RENAME_NOREPLACE\) = 0'
}

# --- a pop, and a handler run: the holder keeps a lock -----------------

# gone_or_once DIR N OUTPUT: killed after the ack (the unlink of the
# lease) the message is gone and OUTPUT holds its whole body; before it,
# the dead holder's lock is gone with it and the next receive gets the
# message at once, exactly once.
gone_or_once() {
	local d=$1 n=$2 out=$3 got
	got=$(drain "$d/q" "$d/got") || return 1
	fsck_clean "$d/q" || return 1
	[ "$(mq-recv "$d/q" >/dev/null 2>&1; echo $?)" = 1 ] || { echo "fsck made a message ready" >&2; return 1; }
	if [ "$n" -gt "$COMMIT" ]; then
		[ "$got" = 0 ] || { echo "acked message delivered again ($got)" >&2; return 1; }
		cmp "$out" "$T/body" >&2
	else
		[ "$got" = 1 ] || { echo "delivered $got times after the holder died, want once" >&2; return 1; }
		cmp "$d/got/1" "$T/body" >&2
	fi
}

prep_pop() { prep_ready "$1"; }
cmd_pop() { CMD=(mq-recv -o "$1/popped" "$1/q"); }
now_pop() { gone_or_once "$1" "$2" "$1/popped"; }
check_pop() { :; }

@test "reliability: mq-recv (a pop) killed at every system call" {
	crash_every_step pop '^unlinkat\([0-9]+, "[0-9a-f]{16}\.1\.k[0-9a-f]{12}\.[0-9]{19}", 0\) = 0'
}

prep_exec() { prep_ready "$1"; }
cmd_exec() { CMD=(mq-recv "$1/q" -- sh -c 'exec cat >"$0"' "$1/handled"); }
now_exec() { gone_or_once "$1" "$2" "$1/handled"; }
check_exec() { :; }

@test "reliability: mq-recv -- COMMAND (a handler run) killed at every system call" {
	crash_every_step exec '^unlinkat\([0-9]+, "[0-9a-f]{16}\.1\.k[0-9a-f]{12}\.[0-9]{19}", 0\) = 0'
}

# --- a topic fanning out to two subscribers ----------------------------

prep_fanout() { mkdir -p "$1"; mq-init --subscribe "$1/T" "$1/a" "$1/b"; }
cmd_fanout() { CMD=(mq-send "$1/T" "$T/body"); }
check_fanout() {
	local d=$1 n=$2 id ga gb want=0 s
	id=$(printed_id "$d")
	[ "$n" -gt "$COMMIT" ] && want=1
	# Recovery as a user gets it: a claim on a subscriber.
	ga=$(drain "$d/a" "$d/got-a") || return 1
	gb=$(drain "$d/b" "$d/got-b") || return 1
	[ "$ga" = "$gb" ] || { echo "subscriber a got $ga, b got $gb" >&2; return 1; }
	[ "$ga" = "$want" ] || { echo "each subscriber got $ga, want $want" >&2; return 1; }
	[ -z "$id" ] || [ "$ga" = 1 ] || { echo "printed $id, not delivered" >&2; return 1; }
	if [ "$want" = 1 ]; then
		cmp "$d/got-a/1" "$T/body" >&2 || return 1
		cmp "$d/got-b/1" "$T/body" >&2 || return 1
	fi
	[ -z "$(ls -A "$d/T/fanout" 2>/dev/null)" ] || { echo "fanout/ not finished" >&2; return 1; }
	for s in T a b; do fsck_clean "$d/$s" || return 1; done
	# Nothing more after fsck, in either subscriber.
	for s in a b; do
		[ "$(mq-recv "$d/$s" >/dev/null 2>&1; echo $?)" = 1 ] || { echo "$s: another copy" >&2; return 1; }
	done
}

@test "reliability: mq-send to a topic killed at every system call" {
	crash_every_step fanout '^renameat2\(.*"[0-9a-f]{16}\.[0-9]{19}\.[0-9]+", RENAME_NOREPLACE\) = 0'
}
