/*
 * mq-send - enqueue messages: a whole input, each line, or each record.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-send";

static const char usage[] =
    "mq-send [-qz] [-l | -0] [-H NAME=VALUE]... [-s KEY] [--seal-to PUB]\n"
    "               [-p N] [-g GROUP] [-k KEY] [-d DUR | --at TIME]\n"
    "               [--ttl DUR] QUEUE [FILE...]";

static const char help[] =
    "Send each FILE (\"-\" is standard input; none: standard input) as one\n"
    "message, and print each new message's id.\n\n"
    "  -l, --lines    each line is a message (the newline is not part of it)\n"
    "  -0, --null     each NUL-terminated record is a message\n"
    "  -q, --quiet    do not print ids\n"
    "  -H, --header NAME=VALUE  attach a header (repeatable)\n"
    "  -z, --compress compress the body (zlib deflate)\n"
    "  -s, --sign KEY sign with secret key file KEY (see mq-keygen)\n"
    "      --seal-to PUB  encrypt the body to public key file PUB\n"
    "  -p, --priority N   0 to 9, higher first (default 0)\n"
    "  -g, --group GROUP  handle one message of GROUP at a time, in order\n"
    "  -k, --key KEY      idempotency key: a repeat within the queue's\n"
    "                     dedup window is not sent; the first id is printed\n"
    "  -d, --delay DUR    deliver no sooner than DUR from now\n"
    "      --at TIME      deliver no sooner than TIME (epoch seconds or\n"
    "                     ISO 8601, e.g. 2026-12-24T18:00:00Z)\n"
    "      --ttl DUR      expire if not received within DUR\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n\n"
    "A message is on disk (synced) before its id is printed.\n";

/* Messages committed together with -l or -0: one wait for the disk, and
 * one sync of each bucket they enter, for the whole group.  A group ends
 * at GROUP_MAX messages or GROUP_BYTES of them, GROUP_NS after its first
 * message, when the input would block, or at the end of the input: large
 * enough that the syncs take a quarter of a batch's time rather than the
 * third they took in groups of 256 (measured beside the same sends with
 * the syncs made no-ops), small enough that a slow input still sees its
 * messages out within a tenth of a second.  Each message
 * but the newest is parked once written, so a group holds two
 * descriptors at most and about 5 KiB of memory a message.
 *
 * A group that ends full while more input waits is committed by a thread
 * of its own, on a queue handle of its own, while the next group is
 * written: the disk's wait overlaps the next files' creation.  One group
 * is committed at a time, in order, and each prints its ids once it is
 * durable, so the ids still come out in order and only for messages on
 * disk.  A group cut by a pause or the end of the input is committed at
 * once, after the one in flight: nothing would overlap it. */
#define GROUP_MAX 1024
#define GROUP_BYTES (16 << 20)
#define GROUP_NS 100000000

#define HEADERS_MAX 64

struct sender {
	struct mq_queue *q;
	struct mq_send_opts opts;
	const char *queue;
	int quiet;
	struct mq_draft *group[GROUP_MAX];
	size_t n;
	size_t bytes;		/* of the group's messages */
	int64_t first_ns;	/* when its first message was taken */
	int records;		/* -l or -0 */
	int stdout_failed;	/* errno of a failed flush of ids, or 0 */
	/* The group in flight, committed by thread on committer. */
	struct mq_queue *committer;
	pthread_t thread;
	int in_flight;
	struct mq_draft *flight[GROUP_MAX];
	size_t flight_n;
	int flight_err;		/* 0, or the errno its commit failed with */
};

/* Commit n drafts through q, print the ids of those that are durable and
 * free them all.  Returns 0, or the errno the commit failed with; the ids
 * of what it sent are flushed all the same, and a failure to print them
 * is left in stdout_failed. */
static int
commit_drafts(struct sender *s, struct mq_queue *q, struct mq_draft **d,
    size_t n)
{
	size_t done, i;
	int err = 0;

	done = mq_commit(q, d, n);
	if (done < n)
		err = errno;
	for (i = 0; i < n; i++) {
		if (i < done && !s->quiet)
			puts(mq_draft_id(d[i]));
		mq_draft_free(d[i]);
	}
	/* The messages are sent; only their ids could not be told. */
	if (done > 0 && !s->quiet && fflush(stdout) == EOF)
		s->stdout_failed = errno;
	return err;
}

