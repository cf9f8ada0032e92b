#!/bin/sh
# bench/run.sh - mq's benchmark, side by side with its peers (issue 7).
#
# Every goal is a ratio measured in this one run, the peer right beside
# mq, because this kind of machine is noisy (±30-50 %) and absolute times
# mean little.  Peers: a bare C program (bench/floor.c, bench/drive.c
# files), python-dirq (bench/dirq_peer.py) and Redis with appendonly yes,
# appendfsync always (started here on a free loopback port, stopped at
# exit).  Queues are benchmarked in the steady state issue 7 asks for:
# files are created and deleted in the queue's tmp/ first (drive churn),
# so creates meet recently freed inodes as in a spool that has churned.
#
# Prints one table: workload | mq | peer | ratio | goal | verdict.  Never
# fails: a goal not met is reported, not an error; a missing peer is
# skipped with the reason.
#
# Environment:
#   BUILD=build         where make put bin/ and libmq.a (make passes it)
#   BENCH_FULL=1        the full set: depth 1M, 100k batch, 1 GiB body,
#                       longer runs (default: quick, under 3 minutes)
#   BENCH_DIR=DIR       where the work directory goes (default: $BUILD;
#                       must be on the disk being measured)
#   BENCH_PROFILE=1     also run bench/profile.sh (strace, callgrind)
#   BENCH_TABLE=FILE    also write the table to FILE
#   BENCH_GOALS="1 7"   run only these goals (1-7, codec; default all)
#   CC=cc
set -u
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
BIN=$BUILD/bin
OUT=$BUILD/bench
FULL=${BENCH_FULL:-0}
CC=${CC:-cc}
start_s=$(date +%s)

say() { printf 'bench: %s\n' "$*" >&2; }

if [ ! -x "$BIN/mq-send" ] || [ ! -f "$BUILD/libmq.a" ]; then
	say "no programs in $BIN (run make first); nothing measured"
	exit 0
fi

if [ "$FULL" = 1 ]; then
	mode=full DEPTH=1000000 SHALLOW=1000 CHURN=20000 RUNS=1000 \
	    BATCH=100000 CHUNKS=10 FRESH=10000 REDIS_N=20000 DRAIN=100000 WAKE=2000 CONC_S=5 \
	    BIG_MB=1024 BIG_ROUNDS=3 CODEC_SMALL=3000 CODEC_BIG=30 TAKES=3 POP_S=900 \
	    RECV_RUNS=200
else
	mode=quick DEPTH=100000 SHALLOW=1000 CHURN=3000 RUNS=200 \
	    BATCH=10000 CHUNKS=5 FRESH=2000 REDIS_N=2000 DRAIN=10000 WAKE=1000 CONC_S=2 \
	    BIG_MB=256 BIG_ROUNDS=2 CODEC_SMALL=300 CODEC_BIG=5 TAKES=3 POP_S=25 \
	    RECV_RUNS=60
fi

# ---- peers ----------------------------------------------------------
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
PY=""
find_python() {
	for p in /usr/bin/python3 python3; do
		if have "$p" && "$p" -c 'import dirq' 2>/dev/null; then
			PY=$p
			return
		fi
	done
}
find_python
missing=""
[ -n "$PY" ] || missing="$missing python3-dirq"
have redis-server && have redis-cli || missing="$missing redis-server"
have hyperfine || missing="$missing hyperfine"
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ] && have apt-get; then
		say "installing$missing"
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing \
		    >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
		    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    $missing >/dev/null 2>&1; } ||
		    say "apt-get install$missing failed; skipping what is missing"
		find_python
	else
		say "missing$missing (not root, or no apt-get); those peers are skipped"
	fi
fi
[ -n "$PY" ] || say "python-dirq: not available; its columns are skipped"
HAVE_REDIS=0
have redis-server && have redis-cli && HAVE_REDIS=1
[ $HAVE_REDIS = 1 ] || say "redis-server: not available; its columns are skipped"
HAVE_HF=0
have hyperfine && HAVE_HF=1

# ---- drivers --------------------------------------------------------
mkdir -p "$OUT"
WARN="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra"
$CC $WARN -o "$OUT/floor" "$here/floor.c" &&
$CC $WARN -o "$OUT/stamp" "$here/stamp.c" &&
$CC $WARN -o "$OUT/runx" "$here/runx.c" &&
$CC $WARN -shared -fPIC -o "$OUT/nosync.so" "$here/nosync.c" &&
$CC $WARN -o "$OUT/drive" "$here/drive.c" "$BUILD/libmq.a" \
    -Wl,-Bstatic -lsodium -lz -Wl,-Bdynamic || {
	say "building the benchmark drivers failed; nothing measured"
	exit 0
}
DRIVE=$OUT/drive
RUNX=$OUT/runx

