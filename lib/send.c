/*
 * send.c - writing messages and committing them, alone or in groups.
 *
 * The maildir protocol: a message is created exclusively in tmp/ under a
 * name no one else can choose, written, its data synced, renamed into its
 * bucket in new/, and the bucket directory synced; only then is it sent.
 * A crash before the rename leaves a file in tmp/ that is never delivered
 * and is removed once stale.  Committing many drafts at once is the same
 * protocol with each step done for the whole group: one syncfs writes
 * every file's data at once, and each bucket directory is synced once
 * for all the messages that entered it.
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
	int duplicate;
	int64_t due_ns;
	int64_t expires_ns;
	unsigned dedup_window_s;
	char dedup_name[MQ_DEDUP_NAME_SIZE];
	int dedup_fd;			/* holds the key's lock; -1 none */
	struct mq_encoder enc;
	char id[MQ_ID_SIZE];
	char tmp_name[MQ_NAME_MAX];
	char dest[MQ_NAME_MAX + MQ_BUCKET_NAME_SIZE];	/* relative to the queue */
	char header[MQ_HEADER_MAX];
};

#define PROBE_MAX 65536
#define COPY_CHUNK (128 * 1024)
#define PIPE_WIDE (1 << 20)

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
	f.priority = o != NULL ? o->priority : 0;
	f.expires_ns = d->expires_ns;
	f.group = o != NULL ? o->group : NULL;
	len = mq_header_build(d->header, sizeof(d->header), &f, &d->size_at,
	    &d->raw_at);
	if (len == -1)
		return -1;
	d->header_len = (size_t)len;
	return mq_enc_put(&d->enc, d->header, d->header_len);
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
	d->probe_len = 0;
	return 0;
}

/* The process's umask, read once: files are made with the queue's mode,
 * and a umask that would take bits away costs an fchmod per file. */
mode_t
mq_umask(void)
{
	static int known;
	static mode_t mask;

	if (!known) {
		mask = umask(0);
		umask(mask);
		known = 1;
	}
	return mask;
}

void
mq_send_ahead(struct mq_queue *q, unsigned n)
{
	q->seq_ahead = n;
	q->seq_left = 0;
}

struct mq_draft *
mq_draft_new(struct mq_queue *q, const struct mq_send_opts *opts)
{
	static pid_t pid;
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
	d->dedup_fd = -1;
	d->max_size = cfg.max_size;
	d->compress_min = cfg.compress_min;
	d->compress = opts != NULL && opts->compress != MQ_COMPRESS_CONFIG ?
	    opts->compress : cfg.compress;
	if (opts != NULL && (opts->priority < 0 || opts->priority > 9)) {
		errno = EINVAL;
		goto fail;
	}
	d->ns = mq_now_ns();
	/* A due time already past is no delay.  Before 1938 it would not
	 * even fit the 19 digits of a fan-out's name, which recovery could
	 * then not read. */
	if (opts != NULL && opts->not_before_ns > d->ns)
		d->due_ns = opts->not_before_ns;
	if (opts != NULL && opts->ttl_s != 0)
		d->expires_ns = d->ns + (int64_t)opts->ttl_s * 1000000000;
	else if (cfg.ttl_s != 0)
		d->expires_ns = d->ns + (int64_t)cfg.ttl_s * 1000000000;
	if (opts != NULL && opts->dedup_key != NULL) {
		d->dedup_window_s = cfg.dedup_window_s;
		switch (mq_dedup_claim(q, opts->dedup_key, cfg.dedup_window_s,
		    d->dedup_name, d->id, &d->dedup_fd)) {
		case 1:
			/* The body is read and thrown away; the first
			 * message's id stands for this send. */
			d->duplicate = 1;
			d->dedup_name[0] = '\0';
			d->started = d->closed = 1;
			return d;
		case 0:
			break;
		default:
			d->dedup_name[0] = '\0';
			goto fail;
		}
	}
	if (q->seq_left == 0) {
		unsigned n = q->seq_ahead > 1 ? q->seq_ahead : 1;
		if (mq_seq_reserve(q, n, &q->seq_next) == -1)
			goto fail;
		q->seq_left = n;
	}
	d->seq = q->seq_next++;
	q->seq_left--;
	mq_id_format(d->seq, d->id);
	if (pid == 0)
		pid = getpid();
	snprintf(d->tmp_name, sizeof(d->tmp_name), "%ld.%" PRId64 ".%s",
	    (long)pid, d->ns, d->id);
	d->fd = openat(tmpfd, d->tmp_name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, q->file_mode);
	if (d->fd == -1) {
		/* Not ours to remove: whatever is there was made by another. */
		d->tmp_name[0] = '\0';
		goto fail;
	}
	if ((q->file_mode & mq_umask()) != 0 &&
	    fchmod(d->fd, q->file_mode) == -1)
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
	size_t cap, take;

	if (d->duplicate)
		return 0;
	if (d->max_size != 0 && (uint64_t)d->enc.raw + d->probe_len + n >
	    d->max_size) {
		errno = MQ_ETOOBIG;
		return -1;
	}
	if (d->started)
		return mq_enc_write(&d->enc, buf, n);
	/* Fill the sample first, so the decision sees the whole 64 KiB
	 * whatever the size of the writes. */
	take = n < PROBE_MAX - d->probe_len ? n : PROBE_MAX - d->probe_len;
	cap = d->probe_len + take < 256 ? 256 : d->probe_len + take;
	if ((grown = realloc(d->probe, cap)) == NULL)
		return -1;
	d->probe = grown;
	memcpy(d->probe + d->probe_len, buf, take);
	d->probe_len += take;
	if (d->probe_len < PROBE_MAX)
		return 0;
	if (decide(d) == -1)
		return -1;
	return mq_enc_write(&d->enc, (const char *)buf + take, n - take);
}

