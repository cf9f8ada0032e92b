/*
 * layout.c - where a queue lives and how its files are named.
 *
 * Owns operand resolution ($MQ_ROOT), opening a queue and its state
 * folders (once each, then everything relative to those descriptors so a
 * symlink planted in the queue leads nowhere), and the grammar of message
 * names, buckets and receipts.  Ready messages sit in buckets of 1024
 * consecutive sequence numbers so that finding the oldest reads two small
 * directories whatever the depth.  Moves between state folders are here
 * too, since each must agree with the names it produces.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "mq_impl.h"

const char *const mq_dir_names[MQ_NDIRS] = {
	"tmp", "new", "cur", "delay", "dead", "quarantine"
};

/* statfs magic numbers of filesystems whose changes may come from other
 * hosts, where inotify sees only this host's and a boot id says nothing
 * about the server's cache. */
static const unsigned long remote_fs[] = {
	0x6969,		/* NFS */
	0xff534d42,	/* CIFS */
	0xfe534d42,	/* SMB2 */
	0x65735546,	/* FUSE */
	0x01021997,	/* v9fs */
	0x47504653,	/* GPFS */
	0x0bd00bd0,	/* Lustre */
	0x00c36400,	/* Ceph */
};

/* 1 when the queue is on a network filesystem (or MQ_POLL is set). */
int
mq_is_remote(struct mq_queue *q)
{
	struct statfs sf;
	size_t i;

	if (q->remote != -1)
		return q->remote;
	q->remote = 1;
	if (getenv("MQ_POLL") != NULL || fstatfs(q->fd, &sf) == -1)
		return q->remote;
	q->remote = 0;
	for (i = 0; i < sizeof(remote_fs) / sizeof(remote_fs[0]); i++)
		if ((unsigned long)sf.f_type == remote_fs[i])
			q->remote = 1;
	return q->remote;
}

const char *
mq_root(char *buf, size_t size)
{
	const char *env, *home;
	int n;

	if ((env = getenv("MQ_ROOT")) != NULL && *env != '\0')
		n = snprintf(buf, size, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, size, "/var/spool/mq");
	else if ((env = getenv("XDG_DATA_HOME")) != NULL && *env == '/')
		n = snprintf(buf, size, "%s/mq", env);
	else {
		if ((home = getenv("HOME")) == NULL || *home == '\0') {
			struct passwd *pw = getpwuid(geteuid());
			home = pw != NULL ? pw->pw_dir : "/";
		}
		n = snprintf(buf, size, "%s/.local/share/mq", home);
	}
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return buf;
}

int
mq_resolve(const char *operand, char *path, size_t size)
{
	char root[PATH_MAX];
	int n;

	if (*operand == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (strchr(operand, '/') != NULL)
		n = snprintf(path, size, "%s", operand);
	else {
		if (operand[0] == '.' || mq_root(root, sizeof(root)) == NULL) {
			errno = operand[0] == '.' ? EINVAL : errno;
			return -1;
		}
		n = snprintf(path, size, "%s/%s", root, operand);
	}
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* The last component is the queue's name, which a message's header
	 * records and a signature covers: "orders/" names orders. */
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	return 0;
}

struct mq_queue *
mq_open(const char *operand)
{
	struct mq_queue *q;
	struct stat st;
	int i;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	for (i = 0; i < MQ_NDIRS; i++)
		q->dirfd[i] = -1;
	q->remote = -1;
	if (mq_resolve(operand, q->path, sizeof(q->path)) == -1)
		goto fail;
	q->fd = open(q->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->fd == -1)
		goto fail;
	if (fstat(q->fd, &st) == -1) {
		close(q->fd);
		goto fail;
	}
	q->file_mode = st.st_mode & 0666;
	q->dir_mode = st.st_mode & 07777;
	q->lock_off = (off_t)(st.st_ino & 0x3fffffffffff);
	/* A filesystem on a block device of this host is local (network
	 * filesystems, FUSE and 9p have anonymous devices, major 0): that
	 * spares each process that sends the fstatfs of mq_is_remote. */
	if (major(st.st_dev) != 0 && getenv("MQ_POLL") == NULL)
		q->remote = 0;
	return q;
fail:
	i = errno;
	free(q);
	errno = i;
	return NULL;
}

void
mq_close(struct mq_queue *q)
{
	int i, saved = errno;

	if (q == NULL)
		return;
	for (i = 0; i < MQ_NDIRS; i++)
		if (q->dirfd[i] != -1)
			close(q->dirfd[i]);
	close(q->fd);
	mq_cursor_free(q->cursor);
	mq_keys_free(q);
	free(q);
	errno = saved;
}

const char *
mq_path(const struct mq_queue *q)
{
	return q->path;
}

/* Descriptor of a state folder, opened on first use.  A queue directory
 * without it is not a queue (mq-init repairs that). */
int
mq_dir(struct mq_queue *q, enum mq_dir which)
{
	int fd;

	if (q->dirfd[which] != -1)
		return q->dirfd[which];
	fd = openat(q->fd, mq_dir_names[which],
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT || errno == ELOOP)
			errno = MQ_ENOTQUEUE;
		return -1;
	}
	q->dirfd[which] = fd;
	return fd;
}

