/*
 * mq-recv - receive the oldest message: pop it, lease it, or hand it to a
 * command.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-recv";

static const char usage[] =
    "mq-recv [-H] [-w | -t SECS] [-L DUR] [-o FILE] [--verify PUB]...\n"
    "               [--key KEY] QUEUE [-- COMMAND [ARG...]]";

static const char help[] =
    "Receive the oldest ready message of QUEUE.\n\n"
    "Without -L or COMMAND the body is written to standard output (or FILE)\n"
    "and the message removed.  With -L it stays claimed for DUR until\n"
    "mq-ack; the receipt is printed (on standard error when the body goes\n"
    "to standard output).  With COMMAND, the body is COMMAND's standard\n"
    "input; exit 0 acks, 100 dead-letters, anything else releases it.\n\n"
    "  -w, --wait          wait for a message\n"
    "  -t, --timeout SECS  wait at most SECS seconds\n"
    "  -L, --lease DUR     claim for DUR instead of removing\n"
    "  -o, --output FILE   write the body to FILE, synced to disk\n"
    "  -H, --headers       print the headers, a blank line, then the body\n"
    "      --verify PUB    deliver only messages signed by PUB (a .pub file\n"
    "                      or a directory of them; repeatable)\n"
    "      --key KEY       secret key opening bodies sealed to it\n"
    "  -h, --help          show this help\n"
    "  -V, --version       show the version\n\n"
    "Exit 1 when no message is ready (after waiting, with -w or -t).\n";

static const char *queue;

static void
on_quarantine(const char *name, int err, void *arg)
{
	(void)arg;
	cli_warnx(queue, "%s: %s: moved to quarantine", name, mq_strerror(err));
}

static int keeper = -1;

/* The last close of an inotify descriptor waits until the kernel has
 * retired its watches, an SRCU grace period shared with every inotify
 * user of the machine (0.5-20 ms measured), and the last close of an
 * acked message frees its blocks, which waits for the device where the
 * filesystem discards (0.1 ms for 1 KiB, 0.2 s for 1 GiB here): costs
 * our exit would pay before the caller sees the message.  Before we
 * wait, a child takes a copy of the inotify descriptor and later
 * receives the acked message's; it holds them until our end of the
 * socket closes with our exit, then pays those closes, unseen.  Forking
 * while idle keeps the fork itself off the wake-up's path. */
static void
start_keeper(struct mq_waiter *w)
{
	int ifd = mq_waiter_fd(w), sv[2], lo, hi;
	char c;
	pid_t pid;

	if (ifd == -1 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv) == -1)
		return;
	if ((pid = fork()) == 0) {
		/* Our output among them: the reader must not wait for us. */
		lo = ifd < sv[0] ? ifd : sv[0];
		hi = ifd < sv[0] ? sv[0] : ifd;
		if (lo > 0)
			close_range(0, (unsigned)lo - 1, 0);
		if (hi > lo + 1)
			close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		close_range((unsigned)hi + 1, ~0U, 0);
		for (;;) {
			char ctl[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { &c, 1 };
			struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
			ssize_t r = recvmsg(sv[0], &mh, 0);

			if (r > 0 || (r == -1 && errno == EINTR))
				continue;
			_exit(0);
		}
	}
	close(sv[0]);
	if (pid == -1)
		close(sv[1]);
	else
		keeper = sv[1];
}

/* Give the keeper a descriptor to close after our exit; a failure only
 * leaves the close to us. */
static void
keep(int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 }, c = 0;
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	if (keeper == -1 || fd == -1)
		return;
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	while (sendmsg(keeper, &mh, MSG_NOSIGNAL) == -1 && errno == EINTR)
		;
}

/* Claim a message, waiting as asked.  Returns 1, 0 (none), or -1.  The
 * waiter is handed back to be freed after the message is dealt with. */
