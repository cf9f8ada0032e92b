/*
 * send.c - writing messages and committing them, alone or in groups.
 *
 * The maildir protocol: a message is created exclusively in tmp/ under a
 * name no one else can choose, written, its data synced, renamed into its
 * bucket in new/, and the bucket directory synced; only then is it sent.
 * A crash before the rename leaves a file in tmp/ that is never delivered
 * and is removed once stale.  Committing many drafts at once is the same
 * protocol with each step done for the whole group: writeback of every
 * file is started before the first one is waited for, and each bucket
 * directory is synced once for all the messages that entered it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

struct mq_draft {
	struct mq_queue *q;
	const struct mq_send_opts *opts;
	int fd;
	int started;
	int closed;
	int visible;
	int compress;
	uint64_t seq;
	int64_t ns;
	uint64_t max_size;
	off_t size_at;
	off_t raw_at;
	size_t header_len;
	unsigned char *probe;
	size_t probe_len;
	unsigned compress_min;
	struct mq_encoder enc;
	char id[MQ_ID_SIZE];
	char tmp_name[MQ_NAME_MAX];
	char header[MQ_HEADER_MAX];
};

#define PROBE_MAX 65536

static const char *
queue_name(const struct mq_queue *q)
{
	const char *slash = strrchr(q->path, '/');

	return slash != NULL && slash[1] != '\0' ? slash + 1 : q->path;
}

/* Write the header and set up the encoder, once it is known whether the
 * body will be compressed. */
static int
start(struct mq_draft *d)
{
	const struct mq_send_opts *o = d->opts;
	unsigned char key[32], sealed[32 + crypto_box_SEALBYTES], xpk[32];
	unsigned char ss_header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	char to_b64[64], key_b64[160], hdr_b64[64], signer[64];
	struct mq_header_fields f = { 0 };
	int len, rc, sealing = o != NULL && o->seal_to != NULL;
	int signing = o != NULL && o->sign != NULL;

	if ((sealing || signing) && mq_sodium_init() == -1)
		return -1;
	if (sealing) {
		crypto_secretstream_xchacha20poly1305_keygen(key);
		if (crypto_sign_ed25519_pk_to_curve25519(xpk, o->seal_to->pk) != 0) {
			errno = MQ_EBADKEY;
			return -1;
		}
		crypto_box_seal(sealed, key, sizeof(key), xpk);
		sodium_bin2base64(key_b64, sizeof(key_b64), sealed,
		    sizeof(sealed), sodium_base64_VARIANT_ORIGINAL);
		mq_pubkey_text(o->seal_to->pk, to_b64, sizeof(to_b64));
	}
	rc = mq_enc_start(&d->enc, d->fd, d->compress == MQ_COMPRESS_YES,
	    sealing ? key : NULL, ss_header, signing);
	if (sealing)
		sodium_memzero(key, sizeof(key));
	if (rc == -1)
		return -1;
	d->started = 1;
	if (sealing)
		sodium_bin2base64(hdr_b64, sizeof(hdr_b64), ss_header,
		    sizeof(ss_header), sodium_base64_VARIANT_ORIGINAL);
	if (signing)
		mq_pubkey_text(o->sign->pk, signer, sizeof(signer));
	f.id = d->id;
	f.ns = d->ns;
	f.queue = queue_name(d->q);
	f.compressed = d->compress == MQ_COMPRESS_YES;
	f.sealed = sealing;
	f.sealed_to = to_b64;
	f.seal_key = key_b64;
	f.seal_header = hdr_b64;
	f.signer = signing ? signer : NULL;
	f.headers = o != NULL ? o->headers : NULL;
	len = mq_header_build(d->header, sizeof(d->header), &f, &d->size_at,
	    &d->raw_at);
	if (len == -1)
		return -1;
	d->header_len = (size_t)len;
	return mq_write_all(d->fd, d->header, d->header_len);
}

