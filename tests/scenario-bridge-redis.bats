#!/usr/bin/env bats
# The spool as the durable edge in front of Redis: contrib/bridges'
# mq-to-redis (an mq-watch handler: spool -> stream) and redis-to-mq
# (stream -> spool, mq-send -k by message id) against a real redis-server
# that each test starts on a free loopback port and teardown stops.  The
# consumer of the stream is killed twice with SIGKILL and the consumer of
# the spool once, each at a moment when it has handed a message on but
# not yet settled it, so at-least-once delivery repeats exactly that
# message; deduplication by id must remove the repeat.
bats_require_minimum_version 1.5.0
load helpers/common

# 10,000 messages; 1,000 under AddressSanitizer, where each of the
# programs started per message costs several milliseconds more.
setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	PATH="$BATS_TEST_DIRNAME/../contrib/bridges:$PATH"
	# Where a killed redis-to-mq leaves its scratch directory.
	export TMPDIR="$T"
	N=${BRIDGE_N:-10000}
	if under_asan; then N=1000; fi
	need_redis
	start_redis
}

teardown() { bg_cleanup; }

# need_redis: redis-server and redis-cli, installed now if we are root.
need_redis() {
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
	    return 0
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
	    skip "redis-server is not installed (apt-get install redis-server, as root)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q redis-server >/dev/null 2>&1 ||
	    { apt-get update -q >/dev/null 2>&1 &&
	    apt-get install -y -q redis-server >/dev/null 2>&1; }
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
	    skip "redis-server could not be installed (apt-get install redis-server)"
}

