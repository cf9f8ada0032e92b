#!/usr/bin/env bats
# One queue shared by several hosts over a network filesystem.  This
# kernel has no NFS client, so (a) hosts are mount namespaces that reach
# one queue directory by two different paths: a bind mount, and a FUSE
# bindfs mount, through which inotify sees nothing, so a watcher there
# must poll; and (b) NFS's failure modes come from an LD_PRELOAD shim
# (tests/tools/nfs-shim.c): no RENAME_NOREPLACE, retransmitted renames
# and links that succeeded but report ENOENT or EEXIST, flock() emulated
# with byte-range locks, stale .nfsXXXX files, coarse times.  Every
# message must be delivered exactly once, each producer's in order, and
# nothing quarantined.  With MQ_TEST_NFS set to a directory on a real NFS
# mount, the exactly-once suite runs there too.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/watch

# Three producers of 100 sends each; 30 under AddressSanitizer, where
# every process start costs several milliseconds more.
setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	export T
	PRODUCERS=3
	PER_PRODUCER=100
	if under_asan; then PER_PRODUCER=30; fi
	export PRODUCERS PER_PRODUCER
	# The shim and an ASan runtime both want to come first.
	export ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0"
	: >"$T/pids"
	: >"$T/errors"
}

# Kill what a test left running, by pid, once sure the pid is still one
# of this test's processes (its command line names the test's directory):
# a pid that ended long ago may have been given to another process.
teardown() {
	local pid
	while read -r pid; do
		[ -n "$pid" ] && grep -qF "$T" "/proc/$pid/cmdline" 2>/dev/null &&
		    kill -9 "$pid" 2>/dev/null
	done <"$T/pids"
	bg_cleanup
	if [ -n "${NFS_DIR:-}" ]; then
		rm -rf "$NFS_DIR"
	fi
	return 0
}

# --- what every scenario checks ------------------------------------------

# expected: every message sent, sorted; $EXTRA is one more, if set.
expected() {
	local k
	{
		[ -n "${EXTRA:-}" ] && echo "$EXTRA"
		for k in $(seq 1 "$PRODUCERS"); do
			seq 1 "$PER_PRODUCER" | sed "s/^/$k /"
		done
	} | sort
}

# same_set FILE: FILE holds exactly the messages sent, each once.
same_set() {
	local dups
	dups=$(sort "$1" | uniq -d)
	if [ -n "$dups" ]; then
		echo "delivered more than once: $(grep -c . <<<"$dups") messages, such as"
		head -n 5 <<<"$dups"
		return 1
	fi
	diff <(expected) <(sort "$1") | head -n 20
	cmp -s <(expected) <(sort "$1")
}

# in_order FILE: each producer's messages appear in FILE in the order
# they were sent.
in_order() {
	awk '{ if ($2 <= last[$1]) { print "out of order: " $0; bad = 1 }
	       last[$1] = $2 } END { exit bad }' "$1"
}

# nothing_left QUEUE: no message anywhere, nothing quarantined; .nfs
# files do not count.
nothing_left() {
	local left
	left=$(find "$1/new" "$1/cur" "$1/tmp" "$1/delay" "$1/dead" \
	    "$1/quarantine" -type f ! -name '.nfs*' 2>/dev/null)
	[ -z "$left" ] || { echo "left behind: $left"; return 1; }
}

# has_inotify PID: PID holds an inotify descriptor.
has_inotify() {
	local fd
	for fd in "/proc/$1/fd"/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = 'anon_inode:inotify' ] &&
		    return 0
	done
	return 1
}

# --- producers and consumers, run on a "host" or under the shim ----------
# $RUN is prepended to every mq command: empty, or "env LD_PRELOAD=...".

