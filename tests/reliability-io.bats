#!/usr/bin/env bats
# I/O errors: each operation is run once under strace to list its
# system calls; then, for every call that writes, syncs, creates or
# renames, it is run again on a fresh queue with that one call failing
# (strace -e inject=NAME:error=ERRNO:when=K: the call does not run and
# returns the error).  EIO, ENOSPC and EDQUOT are injected so; ENOSPC
# also comes for real from a tiny tmpfs and from one out of inodes;
# short writes and EINTR come from LD_PRELOAD shims (tests/tools/
# shortwrite.c, tests/tools/eintr.c).  After each:
#
#  - one line on standard error naming the program, the queue (or the
#    object that failed: the output file, the receipt) and the reason;
#  - a sysexits status: 74 for EIO, 75 for ENOSPC, EDQUOT and EINTR;
#  - no id printed, and nothing deliverable: never a partial message;
#  - an fsync that failed is not retried and trusted: the error is final,
#    so a send whose sync failed once fails (the injection fails only
#    one call, so a retry would succeed and be caught here);
#  - the queue passes mq-fsck and takes the next send.
# Short writes and EINTR must be survived: the message arrives intact.
load helpers/common
load helpers/reliability

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	head -c 300000 /dev/urandom >"$T/big"
	printf 'small body\n' >"$T/small"
	printf 'one\ntwo\nthree\n' >"$T/lines"
}

teardown() {
	[ -z "${HOLDER:-}" ] || kill "$HOLDER" 2>/dev/null
	if [ -n "${TMPFS:-}" ] && mountpoint -q "$TMPFS" 2>/dev/null; then
		umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS" 2>/dev/null
	fi
	return 0
}

need_strace() { command -v strace >/dev/null || skip "strace is not installed"; }

strerror_of() {
	case $1 in
	EIO) echo "Input/output error" ;;
	ENOSPC) echo "No space left on device" ;;
	EDQUOT) echo "Disk quota exceeded" ;;
	esac
}

status_of() {
	case $1 in
	EIO) echo 74 ;;
	*) echo 75 ;;
	esac
}

# The calls each error is injected into, by their strace line.
WRITES='^(write|pwrite64|sendfile|fallocate|fsync|fdatasync|syncfs|renameat2|linkat|unlinkat)\('
CREATES='^(mkdirat\(|openat\(.*O_CREAT)'

# inject_each NAME ERRNO ERE: drive scenario NAME (prep_NAME DIR,
# cmd_NAME DIR setting CMD, check_NAME DIR LINE ERRNO RC) failing, one
# at a time, every call whose line in an untouched run matches ERE.
# Every failed check is listed; the test fails after trying them all.
inject_each() {
	local name=$1 err=$2 ere=$3 ref n sc k rc line d tried=0 bad=0 open at
	local -a plan
	ref="$T/ref-$name"
	rm -rf "$ref"
	"prep_$name" "$ref"
	"cmd_$name" "$ref"
	traced_env strace -qq -o "$ref/trace" "${CMD[@]}" >"$ref/out" 2>"$ref/err" ||
		fail "$name: the untouched run failed: $(cat "$ref/err")"
	grep -E '^[a-z_0-9]+\(' "$ref/trace" >"$ref/calls"
	syscall_names "$ref/trace" >"$ref/names"
	mapfile -t plan < <(echo; kill_plan "$ref/names")
	open=$(first_line_matching "$ref/trace" "^openat\\(AT_FDCWD, \"$ref")
	while read -r n; do
		line=$(sed -n "${n}p" "$ref/calls")
		read -r sc k <<<"${plan[n]}"
		d="$T/$name-$err-$n"
		rm -rf "$d"
		"prep_$name" "$d"
		"cmd_$name" "$d"
		rc=0
		traced_env strace -qq -o "$d/trace" -e inject="$sc:error=$err:when=$k" \
		    "${CMD[@]}" >"$d/out" 2>"$d/err" || rc=$?
		tried=$((tried + 1))
		# The failed call must be the one aimed at, counted from the
		# opening of the queue (a sanitizer's start-up varies).
		at=$(grep -E '^[a-z_0-9]+\(' "$d/trace" | grep -n '(INJECTED)$' | cut -d: -f1)
		at=$((${at:-0} - $(first_line_matching "$d/trace" "^openat\\(AT_FDCWD, \"$d")))
		if [ "$at" != $((n - open)) ]; then
			echo "$err at call $n ($line): not reached; the calls differ from run to run" >&2
			bad=$((bad + 1))
			continue
		fi
		CALL_N=$n
		if ! "check_$name" "$d" "$line" "$err" "$rc" >"$d/why" 2>&1; then
			echo "$err at call $n: ${line:0:100}" >&2
			echo "  exit $rc; stderr: $(head -c 300 "$d/err" | tr '\n' '|')" >&2
			sed 's/^/  /' "$d/why" >&2
			bad=$((bad + 1))
		fi
	done < <(grep -n -E "$ere" "$ref/calls" | cut -d: -f1)
	note "$name: $err injected at $tried calls, $bad wrong"
	echo "$name $err $tried $bad" >>"${IO_COUNTS:-/dev/null}"
	[ "$tried" -gt 0 ] || fail "$name: no call matches /$ere/"
	[ "$bad" = 0 ]
}

# each_error NAME ERRNO...: inject_each for each ERRNO (EIO into the
# calls that write, sync or rename; ENOSPC and EDQUOT into those and the
# calls that create), every one tried before the test fails.
each_error() {
	local name=$1 err ere rc failed=0
	shift
	for err in "$@"; do
		ere=$WRITES
		[ "$err" = EIO ] || ere="$WRITES|$CREATES"
		# A plain subshell keeps set -e; one in a condition would not.
		# Without bats's per-command DEBUG trap, which would take much
		# of the time of these hundreds of short commands; a failed
		# check is still listed and fails the test.
		set +e
		(trap - DEBUG; set +T; set -e; inject_each "$name" "$err" "$ere")
		rc=$?
		set -e
		[ "$rc" = 0 ] || failed=$((failed + 1))
	done
	[ "$failed" = 0 ] || fail "$name: $failed of $# errors handled wrongly (listed above)"
}

