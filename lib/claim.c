/*
 * claim.c - taking the oldest ready message, and leases that run out.
 *
 * A claim is a rename from new/BUCKET/ID.N to cur/ID.N+1.TOKEN.DEADLINE:
 * of several consumers racing for one file exactly one rename succeeds.
 * Before renaming, the claimer opens the file and takes an OFD lock on
 * it, having checked that no one else holds one; a holder that stays alive keeps that lock, so when it dies
 * (even by SIGKILL) the kernel drops the lock and the next consumer sees
 * the message is free at once instead of waiting out the lease.  The lock
 * covers one byte at an offset particular to the queue (its directory's
 * inode number), not the whole file: a topic's copies in its subscribers
 * are hard links of one inode, and each subscriber's claims must not
 * collide with another's.  The lease
 * end is part of the name, so extending a lease is itself an atomic rename
 * that races cleanly with a consumer reclaiming it.
 *
 * Expired leases and due retries are returned to new/ by whoever claims
 * next (reap.c).  To find the oldest message a claim lists new/ (one entry
 * per 1024 ids) and then a single bucket, so its cost does not grow with
 * the depth of the queue; a consumer claiming one message after another
 * keeps that listing between claims (cursor.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"


void
mq_set_quarantine_hook(struct mq_queue *q,
    void (*fn)(const char *, int, void *), void *arg)
{
	q->on_quarantine = fn;
	q->on_quarantine_arg = arg;
}

DIR *
mq_opendirat(int dirfd, const char *name)
{
	DIR *d;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

/* Hold this queue's byte of a message file; 0, or -1 with EWOULDBLOCK
 * when another process does. */
static int
lock_msg(const struct mq_queue *q, int fd)
{
	struct flock lk = {
		.l_type = F_RDLCK, .l_whence = SEEK_SET,
		.l_start = q->lock_off, .l_len = 1
	};
	int locked = mq_msg_locked(q, fd);

	/* A filesystem that cannot lock fails the claim, saying so, rather
	 * than have every message look held and the queue look empty. */
	if (locked == -1)
		return -1;
	if (locked) {
		errno = EWOULDBLOCK;
		return -1;
	}
	return fcntl(fd, F_OFD_SETLK, &lk);
}

static int
cmp_entry(const void *a, const void *b)
{
	const struct mq_ready *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->n < y->n ? -1 : x->n > y->n;
}

static void *
listing_failed(DIR *d, void *list)
{
	int saved = errno;

	free(list);
	closedir(d);
	errno = saved;
	return NULL;
}

/* Read the valid names of one bucket, sorted oldest first. */
struct mq_ready *
mq_list_bucket(int newfd, const char *bucket, uint64_t base, size_t *count)
{
	struct mq_ready *e = NULL, *grown;
	struct dirent *de;
	size_t len = 0, cap = 0;
	uint64_t seq;
	unsigned n;
	DIR *d;

	*count = 0;
	if ((d = mq_opendirat(newfd, bucket)) == NULL)
		return NULL;
	while ((errno = 0, de = readdir(d)) != NULL &&
	    len < MQ_BUCKET_ENTRIES_MAX) {
		if (mq_ready_name_parse(de->d_name, &seq, &n) == -1 ||
		    (seq >> MQ_BUCKET_BITS) != (base >> MQ_BUCKET_BITS))
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			if ((grown = realloc(e, cap * sizeof(*e))) == NULL) {
				free(e);
				closedir(d);
				errno = ENOMEM;
				return NULL;
			}
			e = grown;
		}
		e[len].seq = seq;
		e[len].n = n;
		e[len].gone = 0;
		len++;
	}
	/* A listing cut short by an error would pass over messages. */
	if (de == NULL && errno != 0)
		return listing_failed(d, e);
	closedir(d);
	if (len > 1)
		qsort(e, len, sizeof(*e), cmp_entry);
	*count = len;
	if (e == NULL)
		errno = 0;
	return e;
}

static int
cmp_bucket(const void *a, const void *b)
{
	const struct mq_bucket *x = a, *y = b;

	if (x->prio != y->prio)
		return x->prio > y->prio ? -1 : 1;
	return x->base < y->base ? -1 : x->base > y->base;
}

