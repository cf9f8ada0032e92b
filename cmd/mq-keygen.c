/*
 * mq-keygen - make an Ed25519 key pair for signing and sealing messages.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-keygen";

static const char usage[] = "mq-keygen NAME";

static const char help[] =
    "Write a new secret key to NAME.key (mode 0600) and its public key to\n"
    "NAME.pub (one line of text).  Existing files are never overwritten.\n"
    "Producers sign with NAME.key (mq-send -s); consumers trust NAME.pub\n"
    "(--verify) or seal bodies to it (mq-send --seal-to).\n\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n";

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	int c, err;

	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (argc - optind != 1 || argv[optind][0] == '\0')
		cli_usage(usage);
	if (mq_keygen(argv[optind]) == -1) {
		err = errno;
		cli_warn(argv[optind], err);
		return err == EEXIST ? 73 : mq_exit_status(err);
	}
	return 0;
}
