/*
 * io.c - system call wrappers that survive what the kernel may do.
 *
 * Short writes and EINTR are retried here so that no caller has to; a
 * failed fsync is reported, never retried, because after an EIO the page
 * cache may already have dropped the data it claims to have synced.
 * Renames never replace: a message must not silently overwrite another.
 * A folder's .lock, under which processes decide about its files (keys/,
 * groups/) one at a time, is taken here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

/* A descriptor left non-blocking by whoever gave it to us (a parent's
 * pipe): wait until it takes more, as a blocking one would have.  0, or
 * -1 when the error was not EAGAIN or the wait failed. */
int
mq_wait_writable(int fd)
{
	struct pollfd p = { fd, POLLOUT, 0 };

	if (errno != EAGAIN)
		return -1;
	while (poll(&p, 1, -1) == -1)
		if (errno != EINTR)
			return -1;
	return 0;
}

int
mq_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR || mq_wait_writable(fd) == 0)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
mq_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	ssize_t w;

	while (n > 0) {
		w = pwrite(fd, p, n, off);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* Read up to n bytes, stopping early only at end of file. */
ssize_t
mq_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Reserve fd's blocks for [off, off + len) before writing them there,
 * keeping its size: ext4 takes the writes a quarter faster than into
 * blocks it must allocate as it goes (256 MiB copies), and a body that
 * cannot fit fails at once, not after gigabytes.  A filesystem that
 * cannot reserve is no error; only what the writes would meet too is. */
int
mq_prealloc(int fd, off_t off, off_t len)
{
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len) == 0)
		return 0;
	return errno == ENOSPC || errno == EDQUOT || errno == EIO ||
	    errno == EFBIG ? -1 : 0;
}

/* Start writing back what fd holds from *from to to once that is at least
 * MQ_WRITEBACK_STEP, and move *from on.  The disk then works while the
 * copy goes on, and the sync that ends a large copy has little left (256
 * MiB: 5-20 ms instead of 60-75).  Its errors are left to that sync. */
void
mq_writeback(int fd, off_t *from, off_t to)
{
	if (to - *from < MQ_WRITEBACK_STEP)
		return;
	sync_file_range(fd, *from, to - *from, SYNC_FILE_RANGE_WRITE);
	*from = to;
}