# port_free PORT: nothing listens on loopback PORT.
port_free() { ! (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_up() { [ "$(redis-cli -p "$PORT" PING 2>/dev/null)" = PONG ]; }

# start_redis: a throwaway redis-server on a free loopback port, no
# persistence, its files under the test's directory; REDIS_URL names it.
start_redis() {
	local try
	mkdir -p "$T/redis"
	for try in 1 2 3 4 5; do
		PORT=$((20000 + RANDOM % 20000))
		port_free "$PORT" || continue
		bg_start redis redis-server --port "$PORT" --bind 127.0.0.1 \
		    --save '' --appendonly no --dir "$T/redis" --daemonize no
		wait_for 10 redis_up && break
		bg_cleanup
	done
	redis_up || fail "redis-server did not start: $(bg_out redis)"
	export REDIS_URL="redis://127.0.0.1:$PORT"
}

r() { redis-cli -p "$PORT" "$@"; }

# children PID: the pids of PID's children, zombies included, from /proc.
children() {
	local f line rest
	for f in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$f" || continue
		rest=${line##*) }
		# shellcheck disable=SC2086 # split into the fields of stat
		set -- "$1" $rest
		[ "$3" = "$1" ] && echo "${f//[!0-9]/}"
	done
	return 0
}

# crash_forwarder PID: SIGKILL the forwarding mq-watch PID once it has
# started a handler for the message it holds, so that the handler adds
# the message to the stream (or has added it: a handler that has exited
# stays a zombie while PID is stopped) and PID never acks it.  PID is
# stopped while that is checked.  Prints the message's id, from its lease
# in cur/.
crash_forwarder() {
	local pid=$1 i c lease
	for ((i = 0; i < 500; i++)); do
		kill -STOP "$pid"
		for c in $(children "$pid"); do
			[ "$(cat "/proc/$c/comm" 2>/dev/null)" = mq-to-redis ] ||
			    continue
			lease=$(find "$T/outbox/cur" -type f -printf '%f\n')
			kill -KILL "$pid"
			echo "${lease%%.*}"
			return 0
		done
		kill -CONT "$pid"
		sleep 0.01
	done
	echo "the forwarder never ran a handler" >&2
	return 1
}

gone() { ! kill -0 "$1" 2>/dev/null; }

stream_len() { r XLEN ev; }
stream_has() { [ "$(stream_len)" -ge "$1" ]; }
inbox_has() { [ "$(ready_count "$T/inbox")" -ge "$1" ]; }

# stream_ids: the mq-id of every entry of stream ev, in stream order.
stream_ids() {
	r --raw EVAL '
		local out = {}
		for _, e in ipairs(redis.call("XRANGE", KEYS[1], "-", "+")) do
			for i = 1, #e[2], 2 do
				if e[2][i] == "mq-id" then out[#out + 1] = e[2][i + 1] end
			end
		end
		return table.concat(out, "\n")' 1 ev | sed '/^$/d'
}

# settled: the reverse bridge has read and acked the whole stream.
settled() {
	local last read pending
	pending=$(group_field pending)
	read=$(group_field last-delivered-id)
	last=$(r XINFO STREAM ev | sed -n '/^last-generated-id$/{n;p;}')
	[ "$pending" = 0 ] && [ "$read" = "$last" ]
}

outbox_empty() {
	[ -z "$(find "$T/outbox/new" "$T/outbox/cur" "$T/outbox/delay" -type f)" ]
}

done_all() {
	outbox_empty && [ "$(ready_count "$T/inbox")" -ge "$N" ] && settled
}

# group_field NAME: a field of the consumer group's XINFO.
group_field() {
	r XINFO GROUPS ev | sed -n "/^$1\$/{n;p;}"
}

# sent_unacked: the reverse bridge has sent entries to the spool that it
# has not acked: the spool holds more messages than the entries acked.
sent_unacked() {
	local read pending
	read=$(group_field entries-read)
	pending=$(group_field pending)
	[ "$(ready_count "$T/inbox")" -gt $((read - pending)) ]
}

# crash_reverse PID: SIGKILL the reverse bridge PID while it has sent
# entries to the spool without acking them.  It is stopped while that is
# checked; an XACK of its in flight then would change the answer, so a
# moment when a redis-cli runs under it does not count.
crash_reverse() {
	local pid=$1 i c busy
	for ((i = 0; i < 500; i++)); do
		kill -STOP "$pid"
		busy=
		for c in $(children "$pid"); do
			[ "$(cat "/proc/$c/comm" 2>/dev/null)" = redis-cli ] && busy=1
		done
		if [ -z "$busy" ] && sent_unacked; then
			kill -KILL "$pid"
			return 0
		fi
		kill -CONT "$pid"
		sleep 0.01
	done
	echo "the reverse bridge never had sent and unacked entries" >&2
	return 1
}

@test "bridges: spool -> Redis stream -> spool, the stream's consumer killed twice and the spool's once: every message arrives, in order, once after dedup" {
	mq-init "$T/outbox" "$T/inbox"
	seq 1 "$N" | sed 's/^/m /' | mq-send -l "$T/outbox" >"$T/ids"
	assert_equal "$(wc -l <"$T/ids")" "$N"
	t0=$(now_ms)
	bg_start fwd mq-watch "$T/outbox" -- mq-to-redis ev
	# The reverse bridge starts behind, so that it works in full rounds.
	wait_for 60 stream_has $((N * 4 / 10))
	bg_start rev redis-to-mq -c c1 ev "$T/inbox"

	# It dies with messages in the spool whose entries it has not acked.
	wait_for 60 inbox_has $((N * 2 / 10))
	crash_reverse "$(bg_pid rev)"
	unacked=$(group_field pending)
	bg_start rev2 redis-to-mq -c c1 ev "$T/inbox"

	# And its successor dies the same way.
	wait_for 90 inbox_has $((N * 5 / 10))
	crash_reverse "$(bg_pid rev2)"
	unacked2=$(group_field pending)
	bg_start rev3 redis-to-mq -c c1 ev "$T/inbox"

	# The forwarder dies while a handler is adding a message to the
	# stream: the message will be there but is not acked in the spool.
	wait_for 90 stream_has $((N * 7 / 10))
	crash_id=$(crash_forwarder "$(bg_pid fwd)")
	is_id "$crash_id"
	bg_start fwd2 mq-watch "$T/outbox" -- mq-to-redis ev

	wait_for 150 done_all
	echo "# $N messages through Redis and back in $(($(now_ms) - t0)) ms" >&3
	assert [ "$unacked" -ge 1 ]
	assert [ "$unacked2" -ge 1 ]

	# In the stream: every message, in the order sent, and one extra
	# copy of the message whose ack the forwarder's crash prevented.
	stream_ids >"$T/stream"
	sort -u "$T/stream" >"$T/distinct"
	assert_equal "$(wc -l <"$T/distinct")" "$N"
	assert_equal "$(sort "$T/stream" | uniq -d)" "$crash_id"
	assert_equal "$(grep -cx "$crash_id" "$T/stream")" 2
	awk '!seen[$0]++' "$T/stream" >"$T/first"
	run cmp "$T/first" "$T/ids"
	assert_success

	# In the inbox: every message once, in the order sent, although the
	# reverse bridge sent some twice and the stream holds one twice.
	run -0 mq-watch --drain "$T/inbox"
	seq 1 "$N" | sed 's/^/m /' >"$T/expected"
	printf '%s\n' "$output" >"$T/got"
	run diff "$T/expected" "$T/got"
	assert_success
	assert_equal "$(group_field pending)" 0
	kill -TERM "$(bg_pid fwd2)"
	bg_wait 10 fwd2
	assert_equal "$(bg_rc fwd2)" 0
}

@test "bridges: mq-to-redis and redis-to-mq carry any body byte for byte" {
	mq-init "$T/outbox" "$T/inbox"
	printf 'plain' >"$T/b1"
	printf 'two\nlines\n\n' >"$T/b2"
	printf 'nul\0inside\0' >"$T/b3"
	: >"$T/b4"
	head -c 300000 /dev/urandom >"$T/b5"
	for i in 1 2 3 4 5; do
		mq-send -q "$T/outbox" "$T/b$i"
	done
	run -0 mq-watch --drain "$T/outbox" -- mq-to-redis ev
	assert_equal "$(stream_len)" 5
	run -0 redis-to-mq -d ev "$T/inbox"
	for i in 1 2 3 4 5; do
		mq-recv -o "$T/got$i" "$T/inbox"
		cmp "$T/b$i" "$T/got$i"
	done
	run mq-recv "$T/inbox"
	assert_failure 1
}

@test "bridges: a redelivered stream entry is sent to the spool once" {
	mq-init "$T/inbox"
	r XADD ev '*' mq-id 00000100000000aa body first >/dev/null
	r XADD ev '*' mq-id 00000100000000aa body first >/dev/null
	r XADD ev '*' body 'no id' >/dev/null
	run -0 redis-to-mq -d ev "$T/inbox"
	assert_equal "$(ready_count "$T/inbox")" 2
	run -0 mq-watch --drain "$T/inbox"
	assert_output $'first\nno id'
}

@test "bridges: mq-to-redis exits 75 (retry later) when Redis does not take the message" {
	run -75 --separate-stderr env MQ_ID=0000010000000001 \
	    mq-to-redis -u redis://127.0.0.1:1 ev </dev/null
	assert_regex "$stderr" '^mq-to-redis: ev: .*(refused|connect)'
	# An error answer is no entry id either.
	r SET notastream x >/dev/null
	run -75 --separate-stderr env MQ_ID=0000010000000001 \
	    mq-to-redis notastream </dev/null
	assert_regex "$stderr" 'WRONGTYPE'
	run -64 --separate-stderr mq-to-redis ev </dev/null
	assert_regex "$stderr" 'MQ_ID is not set'
	run -64 --separate-stderr mq-to-redis
	assert_equal "$stderr" 'usage: mq-to-redis [-u URI] [-m MAXLEN] STREAM'
	# Through mq-watch: the message stays in the spool for a retry.
	mq-init --backoff 1h "$T/outbox"
	echo kept | mq-send -q "$T/outbox"
	run -0 --separate-stderr mq-watch --drain "$T/outbox" -- \
	    mq-to-redis -u redis://127.0.0.1:1 ev
	assert_regex "$stderr" 'exit 75, retry in 3600s'
	assert_equal "$(count_in "$T/outbox" delay)" 1
}

@test "bridges: redis-to-mq acks nothing it could not send, and sends it on the next run" {
	r XADD ev '*' mq-id 0000010000000001 body one >/dev/null
	r XADD ev '*' mq-id 0000010000000002 body two >/dev/null
	run --separate-stderr redis-to-mq -d ev "$T/missing"
	assert_failure 66
	assert_equal "$(r XPENDING ev mq | head -n 1)" 2
	mq-init "$T/missing"
	run -0 redis-to-mq -d ev "$T/missing"
	assert_equal "$(r XPENDING ev mq | head -n 1)" 0
	run -0 mq-watch --drain "$T/missing"
	assert_output $'one\ntwo'
	run -69 --separate-stderr redis-to-mq -d -u redis://127.0.0.1:1 ev "$T/missing"
	assert_regex "$stderr" '^redis-to-mq: ev: '
}