# producer K DIR: send "K I" for I = 1..PER_PRODUCER to DIR/q.
producer() {
	local i
	for i in $(seq 1 "$PER_PRODUCER"); do
		printf '%s' "$1 $i" | $RUN mq-send -q "$2/q" 2>>"$T/send.err" ||
		    echo "send $1 $i: $?: $(tail -n 1 "$T/send.err")" >>"$T/errors"
	done
}

# producers DIR: all producers at once, until each is done.
producers() {
	local k pids=()
	for k in $(seq 1 "$PRODUCERS"); do
		producer "$k" "$1" &
		pids+=($!)
	done
	wait "${pids[@]}"
}

# recv_loop DIR: receive from DIR/q, one body a line, until the producers
# are done and nothing is ready; any status but 0 and 1 is an error.
recv_loop() {
	local rc
	for (( ; ; )); do
		$RUN mq-recv -t 1 "$1/q" && { echo; continue; }
		rc=$?
		[ "$rc" -eq 1 ] || { echo "recv: $rc" >>"$T/errors"; return 1; }
		[ -f "$T/producers.done" ] &&
		    [ -z "$(find "$1/q/new" -type f ! -name '.nfs*')" ] && return 0
	done
}

# consumers DIR: an mq-watch stream consumer and a receive loop on DIR/q;
# the watcher runs until $T/stop appears.
consumers() {
	local wpid i rc
	$RUN mq-watch "$1/q" >"$T/watch.out" 2>"$T/watch.err" &
	wpid=$!
	echo "$wpid" >>"$T/pids"
	echo "$wpid" >"$T/watch.pid"
	# Tests run under set -e: a failing loop must not end this function
	# before the watcher is stopped.
	recv_loop "$1" >"$T/recv.out" || true
	touch "$T/recv.done"
	for ((i = 0; i < 1200; i++)); do
		[ -f "$T/stop" ] && break
		sleep 0.05
	done
	kill -TERM "$wpid" 2>/dev/null || true
	rc=0
	wait "$wpid" || rc=$?
	echo "$rc" >"$T/watch.rc"
	if [ "$rc" -ne 0 ]; then
		echo "watch: $rc: $(tail -n 1 "$T/watch.err")" >>"$T/errors"
	fi
}

# received: how many messages the consumers wrote out.
received() {
	cat "$T/watch.out" "$T/recv.out" 2>/dev/null | grep -c .
}

all_received() {
	[ -s "$T/errors" ] && return 0
	[ "$(received)" -ge $((PRODUCERS * PER_PRODUCER)) ]
}

export -f producer producers recv_loop consumers

# check_delivery QUEUE: what the consumers got is every message once, in
# each producer's order per consumer, and the queue is empty.
check_delivery() {
	cat "$T/watch.out" "$T/recv.out" >"$T/got"
	run same_set "$T/got"
	if [ "$status" -ne 0 ] || [ -s "$T/errors" ]; then
		fail "$(printf '%s errors, such as:\n%s\ndelivered:\n%s' \
		    "$(grep -c . "$T/errors")" "$(head -n 5 "$T/errors")" \
		    "${output:-as sent}")"
	fi
	run in_order "$T/watch.out"
	assert_success
	run in_order "$T/recv.out"
	assert_success
	run nothing_left "$1"
	assert_success
}

# --- (a) hosts as mount namespaces -----------------------------------------

# need_mounts: mount namespaces and bind mounts are allowed here.
need_mounts() {
	mkdir -p "$T/probe.a" "$T/probe.b"
	unshare -m sh -c 'mount --bind "$1" "$2"' _ "$T/probe.a" "$T/probe.b" \
	    2>/dev/null ||
	    skip "mount namespaces or bind mounts are not allowed here (unshare -m, mount --bind need CAP_SYS_ADMIN)"
}