# ---- work directory and Redis ----------------------------------------
W=$(mktemp -d "${BENCH_DIR:-$BUILD}/bench-work.XXXXXX") || {
	say "cannot make a work directory"; exit 0; }
REDIS_PID=""
KD=""
cleanup() {
	[ -n "$KD" ] && rm -rf "$KD"
	if [ -n "$REDIS_PID" ]; then
		kill "$REDIS_PID" 2>/dev/null
		wait "$REDIS_PID" 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 0' INT TERM HUP

PORT=""
if [ $HAVE_REDIS = 1 ]; then
	PORT=$($DRIVE freeport)
	mkdir -p "$W/redis"
	redis-server --port "$PORT" --bind 127.0.0.1 --dir "$W/redis" \
	    --appendonly yes --appendfsync always --save '' \
	    --daemonize no --logfile "$W/redis/log" &
	REDIS_PID=$!
	i=0
	until redis-cli -p "$PORT" ping >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			say "redis-server did not start; its columns are skipped"
			HAVE_REDIS=0
			break
		fi
		sleep 0.05
	done
fi

# ---- helpers ----------------------------------------------------------
ROWS=$W/rows
: > "$ROWS"
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$ROWS"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
# verdict EXPR: met when the awk expression is true.
verdict() { awk "BEGIN { exit !($1) }" && echo met || echo "NOT MET"; }
field() { echo "$1" | awk -v n="$2" '{ print $n }'; }
ms() { calc "$1 / 1000" "${2:-3}"; }
init() { "$BIN/mq-init" "$1" >/dev/null || say "mq-init $1 failed"; }
churn() { $DRIVE churn "$1" "$CHURN" 20 >/dev/null; }
# want GOAL: run this goal's section (BENCH_GOALS lists them; default all).
want() { case " ${BENCH_GOALS:-1 2 3 4 5 6 7 codec} " in *" $1 "*) ;; *) return 1 ;; esac; }

mkbody() { # FILE BYTES: printable, no spaces or newline
	awk -v n="$2" 'BEGIN { srand(7); s = "";
	    for (i = 0; i < n; i++) s = s sprintf("%c", 97 + int(rand() * 26));
	    printf "%s", s }' > "$1"
}
mkbody "$W/body" 1024
BODY=$(cat "$W/body")

say "mode $mode; work directory $W; redis port ${PORT:-none}"

# ---- goal 1: depth ----------------------------------------------------
if want 1; then
say "goal 1: depth $DEPTH vs $SHALLOW"
init "$W/shallow"
init "$W/deep"
$DRIVE populate "$W/shallow" $((SHALLOW + RECV_RUNS + 20)) 1024 60 >/dev/null
deep_n=$($DRIVE populate "$W/deep" "$DEPTH" 1024 "$POP_S")
[ "$deep_n" -lt "$DEPTH" ] && say "depth: populating took over ${POP_S}s; stopped at $deep_n"
r=$($RUNX -n "$RECV_RUNS" -w 3 -- "$BIN/mq-recv" "$W/shallow" ::: \
    "$BIN/mq-recv" "$W/deep")
s_line=$(echo "$r" | sed -n 1p)
d_line=$(echo "$r" | sed -n 2p)
s_wall=$(field "$s_line" 1) s_cpu=$(field "$s_line" 2)
d_wall=$(field "$d_line" 1) d_cpu=$(field "$d_line" 2) d_rss=$(field "$d_line" 3)
dq_wall="" dq_rss=""
if [ -n "$PY" ]; then
	"$PY" "$here/dirq_peer.py" populate "$W/dq-shallow" $((SHALLOW + 10)) 60 >/dev/null
	dq_n=$("$PY" "$here/dirq_peer.py" populate "$W/dq-deep" "$deep_n" "$POP_S")
	dqs=$("$PY" "$here/dirq_peer.py" take "$W/dq-shallow" 5)
	dqd=$("$PY" "$here/dirq_peer.py" take "$W/dq-deep" "$TAKES")
	dq_ratio=$(calc "$(field "$dqd" 1) / $(field "$dqs" 1)" 0)
	dq_cpu_ratio=$(calc "$(field "$dqd" 2) / ($(field "$dqs" 2) + 0.001)" 0)
	peer_wall="dirq $(field "$dqs" 1) -> $(field "$dqd" 1) ms (${dq_ratio}x)"
	peer_cpu="dirq ${dq_cpu_ratio}x"
	peer_rss="dirq $(calc "$(field "$dqd" 3) / 1024" 1) MiB"
	[ "$dq_n" != "$deep_n" ] && peer_wall="$peer_wall at depth $dq_n"
