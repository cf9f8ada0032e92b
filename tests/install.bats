#!/usr/bin/env bats
load helpers/common

setup() { setup_mq; }

@test "install: DESTDIR round trip, and a C program builds against libmq" {
	command -v pkg-config >/dev/null || skip "pkg-config not installed"
	d="$BATS_TEST_TMPDIR/dest"
	run make -C "$top" -s install DESTDIR="$d" PREFIX=/usr
	assert_success
	for p in "$top"/cmd/mq-*.c; do
		p=${p##*/}
		p=${p%.c}
		assert [ -x "$d/usr/bin/$p" ]
		assert [ -f "$d/usr/share/man/man1/$p.1" ]
	done
	assert [ -f "$d/usr/share/man/man5/mq-queue.5" ]
	assert [ -f "$d/usr/include/mq.h" ]
	assert [ -L "$d/usr/lib/libmq.so.0" ]
	assert [ -f "$d/usr/lib/libmq.a" ]
	cat > "$BATS_TEST_TMPDIR/hello.c" <<'C'
#include <stdio.h>
#include <mq.h>

int
main(int argc, char *argv[])
{
	struct mq_queue *q;
	struct mq_draft *d;
	struct mq_msg m;

	(void)argc;
	if ((q = mq_open(argv[1])) == NULL || (d = mq_draft_new(q, NULL)) == NULL ||
	    mq_draft_write(d, "from C", 6) == -1 || mq_commit(q, &d, 1) != 1)
		return 1;
	mq_draft_free(d);
	if (mq_claim(q, 0, 1, &m) != 1 || mq_msg_copy_body(q, &m, 1) == -1 ||
	    mq_msg_ack(q, &m) == -1)
		return 2;
	mq_msg_close(&m);
	mq_close(q);
	return 0;
}
C
	export PKG_CONFIG_PATH="$d/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$d"
	run sh -c "cc -o '$BATS_TEST_TMPDIR/hello' '$BATS_TEST_TMPDIR/hello.c' \$(pkg-config --cflags --libs mq)"
	assert_success
	LD_LIBRARY_PATH="$d/usr/lib" run "$BATS_TEST_TMPDIR/hello" "$Q"
	assert_success
	assert_output "from C"
	run make -C "$top" -s uninstall DESTDIR="$d" PREFIX=/usr
	assert_success
	run find "$d" -type f -o -type l
	assert_output ""
}