# need_bindfs: bindfs is installed (apt-get as root) and FUSE works.
need_bindfs() {
	need_mounts
	[ -c /dev/fuse ] || skip "no /dev/fuse: FUSE mounts are not possible here"
	if ! command -v bindfs >/dev/null; then
		[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
		    skip "bindfs is not installed (apt-get install bindfs, as root)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q bindfs \
		    >/dev/null 2>&1 ||
		    { apt-get update -q >/dev/null 2>&1 &&
		    DEBIAN_FRONTEND=noninteractive apt-get install -y -q bindfs \
		    >/dev/null 2>&1; }
		command -v bindfs >/dev/null ||
		    skip "bindfs could not be installed (apt-get install bindfs)"
	fi
	unshare -m sh -c 'bindfs "$1" "$2" && fusermount -u "$2"' _ \
	    "$T/probe.a" "$T/probe.b" 2>/dev/null ||
	    skip "bindfs cannot mount here (FUSE not permitted)"
}

# on_host KIND DIR COMMAND...: run COMMAND in a mount namespace of its own
# (a "host") where the spool directory is mounted at DIR, by a bind mount
# (KIND bind) or through FUSE (KIND fuse).  FUSE's bindfs is recorded so
# that teardown kills it, and unmounted when COMMAND is done.
on_host() {
	unshare -m bash -c '
		echo "$$" >>"$T/pids"
		kind=$1 dir=$2
		shift 2
		case $kind in
		bind)
			mount --bind "$SPOOL" "$dir" || exit 90 ;;
		fuse)
			bindfs -f "$SPOOL" "$dir" 2>>"$T/bindfs.err" &
			fuse=$!
			echo "$fuse" >>"$T/pids"
			for ((i = 0; i < 200; i++)); do
				[ "$(stat -f -c %t "$dir")" = 65735546 ] && break
				sleep 0.05
			done
			[ "$(stat -f -c %t "$dir")" = 65735546 ] || exit 91 ;;
		esac
		"$@"
		rc=$?
		# FUSE releases files a moment after their last close: the
		# mount may be busy for that moment.
		if [ -n "${fuse:-}" ]; then
			for ((i = 0; i < 100; i++)); do
				fusermount -u "$dir" 2>/dev/null && break
				sleep 0.1
			done
			[ "$i" -lt 100 ] || fusermount -u -z "$dir" ||
			    kill -9 "$fuse"
			wait "$fuse"
		fi
		exit "$rc"' on_host "$@"
}

# two_hosts PRODUCER-KIND CONSUMER-KIND: producers on one host, the
# consumers on another, each reaching the spool its own way.
two_hosts() {
	export SPOOL="$T/spool"
	mkdir -p "$SPOOL" "$T/hostA" "$T/hostB"
	mq-init "$SPOOL/q"
	bg_start hostB on_host "$2" "$T/hostB" consumers "$T/hostB"
	wait_for 20 test -s "$T/watch.pid"
	wait_for 10 is_polling "$(cat "$T/watch.pid")"
	run on_host "$1" "$T/hostA" producers "$T/hostA"
	assert_success
	touch "$T/producers.done"
	wait_for 60 all_received
	wait_for 20 test -f "$T/recv.done"
}

@test "scenario-nfs: two hosts on bind mounts: every message once, each producer's order kept" {
	need_mounts
	two_hosts bind bind
	# On a local filesystem the watcher waits with inotify.
	has_inotify "$(cat "$T/watch.pid")"
	touch "$T/stop"
	bg_wait 30 hostB
	assert_equal "$(bg_rc hostB)" 0
	assert_equal "$(cat "$T/watch.rc")" 0
	check_delivery "$SPOOL/q"
}

