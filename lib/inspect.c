/*
 * inspect.c - reading a queue without touching it: walks, counts, peeks.
 *
 * Everything here only lists directories and stats or reads files: no
 * lock is taken and nothing is renamed, so inspection never blocks or
 * delays a producer or consumer, and a user with read permission alone
 * can do it.  A file may move between being listed and being looked at;
 * such a file is simply skipped.  Ready messages are walked bucket by
 * bucket in id order, with memory bounded by one bucket.
 *
 * Counting is apart from the walk: its names say a message's state,
 * id, attempts and due time or lease end, and a stat per message is what
 * made counting a million-deep queue take seconds, so mq_stats reads
 * names and stats only what an age needs (or every file for the bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq_impl.h"

static const char *const state_names[MQ_NSTATES] = {
	"ready", "delayed", "inflight", "dead", "quarantine"
};

const char *
mq_state_name(enum mq_state s)
{
	return state_names[s];
}

int
mq_state_parse(const char *name)
{
	int i;

	for (i = 0; i < MQ_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

static int
walk_ready(struct mq_queue *q, int (*fn)(const struct mq_entry *, void *),
    void *arg)
{
	char bucket[MQ_BUCKET_NAME_SIZE], name[MQ_NAME_MAX];
	struct mq_entry e;
	struct mq_ready *r;
	struct mq_bucket *b;
	size_t nb, nr, i, j;
	int newfd = q->dirfd[MQ_DIR_NEW], bfd, rc = 0;

	if ((b = mq_list_buckets(newfd, &nb)) == NULL && errno != 0)
		return -1;
	for (i = 0; i < nb && rc == 0; i++) {
		mq_bucket_name(b[i].base, b[i].prio, bucket);
		/* A bucket emptied and removed by a consumer holds nothing,
		 * one planted as a link or a file is not ours; a listing
		 * that failed would leave out messages that are there. */
		r = mq_list_bucket(newfd, bucket, b[i].base, &nr);
		if (r == NULL) {
			if (errno != 0 && errno != ENOENT && errno != ELOOP &&
			    errno != ENOTDIR)
				rc = -1;
			continue;
		}
		bfd = openat(newfd, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (bfd == -1 && errno != ENOENT)
			rc = -1;
		for (j = 0; j < nr && rc == 0 && bfd != -1; j++) {
			memset(&e, 0, sizeof(e));
			e.state = MQ_READY;
			mq_id_format(r[j].seq, e.id);
			e.attempts = r[j].n;
			snprintf(name, sizeof(name), "%s.%u", e.id, r[j].n);
			snprintf(e.path, sizeof(e.path), "new/%s/%s", bucket, name);
			e.dirfd = bfd;
			e.name = e.path + 4 + strlen(bucket) + 1;
			if (fstatat(bfd, name, &e.st, AT_SYMLINK_NOFOLLOW) == 0)
				rc = fn(&e, arg);
		}
		if (bfd != -1)
			close(bfd);
		free(r);
	}
	free(b);
	return rc;
}

/* Fill e from a name in a flat state folder; 0 if it is not one of ours. */
static int
parse_flat(enum mq_state st, const char *name, struct mq_entry *e)
{
	uint64_t seq;
	int64_t t;
	unsigned n;
	char kind;

	switch (st) {
	case MQ_DELAYED:
		if (mq_delay_name_parse(name, &t, &seq, &n) == -1)
			return 0;
		e->when_ns = t;
		break;
	case MQ_INFLIGHT:
		if (mq_lease_name_parse(name, &seq, &n, &kind, &t) == -1)
			return 0;
		e->when_ns = t;
		break;
	case MQ_DEAD:
		if (mq_dead_name_parse(name, &seq, &n, e->reason,
		    sizeof(e->reason)) == -1)
			return 0;
		break;
	default:
		return 0;
	}
	mq_id_format(seq, e->id);
	e->attempts = n;
	return 1;
}

