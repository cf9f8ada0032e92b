/*
 * mq-stat - counts and ages of queues, for people, JSON or Prometheus.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-stat";

static const char usage[] = "mq-stat [-b] [--json | --prom] [QUEUE...]";

static const char help[] =
    "Show per queue the messages ready, delayed, in flight, dead and in\n"
    "quarantine, the age of the oldest ready message and of the oldest\n"
    "lease.  Without QUEUE, every queue under $MQ_ROOT.\n\n"
    "  -b, --bytes    also the bytes the messages take (a stat per message)\n"
    "  -j, --json     one JSON object per queue per line\n"
    "  -p, --prom     Prometheus text exposition format\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n";

enum format { TABLE, JSON, PROM };

static enum format format = TABLE;
static unsigned flags;
static int status;
static int rows;

/* Metric samples are grouped by metric in the exposition format, so
 * Prometheus output is gathered first and printed at the end. */
struct sample {
	char queue[256];
	struct mq_stats s;
	double oldest, lease;
};
static struct sample *samples;
static size_t nsamples;

static void
prom_label(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
}

static void
print_prom(void)
{
	static const char *const metrics[][2] = {
		{ "mq_messages", "Messages in the queue, by state." },
		{ "mq_bytes", "Bytes of message files in the queue." },
		{ "mq_oldest_ready_age_seconds",
		    "Age of the oldest ready message (0 when none)." },
		{ "mq_oldest_lease_age_seconds",
		    "Time the oldest lease has been held (0 when none)." },
	};
	size_t i, k;
	int st;

	for (k = 0; k < 4; k++) {
		if (k == 1 && !(flags & MQ_STATS_BYTES))
			continue;
		printf("# HELP %s %s\n# TYPE %s gauge\n", metrics[k][0],
		    metrics[k][1], metrics[k][0]);
		for (i = 0; i < nsamples; i++) {
			if (k == 0) {
				for (st = 0; st < MQ_NSTATES; st++) {
					printf("%s{queue=\"", metrics[k][0]);
					prom_label(samples[i].queue);
					printf("\",state=\"%s\"} %llu\n",
					    mq_state_name((enum mq_state)st),
					    (unsigned long long)samples[i].s.count[st]);
				}
				continue;
			}
			printf("%s{queue=\"", metrics[k][0]);
			prom_label(samples[i].queue);
			if (k == 1)
				printf("\"} %llu\n",
				    (unsigned long long)samples[i].s.bytes);
			else
				printf("\"} %.3f\n", k == 2 ? samples[i].oldest :
				    samples[i].lease);
		}
	}
}

static const char *
display_name(const char *operand)
{
	const char *slash = strrchr(operand, '/');

	while (slash != NULL && slash[1] == '\0' && slash > operand) {
		const char *p = slash - 1;
		while (p > operand && *p != '/')
			p--;
		return *p == '/' ? p + 1 : p;
	}
	return slash != NULL ? slash + 1 : operand;
}

static int
stat_one(const char *operand, void *arg)
{
	struct mq_queue *q;
	struct mq_stats s;
	double now, oldest, lease;
	char a1[16], a2[16], bytes[24];
	const char *name = display_name(operand);
	struct sample *grown;
	struct timespec ts;

	(void)arg;
	if ((q = mq_open(operand)) == NULL || mq_stats(q, &s, flags) == -1) {
		int err = errno;
		cli_warn(operand, err);
		if (status == 0)
			status = mq_exit_status(err);
		mq_close(q);
		return 0;
	}
	mq_close(q);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	oldest = s.oldest_ready_ns ? now - (double)s.oldest_ready_ns / 1e9 : 0;
	lease = s.oldest_lease_ns ? now - (double)s.oldest_lease_ns / 1e9 : 0;
	if (oldest < 0)
		oldest = 0;
	if (lease < 0)
		lease = 0;
	/* The bytes, where asked for, sit between the counts and the ages. */
	bytes[0] = '\0';
	switch (format) {
	case TABLE:
		if (flags & MQ_STATS_BYTES)
			snprintf(bytes, sizeof(bytes), " %12llu",
			    (unsigned long long)s.bytes);
		if (rows++ == 0)
			printf("%-20s %9s %8s %8s %8s %10s%s %7s %7s\n",
			    "QUEUE", "READY", "DELAYED", "INFLIGHT", "DEAD",
			    "QUARANTINE", flags & MQ_STATS_BYTES ?
			    "        BYTES" : "", "OLDEST", "LEASE");
		printf("%-20s %9llu %8llu %8llu %8llu %10llu%s %7s %7s\n",
		    name, (unsigned long long)s.count[MQ_READY],
		    (unsigned long long)s.count[MQ_DELAYED],
		    (unsigned long long)s.count[MQ_INFLIGHT],
		    (unsigned long long)s.count[MQ_DEAD],
		    (unsigned long long)s.count[MQ_QUARANTINED], bytes,
		    s.oldest_ready_ns ? cli_age(oldest, a1, sizeof(a1)) : "-",
		    s.oldest_lease_ns ? cli_age(lease, a2, sizeof(a2)) : "-");
		break;
	case JSON:
		fputs("{\"queue\":", stdout);
		cli_json_string(stdout, name);
		fputs(",\"path\":", stdout);
		cli_json_string(stdout, operand);
		if (flags & MQ_STATS_BYTES)
			snprintf(bytes, sizeof(bytes), ",\"bytes\":%llu",
			    (unsigned long long)s.bytes);
		printf(",\"ready\":%llu,\"delayed\":%llu,\"inflight\":%llu,"
		    "\"dead\":%llu,\"quarantine\":%llu%s,"
		    "\"oldest_age_s\":%.3f,\"oldest_lease_s\":%.3f}\n",
		    (unsigned long long)s.count[MQ_READY],
		    (unsigned long long)s.count[MQ_DELAYED],
		    (unsigned long long)s.count[MQ_INFLIGHT],
		    (unsigned long long)s.count[MQ_DEAD],
		    (unsigned long long)s.count[MQ_QUARANTINED], bytes,
		    oldest, lease);
		break;
	case PROM:
		if ((grown = realloc(samples, (nsamples + 1) *
		    sizeof(*samples))) == NULL) {
			cli_warn(NULL, errno);
			status = 71;
			return 1;
		}
		samples = grown;
		snprintf(samples[nsamples].queue, sizeof(samples[0].queue),
		    "%s", name);
		samples[nsamples].s = s;
		samples[nsamples].oldest = oldest;
		samples[nsamples].lease = lease;
		nsamples++;
		break;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "bytes", no_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "prom", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	char root[4096];
	int c, i;

	while ((c = getopt_long(argc, argv, "+bjphV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			flags |= MQ_STATS_BYTES;
			break;
		case 'j':
		case 'p':
			if (format != TABLE)
				cli_usage(usage);
			format = c == 'j' ? JSON : PROM;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (optind == argc) {
		if (cli_each_root_queue(stat_one, NULL) == -1) {
			cli_warn(mq_root(root, sizeof(root)), errno);
			return mq_exit_status(errno);
		}
	} else
		for (i = optind; i < argc; i++)
			stat_one(argv[i], NULL);
	if (format == PROM)
		print_prom();
	free(samples);
	return cli_flush(status);
}
