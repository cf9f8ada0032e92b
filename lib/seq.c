/*
 * seq.c - the queue's sequence counter, which orders messages.
 *
 * Every message id is a 64-bit sequence number taken from QUEUE/seq under
 * an exclusive lock, so a send that began after another returned always
 * gets a larger id, whatever the clocks do.  Syncing the counter on every
 * send would double the cost of a send, so it is synced only when a boot
 * begins a new epoch (the top 24 bits): the file records the boot id, and
 * the first send after a reboot finds it changed, moves to the next epoch
 * and syncs that before using it.  Whatever a power cut did to the counter
 * within the old boot, every new id is larger than every old one.  On a
 * network filesystem the counter lives in the server's cache, which no
 * client's boot id describes, and hosts would take turns starting epochs:
 * there the counter is synced on every reservation instead.  The lock is
 * an OFD lock, which NFS carries to the server (NLM or NFSv4).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

#define BOOT_ID_LEN 36
#define SEQ_LINE_LEN (BOOT_ID_LEN + 1 + 16 + 1)
#define EPOCH_SHIFT 40

static char boot_id[BOOT_ID_LEN + 1];

static int
read_boot_id(void)
{
	int fd;
	ssize_t n;

	if (boot_id[0] != '\0')
		return 0;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	n = mq_read_full(fd, boot_id, BOOT_ID_LEN);
	close(fd);
	if (n != BOOT_ID_LEN) {
		boot_id[0] = '\0';
		errno = EIO;
		return -1;
	}
	boot_id[BOOT_ID_LEN] = '\0';
	return 0;
}

static int
lock_seq(struct mq_queue *q)
{
	int fd;

	struct stat st;

	fd = openat(q->fd, "seq", O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			errno = MQ_ENOTQUEUE;
		return -1;
	}
	/* A counter shared with another queue through a hard link, or not a
	 * file at all, must not be written through. */
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		errno = MQ_EBADCONF;
		return -1;
	}
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	while (fcntl(fd, F_OFD_SETLKW, &lk) == -1) {
		if (errno != EINTR) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
	}
	return fd;
}

int
mq_seq_reserve(struct mq_queue *q, unsigned count, uint64_t *first)
{
	char line[SEQ_LINE_LEN + 1];
	uint64_t next;
	ssize_t n;
	int fd, new_epoch, remote, saved;

	if (read_boot_id() == -1)
		return -1;
	if ((fd = lock_seq(q)) == -1)
		return -1;
	n = pread(fd, line, SEQ_LINE_LEN, 0);
	if (n != SEQ_LINE_LEN || line[BOOT_ID_LEN] != ' ' ||
	    line[SEQ_LINE_LEN - 1] != '\n') {
		errno = n == -1 ? errno : MQ_EBADCONF;
		goto fail;
	}
	line[SEQ_LINE_LEN - 1] = '\0';
	if (mq_id_parse(line + BOOT_ID_LEN + 1, &next) == -1) {
		errno = MQ_EBADCONF;
		goto fail;
	}
	remote = mq_is_remote(q);
	new_epoch = !remote && memcmp(line, boot_id, BOOT_ID_LEN) != 0;
	if (new_epoch)
		next = ((next >> EPOCH_SHIFT) + 1) << EPOCH_SHIFT;
	*first = next;
	memcpy(line, boot_id, BOOT_ID_LEN);
	mq_id_format(next + count, line + BOOT_ID_LEN + 1);
	line[SEQ_LINE_LEN - 1] = '\n';
	if (mq_pwrite_all(fd, line, SEQ_LINE_LEN, 0) == -1)
		goto fail;
	if ((new_epoch || remote) && fdatasync(fd) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Read the counter without taking an id: fsck's check. */
int
mq_seq_peek(struct mq_queue *q, uint64_t *next)
{
	char line[SEQ_LINE_LEN + 1];
	ssize_t n;
	int fd;

	fd = openat(q->fd, "seq", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return -1;
	n = pread(fd, line, SEQ_LINE_LEN + 1, 0);
	close(fd);
	if (n != SEQ_LINE_LEN || line[BOOT_ID_LEN] != ' ' ||
	    line[SEQ_LINE_LEN - 1] != '\n') {
		errno = MQ_EBADCONF;
		return -1;
	}
	line[SEQ_LINE_LEN - 1] = '\0';
	return mq_id_parse(line + BOOT_ID_LEN + 1, next) == 0 ? 0 :
	    (errno = MQ_EBADCONF, -1);
}

static int
max_in_dir(int dirfd, int skip_due, uint64_t *max)
{
	struct dirent *de;
	uint64_t seq;
	const char *p;
	DIR *d;
	int fd, saved;

	if ((fd = dup(dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		saved = errno;
		if (fd != -1)
			close(fd);
		errno = saved;
		return -1;
	}
	rewinddir(d);
	while ((errno = 0, de = readdir(d)) != NULL) {
		p = de->d_name;
		if (skip_due) {
			if ((p = strchr(p, '.')) != NULL)
				p++;
		} else if (p[0] == 'p' && p[1] >= '1' && p[1] <= '9' &&
		    p[2] == '-')
			p += 3;		/* a bucket of priority N: pN-ID */
		if (p != NULL && strlen(p) >= 16 && p[16] == '.') {
			char id[MQ_ID_SIZE];
			memcpy(id, p, 16);
			id[16] = '\0';
			if (mq_id_parse(id, &seq) == 0 && seq > *max)
				*max = seq;
		} else if (p != NULL && mq_id_parse(p, &seq) == 0 && seq > *max)
			*max = seq;
	}
	return mq_listing_end(d);
}

/* Write a counter that continues after every id found in the queue: a new
 * queue starts at epoch 0, a queue whose counter was lost at the epoch
 * after the largest id present. */
int
mq_seq_create(struct mq_queue *q)
{
	char line[SEQ_LINE_LEN + 1];
	uint64_t max = 0, next;
	int i;
	static const enum mq_dir dirs[] = {
		MQ_DIR_NEW, MQ_DIR_CUR, MQ_DIR_DELAY, MQ_DIR_DEAD
	};

	for (i = 0; i < 4; i++) {
		int dfd = mq_dir(q, dirs[i]);
		/* A counter from a listing cut short could start below ids
		 * in use. */
		if (dfd != -1 &&
		    max_in_dir(dfd, dirs[i] == MQ_DIR_DELAY, &max) == -1)
			return -1;
	}
	if (max != 0) {
		/* Bucket names cover up to 1024 ids past their own. */
		max += (uint64_t)1 << MQ_BUCKET_BITS;
		next = ((max >> EPOCH_SHIFT) + 1) << EPOCH_SHIFT;
	} else
		next = 1;
	memset(line, '0', BOOT_ID_LEN);
	line[BOOT_ID_LEN] = ' ';
	mq_id_format(next, line + BOOT_ID_LEN + 1);
	line[SEQ_LINE_LEN - 1] = '\n';
	if (mq_write_file(q, "seq", line, SEQ_LINE_LEN, 0) == -1)
		return errno == EEXIST ? 0 : -1;
	return 0;
}