static void
read_reason(int dirfd, const char *name, char *buf, size_t size)
{
	char why[NAME_MAX + 8];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	snprintf(why, sizeof(why), "%s.reason", name);
	fd = openat(dirfd, why, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return;
	n = mq_read_full(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static int
walk_flat(struct mq_queue *q, enum mq_state st, enum mq_dir dir,
    int (*fn)(const struct mq_entry *, void *), void *arg)
{
	struct mq_entry e;
	struct dirent *de;
	size_t len;
	int dfd = q->dirfd[dir], rc = 0;
	DIR *d;

	if ((d = mq_opendirat(dfd, ".")) == NULL)
		return -1;
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		memset(&e, 0, sizeof(e));
		e.state = st;
		if (st == MQ_QUARANTINED) {
			len = strlen(de->d_name);
			if (len > 7 && strcmp(de->d_name + len - 7, ".reason") == 0)
				continue;
			read_reason(dfd, de->d_name, e.reason, sizeof(e.reason));
			/* NS.ID.N... when it was a message */
			const char *p = strchr(de->d_name, '.');
			if (p != NULL && strlen(p + 1) >= 16) {
				uint64_t seq;
				char id[MQ_ID_SIZE];
				memcpy(id, p + 1, 16);
				id[16] = '\0';
				if (mq_id_parse(id, &seq) == 0)
					memcpy(e.id, id, sizeof(id));
			}
		} else if (!parse_flat(st, de->d_name, &e))
			continue;
		snprintf(e.path, sizeof(e.path), "%s/%s", mq_dir_names[dir],
		    de->d_name);
		e.dirfd = dfd;
		e.name = de->d_name;
		if (fstatat(dfd, de->d_name, &e.st, AT_SYMLINK_NOFOLLOW) == 0)
			rc = fn(&e, arg);
	}
	if (rc != 0) {
		closedir(d);
		return rc;
	}
	return mq_listing_end(d);
}

int
mq_walk(struct mq_queue *q, unsigned states,
    int (*fn)(const struct mq_entry *, void *), void *arg)
{
	static const enum mq_dir dirs[MQ_NSTATES] = {
		MQ_DIR_NEW, MQ_DIR_DELAY, MQ_DIR_CUR, MQ_DIR_DEAD,
		MQ_DIR_QUARANTINE
	};
	int s, rc;

	for (s = 0; s < MQ_NSTATES; s++) {
		if (!(states & MQ_STATE_BIT(s)))
			continue;
		if (mq_dir(q, dirs[s]) == -1) {
			/* A queue made before quarantine/ existed. */
			if (s == MQ_QUARANTINED && errno == MQ_ENOTQUEUE)
				continue;
			return -1;
		}
		rc = s == MQ_READY ? walk_ready(q, fn, arg) :
		    walk_flat(q, (enum mq_state)s, dirs[s], fn, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int64_t
ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void
keep_oldest(int64_t *oldest, int64_t t)
{
	if (*oldest == 0 || t < *oldest)
		*oldest = t;
}

/* Count the messages of one bucket from their names.  Ids are taken in
 * send order, so the oldest ready message is in the lowest bucket of its
 * priority or first in another, unless its sender held a reserved id
 * long (mq-stat(1) says by how much that can err): only those files are
 * stated, or all when the bytes are wanted.  Returns the count, or -1. */
static long
count_bucket(int newfd, const struct mq_bucket *b, int lowest, int bytes,
    struct mq_stats *s)
{
	char bucket[MQ_BUCKET_NAME_SIZE], first[NAME_MAX + 1];
	struct dirent *de;
	struct stat st;
	uint64_t seq, low = UINT64_MAX;
	int64_t low_mtime = 0;
	unsigned n;
	long count = 0;
	int fd;
	DIR *d;

	mq_bucket_name(b->base, b->prio, bucket);
	if ((d = mq_opendirat(newfd, bucket)) == NULL)
		/* Emptied and removed by a consumer, or not a bucket at
		 * all (a consumer quarantines that). */
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ?
		    0 : -1;
	fd = dirfd(d);
	first[0] = '\0';
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (mq_ready_name_parse(de->d_name, &seq, &n) == -1 ||
		    (seq >> MQ_BUCKET_BITS) != (b->base >> MQ_BUCKET_BITS))
			continue;
		count++;
		if (lowest || bytes) {
			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
				continue;
			if (bytes)
				s->bytes += (uint64_t)st.st_size;
			/* A rename keeps the mtime: it is the send time. */
			if (lowest)
				keep_oldest(&s->oldest_ready_ns, ns_of(&st.st_mtim));
			else if (seq < low) {
				low = seq;
				low_mtime = ns_of(&st.st_mtim);
			}
		} else if (seq < low) {
			low = seq;
			snprintf(first, sizeof(first), "%s", de->d_name);
		}
	}
	if (errno != 0)
		return mq_listing_end(d);
	if (first[0] != '\0' &&
	    fstatat(fd, first, &st, AT_SYMLINK_NOFOLLOW) == 0)
		low_mtime = ns_of(&st.st_mtim);
	if (low_mtime != 0)
		keep_oldest(&s->oldest_ready_ns, low_mtime);
	closedir(d);
	return count;
}

static int
count_ready(struct mq_queue *q, int bytes, struct mq_stats *s)
{
	struct mq_bucket *b;
	size_t nb, i;
	long n;
	int newfd = q->dirfd[MQ_DIR_NEW], found = 0;

	if ((b = mq_list_buckets(newfd, &nb)) == NULL && errno != 0)
		return -1;
	/* Buckets come by priority, then lowest id first. */
	for (i = 0; i < nb; i++) {
		if (i > 0 && b[i].prio != b[i - 1].prio)
			found = 0;
		if ((n = count_bucket(newfd, &b[i], !found, bytes, s)) == -1) {
			free(b);
			return -1;
		}
		s->count[MQ_READY] += (uint64_t)n;
		found |= n > 0;
	}
	free(b);
	return 0;
}

/* Count a flat state folder from its names; a lease's age needs its
 * change time, so leases are stated, and everything is with bytes. */
static int
count_flat(struct mq_queue *q, enum mq_state state, enum mq_dir dir,
    int bytes, struct mq_stats *s)
{
	struct mq_entry e;
	struct dirent *de;
	struct stat st;
	size_t len;
	int dfd = q->dirfd[dir];
	DIR *d;

	if ((d = mq_opendirat(dfd, ".")) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (state == MQ_QUARANTINED) {
			len = strlen(de->d_name);
			if (len > 7 && strcmp(de->d_name + len - 7, ".reason") == 0)
				continue;
		} else if (!parse_flat(state, de->d_name, &e))
			continue;
		s->count[state]++;
		if (!bytes && state != MQ_INFLIGHT)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (bytes)
			s->bytes += (uint64_t)st.st_size;
		/* The claim's rename set the ctime. */
		if (state == MQ_INFLIGHT)
			keep_oldest(&s->oldest_lease_ns, ns_of(&st.st_ctim));
	}
	return mq_listing_end(d);
}

int
mq_stats(struct mq_queue *q, struct mq_stats *s, unsigned flags)
{
	static const enum mq_dir dirs[MQ_NSTATES] = {
		MQ_DIR_NEW, MQ_DIR_DELAY, MQ_DIR_CUR, MQ_DIR_DEAD,
		MQ_DIR_QUARANTINE
	};
	int st, bytes = (flags & MQ_STATS_BYTES) != 0, rc;

	memset(s, 0, sizeof(*s));
	for (st = 0; st < MQ_NSTATES; st++) {
		if (mq_dir(q, dirs[st]) == -1) {
			/* A queue made before quarantine/ existed. */
			if (st == MQ_QUARANTINED && errno == MQ_ENOTQUEUE)
				continue;
			return -1;
		}
		rc = st == MQ_READY ? count_ready(q, bytes, s) :
		    count_flat(q, (enum mq_state)st, dirs[st], bytes, s);
		if (rc == -1)
			return -1;
	}
	return 0;
}

struct find {
	const char *id;
	struct mq_entry e;
	int found;
};

static int
find_id(const struct mq_entry *e, void *arg)
{
	struct find *f = arg;

	if (strcmp(e->id, f->id) != 0)
		return 0;
	f->e = *e;
	f->found = 1;
	return 1;
}

int
mq_peek_entry(struct mq_queue *q, const struct mq_entry *e, struct mq_msg *m)
{
	struct stat st;
	int fd, saved;

	memset(m, 0, sizeof(*m));
	m->fd = m->feeder = -1;
	fd = openat(q->fd, e->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		saved = S_ISREG(st.st_mode) ? errno : MQ_EBADMSG;
		close(fd);
		errno = saved;
		return -1;
	}
	m->fd = fd;
	if (mq_header_parse(fd, m, st.st_size) == -1) {
		saved = errno;
		mq_msg_close(m);
		errno = saved;
		return -1;
	}
	/* A subscriber's copy carries its topic's id; here it is ours. */
	memcpy(m->id, e->id, sizeof(m->id));
	m->attempt = e->attempts;
	return 0;
}

int
mq_peek(struct mq_queue *q, const char *id, struct mq_msg *m,
    enum mq_state *state)
{
	struct find f = { id, { 0 }, 0 };
	uint64_t seq;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (mq_id_parse(id, &seq) == -1) {
		errno = EINVAL;
		return -1;
	}
	if (mq_walk(q, MQ_ALL_STATES & ~MQ_STATE_BIT(MQ_QUARANTINED), find_id,
	    &f) == -1)
		return -1;
	if (!f.found) {
		errno = ENOENT;
		return -1;
	}
	if (mq_peek_entry(q, &f.e, m) == -1)
		return -1;
	*state = f.e.state;
	return 0;
}