else
	peer_wall="skipped: no python-dirq" peer_cpu=$peer_wall peer_rss=$peer_wall
fi
ratio=$(calc "$d_wall / $s_wall")
row "1 mq-recv wall, depth $deep_n vs $SHALLOW" \
    "$(ms "$s_wall") -> $(ms "$d_wall") ms" "$peer_wall" "${ratio}x" "<= 2x" \
    "$(verdict "$ratio <= 2")"
ratio=$(calc "$d_cpu / $s_cpu")
row "1 mq-recv CPU, depth $deep_n vs $SHALLOW" \
    "$(ms "$s_cpu") -> $(ms "$d_cpu") ms" "$peer_cpu" "${ratio}x" "<= 2x" \
    "$(verdict "$ratio <= 2")"
row "1 max RSS of mq-recv at depth $deep_n" "$(calc "$d_rss / 1024" 2) MiB" \
    "$peer_rss" "-" "< 4 MiB" "$(verdict "$d_rss < 4096")"
r=$($RUNX -n 3 -w 1 -- "$BIN/mq-stat" "$W/deep")
st_wall=$(field "$r" 1)
proj=$(calc "$st_wall / 1000000 * 1000000 / $deep_n" 3)
if [ "$deep_n" -ge 1000000 ]; then
	row "1 mq-stat at depth $deep_n" "$(ms "$st_wall") ms" "-" "-" "< 1 s" \
	    "$(verdict "$st_wall < 1000000")"
else
	row "1 mq-stat at depth $deep_n (linear to 1M)" \
	    "$(ms "$st_wall") ms (1M: ${proj} s)" "-" "-" "< 1 s at 1M" \
	    "$(verdict "$proj < 1")"
fi
# The queues stay until the exit trap removes $W, and what they left
# unwritten is written now: removing a million files here would leave the
# goals after this one creating files among a million recently deleted
# inodes (ext4 without a journal skips those for a minute or more), and
# their data left dirty would be written by the next sync any of them
# waits for, so that their figures would depend on whether goal 1 ran.
sync

fi

# ---- goal 2: one process per durable message ---------------------------
if want 2; then
say "goal 2: process per message ($RUNS runs each)"
init "$W/p"
mkdir -p "$W/floor-new"
churn "$W/p/tmp"
SEND="$BIN/mq-send -q $W/p $W/body"
FLOOR="$OUT/floor $W/p/tmp $W/floor-new $W/body"
RCLI="redis-cli -p ${PORT:-0} LPUSH mqbench:cli $BODY"
# Interleaved rounds: every command meets the same machine weather.
if [ $HAVE_REDIS = 1 ]; then
	# shellcheck disable=SC2086
	r=$($RUNX -n "$RUNS" -w 10 -- $SEND ::: $FLOOR ::: $RCLI ::: \
	    "$BIN/mq-send" --version ::: /bin/true)
else
	# shellcheck disable=SC2086
	r=$($RUNX -n "$RUNS" -w 10 -- $SEND ::: $FLOOR ::: /bin/true ::: \
	    "$BIN/mq-send" --version ::: /bin/true)
