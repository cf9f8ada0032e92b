/*
 * fanout.c - topics: one send delivered to every subscriber queue.
 *
 * A topic is a queue whose config lists subscribers.  A message sent to
 * it is written and synced once, in the topic's tmp/; then hard-linked
 * (copied where a subscriber is on another filesystem) into each
 * subscriber's tmp/ as fan.TOPICID.SUBID, with an id from that
 * subscriber's own counter, and those tmp/ folders synced.  The commit
 * point is the rename of the topic's file into the topic's fanout/
 * folder, synced: from then on the message is owed to every subscriber.
 * Each link is then renamed into its subscriber's ready set, and the
 * fanout/ entry removed.  A crash before the commit point leaves only
 * stale tmp/ files, never delivered; a crash after it is finished by
 * mq_fanout_recover, which any send to the topic, any claim on a
 * subscriber and a subscriber's removal of stale tmp/ files run first:
 * every subscriber gets the message exactly once, because each link can
 * be renamed into place only once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

static int
fanout_dir(struct mq_queue *q)
{
	int fd;

	fd = openat(q->fd, "fanout", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		if (mq_mkdirat(q, q->fd, "fanout") == -1 || fsync(q->fd) == -1)
			return -1;
		fd = openat(q->fd, "fanout", O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
	}
	return fd;
}

/* Copy a file for a subscriber on another filesystem. */
static int
copy_into(int fromfd, const char *from, int todir, const char *to,
    mode_t mode)
{
	char buf[65536];
	ssize_t n;
	int in, out, rc = -1, saved;

	if ((in = openat(fromfd, from, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	out = openat(todir, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (out == -1)
		goto done;
	while ((n = mq_read_full(in, buf, sizeof(buf))) > 0)
		if (mq_write_all(out, buf, (size_t)n) == -1)
			break;
	if (n == 0 && fchmod(out, mode) == 0 && fdatasync(out) == 0)
		rc = 0;
	saved = errno;
	close(out);
	if (rc == -1)
		unlinkat(todir, to, 0);
	errno = saved;
done:
	saved = errno;
	close(in);
	errno = saved;
	return rc;
}

/* Call fn for each subscriber path in the ':'-separated list. */
static int
each_subscriber(const char *list, int (*fn)(const char *, void *), void *arg)
{
	char path[PATH_MAX];
	const char *p = list, *colon;
	size_t len;

	while (*p != '\0') {
		colon = strchr(p, ':');
		len = colon ? (size_t)(colon - p) : strlen(p);
		if (len >= sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(path, p, len);
		path[len] = '\0';
		if (fn(path, arg) == -1)
			return -1;
		p += len + (colon ? 1 : 0);
	}
	return 0;
}

struct stage {
	struct mq_queue *topic;
	const char *tmp_name;
	const char *topic_id;
};

static int
stage_one(const char *path, void *arg)
{
	struct stage *st = arg;
	struct mq_queue *s;
	char link[MQ_NAME_MAX], id[MQ_ID_SIZE];
	uint64_t seq;
	int tmpfd, rc = -1;

	if ((s = mq_open(path)) == NULL)
		return -1;
	if ((tmpfd = mq_dir(s, MQ_DIR_TMP)) == -1 ||
	    mq_seq_reserve(s, 1, &seq) == -1)
		goto done;
	mq_id_format(seq, id);
	snprintf(link, sizeof(link), "fan.%s.%s", st->topic_id, id);
	if (linkat(st->topic->dirfd[MQ_DIR_TMP], st->tmp_name, tmpfd, link,
	    0) == -1 && !(errno == EEXIST &&
	    mq_linked(st->topic->dirfd[MQ_DIR_TMP], st->tmp_name, tmpfd, link))) {
		if (errno != EXDEV || copy_into(st->topic->dirfd[MQ_DIR_TMP],
		    st->tmp_name, tmpfd, link, s->file_mode) == -1)
			goto done;
	}
	rc = fsync(tmpfd);
done:
	mq_close(s);
	return rc;
}

static int
unstage_one(const char *path, void *arg)
{
	const char *topic_id = arg;
	char prefix[MQ_NAME_MAX];
	struct dirent *de;
	struct mq_queue *s;
	DIR *d;

	if ((s = mq_open(path)) == NULL)
		return 0;
	snprintf(prefix, sizeof(prefix), "fan.%s.", topic_id);
	if (mq_dir(s, MQ_DIR_TMP) != -1 &&
	    (d = mq_opendirat(s->dirfd[MQ_DIR_TMP], ".")) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
				unlinkat(s->dirfd[MQ_DIR_TMP], de->d_name, 0);
		closedir(d);
	}
	mq_close(s);
	return 0;
}

struct deliver {
	const char *topic_id;
	int prio;
	int64_t due;
};

/* A link whose target name exists was placed before (by a run whose
 * tmp/ removal did not reach the disk): drop the link, do not place it
 * twice. */
static int
settled(int tmpfd, const char *name, int rc)
{
	if (errno == EEXIST)
		return unlinkat(tmpfd, name, 0) == -1 ? -1 : rc;
	return errno == ENOENT ? rc : -1;
}

/* Move this topic message's link in one subscriber into place; a link
 * already moved (by an earlier run, or a concurrent recovery) is gone. */
static int
deliver_one(const char *path, void *arg)
{
	struct deliver *dv = arg;
	char prefix[MQ_NAME_MAX], name[NAME_MAX + 1], to[MQ_NAME_MAX];
	struct dirent *de;
	struct mq_queue *s;
	uint64_t seq;
	int tmpfd, rc = 0;
	DIR *d;

	if ((s = mq_open(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	if ((tmpfd = mq_dir(s, MQ_DIR_TMP)) == -1 ||
	    (d = mq_opendirat(tmpfd, ".")) == NULL) {
		mq_close(s);
		return -1;
	}
	snprintf(prefix, sizeof(prefix), "fan.%s.", dv->topic_id);
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    mq_id_parse(de->d_name + strlen(prefix), &seq) == -1)
			continue;
		snprintf(name, sizeof(name), "%s", de->d_name);
		if (dv->due > mq_now_ns()) {
			char id[MQ_ID_SIZE];
			mq_id_format(seq, id);
			snprintf(to, sizeof(to), "%019" PRId64 ".%s.0", dv->due, id);
			if (mq_dir(s, MQ_DIR_DELAY) == -1 ||
			    mq_move(tmpfd, name, s->dirfd[MQ_DIR_DELAY], to) == -1)
				rc = settled(tmpfd, name, rc);
			continue;
		}
		if (mq_move_to_ready(s, tmpfd, name, seq, 0, dv->prio, 1) == -1)
			rc = settled(tmpfd, name, rc);
	}
	/* A listing cut short may have passed over the link: the fan-out
	 * is then not finished, and its entry must stay for recovery. */
	if (errno != 0)
		rc = -1;
	/* The links' removal from tmp/ must be as durable as their arrival,
	 * or after a power cut recovery would place a message again. */
	if (fsync(tmpfd) == -1)
		rc = -1;
	closedir(d);
	mq_close(s);
	return rc;
}

int
mq_fanout(struct mq_queue *topic, const struct mq_config *cfg,
    const char *tmp_name, const char *topic_id, int prio, int64_t due_ns)
{
	struct stage st = { topic, tmp_name, topic_id };
	struct deliver dv = { topic_id, prio, due_ns };
	char entry[MQ_NAME_MAX];
	int ffd, saved;

	if ((ffd = fanout_dir(topic)) == -1)
		return -1;
	if (each_subscriber(cfg->subscribers, stage_one, &st) == -1)
		goto undo;
	snprintf(entry, sizeof(entry), "%s.%019" PRId64 ".%d", topic_id,
	    due_ns, prio);
	if (mq_rename_noreplace(topic->dirfd[MQ_DIR_TMP], tmp_name, ffd,
	    entry) == -1 || fsync(ffd) == -1)
		goto undo;
	/* Committed: whatever fails now, recovery finishes. */
	if (each_subscriber(cfg->subscribers, deliver_one, &dv) == 0)
		unlinkat(ffd, entry, 0);
	close(ffd);
	return 0;
undo:
	saved = errno;
	each_subscriber(cfg->subscribers, unstage_one, (void *)topic_id);
	close(ffd);
	errno = saved;
	return -1;
}

/* Finish every fan-out whose commit point passed. */
int
mq_fanout_recover(struct mq_queue *topic)
{
	struct mq_config cfg;
	struct dirent *de;
	struct deliver dv;
	char id[MQ_ID_SIZE];
	int ffd, rc = 0;
	DIR *d;

	ffd = openat(topic->fd, "fanout", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (ffd == -1)
		return errno == ENOENT ? 0 : -1;
	if (mq_config(topic, &cfg) == -1 || (d = mq_opendirat(ffd, ".")) == NULL) {
		close(ffd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		int64_t due;
		int prio;
		if (strlen(de->d_name) < 16 + 1 + 19 + 2 ||
		    de->d_name[16] != '.' ||
		    sscanf(de->d_name + 17, "%19" SCNd64 ".%d", &due,
		    &prio) != 2)
			continue;
		memcpy(id, de->d_name, 16);
		id[16] = '\0';
		dv.topic_id = id;
		dv.prio = prio;
		dv.due = due;
		if (each_subscriber(cfg.subscribers, deliver_one, &dv) == 0)
			unlinkat(ffd, de->d_name, 0);
		else
			rc = -1;
	}
	closedir(d);
	close(ffd);
	return rc;
}

int
mq_fanout_finish(const struct mq_config *cfg)
{
	struct mq_queue *topic;
	int rc;

	if (cfg->topic[0] == '\0')
		return 0;
	/* A topic removed owes nothing any more. */
	if ((topic = mq_open(cfg->topic)) == NULL)
		return errno == ENOENT ? 0 : -1;
	rc = mq_fanout_recover(topic);
	mq_close(topic);
	return rc;
}
