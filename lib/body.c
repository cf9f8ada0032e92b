/*
 * body.c - delivering a claimed message's body, in memory that does not
 * grow with it.
 *
 * A plain body (not compressed or sealed; a signed one too, since its
 * signature follows the body and is simply not copied) comes straight out
 * of the message file.  To a pipe or a socket it goes with sendfile, the
 * pages handed over without passing through this process.  To a file it
 * goes with pread and write of 128 KiB into blocks reserved beforehand,
 * each write ending on a multiple of 128 KiB of the output.  On ext4 that
 * measured fastest (256 MiB from the page cache: 50 ms, against 65 ms
 * without the reservation and 80-100 ms with copy_file_range, whose
 * in-kernel copy stumbles on a body that starts at an odd offset, after
 * its header).
 * Compressed and sealed bodies are decoded by decode.c.  A body saved
 * durably has its writeback started every few MiB while it is copied, so
 * that the final sync finds little left to write.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mq_impl.h"

#define CHUNK (128 * 1024)
#define SENDFILE_MAX (1 << 30)

/* Copy with sendfile.  Returns 0 when all is copied, 1 when out takes no
 * sendfile (a terminal) and the rest must be written, -1 on error. */
static int
send_pages(int in, off_t *off, off_t *left, int out)
{
	ssize_t n;

	while (*left > 0) {
		n = sendfile(out, in, off, *left < SENDFILE_MAX ?
		    (size_t)*left : SENDFILE_MAX);
		if (n == -1) {
			if (errno == EINTR || mq_wait_writable(out) == 0)
				continue;
			return errno == EINVAL || errno == ENOSYS ? 1 : -1;
		}
		if (n == 0) {
			errno = MQ_EBADMSG;
			return -1;
		}
		*left -= n;
	}
	return 0;
}

/* Copy through a buffer; at is where out writes (for a file), so that
 * writes end on multiples of CHUNK.  durable: start writeback as it goes. */
static int
copy_loop(int in, off_t off, off_t left, int out, off_t at, int durable)
{
	char buf[CHUNK];
	off_t kicked = at;
	size_t want;
	ssize_t r;

	while (left > 0) {
		want = CHUNK - (size_t)(at % CHUNK);
		if ((off_t)want > left)
			want = (size_t)left;
		r = pread(in, buf, want, off);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = MQ_EBADMSG;
			return -1;
		}
		if (mq_write_all(out, buf, (size_t)r) == -1)
			return -1;
		off += r;
		left -= r;
		at += r;
		if (durable)
			mq_writeback(out, &kicked, at);
	}
	return 0;
}

static int
copy_plain(const struct mq_msg *m, int out, int durable)
{
	off_t off = m->body_offset, left = m->body_size, at;
	struct stat st;
	int rc, fl;

	/* A body that fits in the header's read came with it: one write. */
	if (off + left <= MQ_HEADER_MAX)
		return mq_write_all(out, m->header + off, (size_t)left);
	/* A small body is one pread and one write: nothing to set up. */
	if (left <= CHUNK)
		return copy_loop(m->fd, off, left, out, 0, 0);
	if (fstat(out, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		if ((rc = send_pages(m->fd, &off, &left, out)) != 1)
			return rc;
		return copy_loop(m->fd, off, left, out, 0, 0);
	}
	if ((fl = fcntl(out, F_GETFL)) == -1)
		return -1;
	at = fl & O_APPEND ? st.st_size : lseek(out, 0, SEEK_CUR);
	if (at == -1 || mq_prealloc(out, at, left) == -1)
		return -1;
	return copy_loop(m->fd, off, left, out, at, durable);
}

static int
copy_body(struct mq_queue *q, const struct mq_msg *m, int fd, int durable)
{
	if (m->compressed || m->sealed)
		return mq_decode(q, m, fd);
	return copy_plain(m, fd, durable);
}

int
mq_msg_copy_body(struct mq_queue *q, const struct mq_msg *m, int fd)
{
	return copy_body(q, m, fd, 0);
}

/* The directory that holds path, synced, so that a file just created
 * there is found after a crash.  A directory we may write in but not
 * read (a drop box) cannot be opened to be synced: the file's data is
 * all that can be made durable there, and that is no reason to fail. */
static int
sync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((len = (size_t)(slash - path)) < sizeof(dir)) {
		memcpy(dir, path, len);
		dir[len] = '\0';
	} else {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return errno == EACCES ? 0 : -1;
	return mq_fsync_close(fd);
}

int
mq_msg_save_body(struct mq_queue *q, const struct mq_msg *m, int fd,
    const char *path)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode))
		return copy_body(q, m, fd, 0);
	if (copy_body(q, m, fd, 1) == -1 || fdatasync(fd) == -1)
		return -1;
	return sync_parent(path);
}

