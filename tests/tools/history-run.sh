#!/bin/bash
# shellcheck disable=SC2317  # functions run through start() and trap
# history-run.sh - a Jepsen-style history of one queue under SIGKILLs.
#
# usage: history-run.sh [-t SECS] [-p N] [-b N] [-l N] [-x N] [-w N] [-j N]
#                       [-s N] [-k MS] [-L SECS] QUEUE LOGDIR
#
# Runs, for SECS seconds, N producers of single sends (-p), N producers of
# five-line batches with mq-send -l (-b), and consumers of four kinds:
# mq-recv -L with an explicit mq-ack (-l), mq-recv -- HANDLER (-x),
# mq-watch -j N -- HANDLER (-w; -j, default 2) and mq-watch streaming
# bodies (-s).  A
# killer sends SIGKILL to one of their mq-* processes every MS
# milliseconds on average (-k, 0: none).  Every operation is logged in
# LOGDIR with its start and end time ($EPOCHREALTIME) and its result;
# tests/tools/history-check.py reads the logs and checks the invariants.
#
# Then it stops the workers (producers finish their send, watchers get
# SIGTERM), waits for handlers orphaned by killed consumers, waits until
# every lease has run out, and drains the queue with mq-watch --drain.
# The queue must have been made with mq-init --lease L (the -L given
# here, default 2) and a max-attempts high enough that kills do not
# dead-letter messages.  Exit 0 when the run completed; 2 when a process
# had to be killed because it did not stop (a hang); 64 on usage errors.
#
# Log lines (one file per worker, so lines never interleave):
#   S PRODUCER SEQ START END RC ID|-        a send (batch: one per line)
#   L NAME START END RC RECEIPT|- BODY      mq-recv -L
#   A NAME START END RC RECEIPT             mq-ack
#   X TOKEN START END RC                    mq-recv -- HANDLER
#   W TOKEN START END RC                    an mq-watch -- HANDLER run
#   V TOKEN START END RC                    a streaming mq-watch run
#   T TOKEN TIME BODY                       a body it streamed, when read
#   D TOKEN START END ID ATTEMPT RECEIPT BODY   a handler (see the handler)
#   K TIME NAME PID COMM                    a SIGKILL
#   R TIME BODY                             a body from the final drain
#   Q KEY VALUE                             the queue after the drain
set -u

usage() {
	echo "usage: history-run.sh [-t SECS] [-p N] [-b N] [-l N] [-x N] [-w N] [-j N] [-s N] [-k MS] [-L SECS] QUEUE LOGDIR" >&2
	exit 64
}

secs=10 np=2 nb=1 nl=1 nx=1 nw=1 jobs=2 ns=1 kill_ms=300 lease=2
while getopts t:p:b:l:x:w:j:s:k:L: opt; do
	case $opt in
	t) secs=$OPTARG ;;
	p) np=$OPTARG ;;
	b) nb=$OPTARG ;;
	l) nl=$OPTARG ;;
	x) nx=$OPTARG ;;
	w) nw=$OPTARG ;;
	j) jobs=$OPTARG ;;
	s) ns=$OPTARG ;;
	k) kill_ms=$OPTARG ;;
	L) lease=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
Q=$1 D=$2
HANDLER="$(cd "$(dirname "$0")" && pwd)/history-handler.sh"
mkdir -p "$D" || exit 1
STOP="$D/stop"
rm -f "$STOP"

# run_child NAME COMMAND...: run COMMAND as a child whose pid the killer
# can find in $D/NAME.cur; its status is left in $rc.
run_child() {
	local name=$1 pid
	shift
	"$@" &
	pid=$!
	echo "$pid" >"$D/$name.cur"
	wait "$pid"
	rc=$?
	: >"$D/$name.cur"
}

producer() {
	local p=$1 s=0 t0 t1 id log body
	log="$D/p$p.log" body="$D/p$p.body"
	while [ ! -e "$STOP" ]; do
		s=$((s + 1))
		printf 'producer %s seq %s' "$p" "$s" >"$body"
		t0=$EPOCHREALTIME
		run_child "p$p" mq-send "$Q" "$body" >"$D/p$p.out" 2>>"$D/p$p.err"
		t1=$EPOCHREALTIME
		id=$(head -n 1 "$D/p$p.out")
		[[ $id =~ ^[0-9a-f]{16}$ ]] || id=-
		echo "S $p $s $t0 $t1 $rc $id" >>"$log"
	done
}

