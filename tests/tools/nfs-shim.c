/*
 * nfs-shim.c - an LD_PRELOAD library that makes a local filesystem answer
 * the way an NFS client does, for tests/scenario-nfs.bats.
 *
 * This kernel has no NFS client, so its failure modes are reproduced at
 * the system call boundary instead.  Over NFS a request whose reply was
 * lost is sent again, and the server, which already did it, answers the
 * retransmission as if it were new: a RENAME says ENOENT (the source is
 * gone), a LINK says EEXIST (the target is there), a REMOVE says ENOENT.
 * NFS has no RENAME_NOREPLACE, flock() is emulated with byte-range locks
 * (so an exclusive one needs a descriptor open for writing), and a server
 * may keep times to the second only.  Each failure is injected only after
 * the real call succeeded, so nothing the caller could not survive on a
 * real mount is invented.  Every mode is off unless its variable is set:
 *
 *   NFS_SHIM_NOREPLACE=1      renameat2() with flags fails with EINVAL
 *   NFS_SHIM_RENAME_ENOENT=N  every Nth successful rename reports ENOENT
 *   NFS_SHIM_LINK_EEXIST=N    every Nth successful link reports EEXIST
 *   NFS_SHIM_UNLINK_ENOENT=N  every Nth successful unlink reports ENOENT
 *   NFS_SHIM_FLOCK=1          flock(LOCK_EX) on a descriptor not open for
 *                             writing, or LOCK_SH on one not open for
 *                             reading, fails with EBADF
 *   NFS_SHIM_MTIME=S          stat() times truncated to multiples of S s
 *   NFS_SHIM_LATENCY_US=U     every rename, link, unlink and byte-range
 *                             lock call answers U microseconds after it
 *                             was done, as a reply from the server comes
 *                             a round trip later
 *   NFS_SHIM_LOG=FILE         one line appended per injected failure
 *
 * Counting is per process: N=1 fails every call, N=3 every third.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long rename_calls, link_calls, unlink_calls;

static long
every(const char *var)
{
	const char *v = getenv(var);

	return v != NULL ? strtol(v, NULL, 10) : 0;
}

/* True when this is the Nth call counted in *calls. */
static int
due(const char *var, long *calls)
{
	long n = every(var);

	return n > 0 && ++*calls % n == 0;
}

static void
note(const char *what, const char *name)
{
	const char *path = getenv("NFS_SHIM_LOG");
	char line[512];
	int fd, len;

	if (path == NULL)
		return;
	len = snprintf(line, sizeof(line), "%ld %s %s\n", (long)getpid(), what,
	    name != NULL ? name : "-");
	if (len < 0 || (size_t)len >= sizeof(line))
		len = (int)sizeof(line) - 1;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return;
	if (write(fd, line, (size_t)len) == -1)
		(void)0;
	close(fd);
}

static void *
real(const char *sym)
{
	void *p = dlsym(RTLD_NEXT, sym);

	if (p == NULL) {
		fprintf(stderr, "nfs-shim: %s: %s\n", sym, dlerror());
		abort();
	}
	return p;
}