fi
i_send=$(echo "$r" | sed -n 1p) i_floor=$(echo "$r" | sed -n 2p)
i_cli=$(echo "$r" | sed -n 3p) i_ver=$(echo "$r" | sed -n 4p)
i_true=$(echo "$r" | sed -n 5p)
send_rss=$(field "$i_send" 3)
how="interleaved medians of $RUNS"
send=$(field "$i_send" 1) floor=$(field "$i_floor" 1)
cli=$(field "$i_cli" 1) ver=$(field "$i_ver" 1) tru=$(field "$i_true" 1)
if [ $HAVE_HF = 1 ]; then
	churn "$W/p/tmp"
	cmds="'$SEND' '$FLOOR' '$BIN/mq-send --version' '/bin/true'"
	[ $HAVE_REDIS = 1 ] && cmds="$cmds '$RCLI'"
	eval "hyperfine -N --warmup 20 --runs $RUNS --export-json $W/hf.json \
	    $cmds" >/dev/null 2>"$W/hf.err" || say "hyperfine failed: $(tail -1 "$W/hf.err")"
	if [ -s "$W/hf.json" ]; then
		meds=$(sed -n 's/.*"median": *\([0-9.e-]*\).*/\1/p' "$W/hf.json" |
		    awk '{ printf "%.1f ", $1 * 1e6 }')
		set -- $meds
		if [ $# -ge 4 ]; then
			how="interleaved medians of $RUNS; hyperfine in ()"
			send=$1 floor=$2 ver=$3 tru=$4
			[ $# -ge 5 ] && cli=$5
		fi
	fi
fi
# The verdict takes the interleaved medians: hyperfine runs each command's
# block in turn, and a block that meets a bad spell of the filesystem
# (creates after deletes) moves its median by tens of per cent; hyperfine's
# own medians are shown beside them.
note() { # interleaved ratio, then hyperfine's
	if [ "$how" = "interleaved medians of $RUNS" ]; then echo "$1x"
	else echo "$1x (hyperfine $2x)"; fi
}
ratio=$(calc "$(field "$i_send" 1) / $(field "$i_floor" 1)")
hratio=$(calc "$send / $floor")
row "2 durable mq-send 1 KiB vs C floor (6 syscalls)" \
    "$(ms "$(field "$i_send" 1)") ms" "floor $(ms "$(field "$i_floor" 1)") ms" \
    "$(note "$ratio" "$hratio")" "<= 1.15x" "$(verdict "$ratio <= 1.15")"
row "2 CPU of that mq-send vs floor" "$(ms "$(field "$i_send" 2)") ms" \
    "floor $(ms "$(field "$i_floor" 2)") ms" \
    "$(calc "$(field "$i_send" 2) / $(field "$i_floor" 2)")x" "info" "info"
if [ $HAVE_REDIS = 1 ]; then
	ratio=$(calc "$(field "$i_cli" 1) / $(field "$i_send" 1)")
	hratio=$(calc "$cli / $send")
	row "2 durable mq-send vs redis-cli LPUSH (fsync always)" \
	    "$(ms "$(field "$i_send" 1)") ms" "redis-cli $(ms "$(field "$i_cli" 1)") ms" \
	    "$(note "$ratio" "$hratio") faster" ">= 2.5x faster" \
	    "$(verdict "$ratio >= 2.5")"
else
	row "2 durable mq-send vs redis-cli LPUSH" "$(ms "$(field "$i_send" 1)") ms" \
	    "skipped: no redis" "-" ">= 2.5x faster" "skipped"
fi
ratio=$(calc "$(field "$i_ver" 1) / $(field "$i_true" 1)" 3)
hratio=$(calc "$ver / $tru" 3)
row "2 mq-send --version vs /bin/true" "$(ms "$(field "$i_ver" 1)") ms" \
    "true $(ms "$(field "$i_true" 1)") ms" "$(note "$ratio" "$hratio")" \
    "<= 1.1x" "$(verdict "$ratio <= 1.1")"
say "goal 2 timing: $how"
rm -rf "$W/p" "$W/floor-new"

fi

# ---- goal 3: batch send ------------------------------------------------
if want 3; then
# The batch is cut into chunks; the three senders take turns chunk by
# chunk (runx rotates who goes first), all creating their files in the
# same churned tmp/, so the state of the filesystem, which moves a lot
# while files are created, weighs on each alike.  The filesystem is
# synced, untimed, before each chunk (runx -s): without that the durable
# sender's syncfs would also write the data the no-fsync senders just
# left, twice its own.
say "goal 3: batch send of $BATCH in $CHUNKS chunks"
per=$((BATCH / CHUNKS))
awk -v n="$per" -v b="$BODY" 'BEGIN { for (i = 0; i < n; i++) print b }' \
    > "$W/lines"
init "$W/b"
mkdir -p "$W/bf-new"
churn "$W/b/tmp"
r=$($RUNX -s -n "$CHUNKS" -w 0 -- "$DRIVE" files "$W/b/tmp" "$W/bf-new" \
    "$W/lines" ::: "$BIN/mq-send" -q -l "$W/b" "$W/lines" ::: \
    env LD_PRELOAD="$OUT/nosync.so" "$BIN/mq-send" -q -l "$W/b" "$W/lines")
rate() { calc "$per / ($(echo "$r" | sed -n "$1p" | awk '{ print $1 }') / 1000000)" 0; }
r_files=$(rate 1) r_batch=$(rate 2) r_nosync=$(rate 3)
ratio=$(calc "$r_batch / $r_files" 3)
row "3 mq-send -l $BATCH x 1 KiB durable vs same files, no fsync (C)" \
    "$r_batch msg/s" "C no-fsync $r_files msg/s" "${ratio}x" ">= 0.5x" \
    "$(verdict "$ratio >= 0.5")"
row "3 mq-send -l with every sync a no-op (LD_PRELOAD)" "$r_nosync msg/s" \
    "C no-fsync $r_files msg/s" "$(calc "$r_nosync / $r_files" 3)x" "info" "info"
if [ $HAVE_REDIS = 1 ]; then
	r=$($DRIVE redis-rate "$PORT" "$REDIS_N")
	r_redis=$(calc "$(field "$r" 1) / $(field "$r" 2)" 0)
	ratio=$(calc "$r_batch / $r_redis")
	row "3 mq-send -l durable vs Redis 1 client LPUSH (fsync always)" \
	    "$r_batch msg/s" "redis $r_redis msg/s" "${ratio}x" ">= 3x" \
	    "$(verdict "$ratio >= 3")"
else
	row "3 mq-send -l durable vs Redis 1 client" "$r_batch msg/s" \
	    "skipped: no redis" "-" ">= 3x" "skipped"
fi
# The same in a queue that never churned, for what the syncs cost when
# the create is cheap (this is not the steady state issue 7 asks about).
init "$W/b2"
mkdir -p "$W/bf2-new"
awk -v n="$FRESH" -v b="$BODY" 'BEGIN { for (i = 0; i < n; i++) print b }' \
    > "$W/lines"
r=$($RUNX -s -n 3 -w 0 -- "$DRIVE" files "$W/b2/tmp" "$W/bf2-new" \
    "$W/lines" ::: "$BIN/mq-send" -q -l "$W/b2" "$W/lines" ::: \
    env LD_PRELOAD="$OUT/nosync.so" "$BIN/mq-send" -q -l "$W/b2" "$W/lines")
per=$FRESH
f_files=$(rate 1) f_batch=$(rate 2) f_nosync=$(rate 3)
row "3 the same, $FRESH per run in an unchurned queue" "$f_batch msg/s" \
    "C no-fsync $f_files msg/s" "$(calc "$f_batch / $f_files" 3)x" "info" \
    "info (no-op syncs: $f_nosync msg/s)"
rm -rf "$W/b" "$W/bf-new" "$W/b2" "$W/bf2-new" "$W/lines"

fi

# ---- goal 4: batch receive ---------------------------------------------
if want 4; then
say "goal 4: batch receive of $DRAIN"
init "$W/r"
init "$W/r2"
n4=$($DRIVE populate "$W/r" "$DRAIN" 1024 "$POP_S")
n4b=$($DRIVE populate "$W/r2" "$n4" 1024 "$POP_S")
[ -n "$PY" ] && "$PY" "$here/dirq_peer.py" populate "$W/dq" "$n4" "$POP_S" >/dev/null
# Every backlog on disk before any drain: a file whose data was never
# written back (dirq never syncs) is freed without touching the disk,
# which would time the page cache against mq's durable files.
sync
r=$($DRIVE drain "$W/r")
r_api=$(calc "$(field "$r" 1) / $(field "$r" 2)" 0)
r=$($RUNX -n 1 -w 0 -- "$BIN/mq-watch" --drain "$W/r2")
r_watch=$(calc "$n4b / ($(field "$r" 1) / 1000000)" 0)
if [ -n "$PY" ]; then
	r=$("$PY" "$here/dirq_peer.py" drain "$W/dq")
	r_dirq=$(calc "$(field "$r" 1) / $(field "$r" 2)" 0)
	ratio=$(calc "$r_api / $r_dirq")
	# Goal 4 asks for one way to drain many in one process: mq-watch
	# --drain is it; the library called alone (no closing threads) is
	# shown beside it.
	row "4 drain $n4 in one process: C API (claim, copy, ack)" \
	    "$r_api msg/s" "dirq $r_dirq msg/s" "${ratio}x" "info" "info"
	ratio=$(calc "$r_watch / $r_dirq")
	row "4 drain $n4b: mq-watch --drain (stdout sink)" "$r_watch msg/s" \
	    "dirq $r_dirq msg/s" "${ratio}x" ">= 1.5x" "$(verdict "$ratio >= 1.5")"
else
	row "4 drain $n4 in one process: C API" "$r_api msg/s" \
	    "skipped: no python-dirq" "-" ">= 1.5x" "skipped"
	row "4 drain $n4b: mq-watch --drain" "$r_watch msg/s" \
	    "skipped: no python-dirq" "-" ">= 1.5x" "skipped"
fi
rm -rf "$W/r" "$W/r2" "$W/dq"

fi

# ---- goal 5: wake-up latency --------------------------------------------
if want 5; then
say "goal 5: wake-up latency over $WAKE messages"
init "$W/wk"
churn "$W/wk/tmp"
wr=$($DRIVE wake recv "$BIN" "$W/wk" "$WAKE")
ww=$($DRIVE wake watch "$BIN" "$OUT/stamp" "$W/wk" "$WAKE")
wa=$($DRIVE wake waiter "$W/wk" "$WAKE")
# The goal's "no-fsync part": the same paths with every sync a no-op, so
# that what is left is the wake-up itself (inotify, claim, delivery).
# The driver has sync functions of its own, which -S turns off (they
# come before a preloaded library's); mq-recv gets the shim.
wr0=$(env LD_PRELOAD="$OUT/nosync.so" $DRIVE -S wake recv "$BIN" "$W/wk" "$WAKE")
wa0=$($DRIVE -S wake waiter "$W/wk" "$WAKE")
series() { echo "$1" | awk -v k="$2" '$1 == k { print $2, $3 }'; }
pp() { printf '%s / %s us' "$(field "$1" 1)" "$(field "$1" 2)"; }
recv=$(series "$wr" recv_send_to_return)
body=$(series "$wr" recv_send_to_body)
rren=$(series "$wr" recv_rename_to_return)
watch=$(series "$ww" watch_send_to_handler)
wren=$(series "$ww" watch_rename_to_handler)
wait_r=$(series "$wa" waiter_rename_to_claim)
rren0=$(series "$wr0" recv_rename_to_return)
wait_r0=$(series "$wa0" waiter_rename_to_claim)
redis=""
[ $HAVE_REDIS = 1 ] && redis=$(series "$($DRIVE wake redis "$PORT" "$WAKE")" redis_brpop)
cmp5() { # SERIES LABEL
	if [ -z "$1" ]; then
		row "$2" "failed (see stderr)" "-" "-" "<= 1x (p50, p99)" "NOT MET"
	elif [ -z "$redis" ]; then
		row "$2" "$(pp "$1")" "skipped: no redis" "-" "<= 1x" "skipped"
	else
		r50=$(calc "$(field "$1" 1) / $(field "$redis" 1)")
		r99=$(calc "$(field "$1" 2) / $(field "$redis" 2)")
		row "$2" "$(pp "$1")" "BRPOP $(pp "$redis")" "${r50}x / ${r99}x" \
		    "<= 1x (p50, p99)" "$(verdict "$r50 <= 1 && $r99 <= 1")"
	fi
}
cmp5 "$recv" "5 durable send -> mq-recv -w exits (p50 / p99)"
cmp5 "$body" "5 durable send -> mq-recv -w body on stdout"
cmp5 "$watch" "5 durable send -> mq-watch handler starts"
under60() { # SERIES LABEL GOAL
	if [ -z "$1" ]; then
		row "$2" "failed (see stderr)" "-" "-" "$3" "NOT MET"
	elif [ "$3" = info ]; then
		row "$2" "$(pp "$1")" "-" "-" info info
	else
		row "$2" "$(pp "$1")" "-" "-" "$3" "$(verdict "$(field "$1" 1) < 60")"
	fi
}
under60 "$wait_r0" "5 rename -> mq_waiter consumer claims, syncs no-ops" "p50 < 60 us"
under60 "$wait_r" "5 the same with the claim's sync of cur/" info
under60 "$rren0" "5 rename -> mq-recv -w exits, syncs no-ops" "p50 < 60 us"
under60 "$rren" "5 the same with the claim's sync of cur/" info
under60 "$wren" "5 rename -> mq-watch handler starts" info
rm -rf "$W/wk"

fi

# ---- goal 6: concurrency ---------------------------------------------
if want 6; then
say "goal 6: producers + consumers, ${CONC_S}s per level, in both orders"
# Every level gets a queue of its own, churned alike, and the levels run
# twice, in rising then falling order, each level's figure the mean of
# its two: creates slow down as a filesystem churns, so levels run one
# after another in one order would each meet more churn than the last.
nfail=0 why=""
: > "$W/conc"
for p in 1 2 4 8 8 4 2 1; do
	init "$W/cc$p"
	churn "$W/cc$p/tmp"
	r=$($DRIVE conc "$W/cc$p" "$p" "$CONC_S")
	rm -rf "$W/cc$p"
	echo "$p $(field "$r" 2)" >> "$W/conc"
	f=$(field "$r" 3)
	if [ "${f:-0}" != 0 ]; then
		nfail=$((nfail + f))
		why=$(echo "$r" | cut -d' ' -f4-)
	fi
done
[ "$nfail" = 0 ] || row "6 sends that failed" "$nfail" "-" "-" "0" "NOT MET: $why"
# level P: "MEAN FIRST, SECOND" of its two runs.
level() { awk -v p="$1" '$1 == p { s += $2; v = v (n++ ? ", " : "") sprintf("%.0f", $2) }
	END { printf "%.1f %s\n", s / n, v }' "$W/conc"; }
base=$(level 1 | awk '{ print $1 }')
for p in 1 2 4 8; do
	l=$(level $p)
	acked=${l%% *}
	ratio=$(calc "$acked / $base")
	goal=curve verd=info
	if [ $p = 4 ]; then
		goal=">= 1x of 1+1" verd=$(verdict "$ratio >= 1")
	fi
	row "6 durable send+ack, $p producers + $p consumers" \
	    "$(calc "$acked" 0) msg/s (${l#* })" "-" "${ratio}x of 1+1" "$goal" "$verd"
done

fi

# ---- goal 7: large bodies ------------------------------------------------
if want 7; then
say "goal 7: one $BIG_MB MiB body"
head -c $((BIG_MB * 1048576)) /dev/urandom > "$W/big"
init "$W/L"
sync "$W/big"
r=$($RUNX -f -n "$BIG_ROUNDS" -w 1 -- ">$W/copy" cat "$W/big" ::: \
    sh -c "cat '$W/big' > '$W/copy2' && sync '$W/copy2'" ::: \
    "$BIN/mq-send" -q "$W/L" "$W/big" ::: "$BIN/mq-recv" -o "$W/copy3" "$W/L")
t_cat=$(echo "$r" | sed -n 1p | awk '{ print $1 }')
t_catsync=$(echo "$r" | sed -n 2p | awk '{ print $1 }')
t_send=$(echo "$r" | sed -n 3p | awk '{ print $1 }')
big_send_rss=$(echo "$r" | sed -n 3p | awk '{ print $3 }')
t_recv=$(echo "$r" | sed -n 4p | awk '{ print $1 }')
big_recv_rss=$(echo "$r" | sed -n 4p | awk '{ print $3 }')
got=$(wc -c < "$W/copy3" 2>/dev/null || echo 0)
[ "$got" -eq $((BIG_MB * 1048576)) ] || say "goal 7: received $got bytes, not $((BIG_MB * 1048576))"
mbs() { calc "$BIG_MB / ($1 / 1000000)" 0; }
mq_mbs=$(calc "$BIG_MB / (($t_send + $t_recv) / 1000000)" 0)
ratio=$(calc "$mq_mbs / $(mbs "$t_cat")")
row "7 $BIG_MB MiB mq-send then mq-recv vs cat file > other" \
    "$mq_mbs MB/s (send $(ms "$t_send" 0) + recv $(ms "$t_recv" 0) ms)" \
    "cat $(mbs "$t_cat") MB/s" "${ratio}x" ">= 0.5x" "$(verdict "$ratio >= 0.5")"
row "7 the same vs cat then sync (both durable)" "$mq_mbs MB/s" \
    "cat+sync $(mbs "$t_catsync") MB/s" "$(calc "$mq_mbs / $(mbs "$t_catsync")")x" \
    "info" "info"
if [ -z "${send_rss:-}" ]; then
	# goal 2 did not run: measure the 1 KiB send here.
	init "$W/L1"
	send_rss=$($RUNX -n 3 -w 0 -- "$BIN/mq-send" -q "$W/L1" "$W/body" |
	    awk '{ print $3 }')
fi
big_rss=$big_send_rss
[ "$big_recv_rss" -gt "$big_rss" ] && big_rss=$big_recv_rss
row "7 max RSS, $BIG_MB MiB vs 1 KiB send" "$(calc "$big_rss / 1024") MiB" \
    "1 KiB send $(calc "$send_rss / 1024") MiB" \
    "$(calc "$big_rss / $send_rss")x" "flat (<= +1 MiB)" \
    "$(verdict "$big_rss <= $send_rss + 1024")"
rm -rf "$W/big" "$W/copy" "$W/copy2" "$W/copy3" "$W/L"

fi

# ---- issue 4: signing and compression -----------------------------------
if want codec; then
say "issue 4: codec costs"
# Signing and compression are CPU work: time them where a create costs
# little (tmpfs), so the filesystem's moods do not drown them.
K=$W/k
if [ -d /dev/shm ] && [ "$(df -T /dev/shm 2>/dev/null | awk 'NR == 2 { print $2 }')" = tmpfs ] &&
    KD=$(mktemp -d /dev/shm/mq-bench.XXXXXX 2>/dev/null); then
	K=$KD/k
	where=tmpfs
else
	KD=""
	where="$(df -T "$W" | awk 'NR == 2 { print $2 }'), no fsync"
fi
init "$K"
for size in 1024 1048576; do
	[ $size = 1024 ] && { n=$CODEC_SMALL; label="1 KiB"; } ||
	    { n=$CODEC_BIG; label="1 MiB"; }
	r=$($DRIVE codec "$K" "$W/key" "$size" "$n")
	plain=$(echo "$r" | awk '$1 == "plain" { print $2 + $3 }')
	for m in sign z sign+z; do
		t=$(echo "$r" | awk -v m="$m" '$1 == m { print $2 + $3 }')
		sz=$(echo "$r" | awk -v m="$m" '$1 == m { print $4 }')
		case $m in
		sign) what="sign + verify" ;;
		z) what="compress + decompress" ;;
		*) what="sign + compress, verify + decompress" ;;
		esac
		row "issue 4: $what, $label body ($where)" \
		    "+$(calc "$t - $plain" 1) us/msg" "plain $(calc "$plain" 1) us/msg" \
		    "$(calc "$t / $plain")x; file $sz B" "record" "info"
	done
