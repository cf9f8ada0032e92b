/*
 * exec.c - running a handler for a claimed message.
 *
 * The handler gets the body on its standard input through a descriptor of
 * its own (so it does not share, and cannot drop, the claim's lock) and
 * the message's identity in MQ_QUEUE, MQ_ID, MQ_RECEIPT and MQ_ATTEMPT.
 * posix_spawn reports an exec that failed, so a missing program is
 * reported as such rather than counted as the message's failure.  While
 * the handler runs its lease is renewed, so a slow handler never loses
 * its message to another consumer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mq_impl.h"

static int
pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The caller's environment without the variables a handler gets from its
 * message, which may be left from a message the caller itself handles. */
static int
inherited(const char *e)
{
	static const char *const ours[] = {
		"MQ_QUEUE=", "MQ_ID=", "MQ_RECEIPT=", "MQ_ATTEMPT="
	};
	size_t i;

	if (strncmp(e, "MQ_H_", 5) == 0 && strchr(e, '=') != NULL)
		return 0;
	for (i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strncmp(e, ours[i], strlen(ours[i])) == 0)
			return 0;
	return 1;
}

/* The handler's environment: the caller's, then MQ_QUEUE, MQ_ID,
 * MQ_RECEIPT, MQ_ATTEMPT and each header NAME as MQ_H_NAME (upper case,
 * '-' as '_').  It is built here because the child of posix_spawn shares
 * our memory until it execs and must not call setenv.  One allocation:
 * the pointers, then the strings they point to; the message's strings are
 * bounded (id, receipt) or measured first (headers). */
static char **
handler_env(struct mq_queue *q, const struct mq_msg *m)
{
	extern char **environ;
	char name[80], value[MQ_HEADER_MAX], **env, *p;
	size_t n = 0, nhdr = 0, it = 0, size, k = 0, i;

	/* Sizes first, so that every sprintf below has the room it needs. */
	size = strlen(q->path) + sizeof(m->id) + sizeof(m->receipt) + 64;
	while (mq_msg_header_next(m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1) {
		size += strlen(name) + strlen(value) + 7;
		nhdr++;
	}
	for (i = 0; environ[i] != NULL; i++)
		n++;
	n += 4 + nhdr + 1;
	if ((env = malloc(n * sizeof(*env) + size)) == NULL)
		return NULL;
	for (i = 0; environ[i] != NULL; i++)
		if (inherited(environ[i]))
			env[k++] = environ[i];
	p = (char *)(env + n);
	env[k++] = p;
	p += sprintf(p, "MQ_QUEUE=%s", q->path) + 1;
	env[k++] = p;
	p += sprintf(p, "MQ_ID=%s", m->id) + 1;
	env[k++] = p;
	p += sprintf(p, "MQ_RECEIPT=%s", m->receipt) + 1;
	env[k++] = p;
	p += sprintf(p, "MQ_ATTEMPT=%u", m->attempt) + 1;
	it = 0;
	while (mq_msg_header_next(m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1) {
		for (i = 0; name[i] != '\0'; i++)
			name[i] = name[i] == '-' ? '_' :
			    (name[i] >= 'a' && name[i] <= 'z') ?
			    (char)(name[i] - 'a' + 'A') : name[i];
		env[k++] = p;
		p += sprintf(p, "MQ_H_%s=%s", name, value) + 1;
	}
	env[k] = NULL;
	return env;
}

/* posix_spawn: the child shares our memory until it execs (vfork), so
 * no page tables are copied for it (measured: a handler starts ~50 us
 * sooner than after fork), and an exec that fails is reported by the call
 * itself.  glibc's child leaves its two internal signals (32 and 33)
 * ignored, which the handler inherits: no program sees those. */
static int
spawn(pid_t *pid, char *const argv[], int body, int own_group, char **env)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, pipe;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	char **sh;
	size_t n;
	int rc;

	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	sigemptyset(&none);
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	if (own_group)
		flags |= POSIX_SPAWN_SETPGROUP;
	if ((rc = posix_spawn_file_actions_adddup2(&fa, body, 0)) == 0 &&
	    (rc = posix_spawnattr_setflags(&at, flags)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&at, &pipe)) == 0 &&
	    (rc = posix_spawnattr_setpgroup(&at, 0)) == 0)
		rc = posix_spawnp(pid, argv[0], &fa, &at, argv, env);
	/* execvp(3) runs a file without "#!" with /bin/sh; posix_spawnp
	 * does not, so a shell finds the command and does it. */
	if (rc == ENOEXEC) {
		for (n = 0; argv[n] != NULL; n++)
			;
		if ((sh = malloc((n + 4) * sizeof(*sh))) == NULL)
			rc = errno;
		else {
			sh[0] = "sh";
			sh[1] = "-c";
			sh[2] = "exec \"$0\" \"$@\"";
			memcpy(sh + 3, argv, (n + 1) * sizeof(*sh));
			rc = posix_spawn(pid, "/bin/sh", &fa, &at, sh, env);
			free(sh);
		}
	}
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return rc;
}

