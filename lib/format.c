/*
 * format.c - the message file format, version 1 (mq-queue(5)).
 *
 * A message file is a short text header, a blank line, the stored body,
 * and for signed messages a one-line signature trailer, so that `less` on
 * a plain message shows what it is:
 *
 *   mq/1
 *   id: 0000010000000000
 *   time: 1764226594123456789
 *   queue: orders
 *   size: 00000000000000000005
 *   h-customer: 42
 *
 *   hello
 *
 * Optional lines say how the stored body was made: raw-size (bytes once
 * decoded), compression: deflate, sealed-to/seal-key/seal-header (a
 * libsodium secretstream whose key is sealed to the consumer), signer (the
 * Ed25519 public key whose signature ends the file).  Sizes are written as
 * fixed-width placeholders and filled in once the body is streamed, so a
 * body of unknown length is never held in memory; a file whose length
 * disagrees with them is damaged and is never delivered.  Any other
 * version, any key this version does not define, and any value it could
 * not have written (a group or header with a control character in it) is
 * refused rather than guessed at.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mq_impl.h"

#define MAGIC "mq/1\n"

static int
append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size) {
		errno = MQ_EBADHEADER;
		return -1;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size - *len) {
		errno = MQ_EBADHEADER;
		return -1;
	}
	*len += (size_t)n;
	return 0;
}

/* Header names: letters, digits and '-', at most 64, so that each maps
 * to one environment variable; values: printable text, no control
 * characters (so a header is one line and a safe environment value). */
int
mq_header_name_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

int
mq_header_value_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int
mq_header_build(char *buf, size_t size, const struct mq_header_fields *f,
    off_t *size_at, off_t *raw_at)
{
	const char *const *h;
	const char *eq;
	size_t len = 0, i, j;

	if (append(buf, size, &len, MAGIC "id: %s\ntime: %" PRId64
	    "\nqueue: %s\n", f->id, f->ns, f->queue) == -1)
		return -1;
	*size_at = (off_t)len + 6;
	if (append(buf, size, &len, "size: %0*d\n", MQ_SIZE_DIGITS, 0) == -1)
		return -1;
	*raw_at = 0;
	if (f->compressed || f->sealed) {
		*raw_at = (off_t)len + 10;
		if (append(buf, size, &len, "raw-size: %0*d\n", MQ_SIZE_DIGITS,
		    0) == -1)
			return -1;
	}
	if (f->compressed &&
	    append(buf, size, &len, "compression: deflate\n") == -1)
		return -1;
	if (f->sealed && append(buf, size, &len, "sealed-to: %s\n"
	    "seal-key: %s\nseal-header: %s\n", f->sealed_to, f->seal_key,
	    f->seal_header) == -1)
		return -1;
	if (f->signer != NULL &&
	    append(buf, size, &len, "signer: %s\n", f->signer) == -1)
		return -1;
	if (f->priority > 0 &&
	    append(buf, size, &len, "priority: %d\n", f->priority) == -1)
		return -1;
	if (f->expires_ns > 0 && append(buf, size, &len, "expires: %" PRId64
	    "\n", f->expires_ns) == -1)
		return -1;
	if (f->group != NULL) {
		if (*f->group == '\0' || strlen(f->group) > 128 ||
		    !mq_header_value_valid(f->group, strlen(f->group))) {
			errno = MQ_EBADHEADER;
			return -1;
		}
		if (append(buf, size, &len, "group: %s\n", f->group) == -1)
			return -1;
	}
	for (h = f->headers; h != NULL && *h != NULL; h++) {
		if ((eq = strchr(*h, '=')) == NULL ||
		    !mq_header_name_valid(*h, (size_t)(eq - *h)) ||
		    !mq_header_value_valid(eq + 1, strlen(eq + 1))) {
			errno = MQ_EBADHEADER;
			return -1;
		}
		/* Names differing only in case would share a variable. */
		for (i = 0; i < (size_t)(h - f->headers); i++) {
			const char *o = f->headers[i];
			for (j = 0; j < (size_t)(eq - *h); j++)
				if ((o[j] | 0x20) != ((*h)[j] | 0x20))
					break;
			if (j == (size_t)(eq - *h) && o[j] == '=') {
				errno = MQ_EBADHEADER;
				return -1;
			}
		}
		if (append(buf, size, &len, "h-%.*s: %s\n", (int)(eq - *h), *h,
		    eq + 1) == -1)
			return -1;
	}
	if (append(buf, size, &len, "\n") == -1)
		return -1;
	return (int)len;
}

