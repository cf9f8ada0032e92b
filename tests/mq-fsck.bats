#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }
teardown() { bg_cleanup; }

# Send and print the id of a message with body $1.
send() { printf '%s' "$1" | mq-send "$Q"; }

# Every path of a tree with its type, size, mode, group, mtime, ctime.
tree_snapshot() {
	find "$1" -printf '%P %y %s %m %g %T@ %C@\n' | sort
}

# How many files (of any kind but directories) the state folders hold,
# quarantine included and its .reason notes not: what must never drop.
message_files() {
	find "$Q/new" "$Q/cur" "$Q/delay" "$Q/dead" "$Q/quarantine" -mindepth 1 \
	    ! -type d ! -name '*.reason' 2>/dev/null | wc -l
}

# Damage queue $Q in every way mq-fsck knows, but for a missing folder.
# Sets the ids and names the tests check:
#   $leased   claimed with a 1s lease, run out       (cur/$lease_name)
#   $delayed  released with a 1s delay, over          (delay/$delay_name)
#   $badmode  ready, with mode 0644 instead of 0600
#   $cut      ready, truncated
#   $intact   ready, untouched
#   $B        the bucket;  $link, $fifo  planted in it with message names
#   new/junk, new/$B/junk  files that are not messages
#   tmp/$stale  two days old;  tmp/$young  just written
#   seq       removed
damage() {
	local r
	leased=$(send leased)
	r=$(mq-recv -L 1 -o /dev/null "$Q")
	[ "${r%%.*}" = "$leased" ]
	delayed=$(send delayed)
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	[ "${r%%.*}" = "$delayed" ]
	mq-ack --retry -d 1 "$Q" "$r"
	badmode=$(send badmode)
	cut=$(send 'cut short')
	intact=$(send intact)
	B=$(basename "$(bucket_of "$intact")")

	chmod 0644 "$(ready_file "$badmode")"
	truncate -s -3 "$(ready_file "$cut")"
	decoy="$BATS_TEST_TMPDIR/decoy"
	echo secret >"$decoy"
	link=00000100000000f0.0
	fifo=00000100000000f1.0
	ln -s "$decoy" "$Q/new/$B/$link"
	mkfifo "$Q/new/$B/$fifo"
	echo junk >"$Q/new/junk"
	echo junk >"$Q/new/$B/junk"
	stale=4711.1795000000000000000.0000010000000009
	young=4712.1795000000000000000.000001000000000a
	echo half >"$Q/tmp/$stale"
	touch -d "@$(( $(date +%s) - 2 * 86400 ))" "$Q/tmp/$stale"
	echo half >"$Q/tmp/$young"
	rm "$Q/seq"

	lease_name=$(cd "$Q/cur" && echo "$leased".*)
	delay_name=$(cd "$Q/delay" && echo *."$delayed".1)
	# Wait for the lease and the delay to run out.
	wait_for 10 after_ns "${lease_name##*.}"
	wait_for 10 after_ns "${delay_name%%.*}"
}

# The lines of a dry run (VERB "would") or a repair (VERB "fixed:") of
# the damage above, in the order mq-fsck checks.
expected() {
	local v=$1
	cat <<-EOF
	$Q: seq: missing sequence counter: $v rebuild it past every id present
	$Q: tmp/$stale: stale temporary file of a killed producer: $v remove it (it was never sent)
	$Q: new/junk: not a message name: $v move it to quarantine/
	$Q: new/$B/junk: not a message name: $v move it to quarantine/
	$Q: new/$B/$badmode.0: mode differs from the queue's: $v set the queue's file mode
	$Q: new/$B/$cut.0: not a well-formed message: $v move it to quarantine/
	$Q: new/$B/$link: not a well-formed message: $v move it to quarantine/
	$Q: new/$B/$fifo: not a well-formed message: $v move it to quarantine/
	$Q: delay/$delay_name: delay is over: $v make it ready again
	$Q: cur/$lease_name: lease ran out: $v make it ready again
	EOF
}