/* Close every descriptor from 3 up but the n in keep (ascending).  A
 * forked feeder must not keep the messages its parent holds: their locks
 * are open file description locks, which a copied descriptor keeps for as
 * long as it is open, so a message given back meanwhile would stay locked,
 * passed over by every claimer, until the feeder ends. */
static void
close_all_but(const int *keep, int n)
{
	unsigned from = 3;
	int i, fd, max;

	for (i = 0; i < n; i++) {
		if ((unsigned)keep[i] > from &&
		    close_range(from, (unsigned)keep[i] - 1, 0) == -1)
			break;
		from = (unsigned)keep[i] + 1;
	}
	if (i == n && close_range(from, ~0U, 0) == 0)
		return;
	/* A kernel before 5.9. */
	max = (int)sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++) {
		for (i = 0; i < n && keep[i] != fd; i++)
			;
		if (i == n)
			close(fd);
	}
}

static void
sort3(int *v)
{
	int t;

	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
	if (v[1] > v[2])
		t = v[1], v[1] = v[2], v[2] = t;
	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
}

/* The feeder's end: its errno on the status pipe when the copy failed,
 * written before the body pipe closes, so that a handler that read to
 * the end of a short body has exited after the report was there. */
static void
feed(struct mq_queue *q, const struct mq_msg *m, int body, int status)
{
	unsigned char e;

	if (mq_msg_copy_body(q, m, body) == 0)
		_exit(0);
	e = errno > 0 && errno < 256 ? (unsigned char)errno : EIO;
	(void)!write(status, &e, 1);
	_exit(1);
}

/* A decoded body reaches a handler through a pipe fed by a grandchild, so
 * that the parent need not pump it and no zombie is left behind.  The
 * child exits with the errno of a grandchild that could not be made:
 * the pipe would then give the handler an empty body, as if it were the
 * message's.  The grandchild's own failure, part way through, comes back
 * on a second pipe, kept in m->feeder for the settling of the message. */
static int
decoder_pipe(struct mq_queue *q, struct mq_msg *m)
{
	int p[2], st[2] = { -1, -1 }, keep[3], status, saved;
	pid_t pid, grandchild;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(st, O_CLOEXEC | O_NONBLOCK) == -1)
		goto fail;
	if ((pid = fork()) == -1)
		goto fail;
	if (pid == 0) {
		close(p[0]);
		close(st[0]);
		keep[0] = p[1], keep[1] = st[1], keep[2] = m->fd;
		sort3(keep);
		close_all_but(keep, 3);
		signal(SIGPIPE, SIG_DFL);
		if ((grandchild = fork()) == 0)
			feed(q, m, p[1], st[1]);
		_exit(grandchild == -1 ? (errno > 0 && errno < 256 ?
		    errno : EAGAIN) : 0);
	}
	close(p[1]);
	close(st[1]);
	p[1] = st[1] = -1;
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			goto fail;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (m->feeder != -1)
			close(m->feeder);
		m->feeder = st[0];
		return p[0];
	}
	errno = WIFEXITED(status) ? WEXITSTATUS(status) : EAGAIN;
fail:
	saved = errno;
	close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	if (st[0] != -1)
		close(st[0]);
	if (st[1] != -1)
		close(st[1]);
	errno = saved;
	return -1;
}

int
mq_msg_feed_failed(const struct mq_msg *m)
{
	unsigned char e;

	if (m->feeder == -1 || read(m->feeder, &e, 1) != 1)
		return 0;
	errno = e;
	return 1;
}

int
mq_msg_body_fd(struct mq_queue *q, struct mq_msg *m)
{
	int fd;

	/* A signed file ends in its signature, which is not body. */
	if (m->compressed || m->sealed || m->signed_)
		return decoder_pipe(q, m);
	fd = openat(q->dirfd[MQ_DIR_CUR], m->lease_name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (lseek(fd, m->body_offset, SEEK_SET) == -1) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}