/* Whether what is written to the draft is stored as it is: neither
 * compressed nor sealed. */
static int
stored_as_written(const struct mq_draft *d)
{
	return d->started && d->enc.z == NULL && !d->enc.seal;
}

/* Where the next byte of the draft goes in its file. */
static off_t
file_offset(const struct mq_draft *d)
{
	return d->enc.wbase + (off_t)d->enc.wlen;
}

/* How much to read next.  A body stored as written is read so that each
 * write ends on a multiple of COPY_CHUNK in the file: after a header of
 * any length, unaligned writes took ext4 1.5 times as long. */
static size_t
next_read(const struct mq_draft *d)
{
	if (!stored_as_written(d))
		return COPY_CHUNK;
	return COPY_CHUNK - (size_t)(file_offset(d) % COPY_CHUNK);
}

/* Set up for a large input: reserve the blocks for the rest of a file,
 * or widen a pipe to PIPE_WIDE, which took a 256 MiB body from cat a
 * quarter faster than the default 64 KiB (fewer switches between writer
 * and reader).  Neither is needed, so only a disk too full for the rest
 * is an error. */
static int
prepare_large(struct mq_draft *d, int fd)
{
	struct stat st;
	off_t pos;

	if (fstat(fd, &st) == -1)
		return 0;
	if (S_ISFIFO(st.st_mode)) {
		fcntl(fd, F_SETPIPE_SZ, PIPE_WIDE);
		return 0;
	}
	if (!S_ISREG(st.st_mode) || !stored_as_written(d) ||
	    (pos = lseek(fd, 0, SEEK_CUR)) == -1 || st.st_size <= pos)
		return 0;
	return mq_prealloc(d->fd, file_offset(d), st.st_size - pos);
}

