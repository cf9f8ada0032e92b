/*
 * mq-watch - consume a queue for as long as it runs: a handler per
 * message, up to N at once, or a stream of bodies on standard output.
 *
 * One poll loop waits on the queue's inotify descriptor, a signalfd and a
 * pidfd per running handler, with a timeout that is the earliest of: the
 * queue's next lease or delay end, a lease renewal due, a handler's
 * --timeout.  Nothing is ever polled in a loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-watch";

static const char usage[] =
    "mq-watch [-j N] [--drain] [--timeout DUR] [-0] [--verify PUB]...\n"
    "                [--key KEY] QUEUE [-- COMMAND [ARG...]]";

static const char help[] =
    "Receive every message of QUEUE as it arrives.  With COMMAND, run it\n"
    "once per message with the body on standard input: exit 0 acks, 100\n"
    "dead-letters, anything else retries after a growing backoff.\n"
    "Without COMMAND, write each body to standard output followed by a\n"
    "newline (-0: a NUL) and ack it.\n\n"
    "  -j, --jobs N        run up to N handlers at once (default 1)\n"
    "  -d, --drain         exit once no message is ready\n"
    "  -T, --timeout DUR   kill a handler running longer (TERM, then KILL)\n"
    "  -0, --null          end each streamed body with NUL\n"
    "      --verify PUB    handle only messages signed by PUB (a .pub file\n"
    "                      or a directory of them; repeatable)\n"
    "      --key KEY       secret key opening bodies sealed to it\n"
    "  -h, --help          show this help\n"
    "  -V, --version       show the version\n\n"
    "SIGTERM, SIGINT or SIGHUP: stop claiming, let handlers finish, exit 0.\n"
    "A second one kills the handlers and releases their messages.\n";

#define KILL_GRACE_NS (5 * 1000000000LL)

struct slot {
	struct mq_msg m;
	pid_t pid;
	int pidfd;
	int64_t started;
	int64_t renew_at;
	int64_t term_at;
	int64_t kill_at;
};

static const char *queue;
static int journal;
static unsigned lease;
static unsigned timeout_s;

/* One line per event; under systemd a priority prefix instead of a time.
 * The line goes out in one write: the handlers write to the same standard
 * error, and a line written in pieces could have theirs in the middle. */