static int
parse_decimal(const char *s, const char *end, int64_t *v)
{
	int64_t r = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9' || r > (INT64_MAX - 9) / 10)
			return -1;
		r = r * 10 + (*s - '0');
	}
	*v = r;
	return 0;
}

static int
decode_key(const char *val, const char *eol, unsigned char out[32])
{
	char b64[64];
	size_t len = (size_t)(eol - val);

	if (len >= sizeof(b64))
		return -1;
	memcpy(b64, val, len);
	b64[len] = '\0';
	return mq_b64_decode(b64, out, 32);
}

/* Look up an optional key's value in a parsed header. */
int
mq_header_get(const struct mq_msg *m, const char *key, char *buf,
    size_t size)
{
	const char *p = m->header, *end = m->header + m->header_len, *eol;
	size_t klen = strlen(key);

	while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if ((size_t)(eol - p) > klen + 2 && memcmp(p, key, klen) == 0 &&
		    p[klen] == ':' && p[klen + 1] == ' ') {
			size_t vlen = (size_t)(eol - p) - klen - 2;
			if (vlen >= size)
				return -1;
			memcpy(buf, p + klen + 2, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p = eol + 1;
	}
	return -1;
}

/* Whether a line in [from, line) has the key of line, its first klen
 * bytes, in any case: a header repeated, or differing only in case, would
 * give a handler one variable twice (mq_header_build refuses both). */
static int
seen_before(const char *from, const char *line, size_t klen)
{
	const char *eol;

	for (; from < line; from = eol + 1) {
		eol = memchr(from, '\n', (size_t)(line - from));
		if (from[klen] == ':' && strncasecmp(from, line, klen) == 0)
			return 1;
	}
	return 0;
}

int
mq_header_parse(int fd, struct mq_msg *m, off_t file_size)
{
	char *buf = m->header, *line, *eol, *end, *val;
	int have_id = 0, have_time = 0, have_size = 0, have_raw = 0;
	int have_queue = 0, have_seal = 0, have_group = 0;
	int64_t size = 0, raw = 0;
	off_t trailer;
	ssize_t n;

	n = pread(fd, buf, MQ_HEADER_MAX, 0);
	if (n == -1)
		return -1;
	if ((size_t)n < sizeof(MAGIC) - 1 || memcmp(buf, MAGIC, 3) != 0)
		goto bad;
	if (memcmp(buf, MAGIC, sizeof(MAGIC) - 1) != 0) {
		errno = MQ_EFORMAT;
		return -1;
	}
	if ((end = memmem(buf, (size_t)n, "\n\n", 2)) == NULL)
		goto bad;
	m->header_len = (size_t)(end + 2 - buf);
	m->compressed = m->sealed = m->signed_ = 0;
	m->priority = 0;
	m->expires_ns = 0;
	m->group[0] = '\0';
	for (line = buf + sizeof(MAGIC) - 1; line <= end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end + 1 - line));
		if ((val = memchr(line, ':', (size_t)(eol - line))) == NULL ||
		    val[1] != ' ' || val + 2 > eol)
			goto bad;
		size_t klen = (size_t)(val - line);
		val += 2;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(line, k, klen) == 0)
		if (KEY("id") && !have_id && eol - val == 16) {
			memcpy(m->id, val, 16);
			m->id[16] = '\0';
			have_id = 1;
		} else if (KEY("time") && !have_time &&
		    parse_decimal(val, eol, &m->sent_ns) == 0)
			have_time = 1;
		else if (KEY("queue") && !have_queue) {
			have_queue = 1;
			snprintf(m->queue, sizeof(m->queue), "%.*s",
			    (int)(eol - val), val);
		}
		else if (KEY("size") && !have_size &&
		    parse_decimal(val, eol, &size) == 0)
			have_size = 1;
		else if (KEY("raw-size") && !have_raw &&
		    parse_decimal(val, eol, &raw) == 0)
			have_raw = 1;
		else if (KEY("compression") && !m->compressed &&
		    eol - val == 7 && memcmp(val, "deflate", 7) == 0)
			m->compressed = 1;
		else if (KEY("sealed-to") && !(have_seal & 1))
			have_seal |= 1;
		else if (KEY("seal-key") && !(have_seal & 2))
			have_seal |= 2;
		else if (KEY("seal-header") && !(have_seal & 4))
			have_seal |= 4;
		else if (KEY("signer") && !m->signed_ &&
		    decode_key(val, eol, m->signer) == 0)
			m->signed_ = 1;
		else if (KEY("priority") && m->priority == 0 && eol - val == 1 &&
		    *val >= '1' && *val <= '9')
			m->priority = *val - '0';
		else if (KEY("expires") && m->expires_ns == 0 &&
		    parse_decimal(val, eol, &m->expires_ns) == 0 &&
		    m->expires_ns > 0)
			;
		else if (KEY("group") && !have_group && val < eol &&
		    eol - val <= 128 &&
		    mq_header_value_valid(val, (size_t)(eol - val))) {
			have_group = 1;
			snprintf(m->group, sizeof(m->group), "%.*s",
			    (int)(eol - val), val);
		} else if (klen > 2 && memcmp(line, "h-", 2) == 0 &&
		    mq_header_name_valid(line + 2, klen - 2) &&
		    mq_header_value_valid(val, (size_t)(eol - val)) &&
		    !seen_before(buf + sizeof(MAGIC) - 1, line, klen))
			;
		else
			goto bad;
