# Helpers for tests/mq-watch.bats: long-running programs in the
# background, handler scripts, and reading a process's state from /proc.
# Every background process (and every handler that records its pid) is
# killed by teardown_watch, whether the test passed or not.

# setup_watch: a fresh queue (see setup_mq) and $T, the test's scratch
# directory, exported for handler scripts, with $T/await-go in it: a
# script that waits for $T/go to appear, 20 s at most (then exits 1).
setup_watch() {
	setup_mq
	export T="$BATS_TEST_TMPDIR"
	: >"$T/bg.pids"
	cat >"$T/await-go" <<'EOF'
#!/bin/bash
end=$((SECONDS + 20))
until [ -e "$T/go" ]; do
	[ "$SECONDS" -lt "$end" ] || exit 1
	sleep 0.05
done
EOF
	chmod +x "$T/await-go"
}

# teardown_watch: kill what the test left running, by pid.
teardown_watch() {
	local pid
	[ -f "$T/bg.pids" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	done <"$T/bg.pids"
	# Reap our own children here, so that bash's "Killed" notices go
	# nowhere; handlers are not our children and wait skips them.
	while read -r pid; do
		[ -n "$pid" ] && wait "$pid" 2>/dev/null
	done <"$T/bg.pids"
	return 0
}

# bg NAME COMMAND...: run COMMAND in the background, standard output and
# error to $T/NAME.out and $T/NAME.err; its pid is left in $BG_PID.  Fd 3
# is bats' own and must not be inherited, or bats waits for it.
bg() {
	local name=$1
	shift
	"$@" <"${BG_STDIN:-/dev/null}" >"$T/$name.out" 2>"$T/$name.err" 3>&- &
	BG_PID=$!
	echo "$BG_PID" >>"$T/bg.pids"
}

# handler NAME: make $T/NAME an executable bash script from standard input.
handler() {
	{ echo '#!/bin/bash'; cat; } >"$T/$1"
	chmod +x "$T/$1"
}

# gone PID: true once PID has exited (an unreaped zombie counts).
gone() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "${st%% *}" = Z ]
}

# wait_exit SECONDS PID: wait for PID to end; its status in $EXIT_STATUS.
# shellcheck disable=SC2034 # read by the tests
wait_exit() {
	wait_for "$1" gone "$2" || return 1
	EXIT_STATUS=0
	wait "$2" 2>/dev/null || EXIT_STATUS=$?
}

# sleeping PID: PID is blocked (in poll, say) rather than running.
sleeping() {
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "${st%% *}" = S ]
}

# watching PID: PID has an inotify descriptor and sleeps.
watching() {
	local fd
	for fd in "/proc/$1/fd"/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = 'anon_inode:inotify' ] &&
		    { sleeping "$1"; return; }
	done
	return 1
}

# cpu_ticks PID: user plus system time, fields 14 and 15 of /proc/PID/stat
# (counted after the parenthesised command name, which may hold spaces).
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# clock_ms: wall-clock milliseconds, comparable with the nanosecond times
# in delay/ and cur/ names.
clock_ms() {
	local us=${EPOCHREALTIME/./}
	echo $((us / 1000))
}

# between WHAT VALUE MIN MAX: assert MIN <= VALUE <= MAX, saying what was
# measured and its value when not.
between() {
	if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
		fail "$1: $2, expected $3 to $4"
	fi
}

# exists GLOB: some path matches GLOB.
exists() {
	compgen -G "$1" >/dev/null
}

# files DIR: the names of the regular files under $Q/DIR, one a line.
files() {
	find "$Q/$1" -type f -printf '%f\n' | sort
}

# empty_queue: nothing ready, leased, delayed or dead.
empty_queue() {
	assert_equal "$(count_in "$Q" new)" 0
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
	assert_equal "$(count_in "$Q" dead)" 0
}

# log_has REGEX: the watcher's log ($T/watch.err) has a matching line.
log_has() {
	grep -Eq -- "$1" "$T/watch.err"
}
