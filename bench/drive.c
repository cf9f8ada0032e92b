/*
 * drive.c - the in-process half of mq's benchmark (bench/run.sh).
 *
 * One program, one subcommand per measurement that needs more than a
 * process start: filling and churning queues, draining through the C
 * API, the bare no-fsync baseline of a batch send, wake-up latency of a
 * blocked consumer, producers and consumers in parallel, the codec costs
 * of issue 4, and a minimal Redis client for the Redis peers.  It links
 * libmq.a statically and defines fsync, fdatasync, sync_file_range and
 * renameat2 itself, so that libmq's calls come here: with -S (no sync)
 * the three syncs are no-ops, which builds deep queues quickly and shows
 * what a send costs without the disk; renameat2 records the instant the
 * message became visible, from which the wake-up is timed ("the no-fsync
 * part, timed from the rename").  Timings are CLOCK_MONOTONIC, which
 * every process on the machine shares.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"

extern char **environ;

static int nosync;
static int64_t rename_ns;
static const char *failed_step = "-";	/* of the last try_send that failed */

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
fsync(int fd)
{
	return nosync ? 0 : (int)syscall(SYS_fsync, fd);
}

int
fdatasync(int fd)
{
	return nosync ? 0 : (int)syscall(SYS_fdatasync, fd);
}

int
sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
	return nosync ? 0 : (int)syscall(SYS_sync_file_range, fd, off, n, flags);
}

int
renameat2(int ofd, const char *from, int nfd, const char *to,
    unsigned int flags)
{
	int rc = (int)syscall(SYS_renameat2, ofd, from, nfd, to, flags);

	rename_ns = mono_ns();
	return rc;
}

static void
die(const char *what)
{
	fprintf(stderr, "drive: %s: %s\n", what, mq_strerror(errno));
	exit(1);
}

static void
dief(const char *what)
{
	fprintf(stderr, "drive: %s\n", what);
	exit(1);
}

/* A 1 KiB-style body: printable, varied, not very compressible. */
static void
fill_random(char *buf, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = (char)(' ' + (seed >> 16) % 94);
	}
}

/* A log-like body that compresses as text does. */
static void
fill_text(char *buf, size_t n)
{
	static const char *words[] = { "GET", "POST", "/api/v1/orders",
	    "/static/app.js", "200", "404", "user=", "alice", "bob", "ms=",
	    "12", "347", "ok", "retry", "host=web-3", "\n" };
	unsigned seed = 7;
	size_t i = 0, k;

	while (i < n) {
		const char *w;
		seed = seed * 1103515245 + 12345;
		w = words[(seed >> 16) % 16];
		for (k = 0; w[k] != '\0' && i < n; k++)
			buf[i++] = w[k];
		if (i < n)
			buf[i++] = ' ';
	}
}