@test "scenario-nfs: producers on a bind mount, consumers through FUSE: every message once, in order, the watcher polls" {
	need_bindfs
	two_hosts bind fuse
	wpid=$(cat "$T/watch.pid")
	# statfs says FUSE: no inotify, whose events would never come.
	run has_inotify "$wpid"
	assert_failure
	# With the receive loop gone, only polling can bring the watcher a
	# message sent through the other path.
	run on_host bind "$T/hostA" sh -c 'printf late | mq-send -q "$1/q"' _ \
	    "$T/hostA"
	assert_success
	t0=$(now_ms)
	wait_for 10 grep -qx late "$T/watch.out"
	between "polling watcher's delay (ms)" $(($(now_ms) - t0)) 0 5000
	touch "$T/stop"
	bg_wait 30 hostB
	assert_equal "$(bg_rc hostB)" 0
	assert_equal "$(cat "$T/watch.rc")" 0
	grep -vx late "$T/watch.out" >"$T/watch.rest"
	mv "$T/watch.rest" "$T/watch.out"
	check_delivery "$SPOOL/q"
}

# A claim keeps its message while its holder lives, however long the
# handler runs: the lease must not be taken back by the holder's own
# watcher or by another consumer looking at cur/ meanwhile.
@test "scenario-nfs: through FUSE, a handler slower than the polling keeps its claim: handled once" {
	need_bindfs
	export SPOOL="$T/spool"
	mkdir -p "$SPOOL" "$T/hostB"
	mq-init "$SPOOL/q"
	printf 'slow' | mq-send -q "$SPOOL/q"
	handler="echo \"\$MQ_ID \$MQ_ATTEMPT\" >>'$T/runs'; sleep 4; cat >/dev/null"
	run on_host fuse "$T/hostB" bash -c '
		mq-watch "$1/q" -- sh -c "$2" 2>"$T/watch.err" &
		w=$!
		echo "$w" >>"$T/pids"
		# Another consumer on the same host looks at the queue
		# while the handler runs (it has claimed the message).
		for ((i = 0; i < 100; i++)); do
			[ -s "$T/runs" ] && break
			sleep 0.1
		done
		mq-recv -t 2 "$1/q" >"$T/second.out"
		echo "$?" >"$T/second.rc"
		for ((i = 0; i < 100; i++)); do
			grep -q "attempt 1:" "$T/watch.err" && break
			sleep 0.1
		done
		# Time for the watcher to poll, and claim again if it would.
		sleep 2
		kill -TERM "$w"
		wait "$w"' _ "$T/hostB" "$handler"
	assert_success
	run cat "$T/runs"
	assert_output --regexp '^[0-9a-f]{16} 1$'
	assert_equal "$(cat "$T/second.rc")" 1
	assert_equal "$(cat "$T/second.out")" ''
	run grep -c 'attempt 1: ok' "$T/watch.err"
	assert_output 1
	run nothing_left "$SPOOL/q"
	assert_success
}

@test "scenario-nfs: producers through FUSE, consumers on a bind mount: every message once, in order" {
	need_bindfs
	two_hosts fuse bind
	touch "$T/stop"
	bg_wait 30 hostB
	assert_equal "$(bg_rc hostB)" 0
	check_delivery "$SPOOL/q"
	# Ids from the one counter stay unique and grow with each send.
	run mq-fsck "$SPOOL/q"
	assert_success
}

# --- (b) NFS failure modes from the shim -------------------------------------

# build_shim: compile tests/tools/nfs-shim.c for this test.
build_shim() {
	SHIM="$T/nfs-shim.so"
	cc -shared -fPIC -O2 -Wall -o "$SHIM" "$BATS_TEST_DIRNAME/tools/nfs-shim.c" \
	    -ldl || fail "cannot build the NFS shim"
	export NFS_SHIM_LOG="$T/shim.log"
	RUN="env LD_PRELOAD=$SHIM"
	export RUN
}

# plant_nfs QUEUE: stale silly-rename files, as NFS leaves when a file
# open on one client is removed by another, in every state folder and a
# bucket; the one in tmp/ is old enough to look abandoned.
plant_nfs() {
	local dir bucket
	bucket=$(find "$1/new" -mindepth 1 -maxdepth 1 -type d -print -quit)
	mkdir -p "$1/quarantine"
	for dir in tmp new "${bucket#"$1"/}" cur delay dead quarantine; do
		printf 'open elsewhere\n' >"$1/$dir/.nfs00000000000a1b2c00000001"
	done
	touch -d '3 days ago' "$1/tmp/.nfs00000000000a1b2c00000001"
	find "$1" -name '.nfs*' | sort >"$T/nfs.planted"
}