static void
round_trip(void)
{
	long us = every("NFS_SHIM_LATENCY_US");
	struct timespec ts;

	if (us <= 0)
		return;
	ts.tv_sec = us / 1000000;
	ts.tv_nsec = us % 1000000 * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The reply to a call that returned rc: late, and for every Nth call
 * that succeeded, the error a retransmission would get. */
static int
lie(int rc, const char *var, long *calls, int err, const char *what,
    const char *name)
{
	int saved = errno;

	round_trip();
	errno = saved;
	if (rc != 0 || !due(var, calls))
		return rc;
	note(what, name);
	errno = err;
	return -1;
}

int
renameat2(int ofd, const char *from, int nfd, const char *to,
    unsigned int flags)
{
	static int (*f)(int, const char *, int, const char *, unsigned int);

	if (f == NULL)
		f = real("renameat2");
	if (flags != 0 && every("NFS_SHIM_NOREPLACE") > 0) {
		note("noreplace-einval", to);
		errno = EINVAL;
		return -1;
	}
	return lie(f(ofd, from, nfd, to, flags), "NFS_SHIM_RENAME_ENOENT",
	    &rename_calls, ENOENT, "rename-enoent", to);
}

int
renameat(int ofd, const char *from, int nfd, const char *to)
{
	static int (*f)(int, const char *, int, const char *);

	if (f == NULL)
		f = real("renameat");
	return lie(f(ofd, from, nfd, to), "NFS_SHIM_RENAME_ENOENT",
	    &rename_calls, ENOENT, "rename-enoent", to);
}

int
rename(const char *from, const char *to)
{
	static int (*f)(const char *, const char *);

	if (f == NULL)
		f = real("rename");
	return lie(f(from, to), "NFS_SHIM_RENAME_ENOENT", &rename_calls,
	    ENOENT, "rename-enoent", to);
}

int
linkat(int ofd, const char *from, int nfd, const char *to, int flags)
{
	static int (*f)(int, const char *, int, const char *, int);

	if (f == NULL)
		f = real("linkat");
	return lie(f(ofd, from, nfd, to, flags), "NFS_SHIM_LINK_EEXIST",
	    &link_calls, EEXIST, "link-eexist", to);
}

int
link(const char *from, const char *to)
{
	static int (*f)(const char *, const char *);

	if (f == NULL)
		f = real("link");
	return lie(f(from, to), "NFS_SHIM_LINK_EEXIST", &link_calls, EEXIST,
	    "link-eexist", to);
}

int
unlinkat(int dfd, const char *name, int flags)
{
	static int (*f)(int, const char *, int);

	if (f == NULL)
		f = real("unlinkat");
	return lie(f(dfd, name, flags), "NFS_SHIM_UNLINK_ENOENT",
	    &unlink_calls, ENOENT, "unlink-enoent", name);
}

int
unlink(const char *name)
{
	static int (*f)(const char *);

	if (f == NULL)
		f = real("unlink");
	return lie(f(name), "NFS_SHIM_UNLINK_ENOENT", &unlink_calls, ENOENT,
	    "unlink-enoent", name);
}

int
flock(int fd, int op)
{
	static int (*f)(int, int);
	int mode;

	if (f == NULL)
		f = real("flock");
	if (every("NFS_SHIM_FLOCK") > 0 && (mode = fcntl(fd, F_GETFL)) != -1) {
		mode &= O_ACCMODE;
		if (((op & LOCK_EX) && mode == O_RDONLY) ||
		    ((op & LOCK_SH) && mode == O_WRONLY)) {
			note("flock-ebadf", "-");
			errno = EBADF;
			return -1;
		}
	}
	return f(fd, op);
}

/* Testing and taking a lock are each a request to the server (NLM or
 * NFSv4), so another client can come in between the two. */
static int
lock_cmd(int cmd)
{
	return cmd == F_GETLK || cmd == F_SETLK || cmd == F_SETLKW ||
	    cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW;
}

static int
late_fcntl(int (*f)(int, int, ...), int fd, int cmd, void *arg)
{
	int rc, saved;

	rc = f(fd, cmd, arg);
	if (lock_cmd(cmd)) {
		saved = errno;
		round_trip();
		errno = saved;
	}
	return rc;
}

int
fcntl(int fd, int cmd, ...)
{
	static int (*f)(int, int, ...);
	va_list ap;
	void *arg;

	if (f == NULL)
		f = real("fcntl");
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return late_fcntl(f, fd, cmd, arg);
}

int
fcntl64(int fd, int cmd, ...)
{
	static int (*f)(int, int, ...);
	va_list ap;
	void *arg;

	if (f == NULL)
		f = real("fcntl64");
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return late_fcntl(f, fd, cmd, arg);
}

static void
coarse(struct timespec *t, long gran)
{
	t->tv_sec -= t->tv_sec % gran;
	t->tv_nsec = 0;
}

static void
coarse_stat(int rc, struct stat *st)
{
	long gran = every("NFS_SHIM_MTIME");

	if (rc != 0 || gran <= 0)
		return;
	coarse(&st->st_atim, gran);
	coarse(&st->st_mtim, gran);
	coarse(&st->st_ctim, gran);
}

static void
coarse_stat64(int rc, struct stat64 *st)
{
	long gran = every("NFS_SHIM_MTIME");

	if (rc != 0 || gran <= 0)
		return;
	coarse(&st->st_atim, gran);
	coarse(&st->st_mtim, gran);
	coarse(&st->st_ctim, gran);
}

static void
coarse_statx(int rc, struct statx *stx)
{
	long gran = every("NFS_SHIM_MTIME");
	struct statx_timestamp *t[] = {
		&stx->stx_atime, &stx->stx_mtime, &stx->stx_ctime
	};
	size_t i;

	if (rc != 0 || gran <= 0)
		return;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		t[i]->tv_sec -= t[i]->tv_sec % gran;
		t[i]->tv_nsec = 0;
	}
}

#define STAT_WRAPPER(name, args, call, fix)				\
int									\
name args								\
{									\
	static int (*f) args;						\
	int rc;								\
									\
	if (f == NULL)							\
		f = real(#name);					\
	rc = f call;							\
	fix(rc, st);							\
	return rc;							\
}

STAT_WRAPPER(stat, (const char *path, struct stat *st), (path, st),
    coarse_stat)
STAT_WRAPPER(lstat, (const char *path, struct stat *st), (path, st),
    coarse_stat)
STAT_WRAPPER(fstat, (int fd, struct stat *st), (fd, st), coarse_stat)
STAT_WRAPPER(fstatat, (int dfd, const char *path, struct stat *st, int fl),
    (dfd, path, st, fl), coarse_stat)
STAT_WRAPPER(stat64, (const char *path, struct stat64 *st), (path, st),
    coarse_stat64)
STAT_WRAPPER(lstat64, (const char *path, struct stat64 *st), (path, st),
    coarse_stat64)
STAT_WRAPPER(fstat64, (int fd, struct stat64 *st), (fd, st), coarse_stat64)
STAT_WRAPPER(fstatat64, (int dfd, const char *path, struct stat64 *st,
    int fl), (dfd, path, st, fl), coarse_stat64)

int
statx(int dfd, const char *path, int flags, unsigned int mask,
    struct statx *stx)
{
	static int (*f)(int, const char *, int, unsigned int, struct statx *);
	int rc;

	if (f == NULL)
		f = real("statx");
	rc = f(dfd, path, flags, mask, stx);
	coarse_statx(rc, stx);
	return rc;
}
