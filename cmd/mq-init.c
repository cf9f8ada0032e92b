/*
 * mq-init - create queues, or repair and reconfigure existing ones.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-init";

static const char usage[] =
    "mq-init [-m MODE] [-g GROUP] [--lease DUR] [--max-attempts N]\n"
    "               [--backoff DUR] [--compress auto|no] [--max-size SIZE]\n"
    "               [--require-signature] [--trusted-keys PATH] [--key KEY]\n"
    "               [--ttl DUR] [--expired dead|drop] [--dedup-window DUR]\n"
    "               [--subscribe TOPIC | --unsubscribe TOPIC] QUEUE...";

static const char help[] =
    "Create each QUEUE, or repair a missing part of an existing one.\n\n"
    "  -m, --mode MODE       directory mode, octal (default 0700; 2770 with -g)\n"
    "  -g, --group GROUP     group owning the queue; new files inherit it\n"
    "      --lease DUR       default lease of a claim (default 60s)\n"
    "      --max-attempts N  deliveries before a message is dead (default 5)\n"
    "      --backoff DUR     mq-watch base retry delay (default 1s)\n"
    "      --compress auto|no  compress bodies that shrink (default no)\n"
    "      --max-size SIZE   refuse larger bodies (k, M, G; 0: no limit)\n"
    "      --require-signature  deliver only messages signed by a trusted key\n"
    "      --trusted-keys PATH  a .pub file or a directory of them\n"
    "      --key KEY         secret key that opens sealed bodies\n"
    "      --ttl DUR         expire messages not received in DUR (0: never)\n"
    "      --expired dead|drop  what happens to expired messages\n"
    "      --dedup-window DUR   how long mq-send -k keys hold (default 5m)\n"
    "      --subscribe TOPIC    deliver every message sent to TOPIC to QUEUE\n"
    "      --unsubscribe TOPIC  stop doing so\n"
    "  -h, --help            show this help\n"
    "  -V, --version         show the version\n\n"
    "DUR is seconds, or a number with s, m, h or d.  A bare QUEUE name\n"
    "lives under $MQ_ROOT.  See mq-init(1).\n";

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "group", required_argument, NULL, 'g' },
		{ "lease", required_argument, NULL, 'L' },
		{ "max-attempts", required_argument, NULL, 'A' },
		{ "backoff", required_argument, NULL, 'B' },
		{ "compress", required_argument, NULL, 'c' },
		{ "max-size", required_argument, NULL, 's' },
		{ "require-signature", no_argument, NULL, 'r' },
		{ "trusted-keys", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "ttl", required_argument, NULL, 'T' },
		{ "expired", required_argument, NULL, 'E' },
		{ "dedup-window", required_argument, NULL, 'D' },
		{ "subscribe", required_argument, NULL, 'S' },
		{ "unsubscribe", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct mq_init_opts o = { 0, (gid_t)-1, 0, 0, 0, 0, NULL };
	struct group *gr;
	static char setting[16][PATH_MAX + 32];
	static const char *settings[17];
	char abs[PATH_MAX];
	const char *key = NULL, *topic = NULL;
	int nset = 0, subscribe = 0;
	char *end;
	unsigned long v;
	uint64_t size;
	int c, i, status = 0;

	while ((c = getopt_long(argc, argv, "+m:g:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (errno != 0 || *optarg == '\0' || *end != '\0' ||
			    v > 07777 || (v & 0700) != 0700) {
				cli_warnx(NULL, "-m: invalid mode (octal, owner "
				    "needs rwx): %s", optarg);
				return 64;
			}
			/* In a sticky folder only a file's owner may rename
			 * it: consumers could not take producers' messages. */
			if (v & 01000) {
				cli_warnx(NULL, "-m: the sticky bit would stop "
				    "consumers from claiming: %s", optarg);
				return 64;
			}
			o.mode = (mode_t)v;
			break;
		case 'g':
			if ((gr = getgrnam(optarg)) != NULL)
				o.gid = gr->gr_gid;
			else {
				errno = 0;
				v = strtoul(optarg, &end, 10);
				if (errno != 0 || *optarg == '\0' || *end != '\0') {
					cli_warnx(optarg, "no such group");
					return 67;
				}
				o.gid = (gid_t)v;
			}
			break;
		case 'L':
			if ((o.lease_s = cli_duration("--lease", optarg)) == 0) {
				cli_warnx(NULL, "--lease: must be at least 1s");
				return 64;
			}
			break;
		case 'A':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno != 0 || *optarg < '1' || *optarg > '9' ||
			    *end != '\0' || v > 1000000) {
				cli_warnx(NULL, "--max-attempts: invalid count: "
				    "%s", optarg);
				return 64;
			}
			o.max_attempts = (unsigned)v;
			break;
		case 'B':
			o.backoff_s = cli_duration("--backoff", optarg);
			o.set_backoff = 1;
			break;
		case 'S':
		case 'U':
			if (topic != NULL)
				cli_usage(usage);
			topic = optarg;
			subscribe = c == 'S';
			break;
		case 'T':
		case 'D':
			cli_duration(c == 'T' ? "--ttl" : "--dedup-window", optarg);
			/* FALLTHROUGH */
		case 'E':
			if (c == 'E' && strcmp(optarg, "dead") != 0 &&
			    strcmp(optarg, "drop") != 0) {
				cli_warnx(NULL, "--expired: invalid value: %s",
				    optarg);
				return 64;
			}
			/* FALLTHROUGH */
		case 'c':
		case 's':
		case 'r':
		case 't':
		case 'k':
			key = c == 'c' ? "compress" : c == 's' ? "max-size" :
			    c == 'r' ? "require-signature" :
			    c == 't' ? "trusted-keys" : c == 'T' ? "ttl" :
			    c == 'E' ? "expired" : c == 'D' ? "dedup-window" :
			    "key";
			if ((c == 'c' && strcmp(optarg, "auto") != 0 &&
			    strcmp(optarg, "no") != 0) ||
			    (c == 's' && mq_parse_size(optarg, &size) == -1)) {
				cli_warnx(NULL, "--%s: invalid value: %s", key,
				    optarg);
				return 64;
			}
			/* Paths are kept absolute: consumers run elsewhere. */
			if ((c == 't' || c == 'k') &&
			    realpath(optarg, abs) == NULL) {
				cli_warn(optarg, errno);
				return 66;
			}
			snprintf(setting[nset], sizeof(setting[nset]), "%s = %s",
			    key, c == 'r' ? "yes" : (c == 't' || c == 'k') ?
			    abs : optarg);
			if (nset < 16) {
				settings[nset] = setting[nset];
				nset++;
			}
			o.settings = settings;
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
	if (topic != NULL && mq_init(topic, &o) == -1) {
		int err = errno;
		cli_warn(topic, err);
		return err == ENOENT ? 73 : mq_exit_status(err);
	}
	for (i = optind; i < argc; i++) {
		if (mq_init(argv[i], &o) == -1 ||
		    (topic != NULL && mq_subscribe(topic, argv[i],
		    subscribe) == -1)) {
			int err = errno;
			/* Here a path that is not a directory is just that. */
			if (err == ENOTDIR)
				cli_warnx(argv[i], "%s", strerror(err));
			else if (err == EBUSY)
				cli_warnx(argv[i], "already subscribed to "
				    "another topic");
			else
				cli_warn(argv[i], err);
			if (status == 0)
				status = err == ENOENT ? 73 :
				    err == MQ_EBADCONF ? 64 : mq_exit_status(err);
		}
	}
	return status;
}