struct mq_bucket *
mq_list_buckets(int newfd, size_t *count)
{
	struct mq_bucket *b = NULL, *grown, one;
	struct dirent *de;
	size_t len = 0, cap = 0;
	DIR *d;

	*count = 0;
	if ((d = mq_opendirat(newfd, ".")) == NULL)
		return NULL;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (mq_bucket_name_parse(de->d_name, &one) == -1)
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			if ((grown = realloc(b, cap * sizeof(*b))) == NULL) {
				free(b);
				closedir(d);
				errno = ENOMEM;
				return NULL;
			}
			b = grown;
		}
		b[len++] = one;
	}
	if (errno != 0)
		return listing_failed(d, b);
	closedir(d);
	if (len > 1)
		qsort(b, len, sizeof(*b), cmp_bucket);
	*count = len;
	if (b == NULL)
		errno = 0;
	return b;
}

static const char *
queue_name(const struct mq_queue *q)
{
	const char *slash = strrchr(q->path, '/');

	return slash != NULL && slash[1] != '\0' ? slash + 1 : q->path;
}

/* Signature keys and the opening key come from the config the first time
 * a claim needs them, unless the caller set its own. */
static int
load_keys(struct mq_queue *q, const struct mq_config *cfg)
{
	if (q->trust_loaded)
		return 0;
	if (cfg->trusted_keys[0] != '\0' && mq_trust(q, cfg->trusted_keys) == -1)
		return -1;
	if (cfg->key[0] != '\0' && q->open_key == NULL &&
	    mq_set_key(q, cfg->key) == -1)
		return -1;
	q->trust_loaded = 1;
	return 0;
}

static int
from_topic(const struct mq_config *cfg, const char *queue)
{
	const char *slash = strrchr(cfg->topic, '/');

	return cfg->topic[0] != '\0' && slash != NULL &&
	    strcmp(slash + 1, queue) == 0;
}

/* A message file is this queue's message id when its header says so, or
 * when it is a copy from the queue's topic (which has the topic's id).  A
 * file with other names elsewhere (a hard link) must also name this queue
 * in its header: a link to another queue's message is not ours. */
int
mq_msg_belongs(const struct mq_queue *q, const struct mq_config *cfg,
    const struct mq_msg *m, const char *id, nlink_t nlink)
{
	if (from_topic(cfg, m->queue))
		return 1;
	if (nlink > 1 && strcmp(m->queue, queue_name(q)) != 0)
		return 0;
	return strcmp(m->id, id) == 0;
}

/* A message past its expiry is never delivered: it goes to dead/ with
 * the reason, or away if the queue says so. */
static void
expire(struct mq_queue *q, const struct mq_config *cfg, int bucketfd,
    const char *name, const struct mq_ready *e)
{
	if (cfg->expired_drop)
		unlinkat(bucketfd, name, 0);
	else
		mq_move_to_dead(q, bucketfd, name, e->seq, e->n, "expired");
}

/* Everything that must hold before a claimed message may be delivered.
 * Returns 0, or -1 with the reason in errno. */
static int
check(struct mq_queue *q, const struct mq_config *cfg, struct mq_msg *m)
{
	char name[NAME_MAX + 1];

	if (cfg->max_size != 0 && (uint64_t)m->raw_size > cfg->max_size) {
		errno = MQ_ETOOBIG;
		return -1;
	}
	if (m->signed_) {
		if (mq_verify(q, m) == -1)
			return -1;
		/* Requiring signatures without naming trusted keys trusts
		 * none: a forger can sign too. */
		if ((q->verifying || cfg->require_signature) &&
		    !mq_trusted(q, m->signer)) {
			errno = MQ_EUNTRUSTED;
			return -1;
		}
		/* The signature covers the queue name and id: a copy into
		 * another queue, or under another id, is not this message.
		 * A subscriber's copies are signed for its topic. */
		if (mq_header_get(m, "queue", name, sizeof(name)) == -1 ||
		    (strcmp(name, queue_name(q)) != 0 &&
		    !from_topic(cfg, name))) {
			errno = MQ_EOTHERQUEUE;
			return -1;
		}
	} else if (cfg->require_signature || q->verifying) {
		errno = MQ_EUNSIGNED;
		return -1;
	}
	if ((m->compressed || m->sealed) && mq_decode(q, m, -1) == -1)
		return -1;
	return 0;
}

/* Deliver a claimed message only if it passes check(): one that fails
 * it is quarantined, one whose check could not run is given back.
 * Returns 1, 0 (set aside), or -1. */
static int
settle_claim(struct mq_queue *q, const struct mq_config *cfg,
    struct mq_msg *m)
{
	int saved;