static double
pct(int64_t *v, int n, double p)
{
	int i, j;

	/* Insertion sort: n is a few thousand at most. */
	for (i = 1; i < n; i++) {
		int64_t x = v[i];
		for (j = i; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	return v[(int)(p * (n - 1) + 0.5)] / 1e3;
}

/* Send one message; returns 0, or -1 with errno. */
static int
try_send(struct mq_queue *q, const struct mq_send_opts *o, const char *body,
    size_t len)
{
	struct mq_draft *d;
	size_t off, chunk;
	int saved;

	failed_step = "mq_draft_new";
	if ((d = mq_draft_new(q, o)) == NULL)
		return -1;
	failed_step = "mq_draft_write";
	for (off = 0; off < len; off += chunk) {
		chunk = len - off < 131072 ? len - off : 131072;
		if (mq_draft_write(d, body + off, chunk) == -1)
			goto fail;
	}
	failed_step = "mq_commit";
	if (mq_commit(q, &d, 1) != 1)
		goto fail;
	mq_draft_free(d);
	return 0;
fail:
	saved = errno;
	mq_draft_free(d);
	errno = saved;
	return -1;
}

static void
send_one(struct mq_queue *q, const struct mq_send_opts *o, const char *body,
    size_t len)
{
	if (try_send(q, o, body, len) == -1)
		die("send");
}

/* Claim, copy the body to fd and ack; 1 done, 0 nothing ready. */
static int
recv_one(struct mq_queue *q, int fd)
{
	struct mq_msg m;
	int rc;

	if ((rc = mq_claim(q, 0, 0, &m)) == -1)
		die("mq_claim");
	if (rc == 0)
		return 0;
	if (mq_msg_copy_body(q, &m, fd) == -1)
		die("mq_msg_copy_body");
	if (mq_msg_ack(q, &m) == -1)
		die("mq_msg_ack");
	mq_msg_close(&m);
	return 1;
}

static struct mq_queue *
open_queue(const char *path)
{
	struct mq_queue *q = mq_open(path);

	if (q == NULL)
		die(path);
	return q;
}

/* churn DIR N MAXSEC: create and delete N files of 1 KiB (fewer if that
 * takes MAXSEC seconds), as a busy spool does, so that the next creates
 * meet the recently freed inodes; prints how many. */
static int
cmd_churn(int argc, char **argv)
{
	char name[64], body[1024];
	int64_t end;
	int n, i, fd, dfd;

	if (argc != 3)
		dief("usage: churn DIR N MAXSEC");
	n = atoi(argv[1]);
	end = mono_ns() + (int64_t)(atof(argv[2]) * 1e9);
	if ((dfd = open(argv[0], O_RDONLY | O_DIRECTORY)) == -1)
		die(argv[0]);
	fill_random(body, sizeof(body), 1);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "churn.%d.%d", (int)getpid(), i);
		if ((fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1)
			die(name);
		if (write(fd, body, sizeof(body)) != (ssize_t)sizeof(body))
			die(name);
		close(fd);
		if (i % 256 == 255 && mono_ns() > end)
			n = i + 1;
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "churn.%d.%d", (int)getpid(), i);
		unlinkat(dfd, name, 0);
	}
	close(dfd);
	printf("%d\n", n);
	return 0;
}

/* populate Q N SIZE MAXSEC: send N messages in groups of 256, without
 * syncs, stopping after MAXSEC seconds; prints how many were sent. */
static int
cmd_populate(int argc, char **argv)
{
	struct mq_draft *g[256];
	struct mq_queue *q;
	long n, i, k = 0;
	int64_t end;
	size_t size;
	char *body;

	if (argc != 4)
		dief("usage: populate Q N SIZE MAXSEC");
	end = mono_ns() + (int64_t)(atof(argv[3]) * 1e9);
	q = open_queue(argv[0]);
	n = atol(argv[1]);
	size = (size_t)atol(argv[2]);
	if ((body = malloc(size)) == NULL)
		die("malloc");
	fill_random(body, size, 3);
	nosync = 1;
	for (i = 0; i < n; i++) {
		if ((g[k] = mq_draft_new(q, NULL)) == NULL)
			die("mq_draft_new");
		if (mq_draft_write(g[k++], body, size) == -1)
			die("mq_draft_write");
		if (k == 256 || i == n - 1) {
			if (mq_commit(q, g, (size_t)k) != (size_t)k)
				die("mq_commit");
			while (k > 0)
				mq_draft_free(g[--k]);
			if (mono_ns() > end)
				n = i + 1;
		}
	}
	printf("%ld\n", n);
	mq_close(q);
	return 0;
}

/* drain Q: claim (in batches, as mq-watch streaming does), copy and ack
 * until nothing is ready; prints "count seconds". */
#define DRAIN_BATCH 32
static int
cmd_drain(int argc, char **argv)
{
	struct mq_msg m[DRAIN_BATCH];
	struct mq_queue *q;
	int64_t t0;
	long n = 0;
	int fd, got, i;

	if (argc != 1)
		dief("usage: drain Q");
	q = open_queue(argv[0]);
	if ((fd = open("/dev/null", O_WRONLY)) == -1)
		die("/dev/null");
	t0 = mono_ns();
	while ((got = mq_claim_many(q, 0, 0, m, DRAIN_BATCH)) > 0)
		for (i = 0; i < got; i++, n++) {
			if (mq_msg_copy_body(q, &m[i], fd) == -1)
				die("mq_msg_copy_body");
			if (mq_msg_ack(q, &m[i]) == -1)
				die("mq_msg_ack");
			mq_msg_close(&m[i]);
		}
	if (got == -1)
		die("mq_claim_many");
	printf("%ld %.6f\n", n, (mono_ns() - t0) / 1e9);
	mq_close(q);
	return 0;
}