/* Auto compression: compress when the first 64 KiB shrink by a tenth. */
static int
decide(struct mq_draft *d)
{
	uLongf clen;
	unsigned char *trial;
	int worth = 0;

	if (d->probe_len >= d->compress_min) {
		clen = compressBound((uLong)d->probe_len);
		if ((trial = malloc(clen)) == NULL)
			return -1;
		if (compress2(trial, &clen, d->probe, (uLong)d->probe_len,
		    Z_DEFAULT_COMPRESSION) == Z_OK)
			worth = clen < d->probe_len - d->probe_len / 10;
		free(trial);
	}
	d->compress = worth ? MQ_COMPRESS_YES : MQ_COMPRESS_NO;
	if (start(d) == -1 || mq_enc_write(&d->enc, d->probe, d->probe_len) == -1)
		return -1;
	free(d->probe);
	d->probe = NULL;
	return 0;
}

struct mq_draft *
mq_draft_new(struct mq_queue *q, const struct mq_send_opts *opts)
{
	struct mq_config cfg;
	struct mq_draft *d;
	int tmpfd, saved;

	if ((tmpfd = mq_dir(q, MQ_DIR_TMP)) == -1 || mq_config(q, &cfg) == -1)
		return NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->q = q;
	d->opts = opts;
	d->fd = -1;
	d->max_size = cfg.max_size;
	d->compress_min = cfg.compress_min;
	d->compress = opts != NULL && opts->compress != MQ_COMPRESS_CONFIG ?
	    opts->compress : cfg.compress;
	if (mq_seq_reserve(q, 1, &d->seq) == -1)
		goto fail;
	mq_id_format(d->seq, d->id);
	d->ns = mq_now_ns();
	snprintf(d->tmp_name, sizeof(d->tmp_name), "%ld.%" PRId64 ".%s",
	    (long)getpid(), d->ns, d->id);
	d->fd = openat(tmpfd, d->tmp_name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, q->file_mode);
	if (d->fd == -1 || fchmod(d->fd, q->file_mode) == -1)
		goto fail;
	if (d->compress != MQ_COMPRESS_AUTO && start(d) == -1)
		goto fail;
	return d;
fail:
	saved = errno;
	mq_draft_free(d);
	errno = saved;
	return NULL;
}

int
mq_draft_write(struct mq_draft *d, const void *buf, size_t n)
{
	unsigned char *grown;
	size_t cap;

	if (d->max_size != 0 && (uint64_t)d->enc.raw + d->probe_len + n >
	    d->max_size) {
		errno = MQ_ETOOBIG;
		return -1;
	}
	if (d->started)
		return mq_enc_write(&d->enc, buf, n);
	if (d->probe_len + n < PROBE_MAX) {
		cap = d->probe_len + n < 256 ? 256 : d->probe_len + n;
		if ((grown = realloc(d->probe, cap)) == NULL)
			return -1;
		d->probe = grown;
		memcpy(d->probe + d->probe_len, buf, n);
		d->probe_len += n;
		return 0;
	}
	if (decide(d) == -1)
		return -1;
	return mq_enc_write(&d->enc, buf, n);
}

int
mq_draft_copy(struct mq_draft *d, int fd)
{
	char buf[128 * 1024];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if (mq_draft_write(d, buf, (size_t)n) == -1)
			return -1;
	}
}

const char *
mq_draft_id(const struct mq_draft *d)
{
	return d->id;
}

int
mq_draft_close(struct mq_draft *d)
{
	int rc;

	if (d->closed)
		return 0;
	if (!d->started && decide(d) == -1)
		return -1;
	rc = mq_enc_finish(&d->enc);
	if (rc == 0)
		rc = mq_header_set_size(d->fd, d->header, d->size_at,
		    d->enc.stored);
	if (rc == 0 && d->raw_at != 0)
		rc = mq_header_set_size(d->fd, d->header, d->raw_at, d->enc.raw);
	if (rc == 0 && d->enc.sign)
		rc = mq_enc_sign(&d->enc, d->header, d->header_len,
		    d->opts->sign);
	mq_enc_free(&d->enc);
	d->closed = rc == 0;
	return rc;
}