# one_line_error DIR PROG OBJECT ERRNO: DIR/err is exactly the line
# "PROG: OBJECT: reason".
one_line_error() {
	local want
	want="$2: $3: $(strerror_of "$4")"
	[ "$(cat "$1/err")" = "$want" ] || { echo "stderr is not '$want'"; return 1; }
}

# sent_nothing DIR QUEUE...: a failed send printed no id and left nothing
# deliverable and nothing in tmp/; the queues are fsck-clean, and the
# next send to the first (a topic, when others follow: its subscribers)
# is delivered.
sent_nothing() {
	local d=$1 q got
	local -a to
	shift
	[ ! -s "$d/out" ] || { echo "printed '$(cat "$d/out")'"; return 1; }
	for q in "$@"; do
		got=$(drain "$q" "$d/got-${q##*/}") || return 1
		[ "$got" = 0 ] || { echo "${q##*/}: $got delivered after a failed send"; return 1; }
		[ -z "$(ls -A "$q/tmp")" ] || { echo "${q##*/}: left in tmp/: $(ls "$q/tmp")"; return 1; }
		fsck_clean "$q" || return 1
	done
	echo after | mq-send -q "$1" || { echo "the next send failed"; return 1; }
	to=("$@")
	[ $# = 1 ] || to=("${@:2}")
	for q in "${to[@]}"; do
		[ "$(mq-recv "$q")" = after ] || { echo "${q##*/}: next send not delivered"; return 1; }
	done
}

# sent_once DIR BODY QUEUE...: each queue delivers exactly BODY, once.
sent_once() {
	local d=$1 body=$2 q got
	shift 2
	for q in "$@"; do
		got=$(drain "$q" "$d/got-${q##*/}") || return 1
		[ "$got" = 1 ] || { echo "${q##*/}: delivered $got times, want once"; return 1; }
		cmp "$d/got-${q##*/}/1" "$body" || return 1
		fsck_clean "$q" || return 1
	done
}

# check_send_outcome DIR LINE ERRNO RC BODY QUEUE...: the outcome of a
# send whose call LINE failed with ERRNO.
check_send_outcome() {
	local d=$1 line=$2 err=$3 rc=$4 body=$5 q=$6
	shift 5
	if [[ $line == "write(1, "* ]]; then
		# Sent; only its id could not be told.
		[ "$rc" = 74 ] || { echo "exit $rc, want 74"; return 1; }
		one_line_error "$d" mq-send stdout "$err" || return 1
		sent_once "$d" "$body" "$@"
		return
	fi
	[ "$rc" = "$(status_of "$err")" ] || { echo "exit $rc, want $(status_of "$err")"; return 1; }
	one_line_error "$d" mq-send "$q" "$err" || return 1
	sent_nothing "$d" "$@"
}

# --- mq-send -------------------------------------------------------------

prep_small() { mkdir -p "$1"; mq-init "$1/q"; echo prior | mq-send -q "$1/q"; mq-recv "$1/q" >/dev/null; }
cmd_small() { CMD=(mq-send "$1/q" "$T/small"); }
check_small() { check_send_outcome "$1" "$2" "$3" "$4" "$T/small" "$1/q"; }

@test "reliability: mq-send of a small message: EIO, ENOSPC, EDQUOT at each write, sync and rename" {
	need_strace
	each_error small EIO ENOSPC EDQUOT
}

prep_large() { mkdir -p "$1"; mq-init "$1/q"; }
cmd_large() { CMD=(mq-send "$1/q" "$T/big"); }
check_large() { check_send_outcome "$1" "$2" "$3" "$4" "$T/big" "$1/q"; }

@test "reliability: mq-send of a large message into a new bucket: EIO, ENOSPC, EDQUOT at each write, sync and rename" {
	need_strace
	each_error large EIO ENOSPC EDQUOT
}

prep_lines() { prep_small "$1"; }
cmd_lines() { CMD=(mq-send -l "$1/q" "$T/lines"); }
check_lines() {
	local d=$1 line=$2 err=$3 rc=$4 got printed i
	local -a want=(one two three)
	printed=$(grep -c . "$d/out" || true)
	if [[ $line == "write(1, "* ]]; then
		# Sent; only their ids could not be told.
		[ "$rc" = 74 ] || { echo "exit $rc, want 74"; return 1; }
		one_line_error "$d" mq-send stdout "$err" || return 1
		printed=3
	else
		[ "$rc" = "$(status_of "$err")" ] || { echo "exit $rc, want $(status_of "$err")"; return 1; }
		one_line_error "$d" mq-send "$d/q" "$err" || return 1
	fi
	# The messages whose ids were printed (a prefix of the batch) are
	# sent; the rest are not, not even in part.
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$got" = "$printed" ] || { echo "delivered $got, printed $printed ids"; return 1; }
	for ((i = 1; i <= got; i++)); do
		[ "$(cat "$d/got/$i")" = "${want[i - 1]}" ] || { echo "message $i is '$(cat "$d/got/$i")'"; return 1; }
	done
	[ -z "$(ls -A "$d/q/tmp")" ] || { echo "left in tmp/: $(ls "$d/q/tmp")"; return 1; }
	fsck_clean "$d/q"
}

@test "reliability: mq-send -l (a batch): EIO, ENOSPC, EDQUOT at each write, sync and rename" {
	need_strace
	each_error lines EIO ENOSPC EDQUOT
}

prep_topic() { mkdir -p "$1"; mq-init --subscribe "$1/T" "$1/a" "$1/b"; }
cmd_topic() { CMD=(mq-send "$1/T" "$T/small"); }
check_topic() {
	local d=$1 line=$2 err=$3 rc=$4 commit n
	# Past the topic's commit point (its file renamed into fanout/
	# and that synced) the send has succeeded whatever fails next:
	# recovery, run by a claim on a subscriber, finishes it.
	commit=$(first_line_matching "$T/ref-topic/calls" '^renameat2\(.*"[0-9a-f]{16}\.[0-9]{19}\.[0-9]+", RENAME_NOREPLACE\) = 0')
	# The injected call's own index: the same text may stand both
	# before and after the commit point.
	n=$CALL_N
	# The ids could not be printed: the message went to every
	# subscriber all the same (a topic itself holds nothing).
	if [[ $line == "write(1, "* ]]; then
		[ "$rc" = 74 ] || { echo "exit $rc, want 74"; return 1; }
		sent_once "$d" "$T/small" "$d/a" "$d/b" || return 1
		return
	fi
	if [ "$n" -gt $((commit + 1)) ]; then
		[ "$rc" = 0 ] || { echo "exit $rc after the commit point, want 0"; return 1; }
		sent_once "$d" "$T/small" "$d/a" "$d/b" || return 1
		[ -z "$(ls -A "$d/T/fanout" 2>/dev/null)" ] || { echo "fanout/ not finished"; return 1; }
		return
	fi
	check_send_outcome "$d" "$line" "$err" "$rc" "$T/small" "$d/T" "$d/a" "$d/b" || return 1
	[ -z "$(ls -A "$d/T/fanout" 2>/dev/null)" ] || { echo "fanout/ not empty"; return 1; }
}

@test "reliability: mq-send to a topic: EIO, ENOSPC, EDQUOT at each write, sync, link and rename" {
	need_strace
	each_error topic EIO ENOSPC EDQUOT
}

@test "reliability: mq-send: an EIO from fdatasync is final, not retried" {
	need_strace
	run --separate-stderr traced_env strace -qq -o "$T/trace" \
	    -e inject=fdatasync:error=EIO:when=1 mq-send "$Q" "$T/small"
	assert_failure 74
	assert_output ""
	assert_equal "$stderr" "mq-send: $Q: Input/output error"
	# The failed sync is the last sync, and nothing was renamed after it.
	run sed -n '/^fdatasync(.*INJECTED/,$p' "$T/trace"
	assert_line --index 0 --partial INJECTED
	lines=("${lines[@]:1}")
	refute_line --regexp '^(fsync|fdatasync|syncfs)\('
	refute_line --regexp '^renameat2\(.* = 0$'
	run mq-recv "$Q"
	assert_failure 1
}

@test "reliability: mq-send --at long past to a topic whose fan-out fails after its commit point: a claim delivers it" {
	need_strace
	mq-init --subscribe "$T/T" "$T/a"
	# The placing of the copy in a fails (the second rename, the first
	# being the commit point): the send is done, recovery places it.
	run --separate-stderr traced_env strace -qq -o "$T/trace" \
	    -e inject=renameat2:error=EIO:when=3 \
	    mq-send --at 1900-01-01T00:00Z "$T/T" "$T/small"
	assert_success
	assert_equal "$stderr" ""
	run -0 mq-recv "$T/a"
	assert_output "small body"
	assert_equal "$(find "$T/T/fanout" "$T/a/tmp" -mindepth 1)" ""
}

@test "reliability: mq-send to a topic whose listing of a subscriber's tmp/ fails after its commit point: a claim delivers it" {
	need_strace
	mq-init --subscribe "$T/T" "$T/a"
	# The only listing of a first send to a topic is the one that looks
	# in a's tmp/ for the copy to place: it fails, the send is done, and
	# recovery must still know the copy is owed.
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject=getdents64:error=EIO:when=1 mq-send "$T/T" "$T/small"
	assert_success
	assert_equal "$stderr" ""
	run -0 mq-recv "$T/a"
	assert_output "small body"
	assert_equal "$(find "$T/T/fanout" "$T/a/tmp" -mindepth 1)" ""
}

# A large body (20 MiB: 160 writes of 128 KiB, writeback started every
# 8 MiB) failing half way through its copy.

# nothing_sent_after RC ERRNO: the send failed as it must, printed no
# id, and left nothing in tmp/ or ready; the queue is fsck-clean.
nothing_sent_after() {
	[ "$status" = "$(status_of "$2")" ] || fail "$1: exit $status, want $(status_of "$2")"
	assert_output ""
	assert_equal "$stderr" "mq-send: $Q: $(strerror_of "$2")"
	assert_equal "$(ls -A "$Q/tmp")" ""
	assert_equal "$(ready_ids "$Q")" ""
	fsck_clean "$Q"
}

@test "reliability: mq-send of a large body: ENOSPC or EIO half way through, from a file or a pipe, exits 75 or 74 and leaves nothing" {
	need_strace
	head -c 20M /dev/urandom >"$T/huge"
	for err in ENOSPC EIO; do
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject=write:error=$err:when=80 mq-send "$Q" "$T/huge"
		nothing_sent_after "file, $err" "$err"
		run --separate-stderr bash -c 'cat "$3" | ASAN_OPTIONS=detect_leaks=0 \
		    strace -qq -o /dev/null -e inject=write:error="$1":when=80 \
		    mq-send "$2"' sh "$err" "$Q" "$T/huge"
		nothing_sent_after "pipe, $err" "$err"
	done
	# The space for the body is reserved after its first chunk: a disk
	# too full for it fails before the rest is copied (3 writes: the
	# header, the chunk, the error line).
	run --separate-stderr traced_env strace -qq -o "$T/trace" \
	    -e inject=fallocate:error=ENOSPC:when=1 mq-send "$Q" "$T/huge"
	nothing_sent_after "reserving" ENOSPC
	[ "$(grep -c '^write(' "$T/trace")" -le 3 ] ||
	    fail "$(grep -c '^write(' "$T/trace") writes before the reservation failed"
	mq-send -q "$Q" "$T/huge"
	mq-recv -o "$T/got" "$Q"
	cmp "$T/huge" "$T/got"
}

# given_back ID: message ID is ready again, its delivery not counted.
given_back() {
	local f
	f=$(find "$Q/new" -type f -name "$1.*")
	[ "${f##*.}" = 0 ] || fail "ready as '${f##*/}', want $1.0"
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "reliability: mq-recv of a large body: ENOSPC or EIO half way through the copy or at the sync gives it back and exits 74" {
	need_strace
	head -c 20M /dev/urandom >"$T/huge"
	id=$(mq-send "$Q" "$T/huge")
	for at in write:error=ENOSPC:when=80 write:error=EIO:when=80 \
	    fallocate:error=ENOSPC:when=1 fdatasync:error=EIO:when=1; do
		err=${at#*error=}
		err=${err%%:*}
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject="$at" mq-recv -o "$T/got" "$Q"
		[ "$status" = 74 ] || fail "$at: exit $status, want 74"
		assert_equal "$stderr" "mq-recv: $T/got: $(strerror_of "$err")"
		given_back "$id"
	done
	# To a pipe: sendfile failing half way, and a reader that stops.
	run --separate-stderr bash -c 'ASAN_OPTIONS=detect_leaks=0 strace -qq \
	    -o /dev/null -e inject=sendfile:error=EIO:when=100 mq-recv "$1" |
	    cat >/dev/null; exit "${PIPESTATUS[0]}"' sh "$Q"
	[ "$status" = 74 ] || fail "sendfile EIO: exit $status, want 74"
	assert_equal "$stderr" "mq-recv: stdout: Input/output error"
	given_back "$id"
	run --separate-stderr bash -c 'mq-recv "$1" | head -c 1000 >/dev/null
	    exit "${PIPESTATUS[0]}"' sh "$Q"
	[ "$status" = 74 ] || fail "reader gone: exit $status, want 74"
	assert_equal "$stderr" "mq-recv: stdout: Broken pipe"
	given_back "$id"
	mq-recv "$Q" | cmp - "$T/huge"
	fsck_clean "$Q"
}

# --- receiving and settling ---------------------------------------------

# A receive or settlement whose call failed: exit 74, one line naming
# the program, one of the objects (queue, output, receipt) and the
# reason; the message still delivered exactly once afterwards (after its
# lease, for a lease-only claim).
check_recv_outcome() {
	local d=$1 prog=$2 err=$3 rc=$4 got
	[ "$rc" = 74 ] || { echo "exit $rc, want 74"; return 1; }
	[ "$(wc -l <"$d/err")" = 1 ] || { echo "stderr is not one line"; return 1; }
	grep -qE "^$prog: ($d/q|$d/popped|[0-9a-f]{16}\.[0-9]+\.[kl][0-9a-f]{12}): $(strerror_of "$err")\$" "$d/err" ||
		{ echo "stderr does not name the queue, output or receipt"; return 1; }
	# A lease-only claim ('l') is free when its lease runs out; one
	# whose holder kept a lock ('k') as soon as the holder is gone.
	if [ -n "$(find "$d/q/cur" -name '*.l*' -print -quit)" ]; then
		wait_for 10 after_ns "$(newest_deadline "$d/q")" || return 1
	fi
	got=$(drain "$d/q" "$d/got") || return 1
	[ "$got" = 1 ] || { echo "delivered $got times afterwards, want once"; return 1; }
	cmp "$d/got/1" "$T/big" || return 1
	fsck_clean "$d/q"
}

prep_pop() { mkdir -p "$1"; mq-init "$1/q"; mq-send -q "$1/q" "$T/big"; }
cmd_pop() { CMD=(mq-recv -o "$1/popped" "$1/q"); }
check_pop() {
	# The ack (the unlink of the lease) failing leaves the body
	# written and the message to be delivered again: at least once.
	check_recv_outcome "$1" mq-recv "$3" "$4"
}

@test "reliability: mq-recv (a pop): EIO at each write, rename and unlink" {
	need_strace
	each_error pop EIO
}

# first_call NAME TEXT: which of its NAME calls (1 for the first) an
# untouched mq-recv of a copy of $Q makes with TEXT in its line.
first_call() {
	local k
	rm -rf "$T/ref"
	cp -a "$Q" "$T/ref"
	traced_env strace -qq -o "$T/trace" -e trace="$1" mq-recv "$T/ref" \
	    >/dev/null 2>&1
	k=$(grep -E "^$1\\(" "$T/trace" | grep -n -m1 -F -- "$2" | cut -d: -f1)
	[ -n "$k" ] && echo "$k"
}

@test "reliability: mq-recv: EIO reading a message's header exits 74 and leaves the message ready, not quarantined" {
	need_strace
	echo prior | mq-send -q "$Q"
	mq-recv "$Q" >/dev/null
	id=$(mq-send "$Q" "$T/small")
	k=$(first_call pread64 '"mq/1\n') || fail "no header read in the untouched run"
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject="pread64:error=EIO:when=$k" mq-recv "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-recv: $Q: Input/output error"
	assert_equal "$(quarantined)" ""
	assert_equal "$(ready_ids "$Q")" "$id"
	mq-recv "$Q" | cmp - "$T/small"
	fsck_clean "$Q"
}

@test "reliability: mq-recv: ENOSPC writing a group's holder exits 75 and leaves the group to the next claim" {
	need_strace
	a1=$(echo a1 | mq-send -g A "$Q")
	echo a2 | mq-send -q -g A "$Q"
	k=$(first_call write "\"$a1\"") || fail "no holder written in the untouched run"
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject="write:error=ENOSPC:when=$k" mq-recv "$Q"
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: No space left on device"
	assert_equal "$(ready_count)" 2
	run -0 mq-recv "$Q"
	assert_output a1
	run -0 mq-recv "$Q"
	assert_output a2
	fsck_clean "$Q"
}

@test "reliability: mq-recv: EMFILE or EIO looking for a group's holder in cur/ fails the claim instead of taking the group from the holder" {
	need_strace
	echo a1 | mq-send -q -g A "$Q"
	echo a2 | mq-send -q -g A "$Q"
	run -0 mq-recv -L 60 -o /dev/null "$Q"
	held=$(ls "$Q/cur")
	# A second claim comes to a2 and looks for its group's holder, a1:
	# which openat opens cur/ for that (the first after the group's
	# lock), and which getdents64 then lists it.
	rm -rf "$T/ref"
	cp -a "$Q" "$T/ref"
	run -1 traced_env strace -qq -o "$T/trace" -e trace=openat,getdents64 \
	    mq-recv -L 60 "$T/ref"
	read -r o g < <(awk '/^openat\(/ { o++ } /^getdents64\(/ { g++ }
	    /"\.lock"/ { lock = 1 }
	    lock && !ko && /^openat\([0-9]+, "\.",/ { ko = o; next }
	    ko && /^getdents64\(/ { print ko, g; exit }' "$T/trace")
	[ -n "$g" ] || fail "no look in cur/ after the group's lock"
	for at in "openat:error=EMFILE:when=$o" "getdents64:error=EIO:when=$g"; do
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject="$at" mq-recv -L 60 -o "$T/got" "$Q"
		case $at in
		*EMFILE*) assert_failure 75
			assert_equal "$stderr" "mq-recv: $Q: Too many open files" ;;
		*) assert_failure 74
			assert_equal "$stderr" "mq-recv: $Q: Input/output error" ;;
		esac
		[ ! -s "$T/got" ] || fail "$at: a2 was received while a1 is held"
		assert_equal "$(ls "$Q/cur")" "$held"
		assert_equal "$(ready_count)" 1
	done
	fsck_clean "$Q"
}

@test "reliability: mq-init rebuilding a lost seq whose listing of new/ fails (EIO) exits 74 and makes no counter" {
	need_strace
	echo one | mq-send -q "$Q"
	rm "$Q/seq"
	# The first listing is of new/, for the largest id in use.
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject=getdents64:error=EIO:when=1 mq-init "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-init: $Q: Input/output error"
	[ ! -e "$Q/seq" ] || fail "a counter was made from a cut listing: $(cat "$Q/seq")"
	mq-init "$Q"
	new=$(echo two | mq-send "$Q")
	assert [ "$new" \> "$(ready_ids "$Q" | head -n 1)" ]
}

@test "reliability: mq-recv: EIO listing new/ or a bucket exits 74, not 1 as if nothing were ready" {
	need_strace
	mq-send -q "$Q" "$T/small"
	id=$(ready_ids "$Q")
	# Two getdents64 calls a listing: delay/ and cur/ (the reaps), then
	# new/ (the 5th call) and the bucket (the 7th).
	for k in 5 7; do
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject="getdents64:error=EIO:when=$k" mq-recv "$Q"
		assert_failure 74
		assert_equal "$stderr" "mq-recv: $Q: Input/output error"
		assert_equal "$(ready_ids "$Q")" "$id"
	done
	mq-recv "$Q" | cmp - "$T/small"
	fsck_clean "$Q"
}

@test "reliability: a waiting mq-recv whose look for the next lease end fails (EIO listing cur/) exits 74 instead of sleeping past it" {
	need_strace
	echo body | mq-send -q "$Q"
	mq-recv -L 6 -o /dev/null "$Q" >/dev/null
	# Which getdents64 lists cur/ to time the wait: in the second look
	# at cur/ after the waiter is made (the first is the claim's).
	rm -rf "$T/ref"
	cp -a "$Q" "$T/ref"
	run -1 traced_env strace -qq -o "$T/trace" \
	    -e trace=openat,getdents64,inotify_init1 mq-recv -t 1 "$T/ref"
	k=$(awk '/^openat\([0-9]+, "cur"/ { cur = $NF }
	    /^getdents64\(/ { g++ }
	    /^inotify_init1\(/ { w = 1 }
	    w && index($0, "openat(" cur ", \".\",") == 1 && ++n == 2 { want = 1 }
	    want && /^getdents64\(/ { print g; exit }' "$T/trace")
	[ -n "$k" ] || fail "no timing look at cur/ in the untouched run"
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject="getdents64:error=EIO:when=$k" mq-recv -t 8 -o "$T/got" "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-recv: $Q: Input/output error"
	wait_for 10 after_ns "$(newest_deadline "$T/q")"
	mq-recv "$Q" | cmp - <(echo body)
}

@test "reliability: mq-ls and mq-stat: EIO listing a bucket or a state's folder exits 74, not a listing or counts without its messages" {
	need_strace
	mq-send -q "$Q" "$T/small"
	mq-send -q -d 1h "$Q" "$T/small"
	# Two getdents64 calls a listing: new/ (1, 2), its bucket (3, 4),
	# delay/ (5, 6), cur/ (7, 8), dead/ and quarantine/; the first call
	# of each after new/'s, then the last of delay/'s (cut after its
	# entries).
	for prog in mq-ls mq-stat; do
		for k in 3 5 6 7 9 11; do
			run --separate-stderr traced_env strace -qq -o /dev/null \
			    -e inject="getdents64:error=EIO:when=$k" "$prog" "$Q"
			assert_failure 74
			assert_equal "$stderr" "$prog: $Q: Input/output error"
		done
	done
	run -0 mq-ls "$Q"
	assert_equal "${#lines[@]}" 2
}

@test "reliability: mq-recv --verify DIR whose listing fails (EIO) exits 74 and delivers nothing" {
	need_strace
	mkdir "$T/keys"
	mq-keygen "$T/keys/a"
	mq-send -q "$Q" "$T/small"
	id=$(ready_ids "$Q")
	# The first listing is that of the keys' directory.
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject=getdents64:error=EIO:when=1 mq-recv --verify "$T/keys" "$Q"
	assert_failure 74
	assert_output ""
	assert_equal "$stderr" "mq-recv: $T/keys: Input/output error"
	assert_equal "$(ready_ids "$Q")" "$id"
}

@test "reliability: mq-recv where locks fail (no lock manager) says so, not that the queue is empty" {
	need_strace
	id=$(mq-send "$Q" "$T/small")
	k=$(first_call fcntl F_OFD_GETLK) || fail "no lock test in the untouched run"
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject="fcntl:error=ENOLCK:when=$k+" mq-recv "$Q"
	assert_failure 71
	assert_equal "$stderr" "mq-recv: $Q: No locks available"
	assert_equal "$(ready_ids "$Q")" "$id"
	mq-recv "$Q" | cmp - "$T/small"
	fsck_clean "$Q"
}

prep_ack() { prep_pop "$1"; mq-recv -L 2 -o /dev/null "$1/q" >"$1/receipt"; }
cmd_ack() { CMD=(mq-ack "$1/q" "$(cat "$1/receipt")"); }
check_ack() { check_recv_outcome "$1" mq-ack "$3" "$4"; }

@test "reliability: mq-ack: EIO at the unlink" {
	need_strace
	each_error ack EIO
}

@test "reliability: mq-ack: EIO listing cur/ for the lease exits 74, not 1 as if the receipt were stale" {
	need_strace
	echo body | mq-send -q "$Q"
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	lease=$(ls "$Q/cur")
	for act in "" --retry --fail "--extend 10m"; do
		# shellcheck disable=SC2086 # the action and its argument
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject=getdents64:error=EIO:when=1 mq-ack $act "$Q" "$r"
		[ "$status" = 74 ] || fail "mq-ack $act: exit $status, want 74"
		assert_equal "$stderr" "mq-ack: $r: Input/output error"
		assert_equal "$(ls "$Q/cur")" "$lease"
	done
	run -0 mq-ack "$Q" "$r"
	assert_equal "$(ls "$Q/cur")" ""
}

prep_retry() { prep_ack "$1"; }
cmd_retry() { CMD=(mq-ack --retry "$1/q" "$(cat "$1/receipt")"); }
check_retry() { check_recv_outcome "$1" mq-ack "$3" "$4"; }

@test "reliability: mq-ack --retry: EIO at the rename" {
	need_strace
	each_error retry EIO
}

# --- a held message ---------------------------------------------------------

@test "reliability: a consumer that cannot open a held lease (EMFILE, ENFILE, ENOMEM, EACCES) leaves it with its holder" {
	need_strace
	mq-init --lease 600 "$Q"
	id=$(echo held | mq-send "$Q")
	# The holder keeps its lock for as long as its command runs.
	mq-recv "$Q" -- bash -c 'touch "$1/holding"; for i in $(seq 600); do
	    [ -e "$1/go" ] && exit 0; sleep 0.05; done; exit 1' sh "$T" \
	    >/dev/null 2>"$T/holder.err" 3>&- &
	HOLDER=$!
	wait_for 10 test -e "$T/holding"
	lease=$(find "$Q/cur" -type f -printf '%f\n')
	[[ $lease == "$id".1.k* ]] || fail "not held with a lock: $lease"
	# Which openat of a second consumer looks at the lease's holder.
	run -1 traced_env strace -qq -o "$T/ref" -e trace=openat mq-recv "$Q"
	k=$(grep -E '^openat\(' "$T/ref" | grep -n -m1 -F "\"$lease\"" | cut -d: -f1)
	[ -n "$k" ] || fail "the second consumer never opened $lease"
	for err in EMFILE ENFILE ENOMEM EACCES; do
		run traced_env strace -qq -o /dev/null \
		    -e inject="openat:error=$err:when=$k" mq-recv -o "$T/got" "$Q"
		[ "$status" = 1 ] || fail "$err: exit $status, want 1 (nothing ready)"
		[ ! -s "$T/got" ] || fail "$err: the held message was received again"
		assert_equal "$(ls "$Q/cur")" "$lease"
		assert_equal "$(ready_count)" 0
	done
	touch "$T/go"
	wait "$HOLDER"
	HOLDER=
	run -1 mq-recv "$Q"
	fsck_clean "$Q"
}

# --- a message's priority on its way back to new/ --------------------------

# header_open FILE COMMAND...: which openat call (1 for the first) an
# untouched COMMAND makes of FILE, the message whose header it reads to
# learn its priority.  COMMAND runs on a copy of $Q, named $T/ref.
header_open() {
	local file=$1 k
	shift
	rm -rf "$T/ref"
	cp -a "$Q" "$T/ref"
	traced_env strace -qq -o "$T/trace" -e trace=openat "$@" >/dev/null 2>&1
	k=$(grep -E '^openat\(' "$T/trace" | grep -n -m1 -F "\"$file\"" |
	    cut -d: -f1)
	[ -n "$k" ] && echo "$k"
}

@test "reliability: mq-redrive that cannot read a dead letter's priority (EMFILE, ENFILE, ENOMEM, EIO) leaves it dead and exits 75 or 74, not redriven at priority 0" {
	need_strace
	id=$(echo urgent | mq-send -p 7 "$Q")
	mq-ack --fail "$Q" "$(mq-recv -L 60 -o /dev/null "$Q")"
	dead=$(names_in dead)
	k=$(header_open "$dead" mq-redrive "$T/ref") || fail "mq-redrive never opened $dead"
	for err in EMFILE ENFILE ENOMEM EIO; do
		run --separate-stderr traced_env strace -qq -o /dev/null \
		    -e inject="openat:error=$err:when=$k" mq-redrive "$Q"
		case $err in
		EMFILE) want=75 text="Too many open files" ;;
		ENFILE) want=75 text="Too many open files in system" ;;
		ENOMEM) want=75 text="Cannot allocate memory" ;;
		EIO) want=74 text="Input/output error" ;;
		esac
		assert_failure "$want"
		assert_equal "$stderr" "mq-redrive: $Q: $text"
		assert_equal "$output" ""
		assert_equal "$(names_in dead)" "$dead"
		assert_equal "$(ready_count)" 0
	done
	run mq-redrive "$Q"
	assert_output 1
	[[ $(basename "$(bucket_of "$id")") == p7-* ]] ||
	    fail "redriven into $(bucket_of "$id"), not a priority 7 bucket"
	fsck_clean "$Q"
}

@test "reliability: a reaper that cannot read an expired lease's priority (EMFILE) leaves it in cur/ and fails 75; the next claim has it first" {
	need_strace
	early=$(echo early | mq-send "$Q")
	id=$(echo urgent | mq-send -p 7 "$Q")
	r=$(mq-recv -L 1 -o /dev/null "$Q")
	[[ $r == "$id".* ]] || fail "claimed $r, not the priority 7 message $id"
	end=$(lease_deadline "$r")
	wait_for 10 after_ns "$end"
	lease=$(names_in cur)
	k=$(header_open "$lease" mq-recv -o /dev/null "$T/ref") ||
	    fail "mq-recv never opened $lease"
	run --separate-stderr traced_env strace -qq -o /dev/null \
	    -e inject="openat:error=EMFILE:when=$k" mq-recv "$Q"
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: Too many open files"
	assert_equal "$output" ""
	assert_equal "$(names_in cur)" "$lease"
	assert_equal "$(ready_ids "$Q")" "$early"
	run mq-recv "$Q"
	assert_success
	assert_output urgent
}

# --- a decoded body on its way to a handler --------------------------------

# handle_failing CALL: send $T/big compressed, its id in $id, and run
# mq-recv with a handler saving it to $T/handled, CALL failing in
# mq-recv's children (tests/tools/childfail.c).
handle_failing() {
	id=$(mq-send -z "$Q" "$T/big")
	run --separate-stderr preload childfail env CHILDFAIL="$1" \
	    mq-recv "$Q" -- sh -c 'cat >"$1/handled"' sh "$T"
}

@test "reliability: a compressed body whose decoder cannot be started is not given to the handler as empty, and the message is kept" {
	handle_failing fork
	assert_failure 75
	assert_equal "$stderr" "mq-recv: $Q: Resource temporarily unavailable"
	[ ! -e "$T/handled" ] || fail "the handler ran, with $(wc -c <"$T/handled") bytes"
	mq-recv "$Q" | cmp - "$T/big"
	fsck_clean "$Q"
}

@test "reliability: a handler that exits 0 after its decoded body failed part way does not ack the message" {
	handle_failing pread
	assert_failure 74
	assert_equal "$stderr" "mq-recv: $Q: Input/output error"
	got=$(wc -c <"$T/handled")
	[ "$got" -lt 300000 ] || fail "the handler got the whole body ($got bytes): nothing failed"
	cmp -s -n "$got" "$T/handled" "$T/big" || fail "the handler's $got bytes are not the body's first"
	assert_equal "$(mq-ls "$Q" | awk '{ print $1 }')" "$id"
	mq-recv "$Q" -- sh -c 'cat >"$1/again"' sh "$T"
	cmp "$T/again" "$T/big"
	fsck_clean "$Q"
}

@test "reliability: mq-watch retries a message whose decoded body failed part way, though its handler exited 0" {
	id=$(mq-send -z "$Q" "$T/big")
	run --separate-stderr preload childfail env CHILDFAIL=pread \
	    mq-watch --drain "$Q" -- sh -c 'cat >"$1/handled"' sh "$T"
	assert_success
	[[ $stderr == *"mq-watch: $Q: $id attempt 1: Input/output error ("* ]] ||
	    fail "no line for the failed attempt: $stderr"
	[ "$(wc -c <"$T/handled")" -lt 300000 ] || fail "the handler got the whole body"
	assert_equal "$(mq-ls "$Q" | awk '{ print $1, $2, $5 }')" "$id delayed 1"
	mq-recv -t 10 "$Q" -- sh -c 'cat >"$1/again"' sh "$T"
	cmp "$T/again" "$T/big"
	fsck_clean "$Q"
}

# --- a full filesystem ----------------------------------------------------

# small_tmpfs OPTIONS: a tmpfs of its own on $TMPFS, for root.
small_tmpfs() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
	TMPFS="$T/fs"
	mkdir -p "$TMPFS"
	mount -t tmpfs -o "$1" tmpfs "$TMPFS" || skip "cannot mount a tmpfs here"
	FQ="$TMPFS/q"
	mq-init "$FQ"
}

@test "reliability: mq-send on a full filesystem exits 75 naming the queue, and leaves nothing" {
	small_tmpfs size=256k
	id=$(echo before | mq-send "$FQ")
	base64 -w 1000 "$T/big" >"$T/biglines"
	wrong=0
	for input in file stdin batch; do
		case $input in
		file) run --separate-stderr mq-send "$FQ" "$T/big" ;;
		stdin) run --separate-stderr mq-send "$FQ" <"$T/big" ;;
		batch) run --separate-stderr mq-send -l "$FQ" "$T/biglines" ;;
		esac
		note "$input larger than the free space: exit $status: $stderr"
		# Nothing of it is left, whatever it printed.
		assert_equal "$(ls -A "$FQ/tmp")" ""
		assert_equal "$(ready_ids "$FQ")" "$id"
		if [ "$status" != 75 ] || [ -n "$output" ] ||
		    [ "$stderr" != "mq-send: $FQ: No space left on device" ]; then
			echo "$input: want exit 75 and 'mq-send: $FQ: No space left on device'" >&2
			wrong=$((wrong + 1))
		fi
	done
	fsck_clean "$FQ"
	assert_equal "$(mq-recv "$FQ")" before
	# Space again: sending works.
	echo after | mq-send -q "$FQ"
	assert_equal "$(mq-recv "$FQ")" after
	assert_equal "$wrong" 0
}