/* files TMPDIR NEWDIR INPUT: the no-fsync floor of mq-send -l: each line
 * of INPUT becomes a file written in TMPDIR and renamed into
 * NEWDIR/BUCKET, one bucket per 1024 files, with a header of the size mq
 * writes; no sync. */
static int
cmd_files(int argc, char **argv)
{
	static char buf[65536], rec[1 << 20];
	char tmp[64], dest[96], bucket[32];
	size_t len = 0;
	long seq = (long)getpid() << 24, n = 0;
	ssize_t r;
	int in, tfd, nfd, fd, hdr;

	if (argc != 3)
		dief("usage: files TMPDIR NEWDIR INPUT");
	if ((tfd = open(argv[0], O_RDONLY | O_DIRECTORY)) == -1)
		die(argv[0]);
	if ((nfd = open(argv[1], O_RDONLY | O_DIRECTORY)) == -1)
		die(argv[1]);
	if ((in = open(argv[2], O_RDONLY)) == -1)
		die(argv[2]);
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		char *p = buf, *end = buf + r, *nl;
		for (; p < end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL) {
				memcpy(rec + len, p, (size_t)(end - p));
				len += (size_t)(end - p);
				break;
			}
			memcpy(rec + len, p, (size_t)(nl - p));
			len += (size_t)(nl - p);
			if (seq % 1024 == 0) {
				snprintf(bucket, sizeof(bucket), "%016lx", seq);
				if (mkdirat(nfd, bucket, 0700) == -1 &&
				    errno != EEXIST)
					die(bucket);
			}
			snprintf(tmp, sizeof(tmp), "%d.%ld", (int)getpid(), seq);
			snprintf(dest, sizeof(dest), "%016lx/%016lx.0",
			    seq & ~1023L, seq);
			fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd == -1)
				die(tmp);
			hdr = dprintf(fd, "mq/1\nid: %016lx\ntime: "
			    "1795765453732841188\nqueue: q\nsize: "
			    "%020zu\n\n", seq, len);
			if (hdr < 0 || write(fd, rec, len) != (ssize_t)len ||
			    close(fd) == -1)
				die(tmp);
			if (renameat(tfd, tmp, nfd, dest) == -1)
				die(dest);
			seq++;
			n++;
			len = 0;
		}
	}
	printf("%ld\n", n);
	return 0;
}

/* Is pid asleep in poll/epoll (seen twice, 100 us apart)? */
static int
in_poll(pid_t pid)
{
	char path[64], buf[128];
	long nr;
	int fd, n, k;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	for (k = 0; k < 2; k++) {
		if ((fd = open(path, O_RDONLY)) == -1)
			return -1;
		n = (int)read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			return -1;
		buf[n] = '\0';
		nr = strtol(buf, NULL, 10);
		if (buf[0] < '0' || buf[0] > '9' ||
		    (nr != 7 && nr != 271 && nr != 232 && nr != 281))
			return 0;
		if (k == 0)
			usleep(100);
	}
	return 1;
}

static int
dir_empty(const char *path)
{
	struct dirent *de;
	DIR *d;
	int empty = 1;

	if ((d = opendir(path)) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			empty = 0;
	closedir(d);
	return empty;
}

/* Wait until pid sleeps waiting for a message (and, with cur, nothing is
 * in flight); falls back to a fixed pause where /proc cannot tell. */
static void
wait_blocked(pid_t pid, const char *cur)
{
	int64_t until = mono_ns() + 3000000000LL;
	int r;

	while (mono_ns() < until) {
		r = in_poll(pid);
		if (r == -1) {
			usleep(5000);
			return;
		}
		if (r == 1 && (cur == NULL || dir_empty(cur)))
			return;
		usleep(50);
	}
	dief("consumer did not go back to sleep within 3 s");
}

static pid_t
spawn_out(char **argv, int *outfd, int quiet_err)
{
	posix_spawn_file_actions_t fa;
	int p[2], rc;
	pid_t pid;

	if (pipe(p) == -1)
		die("pipe");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	posix_spawn_file_actions_addclose(&fa, p[1]);
	if (quiet_err)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		errno = rc;
		die(argv[0]);
	}
	*outfd = p[0];
	return pid;
}

