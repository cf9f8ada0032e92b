/*
 * childfail - LD_PRELOAD shim: a call fails in every process but the one
 * the program started as, as when a limit or a fault meets a child that
 * the parent did not meet.  CHILDFAIL names the call:
 *
 *   fork    fork(2) fails with EAGAIN, as when a second fork meets a limit
 *           on processes (RLIMIT_NPROC, a cgroup's pids.max);
 *   pread   every pread(2) after a process's first fails with EIO, as a
 *           disk that fails part way through a file.
 *
 * The program's own calls succeed; its children's do not.
 *
 * Build: cc -shared -fPIC -o childfail.so childfail.c -ldl
 * Use:   CHILDFAIL=fork LD_PRELOAD=./childfail.so mq-recv QUEUE -- COMMAND
 * (Under ASan set ASAN_OPTIONS=verify_asan_link_order=0.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static pid_t first;

__attribute__((constructor)) static void
init(void)
{
	first = getpid();
}

static int
failing(const char *call)
{
	const char *which = getenv("CHILDFAIL");

	return getpid() != first && which != NULL && strcmp(which, call) == 0;
}

pid_t
fork(void)
{
	static pid_t (*real)(void);

	if (failing("fork")) {
		errno = EAGAIN;
		return -1;
	}
	if (real == NULL)
		real = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	return real();
}

static ssize_t
pread_or_fail(const char *name, int fd, void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, void *, size_t, off_t);
	static pid_t calls_of;
	static int calls;

	if (calls_of != getpid()) {
		calls_of = getpid();
		calls = 0;
	}
	if (failing("pread") && ++calls > 1) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT,
		    name);
	return real(fd, buf, n, off);
}

ssize_t
pread(int fd, void *buf, size_t n, off_t off)
{
	return pread_or_fail("pread", fd, buf, n, off);
}

ssize_t
pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread_or_fail("pread64", fd, buf, n, off);
}