# A producer of batches: five lines, one mq-send -l, its ids in order.
batcher() {
	local p=$1 s=0 i t0 t1 log body
	log="$D/p$p.log" body="$D/p$p.body"
	local -a ids
	while [ ! -e "$STOP" ]; do
		for i in 1 2 3 4 5; do
			printf 'producer %s seq %s\n' "$p" $((s + i))
		done >"$body"
		t0=$EPOCHREALTIME
		run_child "p$p" mq-send -l "$Q" "$body" >"$D/p$p.out" 2>>"$D/p$p.err"
		t1=$EPOCHREALTIME
		mapfile -t ids <"$D/p$p.out"
		for i in 0 1 2 3 4; do
			id=${ids[$i]:--}
			[[ $id =~ ^[0-9a-f]{16}$ ]] || id=-
			echo "S $p $((s + i + 1)) $t0 $t1 $rc $id" >>"$log"
		done
		s=$((s + 5))
	done
}

leaser() {
	local n=$1 t0 t1 a0 a1 receipt body log r
	log="$D/l$n.log"
	while [ ! -e "$STOP" ]; do
		rm -f "$D/l$n.body"
		t0=$EPOCHREALTIME
		run_child "l$n" mq-recv -t 1 -L "$lease" -o "$D/l$n.body" "$Q" \
		    >"$D/l$n.rcpt" 2>>"$D/l$n.err"
		t1=$EPOCHREALTIME
		if [ "$rc" -ne 0 ]; then
			echo "L l$n $t0 $t1 $rc -" >>"$log"
			continue
		fi
		receipt=$(head -n 1 "$D/l$n.rcpt")
		body=$(cat "$D/l$n.body")
		echo "L l$n $t0 $t1 0 $receipt $body" >>"$log"
		# Mostly ack at once; 1 in 10 never (the lease runs out), 1 in
		# 10 only after the lease ran out (stale, or late but first).
		r=$((RANDOM % 10))
		[ "$r" -eq 0 ] && continue
		[ "$r" -eq 1 ] && sleep "$lease.5"
		a0=$EPOCHREALTIME
		run_child "l$n" mq-ack "$Q" "$receipt" 2>>"$D/l$n.err"
		a1=$EPOCHREALTIME
		echo "A l$n $a0 $a1 $rc $receipt" >>"$log"
	done
}

execer() {
	local n=$1 i=0 t0 t1 log
	log="$D/x$n.log"
	while [ ! -e "$STOP" ]; do
		i=$((i + 1))
		t0=$EPOCHREALTIME
		TOKEN="x$n.$i" HLOG="$D/x$n.hlog" run_child "x$n" \
		    mq-recv -t 1 "$Q" -- bash "$HANDLER" 2>>"$D/x$n.err"
		t1=$EPOCHREALTIME
		echo "X x$n.$i $t0 $t1 $rc" >>"$log"
	done
}

watcher() {
	local n=$1 i=0 t0 t1 log
	log="$D/w$n.log"
	while [ ! -e "$STOP" ]; do
		i=$((i + 1))
		t0=$EPOCHREALTIME
		TOKEN="w$n.$i" HLOG="$D/w$n.hlog" run_child "w$n" \
		    mq-watch -j "$jobs" "$Q" -- bash "$HANDLER" >/dev/null \
		    2>"$D/w$n.$i.err"
		t1=$EPOCHREALTIME
		echo "W w$n.$i $t0 $t1 $rc" >>"$log"
	done
}

streamer() {
	local n=$1 i=0 t0 t1 spid log fifo
	log="$D/s$n.log"
	while [ ! -e "$STOP" ]; do
		i=$((i + 1))
		fifo="$D/s$n.$i.fifo"
		mkfifo "$fifo"
		# Stamp each body with the time it was read.
		(
			tok="s$n.$i"
			while IFS= read -r line; do
				echo "T $tok $EPOCHREALTIME $line"
			done <"$fifo" >>"$log"
		) &
		spid=$!
		t0=$EPOCHREALTIME
		run_child "s$n" mq-watch "$Q" >"$fifo" 2>"$D/s$n.$i.err"
		t1=$EPOCHREALTIME
		wait "$spid"
		rm -f "$fifo"
		echo "V s$n.$i $t0 $t1 $rc" >>"$log"
	done
}