static void
report(const char *label, int64_t *v, int n)
{
	double p50 = pct(v, n, 0.5), p99 = pct(v, n, 0.99);

	printf("%s %.1f %.1f\n", label, p50, p99);
}

/* ---- a minimal Redis client ---- */

struct conn {
	int fd;
	size_t off, len;
	char buf[1 << 16];
};

static struct conn *
redis_connect(int port)
{
	struct sockaddr_in a;
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL)
		die("calloc");
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    connect(c->fd, (struct sockaddr *)&a, sizeof(a)) == -1)
		die("redis connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return c;
}

static void
redis_send(struct conn *c, int argc, const char **argv, const size_t *len)
{
	static char out[1 << 21];
	size_t n = 0, k;
	int i;

	n += (size_t)sprintf(out + n, "*%d\r\n", argc);
	for (i = 0; i < argc; i++) {
		k = len != NULL && len[i] != 0 ? len[i] : strlen(argv[i]);
		n += (size_t)sprintf(out + n, "$%zu\r\n", k);
		memcpy(out + n, argv[i], k);
		n += k;
		out[n++] = '\r';
		out[n++] = '\n';
	}
	for (k = 0; k < n; ) {
		ssize_t w = write(c->fd, out + k, n - k);
		if (w <= 0)
			die("redis write");
		k += (size_t)w;
	}
}

static int
conn_byte(struct conn *c)
{
	if (c->off == c->len) {
		ssize_t r = read(c->fd, c->buf, sizeof(c->buf));
		if (r <= 0)
			dief("redis: connection closed");
		c->off = 0;
		c->len = (size_t)r;
	}
	return (unsigned char)c->buf[c->off++];
}

static long
conn_line(struct conn *c, char *type)
{
	char line[64];
	size_t n = 0;
	int ch;

	*type = (char)conn_byte(c);
	while ((ch = conn_byte(c)) != '\n')
		if (n < sizeof(line) - 1)
			line[n++] = (char)ch;
	line[n] = '\0';
	if (*type == '-') {
		fprintf(stderr, "drive: redis: %s\n", line);
		exit(1);
	}
	return strtol(line, NULL, 10);
}

/* Read one whole reply, discarding it. */
static void
redis_reply(struct conn *c)
{
	char type;
	long n = conn_line(c, &type), i;

	if (type == '$' && n >= 0) {
		for (i = 0; i < n + 2; i++)
			conn_byte(c);
	} else if (type == '*') {
		for (i = 0; i < n; i++)
			redis_reply(c);
	}
}

/* redis-rate PORT N: one client, LPUSH of 1 KiB values, each waiting for
 * its reply; prints "count seconds". */
static int
cmd_redis_rate(int argc, char **argv)
{
	static char body[1024];
	const char *a[3] = { "LPUSH", "mqbench:rate", body };
	size_t len[3] = { 0, 0, sizeof(body) };
	const char *del[2] = { "DEL", "mqbench:rate" };
	struct conn *c;
	long n, i;
	int64_t t0;

	if (argc != 2)
		dief("usage: redis-rate PORT N");
	c = redis_connect(atoi(argv[0]));
	n = atol(argv[1]);
	fill_random(body, sizeof(body), 5);
	t0 = mono_ns();
	for (i = 0; i < n; i++) {
		redis_send(c, 3, a, len);
		redis_reply(c);
	}
	printf("%ld %.6f\n", n, (mono_ns() - t0) / 1e9);
	redis_send(c, 2, del, NULL);
	redis_reply(c);
	return 0;
}

/* ---- wake-up latency ---- */

static int
wake_redis(int port, int n)
{
	static char body[1024];
	const char *push[3] = { "LPUSH", "mqbench:wake", body };
	const char *pop[3] = { "BRPOP", "mqbench:wake", "0" };
	const char *ping[1] = { "PING" };
	size_t len[3] = { 0, 0, sizeof(body) };
	struct conn *c = redis_connect(port), *p = redis_connect(port);
	int64_t *lat = calloc((size_t)n, sizeof(int64_t)), t0;
	int i;

	fill_random(body, sizeof(body), 9);
	for (i = 0; i < n; i++) {
		redis_send(c, 3, pop, NULL);
		usleep(200);
		redis_send(p, 1, ping, NULL);
		redis_reply(p);
		t0 = mono_ns();
		redis_send(p, 3, push, len);
		redis_reply(c);
		lat[i] = mono_ns() - t0;
		redis_reply(p);
	}
	report("redis_brpop", lat, n);
	return 0;
}

