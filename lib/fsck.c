/*
 * fsck.c - finding, and repairing, what a crash or a careless admin left.
 *
 * Checks, in order: the queue's folders, its sequence counter and config;
 * the modes and groups of keys/, groups/ and fanout/ and their files;
 * files left in tmp/ by killed producers; names in every state folder
 * that are not messages, and message files that are not regular, do not
 * parse, or carry another id than their name; message files whose mode
 * or group is not the queue's (so that some consumer could not read
 * them); leases and delays that have run out.  Repairs never delete a
 * message: files that are not messages go to quarantine/, run-out leases
 * go back to ready (or to dead/ when their attempts are used up), only
 * stale temporary files (never sent) are removed.  Without
 * fix nothing is changed, so a dry run is safe on a live queue.  What
 * cannot be read for now (no descriptor, an I/O error) is never taken
 * for damage: the rest is checked and the whole check fails with why.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mq_impl.h"

struct fsck {
	struct mq_queue *q;
	int fix;
	long problems;
	void (*fn)(const struct mq_problem *, void *);
	void *arg;
	gid_t gid;
	int want_gid;
	int err;		/* why part of the queue went unchecked */
};

/* Part of the queue could not be checked: the check goes on with the
 * rest, and fails in the end with the first such errno. */
static void
unchecked(struct fsck *f)
{
	if (f->err == 0)
		f->err = errno;
}

static void
report(struct fsck *f, const char *path, const char *what,
    const char *action, int rc)
{
	struct mq_problem p = { path, what, action, 0, 0 };

	if (f->fix) {
		p.fixed = rc == 0 ? 1 : -1;
		p.err = rc == 0 ? 0 : errno;
	}
	f->problems++;
	f->fn(&p, f->arg);
}

