/*
 * init.c - creating a queue, and repairing one that lost a part.
 *
 * mq_init is idempotent: it creates whatever is missing (the directory,
 * a state folder, the config, the sequence counter) and leaves the rest,
 * so re-running it is how an admin repairs a queue.  Modes are applied
 * explicitly, not through the umask, so that every process working on a
 * shared queue creates files its peers can use; a group given with -g
 * gets the setgid bit so new files inherit it.
 */
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

/* mkdir -p for the parents of path. */
static int
make_parents(char *path)
{
	char *p;

	for (p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

static int
apply_mode(int dirfd, const char *name, const struct mq_init_opts *o)
{
	if (o->gid != (gid_t)-1 &&
	    fchownat(dirfd, name, (uid_t)-1, o->gid, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	return mq_chmodat(dirfd, name, o->mode);
}

int
mq_init(const char *operand, const struct mq_init_opts *o)
{
	struct mq_queue *q;
	struct mq_config cfg;
	struct stat st;
	char path[PATH_MAX];
	int i, created = 0, explicit_mode, saved;

	if (mq_resolve(operand, path, sizeof(path)) == -1)
		return -1;
	if (make_parents(path) == -1)
		return -1;
	if (mkdir(path, 0700) == 0)
		created = 1;
	else if (errno != EEXIST)
		return -1;
	if (lstat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	explicit_mode = created || o->gid != (gid_t)-1 || o->mode != 0;
	if ((q = mq_open(operand)) == NULL)
		return -1;
	if (explicit_mode) {
		struct mq_init_opts eff = *o;
		if (eff.mode == 0)
			eff.mode = o->gid != (gid_t)-1 ? 02770 : 0700;
		if (apply_mode(AT_FDCWD, path, &eff) == -1)
			goto fail;
		q->dir_mode = eff.mode;
		q->file_mode = eff.mode & 0666;
		for (i = 0; i < MQ_NDIRS; i++)
			if (mq_mkdirat(q, q->fd, mq_dir_names[i]) == -1 ||
			    apply_mode(q->fd, mq_dir_names[i], &eff) == -1)
				goto fail;
	} else
		for (i = 0; i < MQ_NDIRS; i++)
			if (mq_mkdirat(q, q->fd, mq_dir_names[i]) == -1)
				goto fail;
	if (mq_config(q, &cfg) == -1)
		goto fail;
	if (o->lease_s != 0)
		cfg.lease_s = o->lease_s;
	if (o->max_attempts != 0)
		cfg.max_attempts = o->max_attempts;
	if (o->set_backoff)
		cfg.backoff_s = o->backoff_s;
	for (i = 0; o->settings != NULL && o->settings[i] != NULL; i++) {
		char line[512];
		if (strlen(o->settings[i]) >= sizeof(line)) {
			errno = MQ_EBADCONF;
			goto fail;
		}
		strcpy(line, o->settings[i]);
		if (mq_config_parse(line, strlen(line), &cfg) == -1)
			goto fail;
	}
	if ((faccessat(q->fd, "config", F_OK, AT_SYMLINK_NOFOLLOW) == -1 ||
	    o->lease_s != 0 || o->max_attempts != 0 || o->set_backoff ||
	    (o->settings != NULL && o->settings[0] != NULL)) &&
	    mq_config_write(q, &cfg) == -1)
		goto fail;
	if (faccessat(q->fd, "seq", F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
	    mq_seq_create(q) == -1)
		goto fail;
	if (explicit_mode) {
		if (o->gid != (gid_t)-1 &&
		    (fchownat(q->fd, "config", (uid_t)-1, o->gid,
		    AT_SYMLINK_NOFOLLOW) == -1 ||
		    fchownat(q->fd, "seq", (uid_t)-1, o->gid,
		    AT_SYMLINK_NOFOLLOW) == -1))
			goto fail;
		if (mq_chmodat(q->fd, "seq", q->file_mode) == -1 ||
		    mq_chmodat(q->fd, "config", q->file_mode) == -1)
			goto fail;
	}
	mq_tmp_clean(q, MQ_STALE_TMP_S);
	if (fsync(q->fd) == -1)
		goto fail;
	mq_close(q);
	return 0;
fail:
	saved = errno;
	mq_close(q);
	errno = saved;
	return -1;
}

/* Remove path from a ':'-separated list; returns 1 if it was there. */
static int
list_remove(char *list, const char *path)
{
	char *p = list, *colon;
	size_t len = strlen(path);

	while (*p != '\0') {
		colon = strchr(p, ':');
		if ((colon ? (size_t)(colon - p) : strlen(p)) == len &&
		    strncmp(p, path, len) == 0) {
			if (colon != NULL)
				memmove(p, colon + 1, strlen(colon + 1) + 1);
			else if (p > list)
				p[-1] = '\0';
			else
				*p = '\0';
			return 1;
		}
		if (colon == NULL)
			break;
		p = colon + 1;
	}
	return 0;
}

int
mq_subscribe(const char *topic, const char *queue, int on)
{
	char tpath[PATH_MAX], qpath[PATH_MAX], buf[PATH_MAX];
	struct mq_queue *t = NULL, *q = NULL;
	struct mq_config tc, qc;
	size_t have;
	int rc = -1, saved;

	if (mq_resolve(topic, buf, sizeof(buf)) == -1 ||
	    realpath(buf, tpath) == NULL ||
	    mq_resolve(queue, buf, sizeof(buf)) == -1 ||
	    realpath(buf, qpath) == NULL)
		return -1;
	if (strcmp(tpath, qpath) == 0) {
		errno = EINVAL;
		return -1;
	}
	if ((t = mq_open(tpath)) == NULL || (q = mq_open(qpath)) == NULL ||
	    mq_config(t, &tc) == -1 || mq_config(q, &qc) == -1)
		goto out;
	/* A queue takes one topic's copies: their ids and signatures are
	 * checked against that topic. */
	if (on && qc.topic[0] != '\0' && strcmp(qc.topic, tpath) != 0) {
		errno = EBUSY;
		goto out;
	}
	list_remove(tc.subscribers, qpath);
	if (on) {
		have = strlen(tc.subscribers);
		if (have + strlen(qpath) + 2 > sizeof(tc.subscribers) ||
		    strlen(tpath) >= sizeof(qc.topic)) {
			errno = ENAMETOOLONG;
			goto out;
		}
		if (have > 0)
			tc.subscribers[have++] = ':';
		strcpy(tc.subscribers + have, qpath);
		strcpy(qc.topic, tpath);
	} else if (strcmp(qc.topic, tpath) == 0)
		qc.topic[0] = '\0';
	if (mq_config_write(q, &qc) == -1 || mq_config_write(t, &tc) == -1)
		goto out;
	rc = 0;
out:
	saved = errno;
	mq_close(t);
	mq_close(q);
	errno = saved;
	return rc;
}
