#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }

@test "mq-init: creates the state folders, config and counter" {
	for d in tmp new cur dead delay quarantine; do
		assert [ -d "$Q/$d" ]
	done
	assert [ -f "$Q/config" ]
	assert [ -f "$Q/seq" ]
	run stat -c %a "$Q"
	assert_output 700
}
