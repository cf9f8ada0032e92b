/*
 * keys.c - Ed25519 key files: making them, loading them, trusting them.
 *
 * One key pair serves both purposes: its Ed25519 half signs, and its
 * X25519 conversion opens bodies sealed to it, so a consumer hands out one
 * public key.  Key files are one line of text, "mq-ed25519 BASE64 NAME" for
 * public keys and "mq-ed25519-secret BASE64" for secret ones, easy to copy
 * into configuration management.  A secret key readable by anyone but its
 * owner is refused, as ssh does, and secret bytes are wiped after use.
 * libsodium is initialised here, on first use, so programs that never
 * touch a key never pay for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "mq_impl.h"

#define PUB_TAG "mq-ed25519 "
#define SEC_TAG "mq-ed25519-secret "
#define KEYFILE_MAX 512

int
mq_sodium_init(void)
{
	if (sodium_init() < 0) {
		errno = ENOSYS;
		return -1;
	}
	return 0;
}

/* Read a small key file; secret ones must be private to their owner. */
static ssize_t
read_keyfile(const char *path, char *buf, size_t size, int secret)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_size >= (off_t)size) {
		errno = MQ_EBADKEY;
		goto fail;
	}
	n = mq_read_full(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	/* Say what the file is before judging its mode: a public key given
	 * as a secret one is the likelier mistake. */
	if (secret && strncmp(buf, SEC_TAG, strlen(SEC_TAG)) != 0) {
		sodium_memzero(buf, size);
		errno = MQ_EBADKEY;
		return -1;
	}
	if (secret && (st.st_mode & 077) != 0) {
		sodium_memzero(buf, size);
		errno = MQ_EKEYPERM;
		return -1;
	}
	return n;
fail:
	n = errno;
	close(fd);
	errno = (int)n;
	return -1;
}

int
mq_b64_decode(const char *text, unsigned char *out, size_t len)
{
	size_t got;
	const char *end;

	if (sodium_base642bin(out, len, text, strlen(text), NULL, &got, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || got != len ||
	    (*end != '\0' && *end != ' ' && *end != '\n')) {
		errno = MQ_EBADKEY;
		return -1;
	}
	return 0;
}

int
mq_key_load(const char *path, struct mq_key *k)
{
	char buf[KEYFILE_MAX];
	int rc = -1;

	if (mq_sodium_init() == -1)
		return -1;
	if (read_keyfile(path, buf, sizeof(buf), 1) == -1)
		return -1;
	if (strncmp(buf, SEC_TAG, strlen(SEC_TAG)) != 0)
		errno = MQ_EBADKEY;
	else if (mq_b64_decode(buf + strlen(SEC_TAG), k->sk, sizeof(k->sk)) == 0) {
		memcpy(k->pk, k->sk + 32, sizeof(k->pk));
		rc = 0;
	}
	sodium_memzero(buf, sizeof(buf));
	return rc;
}

int
mq_pubkey_load(const char *path, struct mq_pubkey *p)
{
	char buf[KEYFILE_MAX];

	if (mq_sodium_init() == -1)
		return -1;
	if (read_keyfile(path, buf, sizeof(buf), 0) == -1)
		return -1;
	if (strncmp(buf, PUB_TAG, strlen(PUB_TAG)) != 0) {
		errno = MQ_EBADKEY;
		return -1;
	}
	return mq_b64_decode(buf + strlen(PUB_TAG), p->pk, sizeof(p->pk));
}

void
mq_pubkey_text(const unsigned char pk[32], char *buf, size_t size)
{
	sodium_bin2base64(buf, size, pk, 32, sodium_base64_VARIANT_ORIGINAL);
}

static int
write_new(const char *path, const char *text, mode_t mode)
{
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1)
		return -1;
	if (fchmod(fd, mode) == -1 ||
	    mq_write_all(fd, text, strlen(text)) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	return close(fd);
}

int
mq_keygen(const char *name)
{
	unsigned char pk[32], sk[64];
	char keypath[PATH_MAX], pubpath[PATH_MAX], b64[128], text[256];
	const char *base;
	int rc = -1, n1, n2, saved;

	if (mq_sodium_init() == -1)
		return -1;
	n1 = snprintf(keypath, sizeof(keypath), "%s.key", name);
	n2 = snprintf(pubpath, sizeof(pubpath), "%s.pub", name);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(keypath) ||
	    (size_t)n2 >= sizeof(pubpath)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (access(pubpath, F_OK) == 0) {
		errno = EEXIST;
		return -1;
	}
	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(b64, sizeof(b64), sk, sizeof(sk),
	    sodium_base64_VARIANT_ORIGINAL);
	snprintf(text, sizeof(text), SEC_TAG "%s\n", b64);
	if (write_new(keypath, text, 0600) == -1)
		goto out;
	base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	mq_pubkey_text(pk, b64, sizeof(b64));
	snprintf(text, sizeof(text), PUB_TAG "%s %s\n", b64, base);
	if (write_new(pubpath, text, 0644) == -1) {
		saved = errno;
		unlink(keypath);
		errno = saved;
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(b64, sizeof(b64));
	sodium_memzero(text, sizeof(text));
	return rc;
}

static int
trust_one(struct mq_queue *q, const char *path)
{
	struct mq_pubkey *grown;

	if (q->ntrusted % 8 == 0) {
		grown = realloc(q->trusted, (q->ntrusted + 8) * sizeof(*grown));
		if (grown == NULL)
			return -1;
		q->trusted = grown;
	}
	if (mq_pubkey_load(path, &q->trusted[q->ntrusted]) == -1)
		return -1;
	q->ntrusted++;
	return 0;
}

/* A file is one trusted key; a directory, every *.pub in it. */
int
mq_trust(struct mq_queue *q, const char *path)
{
	char file[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t len;
	DIR *d;
	int n, saved;

	if (stat(path, &st) == -1)
		return -1;
	/* A directory of no keys trusts no signer: it does not turn the
	 * checks off. */
	q->verifying = 1;
	if (!S_ISDIR(st.st_mode))
		return trust_one(q, path);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((errno = 0, de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".pub") != 0)
			continue;
		n = snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(file) ||
		    trust_one(q, file) == -1) {
			saved = n < 0 || (size_t)n >= sizeof(file) ?
			    ENAMETOOLONG : errno;
			closedir(d);
			errno = saved;
			return -1;
		}
	}
	/* A listing cut short would leave keys untrusted, and with none
	 * at all, nothing verified. */
	return mq_listing_end(d);
}

int
mq_trusted(const struct mq_queue *q, const unsigned char pk[32])
{
	size_t i;

	for (i = 0; i < q->ntrusted; i++)
		if (sodium_memcmp(q->trusted[i].pk, pk, 32) == 0)
			return 1;
	return 0;
}

int
mq_set_key(struct mq_queue *q, const char *path)
{
	if (mq_sodium_init() == -1)
		return -1;
	if (q->open_key == NULL &&
	    (q->open_key = sodium_malloc(sizeof(*q->open_key))) == NULL)
		return -1;
	return mq_key_load(path, q->open_key);
}

void
mq_keys_free(struct mq_queue *q)
{
	free(q->trusted);
	if (q->open_key != NULL)
		sodium_free(q->open_key);
}
