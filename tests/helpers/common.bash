# Shared by every bats file: a fresh queue root per test, the freshly built
# programs first on PATH, and waiting for conditions instead of sleeping.
bats_load_library bats-support
bats_load_library bats-assert

setup_mq() {
	top="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
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