# exactly_once DIR: producers and both kinds of consumer at once on
# DIR/q, with stale .nfs files planted; every message must come out once,
# in order, and mq-fsck must find nothing wrong.
exactly_once() {
	local dir=$1
	$RUN mq-init "$dir/q"
	# A first message makes a bucket to plant in; it is producer 0's.
	printf '0 1' | $RUN mq-send -q "$dir/q"
	plant_nfs "$dir/q"
	bg_start consumers consumers "$dir"
	wait_for 20 test -s "$T/watch.pid"
	producers "$dir"
	touch "$T/producers.done"
	wait_for 60 all_received
	wait_for 20 test -f "$T/recv.done"
	touch "$T/stop"
	bg_wait 30 consumers
	EXTRA='0 1' check_delivery "$dir/q"
	assert_equal "$(cat "$T/watch.rc")" 0
	# The .nfs files are still where they were: not taken for messages,
	# not moved to quarantine, not cleaned out of tmp/.
	assert_equal "$(find "$dir/q" -name '.nfs*' | sort)" "$(cat "$T/nfs.planted")"
	run -0 $RUN mq-fsck "$dir/q"
	assert_output ''
	snapshot "$dir/q" >"$T/before"
	run -0 $RUN mq-fsck --fix "$dir/q"
	assert_output ''
	assert_equal "$(snapshot "$dir/q")" "$(cat "$T/before")"
}

# injected WHAT: the shim injected failure WHAT at least once.
injected() {
	grep -q " $1 " "$T/shim.log"
}

@test "scenario-nfs: stale .nfs files in every state folder are ignored by consumers and mq-fsck" {
	RUN=
	exactly_once "$T"
}

# Two consumers that link one ready file each to their own lease name
# both succeed: only a lock held across link and unlink keeps a claim
# exclusive.  A server's round trip makes that window wide.
@test "scenario-nfs: no RENAME_NOREPLACE (EINVAL), 2 ms round trips: link and unlink instead, every message once" {
	build_shim
	export NFS_SHIM_NOREPLACE=1 NFS_SHIM_LATENCY_US=2000
	exactly_once "$T"
	injected noreplace-einval
}

@test "scenario-nfs: a retransmitted LINK that succeeded reports EEXIST: every message once" {
	build_shim
	export NFS_SHIM_NOREPLACE=1 NFS_SHIM_LINK_EEXIST=1
	exactly_once "$T"
	injected link-eexist
}

@test "scenario-nfs: a retransmitted RENAME that succeeded reports ENOENT: every message once" {
	build_shim
	export NFS_SHIM_RENAME_ENOENT=2
	exactly_once "$T"
	injected rename-enoent
}

# The shim counts per process and a sender links once: only every link
# (1) lying makes any of them lie.
@test "scenario-nfs: times to the second, every retransmit at once: every message once, keys still deduplicate" {
	build_shim
	export NFS_SHIM_MTIME=2 NFS_SHIM_NOREPLACE=1 NFS_SHIM_LINK_EEXIST=1 \
	    NFS_SHIM_RENAME_ENOENT=3
	$RUN mq-init "$T/k"
	first=$(echo one | $RUN mq-send -k order-1 "$T/k")
	again=$(echo two | $RUN mq-send -k order-1 "$T/k")
	assert_equal "$again" "$first"
	assert_equal "$(count_in "$T/k" new)" 1
	exactly_once "$T"
	injected link-eexist
}