/* Say what failed, the commit (err) or the printing of its ids, or both:
 * -1 with errno, or 0 when neither did. */
static int
told(struct sender *s, int err)
{
	if (err != 0)
		cli_warn(s->queue, err);
	if (s->stdout_failed != 0)
		cli_warn("stdout", s->stdout_failed);
	if (err == 0 && s->stdout_failed == 0)
		return 0;
	errno = err != 0 ? err : EIO;
	return -1;
}

static void *
commit_flight(void *arg)
{
	struct sender *s = arg;

	s->flight_err = commit_drafts(s, s->committer, s->flight, s->flight_n);
	return NULL;
}

/* Wait for the group in flight; -1 with errno if it failed (said). */
static int
land(struct sender *s)
{
	if (!s->in_flight)
		return 0;
	pthread_join(s->thread, NULL);
	s->in_flight = 0;
	return told(s, s->flight_err);
}

/* The group is done: the next one takes ids of its own (a commit skips
 * the ids its group took and left unused), about as many as this one
 * needed, so that the lines of a slow input, a group each, do not each
 * begin a bucket. */
static void
next_group(struct sender *s)
{
	if (s->records)
		mq_send_ahead(s->q, s->n < GROUP_MAX / 2 ? 2 * s->n : GROUP_MAX);
	s->n = 0;
	s->bytes = 0;
}

static int
commit(struct sender *s)
{
	int err;

	if (land(s) == -1) {
		while (s->n > 0)
			mq_draft_free(s->group[--s->n]);
		return -1;
	}
	if (s->n == 0)
		return 0;
	err = commit_drafts(s, s->q, s->group, s->n);
	next_group(s);
	return told(s, err);
}

/* Hand a full group to a thread, after the one in flight, and go on. */
static int
commit_behind(struct sender *s)
{
	int rc;

	if (land(s) == -1)
		return -1;
	if (s->committer == NULL && (s->committer = mq_open(s->queue)) == NULL)
		return commit(s);
	if (mq_draft_park(s->group[s->n - 1]) == -1) {
		cli_warn(s->queue, errno);
		return -1;
	}
	memcpy(s->flight, s->group, s->n * sizeof(s->group[0]));
	s->flight_n = s->n;
	if ((rc = pthread_create(&s->thread, NULL, commit_flight, s)) != 0)
		return commit(s);
	s->in_flight = 1;
	next_group(s);
	return 0;
}

/* The status of a failure that may be the input's: a FILE that is a
 * directory opens, and only its read fails. */
static int
input_status(int err)
{
	return err == EISDIR ? 66 : mq_exit_status(err);
}

static int
send_whole(struct sender *s, int fd, const char *name)
{
	struct mq_draft *d;
	int err, input_failed;

	if ((d = mq_draft_new(s->q, &s->opts)) == NULL) {
		err = errno;
		cli_warn(s->queue, err);
		return mq_exit_status(err);
	}
	if (mq_draft_copy(d, fd, &input_failed) == -1) {
		err = errno;
		mq_draft_free(d);
		/* An input too large for the queue is the input's fault. */
		cli_warn(input_failed || err == MQ_ETOOBIG ? name : s->queue,
		    err);
		return input_status(err);
	}
	s->group[s->n++] = d;
	return commit(s) == -1 ? mq_exit_status(errno) : 0;
}

/* The seconds a time in nanoseconds since the epoch can hold either way:
 * from 1677 to 2262. */
#define TIME_MAX_S (INT64_MAX / 1000000000)

/* --at: seconds since the epoch, or ISO 8601 date and time with an
 * optional Z or +HH:MM (local time without one). */