@test "reliability: mq-recv -o onto a full filesystem exits 74 naming FILE and gives the message back" {
	small_tmpfs size=256k
	id=$(mq-send "$Q" "$T/big")
	run --separate-stderr mq-recv -o "$TMPFS/got" "$Q"
	assert_failure 74
	assert_output ""
	assert_equal "$stderr" "mq-recv: $TMPFS/got: No space left on device"
	assert_equal "$(ready_ids "$Q")" "$id"
	# The whole body was never written: its space was not there.
	[ "$(stat -c %s "$TMPFS/got")" = 0 ]
	mq-recv -o "$T/got" "$Q"
	cmp "$T/big" "$T/got"
}

@test "reliability: mq-send out of inodes exits 75 naming the queue; what was sent is intact" {
	small_tmpfs size=4m,nr_inodes=40
	n=0
	while :; do
		echo "message $n" >"$T/m"
		run --separate-stderr mq-send "$FQ" "$T/m"
		[ "$status" = 0 ] || break
		n=$((n + 1))
		[ "$n" -lt 100 ] || fail "40 inodes held 100 messages?"
	done
	note "out of inodes after $n messages: exit $status: $stderr"
	assert_failure 75
	assert_output ""
	assert_equal "$stderr" "mq-send: $FQ: No space left on device"
	assert_equal "$(ls -A "$FQ/tmp")" ""
	fsck_clean "$FQ"
	for ((i = 0; i < n; i++)); do
		assert_equal "$(mq-recv "$FQ")" "message $i"
	done
	run mq-recv "$FQ"
	assert_failure 1
	echo again | mq-send -q "$FQ"
	assert_equal "$(mq-recv "$FQ")" again
}

