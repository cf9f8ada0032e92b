/*
 * shortwrite - LD_PRELOAD shim: every write(2) moves at most one byte,
 * as a kernel may for a pipe, a socket, a full disk or a signal, so that
 * a program's write loops are exercised on every call; so does
 * sendfile(2), which copies a large body to a pipe.  With
 * SHORTWRITE_PWRITE=1, pwrite(2) does the same.
 *
 * Build: cc -shared -fPIC -o shortwrite.so shortwrite.c -ldl
 * Use:   LD_PRELOAD=./shortwrite.so mq-send QUEUE FILE
 * (Under ASan set ASAN_OPTIONS=verify_asan_link_order=0.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);

static size_t
limit(size_t n)
{
	return n > 1 ? 1 : n;
}

static int
pwrite_too(void)
{
	const char *v = getenv("SHORTWRITE_PWRITE");

	return v != NULL && *v == '1';
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	static write_fn real;

	if (real == NULL)
		real = (write_fn)dlsym(RTLD_NEXT, "write");
	return real(fd, buf, limit(n));
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static pwrite_fn real;

	if (real == NULL)
		real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
	return real(fd, buf, pwrite_too() ? limit(n) : n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	static pwrite_fn real;

	if (real == NULL)
		real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
	return real(fd, buf, pwrite_too() ? limit(n) : n, off);
}

ssize_t
sendfile(int out, int in, off_t *off, size_t n)
{
	static sendfile_fn real;

	if (real == NULL)
		real = (sendfile_fn)dlsym(RTLD_NEXT, "sendfile");
	return real(out, in, off, limit(n));
}

ssize_t
sendfile64(int out, int in, off_t *off, size_t n)
{
	static sendfile_fn real;

	if (real == NULL)
		real = (sendfile_fn)dlsym(RTLD_NEXT, "sendfile64");
	return real(out, in, off, limit(n));
}
