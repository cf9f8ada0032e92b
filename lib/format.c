/*
 * format.c - the message file format, version 1 (mq-queue(5)).
 *
 * A message file is a short text header, a blank line, then the body
 * bytes, so that `less` on a message shows what it is:
 *
 *   mq/1
 *   id: 0000010000000000
 *   time: 1764226594123456789
 *   size: 00000000000000000005
 *
 *   hello
 *
 * The size is written as a fixed-width placeholder and filled in once the
 * body is streamed, so a body of unknown length never has to be held in
 * memory; a file whose length disagrees with it is damaged (truncated or
 * appended to) and is never delivered.  Any other version, and any key
 * this version does not define, is refused rather than guessed at.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mq_impl.h"

#define MAGIC "mq/1\n"
#define SIZE_KEY "size: "
#define SIZE_DIGITS 20

int
mq_header_format(char *buf, size_t size, const char *id, int64_t ns,
    off_t *size_at)
{
	int n;

	n = snprintf(buf, size, MAGIC "id: %s\ntime: %" PRId64 "\n" SIZE_KEY
	    "%0*d\n\n", id, ns, SIZE_DIGITS, 0);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*size_at = n - 2 - SIZE_DIGITS;
	return n;
}

/* Fill in the size placeholder at the offset mq_header_format gave. */
int
mq_header_set_size(int fd, off_t at, off_t body_size)
{
	char digits[SIZE_DIGITS + 1];
	ssize_t w;

	snprintf(digits, sizeof(digits), "%0*jd", SIZE_DIGITS, (intmax_t)body_size);
	if ((w = pwrite(fd, digits, SIZE_DIGITS, at)) != SIZE_DIGITS) {
		if (w >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
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

int
mq_header_parse(int fd, struct mq_msg *m, off_t file_size)
{
	char buf[MQ_HEADER_MAX + 1];
	char *line, *eol, *end, *val;
	int have_id = 0, have_time = 0, have_size = 0;
	int64_t size = 0;
	ssize_t n;

	n = pread(fd, buf, MQ_HEADER_MAX, 0);
	if (n == -1)
		return -1;
	buf[n] = '\0';
	if ((size_t)n < sizeof(MAGIC) - 1 || memcmp(buf, MAGIC, 3) != 0) {
		errno = MQ_EBADMSG;
		return -1;
	}
	if (memcmp(buf, MAGIC, sizeof(MAGIC) - 1) != 0) {
		errno = MQ_EFORMAT;
		return -1;
	}
	if ((end = memmem(buf, (size_t)n, "\n\n", 2)) == NULL) {
		errno = MQ_EBADMSG;
		return -1;
	}
	for (line = buf + sizeof(MAGIC) - 1; line <= end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end + 1 - line));
		if ((val = memchr(line, ':', (size_t)(eol - line))) == NULL ||
		    val[1] != ' ')
			goto bad;
		*val = '\0';
		val += 2;
		if (strcmp(line, "id") == 0 && !have_id && eol - val == 16) {
			memcpy(m->id, val, 16);
			m->id[16] = '\0';
			have_id = 1;
		} else if (strcmp(line, "time") == 0 && !have_time &&
		    parse_decimal(val, eol, &m->sent_ns) == 0)
			have_time = 1;
		else if (strcmp(line, "size") == 0 && !have_size &&
		    parse_decimal(val, eol, &size) == 0)
			have_size = 1;
		else
			goto bad;
	}
	m->body_offset = end + 2 - buf;
	m->body_size = size;
	if (!have_id || !have_time || !have_size ||
	    file_size - m->body_offset != size)
		goto bad;
	return 0;
bad:
	errno = MQ_EBADMSG;
	return -1;
}
