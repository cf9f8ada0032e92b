#!/usr/bin/env bats
# The spool as the durable edge in front of RabbitMQ: contrib/bridges'
# mq-to-amqp (an mq-watch handler: spool -> AMQP queue, amqp-publish) and
# amqp-to-mq (AMQP queue -> spool, amqp-consume and mq-send -k by message
# id) against a real rabbitmq-server that this file starts on free
# loopback ports and stops after.  As in scenario-bridge-redis.bats, each
# side is killed once with SIGKILL after handing a message on and before
# settling it, and deduplication by id must remove the repeat.  The broker
# takes seconds to start, so this runs with make test-long, not make check.
bats_require_minimum_version 1.5.0
load ../helpers/common

port_free() { ! (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listens on.
free_port() {
	local p
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		p=$((30000 + RANDOM % 20000))
		port_free "$p" && { echo "$p"; return 0; }
	done
	return 1
}

broker_up() { amqp-declare-queue -u "$AMQP_URL" -d -q ev >/dev/null 2>&1; }

# The broker and its files live in a directory of its own: the Debian
# wrapper runs it as the rabbitmq user, who cannot enter bats' temporary
# directories.
setup_file() {
	export DEBIAN_FRONTEND=noninteractive
	if ! command -v rabbitmq-server >/dev/null ||
	    ! command -v amqp-publish >/dev/null; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			apt-get install -y -q rabbitmq-server amqp-tools >/dev/null 2>&1 ||
			    { apt-get update -q >/dev/null 2>&1 &&
			    apt-get install -y -q rabbitmq-server amqp-tools \
			    >/dev/null 2>&1; }
		fi
	fi
	if ! command -v rabbitmq-server >/dev/null ||
	    ! command -v amqp-publish >/dev/null; then
		export BROKER_SKIP="rabbitmq-server and amqp-tools are not installed (apt-get install rabbitmq-server amqp-tools, as root)"
		return 0
	fi
	if [ "$(id -u)" != 0 ] || ! id rabbitmq >/dev/null 2>&1; then
		export BROKER_SKIP="starting rabbitmq-server needs root (it runs as the rabbitmq user)"
		return 0
	fi
	BROKER_DIR=$(mktemp -d /tmp/mq-rabbit.XXXXXX)
	echo '[].' >"$BROKER_DIR/plugins"
	: >"$BROKER_DIR/rabbitmq.conf"
	chown -R rabbitmq: "$BROKER_DIR"
	export BROKER_DIR
	export RABBITMQ_NODENAME="mqtest$$@localhost"
	RABBITMQ_NODE_PORT=$(free_port) && RABBITMQ_DIST_PORT=$(free_port) &&
	    ERL_EPMD_PORT=$(free_port) || {
		export BROKER_SKIP="no free loopback ports"
		return 0
	}
	export RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT ERL_EPMD_PORT
	export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia"
	export RABBITMQ_LOG_BASE="$BROKER_DIR/log"
	export RABBITMQ_PID_FILE="$BROKER_DIR/pid"
	export RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/plugins"
	export RABBITMQ_CONFIG_FILE="$BROKER_DIR/rabbitmq"
	export AMQP_URL="amqp://127.0.0.1:$RABBITMQ_NODE_PORT"
	rabbitmq-server >"$BROKER_DIR/server.out" 2>&1 3>&- &
	local i
	for ((i = 0; i < 600; i++)); do
		broker_up && return 0
		sleep 0.1
	done
	export BROKER_SKIP="rabbitmq-server did not start in 60s: $(tail -n 3 "$BROKER_DIR/server.out")"
}

# Stop the broker by the pid it wrote, then the epmd it started on our
# port, and remove its files.
teardown_file() {
	local pid i
	[ -n "${BROKER_DIR:-}" ] || return 0
	pid=$(cat "$BROKER_DIR/pid" 2>/dev/null)
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 300; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	epmd -kill >/dev/null 2>&1
	rm -rf "$BROKER_DIR"
	return 0
}

# 10,000 messages; 1,000 under AddressSanitizer.
setup() {
	[ -z "${BROKER_SKIP:-}" ] || skip "$BROKER_SKIP"
	# setup_mq finds the programs from tests/, one level up from here.
	PATH="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)/${MQ_BIN:-build/bin}:$PATH"
	setup_mq
	T=$BATS_TEST_TMPDIR
	PATH="$BATS_TEST_DIRNAME/../../contrib/bridges:$PATH"
	N=10000
	if under_asan; then N=1000; fi
	# One AMQP queue per test, durable, empty.
	AQ="ev$BATS_TEST_NUMBER"
	amqp-declare-queue -u "$AMQP_URL" -d -q "$AQ" >/dev/null
}

teardown() { bg_cleanup; }

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

# crash_under PID COMM: SIGKILL PID once it has started the program COMM
# for a message (a child that has exited stays a zombie while PID is
# stopped, so none is missed): the child hands the message on, and PID
# never settles it.  PID is stopped while its children are looked at.
crash_under() {
	local pid=$1 comm=$2 i c
	for ((i = 0; i < 500; i++)); do
		kill -STOP "$pid"
		for c in $(children "$pid"); do
			[ "$(cat "/proc/$c/comm" 2>/dev/null)" = "$comm" ] || continue
			kill -KILL "$pid"
			return 0
		done
		kill -CONT "$pid"
		sleep 0.01
	done
	echo "never saw $comm under $pid" >&2
	return 1
}

# queue_depth: messages in the AMQP queue, ready and unacked, as
# "READY UNACKED".
queue_depth() {
	rabbitmqctl -q list_queues name messages_ready messages_unacknowledged \
	    2>/dev/null | awk -v q="$AQ" '$1 == q { print $2, $3 }'
}

outbox_empty() {
	[ -z "$(find "$T/outbox/new" "$T/outbox/cur" "$T/outbox/delay" -type f)" ]
}

# has_in QUEUE K: at least K messages are ready in QUEUE.
has_in() { [ "$(ready_count "$1")" -ge "$2" ]; }
inbox_has() { has_in "$T/inbox" "$1"; }

# published K: the forwarder has acked at least K messages.
published() { [ $((N - $(ready_count "$T/outbox"))) -ge "$1" ]; }

done_all() {
	outbox_empty && inbox_has "$N" && [ "$(queue_depth)" = "0 0" ]
}

@test "bridges: spool -> RabbitMQ -> spool, each side killed once: every message arrives, in order, once after dedup" {
	mq-init "$T/outbox" "$T/inbox"
	seq 1 "$N" | sed 's/^/m /' | mq-send -q -l "$T/outbox"
	t0=$(now_ms)
	bg_start fwd mq-watch "$T/outbox" -- mq-to-amqp -b -u "$AMQP_URL" "$AQ"
	bg_start rev amqp-to-mq -u "$AMQP_URL" "$AQ" "$T/inbox"

	# The reverse bridge dies while a message is in the spool whose
	# delivery it has not acked: the broker delivers it again.
	wait_for 120 inbox_has $((N * 3 / 10))
	crash_under "$(bg_pid rev)" amqp-to-mq
	bg_start rev2 amqp-to-mq -u "$AMQP_URL" "$AQ" "$T/inbox"

	# The forwarder dies while a handler publishes a message: it is in
	# the broker but not acked in the spool, and is published again.
	wait_for 120 published $((N * 6 / 10))
	crash_under "$(bg_pid fwd)" mq-to-amqp
	bg_start fwd2 mq-watch "$T/outbox" -- mq-to-amqp -b -u "$AMQP_URL" "$AQ"

	wait_for 300 done_all
	echo "# $N messages through RabbitMQ and back in $(($(now_ms) - t0)) ms" >&3

	# Every message once, in the order sent, although each crash made
	# one side hand some message on twice.
	run -0 mq-watch --drain "$T/inbox"
	seq 1 "$N" | sed 's/^/m /' >"$T/expected"
	printf '%s\n' "$output" >"$T/got"
	run diff "$T/expected" "$T/got"
	assert_success
	kill -TERM "$(bg_pid fwd2)"
	bg_wait 10 fwd2
	assert_equal "$(bg_rc fwd2)" 0
}

@test "bridges: mq-to-amqp -b and amqp-to-mq carry any body byte for byte" {
	mq-init "$T/outbox" "$T/inbox"
	printf 'plain' >"$T/b1"
	printf 'two\nlines\n\n' >"$T/b2"
	printf 'nul\0inside\0' >"$T/b3"
	: >"$T/b4"
	head -c 300000 /dev/urandom >"$T/b5"
	for i in 1 2 3 4 5; do
		mq-send -q "$T/outbox" "$T/b$i"
	done
	run -0 mq-watch --drain "$T/outbox" -- mq-to-amqp -b -u "$AMQP_URL" "$AQ"
	bg_start rev amqp-to-mq -u "$AMQP_URL" "$AQ" "$T/inbox"
	wait_for 30 has_in "$T/inbox" 5
	for i in 1 2 3 4 5; do
		mq-recv -o "$T/got$i" "$T/inbox"
		cmp "$T/b$i" "$T/got$i"
	done
}

@test "bridges: amqp-to-mq stops when mq-send fails, and the message waits in the broker" {
	printf 'kept' | amqp-publish -u "$AMQP_URL" -r "$AQ" -p
	# The failing send stops amqp-consume with SIGTERM.
	run -143 --separate-stderr timeout 30 amqp-to-mq -u "$AMQP_URL" "$AQ" \
	    "$T/missing"
	assert_regex "$stderr" "amqp-to-mq: $T/missing: mq-send exited 66: stopping"
	mq-init "$T/missing"
	bg_start rev amqp-to-mq -u "$AMQP_URL" "$AQ" "$T/missing"
	wait_for 30 has_in "$T/missing" 1
	run mq-recv "$T/missing"
	assert_output kept
}
