/*
 * eintr - LD_PRELOAD shim: read(2) and write(2) fail with EINTR, having
 * done nothing, on about one call in three (as when a signal with a
 * handler arrives while a slow read or write waits), so that a program's
 * retry loops are exercised; so does sendfile(2), which copies a large
 * body to a pipe.  The sequence is random but repeatable:
 * EINTR_SEED (default 1) seeds it.  With EINTR_PWRITE=1, pwrite(2) and
 * pread(2) are interrupted too.
 *
 * Build: cc -shared -fPIC -o eintr.so eintr.c -ldl
 * Use:   LD_PRELOAD=./eintr.so EINTR_SEED=7 mq-send QUEUE FILE
 * (Under ASan set ASAN_OPTIONS=verify_asan_link_order=0.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static unsigned long state;

/* One call in three, from a small LCG of our own: rand() would share
 * (and disturb) the program's state. */
static int
interrupt(void)
{
	const char *seed;

	if (state == 0) {
		seed = getenv("EINTR_SEED");
		state = (seed != NULL ? strtoul(seed, NULL, 10) : 1) * 2654435761UL + 1;
	}
	state = state * 6364136223846793005UL + 1442695040888963407UL;
	if ((state >> 33) % 3 == 0) {
		errno = EINTR;
		return 1;
	}
	return 0;
}

static int
positional_too(void)
{
	const char *v = getenv("EINTR_PWRITE");

	return v != NULL && *v == '1';
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*sendfile_fn)(int, int, off_t *, size_t);

#define REAL(type, name) \
	static type real; \
	if (real == NULL) \
		real = (type)dlsym(RTLD_NEXT, name)

ssize_t
write(int fd, const void *buf, size_t n)
{
	REAL(write_fn, "write");
	return interrupt() ? -1 : real(fd, buf, n);
}

ssize_t
read(int fd, void *buf, size_t n)
{
	REAL(read_fn, "read");
	return interrupt() ? -1 : real(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite_fn, "pwrite");
	return positional_too() && interrupt() ? -1 : real(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	REAL(pwrite_fn, "pwrite64");
	return positional_too() && interrupt() ? -1 : real(fd, buf, n, off);
}

ssize_t
pread(int fd, void *buf, size_t n, off_t off)
{
	REAL(pread_fn, "pread");
	return positional_too() && interrupt() ? -1 : real(fd, buf, n, off);
}

ssize_t
pread64(int fd, void *buf, size_t n, off_t off)
{
	REAL(pread_fn, "pread64");
	return positional_too() && interrupt() ? -1 : real(fd, buf, n, off);
}

ssize_t
sendfile(int out, int in, off_t *off, size_t n)
{
	REAL(sendfile_fn, "sendfile");
	return interrupt() ? -1 : real(out, in, off, n);
}

ssize_t
sendfile64(int out, int in, off_t *off, size_t n)
{
	REAL(sendfile_fn, "sendfile64");
	return interrupt() ? -1 : real(out, in, off, n);
}
