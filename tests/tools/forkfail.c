/*
 * forkfail - LD_PRELOAD shim: fork(2) fails with EAGAIN in every process
 * but the one the program started as, as when a second fork meets a
 * limit on processes (RLIMIT_NPROC, a cgroup's pids.max) that the first
 * did not.  The program's own forks succeed; its children's do not.
 *
 * Build: cc -shared -fPIC -o forkfail.so forkfail.c -ldl
 * Use:   LD_PRELOAD=./forkfail.so mq-recv QUEUE -- COMMAND
 * (Under ASan set ASAN_OPTIONS=verify_asan_link_order=0.)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

static pid_t first;

__attribute__((constructor)) static void
init(void)
{
	first = getpid();
}

pid_t
fork(void)
{
	static pid_t (*real)(void);

	if (getpid() != first) {
		errno = EAGAIN;
		return -1;
	}
	if (real == NULL)
		real = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	return real();
}