int64_t
mq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
mq_id_format(uint64_t seq, char id[MQ_ID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--, seq >>= 4)
		id[i] = hex[seq & 15];
	id[16] = '\0';
}

/* Priority 0 buckets are named by the first id they hold; higher
 * priorities get a "pN-" prefix so an admin sees them at a glance. */
void
mq_bucket_name(uint64_t seq, int prio, char name[MQ_BUCKET_NAME_SIZE])
{
	char id[MQ_ID_SIZE];

	mq_id_format(seq & ~(((uint64_t)1 << MQ_BUCKET_BITS) - 1), id);
	if (prio > 0 && prio <= 9)
		snprintf(name, MQ_BUCKET_NAME_SIZE, "p%c-%s", '0' + prio, id);
	else
		memcpy(name, id, MQ_ID_SIZE);
}

int
mq_bucket_name_parse(const char *name, struct mq_bucket *b)
{
	int prio = 0;

	if (name[0] == 'p' && name[1] >= '1' && name[1] <= '9' &&
	    name[2] == '-') {
		prio = name[1] - '0';
		name += 3;
	}
	if (mq_id_parse(name, &b->base) == -1 ||
	    (b->base & (((uint64_t)1 << MQ_BUCKET_BITS) - 1)) != 0)
		return -1;
	b->prio = prio;
	return 0;
}

/* The priority a message was sent with, from its header: 0 if it has
 * none, or if the file is no message (a link, a socket, a FIFO, a
 * directory) or one this process may never read: such a file moves on
 * to whoever deals with it, since failing would hold it, and every reap
 * behind it, where it is for good.  -1 with errno when the header could
 * not be read for now (no descriptor or memory left, EIO): taken as 0,
 * the message would lose its priority for good. */
int
mq_file_priority(int dirfd, const char *name)
{
	char buf[MQ_HEADER_MAX + 1], *p, *end;
	struct stat st;
	ssize_t n;
	int fd, saved;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return errno == ELOOP || errno == ENXIO || errno == EACCES ||
		    errno == EPERM ? 0 : -1;
	if (fstat(fd, &st) == -1)
		n = -1;
	else if (!S_ISREG(st.st_mode))
		n = 0;
	else
		n = pread(fd, buf, MQ_HEADER_MAX, 0);
	saved = errno;
	close(fd);
	errno = saved;
	if (n <= 0)
		return (int)n;
	buf[n] = '\0';
	if ((end = strstr(buf, "\n\n")) == NULL)
		return 0;
	*end = '\0';
	if ((p = strstr(buf, "\npriority: ")) == NULL || p[11] < '0' ||
	    p[11] > '9' || (p[12] != '\n' && p[12] != '\0'))
		return 0;
	return p[11] - '0';
}

/* Parse exactly 16 lowercase hex digits; returns characters consumed or
 * 0 when s does not start with an id. */
static int
parse_hex16(const char *s, uint64_t *seq)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		char c = s[i];
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return 0;
	}
	*seq = v;
	return 16;
}

int
mq_id_parse(const char *s, uint64_t *seq)
{
	return parse_hex16(s, seq) == 16 && s[16] == '\0' ? 0 : -1;
}

/* Parse a decimal attempt count of 1 to 9 digits with no leading zero
 * (except "0" itself).  Returns characters consumed or 0. */
static int
parse_count(const char *s, unsigned *n)
{
	unsigned v = 0;
	int i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i == 9 || (i == 1 && s[0] == '0'))
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*n = v;
	return i;
}

