/*
 * codec.h - the streaming encoder (encode.c) and decoder (decode.c) of
 * message bodies, private to libmq and kept apart from mq_impl.h so that
 * only the files using libsodium and zlib include their headers.
 */
#ifndef MQ_CODEC_H
#define MQ_CODEC_H

#include <sodium.h>
#include <zlib.h>

#include "mq_impl.h"

#define MQ_SEAL_CHUNK 65536
#define MQ_SEAL_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

struct mq_encoder {
	int fd;
	int sign;
	int seal;
	z_stream *z;
	unsigned char *zout;
	unsigned char *chunk;
	unsigned char *cipher;
	size_t chunk_len;
	unsigned char *wbuf;	/* file bytes not yet written, from wbase */
	size_t wlen;
	off_t wbase;
	off_t raw;
	off_t stored;
	crypto_secretstream_xchacha20poly1305_state ss;
	crypto_sign_state sig;
};

int mq_enc_start(struct mq_encoder *e, int fd, int compress,
    const unsigned char *seal_key, unsigned char *seal_header, int sign);
int mq_enc_write(struct mq_encoder *e, const void *buf, size_t n);
/* Bytes at the start of the file that are not part of the signed body. */
int mq_enc_put(struct mq_encoder *e, const void *buf, size_t n);
/* Overwrite bytes already stored at file offset at (a size field). */
int mq_enc_patch(struct mq_encoder *e, off_t at, const void *buf, size_t n);
int mq_enc_flush(struct mq_encoder *e);
int mq_enc_finish(struct mq_encoder *e);
int mq_enc_sign(struct mq_encoder *e, const char *header, size_t len,
    const struct mq_key *k);
void mq_enc_free(struct mq_encoder *e);

#endif
