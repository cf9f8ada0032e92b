#!/usr/bin/env bats
# mq-keygen: the key files it writes, what it refuses, and that a pair it
# makes signs and seals end to end.
load helpers/common

setup() {
	setup_mq
	T=$BATS_TEST_TMPDIR
}

# b64_field FILE: the base64 text of a key file (its second field).
b64_field() { cut -d' ' -f2 "$1"; }

@test "mq-keygen: writes NAME.key (0600) and NAME.pub (0644), one line each" {
	run --separate-stderr mq-keygen "$T/alice"
	assert_success
	assert_output ""
	assert_equal "$stderr" ""
	assert_equal "$(stat -c %a "$T/alice.key")" 600
	assert_equal "$(stat -c %a "$T/alice.pub")" 644
	assert_equal "$(wc -l <"$T/alice.key")" 1
	assert_equal "$(wc -l <"$T/alice.pub")" 1
	# 64 secret bytes and 32 public bytes, standard base64.
	run cat "$T/alice.key"
	assert_output --regexp '^mq-ed25519-secret [A-Za-z0-9+/]{86}==$'
	run cat "$T/alice.pub"
	assert_output --regexp '^mq-ed25519 [A-Za-z0-9+/]{43}= alice$'
}

@test "mq-keygen: the public key is the one inside the secret key" {
	mq-keygen "$T/k"
	pk=$(b64_field "$T/k.key" | base64 -d | tail -c 32 | base64)
	assert_equal "$pk" "$(b64_field "$T/k.pub")"
}

@test "mq-keygen: every run makes a new pair" {
	mq-keygen "$T/a"
	mq-keygen "$T/b"
	assert [ "$(b64_field "$T/a.key")" != "$(b64_field "$T/b.key")" ]
	assert [ "$(b64_field "$T/a.pub")" != "$(b64_field "$T/b.pub")" ]
}

@test "mq-keygen: the modes do not depend on the umask" {
	(umask 000 && mq-keygen "$T/open")
	(umask 077 && mq-keygen "$T/tight")
	assert_equal "$(stat -c %a "$T/open.key") $(stat -c %a "$T/open.pub")" "600 644"
	assert_equal "$(stat -c %a "$T/tight.key") $(stat -c %a "$T/tight.pub")" "600 644"
}

@test "mq-keygen: a path NAME writes there and names the key by its base name" {
	mkdir "$T/keys"
	run mq-keygen "$T/keys/host-a"
	assert_success
	assert [ -f "$T/keys/host-a.key" ]
	run cat "$T/keys/host-a.pub"
	assert_output --regexp '^mq-ed25519 [A-Za-z0-9+/]{43}= host-a$'
	# A relative name is relative to the working directory.
	cd "$T/keys"
	run mq-keygen b
	assert_success
	assert [ -f "$T/keys/b.key" ]
	assert [ -f "$T/keys/b.pub" ]
}

@test "mq-keygen: an existing pair is never overwritten (exit 73)" {
	mq-keygen "$T/k"
	before=$(cat "$T/k.key" "$T/k.pub")
	run --separate-stderr mq-keygen "$T/k"
	assert_failure 73
	assert_output ""
	assert_equal "$stderr" "mq-keygen: $T/k: File exists"
	assert_equal "$(cat "$T/k.key" "$T/k.pub")" "$before"
	assert_equal "$(stat -c %a "$T/k.key")" 600
}

@test "mq-keygen: an existing NAME.key alone is refused and kept, no NAME.pub made" {
	echo "not ours to lose" >"$T/k.key"
	chmod 600 "$T/k.key"
	run --separate-stderr mq-keygen "$T/k"
	assert_failure 73
	assert_equal "$stderr" "mq-keygen: $T/k: File exists"
	assert_equal "$(cat "$T/k.key")" "not ours to lose"
	assert [ ! -e "$T/k.pub" ]
}

@test "mq-keygen: an existing NAME.pub alone is refused and kept, no NAME.key made" {
	echo "someone's public key" >"$T/k.pub"
	run --separate-stderr mq-keygen "$T/k"
	assert_failure 73
	assert_equal "$stderr" "mq-keygen: $T/k: File exists"
	assert_equal "$(cat "$T/k.pub")" "someone's public key"
	assert [ ! -e "$T/k.key" ]
}

