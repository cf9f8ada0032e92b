/*
 * ack.c - settling a claim: ack, retry, dead-letter, extend.
 *
 * A receipt names one claim of one message (ID.N.TOKEN); the lease file
 * in cur/ is the receipt plus the lease end.  Every settlement is a single
 * unlink or rename of that file, so it races cleanly with a consumer that
 * reclaims an expired lease: whichever goes first wins, and the loser sees
 * the file gone and reports the receipt stale (MQ_ESTALE) without touching
 * the message.  Acks are not synced: an ack lost in a power cut means one
 * more delivery, which at-least-once delivery allows.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mq_impl.h"

int
mq_lease_find(struct mq_queue *q, const char *receipt, char *name,
    size_t size)
{
	struct dirent *de;
	uint64_t seq;
	unsigned n;
	int64_t deadline;
	char kind;
	size_t len = strlen(receipt);
	int curfd, found = 0, saved;
	DIR *d;

	if (!mq_receipt_valid(receipt)) {
		errno = MQ_EBADRECEIPT;
		return -1;
	}
	if ((curfd = mq_dir(q, MQ_DIR_CUR)) == -1 ||
	    (d = mq_opendirat(curfd, ".")) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, receipt, len) == 0 &&
		    de->d_name[len] == '.' &&
		    mq_lease_name_parse(de->d_name, &seq, &n, &kind,
		    &deadline) == 0 && strlen(de->d_name) < size) {
			strcpy(name, de->d_name);
			found = 1;
			break;
		}
	}
	saved = errno;
	closedir(d);
	/* A listing cut short says nothing of the lease: the settlement
	 * fails with the error, not as if the receipt were stale. */
	if (!found && saved != 0) {
		errno = saved;
		return -1;
	}
	if (!found) {
		errno = MQ_ESTALE;
		return -1;
	}
	return 0;
}

/* Apply op to the lease of receipt; look the file up again once if it was
 * renamed under us by the holder's own extension. */
static int
settle(struct mq_queue *q, const char *receipt,
    int (*op)(struct mq_queue *, const char *, void *), void *arg)
{
	char name[MQ_LEASE_NAME_SIZE];
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if (mq_lease_find(q, receipt, name, sizeof(name)) == -1)
			return -1;
		if (op(q, name, arg) == 0)
			return 0;
		if (errno != ENOENT)
			return -1;
	}
	errno = MQ_ESTALE;
	return -1;
}

static int
op_ack(struct mq_queue *q, const char *name, void *arg)
{
	(void)arg;
	return unlinkat(q->dirfd[MQ_DIR_CUR], name, 0);
}

int
mq_ack(struct mq_queue *q, const char *receipt)
{
	return settle(q, receipt, op_ack, NULL);
}

int
mq_msg_ack(struct mq_queue *q, struct mq_msg *m)
{
	if (op_ack(q, m->lease_name, NULL) == 0)
		return 0;
	return errno == ENOENT ? mq_ack(q, m->receipt) : -1;
}

struct retry_args {
	unsigned delay_s;
	int uncount;
	int dead;
};

static int
op_retry(struct mq_queue *q, const char *name, void *arg)
{
	struct retry_args *a = arg;
	struct mq_config cfg;
	char to[MQ_NAME_MAX], id[MQ_ID_SIZE];
	int64_t deadline;
	uint64_t seq;
	unsigned n;
	char kind;
	int curfd = q->dirfd[MQ_DIR_CUR], delayfd;

	if (mq_lease_name_parse(name, &seq, &n, &kind, &deadline) == -1 ||
	    mq_config(q, &cfg) == -1)
		return -1;
	if (a->uncount)
		n--;
	else if (n >= cfg.max_attempts) {
		a->dead = 1;
		return mq_move_to_dead(q, curfd, name, seq, n, "attempts");
	}
	if (a->delay_s == 0)
		return mq_move_to_ready(q, curfd, name, seq, n, -1, 1) == -1 ? -1 : 0;
	if ((delayfd = mq_dir(q, MQ_DIR_DELAY)) == -1)
		return -1;
	mq_id_format(seq, id);
	snprintf(to, sizeof(to), "%019" PRId64 ".%s.%u",
	    mq_now_ns() + (int64_t)a->delay_s * 1000000000, id, n);
	return mq_move(curfd, name, delayfd, to);
}

int
mq_retry(struct mq_queue *q, const char *receipt, unsigned delay_s,
    int *dead)
{
	struct retry_args a = { delay_s, 0, 0 };
	int rc;

	rc = settle(q, receipt, op_retry, &a);
	if (dead != NULL)
		*dead = a.dead;
	return rc;
}

int
mq_unclaim(struct mq_queue *q, const char *receipt)
{
	struct retry_args a = { 0, 1, 0 };

	return settle(q, receipt, op_retry, &a);
}

static int
op_fail(struct mq_queue *q, const char *name, void *arg)
{
	int64_t deadline;
	uint64_t seq;
	unsigned n;
	char kind;

	(void)arg;
	if (mq_lease_name_parse(name, &seq, &n, &kind, &deadline) == -1)
		return -1;
	return mq_move_to_dead(q, q->dirfd[MQ_DIR_CUR], name, seq, n, "failed");
}

int
mq_fail(struct mq_queue *q, const char *receipt)
{
	return settle(q, receipt, op_fail, NULL);
}

struct extend_args {
	unsigned lease_s;
	char *name_out;
	int64_t deadline;
};

static int
op_extend(struct mq_queue *q, const char *name, void *arg)
{
	struct extend_args *a = arg;
	char to[MQ_LEASE_NAME_SIZE];
	int curfd = q->dirfd[MQ_DIR_CUR];
	size_t len = (size_t)(strrchr(name, '.') - name);

	a->deadline = mq_now_ns() + (int64_t)a->lease_s * 1000000000;
	snprintf(to, sizeof(to), "%.*s.%019" PRId64, (int)len, name,
	    a->deadline);
	if (strcmp(to, name) == 0)
		return 0;
	if (mq_move_unique(curfd, name, curfd, to) == -1)
		return -1;
	if (a->name_out != NULL)
		strcpy(a->name_out, to);
	return 0;
}

int
mq_extend(struct mq_queue *q, const char *receipt, unsigned lease_s)
{
	struct extend_args a = { lease_s, NULL, 0 };

	return settle(q, receipt, op_extend, &a);
}

int
mq_msg_extend(struct mq_queue *q, struct mq_msg *m, unsigned lease_s)
{
	struct extend_args a = { lease_s, m->lease_name, 0 };

	if (mq_dir(q, MQ_DIR_CUR) == -1)
		return -1;
	if (op_extend(q, m->lease_name, &a) == -1) {
		if (errno != ENOENT)
			return -1;
		errno = MQ_ESTALE;
		return -1;
	}
	m->deadline_ns = a.deadline;
	return 0;
}