static void
check_folders(struct fsck *f)
{
	char rel[32];
	struct stat st;
	int i, rc = 0;

	for (i = 0; i < MQ_NDIRS; i++) {
		snprintf(rel, sizeof(rel), "%s/", mq_dir_names[i]);
		if (fstatat(f->q->fd, mq_dir_names[i], &st,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			if (f->fix)
				rc = mq_mkdirat(f->q, f->q->fd, mq_dir_names[i]);
			report(f, rel, "missing folder", "create it", rc);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			continue;
		/* A symbolic link or a file in a folder's place: every
		 * program refuses the queue, and following the link would
		 * put messages wherever it points.  It may be someone's
		 * data, so it is set aside, not removed. */
		if (f->fix && (rc = mq_quarantine(f->q, f->q->fd,
		    mq_dir_names[i], MQ_EBADMSG)) == 0)
			rc = mq_mkdirat(f->q, f->q->fd, mq_dir_names[i]);
		report(f, rel, "not a folder",
		    "move it to quarantine/ and create the folder", rc);
	}
}

static void
check_seq(struct fsck *f)
{
	uint64_t first;
	int rc = 0;

	struct stat st;

	if (fstatat(f->q->fd, "seq", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		/* Reading it is enough; reserving nothing changes nothing. */
		if (S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		    mq_seq_peek(f->q, &first) == 0)
			return;
		if (f->fix && (rc = unlinkat(f->q->fd, "seq",
		    S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0)) == 0)
			rc = mq_seq_create(f->q);
		report(f, "seq", st.st_nlink > 1 && S_ISREG(st.st_mode) ?
		    "sequence counter shared with another file (hard link)" :
		    "malformed sequence counter",
		    "rebuild it past every id present", rc);
		return;
	}
	if (f->fix)
		rc = mq_seq_create(f->q);
	report(f, "seq", "missing sequence counter",
	    "rebuild it past every id present", rc);
}

static void
check_config(struct fsck *f)
{
	struct mq_config c;

	char buf[65536 + 1];
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	/* A config hard-linked from elsewhere changes when that file does:
	 * give the queue its own copy. */
	if (fstatat(f->q->fd, "config", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_nlink > 1) {
		if (f->fix) {
			rc = -1;
			fd = openat(f->q->fd, "config", O_RDONLY | O_NOFOLLOW |
			    O_NONBLOCK | O_CLOEXEC);
			if (fd != -1) {
				n = mq_read_full(fd, buf, sizeof(buf));
				close(fd);
				/* A copy of the first 64 KiB of a longer
				 * config would be a config no one wrote. */
				if (n == (ssize_t)sizeof(buf))
					errno = MQ_EBADCONF;
				else if (n >= 0)
					rc = mq_write_file(f->q, "config", buf,
					    (size_t)n, 1);
			}
		}
		report(f, "config", "shared with another file (hard link)",
		    "give the queue its own copy", rc);
		return;
	}
	/* A config cannot be repaired without guessing what was meant; nor
	 * can a run-out lease be moved without its max-attempts, so a repair
	 * fails in the end with why. */
	if (mq_config(f->q, &c) == -1) {
		int fix = f->fix;
		if (fix)
			unchecked(f);
		f->fix = 0;
		report(f, "config", mq_strerror(errno), "edit it by hand", -1);
		f->fix = fix;
	}
}

/* Mode and group of one file or folder beside the messages, as
 * check_entry does for messages. */
static void
check_owner(struct fsck *f, int dirfd, const char *name, const char *rel,
    const struct stat *st, mode_t want)
{
	int rc = 0;

	if ((st->st_mode & 07777) != want) {
		if (f->fix)
			rc = mq_chmodat(dirfd, name, want);
		report(f, rel, "mode differs from the queue's",
		    S_ISDIR(st->st_mode) ? "set the queue's folder mode" :
		    "set the queue's file mode", rc);
	}
	if (f->want_gid && st->st_gid != f->gid) {
		rc = 0;
		if (f->fix)
			rc = fchownat(dirfd, name, (uid_t)-1, f->gid,
			    AT_SYMLINK_NOFOLLOW);
		report(f, rel, "group differs from the queue's",
		    "set the queue's group", rc);
	}
}

/* keys/, groups/ and fanout/ are made when first needed, and every
 * producer or consumer must be able to write what is in them: a keys/.lock
 * left 0644 by an older version on a queue shared by a group fails
 * every other member's mq-send -k with EACCES.  Links and other odd
 * entries in them are not followed, only regular files are looked at. */
static void
check_shared(struct fsck *f)
{
	static const char *const names[] = { "keys", "groups", "fanout" };
	char rel[2 * NAME_MAX + 2];
	struct dirent *de;
	struct stat st;
	size_t i;
	int dfd;
	DIR *d;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (fstatat(f->q->fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT)
				unchecked(f);
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		snprintf(rel, sizeof(rel), "%s/", names[i]);
		check_owner(f, f->q->fd, names[i], rel, &st, f->q->dir_mode);
		if ((d = mq_opendirat(f->q->fd, names[i])) == NULL) {
			unchecked(f);
			continue;
		}
		dfd = dirfd(d);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (fstatat(dfd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1) {
				if (errno != ENOENT)
					unchecked(f);
				continue;
			}
			if (!S_ISREG(st.st_mode))
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", names[i], de->d_name);
			check_owner(f, dfd, de->d_name, rel, &st,
			    f->q->file_mode);
		}
		if (errno != 0)
			unchecked(f);
		closedir(d);
	}
}

static void
check_tmp(struct fsck *f)
{
	char rel[NAME_MAX + 8];
	struct mq_config cfg;
	struct dirent *de;
	struct stat st;
	time_t cutoff = time(NULL) - MQ_STALE_TMP_S;
	int tmpfd, rc = 0, staged, finished = -1;
	DIR *d;

	if ((tmpfd = mq_dir(f->q, MQ_DIR_TMP)) == -1 ||
	    (d = mq_opendirat(tmpfd, ".")) == NULL) {
		unchecked(f);
		return;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    fstatat(tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		snprintf(rel, sizeof(rel), "tmp/%s", de->d_name);
		/* A topic's copy staged for this subscriber is a hard link
		 * of the topic's file. */
		staged = strncmp(de->d_name, "fan.", 4) == 0;
		/* Producers write only regular files here, each under one
		 * name: anything else was planted, whatever its age. */
		if (!S_ISREG(st.st_mode) || (st.st_nlink > 1 && !staged)) {
			if (f->fix)
				rc = unlinkat(tmpfd, de->d_name,
				    S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
			report(f, rel, "not a file a producer writes",
			    "remove it (it was never sent)", rc);
			continue;
		}
		if (st.st_mtime >= cutoff)
			continue;
		/* A staged copy is owed here, however old, if its sender was
		 * killed after the fan-out's commit point: the topic's
		 * fan-outs are finished first, which places it, and only a
		 * copy left after that was never sent. */
		if (staged && f->fix) {
			if (finished == -1)
				finished = mq_config(f->q, &cfg) == 0 &&
				    mq_fanout_finish(&cfg) == 0;
			if (!finished) {
				unchecked(f);
				continue;
			}
			if (faccessat(tmpfd, de->d_name, F_OK,
			    AT_SYMLINK_NOFOLLOW) == -1)
				continue;
		}
		if (f->fix)
			rc = unlinkat(tmpfd, de->d_name, 0);
		report(f, rel, staged ?
		    "stale copy of a topic's message, not owed" :
		    "stale temporary file of a killed producer",
		    "remove it (it was never sent)", rc);
	}
	if (errno != 0)
		unchecked(f);
	closedir(d);
}

/* Open a message file without following links or blocking on FIFOs and
 * check that it is what its name says: 1 when it is not, 0 when it is
 * or is gone, -1 with errno when that cannot be told.  Running out of
 * descriptors or memory, or a read error, says nothing about the file,
 * and a sound message must not be set aside for it. */
static int
damaged(struct fsck *f, const struct mq_entry *e)
{
	struct mq_config cfg;
	struct mq_msg *m;
	struct stat st;
	int fd, bad;

	/* The walk's lstat tells a link, a FIFO, a device or a socket. */
	if (!S_ISREG(e->st.st_mode))
		return 1;
	fd = openat(e->dirfd, e->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		/* Replaced by a link since. */
		if (errno == ELOOP)
			return 1;
		return errno == ENOENT || errno == EACCES ? 0 : -1;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL || fstat(fd, &st) == -1) {
		bad = -1;
		goto done;
	}
	bad = 1;
	if (!S_ISREG(st.st_mode))
		goto done;
	if (mq_header_parse(fd, m, st.st_size) == -1) {
		if (errno != MQ_EBADMSG && errno != MQ_EFORMAT)
			bad = -1;
		goto done;
	}
	bad = mq_config(f->q, &cfg) == 0 &&
	    !mq_msg_belongs(f->q, &cfg, m, e->id, st.st_nlink);
done:
	free(m);
	close(fd);
	return bad;
}

static int
check_entry(const struct mq_entry *e, void *arg)
{
	struct fsck *f = arg;
	mode_t want = f->q->file_mode;
	int rc = 0;

	if (e->state == MQ_QUARANTINED)
		return 0;
	switch (damaged(f, e)) {
	case -1:
		unchecked(f);
		return 0;
	case 1:
		if (f->fix)
			rc = mq_quarantine(f->q, e->dirfd, e->name, MQ_EBADMSG);
		report(f, e->path, "not a well-formed message",
		    "move it to quarantine/", rc);
		return 0;
	}
	if ((e->st.st_mode & 07777) != want) {
		if (f->fix)
			rc = mq_chmodat(e->dirfd, e->name, want);
		report(f, e->path, "mode differs from the queue's",
		    "set the queue's file mode", rc);
	}
	if (f->want_gid && e->st.st_gid != f->gid) {
		if (f->fix)
			rc = fchownat(e->dirfd, e->name, (uid_t)-1, f->gid,
			    AT_SYMLINK_NOFOLLOW);
		report(f, e->path, "group differs from the queue's",
		    "set the queue's group", rc);
	}
	return 0;
}

/* Names in the state folders that are not messages are invisible to
 * consumers; they are reported so that nothing hides in a queue. */
static void
check_strays(struct fsck *f, enum mq_dir dir)
{
	char rel[2 * NAME_MAX + 16];
	struct dirent *de;
	struct mq_bucket one;
	struct stat st;
	uint64_t seq;
	unsigned n;
	int64_t t;
	char kind;
	int dfd, ok, rc = 0;
	DIR *d;

	if ((dfd = mq_dir(f->q, dir)) == -1 ||
	    (d = mq_opendirat(dfd, ".")) == NULL) {
		unchecked(f);
		return;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		/* ".nfsXXXX": NFS keeps an open file unlinked by another
		 * client under such a name until it is closed. */
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strncmp(de->d_name, ".nfs", 4) == 0)
			continue;
		switch (dir) {
		case MQ_DIR_NEW:
			ok = mq_bucket_name_parse(de->d_name, &one) == 0;
			/* A link or a file of a bucket's name is passed over
			 * by consumers and never checked inside. */
			if (ok && fstatat(dfd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
				snprintf(rel, sizeof(rel), "new/%s",
				    de->d_name);
				if (f->fix)
					rc = mq_quarantine(f->q, dfd, de->d_name,
					    MQ_EBADMSG);
				report(f, rel, "not a folder",
				    "move it to quarantine/", rc);
				continue;
			}
			break;
		case MQ_DIR_CUR:
			ok = mq_lease_name_parse(de->d_name, &seq, &n, &kind,
			    &t) == 0;
			break;
		case MQ_DIR_DELAY:
			ok = mq_delay_name_parse(de->d_name, &t, &seq, &n) == 0;
			break;
		default:
			ok = mq_dead_name_parse(de->d_name, &seq, &n, NULL,
			    0) == 0;
			break;
		}
		if (ok)
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", mq_dir_names[dir], de->d_name);
		if (f->fix)
			rc = mq_quarantine(f->q, dfd, de->d_name, MQ_EBADMSG);
		report(f, rel, "not a message name", "move it to quarantine/", rc);
	}
	if (errno != 0)
		unchecked(f);
	closedir(d);
}

static void
check_bucket_strays(struct fsck *f)
{
	char bucket[MQ_BUCKET_NAME_SIZE], rel[2 * NAME_MAX + 16];
	struct dirent *de;
	struct mq_bucket *b;
	uint64_t seq;
	size_t nb, i;
	unsigned n;
	int newfd = f->q->dirfd[MQ_DIR_NEW], bfd, rc = 0;
	DIR *d;

	if ((b = mq_list_buckets(newfd, &nb)) == NULL) {
		if (errno != 0)
			unchecked(f);
		return;
	}
	for (i = 0; i < nb; i++) {
		mq_bucket_name(b[i].base, b[i].prio, bucket);
		/* A bucket emptied and removed by a consumer is no loss;
		 * one that is not a directory was reported as such. */
		if ((d = mq_opendirat(newfd, bucket)) == NULL) {
			if (errno != ENOENT && errno != ENOTDIR &&
			    errno != ELOOP)
				unchecked(f);
			continue;
		}
		bfd = dirfd(d);
		while ((errno = 0, de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0 ||
			    strncmp(de->d_name, ".nfs", 4) == 0)
				continue;
			if (mq_ready_name_parse(de->d_name, &seq, &n) == 0 &&
			    (seq >> MQ_BUCKET_BITS) == (b[i].base >> MQ_BUCKET_BITS))
				continue;
			snprintf(rel, sizeof(rel), "new/%s/%s", bucket, de->d_name);
			if (f->fix)
				rc = mq_quarantine(f->q, bfd, de->d_name, MQ_EBADMSG);
			report(f, rel, "not a message name",
			    "move it to quarantine/", rc);
		}
		if (errno != 0)
			unchecked(f);
		closedir(d);
	}
	free(b);
}

/* A lease or delay that ran out.  With fix it is moved here, as a reap
 * would, so that what is reported is what this move did.  A lease whose
 * holder died before its end is no problem and is left to the next
 * consumer's reap. */
static int
count_expired(const struct mq_entry *e, void *arg)
{
	struct fsck *f = arg;
	struct mq_config cfg;
	const char *what, *action = "make it ready again";
	uint64_t seq;
	int rc = 0, dead = 0;

	if (e->when_ns == 0 || e->when_ns > mq_now_ns() ||
	    mq_id_parse(e->id, &seq) == -1)
		return 0;
	what = e->state == MQ_INFLIGHT ? "lease ran out" : "delay is over";
	if (e->state == MQ_INFLIGHT) {
		if (mq_config(f->q, &cfg) == -1) {
			report(f, e->path, what, action, -1);
			return 0;
		}
		if ((dead = e->attempts >= cfg.max_attempts))
			action = "move it to dead/ (attempts used up)";
	}
	if (f->fix) {
		if (dead)
			rc = mq_move_to_dead(f->q, e->dirfd, e->name, seq,
			    e->attempts, "attempts");
		else
			rc = mq_move_to_ready(f->q, e->dirfd, e->name, seq,
			    e->attempts, -1, 1);
		/* Gone: a consumer's reap or claim was first. */
		if (rc == -1 && errno == ENOENT)
			rc = 0;
		rc = rc == -1 ? -1 : 0;
	}
	report(f, e->path, what, action, rc);
	return 0;
}

long
mq_fsck(const char *operand, int fix,
    void (*fn)(const struct mq_problem *, void *), void *arg)
{
	struct fsck f = { NULL, fix, 0, fn, arg, 0, 0, 0 };
	struct stat st;
	long rc;

	if ((f.q = mq_open(operand)) == NULL)
		return -1;
	if (fstat(f.q->fd, &st) == -1) {
		mq_close(f.q);
		return -1;
	}
	f.gid = st.st_gid;
	f.want_gid = (st.st_mode & S_ISGID) != 0;
	check_folders(&f);
	if (!fix && f.problems > 0) {
		rc = f.problems;
		mq_close(f.q);
		return rc;
	}
	check_seq(&f);
	check_config(&f);
	check_shared(&f);
	check_tmp(&f);
	check_strays(&f, MQ_DIR_NEW);
	check_bucket_strays(&f);
	check_strays(&f, MQ_DIR_CUR);
	check_strays(&f, MQ_DIR_DELAY);
	check_strays(&f, MQ_DIR_DEAD);
	if (mq_walk(f.q, MQ_ALL_STATES & ~MQ_STATE_BIT(MQ_QUARANTINED),
	    check_entry, &f) == -1 ||
	    mq_walk(f.q, MQ_STATE_BIT(MQ_INFLIGHT) | MQ_STATE_BIT(MQ_DELAYED),
	    count_expired, &f) == -1)
		unchecked(&f);
	rc = f.problems;
	if (f.err != 0) {
		errno = f.err;
		rc = -1;
	}
	mq_close(f.q);
	return rc;
}