# Every MS milliseconds on average, pick workers at random until one is
# running an mq-* program (most are, most of the time) and kill it.
killer() {
	local names=("$@") name pid comm ms try
	while [ ! -e "$STOP" ]; do
		ms=$((kill_ms / 2 + RANDOM % (kill_ms + 1)))
		sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
		for ((try = 0; try < 200; try++)); do
			name=${names[RANDOM % ${#names[@]}]}
			pid=
			read -r pid 2>/dev/null <"$D/$name.cur"
			[ -n "$pid" ] || continue
			comm=
			read -r comm 2>/dev/null <"/proc/$pid/comm"
			# Only our own mq-* children, never a shell between
			# fork and exec, nor a pid reused by something else.
			[[ $comm == mq-* ]] || continue
			kill -KILL "$pid" 2>/dev/null &&
			    echo "K $EPOCHREALTIME $name $pid $comm" >>"$D/killer.log"
			break
		done
	done
}

declare -a workers=() names=()
start() {
	local name=$1
	shift
	# The shell's "Killed" notices go to a file, not the test's output.
	"$@" 2>>"$D/$name.shell" &
	workers+=("$!")
	names+=("$name")
}

cleanup() {
	local pid name
	touch "$STOP"
	for pid in "${workers[@]}" ${killer_pid:-}; do
		kill -KILL "$pid" 2>/dev/null
	done
	for name in "${names[@]}"; do
		pid=$(cat "$D/$name.cur" 2>/dev/null)
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 2' INT TERM

p=0
for ((i = 1; i <= np; i++)); do p=$((p + 1)); start "p$p" producer "$p"; done
for ((i = 1; i <= nb; i++)); do p=$((p + 1)); start "p$p" batcher "$p"; done
for ((i = 1; i <= nl; i++)); do start "l$i" leaser "$i"; done
for ((i = 1; i <= nx; i++)); do mkdir -p "$D/x$i.hlog.run"; start "x$i" execer "$i"; done
for ((i = 1; i <= nw; i++)); do mkdir -p "$D/w$i.hlog.run"; start "w$i" watcher "$i"; done
for ((i = 1; i <= ns; i++)); do start "s$i" streamer "$i"; done
killer_pid=
if [ "$kill_ms" -gt 0 ]; then
	killer "${names[@]}" &
	killer_pid=$!
fi
echo "Q start $EPOCHREALTIME" >>"$D/queue.log"

sleep "$secs"

# Stop: no new operations; watchers finish their handlers and exit.
touch "$STOP"
[ -n "$killer_pid" ] && wait "$killer_pid"
echo "Q stop $EPOCHREALTIME" >>"$D/queue.log"
hung=0
deadline=$((SECONDS + 30))
declare -A termed=()
for idx in "${!workers[@]}"; do
	while kill -0 "${workers[$idx]}" 2>/dev/null; do
		name=${names[$idx]}
		# One SIGTERM per watcher: a second one would kill its handlers.
		if [[ $name == [ws]* ]]; then
			pid=$(cat "$D/$name.cur" 2>/dev/null)
			if [ -n "$pid" ] && [ -z "${termed[$pid]:-}" ] &&
			    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == mq-watch ]]; then
				kill -TERM "$pid" 2>/dev/null
				termed[$pid]=1
			fi
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "history-run: $name did not stop" >&2
			hung=1
			break
		fi
		sleep 0.1
	done
done
[ "$hung" -eq 0 ] || exit 2
wait

# Handlers orphaned by a killed consumer still run; wait for them.
deadline=$((SECONDS + 30))
while [ -n "$(find "$D" -path '*.hlog.run/*' -print -quit)" ]; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "history-run: orphaned handlers did not finish" >&2
		exit 2
	fi
	sleep 0.1
done

# Every lease must run out before the drain: the lease of a consumer
# killed with mq-recv -L lasts until its deadline.
deadline=$((SECONDS + lease + 30))
for (( ; ; )); do
	last=$(find "$Q/cur" -type f -printf '%f\n' | sed 's/.*\.//' | sort -n | tail -n 1)
	[ -z "$last" ] && break
	[ "$(date +%s%N)" -gt "$last" ] && break
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "history-run: a lease in cur/ does not run out: $last" >&2
		exit 2
	fi
	sleep 0.1
done

t0=$EPOCHREALTIME
timeout 120 mq-watch --drain "$Q" >"$D/drain.out" 2>"$D/drain.err"
rc=$?
t1=$EPOCHREALTIME
echo "Q drain $t0 $t1 $rc" >>"$D/queue.log"
while IFS= read -r line; do
	echo "R $t0 $line"
done <"$D/drain.out" >>"$D/drain.log"
[ "$rc" -eq 124 ] && { echo "history-run: the drain did not finish" >&2; exit 2; }

# Dead letters are not lost: their bodies are told to the checker.
for f in "$Q"/dead/*; do
	[ -f "$f" ] && echo "Q dead-body $(sed '1,/^$/d' "$f")"
done >>"$D/queue.log"
for dir in new cur delay dead quarantine tmp; do
	echo "Q $dir $(find "$Q/$dir" \( -type f -o -type l -o -type p \) | wc -l)"
done >>"$D/queue.log"
timeout 60 mq-fsck "$Q" >"$D/fsck.out" 2>&1
echo "Q fsck $?" >>"$D/queue.log"
exit 0
