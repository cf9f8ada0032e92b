/*
 * exec.c - running a handler for a claimed message.
 *
 * The handler gets the body on its standard input through a descriptor of
 * its own (so it does not share, and cannot drop, the claim's lock) and
 * the message's identity in MQ_QUEUE, MQ_ID, MQ_RECEIPT and MQ_ATTEMPT.
 * A pipe closed on exec tells the parent whether exec itself failed, so a
 * missing program is reported as such rather than counted as the
 * message's failure.  While the handler runs its lease is renewed, so a
 * slow handler never loses its message to another consumer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

/* Header NAME becomes MQ_H_NAME: upper case, '-' as '_'.  Variables of
 * that form inherited from the caller (a handler that itself receives)
 * are removed first, so a handler sees only its own message's. */
static int
export_headers(const struct mq_msg *m)
{
	extern char **environ;
	char name[80], value[MQ_HEADER_MAX], var[96];
	size_t it = 0, i;
	char **e;

	for (e = environ; *e != NULL;) {
		if (strncmp(*e, "MQ_H_", 5) == 0 && strchr(*e, '=') != NULL) {
			snprintf(var, sizeof(var), "%.*s",
			    (int)(strchr(*e, '=') - *e), *e);
			unsetenv(var);
			e = environ;
		} else
			e++;
	}

	while (mq_msg_header_next(m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1) {
		for (i = 0; name[i] != '\0'; i++)
			name[i] = name[i] == '-' ? '_' :
			    (name[i] >= 'a' && name[i] <= 'z') ?
			    (char)(name[i] - 'a' + 'A') : name[i];
		snprintf(var, sizeof(var), "MQ_H_%s", name);
		if (setenv(var, value, 1) == -1)
			return -1;
	}
	return 0;
}

pid_t
mq_handler_spawn(struct mq_queue *q, const struct mq_msg *m,
    char *const argv[], int own_group, int *pidfd, int *exec_err)
{
	char attempt[16];
	int body, p[2], err = 0, saved;
	ssize_t r;
	pid_t pid;

	*exec_err = 0;
	if ((body = mq_msg_body_fd(q, m)) == -1)
		return -1;
	if (pipe2(p, O_CLOEXEC) == -1) {
		saved = errno;
		close(body);
		errno = saved;
		return -1;
	}
	snprintf(attempt, sizeof(attempt), "%u", m->attempt);
	if ((pid = fork()) == -1) {
		saved = errno;
		close(body);
		close(p[0]);
		close(p[1]);
		errno = saved;
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		if ((own_group && setpgid(0, 0) == -1) || dup2(body, 0) == -1 ||
		    setenv("MQ_QUEUE", q->path, 1) == -1 ||
		    setenv("MQ_ID", m->id, 1) == -1 ||
		    setenv("MQ_RECEIPT", m->receipt, 1) == -1 ||
		    setenv("MQ_ATTEMPT", attempt, 1) == -1 ||
		    export_headers(m) == -1)
			err = errno;
		else {
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGPIPE, SIG_DFL);
			execvp(argv[0], argv);
			err = errno;
		}
		r = write(p[1], &err, sizeof(err));
		(void)r;
		_exit(127);
	}
	close(body);
	close(p[1]);
	do
		r = read(p[0], &err, sizeof(err));
	while (r == -1 && errno == EINTR);
	close(p[0]);
	if (r == (ssize_t)sizeof(err)) {
		*exec_err = err;
		waitpid(pid, NULL, 0);
		errno = err;
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
	int dead = 0;

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
