#!/usr/bin/env bats
# Large bodies end to end: a body of many MiB, of an odd length, comes
# back byte for byte whether it goes in from a file or a pipe and out to
# a file, a pipe or a handler, plain, compressed, signed or sealed; the
# memory of either end does not grow with it; and a body received with -o
# is on disk before its message is removed.
load helpers/common

note() { echo "# $*" >&3; }

setup_file() {
	local top
	top="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
	PATH="$top/${MQ_BIN:-build/bin}:$PATH"
	export K="$BATS_FILE_TMPDIR/keys"
	mkdir -p "$K"
	mq-keygen "$K/alice"
	mq-keygen "$K/bob"
	# 20 MiB and a bit: writeback starts every 8 MiB, copies go by
	# 128 KiB, and the tail is no multiple of either.  Half random, half
	# text, so that -z has something to do.
	export BIG="$BATS_FILE_TMPDIR/big"
	{ head -c 12M /dev/urandom; seq 1 1200000; printf 'tail'; } >"$BIG"
}

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
	unset JOURNAL_STREAM
}

teardown() { bg_cleanup; }

# through IN OUT: send $BIG with "${send[@]}" from a file or a pipe, and
# receive it with "${recv[@]}" to a file (-o), a pipe, or a handler's
# standard input; the copy must be $BIG, and the queue empty after.
through() {
	local in=$1 out=$2 got="$T/got" st=0
	rm -f "$got"
	case $in in
	file) mq-send -q "${send[@]}" "$Q" "$BIG" ;;
	pipe) cat "$BIG" | mq-send -q "${send[@]}" "$Q" ;;
	esac
	case $out in
	file) mq-recv "${recv[@]}" -o "$got" "$Q" || st=$? ;;
	pipe) mq-recv "${recv[@]}" "$Q" | cat >"$got" || st=$? ;;
	exec) mq-recv "${recv[@]}" "$Q" -- sh -c 'exec cat >"$0"' "$got" ||
	    st=$? ;;
	esac
	[ "$st" = 0 ] || { echo "${send[*]} $in -> $out: exit $st" >&2; return 1; }
	cmp "$BIG" "$got" ||
	    { echo "${send[*]} $in -> $out: body differs" >&2; return 1; }
	[ "$(count_in "$Q" new)$(count_in "$Q" cur)" = 00 ] ||
	    { echo "${send[*]} $in -> $out: left in the queue" >&2; return 1; }
}

every_way() {
	local in out
	for in in file pipe; do
		for out in file pipe exec; do
			through "$in" "$out"
		done
	done
}

@test "bodies: a 20 MiB plain body round-trips from a file or a pipe to a file, a pipe or a handler" {
	send=() recv=()
	every_way
}

@test "bodies: a 20 MiB compressed body round-trips every way" {
	send=(-z) recv=()
	every_way
}

@test "bodies: a 20 MiB signed body round-trips every way, without its signature" {
	send=(-s "$K/alice.key") recv=(--verify "$K/alice.pub")
	every_way
}

@test "bodies: a 20 MiB sealed, signed and compressed body round-trips every way" {
	send=(-z -s "$K/alice.key" --seal-to "$K/bob.pub")
	recv=(--verify "$K/alice.pub" --key "$K/bob.key")
	every_way
}

@test "bodies: a body read from the middle of standard input is the rest of it" {
	{ head -c 100 /dev/zero; cat "$BIG"; } >"$T/in"
	{ dd bs=100 count=1 status=none >/dev/null; mq-send -q "$Q"; } <"$T/in"
	mq-recv -o "$T/got" "$Q"
	cmp "$BIG" "$T/got"
}

@test "bodies: a body popped onto the end of a file (>>) is added after what it held" {
	mq-send -q "$Q" "$BIG"
	printf 'before\n' >"$T/got"
	mq-recv "$Q" >>"$T/got"
	{ printf 'before\n'; cat "$BIG"; } | cmp - "$T/got"
}

