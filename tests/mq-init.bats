#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }

# The group every -g test uses: one that exists on any Debian system and
# is not root's own, so that inheriting it proves the setgid bit works.
GROUP=daemon

# Giving a queue to a group takes root or membership of the group.
need_group() {
	[ "$(id -u)" = 0 ] || id -Gn | tr ' ' '\n' | grep -qx "$GROUP" ||
	    skip "needs root or membership of $GROUP"
}

@test "mq-init: creates the state folders, config and counter" {
	for d in tmp new cur dead delay quarantine; do
		assert [ -d "$Q/$d" ]
	done
	assert [ -f "$Q/config" ]
	assert [ -f "$Q/seq" ]
	run stat -c %a "$Q"
	assert_output 700
}

@test "mq-init: a new queue is empty and says so" {
	run --separate-stderr mq-recv "$Q"
	assert_failure 1
	assert_output ""
	assert_equal "$(find "$Q" -type f | sort)" "$(printf '%s\n' "$Q/config" "$Q/seq")"
}

@test "mq-init: -m sets the mode of the queue, its folders and its files" {
	run --separate-stderr mq-init -m 750 "$BATS_TEST_TMPDIR/m"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	m="$BATS_TEST_TMPDIR/m"
	assert_equal "$(stat -c %a "$m")" 750
	for d in tmp new cur dead delay quarantine; do
		assert_equal "$(stat -c %a "$m/$d")" 750
	done
	assert_equal "$(stat -c %a "$m/config")" 640
	assert_equal "$(stat -c %a "$m/seq")" 640
}

@test "mq-init: files and buckets made later get the queue's mode whatever the umask" {
	mq-init -m 770 "$BATS_TEST_TMPDIR/m"
	m="$BATS_TEST_TMPDIR/m"
	id=$(umask 077 && echo hi | mq-send "$m")
	f=$(ready_file "$id" "$m")
	assert_equal "$(stat -c %a "$f")" 660
	assert_equal "$(stat -c %a "$(dirname "$f")")" 770
}

@test "mq-init: -g gives the queue to a group, setgid, 2770 by default" {
	need_group
	run --separate-stderr mq-init -g "$GROUP" "$BATS_TEST_TMPDIR/g"
	assert_success
	g="$BATS_TEST_TMPDIR/g"
	assert_equal "$(stat -c '%a %G' "$g")" "2770 $GROUP"
	for d in tmp new cur dead delay quarantine; do
		assert_equal "$(stat -c '%a %G' "$g/$d")" "2770 $GROUP"
	done
	assert_equal "$(stat -c '%a %G' "$g/config")" "660 $GROUP"
	assert_equal "$(stat -c '%a %G' "$g/seq")" "660 $GROUP"
}

@test "mq-init: with -g, messages and buckets made later belong to the group" {
	need_group
	[ "$(id -gn)" != "$GROUP" ] || skip "the test user's own group is $GROUP"
	mq-init -g "$GROUP" -m 2750 "$BATS_TEST_TMPDIR/g"
	g="$BATS_TEST_TMPDIR/g"
	assert_equal "$(stat -c '%a %G' "$g")" "2750 $GROUP"
	id=$(umask 077 && echo hi | mq-send "$g")
	f=$(ready_file "$id" "$g")
	assert_equal "$(stat -c '%a %G' "$f")" "640 $GROUP"
	assert_equal "$(stat -c '%a %G' "$(dirname "$f")")" "2750 $GROUP"
	# A claim moves it to cur/: still the group's, so peers can settle it.
	r=$(mq-recv -L 60 -o "$BATS_TEST_TMPDIR/body" "$g")
	assert_equal "$(find "$g/cur" -type f -printf '%m %g\n')" "640 $GROUP"
	mq-ack "$g" "$r"
}

@test "mq-init: -g accepts a numeric group id" {
	need_group
	gid=$(getent group "$GROUP" | cut -d: -f3)
	run mq-init -g "$gid" "$BATS_TEST_TMPDIR/g"
	assert_success
	assert_equal "$(stat -c '%a %g' "$BATS_TEST_TMPDIR/g")" "2770 $gid"
}

@test "mq-init: an unknown group is refused and nothing is created" {
	run --separate-stderr mq-init -g no-such-group-mq "$BATS_TEST_TMPDIR/g"
	assert_failure 67
	assert_equal "$stderr" "mq-init: no-such-group-mq: no such group"
	assert [ ! -e "$BATS_TEST_TMPDIR/g" ]
}

