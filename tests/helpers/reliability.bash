# Shared by the reliability suites (tests/reliability-*.bats): running a
# program under strace to list its system calls and to kill it, or fail
# one of them, at a chosen one; building the small C tools in
# tests/tools/; reading a queue back to check what it would deliver.
# Load after helpers/common.

# Under ptrace LeakSanitizer cannot run (it reports a fatal error of its
# own), so programs traced here run without leak checking; everything
# else ASan and UBSan check stays on.
traced_env() {
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "$@"
}

# tool NAME: compile tests/tools/NAME.c once per test file into
# $BATS_FILE_TMPDIR and print the path of the program; `tool NAME.so`
# builds tests/tools/NAME.c as a shared object for LD_PRELOAD instead.
tool() {
	local name=$1 src out
	src="$BATS_TEST_DIRNAME/tools/${name%.so}.c"
	out="$BATS_FILE_TMPDIR/tools/$name"
	if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
		mkdir -p "$BATS_FILE_TMPDIR/tools"
		case $name in
		*.so) cc -O2 -Wall -Wextra -shared -fPIC -o "$out.tmp" "$src" -ldl ;;
		*) cc -O2 -Wall -Wextra -o "$out.tmp" "$src" ;;
		esac || return 1
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}

# syscall_names TRACE: the system calls of an `strace -o` log, one name
# a line, in order (signal and exit notes left out).
syscall_names() {
	sed -n 's/^\([a-z_0-9]*\)(.*/\1/p' "$1"
}

# first_line_matching TRACE ERE: index (1-based, counting system calls
# only) of the first call whose line matches ERE; 0 when none does.
first_line_matching() {
	grep -E '^[a-z_0-9]+\(' "$1" | grep -n -m1 -E "$2" | cut -d: -f1 |
	    grep . || echo 0
}

# count_before TRACE ERE N: how many system calls before index N match
# ERE (calls that have run when the program is killed on entering N).
count_before() {
	grep -E '^[a-z_0-9]+\(' "$1" | head -n "$(($3 - 1))" | grep -c -E "$2" ||
	    true
}

# kill_plan NAMES: for each call of the list, "NAME K": its name and
# which invocation of that name it is.  strace counts invocations per
# system call (-e inject=NAME:when=K), so this is how one exact call is
# hit.
kill_plan() {
	awk '{ k[$0]++; print $0, k[$0] }' "$1"
}

# kill_at NAME K TRACE COMMAND...: run COMMAND under strace, delivering
# SIGKILL on entry to the K-th call of system call NAME, so that call
# never runs.  The strace log goes to TRACE.  Returns COMMAND's status
# (137 when killed).
kill_at() {
	local sc=$1 k=$2 trace=$3
	shift 3
	traced_env strace -qq -o "$trace" -e inject="$sc:signal=KILL:when=$k" "$@"
}

# killed_where TRACE: "N NAME" of the call a kill_at run died on: the
# number of calls in its log and the last one's name.
killed_where() {
	awk '/^[a-z_0-9]+\(/ { n++; sub(/\(.*/, ""); last = $0 }
	    END { print n + 0, last }' "$1"
}

# drain QUEUE DIR: pop every deliverable message of QUEUE into DIR/1,
# DIR/2, ... (bounded); print how many.  A pop that fails with anything
# but "nothing ready" (1) fails the drain.
drain() {
	local q=$1 dir=$2 i=0 rc
	mkdir -p "$dir"
	while [ "$i" -lt 50 ]; do
		rc=0
		mq-recv -o "$dir/$((i + 1))" "$q" 2>>"$dir/err" || rc=$?
		if [ "$rc" = 1 ]; then
			rm -f "$dir/$((i + 1))"
			echo "$i"
			return 0
		fi
		[ "$rc" = 0 ] || { echo "drain: mq-recv exited $rc" >&2; cat "$dir/err" >&2; return 1; }
		i=$((i + 1))
	done
	echo "drain: more than 50 messages" >&2
	return 1
}

# fsck_clean QUEUE...: mq-fsck --fix repairs whatever it reports (exit 0
# or 1, never a failed repair), and a second mq-fsck finds nothing.
fsck_clean() {
	local rc=0
	mq-fsck --fix "$@" >"$BATS_TEST_TMPDIR/fsck.out" 2>&1 || rc=$?
	if [ "$rc" -gt 1 ]; then
		echo "mq-fsck --fix $* exited $rc:" >&2
		cat "$BATS_TEST_TMPDIR/fsck.out" >&2
		return 1
	fi
	rc=0
	mq-fsck "$@" >"$BATS_TEST_TMPDIR/fsck.out" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		echo "mq-fsck $* after --fix exited $rc:" >&2
		cat "$BATS_TEST_TMPDIR/fsck.out" >&2
		return 1
	fi
}

# newest_deadline DIR...: the latest lease end or retry due time (ns)
# among the queues under DIRs, 0 when none.  Compared as text: every
# one has 19 digits, more than awk's numbers hold exactly.
newest_deadline() {
	find "$@" \( -path '*/cur/*' -o -path '*/delay/*' \) -type f -printf '%f\n' |
	    awk 'BEGIN { m = "0" }
		{ n = split($0, p, "."); t = length(p[1]) == 19 ? p[1] : p[n];
		  if (length(t) == 19 && (m == "0" || (t "") > (m ""))) m = t }
		END { print m }'
}

# ready_ids QUEUE: ids of the messages in new/, sorted.
ready_ids() {
	find "$1/new" -type f -printf '%f\n' | cut -d. -f1 | sort
}

# note TEXT: a line in the TAP output, shown by bats whatever the result.
note() { echo "# $*" >&3; }
