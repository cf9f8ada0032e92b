/*
 * wait.c - sleeping until a message may be ready, without polling.
 *
 * inotify watches new/ (a new bucket), every bucket in it (a message
 * renamed in), cur/ (a lease whose end must be timed, or a settlement
 * that frees a message group) and delay/ (a retry's due time).  inotify
 * is not recursive: a bucket made since the last arm is named by its
 * event in new/, and arming watches it before the caller looks for work,
 * so anything sent after that look raises an event.  new/ is listed again
 * only when events were lost (IN_Q_OVERFLOW), which keeps a directory
 * listing off the path from a wake to its claim.  Every wake leads to a
 * full look, so a lost event loses nothing.  Leases and delays end by the
 * clock, not by an event, so the sleep is bounded by the earliest of
 * them; a lock holder's death raises no event in the folder, so while
 * any lease is held by a lock the sleep is at most a second.
 * Where inotify cannot see other hosts' changes (network filesystems) the
 * waiter polls; so it does while a bucket could not be watched (no
 * watches left), since a message could arrive there unseen, and it tries
 * the bucket's watch again at every arm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "mq_impl.h"

#define POLL_MS 1000
#define LOCK_POLL_MS 1000

struct mq_waiter {
	struct mq_queue *q;
	int ifd;
	int new_wd;		/* the watch on new/, whose events name buckets */
	int relist;		/* buckets may be unwatched: list new/ */
	int blind;		/* a bucket could not be watched: poll */
};

/* Watch QUEUE/DIR, or QUEUE/new/BUCKET; returns the watch descriptor. */
static int
watch(struct mq_waiter *w, enum mq_dir which, const char *bucket,
    uint32_t mask)
{
	char path[PATH_MAX + NAME_MAX + 8];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s%s%s", w->q->path,
	    mq_dir_names[which], bucket != NULL ? "/" : "",
	    bucket != NULL ? bucket : "");
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return inotify_add_watch(w->ifd, path, mask | IN_ONLYDIR |
	    IN_DONT_FOLLOW);
}

static int
watch_folders(struct mq_waiter *w)
{
	if ((w->new_wd = watch(w, MQ_DIR_NEW, NULL, IN_CREATE |
	    IN_MOVED_TO)) == -1 ||
	    watch(w, MQ_DIR_CUR, NULL, IN_CREATE | IN_MOVED_TO | IN_DELETE |
	    IN_MOVED_FROM) == -1 ||
	    watch(w, MQ_DIR_DELAY, NULL, IN_CREATE | IN_MOVED_TO) == -1)
		return -1;
	w->relist = 1;
	return 0;
}

struct mq_waiter *
mq_waiter_new(struct mq_queue *q)
{
	struct mq_waiter *w;
	int saved;

	if (mq_dir(q, MQ_DIR_NEW) == -1 || mq_dir(q, MQ_DIR_CUR) == -1 ||
	    mq_dir(q, MQ_DIR_DELAY) == -1)
		return NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->q = q;
	w->ifd = -1;
	if (mq_is_remote(q))
		return w;
	if ((w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    watch_folders(w) == -1)
		goto fail;
	return w;
fail:
	saved = errno;
	mq_waiter_free(w);
	errno = saved;
	return NULL;
}

void
mq_waiter_free(struct mq_waiter *w)
{
	if (w == NULL)
		return;
	if (w->ifd != -1)
		close(w->ifd);
	free(w);
}

int
mq_waiter_fd(const struct mq_waiter *w)
{
	return w->ifd;
}

/* Watch bucket NAME of new/.  One removed meanwhile, or that is no
 * directory, needs no watch; one that cannot be watched for another
 * reason (no watches left) makes the waiter poll. */
static void
watch_bucket(struct mq_waiter *w, const char *name)
{
	if (watch(w, MQ_DIR_NEW, name, IN_CREATE | IN_MOVED_TO) == -1 &&
	    errno != ENOENT && errno != ENOTDIR)
		w->blind = 1;
}

/* Watch every bucket in new/. */
static int
watch_buckets(struct mq_waiter *w)
{
	struct dirent *de;
	struct mq_bucket b;
	DIR *d;

	if ((d = mq_opendirat(w->q->dirfd[MQ_DIR_NEW], ".")) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL)
		if (mq_bucket_name_parse(de->d_name, &b) == 0)
			watch_bucket(w, de->d_name);
	/* A listing cut short left buckets unwatched. */
	return mq_listing_end(d);
}

/* Read the pending events: watch each bucket made in new/, and note
 * whether any were lost. */
static void
take_events(struct mq_waiter *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	struct mq_bucket b;
	ssize_t n;
	char *p;

	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				w->relist = 1;
			else if (ev->wd == w->new_wd && (ev->mask & IN_ISDIR) &&
			    ev->len > 0 &&
			    mq_bucket_name_parse(ev->name, &b) == 0)
				watch_bucket(w, ev->name);
		}
	}
}

int
mq_waiter_arm(struct mq_waiter *w)
{
	if (w->ifd == -1)
		return 0;
	take_events(w);
	if (w->relist || w->blind) {
		w->blind = 0;
		if (watch_buckets(w) == -1)
			return -1;
		w->relist = 0;
	}
	return 0;
}

int
mq_waiter_timeout(struct mq_waiter *w, int limit_ms, int *ms_out)
{
	int64_t next, now, ms;
	int locked, moved;

	if ((moved = mq_reap(w->q, &next, &locked)) == -1)
		return -1;
	if (moved > 0) {
		*ms_out = 0;
		return 0;
	}
	ms = limit_ms;
	if (next != INT64_MAX) {
		now = mq_now_ns();
		next = next > now ? (next - now + 999999) / 1000000 : 0;
		if (ms < 0 || next < ms)
			ms = next;
	}
	if (locked && (ms < 0 || ms > LOCK_POLL_MS))
		ms = LOCK_POLL_MS;
	if ((w->ifd == -1 || w->blind) && (ms < 0 || ms > POLL_MS))
		ms = POLL_MS;
	*ms_out = (int)ms;
	return 0;
}

int
mq_waiter_wait(struct mq_waiter *w, int limit_ms)
{
	struct pollfd p;
	int ms;

	if (mq_waiter_timeout(w, limit_ms, &ms) == -1)
		return -1;
	if (ms == 0)
		return 0;
	p.fd = w->ifd;
	p.events = POLLIN;
	if (poll(&p, w->ifd == -1 ? 0 : 1, ms) == -1)
		return -1;
	return 0;
}