	if (check(q, cfg, m) == 0)
		return 1;
	saved = errno;
	mq_msg_close(m);
	if (saved == EIO || saved == ENOMEM || saved == EINTR) {
		mq_unclaim(q, m->receipt);
		errno = saved;
		return -1;
	}
	mq_quarantine(q, q->dirfd[MQ_DIR_CUR], m->lease_name, saved);
	return 0;
}

/* Try to claim one ready file.  Returns 1 claimed, 0 not now (try the
 * next), -1 error; marks the entry gone when it is no longer ready (taken
 * by anyone, set aside, or not a message). */
static int
try_claim(struct mq_queue *q, const struct mq_config *cfg, int bucketfd,
    struct mq_ready *e, unsigned lease_s, int keep_lock, struct mq_msg *m)
{
	char name[MQ_NAME_MAX], token[16], id[MQ_ID_SIZE];
	struct stat st;
	int curfd = q->dirfd[MQ_DIR_CUR], fd, saved, parsed;

	mq_id_format(e->seq, id);
	snprintf(name, sizeof(name), "%s.%u", id, e->n);
	fd = openat(bucketfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT) {
			e->gone = 1;
			return 0;
		}
		if (errno == ELOOP || errno == ENXIO || errno == EWOULDBLOCK) {
			e->gone = 1;
			mq_quarantine(q, bucketfd, name, MQ_EBADMSG);
			return 0;
		}
		return -1;
	}
	m->fd = fd;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		mq_msg_close(m);
		e->gone = 1;
		mq_quarantine(q, bucketfd, name, MQ_EBADMSG);
		return 0;
	}
	if (lock_msg(q, fd) == -1) {
		saved = errno;
		mq_msg_close(m);
		if (saved != EWOULDBLOCK) {
			errno = saved;
			return -1;
		}
		return 0;
	}
	if ((parsed = mq_header_parse(fd, m, st.st_size)) == -1 &&
	    (errno == EIO || errno == ENOMEM || errno == EINTR))
		/* A header that could not be read says nothing against
		 * the message: the claim fails, as when check() cannot
		 * decode. */
		goto fail;
	if (parsed == -1 || !mq_msg_belongs(q, cfg, m, id, st.st_nlink)) {
		saved = errno == MQ_EFORMAT ? errno : MQ_EBADMSG;
		mq_msg_close(m);
		e->gone = 1;
		mq_quarantine(q, bucketfd, name, saved);
		return 0;
	}
	/* A subscriber's copy is known here by the subscriber's own id. */
	memcpy(m->id, id, sizeof(m->id));
	if (m->expires_ns != 0 && m->expires_ns <= mq_now_ns()) {
		mq_msg_close(m);
		e->gone = 1;
		expire(q, cfg, bucketfd, name, e);
		return 0;
	}
	if (m->group[0] != '\0') {
		int owns = mq_group_acquire(q, m->group, m->id);
		if (owns != 1) {
			mq_msg_close(m);
			return owns;
		}
	}
	/* A body sealed to another consumer's key is left for that one,
	 * unclaimed, so this consumer neither loops over it nor delays it. */
	if (!mq_sealed_for_us(q, m)) {
		mq_msg_close(m);
		return 0;
	}
	if (mq_token(token, sizeof(token), keep_lock) == -1)
		goto fail;
	m->attempt = e->n + 1;
	m->deadline_ns = mq_now_ns() + (int64_t)lease_s * 1000000000;
	snprintf(m->receipt, sizeof(m->receipt), "%s.%u.%s", m->id,
	    m->attempt, token);
	snprintf(m->lease_name, sizeof(m->lease_name), "%s.%019" PRId64,
	    m->receipt, m->deadline_ns);
	if ((q->claims_unsynced ? mq_rename_unique : mq_move_unique)(bucketfd,
	    name, curfd, m->lease_name) == -1) {
		saved = errno;
		mq_msg_close(m);
		errno = saved;
		if (errno != ENOENT)
			return -1;
		e->gone = 1;
		return 0;
	}
	e->gone = 1;
	/* A batch checks its messages once cur/ is synced: verifying or
	 * decoding a body can take long, and until that sync a sender's
	 * sync of the bucket could make a claim's removal durable without
	 * its arrival. */
	return q->claims_unsynced ? 1 : settle_claim(q, cfg, m);
fail:
	saved = errno;
	mq_msg_close(m);
	errno = saved;
	return -1;
}

