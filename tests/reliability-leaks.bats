#!/usr/bin/env bats
# Leaks (issue 8): every program's normal paths run under valgrind
# (--leak-check=full, definite leaks and memory errors fail), or, against
# the AddressSanitizer build, under LeakSanitizer, which that build
# carries.  valgrind before 3.20 does not know pidfd_open(2), which the
# handler modes of mq-recv and mq-watch need: those run under LSan only
# (the ASan build), and are skipped here with that reason.
load helpers/common

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	if under_asan; then
		MODE=lsan
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=98
	else
		command -v valgrind >/dev/null || skip "valgrind is not installed"
		MODE=valgrind
	fi
}
teardown() { bg_cleanup; }

# checked COMMAND...: run COMMAND under the leak checker; $status is its
# exit status, $output its standard output, $stderr its standard error
# with the checker's lines.
checked() {
	if [ "$MODE" = valgrind ]; then
		run --separate-stderr valgrind -q --leak-check=full \
		    --errors-for-leak-kinds=definite --error-exitcode=99 \
		    --child-silent-after-fork=yes "$@"
	else
		run --separate-stderr "$@"
	fi
}

# clean [STATUS]: the last checked command exited STATUS (default 0) and
# its checker found nothing.
clean() {
	assert_equal "$status" "${1:-0}"
	[[ $stderr != *"definitely lost"* && $stderr != *"LeakSanitizer"* &&
	   $stderr != *"Invalid read"* && $stderr != *"Invalid write"* &&
	   $stderr != *"uninitialised"* && $stderr != *"runtime error"* &&
	   $stderr != *"ERROR SUMMARY"* ]] || fail "$stderr"
}

# A handler mode under valgrind needs pidfd_open.
need_pidfd() {
	[ "$MODE" = lsan ] && return 0
	send_one probe
	run --separate-stderr valgrind -q mq-recv "$Q" -- true
	if [[ $stderr == *"unhandled amd64-linux syscall: 434"* ||
	    $stderr == *"Function not implemented"* ]]; then
		skip "this valgrind lacks pidfd_open; the ASan build's LSan covers it"
	fi
}

send_one() { printf '%s' "$1" | mq-send -q "$Q"; }

streamed() { [ "$(wc -l <"$BATS_TEST_TMPDIR/watch.out")" -ge "$1" ]; }

@test "leaks: mq-init, creating and reconfiguring" {
	checked mq-init -m 2770 --lease 30 --max-attempts 3 --max-size 1M \
	    --compress auto --ttl 1h --dedup-window 1m "$T/new"
	clean
	checked mq-init --lease 20 "$T/new"
	clean
}

@test "leaks: mq-send, whole, lines, records, headers, priorities, keys, delays" {
	printf 'one body' >"$T/f1"
	checked mq-send "$Q" "$T/f1"
	clean
	checked mq-send -q -l "$Q" < <(seq 1 300)
	clean
	checked mq-send -q -0 "$Q" < <(printf 'a\0b\0c\0')
	clean
	checked mq-send -q -H a=1 -H B-2=two -p 7 -g grp -k key1 --ttl 1h "$Q" "$T/f1"
	clean
	checked mq-send -q -k key1 "$Q" "$T/f1"
	clean
	checked mq-send -q -d 1h "$Q" "$T/f1"
	clean
	checked mq-send -q --at 2099-01-01T00:00:00Z "$Q" "$T/f1"
	clean
}

@test "leaks: mq-send and mq-recv with compression, signatures and sealed bodies" {
	mq-keygen "$T/k"
	seq 1 20000 >"$T/big"
	checked mq-send -q -z "$Q" "$T/big"
	clean
	checked mq-send -q -s "$T/k.key" "$Q" "$T/big"
	clean
	checked mq-send -q -z -s "$T/k.key" --seal-to "$T/k.pub" "$Q" "$T/big"
	clean
	checked mq-recv -o "$T/out" "$Q"
	clean
	cmp "$T/big" "$T/out"
	checked mq-recv --verify "$T/k.pub" -o "$T/out" "$Q"
	clean
	cmp "$T/big" "$T/out"
	checked mq-recv --verify "$T/k.pub" --key "$T/k.key" -o "$T/out" "$Q"
	clean
	cmp "$T/big" "$T/out"
}

@test "leaks: mq-keygen" {
	checked mq-keygen "$T/kg"
	clean
}

@test "leaks: mq-recv pop, -L, -H, -o, -t on an empty queue" {
	send_one one
	send_one two
	mq-send -q -H x=y "$Q" <<<"three"
	checked mq-recv "$Q"
	clean
	assert_output one
	checked mq-recv -L 1m "$Q"
	clean
	assert_output two
	checked mq-recv -H -o "$T/o" "$Q"
	clean
	checked mq-recv -t 1 "$Q"
	clean 1
}

@test "leaks: mq-recv -- COMMAND: ack, failure, dead letter" {
	need_pidfd
	mq-recv -o /dev/null "$Q" 2>/dev/null || true
	send_one one
	send_one two
	send_one three
	checked mq-recv "$Q" -- cat
	clean
	assert_output one
	checked mq-recv "$Q" -- sh -c 'cat >/dev/null; exit 3'
	clean 75
	checked mq-recv "$Q" -- sh -c 'cat >/dev/null; exit 100'
	clean 65
	mq-send -q -z "$Q" <<<"compressed"
	checked mq-recv "$Q" -- cat
	clean
}