@test "bodies: the memory of mq-send and mq-recv does not grow with the body" {
	command -v /usr/bin/time >/dev/null || skip "no /usr/bin/time"
	head -c 64M /dev/urandom >"$T/huge"
	printf 'small' >"$T/small"
	rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
	s_small=$(rss mq-send "$Q" "$T/small")
	r_small=$(rss mq-recv -o "$T/got" "$Q")
	s_huge=$(rss mq-send "$Q" "$T/huge")
	r_huge=$(rss mq-recv -o "$T/got" "$Q")
	cmp "$T/huge" "$T/got"
	p_huge=$(cat "$T/huge" | rss mq-send "$Q")
	o_huge=$(/usr/bin/time -f %M -o "$T/rss" mq-recv "$Q" | cmp - "$T/huge" &&
	    tail -n 1 "$T/rss")
	note "max RSS (KiB): send $s_small -> $s_huge (pipe $p_huge)," \
	    "recv $r_small -> $r_huge (pipe $o_huge)"
	# At most 1 MiB more for 64 MiB than for 5 bytes.
	assert [ "$s_huge" -le $((s_small + 1024)) ]
	assert [ "$p_huge" -le $((s_small + 1024)) ]
	assert [ "$r_huge" -le $((r_small + 1024)) ]
	assert [ "$o_huge" -le $((r_small + 1024)) ]
}

@test "bodies: mq-recv -o syncs FILE and its directory before the message is removed" {
	command -v strace >/dev/null || skip "strace is not installed"
	mq-send -q "$Q" "$BIG"
	mkdir "$T/out"
	ASAN_OPTIONS=detect_leaks=0 strace -qq -o "$T/trace" \
	    -e trace=openat,fdatasync,fsync,unlinkat mq-recv -o "$T/out/got" "$Q"
	cmp "$BIG" "$T/out/got"
	file_fd=$(sed -n "s|^openat(AT_FDCWD, \"$T/out/got\", .*) = \([0-9]*\)\$|\1|p" "$T/trace")
	dir_fd=$(sed -n "s|^openat(AT_FDCWD, \"$T/out\", .*) = \([0-9]*\)\$|\1|p" "$T/trace")
	[ -n "$file_fd" ] && [ -n "$dir_fd" ]
	run grep -n -E "^(fdatasync\\($file_fd\\)|fsync\\($dir_fd\\)|unlinkat\\()" "$T/trace"
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 --regexp "^[0-9]+:fdatasync\\($file_fd\\) *= 0"
	assert_line --index 1 --regexp "^[0-9]+:fsync\\($dir_fd\\) *= 0"
	assert_line --index 2 --partial ":unlinkat("
}

@test "bodies: mq-recv -o over an existing FILE leaves exactly the body, longer, shorter or empty" {
	head -c 30M /dev/urandom >"$T/got"
	ln "$T/got" "$T/link"
	chmod 600 "$T/got"
	for body in "$BIG" "$T/short" "$T/empty" "$BIG"; do
		case $body in
		*/short) printf 'short body' >"$body" ;;
		*/empty) : >"$body" ;;
		esac
		mq-send -q "$Q" "$body"
		mq-recv -o "$T/got" "$Q"
		cmp "$body" "$T/got"
	done
	# The same file, written over: its other name and its mode stay.
	cmp "$T/got" "$T/link"
	assert_equal "$(stat -c %a "$T/got")" 600
}

@test "bodies: mq-recv -o into a directory it may write but not read (a drop box) delivers" {
	[ "$(id -u)" = 0 ] || skip "needs root to run as nobody"
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	d=$(mktemp -d /tmp/mq-dropbox.XXXXXX)
	chmod 755 "$d"
	mkdir "$d/box"
	chown nobody "$d" "$d/box"
	chmod 333 "$d/box"
	as_nobody() { setpriv --reuid nobody --regid nogroup --clear-groups "$@"; }
	rc=0
	{
		as_nobody mq-init "$d/q" &&
		    as_nobody mq-send -q "$d/q" <"$BIG" &&
		    as_nobody mq-recv -o "$d/box/got" "$d/q" &&
		    cmp "$BIG" "$d/box/got" &&
		    [ "$(count_in "$d/q" new)$(count_in "$d/q" cur)" = 00 ]
	} || rc=$?
	rm -rf "$d"
	assert_equal "$rc" 0
}
