/*
 * cli.c - shared by the mq programs; see cli.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

void
cli_version(void)
{
	printf("%s %s\n", cli_prog, MQ_VERSION);
	exit(cli_flush(0));
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