static int
wake_recv(const char *bin, const char *queue, int n)
{
	char path[4096], buf[4096];
	char *argv[] = { path, "-w", (char *)queue, NULL };
	struct mq_queue *q = open_queue(queue);
	int64_t *tot = calloc((size_t)n, 8), *ren = calloc((size_t)n, 8),
	    *first = calloc((size_t)n, 8), t0, t1, tf;
	static char body[1024];
	int i, fd, st, got;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/mq-recv", bin);
	fill_random(body, sizeof(body), 11);
	for (i = 0; i < n; i++) {
		pid = spawn_out(argv, &fd, 0);
		wait_blocked(pid, NULL);
		t0 = mono_ns();
		send_one(q, NULL, body, sizeof(body));
		tf = 0;
		got = 0;
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				break;
			if (tf == 0)
				tf = mono_ns();
			got += (int)r;
		}
		t1 = mono_ns();
		close(fd);
		waitpid(pid, &st, 0);
		if (got != (int)sizeof(body) || st != 0)
			dief("mq-recv -w did not return the message");
		tot[i] = t1 - t0;
		ren[i] = t1 - rename_ns;
		first[i] = tf - t0;
	}
	report("recv_send_to_return", tot, n);
	report("recv_send_to_body", first, n);
	report("recv_rename_to_return", ren, n);
	mq_close(q);
	return 0;
}

static int
wake_watch(const char *bin, const char *stamp, const char *queue, int n)
{
	char path[4096], cur[4096], line[64];
	char *argv[] = { path, (char *)queue, "--", (char *)stamp, NULL };
	struct mq_queue *q = open_queue(queue);
	int64_t *tot = calloc((size_t)n, 8), *ren = calloc((size_t)n, 8), t0,
	    ts;
	static char body[1024];
	size_t k;
	int i, fd, st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/mq-watch", bin);
	snprintf(cur, sizeof(cur), "%s/cur", queue);
	fill_random(body, sizeof(body), 13);
	pid = spawn_out(argv, &fd, 1);
	for (i = 0; i < n; i++) {
		wait_blocked(pid, cur);
		t0 = mono_ns();
		send_one(q, NULL, body, sizeof(body));
		for (k = 0; k < sizeof(line) - 1; k++) {
			if (read(fd, line + k, 1) != 1)
				dief("mq-watch: handler output ended");
			if (line[k] == '\n')
				break;
		}
		line[k] = '\0';
		ts = strtoll(line, NULL, 10);
		tot[i] = ts - t0;
		ren[i] = ts - rename_ns;
	}
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	report("watch_send_to_handler", tot, n);
	report("watch_rename_to_handler", ren, n);
	mq_close(q);
	return 0;
}

/* A consumer built on the waiter API in a child; the parent sends
 * without syncing, so the time from the rename to the claim is the
 * wake-up alone. */
