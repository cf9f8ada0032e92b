/*
 * config.c - a queue's settings and the duration syntax.
 *
 * QUEUE/config is plain text an admin can edit: one "key = value" per
 * line, '#' starts a comment, 64 KiB at most.  It is read only by calls
 * that need a setting, so a send pays nothing for it.  An unknown key, a
 * bad value or a longer file is an error rather than a silent default: a
 * typo in "max-attempts" must not quietly turn dead-lettering off.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mq_impl.h"

#define CONFIG_MAX 65536

int
mq_parse_duration(const char *s, unsigned *seconds)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (*p < '0' || *p > '9') {
		errno = EINVAL;
		return -1;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > UINT_MAX) {
			errno = ERANGE;
			return -1;
		}
	}
	switch (*p) {
	case '\0':
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (*p != '\0' && p[1] != '\0') {
		errno = EINVAL;
		return -1;
	}
	if (v * mult > UINT_MAX) {
		errno = ERANGE;
		return -1;
	}
	*seconds = (unsigned)(v * mult);
	return 0;
}

static int
parse_count(const char *s, unsigned *v)
{
	char *end;
	unsigned long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > 1000000)
		return -1;
	*v = (unsigned)n;
	return 0;
}

int
mq_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	unsigned long long n;
	int shift = 0;

	if (*s < '0' || *s > '9') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'G': shift = 30; end++; break;
	case 'M': shift = 20; end++; break;
	case 'k': case 'K': shift = 10; end++; break;
	}
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	/* Shifted out of range it would wrap, to 0 (no limit) at 2^34 G. */
	if (n > UINT64_MAX >> shift) {
		errno = ERANGE;
		return -1;
	}
	*bytes = (uint64_t)n << shift;
	return 0;
}

static int
parse_bool(const char *s, int *v)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0)
		*v = 1;
	else if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0)
		*v = 0;
	else
		return -1;
	return 0;
}

static int
parse_path(const char *s, char *out, size_t size)
{
	if (*s != '/' || strlen(s) >= size)
		return -1;
	strcpy(out, s);
	return 0;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* topics counts the topic lines parsed so far: a subscriber has one
 * topic, and of two lines neither can be taken for the one meant. */
static int
parse_line(char *line, struct mq_config *c, int *topics)
{
	char *key, *val, *eq;

	if ((eq = strchr(line, '#')) != NULL)
		*eq = '\0';
	key = trim(line);
	if (*key == '\0')
		return 0;
	if ((eq = strchr(key, '=')) == NULL)
		return -1;
	*eq = '\0';
	key = trim(key);
	val = trim(eq + 1);
	if (strcmp(key, "lease") == 0)
		return mq_parse_duration(val, &c->lease_s) == 0 &&
		    c->lease_s > 0 ? 0 : -1;
	if (strcmp(key, "backoff") == 0)
		return mq_parse_duration(val, &c->backoff_s);
	if (strcmp(key, "max-attempts") == 0)
		return parse_count(val, &c->max_attempts);
	if (strcmp(key, "compress") == 0) {
		if (strcmp(val, "auto") == 0)
			c->compress = MQ_COMPRESS_AUTO;
		else if (strcmp(val, "no") == 0)
			c->compress = MQ_COMPRESS_NO;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "compress-min") == 0) {
		uint64_t v;
		if (mq_parse_size(val, &v) == -1 || v > 65535)
			return -1;
		c->compress_min = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "max-size") == 0)
		return mq_parse_size(val, &c->max_size);
	if (strcmp(key, "require-signature") == 0)
		return parse_bool(val, &c->require_signature);
	if (strcmp(key, "trusted-keys") == 0)
		return parse_path(val, c->trusted_keys, sizeof(c->trusted_keys));
	if (strcmp(key, "key") == 0)
		return parse_path(val, c->key, sizeof(c->key));
	if (strcmp(key, "ttl") == 0)
		return mq_parse_duration(val, &c->ttl_s);
	if (strcmp(key, "expired") == 0) {
		if (strcmp(val, "dead") == 0)
			c->expired_drop = 0;
		else if (strcmp(val, "drop") == 0)
			c->expired_drop = 1;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "dedup-window") == 0)
		return mq_parse_duration(val, &c->dedup_window_s);
	if (strcmp(key, "subscriber") == 0) {
		size_t have = strlen(c->subscribers);
		if (*val != '/' || strchr(val, ':') != NULL ||
		    have + strlen(val) + 2 > sizeof(c->subscribers))
			return -1;
		if (have > 0)
			c->subscribers[have++] = ':';
		strcpy(c->subscribers + have, val);
		return 0;
	}
	if (strcmp(key, "topic") == 0)
		return (*topics)++ > 0 ? -1 :
		    parse_path(val, c->topic, sizeof(c->topic));
	return -1;
}