#undef KEY
		if (eol == end)
			break;
	}
	m->sealed = have_seal == 7;
	if (have_seal != 0 && !m->sealed)
		goto bad;
	m->body_offset = (off_t)m->header_len;
	m->body_size = size;
	m->raw_size = have_raw ? raw : size;
	trailer = m->signed_ ? MQ_TRAILER_LEN : 0;
	if (!have_id || !have_time || !have_size || !have_queue ||
	    have_raw != (m->compressed || m->sealed) ||
	    file_size - m->body_offset - trailer != size)
		goto bad;
	/* The read took the file's first MQ_HEADER_MAX bytes, so a small
	 * body is in m->header already (body.c); a file that shrank since
	 * its size was taken is not a message. */
	if ((size_t)n != (file_size < MQ_HEADER_MAX ? (size_t)file_size :
	    MQ_HEADER_MAX))
		goto bad;
	return 0;
bad:
	errno = MQ_EBADMSG;
	return -1;
}

int
mq_msg_header_next(const struct mq_msg *m, size_t *it, char *name,
    size_t nsize, char *value, size_t vsize)
{
	const char *p = m->header + *it, *end = m->header + m->header_len;
	const char *eol, *colon;

	if (*it == 0)
		p = m->header + sizeof(MAGIC) - 1;
	while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL &&
	    eol > p) {
		*it = (size_t)(eol + 1 - m->header);
		if (p[0] == 'h' && p[1] == '-' &&
		    (colon = memchr(p, ':', (size_t)(eol - p))) != NULL) {
			snprintf(name, nsize, "%.*s", (int)(colon - p - 2), p + 2);
			snprintf(value, vsize, "%.*s", (int)(eol - colon - 2),
			    colon + 2);
			return 1;
		}
		p = eol + 1;
	}
	*it = m->header_len;
	return 0;
}