done
[ -n "$KD" ] && rm -rf "$KD"
if have valgrind; then
	init "$W/v"
	valgrind --tool=callgrind --callgrind-out-file="$W/cg.send" \
	    "$BIN/mq-send" -q "$W/v" "$W/body" >/dev/null 2>&1
	inits=$(grep -c '^fn=.*\(sodium_init\|deflateInit\|inflateInit\|setlocale\)' \
	    "$W/cg.send" 2>/dev/null)
	valgrind --tool=callgrind --callgrind-out-file="$W/cg.ver" \
	    "$BIN/mq-send" --version >/dev/null 2>&1
	valgrind --tool=callgrind --callgrind-out-file="$W/cg.true" \
	    /bin/true >/dev/null 2>&1
	ir() { sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$1"; }
	irs=$(ir "$W/cg.send") irv=$(ir "$W/cg.ver") irt=$(ir "$W/cg.true")
	row "issue 4: plain mq-send runs sodium/zlib/locale init" \
	    "${inits:-?} functions" "-" "-" "0" "$(verdict "${inits:-1} == 0")"
	row "2 instructions: mq-send --version vs /bin/true (callgrind)" \
	    "$irv Ir" "true $irt Ir" "$(calc "$irv / $irt")x" "info" "info"
	row "2 instructions: durable mq-send 1 KiB (callgrind)" "$irs Ir" "-" \
	    "$(calc "$irs / $irt")x true" "info" "info"
else
	row "issue 4: plain mq-send start-up init" "skipped: no valgrind" "-" "-" \
	    "0" "skipped"
fi

fi

# ---- the table ---------------------------------------------------------
elapsed=$(($(date +%s) - start_s))
table() {
	printf 'workload\tmq\tpeer\tratio\tgoal\tverdict\n'
	cat "$ROWS"
} 
print_table() {
	table | awk -F '\t' '
	{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i
	      n = length($i); if (n > w[i]) w[i] = n } rows = NR; nf = NF }
	END {
	    for (r = 1; r <= rows; r++) {
		line = "|"
		for (i = 1; i <= nf; i++)
		    line = line sprintf(" %-*s |", w[i], cell[r, i])
		print line
		if (r == 1) {
		    line = "|"
		    for (i = 1; i <= nf; i++) {
			d = ""; for (k = 0; k < w[i] + 2; k++) d = d "-"
			line = line d "|"
		    }
		    print line
		}
	    }
	}'
}
{
	echo
	echo "mq benchmark, $mode mode, $(date -u '+%Y-%m-%d %H:%M UTC'), ${elapsed}s"
	echo "machine: $(nproc) CPUs, $(uname -sr), $(df -T "$W" | awk 'NR == 2 { print $2 }') on $(df "$W" | awk 'NR == 2 { print $1 }'), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	print_table
	echo
	echo "met: $(grep -c '	met$' "$ROWS"), not met: $(grep -c 'NOT MET$' "$ROWS"), skipped: $(grep -c 'skipped$' "$ROWS")"
} | tee "${BENCH_TABLE:-/dev/null}"

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	sh "$here/profile.sh" "$BUILD" > "$OUT/profile.txt" 2>&1 &&
	    say "profile written to $OUT/profile.txt"
fi
exit 0