void
mq_config_defaults(struct mq_config *c)
{
	memset(c, 0, sizeof(*c));
	c->lease_s = MQ_DEFAULT_LEASE_S;
	c->max_attempts = MQ_DEFAULT_MAX_ATTEMPTS;
	c->backoff_s = MQ_DEFAULT_BACKOFF_S;
	c->compress = MQ_COMPRESS_NO;
	c->compress_min = 1024;
	c->dedup_window_s = 300;
}

/* Parse config text (modified in place) over the values already in c. */
int
mq_config_parse(char *buf, size_t len, struct mq_config *c)
{
	char *line, *next;
	int topics = 0;

	if (memchr(buf, '\0', len) != NULL) {
		errno = MQ_EBADCONF;
		return -1;
	}
	buf[len] = '\0';
	for (line = buf; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (parse_line(line, c, &topics) == -1) {
			errno = MQ_EBADCONF;
			return -1;
		}
	}
	return 0;
}

int
mq_config(struct mq_queue *q, struct mq_config *out)
{
	char buf[CONFIG_MAX + 2];
	struct mq_config c;
	struct stat st;
	ssize_t n;
	int fd;

	if (q->have_config) {
		*out = q->config;
		return 0;
	}
	mq_config_defaults(&c);
	fd = openat(q->fd, "config", O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT)
			return -1;
	} else {
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
		    st.st_nlink != 1) {
			close(fd);
			errno = MQ_EBADCONF;
			return -1;
		}
		/* One read: a regular file comes short only at its end.  A
		 * byte more than allowed tells a longer file, whose cut last
		 * line ("max-attempts = 1000" read as "= 10") must not be
		 * taken for what the admin wrote. */
		while ((n = read(fd, buf, CONFIG_MAX + 1)) == -1 &&
		    errno == EINTR)
			;
		close(fd);
		if (n > CONFIG_MAX) {
			errno = MQ_EBADCONF;
			return -1;
		}
		if (n == -1 || mq_config_parse(buf, (size_t)n, &c) == -1)
			return -1;
	}
	q->config = c;
	q->have_config = 1;
	*out = c;
	return 0;
}

/* The fan-out lines: one per subscriber of a topic, or a subscriber's
 * topic. */
static const char *
topic_lines(const struct mq_config *c, char *buf, size_t size)
{
	const char *p = c->subscribers, *colon;
	size_t len = 0;

	buf[0] = '\0';
	if (c->topic[0] != '\0')
		len += (size_t)snprintf(buf, size, "topic = %s\n", c->topic);
	while (*p != '\0' && len < size) {
		colon = strchr(p, ':');
		len += (size_t)snprintf(buf + len, size - len,
		    "subscriber = %.*s\n", colon ? (int)(colon - p) :
		    (int)strlen(p), p);
		p = colon ? colon + 1 : p + strlen(p);
	}
	return buf;
}

int
mq_config_write(struct mq_queue *q, const struct mq_config *c)
{
	char buf[4096], links[2048];
	int n;

	n = snprintf(buf, sizeof(buf),
	    "# mq queue settings: see mq-queue(5).  Durations take s, m, h, d.\n"
	    "# How long a claim lasts before the message is offered again.\n"
	    "lease = %us\n"
	    "# Deliveries without an ack before a message goes to dead/.\n"
	    "max-attempts = %u\n"
	    "# mq-watch retry delay: backoff * 2^(attempt-1), at most 1h.\n"
	    "backoff = %us\n"
	    "# Compress bodies: no, or auto (when the first 64 KiB shrink).\n"
	    "compress = %s\n"
	    "compress-min = %u\n"
	    "# Largest body accepted (k, M, G); 0: no limit.\n"
	    "max-size = %" PRIu64 "\n"
	    "# Deliver only messages signed by a key in trusted-keys (none\n"
	    "# trusted: nothing signed is delivered).\n"
	    "require-signature = %s\n"
	    "%s%s%s"
	    "%s%s%s"
	    "# Expire messages not received in time (0: never): dead or drop.\n"
	    "ttl = %us\n"
	    "expired = %s\n"
	    "# How long mq-send -k remembers an idempotency key.\n"
	    "dedup-window = %us\n"
	    "%s",
	    c->lease_s, c->max_attempts, c->backoff_s,
	    c->compress == MQ_COMPRESS_AUTO ? "auto" : "no", c->compress_min,
	    c->max_size, c->require_signature ? "yes" : "no",
	    c->trusted_keys[0] ? "trusted-keys = " : "", c->trusted_keys,
	    c->trusted_keys[0] ? "\n" : "",
	    c->key[0] ? "key = " : "", c->key, c->key[0] ? "\n" : "",
	    c->ttl_s, c->expired_drop ? "drop" : "dead", c->dedup_window_s,
	    topic_lines(c, links, sizeof(links)));
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mq_write_file(q, "config", buf, (size_t)n, 1) == -1)
		return -1;
	q->config = *c;
	q->have_config = 1;
	return 0;
}