@test "scenario-nfs: flock emulated by NFS (an exclusive lock needs a descriptor open for writing): every message once" {
	build_shim
	export NFS_SHIM_FLOCK=1
	exactly_once "$T"
}

@test "scenario-nfs: a topic fans out through retransmitted LINKs: each subscriber gets every message once" {
	build_shim
	export NFS_SHIM_NOREPLACE=1 NFS_SHIM_LINK_EEXIST=1
	$RUN mq-init --subscribe "$T/topic" "$T/a" "$T/b"
	for i in 1 2 3; do
		printf 'm %s' "$i" | $RUN mq-send -q "$T/topic" ||
		    echo "send $i: $?" >>"$T/errors"
	done
	injected link-eexist
	for s in a b; do
		run $RUN mq-watch --drain "$T/$s"
		assert_success
		assert_output $'m 1\nm 2\nm 3'
	done
	assert [ ! -s "$T/errors" ]
}

key_pending() { grep -qs '^pending' "$Q"/keys/*; }

# waits_for_key PID: an mq-send below PID sleeps between its looks at a
# pending key (nanosleep), or, where the kernel hides wchan, sleeps.
waits_for_key() {
	local p kids wchan
	kids=$(pgrep -P "$1" | tr '\n' ' ')
	for p in $kids; do
		waits_for_key "$p" && return 0
	done
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = mq-send ] || return 1
	[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = S ] || return 1
	wchan=$(cat "/proc/$1/wchan" 2>/dev/null)
	[[ $wchan == *nanosleep* || $wchan == 0 || -z $wchan ]]
}

# Hosts do not share pids: a pending idempotency key recorded by a sender
# on one host cannot be judged by whether that pid lives on another, nor
# by its age, since the sender may wait for its input however long.  Its
# lock, which NFS carries to the server, tells.  Pid and UTS namespaces
# (pids and a host name of its own) stand in for the other host.
@test "scenario-nfs: mq-send -k on two hosts: a key pending on one host is waited for on the other" {
	unshare -pfu true 2>/dev/null ||
	    skip "pid and UTS namespaces are not allowed here (unshare -pu needs CAP_SYS_ADMIN)"
	# The first sender holds the key while it waits for its body, for
	# two minutes as far as the key's time says.
	bg_start first sh -c '{ until [ -f "$1/go" ]; do sleep 0.05; done
	    printf first; } | mq-send -k order-7 "$2"' _ "$T" "$Q"
	wait_for 10 key_pending
	touch -d '2 minutes ago' "$Q"/keys/*
	bg_start second unshare -pfu sh -c 'hostname "mq-test-b.$$" &&
	    printf second | mq-send -k order-7 "$1"' _ "$Q"
	# The second sender has looked at the key when it waits for it.
	wait_for 10 waits_for_key "$(bg_pid second)"
	touch "$T/go"
	bg_wait 10 first
	bg_wait 40 second
	# One key, one message, whose id both senders print.
	assert_equal "$(count_in "$Q" new)" 1
	assert_equal "$(bg_rc first)" 0
	assert_equal "$(bg_rc second)" 0
	assert_equal "$(bg_out second)" "$(bg_out first)"
	run mq-recv "$Q"
	assert_output first
}

# --- a real NFS mount ----------------------------------------------------------

@test "scenario-nfs: on the NFS mount in MQ_TEST_NFS: every message once, .nfs files ignored" {
	[ -n "${MQ_TEST_NFS:-}" ] ||
	    skip "set MQ_TEST_NFS to a directory on an NFS mount to run this"
	[ "$(stat -f -c %T "$MQ_TEST_NFS")" = nfs ] ||
	    fail "MQ_TEST_NFS=$MQ_TEST_NFS is not on NFS (statfs: $(stat -f -c %T "$MQ_TEST_NFS"))"
	NFS_DIR=$(mktemp -d "$MQ_TEST_NFS/mq-test.XXXXXX")
	RUN=
	exactly_once "$NFS_DIR"
}