@test "mq-fsck: a clean queue exits 0 and prints nothing" {
	run --separate-stderr mq-fsck "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	# Messages in every state, none of them wrong.
	send a >/dev/null
	send b >/dev/null
	send c >/dev/null
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --retry -d 1h "$Q" "$r"
	mq-recv -L 60 -o /dev/null "$Q" >/dev/null
	id=$(send damaged)
	truncate -s -1 "$(ready_file "$id")"
	run mq-recv -o /dev/null "$Q"
	assert_failure 1
	send d >/dev/null
	assert_equal "$(quarantined | wc -l)" 1
	assert_equal "$(mq-ls "$Q" | awk '{ print $2 }' | sort | tr '\n' ' ')" \
	    "dead delayed inflight quarantine ready "
	before=$(tree_snapshot "$Q")
	run --separate-stderr mq-fsck "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	run --separate-stderr mq-fsck --fix "$Q"
	assert_success
	assert_output ""
	assert_equal "$(tree_snapshot "$Q")" "$before"
}

@test "mq-fsck: a dry run lists each problem, exits 1 and changes nothing" {
	damage
	before=$(tree_snapshot "$Q")
	run --separate-stderr mq-fsck "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_output "$(expected would)"
	assert_equal "$(tree_snapshot "$Q")" "$before"
	# Twice: the same.
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$(expected would)"
	assert_equal "$(tree_snapshot "$Q")" "$before"
}

@test "mq-fsck: --fix repairs everything, never deletes a message, and a second check is clean" {
	damage
	rmdir "$Q/dead"
	files=$(message_files)
	run --separate-stderr mq-fsck --fix "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_equal "$output" "$Q: dead/: missing folder: fixed: create it
$(expected fixed:)"
	assert_equal "$(message_files)" "$files"

	run --separate-stderr mq-fsck "$Q"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""

	# The folder is back, with the queue's mode.
	assert [ -d "$Q/dead" ]
	assert_equal "$(stat -c %a "$Q/dead")" "$(stat -c %a "$Q/new")"
	# The stale temporary file is gone, the young one left alone.
	assert_equal "$(names_in tmp)" "$young"
	# Damaged files and strays are in quarantine, as they were: the
	# link still a link, not followed; the FIFO still a FIFO.
	assert_equal "$(quarantined | sed 's/^[0-9]*\.//' | sort)" \
	    "$cut.0
$link
$fifo
junk
junk"
	assert_equal "$(find "$Q/quarantine" -type l -name "*.$link" | wc -l)" 1
	assert_equal "$(find "$Q/quarantine" -type p -name "*.$fifo" | wc -l)" 1
	assert_equal "$(cat "$decoy")" secret
	for f in $(quarantined); do
		assert_equal "$(cat "$Q/quarantine/$f.reason")" "Damaged message file"
	done
	# The expired lease and delay are ready again, attempts kept.
	assert_equal "$(names_in new)" "$leased.1
$delayed.1
$badmode.0
$intact.0"
	assert_equal "$(count_in "$Q" cur)" 0
	assert_equal "$(count_in "$Q" delay)" 0
	assert_equal "$(stat -c %a "$(ready_file "$badmode")")" 600
	# The counter is past every id present.
	next=$(send next)
	assert [ "$next" \> 00000100000000f1 ]
	# Everything is delivered, in order, intact.
	for want in "$leased 2 leased" "$delayed 2 delayed" "$badmode 1 badmode" \
	    "$intact 1 intact" "$next 1 next"; do
		run mq-recv "$Q" -- sh -c 'printf "%s %s %s\n" "$MQ_ID" "$MQ_ATTEMPT" "$(cat)"'
		assert_success
		assert_output "$want"
	done
	run mq-recv "$Q"
	assert_failure 1
}

@test "mq-fsck: a missing folder is reported alone by a dry run, and created by --fix" {
	echo half >"$Q/tmp/1.2.0000010000000000"
	touch -d "@$(( $(date +%s) - 2 * 86400 ))" "$Q/tmp/1.2.0000010000000000"
	rmdir "$Q/dead"
	before=$(tree_snapshot "$Q")
	run --separate-stderr mq-fsck "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_output "$Q: dead/: missing folder: would create it"
	assert_equal "$(tree_snapshot "$Q")" "$before"
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_output "$Q: dead/: missing folder: fixed: create it
$Q: tmp/1.2.0000010000000000: stale temporary file of a killed producer: fixed: remove it (it was never sent)"
	run mq-fsck "$Q"
	assert_success
	assert_output ""
	# The queue works again end to end.
	send x >/dev/null
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	assert_equal "$(count_in "$Q" dead)" 1
}

