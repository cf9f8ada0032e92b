/*
 * floor.c - the cheapest durable one-message send a C program can do:
 * the yardstick for mq-send in goal 2 of issue 7.
 *
 * It reads FILE as mq-send reads its operand, then does the six system
 * calls of the maildir protocol and nothing else: open (exclusive create
 * in TMPDIR), write, fsync, close, rename into DESTDIR, fsync of DESTDIR
 * (opened and closed for it, as any program without a cached directory
 * descriptor must).  Same process start-up as mq-send (dynamically linked
 * against libc only), so the difference between the two is what mq adds.
 *
 * usage: floor TMPDIR DESTDIR FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char body[1 << 20];

static void
die(const char *what)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	exit(74);
}

int
main(int argc, char *argv[])
{
	char tmp[4096], dest[4096];
	struct timespec ts;
	ssize_t n, len = 0;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: floor TMPDIR DESTDIR FILE\n");
		return 64;
	}
	if ((fd = open(argv[3], O_RDONLY | O_CLOEXEC)) == -1)
		die(argv[3]);
	while ((n = read(fd, body + len, sizeof(body) - (size_t)len)) > 0)
		len += n;
	if (n == -1)
		die(argv[3]);
	close(fd);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(tmp, sizeof(tmp), "%s/%ld.%lld.%ld", argv[1], (long)getpid(),
	    (long long)ts.tv_sec, ts.tv_nsec);
	snprintf(dest, sizeof(dest), "%s/%ld.%lld.%ld", argv[2], (long)getpid(),
	    (long long)ts.tv_sec, ts.tv_nsec);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1)
		die(tmp);
	if (write(fd, body, (size_t)len) != len || fsync(fd) == -1 ||
	    close(fd) == -1)
		die(tmp);
	if (rename(tmp, dest) == -1)
		die(dest);
	if ((fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1)
		die(argv[2]);
	close(fd);
	return 0;
}