int
mq_ready_name_parse(const char *name, uint64_t *seq, unsigned *n)
{
	int k;

	if (parse_hex16(name, seq) == 0 || name[16] != '.')
		return -1;
	if ((k = parse_count(name + 17, n)) == 0 || name[17 + k] != '\0')
		return -1;
	return 0;
}

/* Receipt: ID.N.KTOKEN, K 'k' (holder keeps a lock) or 'l' (lease only),
 * TOKEN 12 hex digits. */
int
mq_receipt_parse(const char *r, uint64_t *seq, unsigned *n, char *kind)
{
	const char *t;
	int k, i;

	if (parse_hex16(r, seq) == 0 || r[16] != '.')
		return -1;
	if ((k = parse_count(r + 17, n)) == 0 || *n == 0 || r[17 + k] != '.')
		return -1;
	t = r + 18 + k;
	if (t[0] != 'k' && t[0] != 'l')
		return -1;
	for (i = 1; i <= 12; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return -1;
	if (t[13] != '\0')
		return -1;
	*kind = t[0];
	return 0;
}

/* Parse exactly 19 decimal digits (a time in ns); returns 19 or 0. */
static int
parse_ns19(const char *s, int64_t *v)
{
	int64_t r = 0;
	int i;

	for (i = 0; i < 19; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		r = r * 10 + (s[i] - '0');
	}
	*v = r;
	return 19;
}

/* cur/ name: RECEIPT.DEADLINE */
int
mq_lease_name_parse(const char *name, uint64_t *seq, unsigned *n,
    char *kind, int64_t *deadline)
{
	char receipt[MQ_RECEIPT_SIZE];
	const char *dot = strrchr(name, '.');
	size_t len;

	if (dot == NULL || (len = (size_t)(dot - name)) >= sizeof(receipt))
		return -1;
	memcpy(receipt, name, len);
	receipt[len] = '\0';
	if (parse_ns19(dot + 1, deadline) == 0 || dot[20] != '\0')
		return -1;
	return mq_receipt_parse(receipt, seq, n, kind);
}

/* delay/ name: DUE.ID.N */
int
mq_delay_name_parse(const char *name, int64_t *due, uint64_t *seq,
    unsigned *n)
{
	if (parse_ns19(name, due) == 0 || name[19] != '.')
		return -1;
	return mq_ready_name_parse(name + 20, seq, n);
}

/* dead/ name: ID.N.REASON, REASON lowercase letters */
int
mq_dead_name_parse(const char *name, uint64_t *seq, unsigned *n,
    char *reason, size_t size)
{
	char head[MQ_NAME_MAX];
	const char *dot = strrchr(name, '.'), *p;

	if (dot == NULL || (size_t)(dot - name) >= sizeof(head) ||
	    dot[1] == '\0')
		return -1;
	for (p = dot + 1; *p != '\0'; p++)
		if (*p < 'a' || *p > 'z')
			return -1;
	memcpy(head, name, (size_t)(dot - name));
	head[dot - name] = '\0';
	if (mq_ready_name_parse(head, seq, n) == -1)
		return -1;
	if (reason != NULL)
		snprintf(reason, size, "%s", dot + 1);
	return 0;
}

int
mq_id_valid(const char *id)
{
	uint64_t seq;

	return strlen(id) == 16 && mq_id_parse(id, &seq) == 0;
}

int
mq_receipt_valid(const char *receipt)
{
	uint64_t seq;
	unsigned n;
	char kind;

	return strlen(receipt) < MQ_RECEIPT_SIZE &&
	    mq_receipt_parse(receipt, &seq, &n, &kind) == 0;
}

int
mq_token(char *buf, size_t size, int keep_lock)
{
	unsigned char r[6];
	ssize_t got;

	do
		got = getrandom(r, sizeof(r), 0);
	while (got == -1 && errno == EINTR);
	if (got != (ssize_t)sizeof(r))
		return -1;
	snprintf(buf, size, "%c%02x%02x%02x%02x%02x%02x", keep_lock ? 'k' : 'l',
	    r[0], r[1], r[2], r[3], r[4], r[5]);
	return 0;
}

/* Move a file into its bucket in new/.  The bucket may have been removed
 * by a consumer that emptied it, so create it and try again.  prio -1
 * reads the priority from the file's header.  sync syncs the bucket (see
 * mq_move); senders sync theirs once per group.  Returns 1 when it had to
 * create the bucket, else 0. */
int
mq_move_to_ready(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n, int prio, int sync)
{
	char bucket[MQ_BUCKET_NAME_SIZE], to[MQ_NAME_MAX], id[MQ_ID_SIZE];
	int newfd, tries, saved;

	if ((newfd = mq_dir(q, MQ_DIR_NEW)) == -1)
		return -1;
	if (prio < 0 && (prio = mq_file_priority(fromfd, from)) == -1)
		return -1;
	mq_bucket_name(seq, prio, bucket);
	mq_id_format(seq, id);
	snprintf(to, sizeof(to), "%s/%s.%u", bucket, id, n);
	/* Consumers remove an emptied bucket that is not the newest, and
	 * the mkdir wakes every waiting consumer to look: the rename must
	 * follow the mkdir at once, or they remove the empty bucket again
	 * each time (with a sync in between a mover lost 1000 times in a
	 * row).  So it keeps trying as long as its file is there to move,
	 * and syncs the new bucket's entry in new/ once the file is in. */
	for (tries = 0; mq_rename_noreplace(fromfd, from, newfd, to) == -1;
	    tries++) {
		if (errno != ENOENT || tries == 1000)
			return -1;
		if (faccessat(fromfd, from, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
			return -1;
		/* Through FUSE a mkdir looks the new bucket up after making
		 * it, and answers ENOENT if a consumer removed it already:
		 * as good as made, for the rename to find out. */
		if (mq_mkdirat(q, newfd, bucket) == -1 && errno != ENOENT)
			return -1;
	}
	/* A bucket gone already was emptied by consumers, each of which
	 * synced its claim: the file is moved and safe, and this is no
	 * failure. */
	if ((tries > 0 && fsync(newfd) == -1) || (sync &&
	    mq_fsync_dirat(newfd, bucket) == -1 && errno != ENOENT)) {
		/* Not known to be durable: put it back, so that a failed
		 * move has moved nothing, unless a consumer has it now. */
		saved = errno;
		mq_rename_noreplace(newfd, to, fromfd, from);
		errno = saved;
		return -1;
	}
	return tries > 0;
}

int
mq_move_to_dead(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n, const char *reason)
{
	char to[MQ_NAME_MAX], id[MQ_ID_SIZE];
	int deadfd;

	if ((deadfd = mq_dir(q, MQ_DIR_DEAD)) == -1)
		return -1;
	mq_id_format(seq, id);
	snprintf(to, sizeof(to), "%s.%u.%s", id, n, reason);
	return mq_move(fromfd, from, deadfd, to);
}

/* Move a file that is not a well-formed message out of the way.  The
 * quarantine keeps the original name, with the time in front so that two
 * files of one name do not collide, and a NAME.reason file beside it
 * saying why; nothing there is ever removed automatically.  The
 * queue's quarantine hook, if set, is told of each file moved. */
int
mq_quarantine(struct mq_queue *q, int fromfd, const char *from, int err)
{
	char to[NAME_MAX + 1], why[NAME_MAX + 8];
	const char *text;
	int qfd, n, fd;

	if ((qfd = mq_dir(q, MQ_DIR_QUARANTINE)) == -1) {
		if (errno != MQ_ENOTQUEUE ||
		    mq_mkdirat(q, q->fd, "quarantine") == -1 ||
		    (qfd = mq_dir(q, MQ_DIR_QUARANTINE)) == -1)
			return -1;
	}
	n = snprintf(to, sizeof(to), "%" PRId64 ".%.200s", mq_now_ns(), from);
	if (n < 0 || (size_t)n >= sizeof(to))
		return -1;
	if (mq_move(fromfd, from, qfd, to) == -1)
		return -1;
	snprintf(why, sizeof(why), "%s.reason", to);
	fd = openat(qfd, why, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, q->file_mode);
	if (fd != -1) {
		text = mq_strerror(err);
		if (mq_write_all(fd, text, strlen(text)) == 0)
			mq_write_all(fd, "\n", 1);
		close(fd);
	}
	if (q->on_quarantine != NULL)
		q->on_quarantine(from, err, q->on_quarantine_arg);
	return 0;
}