@test "mq-fsck: a link or a file in a folder's place is reported, and set aside by --fix" {
	id=$(send kept)
	other="$BATS_TEST_TMPDIR/other"
	mkdir "$other"
	rmdir "$Q/cur" "$Q/dead"
	ln -s "$other" "$Q/cur"
	echo notes >"$Q/dead"
	before=$(tree_snapshot "$Q")
	run --separate-stderr mq-fsck "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_output "$Q: cur/: not a folder: would move it to quarantine/ and create the folder
$Q: dead/: not a folder: would move it to quarantine/ and create the folder"
	assert_equal "$(tree_snapshot "$Q")" "$before"
	run --separate-stderr mq-fsck --fix "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_output "$Q: cur/: not a folder: fixed: move it to quarantine/ and create the folder
$Q: dead/: not a folder: fixed: move it to quarantine/ and create the folder"
	run mq-fsck "$Q"
	assert_success
	assert_output ""
	# Both set aside as they were, the link not followed.
	assert_equal "$(quarantined | sed 's/^[0-9]*\.//' | sort)" "cur
dead"
	assert_equal "$(find "$Q/quarantine" -type l -name '*.cur' | wc -l)" 1
	assert_equal "$(cat "$Q"/quarantine/*.dead)" notes
	assert [ ! -L "$Q/cur" ]
	assert [ -d "$Q/cur" ]
	assert [ -d "$Q/dead" ]
	# The queue works again, and nothing went through the link.
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	assert_equal "${r%%.*}" "$id"
	mq-ack --fail "$Q" "$r"
	assert_equal "$(count_in "$Q" dead)" 1
	assert_equal "$(ls -A "$other")" ""
}

# under_strace ARGS...: run mq-fsck under strace ARGS (LeakSanitizer
# cannot run under ptrace).
under_strace() {
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 strace -f -qq -o /dev/null \
	    "$@"
}

@test "mq-fsck: a message it cannot open for now is left alone, and the check fails with why" {
	command -v strace >/dev/null || skip "strace is not installed"
	id=$(send sound)
	file=$(ready_file "$id")
	for fix in "" --fix; do
		run --separate-stderr under_strace -P "${file##*/}" \
		    -e inject=openat:error=EMFILE mq-fsck $fix "$Q"
		assert_failure 75
		assert_output ""
		assert_equal "$stderr" "mq-fsck: $Q: Too many open files"
	done
	assert [ -f "$file" ]
	assert_equal "$(quarantined)" ""
	run mq-fsck "$Q"
	assert_success
}

@test "mq-fsck --fix reports a run-out lease it could not move as not fixed, and one it moved as fixed" {
	command -v strace >/dev/null || skip "strace is not installed"
	a=$(send a)
	b=$(send b)
	ra=$(mq-recv -L 1 -o /dev/null "$Q")
	rb=$(mq-recv -L 1 -o /dev/null "$Q")
	wait_for 10 after_ns "$(lease_deadline "$rb")"
	wait_for 10 after_ns "$(lease_deadline "$ra")"
	la=$(cd "$Q/cur" && echo "$ra".*)
	lb=$(cd "$Q/cur" && echo "$rb".*)
	run --separate-stderr under_strace -P "$la" \
	    -e inject=renameat2:error=EIO mq-fsck --fix "$Q"
	assert_failure 75
	# In the order of cur/'s listing.
	assert_equal "$(sort <<<"$output")" "$Q: cur/$la: lease ran out: not fixed: make it ready again: Input/output error
$Q: cur/$lb: lease ran out: fixed: make it ready again"
	assert_equal "$stderr" ""
	assert_equal "$(names_in cur)" "$la"
	assert_equal "$(names_in new)" "$b.1"
}

@test "mq-fsck: a folder it cannot read fails the check instead of passing it" {
	command -v strace >/dev/null || skip "strace is not installed"
	echo junk >"$Q/dead/junk"
	run --separate-stderr under_strace -P "$Q/dead" \
	    -e inject=getdents64:error=EIO:when=1 mq-fsck "$Q"
	assert_failure 74
	assert_equal "$stderr" "mq-fsck: $Q: Input/output error"
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$Q: dead/junk: not a message name: would move it to quarantine/"
}

