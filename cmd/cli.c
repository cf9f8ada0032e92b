/*
 * cli.c - shared by the mq programs; see cli.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"
#include "cli.h"

void
cli_warn(const char *obj, int err)
{
	if (obj != NULL)
		fprintf(stderr, "%s: %s: %s\n", cli_prog, obj, mq_strerror(err));
	else
		fprintf(stderr, "%s: %s\n", cli_prog, mq_strerror(err));
}

void
cli_warnx(const char *obj, const char *fmt, ...)
{
	va_list ap;

	if (obj != NULL)
		fprintf(stderr, "%s: %s: ", cli_prog, obj);
	else
		fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
cli_usage(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(64);
}

void
cli_help(const char *usage, const char *text)
{
	printf("usage: %s\n\n%s", usage, text);
	exit(cli_flush(0));
}

/* One write(2), no stdio and no printf: a stream's first use allocates
 * its buffer, printf's code is pages the call would fault in, and
 * --version is how mq's start-up cost is measured against /bin/true. */
void
cli_version(void)
{
	char line[64];
	size_t p = strlen(cli_prog), v = strlen(MQ_VERSION), n;
	ssize_t w;

	if (p > sizeof(line) - v - 2)
		p = sizeof(line) - v - 2;
	memcpy(line, cli_prog, p);
	line[p] = ' ';
	memcpy(line + p + 1, MQ_VERSION, v);
	line[p + 1 + v] = '\n';
	n = p + v + 2;
	while ((w = write(1, line, n)) == -1 && errno == EINTR)
		;
	if (w != (ssize_t)n) {
		cli_warn("stdout", w == -1 ? errno : EIO);
		exit(74);
	}
	exit(0);
}

void
cli_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) != -1 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

int
cli_flush(int status)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		cli_warn("stdout", errno);
		return status == 0 ? 74 : status;
	}
	return status;
}

unsigned
cli_duration(const char *opt, const char *arg)
{
	unsigned s;

	if (mq_parse_duration(arg, &s) == -1) {
		cli_warnx(NULL, "%s: invalid duration: %s", opt, arg);
		exit(64);
	}
	return s;
}

void
cli_json_string(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
cli_each_root_queue(int (*fn)(const char *path, void *), void *arg)
{
	char root[PATH_MAX], path[PATH_MAX + NAME_MAX + 8], **names = NULL;
	struct dirent *de;
	struct stat st;
	size_t n = 0, i;
	int rc = 0;
	DIR *d;

	if (mq_root(root, sizeof(root)) == NULL || (d = opendir(root)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char **grown;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/new", root, de->d_name);
		if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode))
			continue;
		if ((grown = realloc(names, (n + 1) * sizeof(*names))) == NULL)
			break;
		names = grown;
		if ((names[n] = strdup(de->d_name)) == NULL)
			break;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", root, names[i]);
		if (rc == 0)
			rc = fn(path, arg);
		free(names[i]);
	}
	free(names);
	return rc;
}

const char *
cli_age(double s, char *buf, size_t size)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, size, "%.0fs", s);
	else if (s < 7200)
		snprintf(buf, size, "%.0fm", s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%.0fh", s / 3600);
	else
		snprintf(buf, size, "%.0fd", s / 86400);
	return buf;
}

int
cli_load_keys(struct mq_queue *q, const char *const *verify, int n,
    const char *key)
{
	int i, err;

	for (i = 0; i < n; i++)
		if (mq_trust(q, verify[i]) == -1) {
			err = errno;
			cli_warn(verify[i], err);
			return mq_exit_status(err);
		}
	if (key != NULL && mq_set_key(q, key) == -1) {
		err = errno;
		cli_warn(key, err);
		return mq_exit_status(err);
	}
	return 0;
}

long long
cli_now_ns(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