@test "reliability: mq-send that finds its temporary name taken (EEXIST) fails and leaves the file that is there alone" {
	need_strace
	traced_env strace -qq -o "$T/ref" -e trace=openat mq-send -q "$Q" "$T/small"
	k=$(grep -E '^openat\(' "$T/ref" | grep -n -m1 O_EXCL | cut -d: -f1)
	[ -n "$k" ] || fail "no exclusive create in the untouched run"
	run --separate-stderr traced_env strace -qq -o "$T/trace" \
	    -e trace=openat,unlinkat -e inject="openat:error=EEXIST:when=$k" \
	    mq-send "$Q" "$T/small"
	assert_failure 71
	assert_equal "$stderr" "mq-send: $Q: File exists"
	assert_output ""
	run grep -c '^unlinkat(' "$T/trace"
	assert_output 0
}

@test "reliability: mq-send -l whose commit fails part way prints the ids it sent before it says why" {
	need_strace
	# Renames: the first finds no bucket yet, makes it and tries again;
	# the third is the second message's.
	run -0 traced_env strace -f -qq -o /dev/null -e inject=renameat2:error=EIO:when=3 \
	    bash -c 'mq-send -l "$1" "$2" 2>&1; echo "exit $?"' sh "$Q" "$T/lines"
	id=$(ready_ids "$Q")
	[ -n "$id" ] || fail "nothing sent"
	assert_equal "$output" "$(printf '%s\nmq-send: %s: Input/output error\nexit 74' "$id" "$Q")"
	assert_equal "$(mq-recv "$Q")" one
	fsck_clean "$Q"
}