@test "mq-fsck: a link or a file of a bucket's name in new/ is reported, and set aside by --fix" {
	id=$(send kept)
	ln -s "$BATS_TEST_TMPDIR" "$Q/new/0000020000000000"
	echo notes >"$Q/new/p5-0000020000000000"
	run --separate-stderr mq-fsck "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_equal "$(sort <<<"$output")" "$Q: new/0000020000000000: not a folder: would move it to quarantine/
$Q: new/p5-0000020000000000: not a folder: would move it to quarantine/"
	run --separate-stderr mq-fsck --fix "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	run mq-fsck "$Q"
	assert_success
	assert_equal "$(quarantined | sed 's/^[0-9]*\.//' | sort)" "0000020000000000
p5-0000020000000000"
	assert_equal "$(mq-recv "$Q" -- cat)" kept
}

@test "mq-fsck: a young temporary file is left alone" {
	echo half >"$Q/tmp/1.2.0000010000000000"
	touch -d "@$(( $(date +%s) - 3600 ))" "$Q/tmp/1.2.0000010000000000"
	run mq-fsck --fix "$Q"
	assert_success
	assert_output ""
	assert_equal "$(names_in tmp)" 1.2.0000010000000000
}

@test "mq-fsck: a message file that names another id is quarantined" {
	id=$(send real)
	B=$(bucket_of "$id")
	cp -p "$(ready_file "$id")" "$B/00000100000000f2.0"
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$Q: new/$(basename "$B")/00000100000000f2.0: not a well-formed message: would move it to quarantine/"
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_equal "$(names_in new)" "$id.0"
	assert_equal "$(quarantined | sed 's/^[0-9]*\.//')" 00000100000000f2.0
}

@test "mq-fsck: damaged and stray files in cur/, delay/ and dead/ are quarantined" {
	id=$(send a)
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	truncate -s -2 "$Q/dead/$id.1.failed"
	echo x >"$Q/cur/stray"
	echo x >"$Q/delay/stray"
	echo x >"$Q/dead/stray"
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$Q: cur/stray: not a message name: would move it to quarantine/
$Q: delay/stray: not a message name: would move it to quarantine/
$Q: dead/stray: not a message name: would move it to quarantine/
$Q: dead/$id.1.failed: not a well-formed message: would move it to quarantine/"
	files=$(message_files)
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_equal "$(message_files)" "$files"
	assert_equal "$(find "$Q/cur" "$Q/delay" "$Q/dead" -mindepth 1 | wc -l)" 0
	assert_equal "$(quarantined | wc -l)" 4
	run mq-fsck "$Q"
	assert_success
}

@test "mq-fsck: a malformed sequence counter is rebuilt past every id" {
	a=$(send a)
	b=$(send b)
	r=$(mq-recv -L 60 -o /dev/null "$Q")
	mq-ack --fail "$Q" "$r"
	printf 'garbage\n' >"$Q/seq"
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$Q: seq: malformed sequence counter: would rebuild it past every id present"
	assert_equal "$(cat "$Q/seq")" garbage
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_output "$Q: seq: malformed sequence counter: fixed: rebuild it past every id present"
	c=$(send c)
	assert [ "$c" \> "$b" ]
	assert [ "$c" \> "$a" ]
	run mq-fsck "$Q"
	assert_success
}

@test "mq-fsck: a malformed config is reported, not repaired: --fix exits 78" {
	send a >/dev/null
	cp "$Q/config" "$BATS_TEST_TMPDIR/config"
	echo 'lease = soon' >>"$Q/config"
	cp "$Q/config" "$BATS_TEST_TMPDIR/bad"
	run --separate-stderr mq-fsck "$Q"
	assert_failure 1
	assert_equal "$stderr" ""
	assert_output "$Q: config: Malformed queue config: would edit it by hand"
	run --separate-stderr mq-fsck --fix "$Q"
	assert_failure 78
	assert_output "$Q: config: Malformed queue config: would edit it by hand"
	assert_equal "$stderr" "mq-fsck: $Q: Malformed queue config"
	cmp "$Q/config" "$BATS_TEST_TMPDIR/bad"
	assert_equal "$(ready_count)" 1
}

@test "mq-fsck: an expired lease of a message that used up max-attempts goes to dead/, and says so" {
	mq-init --max-attempts 1 "$Q"
	id=$(send last)
	r=$(mq-recv -L 1 -o /dev/null "$Q")
	wait_for 10 after_ns "$(lease_deadline "$r")"
	run mq-fsck "$Q"
	assert_failure 1
	lease=$(names_in cur)
	assert_output "$Q: cur/$lease: lease ran out: would move it to dead/ (attempts used up)"
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_output "$Q: cur/$lease: lease ran out: fixed: move it to dead/ (attempts used up)"
	assert_equal "$(names_in dead)" "$id.1.attempts"
	assert_equal "$(ready_count)" 0
	assert_equal "$(count_in "$Q" cur)" 0
}

