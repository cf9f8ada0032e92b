#!/bin/sh
# bench/profile.sh [BUILD] - where mq's hot paths spend their system calls
# and instructions: the raw material of bench/PROFILE.md.  Run by
# `BENCH_PROFILE=1 make bench`, or alone after make.  Needs strace;
# valgrind and perf add their sections when present.
set -u
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-${BUILD:-build}}
case $BUILD in /*) ;; *) BUILD=$(dirname "$here")/$BUILD ;; esac
BIN=$BUILD/bin
DRIVE=$BUILD/bench/drive
have() { command -v "$1" >/dev/null 2>&1; }
if ! have strace || [ ! -x "$DRIVE" ]; then
	echo "profile: needs strace and $DRIVE (run make bench first)" >&2
	exit 0
fi
W=$(mktemp -d "$BUILD/profile.XXXXXX") || exit 0
trap 'rm -rf "$W"' EXIT
"$BIN/mq-init" "$W/q"
head -c 1024 /dev/zero | tr '\0' x > "$W/body"
"$BIN/mq-send" -q "$W/q" "$W/body"	# the first send creates the bucket

section() { printf '\n== %s\n' "$*"; }
counts() { # strace -c of a command, its table without the rules
	strace -c -o "$W/c" "$@" >/dev/null 2>&1
	grep -v '^-' "$W/c" | sed 's/^/  /'
}

section "one durable 1 KiB mq-send, every call after the dynamic loader"
strace -o "$W/st" "$BIN/mq-send" -q "$W/q" "$W/body"
awk '/getrandom/ { on = 1 } on' "$W/st" | sed 's/^/  /'

section "strace -c: mq-send, one 1 KiB message"
counts "$BIN/mq-send" -q "$W/q" "$W/body"
section "strace -c: mq-recv (pop: claim, copy, ack)"
counts "$BIN/mq-recv" "$W/q"
"$BIN/mq-send" -q "$W/q" "$W/body"
section "strace -c: mq-recv -L 60 (claim only)"
strace -c -o "$W/c" "$BIN/mq-recv" -L 60 "$W/q" >/dev/null 2>"$W/receipt"
grep -v '^-' "$W/c" | sed 's/^/  /'
section "strace -c: mq-ack RECEIPT"
strace -c -o "$W/c" "$BIN/mq-ack" "$W/q" "$(tail -1 "$W/receipt")" >/dev/null 2>&1
grep -v '^-' "$W/c" | sed 's/^/  /'
section "strace -c: mq-send --version, /bin/true"
counts "$BIN/mq-send" --version
counts /bin/true

section "per message, in one process: 1000 claims + copies + acks (drive drain)"
"$DRIVE" populate "$W/q" 1000 1024 60 >/dev/null
strace -c -o "$W/c" "$DRIVE" drain "$W/q" >/dev/null
grep -v '^-' "$W/c" | sed 's/^/  /'
section "per message: mq-send -l of 1000 lines"
awk 'BEGIN { for (i = 0; i < 1000; i++) print "hello" }' > "$W/lines"
strace -c -o "$W/c" "$BIN/mq-send" -q -l "$W/q" "$W/lines"
grep -v '^-' "$W/c" | sed 's/^/  /'
"$DRIVE" drain "$W/q" >/dev/null

if have valgrind; then
	section "callgrind instructions (Ir)"
	cg() { # LABEL CMD...
		label=$1
		shift
		valgrind --tool=callgrind --callgrind-out-file="$W/cg" "$@" \
		    >/dev/null 2>&1
		printf '  %-34s %s\n' "$label" \
		    "$(sed -n 's/^summary: *//p' "$W/cg")"
	}
	cg "/bin/true" /bin/true
	cg "mq-send --version" "$BIN/mq-send" --version
	cg "mq-send, 1 KiB durable" "$BIN/mq-send" -q "$W/q" "$W/body"
	cg "mq-recv (pop)" "$BIN/mq-recv" "$W/q"
	"$DRIVE" populate "$W/q" 1000 1024 60 >/dev/null
	valgrind --tool=callgrind --callgrind-out-file="$W/cg" "$DRIVE" drain \
	    "$W/q" >/dev/null 2>&1
	printf '  %-34s %s\n' "drive drain of 1000 (total)" \
	    "$(sed -n 's/^summary: *//p' "$W/cg")"
	if have callgrind_annotate; then
		section "callgrind: top functions of draining 1000 messages"
		callgrind_annotate --inclusive=no "$W/cg" 2>/dev/null |
		    awk '/Ir/ && /file:function/ { on = 1; next } on && NF' |
		    head -15 | sed 's/^/  /'
	fi
fi

if have perf; then
	section "perf stat -r 200: page faults and task clock"
	for c in /bin/true "$BIN/mq-send --version"; do
		echo "  $c:"
		# shellcheck disable=SC2086
		perf stat -r 200 -e task-clock,page-faults $c 2>&1 >/dev/null |
		    grep -E 'task-clock|page-faults|elapsed' | sed 's/^ */    /'
	done
fi

section "relocations processed at start-up (readelf -r | wc -l)"
echo "  mq-send: $(readelf -r "$BIN/mq-send" 2>/dev/null | wc -l), /bin/true: $(readelf -r /bin/true 2>/dev/null | wc -l)"
exit 0