static int64_t
parse_time(const char *s)
{
	struct tm tm;
	const char *rest;
	char *end;
	long long secs;
	int sign, hh, mm;
	time_t t;

	errno = 0;
	secs = strtoll(s, &end, 10);
	memset(&tm, 0, sizeof(tm));
	if (*s >= '0' && *s <= '9' && *end == '\0')
		t = errno != 0 || secs > TIME_MAX_S ? TIME_MAX_S + 1 :
		    (time_t)secs;
	else if ((rest = strptime(s, "%Y-%m-%dT%H:%M", &tm)) == NULL &&
	    (rest = strptime(s, "%Y-%m-%d %H:%M", &tm)) == NULL)
		goto bad;
	else if (*rest == ':' && (rest = strptime(rest, ":%S", &tm)) == NULL)
		goto bad;
	else if (*rest == '\0') {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	} else if (strcmp(rest, "Z") == 0)
		t = timegm(&tm);
	else if ((*rest == '+' || *rest == '-') &&
	    sscanf(rest + 1, "%2d:%2d", &hh, &mm) == 2 && strlen(rest) == 6) {
		sign = *rest == '+' ? -1 : 1;
		t = timegm(&tm) + sign * (hh * 3600 + mm * 60);
	} else
		goto bad;
	/* Beyond, the due time would wrap round, into the past for a time
	 * after 2262: the message would be delivered at once. */
	if (t > TIME_MAX_S || t < -TIME_MAX_S) {
		cli_warnx(NULL, "--at: out of range (1677 to 2262): %s", s);
		exit(64);
	}
	return (int64_t)t * 1000000000;
bad:
	cli_warnx(NULL, "--at: not a time (epoch seconds or ISO 8601): %s", s);
	exit(64);
}

/* True when a read of fd would block: commit what we have first, so a
 * slow producer's lines are not held back. */
static int
input_idle(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, 0) == 0;
}

/* Take a finished record's draft into the group; 1 when the group is
 * full and must be committed. */
static int
add(struct sender *s, struct mq_draft *d)
{
	int64_t now = cli_now_ns(CLOCK_MONOTONIC);

	if (s->n == 0)
		s->first_ns = now;
	s->group[s->n++] = d;
	return s->n == GROUP_MAX || s->bytes >= GROUP_BYTES ||
	    now - s->first_ns >= GROUP_NS;
}

