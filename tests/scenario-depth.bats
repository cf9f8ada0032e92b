#!/usr/bin/env bats
# A deep queue: ready messages spread over several buckets.
load helpers/common

# 5000 messages fill five buckets (DEPTH_N sets another number; make
# check's 2100 fill three).  Under AddressSanitizer each receive costs
# ~8 ms, so there 1100 (two buckets, one boundary crossed).
setup() {
	setup_mq
	DEPTH=${DEPTH_N:-5000}
	if under_asan; then DEPTH=1100; fi
}

# bucket_ok DIR: every message in bucket DIR has an id within the 1024
# that the bucket's name starts.
bucket_ok() {
	local base name
	base=$((16#$(basename "$1")))
	for name in $(ls "$1"); do
		(( 16#${name:0:16} - base >= 0 && 16#${name:0:16} - base < 1024 )) ||
		    { echo "$name in $1"; return 1; }
	done
}

@test "scenario: thousands of messages span several buckets and drain in order" {
	seq 1 "$DEPTH" | mq-send -q -l "$Q"
	assert_equal "$(ready_count)" "$DEPTH"
	buckets=$(find "$Q/new" -mindepth 1 -maxdepth 1 -type d | wc -l)
	assert [ "$buckets" -ge $(( (DEPTH + 1023) / 1024 )) ]
	for b in "$Q"/new/*; do
		run bucket_ok "$b"
		assert_success
	done
	rc=0
	for (( i = 0; i < DEPTH; i++ )); do
		mq-recv "$Q" || { rc=$?; break; }
		echo
	done >"$BATS_TEST_TMPDIR/got"
	assert_equal "$rc" 0
	run cmp <(seq 1 "$DEPTH") "$BATS_TEST_TMPDIR/got"
	assert_success
	run mq-recv "$Q"
	assert_failure 1
	# Drained buckets are removed; at most the newest is kept.
	assert [ "$(find "$Q/new" -mindepth 1 -maxdepth 1 -type d | wc -l)" -le 1 ]
	assert_equal "$(find "$Q/cur" "$Q/quarantine" "$Q/dead" -type f | wc -l)" 0
}
