/*
 * mq-fsck - check queues for what a crash or an admin left; repair it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-fsck";

static const char usage[] = "mq-fsck [--fix] QUEUE...";

static const char help[] =
    "Check each QUEUE and print one line per problem.  Without --fix\n"
    "nothing is changed.  Repairs never delete a message: files that are\n"
    "not messages go to quarantine/.\n\n"
    "  -f, --fix      repair what was found\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n\n"
    "Exit 0: nothing wrong; 1: problems found (and, with --fix, repaired);\n"
    "other: a repair or the check itself failed.\n";

static int failed;

static void
problem(const struct mq_problem *p, void *arg)
{
	const char *queue = arg;

	if (p->fixed == 1)
		printf("%s: %s: %s: fixed: %s\n", queue, p->path, p->what,
		    p->action);
	else if (p->fixed == -1) {
		printf("%s: %s: %s: not fixed: %s: %s\n", queue, p->path,
		    p->what, p->action, mq_strerror(p->err));
		failed = 1;
	} else
		printf("%s: %s: %s: would %s\n", queue, p->path, p->what,
		    p->action);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "fix", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, i, fix = 0, status = 0, err;
	long n;

	while ((c = getopt_long(argc, argv, "+fhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			fix = 1;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (optind == argc)
		cli_usage(usage);
	for (i = optind; i < argc; i++) {
		n = mq_fsck(argv[i], fix, problem, argv[i]);
		if (n == -1) {
			err = errno;
			cli_warn(argv[i], err);
			status = mq_exit_status(err);
		} else if (n > 0 && status == 0)
			status = 1;
	}
	if (failed && status <= 1)
		status = 75;
	return cli_flush(status);
}
