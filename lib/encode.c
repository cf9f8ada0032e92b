/*
 * encode.c - turning a body into what is stored: compress, seal, sign.
 *
 * Bytes flow through up to three stages as they are written, each with a
 * fixed buffer, so a body of any size needs the same memory: zlib deflate;
 * a libsodium secretstream that seals 64 KiB chunks (the last one tagged
 * FINAL, so truncation is detected); and an Ed25519ph state (streaming
 * SHA-512) that hashes exactly the bytes stored.  Signing what is stored,
 * after sealing, lets any consumer check a signature without the key that
 * opens the body.  zlib and libsodium are touched only when a message
 * uses them.  What reaches the file is gathered in an 8 KiB buffer, so a
 * small message, header and body and sizes, is one write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <stdint.h>

#include "codec.h"

#define WBUF_SIZE 8192

int
mq_enc_flush(struct mq_encoder *e)
{
	if (e->wlen == 0)
		return 0;
	if (mq_write_all(e->fd, e->wbuf, e->wlen) == -1)
		return -1;
	e->wbase += (off_t)e->wlen;
	e->wlen = 0;
	return 0;
}

int
mq_enc_put(struct mq_encoder *e, const void *buf, size_t n)
{
	if (e->wlen + n > WBUF_SIZE) {
		if (mq_enc_flush(e) == -1)
			return -1;
		if (n > WBUF_SIZE) {
			if (mq_write_all(e->fd, buf, n) == -1)
				return -1;
			e->wbase += (off_t)n;
			return 0;
		}
	}
	memcpy(e->wbuf + e->wlen, buf, n);
	e->wlen += n;
	return 0;
}

int
mq_enc_patch(struct mq_encoder *e, off_t at, const void *buf, size_t n)
{
	if (at >= e->wbase && at + (off_t)n <= e->wbase + (off_t)e->wlen) {
		memcpy(e->wbuf + (at - e->wbase), buf, n);
		return 0;
	}
	return mq_pwrite_all(e->fd, buf, n, at);
}

static int
store(struct mq_encoder *e, const unsigned char *buf, size_t n)
{
	if (n == 0)
		return 0;
	if (e->sign)
		crypto_sign_update(&e->sig, buf, n);
	if (mq_enc_put(e, buf, n) == -1)
		return -1;
	e->stored += (off_t)n;
	return 0;
}

static int
seal_chunk(struct mq_encoder *e, unsigned char tag)
{
	unsigned long long clen;

	crypto_secretstream_xchacha20poly1305_push(&e->ss, e->cipher, &clen,
	    e->chunk, e->chunk_len, NULL, 0, tag);
	e->chunk_len = 0;
	return store(e, e->cipher, (size_t)clen);
}

static int
seal(struct mq_encoder *e, const unsigned char *buf, size_t n)
{
	size_t take;

	if (!e->seal)
		return store(e, buf, n);
	while (n > 0) {
		take = MQ_SEAL_CHUNK - e->chunk_len;
		if (take > n)
			take = n;
		memcpy(e->chunk + e->chunk_len, buf, take);
		e->chunk_len += take;
		buf += take;
		n -= take;
		/* A full chunk is pushed only when more follows, so the last
		 * chunk, tagged FINAL, is never empty unless the body is. */
		if (e->chunk_len == MQ_SEAL_CHUNK && n > 0 &&
		    seal_chunk(e, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) == -1)
			return -1;
	}
	return 0;
}

static int
deflate_feed(struct mq_encoder *e, const void *buf, size_t n, int flush)
{
	z_stream *z = e->z;
	int rc;

	z->next_in = (unsigned char *)(uintptr_t)buf;
	z->avail_in = (uInt)n;
	do {
		z->next_out = e->zout;
		z->avail_out = MQ_SEAL_CHUNK;
		rc = deflate(z, flush);
		if (rc == Z_STREAM_ERROR) {
			errno = EIO;
			return -1;
		}
		if (seal(e, e->zout, MQ_SEAL_CHUNK - z->avail_out) == -1)
			return -1;
	} while (z->avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
	return 0;
}

int
mq_enc_start(struct mq_encoder *e, int fd, int compress,
    const unsigned char *seal_key, unsigned char *seal_header, int sign)
{
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->sign = sign;
	if ((e->wbuf = malloc(WBUF_SIZE)) == NULL)
		goto nomem;
	if (sign)
		crypto_sign_init(&e->sig);
	if (seal_key != NULL) {
		e->seal = 1;
		e->chunk = malloc(MQ_SEAL_CHUNK);
		e->cipher = malloc(MQ_SEAL_CHUNK +
		    crypto_secretstream_xchacha20poly1305_ABYTES);
		if (e->chunk == NULL || e->cipher == NULL)
			goto nomem;
		crypto_secretstream_xchacha20poly1305_init_push(&e->ss,
		    seal_header, seal_key);
	}
	if (compress) {
		e->z = calloc(1, sizeof(*e->z));
		e->zout = malloc(MQ_SEAL_CHUNK);
		if (e->z == NULL || e->zout == NULL)
			goto nomem;
		if (deflateInit(e->z, Z_DEFAULT_COMPRESSION) != Z_OK) {
			free(e->z);
			e->z = NULL;
			goto nomem;
		}
	}
	return 0;
nomem:
	mq_enc_free(e);
	errno = ENOMEM;
	return -1;
}

int
mq_enc_write(struct mq_encoder *e, const void *buf, size_t n)
{
	e->raw += (off_t)n;
	if (e->z != NULL)
		return deflate_feed(e, buf, n, Z_NO_FLUSH);
	return seal(e, buf, n);
}

int
mq_enc_finish(struct mq_encoder *e)
{
	int rc = 0;

	if (e->z != NULL)
		rc = deflate_feed(e, "", 0, Z_FINISH);
	if (rc == 0 && e->seal)
		rc = seal_chunk(e, crypto_secretstream_xchacha20poly1305_TAG_FINAL);
	return rc;
}

/* Sign the stored body followed by the final header; the trailer line
 * goes at the end of the file. */
int
mq_enc_sign(struct mq_encoder *e, const char *header, size_t len,
    const struct mq_key *k)
{
	unsigned char sig[64];
	char line[MQ_TRAILER_LEN + 1];

	crypto_sign_update(&e->sig, (const unsigned char *)header, len);
	crypto_sign_final_create(&e->sig, sig, NULL, k->sk);
	memcpy(line, "sig: ", 5);
	sodium_bin2base64(line + 5, sizeof(line) - 5, sig, sizeof(sig),
	    sodium_base64_VARIANT_ORIGINAL);
	line[MQ_TRAILER_LEN - 1] = '\n';
	return mq_enc_put(e, line, MQ_TRAILER_LEN);
}

void
mq_enc_free(struct mq_encoder *e)
{
	if (e->z != NULL) {
		deflateEnd(e->z);
		free(e->z);
		e->z = NULL;
	}
	/* Sealing, the buffers held plaintext and the state the body's key,
	 * as on the receiving side (decode.c). */
	if (e->seal) {
		if (e->zout != NULL)
			sodium_memzero(e->zout, MQ_SEAL_CHUNK);
		if (e->chunk != NULL)
			sodium_memzero(e->chunk, MQ_SEAL_CHUNK);
		sodium_memzero(&e->ss, sizeof(e->ss));
	}
	free(e->zout);
	free(e->chunk);
	free(e->cipher);
	free(e->wbuf);
	e->zout = e->chunk = e->cipher = e->wbuf = NULL;
}