@test "reliability: mq-send -l that fails while a group is being committed prints that group's ids before it says why" {
	need_strace
	# A slow disk (each syncfs takes a second) keeps the first group in
	# flight while the line too long for the queue is reached.
	mq-init --max-size 100 "$Q"
	{ seq 1 1500; head -c 300 /dev/zero | tr '\0' x; echo; echo after; } >"$T/toolong"
	run -0 traced_env strace -f -qq -o /dev/null -e trace=syncfs \
	    -e inject=syncfs:delay_exit=1000000 \
	    bash -c 'mq-send -l "$1" "$2" 2>&1; echo "exit $?"' sh "$Q" "$T/toolong"
	ids=$(ready_ids "$Q")
	[ -n "$ids" ] || fail "nothing sent"
	assert_equal "$output" "$(printf "%s\nmq-send: %s: Larger than the queue's max-size\nexit 65" "$ids" "$Q")"
	fsck_clean "$Q"
}

@test "reliability: mq-send -l of many groups out of inodes prints exactly the ids it sent, in order" {
	# Groups of up to 1024 lines: the full ones are committed behind the
	# next, which runs out of inodes while one may be in flight.
	small_tmpfs size=64m,nr_inodes=3000
	seq -f 'line %g' 0 4999 >"$T/many"
	run --separate-stderr mq-send -l "$FQ" "$T/many"
	note "out of inodes after ${#lines[@]} lines: exit $status: $stderr"
	assert_failure 75
	assert_equal "$stderr" "mq-send: $FQ: No space left on device"
	[ "${#lines[@]}" -ge 2048 ] || fail "only ${#lines[@]} ids: two groups fit"
	assert_equal "$output" "$(ready_ids "$FQ")"
	assert_equal "$(ls -A "$FQ/tmp")" ""
	fsck_clean "$FQ"
	mq-watch --drain "$FQ" >"$T/got"
	assert_equal "$(cat "$T/got")" "$(head -n "${#lines[@]}" "$T/many")"
}

# --- short writes and EINTR ---------------------------------------------

# preload SHIM COMMAND...: run COMMAND with tests/tools/SHIM.c loaded.
preload() {
	local so
	so=$(tool "$1.so")
	shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 LD_PRELOAD="$so" "$@"
}

# survives SHIM: every kind of send, and receives to a file and to a
# pipe, with SHIM loaded, deliver every body intact.
survives() {
	local shim=$1 s i
	shift
	mq-init --subscribe "$T/T" "$T/a" "$T/b"
	for s in small big; do
		run --separate-stderr preload "$shim" mq-send "$Q" "$T/$s"
		assert_success
		is_id "$output"
		run --separate-stderr preload "$shim" sh -c 'mq-send "$1" <"$2"' sh "$Q" "$T/$s"
		assert_success
		run --separate-stderr preload "$shim" mq-send "$T/T" "$T/$s"
		assert_success
	done
	run --separate-stderr preload "$shim" mq-send -l "$Q" "$T/lines"
	assert_success
	assert_equal "${#lines[@]}" 3
	for s in small big; do
		for i in 1 2; do
			preload "$shim" mq-recv -o "$T/got" "$Q"
			cmp "$T/got" "$T/$s"
		done
		preload "$shim" mq-recv "$T/a" | cmp - "$T/$s"
		preload "$shim" mq-recv "$T/b" -- sh -c 'cat >"$0"' "$T/got-b"
		cmp "$T/got-b" "$T/$s"
	done
	for s in one two three; do
		assert_equal "$(preload "$shim" mq-recv "$Q")" "$s"
	done
	fsck_clean "$Q"
}

@test "reliability: short writes (at most one byte a write) lose nothing" {
	survives shortwrite
}

@test "reliability: short pwrites (at most one byte) lose nothing" {
	SHORTWRITE_PWRITE=1 survives shortwrite
}

@test "reliability: EINTR from reads and writes, at random, loses nothing" {
	for seed in 1 2 3 4 5; do
		EINTR_SEED=$seed survives eintr
		rm -rf "$T/T" "$T/a" "$T/b"
	done
}

@test "reliability: EINTR from positioned reads and writes too: each send arrives whole or fails 75, naming the queue" {
	ok=0 failed=0
	for seed in $(seq 1 30); do
		run --separate-stderr env EINTR_SEED="$seed" EINTR_PWRITE=1 \
		    bash -c 'preload() { so=$1; shift; ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD="$so" "$@"; }; preload "$@"' \
		    sh "$(tool eintr.so)" mq-send "$Q" "$T/big"
		if [ "$status" = 0 ]; then
			ok=$((ok + 1))
			assert_equal "$(mq-recv "$Q" | cmp - "$T/big" && echo same)" same
		else
			failed=$((failed + 1))
			assert_failure 75
			assert_equal "$stderr" "mq-send: $Q: Interrupted system call"
			run mq-recv "$Q"
			assert_failure 1
			assert_equal "$(ls -A "$Q/tmp")" ""
		fi
	done
	note "30 sends with EINTR in pwrite and pread as well: $ok sent, $failed failed cleanly (75)"
	fsck_clean "$Q"
}
