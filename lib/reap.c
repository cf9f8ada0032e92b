/*
 * reap.c - leases that ran out, retries that came due, and the locks that
 * tell a live holder from a dead one.
 *
 * No daemon returns expired leases or due retries to new/: whoever looks
 * at the queue next does (mq_reap), so a queue nobody consumes costs
 * nothing and one that is consumed is kept current by its consumers.  A
 * lease taken with a lock ('k' in its name) belongs to a live process for
 * as long as that process holds its byte of the message file (see
 * claim.c): when the holder dies, even by SIGKILL, the kernel drops the
 * lock and the message is free at once instead of at the end of its
 * lease.  Delays and lease ends are in the file names, so one listing of
 * delay/ and cur/ also says when the next one falls due; a listing cut
 * short by an error fails the reap, since a waiter would otherwise sleep
 * past an end it did not see.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

/* 1 when some process holds this queue's byte of a message file, 0 when
 * none does, -1 when the filesystem cannot tell (no lock manager).  Read
 * locks serve, since consumers may only read message files: a write-lock
 * test sees them all, and a claim's exclusiveness comes from its rename. */
int
mq_msg_locked(const struct mq_queue *q, int fd)
{
	struct flock lk = {
		.l_type = F_WRLCK, .l_whence = SEEK_SET,
		.l_start = q->lock_off, .l_len = 1
	};

	if (fcntl(fd, F_OFD_GETLK, &lk) == -1)
		return -1;
	return lk.l_type != F_UNLCK;
}

/* A lease whose holder kept a lock is free once the lock can be taken.
 * A file that cannot be opened for now (no descriptor or memory left,
 * no permission) says nothing of its holder, who may well be alive: it
 * waits for its deadline.  A symbolic link or a socket planted in cur/
 * is no lease and goes on to be set aside. */
static int
holder_gone(const struct mq_queue *q, int curfd, const char *name)
{
	struct stat st;
	int fd, gone;

	fd = openat(curfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return errno == ELOOP || errno == ENXIO;
	gone = fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    mq_msg_locked(q, fd) == 0;
	close(fd);
	return gone;
}

/* A move that found its file gone had lost a race with another consumer,
 * which is no failure.  Returns -1 for a real one. */
static int
counted(int rc, int *moved)
{
	if (rc != -1) {
		(*moved)++;
		return 0;
	}
	return errno == ENOENT || errno == EEXIST ? 0 : -1;
}

static int
closedir_failed(DIR *d)
{
	int saved = errno;

	closedir(d);
	errno = saved;
	return -1;
}

static int
reap_delayed(struct mq_queue *q, int64_t now, int64_t *next_ns, int *moved)
{
	struct dirent *de;
	int64_t due;
	uint64_t seq;
	unsigned n;
	int delayfd;
	DIR *d;

	if ((delayfd = mq_dir(q, MQ_DIR_DELAY)) == -1)
		return -1;
	if ((d = mq_opendirat(delayfd, ".")) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (mq_delay_name_parse(de->d_name, &due, &seq, &n) == -1)
			continue;
		if (due > now) {
			if (due < *next_ns)
				*next_ns = due;
			continue;
		}
		if (counted(mq_move_to_ready(q, delayfd, de->d_name, seq, n, -1,
		    1), moved) == -1)
			return closedir_failed(d);
	}
	return mq_listing_end(d);
}

int
mq_reap(struct mq_queue *q, int64_t *next_ns, int *have_locked)
{
	struct mq_config cfg;
	struct dirent *de;
	int64_t now = mq_now_ns(), deadline, next = INT64_MAX;
	uint64_t seq;
	unsigned n;
	char kind;
	int curfd, locked = 0, moved = 0, rc;
	DIR *d;

	if (mq_config(q, &cfg) == -1 || (curfd = mq_dir(q, MQ_DIR_CUR)) == -1)
		return -1;
	mq_fanout_finish(&cfg);
	if (reap_delayed(q, now, &next, &moved) == -1)
		return -1;
	if ((d = mq_opendirat(curfd, ".")) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (mq_lease_name_parse(de->d_name, &seq, &n, &kind,
		    &deadline) == -1)
			continue;
		if (deadline > now &&
		    (kind != 'k' || !holder_gone(q, curfd, de->d_name))) {
			if (deadline < next)
				next = deadline;
			locked |= kind == 'k';
			continue;
		}
		if (n >= cfg.max_attempts)
			rc = mq_move_to_dead(q, curfd, de->d_name, seq, n,
			    "attempts");
		else
			rc = mq_move_to_ready(q, curfd, de->d_name, seq, n, -1, 1);
		if (counted(rc, &moved) == -1)
			return closedir_failed(d);
	}
	if (mq_listing_end(d) == -1)
		return -1;
	if (next_ns != NULL)
		*next_ns = next;
	if (have_locked != NULL)
		*have_locked = locked;
	return moved;
}

