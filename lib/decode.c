/*
 * decode.c - checking and reading what encode.c stored.
 *
 * Nothing reaches a consumer before it has been checked whole: a signed
 * message's signature is verified over the stored bytes and the header,
 * and a compressed or sealed body is decoded once into nothing, so that a
 * flipped bit, a truncation, a compression bomb (output beyond the
 * declared raw-size) or a forged seal is found before the first byte is
 * delivered.  Delivery then decodes again, into the consumer.  Both passes
 * use fixed buffers, so memory does not grow with the body.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"

#define READ_CHUNK (MQ_SEAL_CHUNK + MQ_SEAL_ABYTES)

struct sink {
	int out;		/* -1: count and check only */
	z_stream *z;
	unsigned char *zout;
	off_t total;
	off_t limit;
	int z_done;
};

static int
bad(void)
{
	errno = MQ_EBADMSG;
	return -1;
}

static int
put(struct sink *s, const unsigned char *buf, size_t n)
{
	s->total += (off_t)n;
	if (s->total > s->limit)
		return bad();
	if (s->out != -1 && mq_write_all(s->out, buf, n) == -1)
		return -1;
	return 0;
}

static int
emit(struct sink *s, const unsigned char *buf, size_t n)
{
	int rc;

	if (s->z == NULL)
		return put(s, buf, n);
	s->z->next_in = (unsigned char *)(uintptr_t)buf;
	s->z->avail_in = (uInt)n;
	while (s->z->avail_in > 0 || n == 0) {
		if (s->z_done)
			return bad();
		s->z->next_out = s->zout;
		s->z->avail_out = MQ_SEAL_CHUNK;
		rc = inflate(s->z, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return bad();
		if (put(s, s->zout, MQ_SEAL_CHUNK - s->z->avail_out) == -1)
			return -1;
		if (rc == Z_STREAM_END)
			s->z_done = 1;
		if (s->z->avail_out != 0 && (rc == Z_BUF_ERROR || n == 0))
			break;
	}
	return 0;
}

static int
read_at(int fd, unsigned char *buf, size_t n, off_t off)
{
	ssize_t r;

	while (n > 0) {
		r = pread(fd, buf, n, off);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return bad();
		buf += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int
mq_sealed_for_us(struct mq_queue *q, const struct mq_msg *m)
{
	unsigned char pk[32];
	char b64[64];

	if (!m->sealed)
		return 1;
	if (q->open_key == NULL ||
	    mq_header_get(m, "sealed-to", b64, sizeof(b64)) == -1 ||
	    mq_b64_decode(b64, pk, sizeof(pk)) == -1)
		return 0;
	return sodium_memcmp(pk, q->open_key->pk, sizeof(pk)) == 0;
}

int
mq_verify(struct mq_queue *q, const struct mq_msg *m)
{
	crypto_sign_state st;
	unsigned char *buf, sig[64];
	char trailer[MQ_TRAILER_LEN + 1];
	off_t off = m->body_offset, left = m->body_size;
	size_t n;

	(void)q;
	if (mq_sodium_init() == -1)
		return -1;
	if ((buf = malloc(READ_CHUNK)) == NULL)
		return -1;
	crypto_sign_init(&st);
	while (left > 0) {
		n = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
		if (read_at(m->fd, buf, n, off) == -1) {
			free(buf);
			return -1;
		}
		crypto_sign_update(&st, buf, n);
		off += (off_t)n;
		left -= (off_t)n;
	}
	free(buf);
	crypto_sign_update(&st, (const unsigned char *)m->header, m->header_len);
	if (read_at(m->fd, (unsigned char *)trailer, MQ_TRAILER_LEN, off) == -1)
		return -1;
	/* The trailer is one whole line, as written: its newline is not
	 * signed, but a file that lost it is damaged all the same. */
	if (memcmp(trailer, "sig: ", 5) != 0 ||
	    trailer[MQ_TRAILER_LEN - 1] != '\n')
		return bad();
	trailer[MQ_TRAILER_LEN - 1] = '\0';
	if (mq_b64_decode(trailer + 5, sig, sizeof(sig)) == -1)
		return bad();
	if (crypto_sign_final_verify(&st, sig, m->signer) != 0) {
		errno = MQ_EBADSIG;
		return -1;
	}
	return 0;
}

static int
open_seal(struct mq_queue *q, const struct mq_msg *m,
    crypto_secretstream_xchacha20poly1305_state *st)
{
	unsigned char sealed[32 + crypto_box_SEALBYTES], header[24], key[32];
	unsigned char xpk[32], xsk[32];
	char b64[160];
	int rc;

	if (!mq_sealed_for_us(q, m)) {
		errno = MQ_ENOKEY;
		return -1;
	}
	if (mq_header_get(m, "seal-key", b64, sizeof(b64)) == -1 ||
	    mq_b64_decode(b64, sealed, sizeof(sealed)) == -1 ||
	    mq_header_get(m, "seal-header", b64, sizeof(b64)) == -1 ||
	    mq_b64_decode(b64, header, sizeof(header)) == -1)
		return bad();
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, q->open_key->pk) != 0) {
		errno = MQ_EBADKEY;
		return -1;
	}
	crypto_sign_ed25519_sk_to_curve25519(xsk, q->open_key->sk);
	rc = crypto_box_seal_open(key, sealed, sizeof(sealed), xpk, xsk);
	sodium_memzero(xsk, sizeof(xsk));
	if (rc != 0) {
		sodium_memzero(key, sizeof(key));
		return bad();
	}
	rc = crypto_secretstream_xchacha20poly1305_init_pull(st, header, key);
	sodium_memzero(key, sizeof(key));
	return rc == 0 ? 0 : bad();
}

int
mq_decode(struct mq_queue *q, const struct mq_msg *m, int out)
{
	crypto_secretstream_xchacha20poly1305_state st;
	struct sink s = { out, NULL, NULL, 0, m->raw_size, 0 };
	unsigned char *in = NULL, *plain = NULL, tag = 0;
	unsigned long long plen;
	off_t off = m->body_offset, left = m->body_size;
	size_t n;
	int rc = -1;

	if (m->sealed && (mq_sodium_init() == -1 || open_seal(q, m, &st) == -1))
		return -1;
	if ((in = malloc(READ_CHUNK)) == NULL ||
	    (m->sealed && (plain = malloc(MQ_SEAL_CHUNK)) == NULL))
		goto out;
	if (m->compressed) {
		if ((s.z = calloc(1, sizeof(*s.z))) == NULL ||
		    (s.zout = malloc(MQ_SEAL_CHUNK)) == NULL)
			goto out;
		if (inflateInit(s.z) != Z_OK) {
			free(s.z);
			s.z = NULL;
			errno = ENOMEM;
			goto out;
		}
	}
	while (left > 0) {
		n = m->sealed ? READ_CHUNK : MQ_SEAL_CHUNK;
		if ((off_t)n > left)
			n = (size_t)left;
		if (read_at(m->fd, in, n, off) == -1)
			goto out;
		off += (off_t)n;
		left -= (off_t)n;
		if (!m->sealed) {
			if (emit(&s, in, n) == -1)
				goto out;
			continue;
		}
		errno = MQ_EBADMSG;
		if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL ||
		    crypto_secretstream_xchacha20poly1305_pull(&st, plain, &plen,
		    &tag, in, n, NULL, 0) != 0 ||
		    (left == 0) != (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) ||
		    emit(&s, plain, (size_t)plen) == -1)
			goto out;
	}
	errno = MQ_EBADMSG;
	if (m->sealed && tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL)
		goto out;
	if (s.z != NULL && !s.z_done && emit(&s, in, 0) == -1)
		goto out;
	errno = MQ_EBADMSG;
	if ((s.z != NULL && !s.z_done) || s.total != m->raw_size)
		goto out;
	rc = 0;
out:
	if (s.z != NULL) {
		inflateEnd(s.z);
		free(s.z);
	}
	/* Decompressed, a sealed body's chunk is plaintext. */
	if (s.zout != NULL && m->sealed)
		sodium_memzero(s.zout, MQ_SEAL_CHUNK);
	free(s.zout);
	free(in);
	if (plain != NULL) {
		sodium_memzero(plain, MQ_SEAL_CHUNK);
		free(plain);
	}
	sodium_memzero(&st, sizeof(st));
	return rc;
}