@test "mq-keygen: never writes through a symlink at NAME.key or NAME.pub" {
	ln -s "$T/stolen-secret" "$T/a.key"
	run --separate-stderr mq-keygen "$T/a"
	assert_failure 73
	assert_equal "$stderr" "mq-keygen: $T/a: File exists"
	assert [ ! -e "$T/stolen-secret" ]
	assert [ ! -e "$T/a.pub" ]
	ln -s "$T/planted-pub" "$T/b.pub"
	run --separate-stderr mq-keygen "$T/b"
	assert_failure 73
	assert_equal "$stderr" "mq-keygen: $T/b: File exists"
	assert [ ! -e "$T/planted-pub" ]
	# The secret half written before the refusal is taken back.
	assert [ ! -e "$T/b.key" ]
}

@test "mq-keygen: a missing directory exits 66 naming the key" {
	run --separate-stderr mq-keygen "$T/nowhere/k"
	assert_failure 66
	assert_equal "$stderr" "mq-keygen: $T/nowhere/k: No such file or directory"
	assert [ ! -e "$T/nowhere" ]
}

@test "mq-keygen: no NAME, an empty NAME or two NAMEs print the usage and exit 64" {
	for args in "" "''" "a b"; do
		eval "set -- $args"
		run --separate-stderr mq-keygen "$@"
		assert_failure 64
		assert_output ""
		assert_equal "$stderr" "usage: mq-keygen NAME"
	done
	run --separate-stderr mq-keygen --bogus "$T/x"
	assert_failure 64
	assert_equal "$stderr" "mq-keygen: unrecognized option '--bogus'"$'\n'"usage: mq-keygen NAME"
	assert [ ! -e "$T/x.key" ]
	assert [ ! -e "$T/a.key" ]
}

@test "mq-keygen: --help prints the usage on stdout and exits 0" {
	run --separate-stderr mq-keygen --help
	assert_success
	assert_line --index 0 "usage: mq-keygen NAME"
	assert_output --partial "NAME.key"
	assert_equal "$stderr" ""
	run mq-keygen -h
	assert_success
	assert_line --index 0 "usage: mq-keygen NAME"
}

@test "mq-keygen: --version prints the program and version" {
	run --separate-stderr mq-keygen --version
	assert_success
	assert_output --regexp '^mq-keygen [0-9]+\.[0-9]+\.[0-9]+$'
	run mq-keygen -V
	assert_output --regexp '^mq-keygen [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "mq-keygen: a name starting with '-' is taken after --" {
	cd "$T"
	run mq-keygen -- -k
	assert_success
	assert [ -f "$T/-k.key" ]
	assert [ -f "$T/-k.pub" ]
}

@test "mq-keygen: --help to a full disk fails with 74" {
	run --separate-stderr bash -c 'mq-keygen --help >/dev/full'
	assert_failure 74
	assert_equal "$stderr" "mq-keygen: stdout: No space left on device"
}

@test "mq-keygen: a fresh pair signs, verifies and seals end to end" {
	mq-keygen "$T/producer"
	mq-keygen "$T/consumer"
	echo "signed and sealed" |
	    mq-send -q -s "$T/producer.key" --seal-to "$T/consumer.pub" "$Q"
	run --separate-stderr mq-recv --verify "$T/producer.pub" \
	    --key "$T/consumer.key" "$Q"
	assert_success
	assert_output "signed and sealed"
	assert_equal "$stderr" ""
}

@test "mq-keygen: a secret key made readable by others is refused until chmod 600" {
	mq-keygen "$T/k"
	chmod 640 "$T/k.key"
	run --separate-stderr mq-send -s "$T/k.key" "$Q" </dev/null
	assert_failure 78
	assert_equal "$stderr" "mq-send: $T/k.key: Secret key is readable by others (chmod 600)"
	assert_equal "$(ready_count)" 0
	chmod 600 "$T/k.key"
	run mq-send -q -s "$T/k.key" "$Q" </dev/null
	assert_success
	assert_equal "$(ready_count)" 1
}
