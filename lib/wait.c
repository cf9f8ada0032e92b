/*
 * wait.c - sleeping until a message may be ready, without polling.
 *
 * inotify watches new/ (a new bucket), every bucket in it (a message
 * renamed in), cur/ (a lease whose end must be timed, or a settlement
 * that frees a message group) and delay/ (a retry's due time).  inotify is not recursive, so buckets are watched afresh each
 * time the waiter is armed, before the caller looks for work: anything
 * sent after that look raises an event.  Every wake leads to a full look,
 * so an overflowed event queue (IN_Q_OVERFLOW) loses nothing.  Leases and
 * delays end by the clock, not by an event, so the sleep is bounded by the
 * earliest of them; a lock holder's death raises no event in the folder,
 * so while any lease is held by a lock the sleep is at most a second.
 * Where inotify cannot see other hosts' changes (network filesystems) the
 * waiter polls.
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
};

static int
watch(struct mq_waiter *w, enum mq_dir which, uint32_t mask)
{
	char path[PATH_MAX + 16];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", w->q->path,
	    mq_dir_names[which]);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return inotify_add_watch(w->ifd, path, mask | IN_ONLYDIR |
	    IN_DONT_FOLLOW) == -1 ? -1 : 0;
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
	if ((w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		goto fail;
	if (watch(w, MQ_DIR_NEW, IN_CREATE | IN_MOVED_TO) == -1 ||
	    watch(w, MQ_DIR_CUR, IN_CREATE | IN_MOVED_TO | IN_DELETE |
	    IN_MOVED_FROM) == -1 ||
	    watch(w, MQ_DIR_DELAY, IN_CREATE | IN_MOVED_TO) == -1)
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

static void
drain(int fd)
{
	char buf[8192];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int
mq_waiter_arm(struct mq_waiter *w)
{
	char path[PATH_MAX + NAME_MAX + 8];
	struct dirent *de;
	struct mq_bucket b;
	DIR *d;
	int fd;

	if (w->ifd == -1)
		return 0;
	drain(w->ifd);
	fd = openat(w->q->dirfd[MQ_DIR_NEW], ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (fd == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (mq_bucket_name_parse(de->d_name, &b) == -1)
			continue;
		snprintf(path, sizeof(path), "%s/new/%s", w->q->path, de->d_name);
		/* A bucket removed meanwhile needs no watch. */
		inotify_add_watch(w->ifd, path, IN_CREATE | IN_MOVED_TO |
		    IN_ONLYDIR | IN_DONT_FOLLOW);
	}
	closedir(d);
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
	if (w->ifd == -1 && (ms < 0 || ms > POLL_MS))
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