/* Two ready names of one id (ID.N and ID.N+1) are one file twice when a
 * power cut undid the removal half of a claim's rename on a filesystem
 * without a journal, and the lease was then taken back: remove the older
 * name so the message is delivered once.  Returns 1 when it did. */
static int
drop_twin(int bucketfd, const struct mq_ready *old, const struct mq_ready *new)
{
	char a[MQ_NAME_MAX], b[MQ_NAME_MAX], id[MQ_ID_SIZE];
	struct stat sa, sb;

	mq_id_format(old->seq, id);
	snprintf(a, sizeof(a), "%s.%u", id, old->n);
	snprintf(b, sizeof(b), "%s.%u", id, new->n);
	if (fstatat(bucketfd, a, &sa, AT_SYMLINK_NOFOLLOW) == -1 ||
	    fstatat(bucketfd, b, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
	    sa.st_ino != sb.st_ino || sa.st_dev != sb.st_dev)
		return 0;
	return unlinkat(bucketfd, a, 0) == 0;
}

/* Try the entries of a sorted bucket listing from *pos on, and move *pos
 * past those no longer ready.  Returns 1 claimed, 0 nothing claimable
 * now, -1. */
static int
claim_from(struct mq_queue *q, const struct mq_config *cfg, int bucketfd,
    struct mq_ready *e, size_t count, size_t *pos, unsigned lease_s,
    int keep_lock, struct mq_msg *m)
{
	size_t i;
	int rc = 0;

	for (i = *pos; i < count && rc == 0; i++) {
		if (e[i].gone)
			continue;
		if (i + 1 < count && e[i + 1].seq == e[i].seq &&
		    drop_twin(bucketfd, &e[i], &e[i + 1])) {
			e[i].gone = 1;
			continue;
		}
		rc = try_claim(q, cfg, bucketfd, &e[i], lease_s, keep_lock, m);
	}
	while (*pos < count && e[*pos].gone)
		(*pos)++;
	return rc;
}

/* Claim from one bucket.  Returns 1 claimed, 0 nothing claimable, -1.
 * *keepable says whether every bucket before this one was found empty:
 * then the listing may be kept for the next claim (cursor.c), and it is
 * when a message was claimed from it. */
static int
claim_in_bucket(struct mq_queue *q, const struct mq_config *cfg,
    const struct mq_bucket *b, int removable, unsigned lease_s,
    int keep_lock, struct mq_msg *m, int *keepable)
{
	char bucket[MQ_BUCKET_NAME_SIZE];
	struct mq_ready *e;
	size_t count, pos = 0;
	int newfd = q->dirfd[MQ_DIR_NEW], bucketfd, wd, rc;

	mq_bucket_name(b->base, b->prio, bucket);
	/* Watched before it is listed: what arrives after is an event.  A
	 * bucket that cannot be watched (no watches left) could take an
	 * arrival unseen, so no bucket after it may be kept. */
	wd = *keepable ? mq_cursor_watch_bucket(q, bucket) : -1;
	if (wd == -1)
		*keepable = 0;
	e = mq_list_bucket(newfd, bucket, b->base, &count);
	if (e == NULL && errno != 0) {
		if (errno == ELOOP || errno == ENOTDIR) {
			/* A symlink or file planted where a bucket goes. */
			mq_quarantine(q, newfd, bucket, MQ_EBADMSG);
			return 0;
		}
		return errno == ENOENT ? 0 : -1;
	}
	if (count == 0) {
		/* Keep the newest bucket of each priority: senders are
		 * filling it, and recreating it would cost each of them a
		 * directory sync. */
		if (removable)
			unlinkat(newfd, bucket, AT_REMOVEDIR);
		free(e);
		return 0;
	}
	bucketfd = openat(newfd, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (bucketfd == -1) {
		free(e);
		return errno == ENOENT ? 0 : -1;
	}
	rc = claim_from(q, cfg, bucketfd, e, count, &pos, lease_s, keep_lock,
	    m);
	if (rc == 1 && wd != -1) {
		mq_cursor_keep(q, b, wd, bucketfd, e, count, pos);
		return 1;
	}
	if (pos < count)
		*keepable = 0;
	close(bucketfd);
	free(e);
	return rc;
}

/* The next claim of a consumer that claimed before: from the listing it
 * kept, once the events since have been applied.  Returns 1 claimed, 0
 * list afresh, -1. */
static int
claim_kept(struct mq_queue *q, const struct mq_config *cfg, unsigned lease_s,
    int keep_lock, struct mq_msg *m)
{
	struct mq_ready *e;
	size_t count, *pos;
	int64_t now = mq_now_ns(), next;
	int bucketfd, moved;

	if (mq_cursor_update(q) == -1)
		return -1;
	if (mq_cursor_reap_due(q, now)) {
		if ((moved = mq_reap(q, &next, NULL)) == -1)
			return -1;
		mq_cursor_reaped(q, now, next);
		/* What came back may rank before the kept position. */
		if (moved > 0)
			mq_cursor_drop(q);
	}
	if ((e = mq_cursor_entries(q, &bucketfd, &pos, &count)) == NULL)
		return 0;
	return claim_from(q, cfg, bucketfd, e, count, pos, lease_s, keep_lock,
	    m);
}

int
mq_claim(struct mq_queue *q, unsigned lease_s, int keep_lock,
    struct mq_msg *m)
{
	struct mq_config cfg;
	struct mq_bucket *buckets;
	size_t count, i;
	int rc = 0, keepable;

	memset(m, 0, sizeof(*m));
	m->fd = m->feeder = -1;
	if (mq_config(q, &cfg) == -1 || load_keys(q, &cfg) == -1)
		return -1;
	if (lease_s == 0)
		lease_s = cfg.lease_s;
	if (mq_dir(q, MQ_DIR_NEW) == -1 || mq_dir(q, MQ_DIR_CUR) == -1)
		return -1;
	/* A consumer that claims one message after another keeps what it
	 * listed; one that claims once (or waits between claims) need not
	 * pay for the watches. */
	if (q->claimed_last && q->cursor == NULL && !q->cursor_failed &&
	    mq_cursor_start(q) == -1)
		q->cursor_failed = 1;
	if (q->cursor != NULL) {
		if ((rc = claim_kept(q, &cfg, lease_s, keep_lock, m)) != 0)
			goto out;
	} else if (mq_reap(q, NULL, NULL) == -1)
		return -1;
	/* Events until now concern the listing about to be replaced. */
	if (q->cursor != NULL && mq_cursor_update(q) == -1)
		return -1;
	mq_cursor_drop(q);
	buckets = mq_list_buckets(q->dirfd[MQ_DIR_NEW], &count);
	if (buckets == NULL && errno != 0)
		return -1;
	keepable = q->cursor != NULL;
	for (i = 0; i < count && rc == 0; i++)
		rc = claim_in_bucket(q, &cfg, &buckets[i], i + 1 < count &&
		    buckets[i + 1].prio == buckets[i].prio, lease_s, keep_lock,
		    m, &keepable);
	free(buckets);
out:
	q->claimed_last = rc == 1;
	return rc;
}

/* The claims of a batch are made durable by one sync of cur/ before any
 * is returned: a claim's rename removes the name from its bucket, and a
 * sender's sync of that bucket may make the removal durable before the
 * new name is, which a power cut must not find.  Messages that cannot be
 * made durable are given back. */
int
mq_claim_many(struct mq_queue *q, unsigned lease_s, int keep_lock,
    struct mq_msg *m, size_t max)
{
	struct mq_config cfg;
	size_t n = 0, i, kept;
	int rc = 1, saved, settled;

	q->claims_unsynced = 1;
	while (n < max && (rc = mq_claim(q, lease_s, keep_lock, &m[n])) == 1)
		n++;
	q->claims_unsynced = 0;
	saved = errno;
	if (n > 0 && (fsync(q->dirfd[MQ_DIR_CUR]) == -1 ||
	    mq_config(q, &cfg) == -1)) {
		saved = errno;
		for (i = 0; i < n; i++) {
			mq_msg_close(&m[i]);
			mq_unclaim(q, m[i].receipt);
		}
		errno = saved;
		return -1;
	}
	for (i = kept = 0; i < n; i++) {
		if ((settled = settle_claim(q, &cfg, &m[i])) == 1)
			m[kept++] = m[i];
		else if (settled == -1) {
			rc = -1;
			saved = errno;
		}
	}
	if (rc == -1 && kept == 0) {
		errno = saved;
		return -1;
	}
	return (int)kept;
}

void
mq_msg_close(struct mq_msg *m)
{
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->feeder != -1) {
		close(m->feeder);
		m->feeder = -1;
	}
}