void
mq_draft_free(struct mq_draft *d)
{
	int saved = errno;

	if (d == NULL)
		return;
	if (d->fd != -1)
		close(d->fd);
	if (!d->visible && d->tmp_name[0] != '\0')
		unlinkat(mq_dir(d->q, MQ_DIR_TMP), d->tmp_name, 0);
	mq_enc_free(&d->enc);
	free(d->probe);
	free(d);
	errno = saved;
}

/* Sync a bucket once for the run of drafts that entered it. */
static int
sync_buckets(struct mq_draft **d, size_t n, size_t *synced)
{
	char bucket[MQ_ID_SIZE], prev[MQ_ID_SIZE] = "";
	int newfd = mq_dir(d[0]->q, MQ_DIR_NEW);
	size_t i;

	for (i = 0; i < n; i++) {
		mq_bucket_name(d[i]->seq, bucket);
		if (strcmp(bucket, prev) == 0)
			continue;
		/* Drafts are in sequence order, so a bucket once left is
		 * never entered again in this group. */
		*synced = i;
		if (mq_fsync_dirat(newfd, bucket) == -1)
			return -1;
		memcpy(prev, bucket, sizeof(prev));
	}
	*synced = n;
	return 0;
}

/* Take back messages renamed into new/ whose durability is unknown; one a
 * consumer already took is delivered, which at-least-once allows. */
static void
withdraw(struct mq_draft **d, size_t from, size_t to)
{
	char bucket[MQ_ID_SIZE], name[MQ_NAME_MAX];
	int newfd = mq_dir(d[0]->q, MQ_DIR_NEW);
	size_t i;

	for (i = from; i < to; i++) {
		mq_bucket_name(d[i]->seq, bucket);
		snprintf(name, sizeof(name), "%s/%s.0", bucket, d[i]->id);
		unlinkat(newfd, name, 0);
	}
}

size_t
mq_commit(struct mq_queue *q, struct mq_draft **d, size_t n)
{
	size_t i, ok, synced = 0;
	int tmpfd, created = 0, rc, saved;

	if (n == 0)
		return 0;
	tmpfd = mq_dir(q, MQ_DIR_TMP);
	for (i = 0; i < n; i++) {
		if (mq_draft_close(d[i]) == -1)
			goto abort_rest;
		if (n > 1)
			sync_file_range(d[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		if (fdatasync(d[i]->fd) == -1)
			goto abort_rest;
		if (close(d[i]->fd) == -1) {
			d[i]->fd = -1;
			goto abort_rest;
		}
		d[i]->fd = -1;
	}
	for (i = 0; i < n; i++) {
		rc = mq_move_to_ready(q, tmpfd, d[i]->tmp_name, d[i]->seq, 0);
		if (rc == -1)
			break;
		created |= rc;
		d[i]->visible = 1;
	}
	ok = i;
	saved = errno;
	if (ok > 0 && sync_buckets(d, ok, &synced) == -1) {
		saved = errno;
		withdraw(d, synced, ok);
		for (i = synced; i < ok; i++)
			d[i]->visible = 0;
		ok = synced;
	}
	if (created)
		mq_tmp_clean(q, MQ_STALE_TMP_S);
	errno = saved;
	return ok;
abort_rest:
	/* Nothing is visible yet: a failure here fails the whole group, so
	 * a caller never has to guess which messages went out. */
	return 0;
}

/* Remove files in tmp/ older than max_age_s: producers killed mid-send.
 * Young files may belong to a send in progress and are left alone. */
int
mq_tmp_clean(struct mq_queue *q, unsigned max_age_s)
{
	struct dirent *de;
	struct stat st;
	int tmpfd, fd, removed = 0;
	time_t cutoff = time(NULL) - (time_t)max_age_s;
	DIR *dir;

	if ((tmpfd = mq_dir(q, MQ_DIR_TMP)) == -1)
		return -1;
	if ((fd = openat(tmpfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (st.st_mtime < cutoff && !S_ISDIR(st.st_mode) &&
		    unlinkat(tmpfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
