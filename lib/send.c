/*
 * send.c - writing messages and committing them, alone or in groups.
 *
 * The maildir protocol: a message is created exclusively in tmp/ under a
 * name no one else can choose, written, its data synced, renamed into its
 * bucket in new/, and the bucket directory synced; only then is it sent.
 * A crash before the rename leaves a file in tmp/ that is never delivered
 * and is removed once stale.  Committing many drafts at once is the same
 * protocol with each step done for the whole group: writeback of every
 * file is started before the first one is waited for, and each bucket
 * directory is synced once for all the messages that entered it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mq_impl.h"

struct mq_draft {
	struct mq_queue *q;
	int fd;
	int visible;
	uint64_t seq;
	off_t size_at;
	off_t body_size;
	char id[MQ_ID_SIZE];
	char tmp_name[MQ_NAME_MAX];
};

struct mq_draft *
mq_draft_new(struct mq_queue *q)
{
	char header[256];
	struct mq_draft *d;
	int tmpfd, len, saved;
	int64_t now;

	if ((tmpfd = mq_dir(q, MQ_DIR_TMP)) == -1)
		return NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->q = q;
	d->fd = -1;
	if (mq_seq_reserve(q, 1, &d->seq) == -1)
		goto fail;
	mq_id_format(d->seq, d->id);
	now = mq_now_ns();
	snprintf(d->tmp_name, sizeof(d->tmp_name), "%ld.%" PRId64 ".%s",
	    (long)getpid(), now, d->id);
	d->fd = openat(tmpfd, d->tmp_name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, q->file_mode);
	if (d->fd == -1)
		goto fail;
	if ((len = mq_header_format(header, sizeof(header), d->id, now,
	    &d->size_at)) == -1 ||
	    fchmod(d->fd, q->file_mode) == -1 ||
	    mq_write_all(d->fd, header, (size_t)len) == -1)
		goto fail;
	return d;
fail:
	saved = errno;
	mq_draft_free(d);
	errno = saved;
	return NULL;
}

int
mq_draft_write(struct mq_draft *d, const void *buf, size_t n)
{
	if (mq_write_all(d->fd, buf, n) == -1)
		return -1;
	d->body_size += (off_t)n;
	return 0;
}

int
mq_draft_copy(struct mq_draft *d, int fd)
{
	char buf[128 * 1024];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if (mq_draft_write(d, buf, (size_t)n) == -1)
			return -1;
	}
}

const char *
mq_draft_id(const struct mq_draft *d)
{
	return d->id;
}

void
mq_draft_free(struct mq_draft *d)
{
	int saved = errno;

	if (d == NULL)
		return;
	if (d->fd != -1)
		close(d->fd);
	if (!d->visible && d->tmp_name[0] != '\0')
		unlinkat(mq_dir(d->q, MQ_DIR_TMP), d->tmp_name, 0);
	free(d);
	errno = saved;
}

/* Sync a bucket once for the run of drafts that entered it. */
static int
sync_buckets(struct mq_draft **d, size_t n, size_t *synced)
{
	char bucket[MQ_ID_SIZE], prev[MQ_ID_SIZE] = "";
	int newfd = mq_dir(d[0]->q, MQ_DIR_NEW);
	size_t i;

	for (i = 0; i < n; i++) {
		mq_bucket_name(d[i]->seq, bucket);
		if (strcmp(bucket, prev) == 0)
			continue;
		/* Drafts are in sequence order, so a bucket once left is
		 * never entered again in this group. */
		*synced = i;
		if (mq_fsync_dirat(newfd, bucket) == -1)
			return -1;
		memcpy(prev, bucket, sizeof(prev));
	}
	*synced = n;
	return 0;
}

/* Take back messages renamed into new/ whose durability is unknown; one a
 * consumer already took is delivered, which at-least-once allows. */
static void
withdraw(struct mq_draft **d, size_t from, size_t to)
{
	char bucket[MQ_ID_SIZE], name[MQ_NAME_MAX];
	int newfd = mq_dir(d[0]->q, MQ_DIR_NEW);
	size_t i;

	for (i = from; i < to; i++) {
		mq_bucket_name(d[i]->seq, bucket);
		snprintf(name, sizeof(name), "%s/%s.0", bucket, d[i]->id);
		unlinkat(newfd, name, 0);
	}
}

size_t
mq_commit(struct mq_queue *q, struct mq_draft **d, size_t n)
{
	size_t i, ok, synced = 0;
	int tmpfd, created = 0, rc, saved;

	if (n == 0)
		return 0;
	tmpfd = mq_dir(q, MQ_DIR_TMP);
	for (i = 0; i < n; i++) {
		if (mq_header_set_size(d[i]->fd, d[i]->size_at,
		    d[i]->body_size) == -1)
			goto abort_rest;
		if (n > 1)
			sync_file_range(d[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		if (fdatasync(d[i]->fd) == -1)
			goto abort_rest;
		if (close(d[i]->fd) == -1) {
			d[i]->fd = -1;
			goto abort_rest;
		}
		d[i]->fd = -1;
	}
	for (i = 0; i < n; i++) {
		rc = mq_move_to_ready(q, tmpfd, d[i]->tmp_name, d[i]->seq, 0);
		if (rc == -1)
			break;
		created |= rc;
		d[i]->visible = 1;
	}
	ok = i;
	saved = errno;
	if (ok > 0 && sync_buckets(d, ok, &synced) == -1) {
		saved = errno;
		withdraw(d, synced, ok);
		for (i = synced; i < ok; i++)
			d[i]->visible = 0;
		ok = synced;
	}
	if (created)
		mq_tmp_clean(q, MQ_STALE_TMP_S);
	errno = saved;
	return ok;
abort_rest:
	/* Nothing is visible yet: a failure here fails the whole group, so
	 * a caller never has to guess which messages went out. */
	return 0;
}

/* Remove files in tmp/ older than max_age_s: producers killed mid-send.
 * Young files may belong to a send in progress and are left alone. */
int
mq_tmp_clean(struct mq_queue *q, unsigned max_age_s)
{
	struct dirent *de;
	struct stat st;
	int tmpfd, fd, removed = 0;
	time_t cutoff = time(NULL) - (time_t)max_age_s;
	DIR *dir;

	if ((tmpfd = mq_dir(q, MQ_DIR_TMP)) == -1)
		return -1;
	if ((fd = openat(tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (st.st_mtime < cutoff && !S_ISDIR(st.st_mode) &&
		    unlinkat(tmpfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