static int
wake_waiter(const char *queue, int n)
{
	struct mq_queue *q;
	struct mq_waiter *w;
	int64_t *ren = calloc((size_t)n, 8), *tot = calloc((size_t)n, 8), t,
	    t0;
	static char body[1024];
	int p[2], i, st, devnull = open("/dev/null", O_WRONLY);
	pid_t pid;

	if (pipe(p) == -1)
		die("pipe");
	if ((pid = fork()) == 0) {
		close(p[0]);
		q = open_queue(queue);
		if ((w = mq_waiter_new(q)) == NULL)
			die("mq_waiter_new");
		for (;;) {
			struct mq_msg m;
			int rc;
			if (mq_waiter_arm(w) == -1)
				die("mq_waiter_arm");
			if ((rc = mq_claim(q, 0, 0, &m)) == -1)
				die("mq_claim");
			if (rc == 0) {
				mq_waiter_wait(w, -1);
				continue;
			}
			t = mono_ns();
			mq_msg_copy_body(q, &m, devnull);
			mq_msg_ack(q, &m);
			mq_msg_close(&m);
			if (write(p[1], &t, sizeof(t)) != sizeof(t))
				_exit(0);
		}
	}
	close(p[1]);
	q = open_queue(queue);
	fill_random(body, sizeof(body), 17);
	nosync = 1;
	for (i = 0; i < n; i++) {
		wait_blocked(pid, NULL);
		t0 = mono_ns();
		send_one(q, NULL, body, sizeof(body));
		if (read(p[0], &t, sizeof(t)) != sizeof(t))
			dief("waiter child died");
		ren[i] = t - rename_ns;
		tot[i] = t - t0;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	report("waiter_rename_to_claim", ren, n);
	report("waiter_nosync_send_to_claim", tot, n);
	return 0;
}

/* wake MODE ...: p50 and p99 in microseconds, one line per series. */
static int
cmd_wake(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[0], "redis") == 0)
		return wake_redis(atoi(argv[1]), atoi(argv[2]));
	if (argc == 4 && strcmp(argv[0], "recv") == 0)
		return wake_recv(argv[1], argv[2], atoi(argv[3]));
	if (argc == 5 && strcmp(argv[0], "watch") == 0)
		return wake_watch(argv[1], argv[2], argv[3], atoi(argv[4]));
	if (argc == 3 && strcmp(argv[0], "waiter") == 0)
		return wake_waiter(argv[1], atoi(argv[2]));
	dief("usage: wake redis PORT N | recv BIN Q N | watch BIN STAMP Q N | "
	    "waiter Q N");
	return 1;
}

/* ---- producers and consumers in parallel ---- */

struct shared {
	volatile int stop;
	volatile int err;
	char step[32];
	volatile long sent[64];
	volatile long acked[64];
	volatile long failed[64];
};