int
mq_fsync_close(int fd)
{
	int rc, saved;

	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
mq_fsync_dirat(int dirfd, const char *name)
{
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -1;
	return mq_fsync_close(fd);
}

/* Close a directory whose listing has just ended, errno set to 0 before
 * each readdir: 0 when the listing reached its end, -1 with readdir's
 * errno when an error cut it short.  A cut listing must not pass for the
 * whole: it would leave out messages, leases, keys or ids in use. */
int
mq_listing_end(DIR *d)
{
	int saved = errno;

	closedir(d);
	errno = saved;
	return saved != 0 ? -1 : 0;
}

/* chmod of a name in dirfd that never follows a symbolic link: a file
 * or folder of the queue swapped for a link to /etc/shadow between our
 * look at it and the chmod must not hand a program run as root the
 * link's target (glibc does it through an O_PATH descriptor, and refuses
 * a link; ELOOP here, as every O_NOFOLLOW open says). */
int
mq_chmodat(int dirfd, const char *name, mode_t mode)
{
	if (fchmodat(dirfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno == EOPNOTSUPP)
		errno = ELOOP;
	return -1;
}

/* Create a directory with the queue's mode whatever the umask; an
 * existing one is fine. */
int
mq_mkdirat(struct mq_queue *q, int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, q->dir_mode & 0777) == -1)
		return errno == EEXIST ? 0 : -1;
	/* A bucket can be emptied and removed by a consumer at once; the
	 * caller's next rename finds that out and makes it again. */
	if (mq_chmodat(dirfd, name, q->dir_mode) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

static int
same_file(int ofd, const char *from, int nfd, const char *to)
{
	struct stat a, b;

	return fstatat(ofd, from, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(nfd, to, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* After a link answered EEXIST: did our own (retransmitted) link make
 * the target?  Targets are names no one else chooses, so the source
 * having a second name, wherever a consumer has moved it since, says so. */
int
mq_linked(int ofd, const char *from, int nfd, const char *to)
{
	struct stat st;

	if (same_file(ofd, from, nfd, to) ||
	    (fstatat(ofd, from, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_nlink > 1))
		return 1;
	/* Gone again: a consumer took it and settled it already. */
	return fstatat(nfd, to, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT;
}

static int
moved(int ofd, const char *from, int nfd, const char *to)
{
	return faccessat(ofd, from, F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
	    faccessat(nfd, to, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The source's inode as the server has it now, not as cached. */
static int
fresh_stat(int dirfd, const char *name, struct statx *stx)
{
	return statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC,
	    STATX_INO | STATX_NLINK | STATX_CTIME, stx);
}

/* After a link answered ENOENT with its source still there: did it
 * happen?  A FUSE filesystem looks the new name up after linking and
 * answers ENOENT when a consumer has moved it on by then, taken it or
 * even settled it; a second link would deliver the message again.  The
 * ENOENT may as well be true (a consumer removed the emptied bucket), so
 * the source decides: a file with one name, which only its mover can
 * reach, that has gained a name or whose change time moved was linked.
 * Since 6.13 Linux makes the next change time of a file whose change
 * time was read fine-grained (ext4, XFS, Btrfs, tmpfs); where it is
 * coarse, a link settled within one tick goes unseen and is made again,
 * a duplicate as at-least-once allows, never a loss.  A file with other names (a topic's copies) may be changed
 * through those, so it tells nothing. */
static int
link_happened(int ofd, const char *from, int nfd, const char *to,
    const struct statx *before)
{
	struct statx now;

	if (same_file(ofd, from, nfd, to))
		return 1;
	if (before->stx_nlink != 1 || fresh_stat(ofd, from, &now) == -1 ||
	    now.stx_ino != before->stx_ino)
		return 0;
	return now.stx_nlink > 1 ||
	    now.stx_ctime.tv_sec != before->stx_ctime.tv_sec ||
	    now.stx_ctime.tv_nsec != before->stx_ctime.tv_nsec;
}

/* renameat2(RENAME_NOREPLACE), or link and unlink where the filesystem
 * lacks it (NFS, some FUSE).  Both refuse to overwrite.  Over NFS a
 * retransmitted request can report failure for an operation the server
 * did: a rename answering ENOENT whose source is gone and whose (unique)
 * target is there, or a link answering EEXIST with the target already the
 * source's inode, succeeded, as Postfix's sane_rename reasons; so did a
 * FUSE link answering ENOENT that link_happened() sees in its source.
 * Every target libmq renames to is a name no other process chooses. */
int
mq_rename_noreplace(int ofd, const char *from, int nfd, const char *to)
{
	struct statx before;
	int saved;

	if (renameat2(ofd, from, nfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	saved = errno;
	if (saved == ENOENT && moved(ofd, from, nfd, to))
		return 0;
	/* Both names of one file: a rename whose removal a power cut undid
	 * on a filesystem without a journal.  Finish it. */
	if (saved == EEXIST && same_file(ofd, from, nfd, to))
		return unlinkat(ofd, from, 0) == -1 && errno != ENOENT ? -1 : 0;
	if (saved != EINVAL && saved != ENOSYS) {
		errno = saved;
		return -1;
	}
	if (fresh_stat(ofd, from, &before) == -1)
		return errno == ENOENT && moved(ofd, from, nfd, to) ? 0 : -1;
	if (linkat(ofd, from, nfd, to, 0) == -1) {
		saved = errno;
		if (saved == ENOENT && moved(ofd, from, nfd, to))
			return 0;
		if (!(saved == EEXIST && mq_linked(ofd, from, nfd, to)) &&
		    !(saved == ENOENT &&
		    link_happened(ofd, from, nfd, to, &before))) {
			errno = saved;
			return -1;
		}
	}
	if (unlinkat(ofd, from, 0) == -1 && errno != ENOENT) {
		saved = errno;
		unlinkat(nfd, to, 0);
		errno = saved;
		return -1;
	}
	return 0;
}

/* Rename to a name that holds random bits no other process chooses (a
 * lease): a plain rename cannot replace anything, and unlike the link
 * that stands in for RENAME_NOREPLACE on NFS it succeeds for only one of
 * several processes moving one file.  mq_move_unique syncs like mq_move;
 * mq_rename_unique leaves the sync to the caller. */
int
mq_rename_unique(int ofd, const char *from, int nfd, const char *to)
{
	if (renameat(ofd, from, nfd, to) == -1 &&
	    !(errno == ENOENT && moved(ofd, from, nfd, to)))
		return -1;
	return 0;
}

int
mq_move_unique(int ofd, const char *from, int nfd, const char *to)
{
	if (mq_rename_unique(ofd, from, nfd, to) == -1)
		return -1;
	return fsync(nfd);
}

/* Move a message between state folders and sync the destination before
 * returning.  Without that, a later sync of the source folder by anyone
 * (a sender syncing its bucket) could make the name's removal durable
 * while its arrival is not, and on a filesystem without a journal a power
 * cut then orphans the file (seen on ext4 with the power-cut suite). */
int
mq_move(int ofd, const char *from, int nfd, const char *to)
{
	if (mq_rename_noreplace(ofd, from, nfd, to) == -1)
		return -1;
	return fsync(nfd);
}

/* Write a small file of the queue (config, seq) whole or not at all:
 * NAME.tmp, synced, renamed over NAME (or beside it: replace 0 fails with
 * EEXIST when NAME exists), then the queue directory synced. */
int
mq_write_file(struct mq_queue *q, const char *name, const void *buf,
    size_t len, int replace)
{
	char tmp[64];
	int fd, rc, saved;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(q->fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, q->file_mode);
	if (fd == -1)
		return -1;
	if (fchmod(fd, q->file_mode) == -1 || mq_write_all(fd, buf, len) == -1 ||
	    fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlinkat(q->fd, tmp, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	rc = replace ? renameat(q->fd, tmp, q->fd, name) :
	    mq_rename_noreplace(q->fd, tmp, q->fd, name);
	if (rc == -1) {
		saved = errno;
		unlinkat(q->fd, tmp, 0);
		errno = saved;
		return -1;
	}
	return fsync(q->fd);
}

/* Make DIR/.lock with the queue's mode whatever the umask, since every
 * process in the queue's group opens it for writing.  It is made in tmp/
 * as PID.NS.WHAT-lock and linked into place once its mode is set, so that
 * no one finds it with the creator's umask still on it; a process killed
 * meanwhile leaves a file in tmp/, removed once stale like any other. */
static int
make_lock(struct mq_queue *q, int dirfd, const char *what)
{
	char name[64];
	int tmpfd, fd, rc, saved;

	if ((tmpfd = mq_dir(q, MQ_DIR_TMP)) == -1)
		return -1;
	snprintf(name, sizeof(name), "%ld.%" PRId64 ".%s-lock",
	    (long)getpid(), mq_now_ns(), what);
	fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, q->file_mode);
	if (fd == -1)
		return -1;
	rc = fchmod(fd, q->file_mode);
	close(fd);
	/* Another process's lock made meanwhile is as good. */
	if (rc == 0 && linkat(tmpfd, name, dirfd, ".lock", 0) == -1 &&
	    errno != EEXIST)
		rc = -1;
	saved = errno;
	unlinkat(tmpfd, name, 0);
	errno = saved;
	return rc;
}

/* An OFD write lock on DIR/.lock (WHAT names DIR in the name it is made
 * under), waited for; the descriptor, whose close releases it, or -1.
 * The lock, unlike a pid, is dropped when its holder dies and is seen
 * from every host of an NFS mount. */
int
mq_folder_lock(struct mq_queue *q, int dirfd, const char *what)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	while ((fd = openat(dirfd, ".lock", O_RDWR | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1)
		if (errno != ENOENT || make_lock(q, dirfd, what) == -1)
			return -1;
	while (fcntl(fd, F_OFD_SETLKW, &lk) == -1)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
}