pid_t
mq_handler_spawn(struct mq_queue *q, struct mq_msg *m,
    char *const argv[], int own_group, int *pidfd, int *exec_err)
{
	char **env;
	int body, rc, saved;
	pid_t pid;

	*exec_err = 0;
	if ((body = mq_msg_body_fd(q, m)) == -1)
		return -1;
	if ((env = handler_env(q, m)) == NULL) {
		saved = errno;
		close(body);
		errno = saved;
		return -1;
	}
	rc = spawn(&pid, argv, body, own_group, env);
	free(env);
	close(body);
	if (rc != 0) {
		*exec_err = rc;
		errno = rc;
		return -1;
	}
	if ((*pidfd = pidfd_open_(pid)) == -1) {
		saved = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		errno = saved;
		return -1;
	}
	return pid;
}

int
mq_handler_wait(struct mq_queue *q, struct mq_msg *m, pid_t pid, int pidfd,
    unsigned lease_s, int *wstatus)
{
	struct pollfd p = { pidfd, POLLIN, 0 };
	int ms, rc;

	for (;;) {
		/* Renew at a third of the lease, leaving two thirds of
		 * margin for a busy machine. */
		ms = (int)(lease_s * 1000 / 3);
		if (ms < 100)
			ms = 100;
		rc = poll(&p, 1, ms);
		if (rc == -1 && errno != EINTR)
			return -1;
		if (rc > 0)
			break;
		if (rc == 0)
			mq_msg_extend(q, m, lease_s);
	}
	while (waitpid(pid, wstatus, 0) == -1)
		if (errno != EINTR)
			return -1;
	close(pidfd);
	return 0;
}

int
mq_handler_settle(struct mq_queue *q, struct mq_msg *m, int wstatus,
    unsigned retry_delay_s)
{
	int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	int dead = 0, feed_err = 0;

	/* Read before the close below: the report is in the pipe already
	 * when a handler that read to the end of its body exits. */
	if (code == 0 && mq_msg_feed_failed(m)) {
		feed_err = errno;
		code = -1;
	}
	if (code == 0) {
		int rc = mq_msg_ack(q, m);
		mq_msg_close(m);
		return rc == -1 ? -1 : MQ_ACKED;
	}
	mq_msg_close(m);
	if (code == MQ_EXIT_PERMANENT)
		return mq_fail(q, m->receipt) == -1 ? -1 : MQ_DEADLETTERED;
	if (mq_retry(q, m->receipt, retry_delay_s, &dead) == -1)
		return -1;
	if (feed_err != 0) {
		errno = feed_err;
		return -1;
	}
	return dead ? MQ_DEADLETTERED : MQ_RETRIED;
}

unsigned
mq_backoff(const struct mq_config *c, unsigned attempt)
{
	unsigned long long d = c->backoff_s;

	if (attempt > 1)
		d <<= attempt - 1 > 12 ? 12 : attempt - 1;
	return d > 3600 ? 3600 : (unsigned)d;
}