int
mq_draft_copy(struct mq_draft *d, int fd, int *input_failed)
{
	char buf[COPY_CHUNK];
	off_t kicked = 0, total = 0;
	size_t want;
	int large = 0;
	ssize_t n;

	*input_failed = 0;
	for (;;) {
		want = next_read(d);
		n = read(fd, buf, want);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			*input_failed = 1;
			return -1;
		}
		if (n == 0)
			return 0;
		if (mq_draft_write(d, buf, (size_t)n) == -1)
			return -1;
		if (d->duplicate)
			continue;
		mq_writeback(d->fd, &kicked, file_offset(d));
		/* An input that fills a read, or passes a chunk (a pipe's
		 * reads are shorter), is large: set up for it once, so that a
		 * small message costs no extra call. */
		total += n;
		if (!large && ((size_t)n == want || total >= COPY_CHUNK)) {
			large = 1;
			if (prepare_large(d, fd) == -1)
				return -1;
		}
	}
}

const char *
mq_draft_id(const struct mq_draft *d)
{
	return d->id;
}

/* Fill in a size placeholder, in the file and in the header copy that
 * the signature covers. */
static int
set_size(struct mq_draft *d, off_t at, off_t value)
{
	char digits[MQ_SIZE_DIGITS + 1];

	snprintf(digits, sizeof(digits), "%0*jd", MQ_SIZE_DIGITS,
	    (intmax_t)value);
	memcpy(d->header + at, digits, MQ_SIZE_DIGITS);
	return mq_enc_patch(&d->enc, at, digits, MQ_SIZE_DIGITS);
}

int
mq_draft_park(struct mq_draft *d)
{
	int rc;

	if (mq_draft_close(d) == -1)
		return -1;
	if (d->fd == -1)
		return 0;
	rc = close(d->fd);
	d->fd = -1;
	return rc;
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
		rc = set_size(d, d->size_at, d->enc.stored);
	if (rc == 0 && d->raw_at != 0)
		rc = set_size(d, d->raw_at, d->enc.raw);
	if (rc == 0 && d->enc.sign)
		rc = mq_enc_sign(&d->enc, d->header, d->header_len,
		    d->opts->sign);
	if (rc == 0)
		rc = mq_enc_flush(&d->enc);
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
	if (!d->visible && d->dedup_name[0] != '\0')
		mq_dedup_release(d->q, d->dedup_name, d->dedup_fd);
	else if (d->dedup_fd != -1)
		close(d->dedup_fd);
	mq_enc_free(&d->enc);
	free(d->probe);
	free(d);
	errno = saved;
}

/* Sync each folder the drafts entered once, in order; *synced is how
 * many drafts, from the first, are durable when it fails. */
static int
sync_dests(struct mq_queue *q, struct mq_draft **d, size_t n, size_t *synced)
{
	char dir[sizeof(d[0]->dest)], done[8][sizeof(d[0]->dest)];
	size_t i, k, ndone = 0;

	for (i = 0; i < n; i++) {
		if (d[i]->duplicate || d[i]->dest[0] == '\0')
			continue;
		snprintf(dir, sizeof(dir), "%s", d[i]->dest);
		*strrchr(dir, '/') = '\0';
		for (k = 0; k < ndone && strcmp(done[k], dir) != 0; k++)
			;
		if (k < ndone)
			continue;
		*synced = i;
		/* A bucket already gone was emptied by consumers, and each
		 * of them synced its claim: nothing of ours is left in it. */
		if (mq_fsync_dirat(q->fd, dir) == -1 && errno != ENOENT)
			return -1;
		if (ndone < 8)
			memcpy(done[ndone++], dir, sizeof(dir));
	}
	*synced = n;
	return 0;
}

/* Put a synced draft where consumers will find it: its bucket in new/,
 * or delay/ until it is due.  Returns 1 when a bucket was created. */
static int
place(struct mq_queue *q, struct mq_draft *d)
{
	char bucket[MQ_BUCKET_NAME_SIZE], name[MQ_NAME_MAX];
	int prio = d->opts != NULL ? d->opts->priority : 0, rc, delayfd;

	if (d->due_ns > mq_now_ns()) {
		if ((delayfd = mq_dir(q, MQ_DIR_DELAY)) == -1)
			return -1;
		snprintf(name, sizeof(name), "%019" PRId64 ".%s.0", d->due_ns,
		    d->id);
		if (mq_rename_noreplace(q->dirfd[MQ_DIR_TMP], d->tmp_name,
		    delayfd, name) == -1)
			return -1;
		snprintf(d->dest, sizeof(d->dest), "delay/%s", name);
		return 0;
	}
	rc = mq_move_to_ready(q, q->dirfd[MQ_DIR_TMP], d->tmp_name, d->seq, 0,
	    prio, 0);
	if (rc == -1)
		return -1;
	mq_bucket_name(d->seq, prio, bucket);
	snprintf(d->dest, sizeof(d->dest), "new/%s/%s.0", bucket, d->id);
	return rc;
}

