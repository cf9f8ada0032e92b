/*
 * dedup.c - idempotency keys: a second send with the same key is not
 * enqueued while the first is recent.
 *
 * QUEUE/keys/HASH (HASH: 128-bit BLAKE2b of the key, so any key text is a
 * safe name) is created with O_EXCL before the message is written:
 * of concurrent senders with one key exactly one create succeeds.  The
 * winner writes "pending PID HOST" into it (for an admin to read), holds
 * a write lock on it while it sends, and writes the message id into it
 * once the message is committed; the others wait for that id and report
 * it.  The lock, not the pid, tells whether the sender lives: over NFS
 * locks reach the server and every host sees them, while another host's
 * pids mean nothing here, and the lock goes when its holder dies.  A key
 * whose id is older than the queue's dedup window, or that is pending
 * without a lock, is taken over by renaming it away first, which again
 * only one sender can do.  Old keys are pruned by senders now and then;
 * no daemon is needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "mq_impl.h"

#define WAIT_STEP_NS 10000000L
#define WAIT_MAX_STEPS 3000

static int
keys_dir(struct mq_queue *q)
{
	int fd;

	fd = openat(q->fd, "keys", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (mq_mkdirat(q, q->fd, "keys") == -1)
			return -1;
		fd = openat(q->fd, "keys", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	}
	return fd;
}

void
mq_dedup_name(const char *key, char name[MQ_DEDUP_NAME_SIZE])
{
	unsigned char h[16];

	crypto_generichash(h, sizeof(h), (const unsigned char *)key,
	    strlen(key), NULL, 0);
	sodium_bin2hex(name, MQ_DEDUP_NAME_SIZE, h, sizeof(h));
}

/* This host's name, which with a pid names a pending sender for an admin
 * looking at a queue shared over NFS. */
static const char *
host(void)
{
	static char name[64];

	if (name[0] == '\0' && (gethostname(name, sizeof(name)) == -1 ||
	    name[0] == '\0'))
		strcpy(name, "localhost");
	name[sizeof(name) - 1] = '\0';
	return name;
}

/* Deciding about a key, and writing the id into it, happen under the lock
 * on keys/.lock: a sender that judged a key stale can then not take it
 * over just as its owner writes the id.  Waiting is done unlocked. */
static int
keys_lock(struct mq_queue *q, int kfd)
{
	return mq_folder_lock(q, kfd, "keys");
}

static void
wait_unlocked(int lfd)
{
	const struct timespec step = { 0, WAIT_STEP_NS };
	struct flock lk = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	fcntl(lfd, F_OFD_SETLK, &lk);
	nanosleep(&step, NULL);
	lk.l_type = F_WRLCK;
	while (fcntl(lfd, F_OFD_SETLKW, &lk) == -1 && errno == EINTR)
		;
}

/* Take a key that is no longer valid: only one renamer wins. */
static void
take_over(int kfd, const char *name)
{
	char stale[MQ_DEDUP_NAME_SIZE + 32];

	snprintf(stale, sizeof(stale), ".stale.%s.%ld", name, (long)getpid());
	if (renameat(kfd, name, kfd, stale) == 0)
		unlinkat(kfd, stale, 0);
}

/* Whether a sender holds the lock on the key open on fd. */
static int
key_held(int fd)
{
	struct flock lk = { .l_type = F_RDLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_GETLK, &lk) == -1)
		return -1;
	return lk.l_type != F_UNLCK;
}

/* Create the key, write who sends, and lock it; returns its descriptor.
 * All of it under the keys lock, so that no one judges the key between
 * its creation and its lock. */
