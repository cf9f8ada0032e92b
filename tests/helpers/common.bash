# Shared by every bats file: a fresh queue root per test, the freshly built
# programs first on PATH, and waiting for conditions instead of sleeping.
bats_require_minimum_version 1.5.0
bats_load_library bats-support
bats_load_library bats-assert

setup_mq() {
	# The repository's top, from tests/ or a folder below it.
	top="$(cd "$BATS_TEST_DIRNAME/.." && { [ -f Makefile ] || cd ..; } && pwd)"
	PATH="$top/${MQ_BIN:-build/bin}:$PATH"
	export PATH
	export MQ_ROOT="$BATS_TEST_TMPDIR/root"
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	Q="$BATS_TEST_TMPDIR/q"
	mq-init "$Q"
}

# wait_for SECONDS COMMAND...: retry COMMAND until it succeeds or time runs
# out (then fail).  Polls every 50 ms.
wait_for() {
	local limit=$(( $1 * 20 )) i=0
	shift
	until "$@"; do
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && { echo "timed out: $*" >&2; return 1; }
		sleep 0.05
	done
}

# Count regular files under a state folder of queue $1.
count_in() {
	find "$1/$2" -type f | wc -l | tr -d ' '
}

ready_count() { count_in "${1:-$Q}" new; }

# Milliseconds since the epoch, for measuring how long something took.
now_ms() { date +%s%3N; }

# True when $1 has the form of a message id: 16 lowercase hex digits.
is_id() { [[ $1 =~ ^[0-9a-f]{16}$ ]]; }

# True when the programs under test are built with AddressSanitizer.
# Each run then costs several milliseconds more, so tests that start
# thousands of processes scale down to stay fast.
under_asan() { grep -q __asan_init "$(command -v mq-recv)"; }

# The usage block of PROG's --help (up to the first blank line): what a
# usage error must print.
usage_of() { "$1" --help | sed '/^$/,$d'; }

# Names of what was moved to quarantine/, without the .reason notes
# beside them.
quarantined() {
	find "${1:-$Q}/quarantine" -mindepth 1 -maxdepth 1 ! -name '*.reason' \
	    -printf '%f\n' | sort
}

# Names (not paths) of the files in a state folder, sorted.
names_in() {
	find "${2:-$Q}/$1" -mindepth 1 \( -type f -o -type l -o -type p \) \
	    -printf '%f\n' | sort
}

# The path of ready message ID (any attempt count) in queue $2.
ready_file() {
	find "${2:-$Q}/new" -name "$1.*" -print -quit
}

# The bucket directory in new/ that holds ready message ID.
bucket_of() {
	dirname "$(ready_file "$@")"
}

# Everything about a queue that an operation must not change: every
# path with its type, size and modes, sorted.
snapshot() {
	find "${1:-$Q}" -printf '%P %y %s %m %g\n' | sort
}

# When the lease of receipt $1 in queue $2 ends, in ns since the epoch
# (the last field of its name in cur/).
lease_deadline() {
	local f
	f=$(find "${2:-$Q}/cur" -name "$1.*" -printf '%f\n' -quit)
	[ -n "$f" ] || return 1
	echo "${f##*.}"
}

now_ns() { date +%s%N; }

# after_ns NS: true once the clock has passed NS.
after_ns() { [ "$(now_ns)" -gt "$1" ]; }

# Background jobs.  bg_start NAME COMMAND... runs COMMAND with its stdout
# and stderr in $BATS_TEST_TMPDIR/NAME.out and NAME.err, its pid in
# NAME.pid, and, once it exits, its status in NAME.rc.  File descriptor 3
# is closed so that bats does not wait for the job.  bg_cleanup (from
# teardown) kills those of them still running, by pid.
bg_start() {
	local name=$1 d=$BATS_TEST_TMPDIR
	shift
	rm -f "$d/$name.rc" "$d/$name.pid"
	(
		"$@" >"$d/$name.out" 2>"$d/$name.err" &
		echo $! >"$d/$name.pid.tmp"
		mv "$d/$name.pid.tmp" "$d/$name.pid"
		# Tests run under set -e: keep a failing status from ending
		# this subshell before it is recorded.
		rc=0
		wait $! || rc=$?
		echo "$rc" >"$d/$name.rc.tmp"
		mv "$d/$name.rc.tmp" "$d/$name.rc"
	) 3>&- &
	echo "$name" >>"$d/bg.jobs"
	wait_for 10 test -f "$d/$name.pid"
}

bg_pid() { cat "$BATS_TEST_TMPDIR/$1.pid"; }
bg_done() { [ -f "$BATS_TEST_TMPDIR/$1.rc" ]; }
bg_rc() { cat "$BATS_TEST_TMPDIR/$1.rc"; }
bg_out() { cat "$BATS_TEST_TMPDIR/$1.out"; }
bg_err() { cat "$BATS_TEST_TMPDIR/$1.err"; }

# bg_wait SECONDS NAME: wait for a job to finish, at most SECONDS.
bg_wait() { wait_for "$1" bg_done "$2"; }

# Remember a pid started indirectly (a handler) so bg_cleanup kills it.
bg_adopt() { echo "pid:$1" >>"$BATS_TEST_TMPDIR/bg.jobs"; }

bg_cleanup() {
	local d=$BATS_TEST_TMPDIR job pid
	[ -f "$d/bg.jobs" ] || return 0
	while read -r job; do
		case $job in
		pid:*) pid=${job#pid:} ;;
		*) bg_done "$job" && continue
		   pid=$(cat "$d/$job.pid" 2>/dev/null) ;;
		esac
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done <"$d/bg.jobs"
	rm -f "$d/bg.jobs"
	return 0
}

# True when process PID is asleep waiting in poll(2), as mq-recv -w is
# once it has looked for work and found none.  Where the kernel hides
# wchan (it reads "0"), asleep is the best we know.
is_polling() {
	local wchan state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ "$state" = S ] || return 1
	wchan=$(cat "/proc/$1/wchan" 2>/dev/null)
	[[ $wchan == *poll* || $wchan == 0 || -z $wchan ]]
}

# writer_polls: true when a process writing to the pipe on our standard
# input (its standard output) is asleep in poll(2): it found the pipe
# full (EAGAIN) and waits for room.  The reader of a test that must see
# EAGAIN waits for this before it starts reading.
writer_polls() {
	local p
	for p in /proc/[0-9]*; do
		[ "$p/fd/1" -ef /proc/self/fd/0 ] && is_polling "${p#/proc/}" &&
		    return 0
	done
	return 1
}

# nonblocking COMMAND...: run COMMAND with its standard output left
# non-blocking, as some parents leave a pipe they hand on.
nonblocking() {
	python3 -c 'import fcntl, os, sys
fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}
