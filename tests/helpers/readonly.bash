# Shared by the tests that run programs as a user who may only read a
# queue (mq-stat, mq-ls).

# A read-only user, for the tests that need one: a group, a user in it
# and a directory others may search, all removed by ro_cleanup.
ro_setup() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to create a user"
	command -v useradd >/dev/null || skip "no useradd"
	command -v setpriv >/dev/null || skip "no setpriv"
	RO_USER="mqro$$"
	RO_GROUP="mqrog$$"
	echo "$RO_USER $RO_GROUP" >"$BATS_TEST_TMPDIR/ro.made"
	groupadd "$RO_GROUP"
	useradd -M -N -g "$RO_GROUP" -s /bin/sh "$RO_USER"
	RO_DIR=$(mktemp -d /tmp/mq-ro.XXXXXX)
	echo "$RO_DIR" >>"$BATS_TEST_TMPDIR/ro.made"
	chmod 755 "$RO_DIR"
}

ro_cleanup() {
	local f="$BATS_TEST_TMPDIR/ro.made" u g d
	[ -f "$f" ] || return 0
	{ read -r u g; read -r d || true; } <"$f"
	userdel "$u" 2>/dev/null || true
	groupdel "$g" 2>/dev/null || true
	[ -n "${d:-}" ] && [[ $d == /tmp/mq-ro.* ]] && rm -rf "$d"
	rm -f "$f"
}

# Run a command as the read-only user.
as_ro() {
	setpriv --reuid "$RO_USER" --regid "$RO_GROUP" --init-groups \
	    env PATH="$PATH" MQ_ROOT="$MQ_ROOT" ASAN_OPTIONS="$ASAN_OPTIONS" \
	    UBSAN_OPTIONS="$UBSAN_OPTIONS" "$@"
}

# Every path of a tree with its size, mode, mtime and ctime.
tree_snapshot() {
	find "$1" -printf '%p %y %s %m %g %T@ %C@\n' | sort
}