static long
sum(volatile long *v, int n)
{
	long s = 0;
	int i;

	for (i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* conc Q P SECONDS: P durable producers and P consumers on Q; prints
 * "sent_per_s acked_per_s failed_sends step: error" over the window after a
 * short warm-up.  A send that fails is counted and the producer goes on. */
static int
cmd_conc(int argc, char **argv)
{
	struct shared *sh;
	struct timespec ts;
	double secs;
	long s0, a0, s1, a1;
	int p, i, st;
	pid_t pids[128];

	if (argc != 3)
		dief("usage: conc Q P SECONDS");
	p = atoi(argv[1]);
	secs = atof(argv[2]);
	if (p < 1 || p > 32)
		dief("conc: P is 1 to 32");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap");
	memset((void *)sh, 0, sizeof(*sh));
	for (i = 0; i < 2 * p; i++) {
		if ((pids[i] = fork()) == -1)
			die("fork");
		if (pids[i] != 0)
			continue;
		struct mq_queue *q = open_queue(argv[0]);
		static char body[1024];
		fill_random(body, sizeof(body), 19 + (unsigned)i);
		if (i < p) {
			while (!sh->stop) {
				if (try_send(q, NULL, body, sizeof(body)) == 0)
					sh->sent[i]++;
				else {
					sh->failed[i]++;
					sh->err = errno;
					snprintf(sh->step, sizeof(sh->step),
					    "%s", failed_step);
				}
			}
		} else {
			struct mq_waiter *w = mq_waiter_new(q);
			int devnull = open("/dev/null", O_WRONLY);
			if (w == NULL)
				die("mq_waiter_new");
			while (!sh->stop) {
				if (mq_waiter_arm(w) == -1)
					die("mq_waiter_arm");
				if (recv_one(q, devnull))
					sh->acked[i - p]++;
				else
					mq_waiter_wait(w, 50);
			}
		}
		_exit(0);
	}
	ts.tv_sec = 0;
	ts.tv_nsec = 300000000;
	nanosleep(&ts, NULL);
	s0 = sum(sh->sent, p);
	a0 = sum(sh->acked, p);
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);
	s1 = sum(sh->sent, p);
	a1 = sum(sh->acked, p);
	sh->stop = 1;
	for (i = 0; i < 2 * p; i++)
		waitpid(pids[i], &st, 0);
	printf("%.1f %.1f %ld %s: %s\n", (s1 - s0) / secs, (a1 - a0) / secs,
	    sum(sh->failed, p), sh->step[0] != '\0' ? sh->step : "-",
	    sh->err != 0 ? mq_strerror(sh->err) : "-");
	return 0;
}

/* ---- issue 4: signing and compression ---- */

/* codec Q KEYPREFIX SIZE COUNT: per-message time of sending and of
 * receiving plain, -z, -s and -s -z bodies of SIZE bytes, without syncs
 * (run.sh puts Q on tmpfs where it can: creating a file in a churned ext4
 * directory costs a varying millisecond that would drown the codec);
 * prints "mode send_us recv_us stored_bytes". */
static int
cmd_codec(int argc, char **argv)
{
	static const char *mode[] = { "plain", "z", "sign", "sign+z" };
	struct mq_send_opts o[4];
	struct mq_key key;
	struct mq_queue *q;
	char keyfile[4096];
	size_t size;
	int count, i, k, devnull = open("/dev/null", O_WRONLY);
	int64_t t0, t1, t2;
	char *body;
	struct stat st;

	if (argc != 4)
		dief("usage: codec Q KEYPREFIX SIZE COUNT");
	q = open_queue(argv[0]);
	size = (size_t)atol(argv[2]);
	count = atoi(argv[3]);
	snprintf(keyfile, sizeof(keyfile), "%s.key", argv[1]);
	if (stat(keyfile, &st) == -1 && mq_keygen(argv[1]) == -1)
		die(argv[1]);
	if (mq_key_load(keyfile, &key) == -1)
		die(keyfile);
	if ((body = malloc(size)) == NULL)
		die("malloc");
	fill_text(body, size);
	memset(o, 0, sizeof(o));
	o[0].compress = o[2].compress = MQ_COMPRESS_NO;
	o[1].compress = o[3].compress = MQ_COMPRESS_YES;
	o[2].sign = o[3].sign = &key;
	nosync = 1;
	for (k = 0; k < 4; k++) {
		/* One untimed round trip warms caches and libsodium. */
		send_one(q, &o[k], body, size);
		recv_one(q, devnull);
		t0 = mono_ns();
		for (i = 0; i < count; i++)
			send_one(q, &o[k], body, size);
		t1 = mono_ns();
		{
			struct mq_stats s;
			if (mq_stats(q, &s, MQ_STATS_BYTES) == -1)
				die("mq_stats");
			st.st_size = (off_t)(s.bytes / (uint64_t)count);
		}
		t2 = mono_ns();
		for (i = 0; i < count; i++)
			if (!recv_one(q, devnull))
				dief("codec: message missing");
		printf("%s %.1f %.1f %lld\n", mode[k], (t1 - t0) / 1e3 / count,
		    (mono_ns() - t2) / 1e3 / count, (long long)st.st_size);
	}
	mq_close(q);
	return 0;
}

/* freeport: a TCP port on 127.0.0.1 that nothing listens on now. */
static int
cmd_freeport(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) == -1)
		die("freeport");
	printf("%d\n", ntohs(a.sin_port));
	close(fd);
	return 0;
}

int
main(int argc, char *argv[])
{
	if (argc >= 2 && strcmp(argv[1], "-S") == 0) {
		nosync = 1;
		argv++;
		argc--;
	}
	if (argc < 2)
		dief("usage: drive [-S] churn|populate|drain|files|wake|conc|"
		    "codec|redis-rate|freeport ...");
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "churn") == 0)
		return cmd_churn(argc - 2, argv + 2);
	if (strcmp(argv[1], "populate") == 0)
		return cmd_populate(argc - 2, argv + 2);
	if (strcmp(argv[1], "drain") == 0)
		return cmd_drain(argc - 2, argv + 2);
	if (strcmp(argv[1], "files") == 0)
		return cmd_files(argc - 2, argv + 2);
	if (strcmp(argv[1], "wake") == 0)
		return cmd_wake(argc - 2, argv + 2);
	if (strcmp(argv[1], "conc") == 0)
		return cmd_conc(argc - 2, argv + 2);
	if (strcmp(argv[1], "codec") == 0)
		return cmd_codec(argc - 2, argv + 2);
	if (strcmp(argv[1], "redis-rate") == 0)
		return cmd_redis_rate(argc - 2, argv + 2);
	if (strcmp(argv[1], "freeport") == 0)
		return cmd_freeport();
	dief("unknown subcommand");
	return 1;
}
