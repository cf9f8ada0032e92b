/*
 * cursor.c - what a consumer taking many messages remembers between claims.
 *
 * A claim must take the ready message of the highest priority with the
 * smallest id.  Finding it costs a listing of new/ and a sort of the
 * first bucket (up to 1024 names), and a reap lists delay/ and cur/: fine
 * for one claim, but a consumer draining a queue would repeat all of it
 * for every message.  So from the second claim of a process on, the
 * claimer keeps the sorted bucket it took from and its position in it,
 * and learns through inotify what changed since: a name arriving in that
 * bucket after its last entry is appended; any other arrival in new/ or
 * in a bucket ranked before it (a retry keeping its place, a higher
 * priority, a new bucket) makes the next claim list afresh; a lease or a
 * delay arriving in cur/ or delay/ brings the next reap forward to its
 * end.  The watches are in place before the listings they guard, so an
 * arrival is either in the listing or seen as an event; an overflowed
 * event queue also means listing afresh.  Reaps run when something falls
 * due and at least once a second, which also notices dead lock holders
 * (their death raises no event).  Network filesystems raise no events for
 * other hosts' changes: there every claim lists and reaps, as a single
 * claim does everywhere.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "mq_impl.h"

#define REAP_EVERY_NS 1000000000LL

struct mq_cursor {
	int ifd;
	int wd_new, wd_cur, wd_delay, wd_bucket;
	int valid;
	struct mq_bucket bucket;
	int bucketfd;
	struct mq_ready *e;
	size_t count, cap, pos;
	int64_t reap_due;
};

static int
watch(struct mq_queue *q, const char *sub, uint32_t mask)
{
	char path[PATH_MAX + 32];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", q->path, sub);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return inotify_add_watch(q->cursor->ifd, path, mask | IN_ONLYDIR |
	    IN_DONT_FOLLOW);
}

int
mq_cursor_start(struct mq_queue *q)
{
	struct mq_cursor *c;

	if (q->cursor != NULL)
		return 0;
	if (mq_is_remote(q) != 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->bucketfd = -1;
	c->wd_bucket = -1;
	q->cursor = c;
	if ((c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    (c->wd_new = watch(q, "new", IN_CREATE | IN_MOVED_TO)) == -1 ||
	    (c->wd_cur = watch(q, "cur", IN_CREATE | IN_MOVED_TO)) == -1 ||
	    (c->wd_delay = watch(q, "delay", IN_CREATE | IN_MOVED_TO)) == -1) {
		mq_cursor_free(c);
		q->cursor = NULL;
		return -1;
	}
	return 0;
}

void
mq_cursor_drop(struct mq_queue *q)
{
	struct mq_cursor *c = q->cursor;

	if (c == NULL)
		return;
	c->valid = 0;
	c->count = c->pos = 0;
	c->wd_bucket = -1;
	if (c->bucketfd != -1) {
		close(c->bucketfd);
		c->bucketfd = -1;
	}
}

void
mq_cursor_free(struct mq_cursor *c)
{
	if (c == NULL)
		return;
	if (c->ifd != -1)
		close(c->ifd);
	if (c->bucketfd != -1)
		close(c->bucketfd);
	free(c->e);
	free(c);
}

int
mq_cursor_watch_bucket(struct mq_queue *q, const char *bucket)
{
	char sub[MQ_BUCKET_NAME_SIZE + 8];

	if (q->cursor == NULL)
		return -1;
	snprintf(sub, sizeof(sub), "new/%s", bucket);
	return watch(q, sub, IN_CREATE | IN_MOVED_TO);
}

void
mq_cursor_keep(struct mq_queue *q, const struct mq_bucket *b, int wd,
    int bucketfd, struct mq_ready *e, size_t count, size_t pos)
{
	struct mq_cursor *c = q->cursor;

	mq_cursor_drop(q);
	free(c->e);
	c->e = e;
	c->count = c->cap = count;
	c->pos = pos;
	c->bucket = *b;
	c->wd_bucket = wd;
	c->bucketfd = bucketfd;
	c->valid = 1;
}

struct mq_ready *
mq_cursor_entries(struct mq_queue *q, int *bucketfd, size_t **pos,
    size_t *count)
{
	struct mq_cursor *c = q->cursor;

	if (c == NULL || !c->valid)
		return NULL;
	*bucketfd = c->bucketfd;
	*pos = &c->pos;
	*count = c->count;
	return c->e;
}

/* A name that arrived in the kept bucket: appended when it sorts after
 * every entry, else the listing is no longer the truth. */
