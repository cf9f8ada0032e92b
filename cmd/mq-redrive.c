/*
 * mq-redrive - move dead letters back to ready.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-redrive";

static const char usage[] =
    "mq-redrive [--reset] [--min-age DUR] [--max-age DUR] QUEUE [ID...]";

static const char help[] =
    "Move dead letters of QUEUE back to ready: every one, or the IDs given.\n"
    "A redriven message keeps its id and its place in FIFO order, and its\n"
    "attempt count unless --reset.  Prints how many were moved.  What is\n"
    "not a regular file goes to quarantine/ instead, with a warning.\n\n"
    "  -r, --reset        start the attempt count afresh\n"
    "  -o, --min-age DUR  only those dead at least DUR\n"
    "  -n, --max-age DUR  only those dead at most DUR\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static const char *queue;

static void
on_quarantine(const char *name, int err, void *arg)
{
	(void)arg;
	cli_warnx(queue, "dead/%s: %s: moved to quarantine", name,
	    mq_strerror(err));
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "reset", no_argument, NULL, 'r' },
		{ "min-age", required_argument, NULL, 'o' },
		{ "max-age", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct mq_queue *q;
	unsigned min_age = 0, max_age = 0;
	int c, i, reset = 0, err;
	long n;

	while ((c = getopt_long(argc, argv, "+ro:n:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			reset = 1;
			break;
		case 'o':
			min_age = cli_duration("--min-age", optarg);
			break;
		case 'n':
			max_age = cli_duration("--max-age", optarg);
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
	for (i = optind + 1; i < argc; i++)
		if (!mq_id_valid(argv[i])) {
			cli_warnx(argv[i], "Not a message id");
			return 65;
		}
	if ((q = mq_open(argv[optind])) == NULL) {
		err = errno;
		cli_warn(argv[optind], err);
		return mq_exit_status(err);
	}
	queue = argv[optind];
	mq_set_quarantine_hook(q, on_quarantine, NULL);
	n = mq_redrive(q, optind + 1 < argc ?
	    (const char *const *)argv + optind + 1 : NULL, min_age, max_age,
	    reset);
	if (n == -1) {
		err = errno;
		cli_warn(argv[optind], err);
		mq_close(q);
		return mq_exit_status(err);
	}
	mq_close(q);
	printf("%ld\n", n);
	return cli_flush(0);
}
