/*
 * admin.c - an admin's bulk operations: redrive dead letters, purge.
 *
 * A redriven message goes back to its own bucket under its own id, so it
 * is received before everything sent after it: redrive restores a
 * message, it does not re-send it.  Each move is the same single rename a
 * consumer's retry is, so redrive and purge are safe to run while
 * producers and consumers work.  Redrive moves only regular files: what
 * else lies in dead/ under a dead letter's name goes to quarantine/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "mq_impl.h"

struct redrive {
	struct mq_queue *q;
	uint64_t *ids;		/* sorted, or NULL for every dead letter */
	size_t nids;
	time_t oldest, newest;
	int reset;
	long moved;
	int err;
};

static int
compare_ids(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* An admin may pipe thousands of ids from mq-ls into one redrive of a
 * queue with as many dead letters: they are sorted once and each dead
 * letter's id is looked up, not compared with every one. */
static int
wanted(const struct redrive *r, const struct mq_entry *e, uint64_t seq)
{
	if (r->oldest != 0 && e->st.st_ctime < r->oldest)
		return 0;
	if (r->newest != 0 && e->st.st_ctime > r->newest)
		return 0;
	if (r->ids == NULL)
		return 1;
	return bsearch(&seq, r->ids, r->nids, sizeof(*r->ids),
	    compare_ids) != NULL;
}

static int
redrive_one(const struct mq_entry *e, void *arg)
{
	struct redrive *r = arg;
	uint64_t seq;

	if (mq_id_parse(e->id, &seq) == -1 || !wanted(r, e, seq))
		return 0;
	/* A link, FIFO, socket, device or directory under a dead letter's
	 * name is no message: redriven, it would be counted as restored and
	 * then set aside by the first consumer to meet it.  It is set aside
	 * here instead, where the admin sees it (the quarantine hook). */
	if (!S_ISREG(e->st.st_mode)) {
		if (mq_quarantine(r->q, e->dirfd, e->name, MQ_EBADMSG) == -1 &&
		    errno != ENOENT) {
			r->err = errno;
			return 1;
		}
		return 0;
	}
	if (mq_move_to_ready(r->q, e->dirfd, e->name, seq,
	    r->reset ? 0 : e->attempts, -1, 1) == -1) {
		if (errno == ENOENT)
			return 0;
		r->err = errno;
		return 1;
	}
	r->moved++;
	return 0;
}

long
mq_redrive(struct mq_queue *q, const char *const *ids, unsigned min_age_s,
    unsigned max_age_s, int reset)
{
	struct redrive r = { q, NULL, 0, 0, 0, reset, 0, 0 };
	time_t now = time(NULL);
	size_t i;
	int rc, saved;

	/* The change time of a dead letter is when it died. */
	if (max_age_s != 0)
		r.oldest = now - (time_t)max_age_s;
	if (min_age_s != 0)
		r.newest = now - (time_t)min_age_s;
	if (ids != NULL) {
		for (i = 0; ids[i] != NULL; i++)
			continue;
		if ((r.ids = calloc(i + 1, sizeof(*r.ids))) == NULL)
			return -1;
		/* What is not an id names no dead letter. */
		for (i = 0; ids[i] != NULL; i++)
			if (mq_id_parse(ids[i], &r.ids[r.nids]) == 0)
				r.nids++;
		qsort(r.ids, r.nids, sizeof(*r.ids), compare_ids);
	}
	rc = mq_walk(q, MQ_STATE_BIT(MQ_DEAD), redrive_one, &r);
	saved = r.err != 0 ? r.err : errno;
	free(r.ids);
	if (rc != 0) {
		errno = saved;
		return -1;
	}
	return r.moved;
}

struct purge {
	long removed;
	int err;
};

static int
purge_one(const struct mq_entry *e, void *arg)
{
	struct purge *p = arg;
	char why[NAME_MAX + 8];

	if (unlinkat(e->dirfd, e->name, S_ISDIR(e->st.st_mode) ?
	    AT_REMOVEDIR : 0) == -1) {
		if (errno == ENOENT)
			return 0;
		p->err = errno;
		return 1;
	}
	if (e->state == MQ_QUARANTINED) {
		snprintf(why, sizeof(why), "%s.reason", e->name);
		unlinkat(e->dirfd, why, 0);
	}
	p->removed++;
	return 0;
}

long
mq_purge(struct mq_queue *q, unsigned states)
{
	struct purge p = { 0, 0 };

	states &= ~MQ_STATE_BIT(MQ_INFLIGHT);
	if (mq_walk(q, states, purge_one, &p) == -1 && p.err == 0)
		return -1;
	if (p.err != 0) {
		errno = p.err;
		return -1;
	}
	return p.removed;
}