@test "mq-init: re-running on an existing queue is harmless" {
	mq-init -m 750 --lease 2m "$BATS_TEST_TMPDIR/m"
	m="$BATS_TEST_TMPDIR/m"
	printf 'a\nb\n' | mq-send -q -l "$m"
	r=$(mq-recv -L 60 -o "$BATS_TEST_TMPDIR/body" "$m")
	before=$(snapshot "$m")
	config=$(cat "$m/config")
	seq=$(cat "$m/seq")
	run --separate-stderr mq-init "$m"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	assert_equal "$(snapshot "$m")" "$before"
	assert_equal "$(cat "$m/config")" "$config"
	assert_equal "$(cat "$m/seq")" "$seq"
	run mq-ack "$m" "$r"
	assert_success
	run mq-recv "$m"
	assert_output b
}

@test "mq-init: repairs each deleted state folder with the queue's mode" {
	mq-init -m 750 "$BATS_TEST_TMPDIR/m"
	m="$BATS_TEST_TMPDIR/m"
	echo kept | mq-send -q "$m"
	for d in tmp cur delay dead quarantine; do
		rm -r "${m:?}/$d"
		run mq-init "$m"
		assert_success
		assert_equal "$(stat -c %a "$m/$d")" 750
	done
	run mq-recv "$m"
	assert_success
	assert_output kept
}

@test "mq-init: a queue missing a folder is refused until mq-init repairs it" {
	echo kept | mq-send -q "$Q"
	rm -r "${Q:?}/cur"
	run --separate-stderr mq-recv "$Q"
	assert_failure 66
	assert_equal "$stderr" "mq-recv: $Q: Not a queue (run mq-init)"
	assert_equal "$(ready_count)" 1
	mq-init "$Q"
	run mq-recv "$Q"
	assert_success
	assert_output kept
}

@test "mq-init: repairs a deleted new/ and sending works again" {
	rm -r "${Q:?}/new"
	run --separate-stderr mq-send "$Q" </dev/null
	assert_failure 66
	assert_equal "$stderr" "mq-send: $Q: Not a queue (run mq-init)"
	assert_equal "$(find "$Q/tmp" -type f | wc -l)" 0
	mq-init "$Q"
	echo back | mq-send -q "$Q"
	run mq-recv "$Q"
	assert_output back
}

@test "mq-init: a deleted seq is recreated and new ids are larger than every existing one" {
	printf '%s\n' 1 2 3 4 | mq-send -q -l "$Q"
	mq-recv "$Q" -- sh -c 'exit 100' || true       # 1 goes to dead/
	mq-recv -L 60 -o /dev/null "$Q" 2>/dev/null     # 2 is leased in cur/
	r=$(mq-recv -L 60 -o /dev/null "$Q")            # 3 is delayed in delay/
	mq-ack --retry -d 1h "$Q" "$r"
	ids=$( (names_in new; names_in cur; names_in dead) | cut -d. -f1
	    names_in delay | cut -d. -f2)
	ids=$(echo "$ids" | sort)
	assert_equal "$(echo "$ids" | wc -l)" 4
	max=$(echo "$ids" | tail -n 1)
	rm "$Q/seq"
	run --separate-stderr mq-init "$Q"
	assert_success
	assert [ -f "$Q/seq" ]
	new=$(echo five | mq-send "$Q")
	assert is_id "$new"
	assert [ "$new" \> "$max" ]
	newer=$(echo six | mq-send "$Q")
	assert [ "$newer" \> "$new" ]
}

@test "mq-init: a deleted seq, with only messages of a priority waiting, still continues after them" {
	printf '%s\n' 1 2 3 | mq-send -q -l -p 5 "$Q"
	max=$(names_in new | cut -d. -f1 | sort | tail -n 1)
	assert_equal "$(ls "$Q/new")" "p5-${max%???}000"
	rm "$Q/seq"
	mq-init "$Q"
	new=$(echo four | mq-send "$Q")
	assert [ "$new" \> "$max" ]
	run mq-ls "$Q"
	assert_equal "$(echo "$output" | awk '{ print $1 }' | sort -u | wc -l)" 4
}