size_t
mq_commit(struct mq_queue *q, struct mq_draft **d, size_t n)
{
	struct mq_config cfg;
	size_t i, ok, synced = 0;
	int created = 0, rc, saved, whole_fs;

	if (n == 0)
		return 0;
	/* Ids taken ahead and not used by this group are skipped: the next
	 * group takes its own, so no message's id is older than its group,
	 * however long the input pauses between groups. */
	q->seq_left = 0;
	if (mq_config(q, &cfg) == -1 || mq_dir(q, MQ_DIR_TMP) == -1)
		return 0;
	if (cfg.subscribers[0] != '\0')
		mq_fanout_recover(q);
	for (i = 0; i < n; i++) {
		if (mq_draft_close(d[i]) == -1)
			goto abort_rest;
	}
	/* One filesystem sync for a group costs less than a data sync per
	 * file (measured: 50,000 lines in 3.4 s against 6.1 s); a parked
	 * draft has no descriptor left to sync alone. */
	whole_fs = n > 1 || (d[0]->fd == -1 && !d[0]->duplicate);
	if (whole_fs && syncfs(q->fd) == -1)
		goto abort_rest;
	for (i = 0; i < n; i++) {
		if (d[i]->duplicate || d[i]->fd == -1)
			continue;
		if (!whole_fs && fdatasync(d[i]->fd) == -1)
			goto abort_rest;
		rc = close(d[i]->fd);
		d[i]->fd = -1;
		if (rc == -1)
			goto abort_rest;
	}
	for (i = 0; i < n; i++) {
		if (d[i]->duplicate)
			continue;
		if (cfg.subscribers[0] != '\0')
			rc = mq_fanout(q, &cfg, d[i]->tmp_name, d[i]->id,
			    d[i]->opts != NULL ? d[i]->opts->priority : 0,
			    d[i]->due_ns);
		else
			rc = place(q, d[i]);
		if (rc == -1)
			break;
		created |= rc;
		d[i]->visible = 1;
	}
	ok = i;
	saved = errno;
	if (ok > 0 && sync_dests(q, d, ok, &synced) == -1) {
		saved = errno;
		for (i = synced; i < ok; i++) {
			if (d[i]->dest[0] != '\0')
				unlinkat(q->fd, d[i]->dest, 0);
			d[i]->visible = 0;
		}
		ok = synced;
	}
	for (i = 0; i < ok; i++)
		if (d[i]->dedup_name[0] != '\0') {
			mq_dedup_settle(q, d[i]->dedup_fd, d[i]->id,
			    d[i]->dedup_window_s);
			d[i]->dedup_fd = -1;
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
 * Young files may belong to a send in progress and are left alone.  A
 * topic's copy staged here is owed to this queue, however old, if its
 * sender was killed after the fan-out's commit point: the topic's
 * fan-outs are finished before the first stale copy is removed, and
 * copies are kept when that fails. */
int
mq_tmp_clean(struct mq_queue *q, unsigned max_age_s)
{
	struct mq_config cfg;
	struct dirent *de;
	struct stat st;
	int tmpfd, fd, removed = 0, finished = -1;
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
		if (st.st_mtime >= cutoff || S_ISDIR(st.st_mode))
			continue;
		if (strncmp(de->d_name, "fan.", 4) == 0) {
			if (finished == -1)
				finished = mq_config(q, &cfg) == 0 &&
				    mq_fanout_finish(&cfg) == 0;
			if (!finished)
				continue;
		}
		if (unlinkat(tmpfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