static int
claim(struct mq_queue *q, int wait_ms, unsigned lease, int keep_lock,
    struct mq_msg *m, struct mq_waiter **wp)
{
	struct mq_waiter *w;
	struct timespec start, now;
	int rc, left = wait_ms, waited = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	/* A message that is ready needs no watches set up and torn down. */
	if ((rc = mq_claim(q, lease, keep_lock, m)) != 0 || wait_ms == 0)
		return rc;
	if ((w = mq_waiter_new(q)) == NULL)
		return -1;
	*wp = w;
	for (;;) {
		if (mq_waiter_arm(w) == -1)
			return -1;
		if ((rc = mq_claim(q, lease, keep_lock, m)) != 0)
			return rc;
		if (wait_ms > 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = wait_ms - (int)((now.tv_sec - start.tv_sec) * 1000 +
			    (now.tv_nsec - start.tv_nsec) / 1000000);
			if (left <= 0)
				return 0;
		}
		if (!waited++)
			start_keeper(w);
		if (mq_waiter_wait(w, left) == -1 && errno != EINTR)
			return -1;
	}
}

static void
print_headers(const struct mq_msg *m)
{
	char name[80], value[MQ_HEADER_MAX];
	size_t it = 0;

	while (mq_msg_header_next(m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1)
		printf("%s: %s\n", name, value);
	putchar('\n');
}

static int
write_body(struct mq_queue *q, struct mq_msg *m, const char *out)
{
	int fd = 1, rc, err;

	if (out != NULL && (fd = open(out, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0666)) == -1) {
		cli_warn(out, errno);
		return -1;
	}
	/* The message goes once the body is in FILE: a power cut must not
	 * lose both. */
	rc = out != NULL ? mq_msg_save_body(q, m, fd, out) :
	    mq_msg_copy_body(q, m, fd);
	err = errno;
	if (fd != 1 && close(fd) == -1 && rc == 0) {
		rc = -1;
		err = errno;
	}
	if (rc == -1)
		cli_warn(out != NULL ? out : "stdout", err);
	errno = err;
	return rc;
}

static int
run(struct mq_queue *q, struct mq_msg *m, char **argv, unsigned lease)
{
	int pidfd, exec_err, wstatus, code, err;
	pid_t pid;

	fflush(stdout);
	pid = mq_handler_spawn(q, m, argv, 0, &pidfd, &exec_err);
	if (pid == -1) {
		err = errno;
		mq_msg_close(m);
		mq_unclaim(q, m->receipt);
		cli_warn(exec_err ? argv[0] : queue, err);
		return exec_err == ENOENT ? 127 : exec_err ? 126 : mq_exit_status(err);
	}
	if (mq_handler_wait(q, m, pid, pidfd, lease, &wstatus) == -1) {
		err = errno;
		cli_warn(queue, err);
		return mq_exit_status(err);
	}
	code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
	switch (mq_handler_settle(q, m, wstatus, 0)) {
	case MQ_ACKED:
		return 0;
	case MQ_DEADLETTERED:
		cli_warnx(queue, "%s: handler %s; moved to dead", m->id,
		    code == MQ_EXIT_PERMANENT ? "failed permanently" :
		    "failed its last attempt");
		return code == MQ_EXIT_PERMANENT ? 65 : 75;
	case MQ_RETRIED:
		if (code == -1)
			cli_warnx(queue, "%s: handler killed by signal %d; "
			    "released", m->id, WTERMSIG(wstatus));
		else
			cli_warnx(queue, "%s: handler exited %d; released",
			    m->id, code);
		return 75;
	default:
		err = errno;
		cli_warn(err == MQ_ESTALE ? m->receipt : queue, err);
		return err == MQ_ESTALE ? 75 : mq_exit_status(err);
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "lease", required_argument, NULL, 'L' },
		{ "output", required_argument, NULL, 'o' },
		{ "headers", no_argument, NULL, 'H' },
		{ "verify", required_argument, NULL, 'P' },
		{ "key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct mq_queue *q;
	struct mq_waiter *w = NULL;
	struct mq_config cfg;
	struct mq_msg m;
	const char *out = NULL;
	unsigned lease = 0, secs;
	int c, rc, err, wait_ms = 0, have_wait = 0, leased;
	char **cmd = NULL;
	const char *verify[32], *key = NULL;
	int nverify = 0, headers = 0, status;

	while ((c = getopt_long(argc, argv, "+wt:L:o:HhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (have_wait)
				cli_usage(usage);
			have_wait = 1;
			wait_ms = -1;
			break;
		case 't':
			if (have_wait)
				cli_usage(usage);
			have_wait = 1;
			secs = cli_duration("-t", optarg);
			if (secs > 2000000) {
				cli_warnx(NULL, "-t: too long: %s", optarg);
				return 64;
			}
			wait_ms = (int)secs * 1000;
			break;
		case 'L':
			if ((lease = cli_duration("-L", optarg)) == 0) {
				cli_warnx(NULL, "-L: must be at least 1s");
				return 64;
			}
			break;
		case 'o':
			out = optarg;
			break;
		case 'H':
			headers = 1;
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
		if (strcmp(argv[optind], "--") != 0 || optind + 1 == argc ||
		    out != NULL)
			cli_usage(usage);
		cmd = argv + optind + 1;
		/* An ignored SIGCHLD, inherited across exec, would have the
		 * kernel reap the handler, and the body's decoder, before
		 * waitpid saw how they ended. */
		signal(SIGCHLD, SIG_DFL);
	}
	signal(SIGPIPE, SIG_IGN);
	if ((q = mq_open(queue)) == NULL) {
		err = errno;
		cli_warn(queue, err);
		return mq_exit_status(err);
	}
	mq_set_quarantine_hook(q, on_quarantine, NULL);
	if ((status = cli_load_keys(q, verify, nverify, key)) != 0)
		goto out;
	leased = lease != 0 && cmd == NULL;
	if (lease == 0) {
		if (mq_config(q, &cfg) == -1) {
			err = errno;
			cli_warn(queue, err);
			status = mq_exit_status(err);
			goto out;
		}
		lease = cfg.lease_s;
	}
	rc = claim(q, wait_ms, lease, !leased, &m, &w);
	if (rc == -1) {
		err = errno;
		cli_warn(queue, err);
		status = mq_exit_status(err);
		goto out;
	}
	if (rc == 0) {
		status = cli_flush(1);
		goto out;
	}
	if (cmd != NULL) {
		status = cli_flush(run(q, &m, cmd, lease));
		goto out;
	}
	if (headers) {
		print_headers(&m);
		fflush(stdout);
	}
	if (write_body(q, &m, out) == -1) {
		mq_msg_close(&m);
		if (mq_unclaim(q, m.receipt) == -1)
			cli_warn(m.receipt, errno);
		status = 74;
		goto out;
	}
	if (out == NULL && fflush(stdout) == EOF) {
		err = errno;
		cli_warn("stdout", err);
		mq_msg_close(&m);
		if (mq_unclaim(q, m.receipt) == -1)
			cli_warn(m.receipt, errno);
		status = 74;
		goto out;
	}
	if (leased) {
		mq_msg_close(&m);
		if (out != NULL)
			printf("%s\n", m.receipt);
		else
			fprintf(stderr, "%s\n", m.receipt);
		status = cli_flush(0);
		goto out;
	}
	if (mq_msg_ack(q, &m) == -1) {
		err = errno;
		cli_warn(m.receipt, err);
		mq_msg_close(&m);
		status = mq_exit_status(err);
		goto out;
	}
	keep(m.fd);
	mq_msg_close(&m);
	status = cli_flush(0);
out:
	mq_waiter_free(w);
	mq_close(q);
	return status;
}