@test "mq-init: a deleted seq, with only dead letters left, still continues after them" {
	echo a | mq-send -q "$Q"
	id=$(echo b | mq-send "$Q")
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack "$Q" "$r"
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	assert_equal "$(names_in dead)" "$id.1.failed"
	# An emptied bucket goes once it is not the newest; make dead/ the
	# only record of the ids used.
	find "$Q/new" -mindepth 1 -type d -empty -delete
	assert_equal "$(find "$Q/new" -mindepth 1 | wc -l)" 0
	rm "$Q/seq"
	mq-init "$Q"
	new=$(echo c | mq-send "$Q")
	assert [ "$new" \> "$id" ]
}

@test "mq-init: a deleted config is recreated with the defaults" {
	rm "$Q/config"
	run mq-init "$Q"
	assert_success
	run grep -E '^(lease|max-attempts|backoff) = ' "$Q/config"
	assert_output "$(printf '%s\n' 'lease = 60s' 'max-attempts = 5' 'backoff = 1s')"
}

@test "mq-init: --lease, --max-attempts and --backoff are written to the config" {
	run mq-init --lease 2m --max-attempts 3 --backoff 1h "$BATS_TEST_TMPDIR/c"
	assert_success
	run grep -E '^(lease|max-attempts|backoff) = ' "$BATS_TEST_TMPDIR/c/config"
	assert_output "$(printf '%s\n' 'lease = 120s' 'max-attempts = 3' 'backoff = 3600s')"
}

@test "mq-init: re-running with one setting changes only that one" {
	mq-init --lease 2m --max-attempts 3 "$Q"
	run mq-init --max-attempts 7 "$Q"
	assert_success
	run grep -E '^(lease|max-attempts|backoff) = ' "$Q/config"
	assert_output "$(printf '%s\n' 'lease = 120s' 'max-attempts = 7' 'backoff = 1s')"
}