@test "mq-fsck: a file of another group in a setgid queue gets the queue's group" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to change groups"
	group=$(getent group daemon nogroup bin | head -n 1 | cut -d: -f1)
	[ -n "$group" ] || skip "no spare group"
	q="$BATS_TEST_TMPDIR/shared"
	mq-init -m 2770 -g "$group" "$q"
	id=$(printf x | mq-send "$q")
	f=$(ready_file "$id" "$q")
	assert_equal "$(stat -c %G "$f")" "$group"
	chgrp root "$f"
	run mq-fsck "$q"
	assert_failure 1
	assert_output "$q: new/$(basename "$(dirname "$f")")/$id.0: group differs from the queue's: would set the queue's group"
	run mq-fsck --fix "$q"
	assert_failure 1
	assert_equal "$(stat -c %G "$f")" "$group"
	assert_equal "$(stat -c %a "$f")" 660
	run mq-fsck "$q"
	assert_success
}

@test "mq-fsck: several queues: each checked, lines named by operand, status of the worst" {
	mq-init clean dirty
	echo junk >"$MQ_ROOT/dirty/new/junk"
	run --separate-stderr mq-fsck clean dirty
	assert_failure 1
	assert_output "dirty: new/junk: not a message name: would move it to quarantine/"
	run --separate-stderr mq-fsck clean "$BATS_TEST_TMPDIR/nope" dirty
	assert_failure 66
	assert_equal "$stderr" "mq-fsck: $BATS_TEST_TMPDIR/nope: No such file or directory"
	assert_output "dirty: new/junk: not a message name: would move it to quarantine/"
	run mq-fsck --fix dirty clean
	assert_failure 1
	run mq-fsck clean dirty
	assert_success
	assert_output ""
}

@test "mq-fsck: a missing queue exits 66" {
	run --separate-stderr mq-fsck "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert_output ""
	assert_equal "$stderr" "mq-fsck: $BATS_TEST_TMPDIR/nope: No such file or directory"
	assert [ ! -e "$BATS_TEST_TMPDIR/nope" ]
	run --separate-stderr mq-fsck --fix "$BATS_TEST_TMPDIR/nope"
	assert_failure 66
	assert [ ! -e "$BATS_TEST_TMPDIR/nope" ]
}

@test "mq-fsck: usage errors exit 64" {
	usage=$(usage_of mq-fsck)
	assert_equal "$usage" "usage: mq-fsck [--fix] QUEUE..."
	run --separate-stderr mq-fsck
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-fsck --fix
	assert_failure 64
	assert_equal "$stderr" "$usage"
	run --separate-stderr mq-fsck --bogus "$Q"
	assert_failure 64
	assert_output ""
}

@test "mq-fsck: --help and --version" {
	run --separate-stderr mq-fsck --help
	assert_success
	assert_line --index 0 'usage: mq-fsck [--fix] QUEUE...'
	for opt in --fix --help --version; do
		assert_output --partial -- "$opt"
	done
	run mq-fsck --version
	assert_success
	assert_output --regexp '^mq-fsck [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-fsck: a file of keys/ without the queue's mode is reported and fixed; a link there is not followed" {
	send keyed >/dev/null
	echo one | mq-send -q -k one "$Q"
	key=$(cd "$Q/keys" && ls | grep -v '^\.')
	chmod 0644 "$Q/keys/$key"
	echo outside >"$BATS_TEST_TMPDIR/target"
	chmod 0644 "$BATS_TEST_TMPDIR/target"
	ln -s "$BATS_TEST_TMPDIR/target" "$Q/keys/link"
	run mq-fsck "$Q"
	assert_failure 1
	assert_output "$Q: keys/$key: mode differs from the queue's: would set the queue's file mode"
	run mq-fsck --fix "$Q"
	assert_failure 1
	assert_output "$Q: keys/$key: mode differs from the queue's: fixed: set the queue's file mode"
	assert_equal "$(stat -c %a "$Q/keys/$key" "$BATS_TEST_TMPDIR/target")" "600
644"
	run mq-fsck "$Q"
	assert_success
}
