/*
 * mq-ack - settle claims: ack, retry, dead-letter or extend.
 */
#include <errno.h>
#include <getopt.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-ack";

static const char usage[] =
    "mq-ack [--retry [-d DUR] | --fail | --extend DUR] QUEUE RECEIPT...";

static const char help[] =
    "Settle each RECEIPT that mq-recv -L printed.  Without an option, ack:\n"
    "the message is done and removed.\n\n"
    "  -r, --retry        release for redelivery\n"
    "  -d, --delay DUR    with --retry: not before DUR from now\n"
    "  -f, --fail         move to dead/ at once\n"
    "  -e, --extend DUR   keep the claim until DUR from now\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n\n"
    "Exit 1 when a receipt is stale: its lease ran out and another consumer\n"
    "took the message, or it was already settled.\n";

enum action { ACK, RETRY, FAIL, EXTEND };

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "retry", no_argument, NULL, 'r' },
		{ "delay", required_argument, NULL, 'd' },
		{ "fail", no_argument, NULL, 'f' },
		{ "extend", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	enum action act = ACK;
	struct mq_queue *q;
	unsigned delay = 0, lease = 0;
	int c, i, rc, have_delay = 0, status = 0, err;

	while ((c = getopt_long(argc, argv, "+rd:fe:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
		case 'f':
			if (act != ACK)
				cli_usage(usage);
			act = c == 'r' ? RETRY : FAIL;
			break;
		case 'e':
			if (act != ACK)
				cli_usage(usage);
			act = EXTEND;
			if ((lease = cli_duration("--extend", optarg)) == 0) {
				cli_warnx(NULL, "--extend: must be at least 1s");
				return 64;
			}
			break;
		case 'd':
			delay = cli_duration("-d", optarg);
			have_delay = 1;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (argc - optind < 2 || (have_delay && act != RETRY))
		cli_usage(usage);
	if ((q = mq_open(argv[optind])) == NULL) {
		err = errno;
		cli_warn(argv[optind], err);
		return mq_exit_status(err);
	}
	for (i = optind + 1; i < argc; i++) {
		switch (act) {
		case ACK:
			rc = mq_ack(q, argv[i]);
			break;
		case RETRY:
			rc = mq_retry(q, argv[i], delay, NULL);
			break;
		case FAIL:
			rc = mq_fail(q, argv[i]);
			break;
		default:
			rc = mq_extend(q, argv[i], lease);
			break;
		}
		if (rc == -1) {
			err = errno;
			cli_warn(argv[i], err);
			rc = err == MQ_ESTALE ? 1 : mq_exit_status(err);
			if (status == 0 || (status == 1 && rc != 1))
				status = rc;
		}
	}
	mq_close(q);
	return status;
}