static int
send_records(struct sender *s, int fd, const char *name, char delim)
{
	char buf[64 * 1024];
	struct mq_draft *d = NULL;
	ssize_t r;
	size_t len;
	char *p, *end, *hit;
	const char *what;
	int err, full;

	for (;;) {
		if (s->n > 0 && input_idle(fd) && commit(s) == -1)
			goto fail_errno;
		r = read(fd, buf, sizeof(buf));
		if (r == -1) {
			if (errno == EINTR)
				continue;
			err = errno;
			what = name;
			goto fail;
		}
		if (r == 0)
			break;
		for (p = buf, end = buf + r; p < end; p = hit + 1) {
			if (d == NULL && (d = mq_draft_new(s->q, &s->opts)) == NULL)
				goto fail_queue;
			hit = memchr(p, delim, (size_t)(end - p));
			len = (size_t)((hit ? hit : end) - p);
			if (mq_draft_write(d, p, len) == -1)
				goto fail_queue;
			s->bytes += len;
			if (hit == NULL)
				break;
			/* The newest message keeps its descriptor, so that
			 * a group of one, a slow input's line, is synced by
			 * itself rather than with the whole filesystem. */
			if (s->n > 0 && mq_draft_park(s->group[s->n - 1]) == -1)
				goto fail_queue;
			full = add(s, d);
			d = NULL;
			if (full && commit_behind(s) == -1)
				goto fail_errno;
		}
	}
	if (d != NULL) {
		add(s, d);
		d = NULL;
	}
	return commit(s) == -1 ? mq_exit_status(errno) : 0;
fail_queue:
	err = errno;
	what = s->queue;
fail:
	mq_draft_free(d);
	while (s->n > 0)
		mq_draft_free(s->group[--s->n]);
	/* The group in flight was read before this failure: its ids come
	 * out first, and if its commit failed, the batch stopped there. */
	if (land(s) == -1 && s->flight_err != 0)
		return mq_exit_status(s->flight_err);
	if (what != NULL)
		cli_warn(what, err);
	return input_status(err);
fail_errno:
	/* Said already, by the commit that failed. */
	err = errno;
	what = NULL;
	goto fail;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "lines", no_argument, NULL, 'l' },
		{ "null", no_argument, NULL, '0' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "header", required_argument, NULL, 'H' },
		{ "compress", no_argument, NULL, 'z' },
		{ "sign", required_argument, NULL, 's' },
		{ "seal-to", required_argument, NULL, 'S' },
		{ "priority", required_argument, NULL, 'p' },
		{ "group", required_argument, NULL, 'g' },
		{ "key", required_argument, NULL, 'k' },
		{ "delay", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 'A' },
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct sender s;
	static char out[BUFSIZ];
	static const char *headers[HEADERS_MAX + 1];
	static struct mq_key sign_key;
	static struct mq_pubkey seal_key;
	size_t nheaders = 0;
	char delim = 0;
	int c, i, fd, rc, status = 0, records = 0;
	const char *name;

	while ((c = getopt_long(argc, argv, "+l0qH:zs:p:g:k:d:hV", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'l':
		case '0':
			if (records && delim != (c == 'l' ? '\n' : '\0'))
				cli_usage(usage);
			records = 1;
			delim = c == 'l' ? '\n' : '\0';
			break;
		case 'q':
			s.quiet = 1;
			break;
		case 'H':
			if (nheaders == HEADERS_MAX) {
				cli_warnx(NULL, "-H: at most %d headers",
				    HEADERS_MAX);
				return 64;
			}
			if (strchr(optarg, '=') == NULL) {
				cli_warnx(NULL, "-H: expected NAME=VALUE: %s",
				    optarg);
				return 64;
			}
			headers[nheaders++] = optarg;
			s.opts.headers = headers;
			break;
		case 'z':
			s.opts.compress = MQ_COMPRESS_YES;
			break;
		case 'p':
			if (optarg[0] < '0' || optarg[0] > '9' ||
			    optarg[1] != '\0') {
				cli_warnx(NULL, "-p: priority must be 0 to 9: %s",
				    optarg);
				return 64;
			}
			s.opts.priority = optarg[0] - '0';
			break;
		case 'g':
			s.opts.group = optarg;
			break;
		case 'k':
			if (*optarg == '\0') {
				cli_warnx(NULL, "-k: empty key");
				return 64;
			}
			s.opts.dedup_key = optarg;
			break;
		case 'd':
		case 'A':
			if (s.opts.not_before_ns != 0)
				cli_usage(usage);
			s.opts.not_before_ns = c == 'd' ?
			    cli_now_ns(CLOCK_REALTIME) +
			    (int64_t)cli_duration("-d", optarg) * 1000000000 :
			    parse_time(optarg);
			break;
		case 't':
			if ((s.opts.ttl_s = cli_duration("--ttl", optarg)) == 0) {
				cli_warnx(NULL, "--ttl: must be at least 1s");
				return 64;
			}
			break;
		case 's':
			if (mq_key_load(optarg, &sign_key) == -1) {
				int err = errno;
				cli_warn(optarg, err);
				return mq_exit_status(err);
			}
			s.opts.sign = &sign_key;
			break;
		case 'S':
			if (mq_pubkey_load(optarg, &seal_key) == -1) {
				int err = errno;
				cli_warn(optarg, err);
				return mq_exit_status(err);
			}
			s.opts.seal_to = &seal_key;
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
	/* One key names one message. */
	if (s.opts.dedup_key != NULL && (records || argc - optind > 2))
		cli_usage(usage);
	/* Ids are flushed after each commit anyway: a buffer of our own
	 * spares stdio the allocation and the fstat of standard output. */
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	s.queue = argv[optind++];
	if ((s.q = mq_open(s.queue)) == NULL) {
		int err = errno;
		cli_warn(s.queue, err);
		return mq_exit_status(err);
	}
	s.records = records;
	if (records)
		mq_send_ahead(s.q, GROUP_MAX);
	for (i = optind; i < argc || i == optind; i++) {
		if (i == argc || strcmp(argv[i], "-") == 0) {
			fd = 0;
			name = "stdin";
		} else {
			name = argv[i];
			fd = open(name, O_RDONLY | O_CLOEXEC);
			if (fd == -1) {
				cli_warn(name, errno);
				if (status == 0)
					status = errno == EACCES ? 77 : 66;
				continue;
			}
		}
		rc = records ? send_records(&s, fd, name, delim) :
		    send_whole(&s, fd, name);
		if (fd != 0)
			close(fd);
		if (rc != 0 && status == 0)
			status = rc;
		if (i == argc)
			break;
	}
	/* No mq_close: the exit closes the queue's descriptors anyway. */
	return s.stdout_failed ? status : cli_flush(status);
}