@test "mq-init: --lease is the lease a receive takes" {
	mq-init --lease 1h "$Q"
	echo x | mq-send -q "$Q"
	start=$(now_ns)
	run mq-recv "$Q" -- sh -c 'ls "$MQ_QUEUE/cur"'
	assert_success
	deadline=${output##*.}
	left=$(( (deadline - start) / 1000000000 ))
	assert [ "$left" -ge 3590 ]
	assert [ "$left" -le 3610 ]
}

@test "mq-init: bad options exit 64 with one line saying why" {
	d="$BATS_TEST_TMPDIR/bad"
	run --separate-stderr mq-init -m 999 "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: -m: invalid mode (octal, owner needs rwx): 999"
	run --separate-stderr mq-init -m 0600 "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: -m: invalid mode (octal, owner needs rwx): 0600"
	run --separate-stderr mq-init --lease 0 "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: --lease: must be at least 1s"
	run --separate-stderr mq-init --lease 5x "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: --lease: invalid duration: 5x"
	run --separate-stderr mq-init --backoff -1 "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: --backoff: invalid duration: -1"
	run --separate-stderr mq-init --max-attempts 0 "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: --max-attempts: invalid count: 0"
	run --separate-stderr mq-init --max-attempts 3x "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: --max-attempts: invalid count: 3x"
	assert [ ! -e "$d" ]
}

@test "mq-init: a --max-size that is malformed or past 2^64 bytes exits 64 and creates nothing" {
	d="$BATS_TEST_TMPDIR/bad"
	# 2^34 G is 2^64 bytes: shifted, it wrapped to 0, no limit at all.
	for size in 17179869184G 99999999999999999999 5X k; do
		run --separate-stderr mq-init --max-size "$size" "$d"
		assert_failure 64
		assert_equal "$stderr" "mq-init: --max-size: invalid value: $size"
		assert [ ! -e "$d" ]
	done
	run -0 mq-init --max-size 17179869183G "$d"
	assert_equal "$(grep '^max-size' "$d/config")" "max-size = 18446744072635809792"
	# Written by hand, the same size makes the config malformed.
	sed -i 's/^max-size = .*/max-size = 17179869184G/' "$d/config"
	run --separate-stderr mq-init "$d"
	assert_failure 64
	assert_equal "$stderr" "mq-init: $d: Malformed queue config"
}

@test "mq-init: an unknown option or no queue prints the usage and exits 64" {
	usage=$(usage_of mq-init)
	assert_regex "$usage" '^usage: mq-init \[-m MODE\] \[-g GROUP\] \[--lease DUR\] \[--max-attempts N\]'
	run --separate-stderr mq-init
	assert_failure 64
	assert_output ""
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-init --bogus "$BATS_TEST_TMPDIR/x"
	assert_failure 64
	assert_equal "$stderr" "mq-init: unrecognized option '--bogus'"$'\n'"$usage"
	assert [ ! -e "$BATS_TEST_TMPDIR/x" ]
}

@test "mq-init: durations accept s, m, h and d suffixes" {
	for spec in 90:90 90s:90 2m:120 3h:10800 1d:86400; do
		mq-init --lease "${spec%%:*}" "$Q"
		run grep '^lease = ' "$Q/config"
		assert_output "lease = ${spec#*:}s"
	done
}

@test "mq-init: a bare name is a queue under \$MQ_ROOT" {
	assert [ ! -e "$MQ_ROOT" ]
	run --separate-stderr mq-init orders
	assert_success
	assert [ -d "$MQ_ROOT/orders/new" ]
	echo '{"order":42}' | mq-send -q orders
	assert_equal "$(ready_count "$MQ_ROOT/orders")" 1
	run mq-recv orders
	assert_output '{"order":42}'
}

@test "mq-init: several queues in one call" {
	run mq-init "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" c
	assert_success
	for q in "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" "$MQ_ROOT/c"; do
		assert [ -d "$q/new" ]
		assert [ -f "$q/seq" ]
	done
}

@test "mq-init: a path that is a file is refused as not a directory (66) and left alone" {
	f="$BATS_TEST_TMPDIR/file"
	echo data >"$f"
	run --separate-stderr mq-init "$f"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-init: $f: Not a directory"
	assert_equal "$(cat "$f")" data
	run --separate-stderr mq-init "$f/q"
	assert_failure 66
	assert_equal "$stderr" "mq-init: $f/q: Not a directory"
}

@test "mq-init: --help prints the usage on stdout and exits 0" {
	run --separate-stderr mq-init --help
	assert_success
	assert_line --index 0 --regexp '^usage: mq-init \[-m MODE\] \[-g GROUP\] \[--lease DUR\] \[--max-attempts N\]'
	for opt in --mode --group --lease --max-attempts --backoff --help --version; do
		assert_output --partial -- "$opt"
	done
	assert_equal "$stderr" ""
	run mq-init -h
	assert_success
	assert_line --index 0 --partial "usage: mq-init"
}

@test "mq-init: --version prints the program and version" {
	run --separate-stderr mq-init --version
	assert_success
	assert_output --regexp '^mq-init [0-9]+\.[0-9]+\.[0-9]+$'
	run mq-init -V
	assert_output --regexp '^mq-init [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-init: --help to a full disk fails with 74" {
	run --separate-stderr bash -c 'mq-init --help >/dev/full'
	assert_failure 74
	assert_equal "$stderr" "mq-init: stdout: No space left on device"
}

@test "mq-init: a config longer than 64 KiB is malformed, not cut: max-attempts = 1000 is never read as 10" {
	id=$(echo kept | mq-send "$Q")
	# A comment long enough that the 64 KiB end inside the last line,
	# "max-attempts = 1000" (19 characters), after its "10".
	size=$(stat -c %s "$Q/config")
	{ printf '#%*s\n' "$((65536 - size - 2 - 17))" '' | tr ' ' x
	  echo 'max-attempts = 1000'; } >>"$Q/config"
	assert_equal "$(head -c 65536 "$Q/config" | tail -n 1)" "max-attempts = 10"
	run --separate-stderr mq-recv -o /dev/null "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-recv: $Q: Malformed queue config"
	assert [ -f "$(ready_file "$id")" ]
}

@test "mq-init: a second topic line in a subscriber's config is malformed, not a silent replacement of the first" {
	T=$BATS_TEST_TMPDIR
	mq-init --subscribe "$T/t1" "$Q"
	mq-init "$T/t2"
	id=$(echo kept | mq-send "$Q")
	echo "topic = $T/t2" >>"$Q/config"
	assert_equal "$(grep -c '^topic = ' "$Q/config")" 2
	run --separate-stderr mq-recv -o /dev/null "$Q"
	assert_failure 78
	assert_equal "$stderr" "mq-recv: $Q: Malformed queue config"
	assert [ -f "$(ready_file "$id")" ]
}
