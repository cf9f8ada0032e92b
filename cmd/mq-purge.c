/*
 * mq-purge - remove every message in a state, after confirmation.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-purge";

static const char usage[] = "mq-purge --state STATE [--yes] QUEUE";

static const char help[] =
    "Remove every message of QUEUE in STATE: ready, delayed, dead,\n"
    "quarantine, or all (all of those; messages in flight are never\n"
    "purged).  Without --yes nothing is removed: the count that would be\n"
    "is printed, and the exit status is 1 if it is not zero.\n\n"
    "  -s, --state STATE  what to purge\n"
    "  -y, --yes          really remove\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static int
count(const struct mq_entry *e, void *arg)
{
	(void)e;
	(*(long *)arg)++;
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct mq_queue *q;
	unsigned states = 0;
	int c, st, yes = 0, err;
	long n = 0;

	while ((c = getopt_long(argc, argv, "+s:yhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (strcmp(optarg, "all") == 0)
				states = MQ_ALL_STATES & ~MQ_STATE_BIT(MQ_INFLIGHT);
			else if ((st = mq_state_parse(optarg)) != -1 &&
			    st != MQ_INFLIGHT)
				states = MQ_STATE_BIT(st);
			else {
				cli_warnx(NULL, "--state: cannot purge: %s "
				    "(ready, delayed, dead, quarantine, all)",
				    optarg);
				return 64;
			}
			break;
		case 'y':
			yes = 1;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (argc - optind != 1 || states == 0)
		cli_usage(usage);
	if ((q = mq_open(argv[optind])) == NULL) {
		err = errno;
		cli_warn(argv[optind], err);
		return mq_exit_status(err);
	}
	if (!yes) {
		if (mq_walk(q, states, count, &n) == -1) {
			err = errno;
			cli_warn(argv[optind], err);
			return mq_exit_status(err);
		}
		cli_warnx(argv[optind], "would remove %ld message(s); "
		    "add --yes to remove them", n);
		mq_close(q);
		return n > 0;
	}
	if ((n = mq_purge(q, states)) == -1) {
		err = errno;
		cli_warn(argv[optind], err);
		mq_close(q);
		return mq_exit_status(err);
	}
	mq_close(q);
	printf("%ld\n", n);
	return cli_flush(0);
}
