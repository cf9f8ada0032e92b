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
 * the stale file away first so that only one claimer can.  Nothing has
 * to be cleaned up when a consumer dies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

static int
dir_has(int dirfd, const char *dir, const char *id, size_t at)
{
	struct dirent *de;
	size_t len = strlen(id);
	int found = 0;
	DIR *d;

	if ((d = mq_opendirat(dirfd, dir)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL)
		found = strlen(de->d_name) > at + len &&
		    strncmp(de->d_name + at, id, len) == 0 &&
		    de->d_name[at + len] == '.';
	closedir(d);
	return found;
}

/* Is message id still in the queue: ready, leased or delayed? */
static int
still_queued(struct mq_queue *q, const char *id)
{
	char bucket[MQ_BUCKET_NAME_SIZE];
	uint64_t seq;
	int prio;

	if (mq_id_parse(id, &seq) == -1)
		return 0;
	for (prio = 0; prio <= 9; prio++) {
		mq_bucket_name(seq, prio, bucket);
		if (dir_has(q->dirfd[MQ_DIR_NEW], bucket, id, 0))
			return 1;
	}
	return dir_has(q->dirfd[MQ_DIR_CUR], ".", id, 0) ||
	    (mq_dir(q, MQ_DIR_DELAY) != -1 &&
	    dir_has(q->dirfd[MQ_DIR_DELAY], ".", id, 20));
}

int
mq_group_acquire(struct mq_queue *q, const char *group, const char *id)
{
	unsigned char h[16];
	char name[33], stale[64], owner[MQ_ID_SIZE + 1];
	ssize_t n;
	int gfd, fd, tries, rc = -1;

	if (mq_sodium_init() == -1 || (gfd = groups_dir(q)) == -1)
		return -1;
	crypto_generichash(h, sizeof(h), (const unsigned char *)group,
	    strlen(group), NULL, 0);
	sodium_bin2hex(name, sizeof(name), h, sizeof(h));
	for (tries = 0; tries < 8; tries++) {
		fd = openat(gfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, q->file_mode);
		if (fd != -1) {
			rc = mq_write_all(fd, id, MQ_ID_SIZE - 1) == 0 ? 1 : -1;
			close(fd);
			break;
		}
		if (errno != EEXIST)
			break;
		fd = openat(gfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (fd == -1) {
			if (errno == ENOENT)
				continue;
			break;
		}
		n = read(fd, owner, MQ_ID_SIZE - 1);
		close(fd);
		if (n == MQ_ID_SIZE - 1) {
			owner[n] = '\0';
			if (strcmp(owner, id) == 0) {
				rc = 1;
				break;
			}
			if (still_queued(q, owner)) {
				rc = 0;
				break;
			}
		} else if (n != 0) {
			/* Not an owner record: take it over. */
		} else
			continue;
		snprintf(stale, sizeof(stale), ".stale.%s.%ld", name,
		    (long)getpid());
		if (renameat(gfd, name, gfd, stale) == 0)
			unlinkat(gfd, stale, 0);
	}
	if (tries == 8) {
		errno = EAGAIN;
		rc = -1;
	}
	close(gfd);
	return rc == -1 && errno == EAGAIN ? 0 : rc;
}
