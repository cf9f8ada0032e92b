#!/usr/bin/env bats
# Broker features on a spool (issue 6): delayed delivery and retries through
# delay/, expiry to dead/, idempotency keys, priorities, fan-out topics
# with hard-linked copies and crash recovery, and message groups.  Waits
# are bounded conditions; where a delay must pass, the test waits for the
# clock to pass the due time written in the file's name.
bats_require_minimum_version 1.5.0
load helpers/common
load helpers/watch

setup() { setup_watch; }
teardown() {
	teardown_watch
	bg_cleanup
}

# --- helpers ----------------------------------------------------------------

# The name of delayed message ID in queue $2: DUE.ID.N.
delayed_name() {
	find "${2:-$Q}/delay" -name "*.$1.*" -printf '%f\n' -quit
}

# The due time of delayed message ID in queue $2, in ns since the epoch.
due_of() {
	local f
	f=$(delayed_name "$@")
	[ -n "$f" ] || return 1
	echo $((10#${f%%.*}))
}

# The value of header line NAME ("expires", "priority", ...) of file $2.
header_of() {
	sed -n "/^\$/q; s/^$1: //p" "$2"
}

# mq-recv's handler that prints the attempt number, then the body.
attempt_and_body() { printf '%s ' "$MQ_ATTEMPT"; cat; }
export -f attempt_and_body

# make_topic: topic $TOPIC with subscriber queues $S1 $S2 $S3.
make_topic() {
	TOPIC="$BATS_TEST_TMPDIR/topic"
	S1="$BATS_TEST_TMPDIR/sub1"
	S2="$BATS_TEST_TMPDIR/sub2"
	S3="$BATS_TEST_TMPDIR/sub3"
	mq-init "$TOPIC"
	mq-init --subscribe "$TOPIC" "$S1" "$S2" "$S3"
}

# --- delayed delivery -------------------------------------------------------

@test "broker: -d keeps a message invisible until due, then a waiting mq-recv gets it promptly" {
	t_send=$(now_ns)
	id=$(echo later | mq-send -d 2 "$Q")
	t_sent=$(now_ns)
	assert_equal "$(ready_count)" 0
	due=$(due_of "$id")
	assert_regex "$(delayed_name "$id")" "^[0-9]{19}\\.$id\\.0\$"
	# Two seconds after some moment of the send, however long the send
	# took on a loaded machine.
	between "due minus send time (ms)" $(( (due - t_send) / 1000000 )) 1900 \
	    $(( (t_sent - t_send) / 1000000 + 2000 ))
	# Not early: a receive now finds nothing.
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ''
	# A consumer waiting at most 10 s gets it once due, no sooner.
	run --separate-stderr mq-recv -t 10 "$Q"
	t_got=$(now_ns)
	assert_success
	assert_output later
	assert_equal "$stderr" ''
	[ "$t_got" -ge "$due" ] || fail "received $(( (due - t_got) / 1000000 )) ms before due"
	between "due to receipt (ms)" $(( (t_got - due) / 1000000 )) 0 2000
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "broker: --at takes epoch seconds and ISO 8601 with Z or +HH:MM, all meaning the same instant" {
	at=$(( $(date +%s) + 3600 ))
	z=$(date -u -d "@$at" +%Y-%m-%dT%H:%M:%SZ)
	plus=$(date -u -d "@$((at + 19800))" +%Y-%m-%dT%H:%M:%S+05:30)
	minus=$(date -u -d "@$((at - 7200))" +%Y-%m-%dT%H:%M:%S-02:00)
	for when in "$at" "$z" "$plus" "$minus"; do
		id=$(echo "at $when" | mq-send --at "$when" "$Q")
		assert_equal "$(due_of "$id")" "${at}000000000"
	done
	assert_equal "$(count_in "$Q" delay)" 4
	assert_equal "$(ready_count)" 0
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	# A time already past is ready at once.
	echo past | mq-send -q --at "$(date -u -d '@1000000000' +%Y-%m-%dT%H:%M:%SZ)" "$Q"
	run -0 mq-recv "$Q"
	assert_output past
	run --separate-stderr mq-send --at tomorrow "$Q" </dev/null
	assert_failure 64
	assert_equal "$stderr" "mq-send: --at: not a time (epoch seconds or ISO 8601): tomorrow"
	run --separate-stderr mq-send -d 5 --at "$at" "$Q" </dev/null
	assert_failure 64
}

@test "broker: an --at (ISO 8601) message arrives no sooner than its time" {
	at=$(( $(date +%s) + 2 ))
	id=$(echo timed | mq-send --at "$(date -u -d "@$at" +%Y-%m-%dT%H:%M:%SZ)" "$Q")
	assert_equal "$(due_of "$id")" "${at}000000000"
	run --separate-stderr mq-recv -t 10 "$Q"
	t_got=$(now_ns)
	assert_success
	assert_output timed
	[ "$t_got" -ge "${at}000000000" ] || fail "received before --at time"
	between "--at time to receipt (ms)" $(( (t_got - at * 1000000000) / 1000000 )) 0 2000
}

@test "broker: a waiting mq-recv -t 10 is woken by a due delayed message, with no send and no other process" {
	id=$(echo wake | mq-send -d 2 "$Q")
	due=$(due_of "$id")
	bg recv mq-recv -t 10 "$Q"
	pid=$BG_PID
	wait_for 5 watching "$pid"
	wait_exit 10 "$pid"
	t_got=$(now_ns)
	assert_equal "$EXIT_STATUS" 0
	run cat "$T/recv.out"
	assert_output wake
	run cat "$T/recv.err"
	assert_output ''
	[ "$t_got" -ge "$due" ] || fail "mq-recv returned before the message was due"
	between "due to mq-recv return (ms)" $(( (t_got - due) / 1000000 )) 0 2000
	assert_equal "$(count_in "$Q" delay)" 0
}

@test "broker: an idle mq-watch is woken by a due delayed message, with no send" {
	id=$(echo ripe | mq-send -d 2 "$Q")
	due=$(due_of "$id")
	bg watch mq-watch "$Q"
	pid=$BG_PID
	wait_for 5 watching "$pid"
	c0=$(cpu_ticks "$pid")
	[ ! -s "$T/watch.out" ]
	wait_for 10 test -s "$T/watch.out"
	t_got=$(now_ns)
	[ "$t_got" -ge "$due" ] || fail "streamed before the message was due"
	between "due to delivery (ms)" $(( (t_got - due) / 1000000 )) 0 2000
	run cat "$T/watch.out"
	assert_output ripe
	c1=$(cpu_ticks "$pid")
	refute gone "$pid"
	# About 2 s of waiting cost at most a few ticks: no busy loop.
	between "CPU ticks while waiting" $((c1 - c0)) 0 5
	wait_for 5 empty_queue
}

@test "broker: mq-ack --retry -d parks the message in delay/ with its attempt count, then redelivers it" {
	id=$(echo again | mq-send "$Q")
	receipt=$(mq-recv -L 30 -o /dev/null "$Q")
	t_ack=$(now_ns)
	run -0 mq-ack --retry -d 2 "$Q" "$receipt"
	t_acked=$(now_ns)
	assert_regex "$(delayed_name "$id")" "^[0-9]{19}\\.$id\\.1\$"
	due=$(due_of "$id")
	# Two seconds after some moment of the ack, however long it took.
	between "retry due after the ack (ms)" $(( (due - t_ack) / 1000000 )) 1900 \
	    $(( (t_acked - t_ack) / 1000000 + 2000 ))
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	run --separate-stderr mq-recv -t 10 "$Q" -- bash -c attempt_and_body
	t_got=$(now_ns)
	assert_success
	assert_output "2 again"
	[ "$t_got" -ge "$due" ] || fail "redelivered before the retry delay"
	between "retry due to redelivery (ms)" $(( (t_got - due) / 1000000 )) 0 2000
	empty_queue
}

@test "broker: mq-watch's backoff retry goes through delay/ too" {
	mq-init --backoff 1s "$Q"
	handler h <<'EOF'
us=${EPOCHREALTIME/./}
echo "$MQ_ATTEMPT $((us / 1000))" >>"$T/runs"
[ "$MQ_ATTEMPT" -ge 2 ]
EOF
	id=$(echo flaky | mq-send "$Q")
	bg watch mq-watch "$Q" -- "$T/h"
	wait_for 5 exists "$Q/delay/*.$id.1"
	wait_for 10 log_has "$id attempt 2: ok"
	run cut -d' ' -f1 "$T/runs"
	assert_output $'1\n2'
	t1=$(sed -n 1p "$T/runs" | cut -d' ' -f2)
	t2=$(sed -n 2p "$T/runs" | cut -d' ' -f2)
	between "first to second attempt (ms)" $((t2 - t1)) 1000 3000
	wait_for 5 empty_queue
}

# --- expiry -----------------------------------------------------------------

@test "broker: --ttl: a message not received in time goes to dead/ as ID.0.expired and is never delivered" {
	t_send=$(now_ns)
	id=$(echo stale | mq-send --ttl 1 "$Q")
	t_sent=$(now_ns)
	keep=$(echo fresh | mq-send "$Q")
	exp=$(header_of expires "$(ready_file "$id")")
	[[ $exp =~ ^[0-9]+$ ]] || fail "no expires header: '$exp'"
	# A second after some moment of the send, however long it took.
	between "expiry after the send (ms)" $(( (exp - t_send) / 1000000 )) 900 \
	    $(( (t_sent - t_send) / 1000000 + 1000 ))
	[ -z "$(header_of expires "$(ready_file "$keep")")" ]
	wait_for 5 after_ns "$exp"
	run -0 mq-recv "$Q"
	assert_output fresh
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ''
	run names_in dead
	assert_output "$id.0.expired"
	run -0 mq-ls --state dead "$Q"
	assert_output --partial "$id"
	assert_output --partial expired
	assert_equal "$(ready_count)" 0
}

@test "broker: a delayed message whose ttl ends before it is due is never delivered" {
	id=$(echo never | mq-send -d 2 --ttl 1 "$Q")
	due=$(due_of "$id")
	wait_for 6 after_ns "$due"
	run --separate-stderr mq-recv -t 1 "$Q"
	assert_failure 1
	assert_output ''
	run names_in dead
	assert_output "$id.0.expired"
}

@test "broker: the queue's ttl applies to sends without --ttl; --ttl overrides it" {
	mq-init --ttl 1s "$Q"
	run grep -x 'ttl = 1s' "$Q/config"
	assert_success
	t_send=$(now_ns)
	short=$(echo short | mq-send "$Q")
	t_sent=$(now_ns)
	long=$(echo long | mq-send --ttl 1h "$Q")
	exp=$(header_of expires "$(ready_file "$short")")
	[[ $exp =~ ^[0-9]+$ ]] || fail "queue ttl not applied: no expires header"
	between "default expiry after the send (ms)" $(( (exp - t_send) / 1000000 )) 900 \
	    $(( (t_sent - t_send) / 1000000 + 1000 ))
	exp_long=$(header_of expires "$(ready_file "$long")")
	between "--ttl 1h expiry from now (s)" $(( (exp_long - $(now_ns)) / 1000000000 )) 3590 3600
	wait_for 5 after_ns "$exp"
	run -0 mq-recv "$Q"
	assert_output long
	run names_in dead
	assert_output "$short.0.expired"
}

@test "broker: expired = drop removes an expired message without a dead letter" {
	mq-init --expired drop --ttl 1s "$Q"
	run grep -x 'expired = drop' "$Q/config"
	assert_success
	id=$(echo gone | mq-send "$Q")
	exp=$(header_of expires "$(ready_file "$id")")
	wait_for 5 after_ns "$exp"
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ''
	empty_queue
	run --separate-stderr mq-init --expired keep "$Q"
	assert_failure 64
}

# --- deduplication ----------------------------------------------------------

@test "broker: two sends with one -k key enqueue one message; both print its id and exit 0" {
	run --separate-stderr mq-send -k order-17 "$Q" <<<first
	assert_success
	assert_equal "$stderr" ''
	id=$output
	is_id "$id"
	run --separate-stderr mq-send -k order-17 "$Q" <<<second
	assert_success
	assert_equal "$stderr" ''
	assert_output "$id"
	assert_equal "$(ready_count)" 1
	[ -n "$(ready_file "$id")" ]
	run -0 mq-recv "$Q"
	assert_output first
	# Another key is another message.
	run -0 mq-send -k order-18 "$Q" <<<third
	[ "$output" != "$id" ]
	assert_equal "$(ready_count)" 1
}

@test "broker: eight concurrent senders with one key: exactly one message, all print its id" {
	echo dup >"$T/body"
	for i in 1 2 3 4 5 6 7 8; do
		bg_start "s$i" sh -c 'while [ ! -e "$1/go" ]; do sleep 0.01; done
		    exec mq-send -k nightly "$2" "$1/body"' sh "$T" "$Q"
	done
	touch "$T/go"
	for i in 1 2 3 4 5 6 7 8; do
		bg_wait 20 "s$i"
		assert_equal "$(bg_rc "s$i")" 0
		assert_equal "$(bg_err "s$i")" ''
	done
	id=$(bg_out s1)
	is_id "$id"
	for i in 2 3 4 5 6 7 8; do
		assert_equal "$(bg_out "s$i")" "$id"
	done
	assert_equal "$(ready_count)" 1
	[ -n "$(ready_file "$id")" ]
	assert_equal "$(count_in "$Q" tmp)" 0
}

# Whether a pending sender lives is told by its lock on the key, which
# NFS carries to every host; a key that names a sender of another host
# and is locked by no one is a dead sender's.
@test "broker: a key left pending by a sender that died, on any host, is taken over at once" {
	mkdir "$Q/keys"
	hash=$(printf %s nightly | b2sum -l 128 | cut -c1-32)
	printf 'pending 4242 elsewhere.example\n' >"$Q/keys/$hash"
	t0=$(now_ms)
	run --separate-stderr -0 mq-send -k nightly "$Q" <<<body
	assert_equal "$stderr" ''
	is_id "$output"
	assert [ $(($(now_ms) - t0)) -lt 5000 ]
	assert_equal "$(cat "$Q/keys/$hash")" "$output"
	assert_equal "$(ready_count)" 1
}

@test "broker: once the dedup window has passed, the same key enqueues again" {
	mq-init --dedup-window 2s "$Q"
	id1=$(echo one | mq-send -k daily "$Q")
	t0=$(now_ns)
	run -0 mq-send -k daily "$Q" <<<two
	assert_output "$id1"
	assert_equal "$(ready_count)" 1
	wait_for 6 after_ns $((t0 + 3000000000))
	run -0 mq-send -k daily "$Q" <<<three
	id2=$output
	is_id "$id2"
	[ "$id2" != "$id1" ] || fail "key still held after its window"
	assert_equal "$(ready_count)" 2
	run -0 mq-send -k daily "$Q" <<<four
	assert_output "$id2"
	assert_equal "$(ready_count)" 2
}

@test "broker: -k with -l, or with two files, is a usage error" {
	usage=$(usage_of mq-send)
	run --separate-stderr mq-send -k k -l "$Q" <<<$'a\nb'
	assert_failure 64
	assert_equal "$stderr" "$usage"
	echo a >"$T/a"
	echo b >"$T/b"
	run --separate-stderr mq-send -k k "$Q" "$T/a" "$T/b"
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-send -k '' "$Q" </dev/null
	assert_failure 64
	assert_equal "$stderr" "mq-send: -k: empty key"
	assert_equal "$(ready_count)" 0
}

# --- priorities -------------------------------------------------------------

@test "broker: higher priority first, FIFO within a priority" {
	for m in a:0 b:9 c:5 d:0 e:9; do
		echo "${m%:*}" | mq-send -q -p "${m#*:}" "$Q"
	done
	[ -d "$Q/new/p9-0000010000000000" ]
	[ -d "$Q/new/p5-0000010000000000" ]
	[ -n "$(ready_file 0000010000000001)" ]
	assert_equal "$(header_of priority "$(ready_file 0000010000000001)")" 9
	for i in 1 2 3 4 5; do
		mq-recv "$Q"
	done >"$T/got"
	run cat "$T/got"
	assert_output $'b\ne\nc\na\nd'
	run mq-recv "$Q"
	assert_failure 1
}

@test "broker: a high-priority message overtakes ready ones sent before it" {
	for i in 1 2 3; do echo "low$i" | mq-send -q "$Q"; done
	run -0 mq-recv "$Q"
	assert_output low1
	echo urgent | mq-send -q -p 1 "$Q"
	run -0 mq-recv "$Q"
	assert_output urgent
	run -0 mq-recv "$Q"
	assert_output low2
}

@test "broker: a priority outside 0-9 exits 64 and sends nothing" {
	for p in 10 -1 x 5x; do
		run --separate-stderr mq-send -p "$p" "$Q" <<<body
		assert_failure 64
		assert_equal "$stderr" "mq-send: -p: priority must be 0 to 9: $p"
	done
	assert_equal "$(ready_count)" 0
}

# --- fan-out topics ---------------------------------------------------------

@test "broker: a topic message reaches three subscribers as hard links of one file" {
	make_topic
	run grep -c '^subscriber = ' "$TOPIC/config"
	assert_output 3
	run grep -x "topic = $TOPIC" "$S2/config"
	assert_success
	run -0 --separate-stderr mq-send "$TOPIC" <<<news
	is_id "$output"
	for s in "$S1" "$S2" "$S3"; do
		assert_equal "$(ready_count "$s")" 1
		assert_equal "$(count_in "$s" tmp)" 0
	done
	f1=$(find "$S1/new" -type f) f2=$(find "$S2/new" -type f) f3=$(find "$S3/new" -type f)
	inode=$(stat -c %i "$f1")
	assert_equal "$(stat -c %i "$f2")" "$inode"
	assert_equal "$(stat -c %i "$f3")" "$inode"
	# One file with a name in each subscriber: no copies.
	assert_equal "$(stat -c %h "$f1")" 3
	assert_equal "$(ready_count "$TOPIC")" 0
	assert_equal "$(count_in "$TOPIC" fanout)" 0
	for s in "$S1" "$S2" "$S3"; do
		run -0 mq-recv "$s"
		assert_output news
	done
}

@test "broker: fan-out subscribers ack, retry and fail independently" {
	make_topic
	echo job | mq-send -q "$TOPIC"
	r1=$(mq-recv -L 30 -o "$T/b1" "$S1")
	r2=$(mq-recv -L 30 -o "$T/b2" "$S2")
	r3=$(mq-recv -L 30 -o "$T/b3" "$S3")
	for i in 1 2 3; do
		run cat "$T/b$i"
		assert_output job
	done
	run -0 mq-ack "$S1" "$r1"
	run -0 mq-ack --retry "$S2" "$r2"
	run -0 mq-ack --fail "$S3" "$r3"
	# sub1: done.  sub2: ready again, attempt 1 counted.  sub3: dead.
	assert_equal "$(ready_count "$S1")" 0
	assert_equal "$(count_in "$S1" cur)" 0
	assert_equal "$(count_in "$S1" dead)" 0
	assert_equal "$(ready_count "$S2")" 1
	assert_equal "$(count_in "$S2" dead)" 0
	run names_in dead "$S3"
	assert_output --regexp '^[0-9a-f]{16}\.1\.failed$'
	assert_equal "$(ready_count "$S3")" 0
	# What is left is still one file, linked from sub2 and sub3.
	f2=$(find "$S2/new" -type f) f3=$(find "$S3/dead" -type f)
	assert_equal "$(stat -c %i "$f2")" "$(stat -c %i "$f3")"
	assert_equal "$(stat -c %h "$f2")" 2
	run -0 mq-recv "$S2" -- bash -c attempt_and_body
	assert_output "2 job"
	run mq-recv "$S1"
	assert_failure 1
	run mq-recv "$S3"
	assert_failure 1
	run names_in dead "$S3"
	assert_output --regexp '^[0-9a-f]{16}\.1\.failed$'
}

@test "broker: a subscriber added later gets messages from then on; --unsubscribe stops delivery" {
	TOPIC="$BATS_TEST_TMPDIR/topic" S1="$BATS_TEST_TMPDIR/early" S2="$BATS_TEST_TMPDIR/late"
	mq-init "$TOPIC"
	mq-init --subscribe "$TOPIC" "$S1"
	echo m1 | mq-send -q "$TOPIC"
	mq-init --subscribe "$TOPIC" "$S2"
	echo m2 | mq-send -q "$TOPIC"
	assert_equal "$(ready_count "$S1")" 2
	assert_equal "$(ready_count "$S2")" 1
	run -0 mq-recv "$S2"
	assert_output m2
	run -0 mq-init --unsubscribe "$TOPIC" "$S1"
	run grep -c "^subscriber = $S1\$" "$TOPIC/config"
	assert_output 0
	run grep -c '^topic = ' "$S1/config"
	assert_output 0
	echo m3 | mq-send -q "$TOPIC"
	assert_equal "$(ready_count "$S1")" 2
	run -0 mq-recv "$S2"
	assert_output m3
	for m in m1 m2; do
		run -0 mq-recv "$S1"
		assert_output "$m"
	done
	run mq-recv "$S1"
	assert_failure 1
}

@test "broker: a subscriber's consumer killed mid-processing does not affect the others" {
	make_topic
	handler slow <<'EOF'
echo $$ >"$T/handler.pid.tmp"
mv "$T/handler.pid.tmp" "$T/handler.pid"
cat >"$T/slow.body"
exec sleep 60
EOF
	echo payload | mq-send -q "$TOPIC"
	bg recv1 mq-recv "$S1" -- "$T/slow"
	recv1=$BG_PID
	wait_for 5 test -s "$T/handler.pid"
	hpid=$(cat "$T/handler.pid")
	echo "$hpid" >>"$T/bg.pids"
	assert_equal "$(count_in "$S1" cur)" 1
	# The others are served while sub1's handler is busy.
	assert_equal "$(ready_count "$S2")" 1
	run -0 mq-recv "$S2" -- bash -c attempt_and_body
	assert_output "1 payload"
	kill -KILL "$hpid" "$recv1"
	wait_for 5 gone "$hpid"
	wait_for 5 gone "$recv1"
	run -0 mq-recv "$S3" -- bash -c attempt_and_body
	assert_output "1 payload"
	for s in "$S2" "$S3"; do
		assert_equal "$(count_in "$s" new)" 0
		assert_equal "$(count_in "$s" cur)" 0
		assert_equal "$(count_in "$s" dead)" 0
	done
	# sub1's message is given back at once (its lock died with it),
	# intact, as a second attempt.
	run cat "$T/slow.body"
	assert_output payload
	run -0 --separate-stderr timeout 10 mq-recv -t 5 "$S1" -- bash -c attempt_and_body
	assert_output "2 payload"
	assert_equal "$(count_in "$S1" cur)" 0
	assert_equal "$(count_in "$S1" dead)" 0
}

@test "broker: a subscriber's idle mq-watch delivers while another subscriber's handler runs" {
	make_topic
	handler busy <<'EOF'
echo $$ >"$T/busy.pid"
for _ in $(seq 1 400); do [ -e "$T/release" ] && break; sleep 0.05; done
cat >/dev/null
EOF
	echo shared | mq-send -q "$TOPIC"
	bg recv1 mq-recv "$S1" -- "$T/busy"
	recv1=$BG_PID
	wait_for 5 test -s "$T/busy.pid"
	cat "$T/busy.pid" >>"$T/bg.pids"
	bg watch2 mq-watch "$S2"
	early=no late=no
	wait_for 3 test -s "$T/watch2.out" && early=yes
	touch "$T/release"
	wait_exit 10 "$recv1"
	assert_equal "$EXIT_STATUS" 0
	if [ "$early" = no ]; then
		wait_for 3 test -s "$T/watch2.out" && late=yes
		fail "sub2's watcher did not deliver while sub1's handler ran" \
		    "(delivered within 3 s after that handler ended: $late)"
	fi
	run cat "$T/watch2.out"
	assert_output shared
}

# plant_fanout BODY: leave the state a sender killed just after the commit
# point of a fan-out leaves (see lib/fanout.c): the topic's file in
# TOPIC/fanout/TOPICID.DUE.PRIO and a link fan.TOPICID.SUBID in each
# subscriber's tmp/, with SUBID an id taken from that subscriber's counter.
# Sets $planted_id (the topic's id).
plant_fanout() {
	local f s sid
	mq-init --unsubscribe "$TOPIC" "$S1" "$S2" "$S3"
	planted_id=$(echo "$1" | mq-send "$TOPIC")
	f=$(ready_file "$planted_id" "$TOPIC")
	mq-init --subscribe "$TOPIC" "$S1" "$S2" "$S3"
	for s in "$S1" "$S2" "$S3"; do
		sid=$(echo reserve | mq-send "$s")
		mq-recv -o /dev/null "$s"
		ln "$f" "$s/tmp/fan.$planted_id.$sid"
	done
	mkdir -p "$TOPIC/fanout"
	mv "$f" "$TOPIC/fanout/$planted_id.0000000000000000000.0"
	assert_equal "$(stat -c %h "$TOPIC/fanout/$planted_id.0000000000000000000.0")" 4
}

@test "broker: a fan-out interrupted after its commit point is finished by a claim on one subscriber, exactly once" {
	make_topic
	plant_fanout crashed
	for s in "$S1" "$S2" "$S3"; do
		assert_equal "$(ready_count "$s")" 0
	done
	run -0 --separate-stderr mq-recv "$S1"
	assert_output crashed
	assert_equal "$(count_in "$TOPIC" fanout)" 0
	for s in "$S1" "$S2" "$S3"; do
		assert_equal "$(count_in "$s" tmp)" 0
	done
	assert_equal "$(ready_count "$S2")" 1
	assert_equal "$(ready_count "$S3")" 1
	for s in "$S2" "$S3"; do
		run -0 mq-recv "$s"
		assert_output crashed
		run mq-recv "$s"
		assert_failure 1
	done
	run mq-recv "$S1"
	assert_failure 1
}

@test "broker: a fan-out interrupted after its commit point survives a subscriber's removal of stale tmp/ files" {
	make_topic
	plant_fanout crashed
	# An uncommitted fan-out's copy, which was never sent.
	touch "$S1/tmp/fan.00000100000003ff.00000100000003ff"
	# Two days on, before any consumer of sub1 has looked, a sender to
	# it opens a bucket (priority 1) and removes what is stale in tmp/.
	touch -d '2 days ago' "$TOPIC"/fanout/* "$S1/tmp/fan.00000100000003ff.00000100000003ff"
	run -0 mq-send -q -p 1 "$S1" <<<direct
	assert_equal "$(count_in "$S1" tmp)" 0
	run -0 mq-recv "$S1"
	assert_output direct
	run -0 mq-recv "$S1"
	assert_output crashed
	run mq-recv "$S1"
	assert_failure 1
	assert_equal "$(count_in "$TOPIC" fanout)" 0
	for s in "$S2" "$S3"; do
		run -0 mq-recv "$s"
		assert_output crashed
	done
}

@test "broker: mq-fsck leaves a copy a topic owes its subscriber; --fix on a stale one places it and removes only a copy never sent" {
	make_topic
	plant_fanout crashed
	# Fresh: a fan-out in progress, as far as fsck can tell.
	run -0 mq-fsck "$S1"
	assert_output ""
	# Two days on: the owed copy is placed, the uncommitted one removed.
	touch "$S1/tmp/fan.00000100000003ff.00000100000003ff"
	touch -d '2 days ago' "$TOPIC"/fanout/* "$S1"/tmp/fan.*
	run -1 mq-fsck --fix "$S1"
	assert_output "$S1: tmp/fan.00000100000003ff.00000100000003ff: stale copy of a topic's message, not owed: fixed: remove it (it was never sent)"
	assert_equal "$(count_in "$S1" tmp)" 0
	for s in "$S1" "$S2" "$S3"; do
		run -0 mq-recv "$s"
		assert_output crashed
	done
	assert_equal "$(count_in "$TOPIC" fanout)" 0
}

@test "broker: a fan-out interrupted after its commit point is finished by the next send to the topic" {
	make_topic
	plant_fanout crashed
	echo next | mq-send -q "$TOPIC"
	assert_equal "$(count_in "$TOPIC" fanout)" 0
	for s in "$S1" "$S2" "$S3"; do
		assert_equal "$(count_in "$s" tmp)" 0
		assert_equal "$(ready_count "$s")" 2
		for m in crashed next; do
			run -0 mq-recv "$s"
			assert_output "$m"
		done
		run mq-recv "$s"
		assert_failure 1
	done
}

# --- message groups ---------------------------------------------------------

# lines_at_least N FILE: FILE exists and has at least N lines.
lines_at_least() { [ -f "$2" ] && [ "$(wc -l <"$2")" -ge "$1" ]; }

@test "broker: mq-watch -j 4 runs each group one at a time in order, different groups in parallel" {
	handler h <<'EOF'
read -r g n
s=${EPOCHREALTIME/./}
sleep 0.3
e=${EPOCHREALTIME/./}
echo "$g $n $s $e" >>"$T/log"
EOF
	for n in 1 2 3 4 5; do
		for g in A B C; do
			echo "$g $n" | mq-send -q -g "$g" "$Q"
		done
	done
	bg watch mq-watch -j 4 "$Q" -- "$T/h"
	wait_for 30 lines_at_least 15 "$T/log"
	wait_for 5 empty_queue
	for g in A B C; do
		# In order, and each starts after the one before ended.
		run awk -v g="$g" '$1 == g {
			if ($2 != ++n) { print "out of order: " $0; exit 1 }
			if (n > 1 && $3 < end) { print "overlap: " $0; exit 1 }
			end = $4 } END { if (n != 5) { print "count " n; exit 1 } }' "$T/log"
		assert_success
	done
	# Some two messages of different groups ran at the same time.
	run awk '{ g[NR] = $1; s[NR] = $3; e[NR] = $4 }
	    END { for (i = 1; i <= NR; i++) for (j = 1; j <= NR; j++)
		if (g[i] != g[j] && s[i] < e[j] && s[j] < e[i]) { print "yes"; exit }
	    print "no" }' "$T/log"
	assert_output yes
	# 15 runs of 0.3 s, three at a time: well under the 4.5 s of one by one.
	first=$(sort -k3n "$T/log" | head -1 | cut -d' ' -f3)
	last=$(sort -k4n "$T/log" | tail -1 | cut -d' ' -f4)
	between "wall time of 15 handlers (ms)" $(( (last - first) / 1000 )) 1500 3800
}

@test "broker: mq-recv -L consumers never hold two messages of one group at once" {
	a1=$(echo a1 | mq-send -g A "$Q")
	echo a2 | mq-send -q -g A "$Q"
	echo b1 | mq-send -q -g B "$Q"
	echo free | mq-send -q "$Q"
	r1=$(mq-recv -L 30 -o "$T/c1" "$Q")
	assert_equal "$(cat "$T/c1")" a1
	r2=$(mq-recv -L 30 -o "$T/c2" "$Q")
	assert_equal "$(cat "$T/c2")" b1
	r3=$(mq-recv -L 30 -o "$T/c3" "$Q")
	assert_equal "$(cat "$T/c3")" free
	run --separate-stderr mq-recv -L 30 "$Q"
	assert_failure 1
	# A retried owner stays first in its group, delayed or not.
	run -0 mq-ack --retry "$Q" "$r1"
	run -0 --separate-stderr mq-recv -L 30 -o "$T/c4" "$Q"
	assert_equal "$(cat "$T/c4")" a1
	run -0 mq-ack --retry -d 1 "$Q" "$output"
	[ -n "$(delayed_name "$a1")" ]
	run --separate-stderr mq-recv -L 30 "$Q"
	assert_failure 1
	run -0 --separate-stderr mq-recv -t 5 -L 30 -o "$T/c5" "$Q"
	assert_equal "$(cat "$T/c5")" a1
	run -0 mq-ack "$Q" "$output"
	run -0 --separate-stderr mq-recv -L 30 -o "$T/c6" "$Q"
	assert_equal "$(cat "$T/c6")" a2
	mq-ack "$Q" "$r2" "$r3" "$output"
	empty_queue
}

@test "broker: two concurrent mq-recv -L loops never hold two messages of one group" {
	for n in 1 2 3 4 5 6; do
		for g in A B; do
			echo "$g$n" | mq-send -q -g "$g" "$Q"
		done
	done
	# Each consumer, once it holds a message, counts the leases in cur/
	# of its group; two at a time would show as 2.
	cat >"$T/consumer" <<'EOF'
#!/bin/bash
q=$1 log=$2
for _ in $(seq 1 200); do
	r=$(mq-recv -L 30 -o "$log.body" "$q") || { [ -z "$(find "$q/new" "$q/cur" -type f)" ] && exit 0; sleep 0.02; continue; }
	b=$(cat "$log.body")
	g=${b:0:1}
	held=$(grep -l -x "group: $g" "$q"/cur/* 2>/dev/null | wc -l)
	echo "$b $held" >>"$log"
	sleep 0.05
	mq-ack "$q" "$r"
done
exit 1
EOF
	chmod +x "$T/consumer"
	bg_start c1 "$T/consumer" "$Q" "$T/log1"
	bg_start c2 "$T/consumer" "$Q" "$T/log2"
	bg_wait 30 c1
	bg_wait 30 c2
	assert_equal "$(bg_rc c1)" 0
	assert_equal "$(bg_rc c2)" 0
	run bash -c 'cat "$1" "$2" | wc -l' _ "$T/log1" "$T/log2"
	assert_output 12
	run awk '$2 != 1' "$T/log1" "$T/log2"
	assert_output ''
	# Both consumers took part.
	[ -s "$T/log1" ]
	[ -s "$T/log2" ]
	empty_queue
}

# --- visibility -------------------------------------------------------------

@test "broker: mq-stat counts delayed messages and mq-ls lists them, ready ones in receive order" {
	echo later1 | mq-send -q -d 1h "$Q"
	echo later2 | mq-send -q --at $(( $(date +%s) + 7200 )) "$Q"
	hi=$(echo hi | mq-send -p 7 "$Q")
	lo=$(echo lo | mq-send "$Q")
	run -0 mq-stat --json "$Q"
	assert_output --partial '"ready":2,"delayed":2,'
	run -0 mq-stat "$Q"
	assert_regex "${lines[1]}" '^[^ ]*q +2 +2 +0 +0 +0 '
	run -0 mq-ls --state delayed "$Q"
	assert_equal "${#lines[@]}" 2
	assert_regex "${lines[0]}" '^[0-9a-f]{16} +delayed '
	assert_regex "${lines[1]}" '^[0-9a-f]{16} +delayed '
	run -0 mq-ls --state ready "$Q"
	assert_equal "${#lines[@]}" 2
	assert_regex "${lines[0]}" "^$hi +ready "
	assert_regex "${lines[1]}" "^$lo +ready "
}

@test "broker: mq-ls shows a message's priority" {
	hi=$(echo hi | mq-send -p 7 "$Q")
	echo lo | mq-send -q "$Q"
	run -0 mq-ls --state ready "$Q"
	assert_regex "${lines[0]}" "^$hi "
	assert_regex "${lines[0]}" '(priority|prio)[=: ]+7'
	run -0 mq-ls --json --state ready "$Q"
	assert_regex "${lines[0]}" '"priority":"?7'
	run -0 mq-ls --show "$hi" "$Q"
	assert_line --regexp '^priority: 7$'
}
