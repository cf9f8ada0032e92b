/*
 * cli.h - what every mq program does the same way: the program name in
 * messages, "prog: object: reason" error lines, --version, and a checked
 * flush of standard output before a successful exit.
 */
#ifndef MQ_CLI_H
#define MQ_CLI_H

#include <stdio.h>

struct mq_queue;

extern const char *cli_prog;

/* "prog: obj: strerror(err)" on stderr; obj may be NULL. */
void cli_warn(const char *obj, int err);
/* "prog: obj: text" on stderr. */
void cli_warnx(const char *obj, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print usage to stderr and exit 64. */
void cli_usage(const char *usage) __attribute__((noreturn));
/* Print help (usage plus text) to stdout and exit 0. */
void cli_help(const char *usage, const char *text) __attribute__((noreturn));
void cli_version(void) __attribute__((noreturn));
/* Flush stdout; on failure report it and return 74. */
int cli_flush(int status);
/* Open /dev/null on whichever of descriptors 0, 1 and 2 is closed, so
 * that nothing the program opens lands there, to become a child's
 * standard input, output or error. */
void cli_std_fds(void);
/* Parse a duration operand or exit 64 with a message naming it. */
unsigned cli_duration(const char *opt, const char *arg);

/* s as a JSON string literal, quotes included. */
void cli_json_string(FILE *out, const char *s);
/* Call fn for every queue under mq_root(); returns its first non-zero. */
int cli_each_root_queue(int (*fn)(const char *path, void *), void *arg);
/* Human age: 42s, 3m, 5h, 2d. */
const char *cli_age(double seconds, char *buf, size_t size);

/* Trust each --verify path and set the --key secret key; on failure the
 * line is printed and the exit status returned, else 0. */
int cli_load_keys(struct mq_queue *q, const char *const *verify, int n,
    const char *key);
/* Nanoseconds on the given clock (CLOCK_REALTIME, CLOCK_MONOTONIC). */
long long cli_now_ns(int clock);

#endif