static int
key_create(struct mq_queue *q, int kfd, const char *name)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char buf[128];
	int fd, n, saved;

	fd = openat(kfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, q->file_mode);
	if (fd == -1)
		return -1;
	n = snprintf(buf, sizeof(buf), "pending %ld %s\n", (long)getpid(),
	    host());
	if (fcntl(fd, F_OFD_SETLK, &lk) == -1 ||
	    fchmod(fd, q->file_mode) == -1 ||
	    mq_write_all(fd, buf, (size_t)n) == -1) {
		saved = errno;
		unlinkat(kfd, name, 0);
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
mq_dedup_claim(struct mq_queue *q, const char *key, unsigned window_s,
    char name[MQ_DEDUP_NAME_SIZE], char dup_id[MQ_ID_SIZE], int *keyfd)
{
	char buf[128];
	struct stat st;
	uint64_t seq;
	ssize_t n;
	int kfd, lfd, fd, i, held, saved;

	if (mq_sodium_init() == -1 || (kfd = keys_dir(q)) == -1)
		return -1;
	if ((lfd = keys_lock(q, kfd)) == -1) {
		saved = errno;
		close(kfd);
		errno = saved;
		return -1;
	}
	mq_dedup_name(key, name);
	for (i = 0; i < WAIT_MAX_STEPS; i++) {
		if ((fd = key_create(q, kfd, name)) != -1) {
			*keyfd = fd;
			close(lfd);
			close(kfd);
			return 0;
		}
		if (errno != EEXIST)
			goto fail;
		fd = openat(kfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
		if (fd == -1) {
			if (errno == ENOENT)
				continue;
			goto fail;
		}
		n = fstat(fd, &st) == -1 ? -1 : read(fd, buf, sizeof(buf) - 1);
		held = n < 0 ? -1 : key_held(fd);
		close(fd);
		if (n < 0 || held == -1)
			goto fail;
		buf[n] = '\0';
		/* An id (a "pending" line can be 17 bytes too). */
		if (n == 17 && buf[16] == '\n' &&
		    (buf[16] = '\0', mq_id_parse(buf, &seq) == 0)) {
			if (time(NULL) - st.st_mtime < (time_t)window_s) {
				memcpy(dup_id, buf, MQ_ID_SIZE);
				close(lfd);
				close(kfd);
				return 1;
			}
			take_over(kfd, name);
			continue;
		}
		/* Pending: its sender lives, on whichever host, as long as
		 * its lock does, however long its input takes. */
		if (held) {
			wait_unlocked(lfd);
			continue;
		}
		take_over(kfd, name);
	}
	errno = ETIMEDOUT;
fail:
	saved = errno;
	close(lfd);
	close(kfd);
	errno = saved;
	return -1;
}

/* Remove keys whose window has passed.  Under the keys lock, or a key
 * taken over and made again just now could be removed, and a third
 * sender send under it too. */
static void
prune(int kfd, unsigned window_s)
{
	struct dirent *de;
	struct stat st;
	time_t cutoff = time(NULL) - (time_t)window_s;
	DIR *d;
	int fd, held;

	if ((d = mq_opendirat(kfd, ".")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(kfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    st.st_mtime >= cutoff || st.st_size != 17)
			continue;
		/* A pending line can be 17 bytes too: its lock tells. */
		fd = openat(kfd, de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (fd == -1)
			continue;
		held = key_held(fd);
		close(fd);
		if (held == 0)
			unlinkat(kfd, de->d_name, 0);
	}
	closedir(d);
}

int
mq_dedup_settle(struct mq_queue *q, int keyfd, const char *id,
    unsigned window_s)
{
	char line[MQ_ID_SIZE + 1];
	uint64_t seq;
	int kfd, lfd, rc, saved;

	if ((kfd = keys_dir(q)) == -1 || (lfd = keys_lock(q, kfd)) == -1) {
		saved = errno;
		if (kfd != -1)
			close(kfd);
		close(keyfd);
		errno = saved;
		return -1;
	}
	/* Through the sender's own descriptor: a key taken over meanwhile
	 * (its lock lost with an NFS server's state) is another sender's,
	 * and stays so. */
	snprintf(line, sizeof(line), "%s\n", id);
	rc = ftruncate(keyfd, 0) == -1 ? -1 :
	    mq_pwrite_all(keyfd, line, MQ_ID_SIZE, 0);
	saved = errno;
	close(keyfd);
	/* Every 64th id, look for keys whose window has passed. */
	if (mq_id_parse(id, &seq) == 0 && (seq & 63) == 0)
		prune(kfd, window_s);
	close(lfd);
	close(kfd);
	errno = saved;
	return rc;
}

/* Give a key up: remove it if it is still this sender's. */
void
mq_dedup_release(struct mq_queue *q, const char *name, int keyfd)
{
	struct stat mine, now;
	int kfd, lfd;

	if ((kfd = keys_dir(q)) == -1) {
		close(keyfd);
		return;
	}
	if ((lfd = keys_lock(q, kfd)) != -1) {
		if (fstat(keyfd, &mine) == 0 &&
		    fstatat(kfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    mine.st_dev == now.st_dev && mine.st_ino == now.st_ino)
			unlinkat(kfd, name, 0);
		close(lfd);
	}
	close(keyfd);
	close(kfd);
}