@test "leaks: mq-ack: ack, retry with delay, fail, extend, stale" {
	for i in 1 2 3 4 5; do send_one "m$i"; done
	for i in 1 2 3 4 5; do r[i]=$(mq-recv -L 1m -o /dev/null "$Q"); done
	checked mq-ack "$Q" "${r[1]}"
	clean
	checked mq-ack --retry -d 1h "$Q" "${r[2]}"
	clean
	checked mq-ack --fail "$Q" "${r[3]}"
	clean
	checked mq-ack --extend 1h "$Q" "${r[4]}" "${r[5]}"
	clean
	checked mq-ack "$Q" "${r[1]}"
	clean 1
}

@test "leaks: mq-watch --drain streaming, and a watcher stopped by SIGTERM" {
	seq 1 50 | mq-send -q -l "$Q"
	checked mq-watch --drain "$Q"
	clean
	assert_equal "$(echo "$output" | wc -l)" 50
	seq 1 5 | mq-send -q -l "$Q"
	checked mq-watch --drain -0 "$Q"
	clean
}

@test "leaks: mq-watch --drain with handlers, -j 3, retries and --timeout" {
	need_pidfd
	mq-recv -o /dev/null "$Q" 2>/dev/null || true
	seq 1 20 | mq-send -q -l "$Q"
	checked mq-watch --drain -j 3 "$Q" -- sh -c 'cat >/dev/null'
	clean
	seq 1 3 | mq-send -q -l "$Q"
	checked mq-watch --drain --timeout 1 "$Q" -- sh -c 'read x; [ "$x" != 2 ] || exec sleep 30'
	clean
}

@test "leaks: a running mq-watch stopped by SIGTERM" {
	if [ "$MODE" = valgrind ]; then
		bg_start watch valgrind -q --leak-check=full \
		    --errors-for-leak-kinds=definite --error-exitcode=99 \
		    mq-watch "$Q"
	else
		bg_start watch mq-watch "$Q"
	fi
	seq 1 10 | mq-send -q -l "$Q"
	wait_for 30 streamed 10
	kill -TERM "$(bg_pid watch)"
	bg_wait 30 watch
	status=$(bg_rc watch) stderr=$(bg_err watch)
	clean
}

@test "leaks: mq-stat, mq-ls (every form) and mq-fsck on a queue with every state" {
	mq-keygen "$T/k"
	for i in 1 2 3 4 5 6; do send_one "m$i"; done
	mq-send -q -H h=v -z "$Q" <<<"hdr"
	mq-send -q -d 1h "$Q" <<<"later"
	r1=$(mq-recv -L 1m -o /dev/null "$Q")
	r2=$(mq-recv -L 1m -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r2"
	# The next one damaged: the receive quarantines it, takes the next.
	echo garbage >"$(ready_file 0000010000000002)"
	mq-recv -o /dev/null "$Q" 2>/dev/null
	assert_equal "$(quarantined | wc -l)" 1
	for form in "" --json --prom -b "-b --json" "-b --prom"; do
		# shellcheck disable=SC2086
		checked mq-stat $form "$Q"
		clean
	done
	mq-init work
	send_one x
	checked mq-stat
	clean
	for form in "" --json "--state ready" "--state dead" "--state quarantine" "--state inflight" "--state delayed"; do
		# shellcheck disable=SC2086
		checked mq-ls $form "$Q"
		clean
	done
	checked mq-ls --show "${r1%%.*}" "$Q"
	clean
	checked mq-fsck "$Q"
	assert [ "$status" -le 1 ]
	status=0
	clean
	touch -d '3 days ago' "$Q/tmp/1.2.3"
	checked mq-fsck --fix "$Q"
	clean 1
	checked mq-fsck "$Q"
	clean
}

@test "leaks: mq-redrive and mq-purge" {
	for i in 1 2 3; do send_one "m$i"; done
	for i in 1 2 3; do mq-ack --fail "$Q" "$(mq-recv -L 1m -o /dev/null "$Q")"; done
	checked mq-redrive "$Q" 0000010000000000
	clean
	checked mq-redrive --reset "$Q"
	clean
	checked mq-purge --state ready "$Q"
	clean 1
	checked mq-purge --state all --yes "$Q"
	clean
}

@test "leaks: the check can fail: a program that leaks is caught" {
	command -v cc >/dev/null || skip "no C compiler"
	printf '%s\n' '#include <stdlib.h>' '#include <string.h>' \
	    'int main(void) { char *p = malloc(64); memset(p, 1, 64); p = 0; return 0; }' >"$T/leak.c"
	if [ "$MODE" = lsan ]; then
		cc -g -fsanitize=address -o "$T/leak" "$T/leak.c"
	else
		cc -g -O0 -o "$T/leak" "$T/leak.c"
	fi
	checked "$T/leak"
	run clean
	assert_failure
}
