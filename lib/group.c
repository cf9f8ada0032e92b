/*
 * group.c - message groups: one message of a group in the works at a time.
 *
 * QUEUE/groups/HASH names the message that owns its group (HASH: BLAKE2b
 * of the group name).  A claim of a grouped message first makes that
 * message the owner, with an O_EXCL create, or finds it already is; any
 * other message of the group is skipped while the owner is still in the
 * queue (ready again, leased, or waiting out a retry), so the group's
 * messages are handled one at a time and in order while other groups go
 * on in parallel.  Ownership is not released on ack: the next message of
 * the group finds the owner gone from the queue and takes over, renaming
 * the stale file away.  Claimers decide under a lock on groups/.lock, one
 * at a time: one that judged a holder gone could otherwise rename away
 * the record another claimer had just made for the group's next message,
 * and both would go on.  Under the lock a record is never seen half made,
 * so an empty one is from a claimer that died making it, and is taken
 * over.  Nothing has to be cleaned up when a consumer dies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "mq_impl.h"

static int
groups_dir(struct mq_queue *q)
{
	int fd;

	fd = openat(q->fd, "groups", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (mq_mkdirat(q, q->fd, "groups") == -1)
			return -1;
		fd = openat(q->fd, "groups", O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
	}
	return fd;
}

/* 1 when folder dir holds a name with id at offset at, 0 when it does
 * not (or is not there), -1 when it could not be read: a listing that
 * failed must not pass for one without the holder, or a second message
 * of its group would go on while the holder is held. */
static int
dir_has(int dirfd, const char *dir, const char *id, size_t at)
{
	struct dirent *de;
	size_t len = strlen(id);
	int found = 0, saved;
	DIR *d;

	if ((d = mq_opendirat(dirfd, dir)) == NULL)
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ?
		    0 : -1;
	while (!found && (errno = 0, de = readdir(d)) != NULL)
		found = strlen(de->d_name) > at + len &&
		    strncmp(de->d_name + at, id, len) == 0 &&
		    de->d_name[at + len] == '.';
	saved = errno;
	closedir(d);
	if (!found && saved != 0) {
		errno = saved;
		return -1;
	}
	return found;
}

/* Is message id still in the queue: ready, leased or delayed?  1, 0, or
 * -1 when that could not be found out. */
static int
still_queued(struct mq_queue *q, const char *id)
{
	char bucket[MQ_BUCKET_NAME_SIZE];
	uint64_t seq;
	int prio, has, delayfd;

	if (mq_id_parse(id, &seq) == -1)
		return 0;
	for (prio = 0; prio <= 9; prio++) {
		mq_bucket_name(seq, prio, bucket);
		if ((has = dir_has(q->dirfd[MQ_DIR_NEW], bucket, id, 0)) != 0)
			return has;
	}
	if ((has = dir_has(q->dirfd[MQ_DIR_CUR], ".", id, 0)) != 0)
		return has;
	if ((delayfd = mq_dir(q, MQ_DIR_DELAY)) == -1)
		return -1;
	return dir_has(delayfd, ".", id, 20);
}

/* Make id the holder of the group recorded in groups/NAME; a record
 * that cannot be completed is removed, not left empty.  It gets the
 * queue's mode whatever the umask, since every consumer in the queue's
 * group reads it. */
static int
record(struct mq_queue *q, int gfd, const char *name, const char *id)
{
	int fd, saved;

	fd = openat(gfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, q->file_mode);
	if (fd == -1)
		return -1;
	if (fchmod(fd, q->file_mode) == -1 ||
	    mq_write_all(fd, id, MQ_ID_SIZE - 1) == -1) {
		saved = errno;
		close(fd);
		unlinkat(gfd, name, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

/* Who holds the group, under groups/.lock.  Returns 1 id does, 0 another
 * message still in the queue does, -1. */
static int
decide(struct mq_queue *q, int gfd, const char *name, const char *id)
{
	char stale[64], owner[MQ_ID_SIZE];
	ssize_t n;
	int fd, queued;

	fd = openat(gfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return record(q, gfd, name, id) == -1 ? -1 : 1;
	if (fd != -1) {
		n = mq_read_full(fd, owner, sizeof(owner));
		close(fd);
		if (n == -1 && errno != EISDIR)
			return -1;
		if (n == MQ_ID_SIZE - 1) {
			owner[n] = '\0';
			if (strcmp(owner, id) == 0)
				return 1;
			if ((queued = still_queued(q, owner)) != 0)
				return queued == 1 ? 0 : -1;
		}
	} else if (errno != ELOOP && errno != ENXIO)
		return -1;
	/* The holder is gone, or this is no record: one left empty by a
	 * claimer killed after creating it, or something planted. */
	snprintf(stale, sizeof(stale), ".stale.%s.%ld", name, (long)getpid());
	if (renameat(gfd, name, gfd, stale) == 0)
		unlinkat(gfd, stale, 0);
	else if (errno != ENOENT)
		return -1;
	return record(q, gfd, name, id) == -1 ? -1 : 1;
}

int
mq_group_acquire(struct mq_queue *q, const char *group, const char *id)
{
	unsigned char h[16];
	char name[33];
	int gfd, lfd, rc, saved;

	if (mq_sodium_init() == -1 || (gfd = groups_dir(q)) == -1)
		return -1;
	if ((lfd = mq_folder_lock(q, gfd, "groups")) == -1) {
		saved = errno;
		close(gfd);
		errno = saved;
		return -1;
	}
	crypto_generichash(h, sizeof(h), (const unsigned char *)group,
	    strlen(group), NULL, 0);
	sodium_bin2hex(name, sizeof(name), h, sizeof(h));
	rc = decide(q, gfd, name, id);
	saved = errno;
	close(lfd);
	close(gfd);
	errno = saved;
	return rc;
}