static void
arrived_in_bucket(struct mq_queue *q, const char *name)
{
	struct mq_cursor *c = q->cursor;
	struct mq_ready *last, *grown;
	uint64_t seq;
	unsigned n;

	if (mq_ready_name_parse(name, &seq, &n) == -1 ||
	    (seq >> MQ_BUCKET_BITS) != (c->bucket.base >> MQ_BUCKET_BITS))
		return;
	last = c->count > 0 ? &c->e[c->count - 1] : NULL;
	if (last != NULL && (seq < last->seq ||
	    (seq == last->seq && n <= last->n))) {
		mq_cursor_drop(q);
		return;
	}
	if (c->count == c->cap) {
		if (c->cap >= MQ_BUCKET_ENTRIES_MAX ||
		    (grown = realloc(c->e, 2 * (c->cap + 32) *
		    sizeof(*c->e))) == NULL) {
			mq_cursor_drop(q);
			return;
		}
		c->e = grown;
		c->cap = 2 * (c->cap + 32);
	}
	c->e[c->count].seq = seq;
	c->e[c->count].n = n;
	c->e[c->count].gone = 0;
	c->count++;
}

static void
due_at(struct mq_cursor *c, int64_t t)
{
	if (t < c->reap_due)
		c->reap_due = t;
}

static void
apply(struct mq_queue *q, const struct inotify_event *ev)
{
	struct mq_cursor *c = q->cursor;
	int64_t t;
	uint64_t seq;
	unsigned n;
	char kind;

	if (ev->mask & IN_Q_OVERFLOW) {
		mq_cursor_drop(q);
		c->reap_due = 0;
	} else if (ev->mask & IN_IGNORED) {
		if (ev->wd == c->wd_bucket)
			mq_cursor_drop(q);
	} else if (ev->len == 0)
		return;
	else if (ev->wd == c->wd_cur) {
		if (mq_lease_name_parse(ev->name, &seq, &n, &kind, &t) == 0)
			due_at(c, t);
	} else if (ev->wd == c->wd_delay) {
		if (mq_delay_name_parse(ev->name, &t, &seq, &n) == 0)
			due_at(c, t);
	} else if (c->valid && ev->wd == c->wd_bucket)
		arrived_in_bucket(q, ev->name);
	else
		mq_cursor_drop(q);
}

/* Every event pending must be applied before the next claim: one left
 * unread (a burst of arrivals fills more than one buffer) may be the
 * arrival that ranks before the kept position.  A queue that keeps
 * filling faster than it is read is given up on: the claim reaps and
 * lists afresh, which needs no event. */
#define UPDATE_READS_MAX 64

int
mq_cursor_update(struct mq_queue *q)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct mq_cursor *c = q->cursor;
	const struct inotify_event *ev;
	ssize_t len;
	char *p;
	int reads;

	for (reads = 0; reads < UPDATE_READS_MAX; reads++) {
		len = read(c->ifd, buf, sizeof(buf));
		if (len == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -1;
		}
		for (p = buf; p < buf + len; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			apply(q, ev);
		}
	}
	/* As after an overflow: the events left unread may be arrivals or
	 * lease ends. */
	mq_cursor_drop(q);
	c->reap_due = 0;
	return 0;
}

int
mq_cursor_reap_due(struct mq_queue *q, int64_t now)
{
	return q->cursor->reap_due <= now;
}

void
mq_cursor_reaped(struct mq_queue *q, int64_t now, int64_t next)
{
	struct mq_cursor *c = q->cursor;

	c->reap_due = now + REAP_EVERY_NS;
	due_at(c, next);
}