static void
logline(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
logline(int prio, const char *fmt, ...)
{
	char line[PATH_MAX + 512], stamp[32];
	size_t len, room = sizeof(line) - 1;	/* the newline's place kept */
	struct tm tm;
	time_t t;
	va_list ap;
	int n;

	if (journal)
		n = snprintf(line, room, "<%d>%s: ", prio, queue);
	else {
		t = time(NULL);
		gmtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
		n = snprintf(line, room, "%s %s: %s: ", stamp, cli_prog,
		    queue);
	}
	len = n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
	va_start(ap, fmt);
	n = vsnprintf(line + len, room - len, fmt, ap);
	va_end(ap);
	len += n < 0 ? 0 : (size_t)n < room - len ? (size_t)n : room - len - 1;
	line[len++] = '\n';
	(void)!write(2, line, len);
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
notify(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (len = strlen(path)) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

static void
on_quarantine(const char *name, int err, void *arg)
{
	(void)arg;
	logline(3, "%s: %s: moved to quarantine", name, mq_strerror(err));
}

/* Start a handler; returns 0, or the exit status to stop with. */
static int
start(struct mq_queue *q, struct slot *s, char **cmd)
{
	int exec_err;
	pid_t pid;
	int64_t t = cli_now_ns(CLOCK_MONOTONIC);

	/* The slot stays free (pid 0) unless a handler runs in it: a failed
	 * start must not leave -1 there to be polled, waited for as "any
	 * child" and signalled as "every process". */
	pid = mq_handler_spawn(q, &s->m, cmd, 1, &s->pidfd, &exec_err);
	if (pid == -1) {
		int err = errno;
		mq_msg_close(&s->m);
		mq_unclaim(q, s->m.receipt);
		cli_warn(exec_err ? cmd[0] : queue, err);
		if (exec_err)
			return exec_err == ENOENT ? 127 : 126;
		return mq_exit_status(err);
	}
	s->pid = pid;
	s->started = t;
	s->renew_at = t + (int64_t)lease * 1000000000 / 3;
	s->term_at = timeout_s ? t + (int64_t)timeout_s * 1000000000 : 0;
	s->kill_at = 0;
	return 0;
}

/* Collect a handler that ended; returns its wait status. */
static int
reap(struct slot *s)
{
	int wstatus;

	while (waitpid(s->pid, &wstatus, 0) == -1 && errno == EINTR)
		;
	close(s->pidfd);
	s->pid = 0;
	return wstatus;
}

/* Settle the message of a handler that ended with wstatus. */
static void
finish(struct mq_queue *q, struct slot *s, const struct mq_config *cfg,
    int wstatus)
{
	double secs;
	int outcome, code;

	secs = (double)(cli_now_ns(CLOCK_MONOTONIC) - s->started) / 1e9;
	/* A handler that ran out of time failed, whatever it exited with. */
	if (s->kill_at != 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
		wstatus = 1 << 8;
	code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	outcome = mq_handler_settle(q, &s->m, wstatus,
	    mq_backoff(cfg, s->m.attempt));
	if (outcome == -1) {
		logline(3, "%s attempt %u: %s (%.3fs)", s->m.id, s->m.attempt,
		    mq_strerror(errno), secs);
		return;
	}
	char why[48];
	if (code == -1)
		snprintf(why, sizeof(why), "%s by signal %d",
		    s->kill_at ? "timed out, killed" : "killed",
		    WTERMSIG(wstatus));
	else if (s->kill_at != 0)
		snprintf(why, sizeof(why), "timed out");
	else
		snprintf(why, sizeof(why), "exit %d", code);
	if (outcome == MQ_ACKED)
		logline(6, "%s attempt %u: ok (%.3fs)", s->m.id, s->m.attempt,
		    secs);
	else if (outcome == MQ_DEADLETTERED)
		logline(3, "%s attempt %u: %s, dead (%.3fs)", s->m.id,
		    s->m.attempt, why, secs);
	else
		logline(4, "%s attempt %u: %s, retry in %us (%.3fs)", s->m.id,
		    s->m.attempt, why, mq_backoff(cfg, s->m.attempt), secs);
}

/* The separator after a streamed body; a standard output left
 * non-blocking is waited for, as the body's writes are. */
static int
write_sep(char sep)
{
	struct pollfd p = { 1, POLLOUT, 0 };
	ssize_t w;

	while ((w = write(1, &sep, 1)) == -1 && (errno == EINTR ||
	    (errno == EAGAIN && (poll(&p, 1, -1) != -1 || errno == EINTR))))
		;
	return w == 1 ? 0 : -1;
}

/* Where a streamed message's file is freed.  On a filesystem mounted
 * with discard, the last close of a deleted file waits for the device to
 * discard its blocks: half of a streamed message's time on this kind of
 * machine (perf: blkdev_issue_discard).  Streaming hands those closes to
 * CLOSERS threads and goes on, and since each takes a small share at a
 * time their discards overlap in the device (one thread: 0.63-0.67 s for
 * 10,000 messages; two: 0.45-0.49 s; four: 0.41-0.44 s).  At most
 * CLOSER_MAX descriptors wait, so a slow device cannot run the process
 * out of them.  The message was acked first: nothing depends on when its
 * descriptor goes. */
#define CLOSER_MAX 64
#define CLOSERS 4
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread[CLOSERS];
	int nthreads;
	int fd[CLOSER_MAX];
	int head, len, stop, state;	/* state: 0 none yet, 1 up, -1 failed */
} closer = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *
closer_main(void *arg)
{
	int fd[CLOSER_MAX / CLOSERS / 2], n, i;

	(void)arg;
	pthread_mutex_lock(&closer.mu);
	for (;;) {
		while (closer.len == 0 && !closer.stop)
			pthread_cond_wait(&closer.cv, &closer.mu);
		if (closer.len == 0)
			break;
		for (n = 0; closer.len > 0 && n < CLOSER_MAX / CLOSERS / 2;
		    n++, closer.len--) {
			fd[n] = closer.fd[closer.head];
			closer.head = (closer.head + 1) % CLOSER_MAX;
		}
		pthread_cond_broadcast(&closer.cv);
		pthread_mutex_unlock(&closer.mu);
		for (i = 0; i < n; i++)
			close(fd[i]);
		pthread_mutex_lock(&closer.mu);
	}
	pthread_mutex_unlock(&closer.mu);
	return NULL;
}

/* Have the closer threads close fd[0..n-1] (n at most CLOSER_MAX), or
 * close them here if there can be no such thread. */
static void
close_later(const int *fd, int n)
{
	int i;

	if (closer.state == 0) {
		while (closer.nthreads < CLOSERS &&
		    pthread_create(&closer.thread[closer.nthreads], NULL,
		    closer_main, NULL) == 0)
			closer.nthreads++;
		closer.state = closer.nthreads > 0 ? 1 : -1;
	}
	if (closer.state != 1) {
		for (i = 0; i < n; i++)
			close(fd[i]);
		return;
	}
	pthread_mutex_lock(&closer.mu);
	while (closer.len + n > CLOSER_MAX)
		pthread_cond_wait(&closer.cv, &closer.mu);
	for (i = 0; i < n; i++)
		closer.fd[(closer.head + closer.len++) % CLOSER_MAX] = fd[i];
	pthread_cond_broadcast(&closer.cv);
	pthread_mutex_unlock(&closer.mu);
}

/* Wait for the closes handed over. */
static void
closer_finish(void)
{
	int i;

	if (closer.state != 1)
		return;
	pthread_mutex_lock(&closer.mu);
	closer.stop = 1;
	pthread_cond_broadcast(&closer.cv);
	pthread_mutex_unlock(&closer.mu);
	for (i = 0; i < closer.nthreads; i++)
		pthread_join(closer.thread[i], NULL);
}

/* Stream mode: body and separator to stdout, then ack; the descriptor
 * stays open for close_later. */
static int
stream(struct mq_queue *q, struct mq_msg *m, char sep)
{
	int err;

	if (mq_msg_copy_body(q, m, 1) == -1 || write_sep(sep) == -1) {
		err = errno;
		mq_msg_close(m);
		mq_unclaim(q, m->receipt);
		cli_warn("stdout", err);
		return -1;
	}
	if (mq_msg_ack(q, m) == -1)
		cli_warn(m->receipt, errno);
	return 0;
}

/* Stream mode claims this many at a time: one directory sync for all of
 * them.  A reader too slow to take them within a third of their lease
 * gets the rest given back, to be claimed afresh, rather than written
 * after their leases ran out and another consumer took them too. */
#define STREAM_BATCH 32
_Static_assert(STREAM_BATCH <= CLOSER_MAX, "a batch fits the closer's queue");

static void
give_back(struct mq_queue *q, struct mq_msg *m, int from, int n)
{
	for (; from < n; from++) {
		mq_msg_close(&m[from]);
		mq_unclaim(q, m[from].receipt);
	}
}

/* Stream a batch: returns how many were claimed (0: none ready), or -1
 * with *status set; after a write error the rest are given back. */
static int
stream_batch(struct mq_queue *q, char sep, int *status)
{
	struct mq_msg m[STREAM_BATCH];
	int fd[STREAM_BATCH], n, i;
	int64_t give_back_at;

	if ((n = mq_claim_many(q, lease, 1, m, STREAM_BATCH)) == -1) {
		*status = mq_exit_status(errno);
		cli_warn(queue, errno);
		return -1;
	}
	give_back_at = cli_now_ns(CLOCK_MONOTONIC) +
	    (int64_t)lease * 1000000000 / 3;
	for (i = 0; i < n; i++) {
		if (i > 0 && cli_now_ns(CLOCK_MONOTONIC) >= give_back_at) {
			give_back(q, m, i, n);
			break;
		}
		if (stream(q, &m[i], sep) == -1) {
			close_later(fd, i);
			*status = 74;
			give_back(q, m, i + 1, n);
			return -1;
		}
		fd[i] = m[i].fd;
	}
	close_later(fd, i);
	return n;
}

/* A handler killed because mq-watch is stopping was not the message's
 * fault: give the message back without counting the delivery. */
static void
abandon(struct mq_queue *q, struct slot *s)
{
	mq_msg_close(&s->m);
	if (mq_unclaim(q, s->m.receipt) == -1)
		logline(3, "%s: %s", s->m.receipt, mq_strerror(errno));
	else
		logline(4, "%s attempt %u: killed on shutdown, released",
		    s->m.id, s->m.attempt);
}

/* Signal a handler and what it started: it leads a process group of its
 * own, and a child left running would go on with the work of a message
 * that is retried or given back meanwhile.  One that moved to another
 * group is signalled alone. */
static void
kill_handler(pid_t pid, int sig)
{
	kill(getpgid(pid) == pid ? -pid : pid, sig);
}

static int64_t
earliest(int64_t a, int64_t b)
{
	return b != 0 && (a == 0 || b < a) ? b : a;
}

static void
on_timers(struct mq_queue *q, struct slot *s, int64_t t)
{
	if (t >= s->renew_at) {
		if (mq_msg_extend(q, &s->m, lease) == -1)
			logline(4, "%s: lease: %s", s->m.id, mq_strerror(errno));
		s->renew_at = t + (int64_t)lease * 1000000000 / 3;
	}
	if (s->term_at != 0 && t >= s->term_at) {
		kill_handler(s->pid, SIGTERM);
		s->term_at = 0;
		s->kill_at = t + KILL_GRACE_NS;
	}
	if (s->kill_at != 0 && t >= s->kill_at) {
		kill_handler(s->pid, SIGKILL);
		/* Again in a second rather than at once, round and round,
		 * for one stuck where a kill must wait (a hung NFS mount). */
		s->kill_at = t + 1000000000;
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "drain", no_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "null", no_argument, NULL, '0' },
		{ "verify", required_argument, NULL, 'P' },
		{ "key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct mq_queue *q;
	struct mq_waiter *w;
	struct mq_config cfg;
	struct pollfd *pfd;
	struct slot *slots;
	struct mq_msg m;
	sigset_t sigs;
	char **cmd = NULL, *end, sep = '\n';
	unsigned long jobs = 1;
	int c, i, n, sfd, ms, rc, drain = 0, stopping = 0, killing = 0;
	int running, claimed, status = 0, err, ws;
	int64_t t, next;
	const char *verify[32], *key = NULL;
	int nverify = 0;

	cli_std_fds();
	while ((c = getopt_long(argc, argv, "+j:dT:0hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			errno = 0;
			jobs = strtoul(optarg, &end, 10);
			if (errno != 0 || *optarg < '1' || *optarg > '9' ||
			    *end != '\0' || jobs > 1024) {
				cli_warnx(NULL, "-j: invalid count: %s", optarg);
				return 64;
			}
			break;
		case 'd':
			drain = 1;
			break;
		case 'T':
			if ((timeout_s = cli_duration("--timeout", optarg)) == 0) {
				cli_warnx(NULL, "--timeout: must be at least 1s");
				return 64;
			}
			break;
		case '0':
			sep = '\0';
			break;
		case 'P':
			if (nverify == 32) {
				cli_warnx(NULL, "--verify: at most 32");
				return 64;
			}
			verify[nverify++] = optarg;
			break;
		case 'K':
			key = optarg;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (optind == argc)
		cli_usage(usage);
	queue = argv[optind++];
	if (optind < argc) {
		if (strcmp(argv[optind], "--") != 0 || optind + 1 == argc)
			cli_usage(usage);
		cmd = argv + optind + 1;
	} else
		jobs = 1;
	journal = getenv("JOURNAL_STREAM") != NULL;
	signal(SIGPIPE, SIG_IGN);
	/* Ignored SIGCHLD is inherited across exec, and with it the kernel
	 * reaps each handler itself: waitpid would find no status to settle
	 * its message by. */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) == -1 ||
	    (sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) == -1) {
		cli_warn(NULL, errno);
		return 71;
	}
	if ((q = mq_open(queue)) == NULL || mq_config(q, &cfg) == -1 ||
	    (w = mq_waiter_new(q)) == NULL) {
		err = errno;
		cli_warn(queue, err);
		mq_close(q);
		return mq_exit_status(err);
	}
	mq_set_quarantine_hook(q, on_quarantine, NULL);
	if ((status = cli_load_keys(q, verify, nverify, key)) != 0) {
		mq_waiter_free(w);
		mq_close(q);
		return status;
	}
	lease = cfg.lease_s;
	slots = calloc(jobs, sizeof(*slots));
	pfd = calloc(jobs + 2, sizeof(*pfd));
	if (slots == NULL || pfd == NULL) {
		cli_warn(NULL, errno);
		return 71;
	}
	notify("READY=1");
	for (;;) {
		running = 0;
		for (i = 0; i < (int)jobs; i++)
			running += slots[i].pid != 0;
		claimed = 0;
		if (!stopping && mq_waiter_arm(w) == -1) {
			err = errno;
			cli_warn(queue, err);
			status = mq_exit_status(err);
			break;
		}
		while (!stopping && running < (int)jobs) {
			if (cmd == NULL) {
				if ((rc = stream_batch(q, sep, &status)) == -1)
					stopping = 1;
				claimed = rc > 0;
				break;
			}
			if ((rc = mq_claim(q, lease, 1, &m)) == -1) {
				err = errno;
				cli_warn(queue, err);
				status = mq_exit_status(err);
				stopping = 1;
				break;
			}
			if (rc == 0)
				break;
			claimed = 1;
			for (i = 0; slots[i].pid != 0; i++)
				;
			slots[i].m = m;
			if ((status = start(q, &slots[i], cmd)) != 0) {
				stopping = 1;
				break;
			}
			running++;
		}
		if (running == 0 && (stopping || (drain && !claimed)))
			break;
		ms = -1;
		/* A stream goes on with its next batch at once, but only
		 * after a look at the signals: a steady backlog must not
		 * hold off a stop. */
		if (claimed && cmd == NULL)
			ms = 0;
		else if (!stopping && !drain) {
			if (mq_waiter_timeout(w, -1, &ms) == -1) {
				err = errno;
				cli_warn(queue, err);
				status = mq_exit_status(err);
				stopping = 1;
				continue;
			}
			if (ms == 0)
				continue;
		}
		t = cli_now_ns(CLOCK_MONOTONIC);
		next = 0;
		for (i = 0; i < (int)jobs; i++)
			if (slots[i].pid != 0)
				next = earliest(earliest(earliest(next,
				    slots[i].renew_at), slots[i].term_at),
				    slots[i].kill_at);
		if (next != 0) {
			int64_t until = next > t ? (next - t) / 1000000 + 1 : 0;
			if (ms < 0 || until < ms)
				ms = (int)until;
		}
		n = 0;
		pfd[n].fd = sfd;
		pfd[n++].events = POLLIN;
		pfd[n].fd = stopping || drain ? -1 : mq_waiter_fd(w);
		pfd[n++].events = POLLIN;
		for (i = 0; i < (int)jobs; i++) {
			pfd[n].fd = slots[i].pid != 0 ? slots[i].pidfd : -1;
			pfd[n++].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)n, ms) == -1 && errno != EINTR) {
			err = errno;
			cli_warn(NULL, err);
			status = 71;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (!stopping) {
					stopping = 1;
					logline(5, "signal %u: finishing %d "
					    "handler(s)", si.ssi_signo, running);
				} else if (!killing) {
					killing = 1;
					for (i = 0; i < (int)jobs; i++)
						if (slots[i].pid != 0)
							kill_handler(slots[i].pid,
							    SIGKILL);
				}
			}
		}
		t = cli_now_ns(CLOCK_MONOTONIC);
		for (i = 0; i < (int)jobs; i++) {
			if (slots[i].pid == 0)
				continue;
			if (pfd[2 + i].revents & (POLLIN | POLLHUP)) {
				/* One that ended by itself before the
				 * second signal reached it is settled by
				 * how it ended: it is not running. */
				ws = reap(&slots[i]);
				if (killing && WIFSIGNALED(ws) &&
				    WTERMSIG(ws) == SIGKILL)
					abandon(q, &slots[i]);
				else
					finish(q, &slots[i], &cfg, ws);
			} else
				on_timers(q, &slots[i], t);
		}
	}
	notify("STOPPING=1");
	closer_finish();
	mq_waiter_free(w);
	mq_close(q);
	free(slots);
	free(pfd);
	close(sfd);
	return cli_flush(status);
}
