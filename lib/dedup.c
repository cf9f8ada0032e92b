/*
 * dedup.c - idempotency keys: a second send with the same key is not
 * enqueued while the first is recent.
 *
 * QUEUE/keys/HASH (HASH: 128-bit BLAKE2b of the key, so any key text is a
 * safe name) is created with O_EXCL before the message is written:
 * of concurrent senders with one key exactly one create succeeds.  The
 * winner writes "pending PID HOST" into it, and the message id once the
 * message is committed; the others wait for that id and report it.  A
 * key whose id is older than the queue's dedup window, or whose pending
 * sender has died, is taken over by renaming it away first, which again
 * only one sender can do.  Old keys are pruned by senders now and then;
 * no daemon is needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
#define PENDING_MAX_S 3600
/* A pending key of another host cannot be checked for life: it is taken
 * over once it is this old. */
#define PENDING_FOREIGN_S 60

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

/* This host's name, which with a pid names a pending sender: on a queue
 * shared over NFS another host's pids mean nothing here. */
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

/* Deciding about a key, and writing the id into it, happen under an OFD
 * lock on keys/.lock: a sender that judged a key stale can then not take
 * it over just as its owner writes the id.  Waiting is done unlocked. */
static int
keys_lock(struct mq_queue *q, int kfd)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	fd = openat(kfd, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    q->file_mode);
	if (fd == -1)
		return -1;
	while (fcntl(fd, F_OFD_SETLKW, &lk) == -1)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
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

int
mq_dedup_claim(struct mq_queue *q, const char *key, unsigned window_s,
    char name[MQ_DEDUP_NAME_SIZE], char dup_id[MQ_ID_SIZE])
{
	char buf[128], owner[64], last[128] = "";
	struct stat st;
	uint64_t seq;
	ssize_t n;
	long pid;
	int kfd, lfd, fd, i, saved;
	time_t now;

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
		fd = openat(kfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, q->file_mode);
		if (fd != -1) {
			n = snprintf(buf, sizeof(buf), "pending %ld %s\n",
			    (long)getpid(), host());
			if (fchmod(fd, q->file_mode) == -1 ||
			    mq_write_all(fd, buf, (size_t)n) == -1) {
				saved = errno;
				close(fd);
				unlinkat(kfd, name, 0);
				close(lfd);
				close(kfd);
				errno = saved;
				return -1;
			}
			close(fd);
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
		close(fd);
		if (n < 0)
			goto fail;
		buf[n] = '\0';
		now = time(NULL);
		/* An id (a "pending" line can be 17 bytes too). */
		if (n == 17 && buf[16] == '\n' &&
		    (buf[16] = '\0', mq_id_parse(buf, &seq) == 0)) {
			if (now - st.st_mtime < (time_t)window_s) {
				memcpy(dup_id, buf, MQ_ID_SIZE);
				close(lfd);
				close(kfd);
				return 1;
			}
			take_over(kfd, name);
			continue;
		}
		if (n == 17)
			buf[16] = '\n';
		if (sscanf(buf, "pending %ld %63s", &pid, owner) == 2 &&
		    pid > 0 && (strcmp(owner, host()) != 0 ?
		    now - st.st_mtime < PENDING_FOREIGN_S :
		    now - st.st_mtime < PENDING_MAX_S &&
		    (kill((pid_t)pid, 0) == 0 || errno == EPERM))) {
			wait_unlocked(lfd);
			continue;
		}
		/* Empty: its sender is between create and write. */
		if (n == 0 && now - st.st_mtime < 10) {
			wait_unlocked(lfd);
			continue;
		}
		/* Its sender may have written the id and exited since the
		 * read: take over only what is still the same after a look
		 * again. */
		if (strcmp(buf, last) != 0) {
			snprintf(last, sizeof(last), "%s", buf);
			continue;
		}
		take_over(kfd, name);
		last[0] = '\0';
	}
	errno = ETIMEDOUT;
fail:
	saved = errno;
	close(lfd);
	close(kfd);
	errno = saved;
	return -1;
}

static void
prune(int kfd, unsigned window_s)
{
	struct dirent *de;
	struct stat st;
	time_t cutoff = time(NULL) - (time_t)window_s;
	DIR *d;

	if ((d = mq_opendirat(kfd, ".")) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' &&
		    fstatat(kfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime < cutoff && st.st_size == 17)
			unlinkat(kfd, de->d_name, 0);
	closedir(d);
}

int
mq_dedup_settle(struct mq_queue *q, const char *name, const char *id,
    unsigned window_s)
{
	char line[MQ_ID_SIZE + 1];
	uint64_t seq;
	int kfd, lfd, fd, rc;

	if ((kfd = keys_dir(q)) == -1)
		return -1;
	if ((lfd = keys_lock(q, kfd)) == -1) {
		close(kfd);
		return -1;
	}
	fd = openat(kfd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		close(lfd);
		close(kfd);
		return -1;
	}
	snprintf(line, sizeof(line), "%s\n", id);
	rc = mq_write_all(fd, line, MQ_ID_SIZE);
	close(fd);
	close(lfd);
	/* Every 64th id, look for keys whose window has passed. */
	if (mq_id_parse(id, &seq) == 0 && (seq & 63) == 0)
		prune(kfd, window_s);
	close(kfd);
	return rc;
}

void
mq_dedup_release(struct mq_queue *q, const char *name)
{
	int kfd;

	if ((kfd = keys_dir(q)) == -1)
		return;
	unlinkat(kfd, name, 0);
	close(kfd);
}
