/*
 * mq-ls - list a queue's messages, or show one, without claiming any.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/mq.h"
#include "cli.h"

const char *cli_prog = "mq-ls";

static const char usage[] =
    "mq-ls [--state STATE] [--json] QUEUE\n"
    "       mq-ls --show ID [--key KEY] QUEUE";

static const char help[] =
    "List the messages of QUEUE, one per line: id, state, size, age,\n"
    "attempts, then headers (or why it is dead or in quarantine).  Nothing\n"
    "is claimed or changed.\n\n"
    "  -s, --state STATE  only ready, delayed, inflight, dead or quarantine\n"
    "  -j, --json         one JSON object per message per line\n"
    "  -S, --show ID      print that message's headers, a blank line, and\n"
    "                     its body\n"
    "  -k, --key KEY      secret key to open a sealed body with --show\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

static int json;
static double now;
static struct mq_queue *q;

/* Priority, group and expiry, then the user headers of a message file,
 * read without claiming it. */
static void
print_headers(const struct mq_entry *e)
{
	char name[80], value[MQ_HEADER_MAX];
	struct mq_msg m;
	enum mq_state st;
	size_t it = 0;
	int first = 1;

	/* Looked for by id again only if it moved since it was listed. */
	if (mq_peek_entry(q, e, &m) == -1 &&
	    (errno != ENOENT || mq_peek(q, e->id, &m, &st) == -1)) {
		if (json)
			fputs(",\"headers\":{", stdout);
		return;
	}
	if (json) {
		printf(",\"priority\":%d,\"expires_ns\":%lld,\"group\":",
		    m.priority, (long long)m.expires_ns);
		cli_json_string(stdout, m.group);
		fputs(",\"headers\":{", stdout);
	} else {
		if (m.priority > 0)
			printf(" priority=%d", m.priority);
		if (m.group[0] != '\0')
			printf(" group=%s", m.group);
		if (m.expires_ns != 0)
			printf(" expires=%lld", (long long)(m.expires_ns /
			    1000000000));
	}
	while (mq_msg_header_next(&m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1) {
		if (json) {
			fputs(first ? "" : ",", stdout);
			cli_json_string(stdout, name);
			putchar(':');
			cli_json_string(stdout, value);
		} else
			printf(" %s=%s", name, value);
		first = 0;
	}
	mq_msg_close(&m);
}

static int
list_one(const struct mq_entry *e, void *arg)
{
	double age = now - (double)e->st.st_mtim.tv_sec -
	    (double)e->st.st_mtim.tv_nsec / 1e9;
	char buf[16];

	(void)arg;
	if (json) {
		fputs("{\"id\":", stdout);
		cli_json_string(stdout, e->id);
		printf(",\"state\":\"%s\",\"size\":%lld,\"age_s\":%.3f,"
		    "\"attempts\":%u,\"path\":", mq_state_name(e->state),
		    (long long)e->st.st_size, age < 0 ? 0 : age, e->attempts);
		cli_json_string(stdout, e->path);
		if (e->reason[0] != '\0') {
			fputs(",\"reason\":", stdout);
			cli_json_string(stdout, e->reason);
		}
		/* print_headers adds the fields it reads and opens headers. */
		if (e->state != MQ_QUARANTINED)
			print_headers(e);
		else
			fputs(",\"headers\":{", stdout);
		fputs("}}\n", stdout);
		return 0;
	}
	printf("%-16s %-10s %10lld %6s %3u", e->id[0] ? e->id : "-",
	    mq_state_name(e->state), (long long)e->st.st_size,
	    cli_age(age, buf, sizeof(buf)), e->attempts);
	if (e->reason[0] != '\0')
		printf(" (%s)", e->reason);
	if (e->state != MQ_QUARANTINED)
		print_headers(e);
	putchar('\n');
	return 0;
}

static int
show(const char *queue, const char *id)
{
	char name[80], value[MQ_HEADER_MAX];
	struct mq_msg m;
	enum mq_state st;
	size_t it = 0;
	int err;

	if (mq_peek(q, id, &m, &st) == -1) {
		err = errno;
		if (err == EINVAL)
			cli_warnx(id, "Not a message id");
		else
			cli_warn(id, err);
		return err == EINVAL ? 65 : mq_exit_status(err);
	}
	printf("id: %s\nstate: %s\nattempts: %u\n", m.id,
	    mq_state_name(st), m.attempt);
	if (m.priority > 0)
		printf("priority: %d\n", m.priority);
	if (m.group[0] != '\0')
		printf("group: %s\n", m.group);
	if (m.expires_ns != 0)
		printf("expires: %lld\n", (long long)(m.expires_ns / 1000000000));
	while (mq_msg_header_next(&m, &it, name, sizeof(name), value,
	    sizeof(value)) == 1)
		printf("%s: %s\n", name, value);
	putchar('\n');
	if (fflush(stdout) == EOF || mq_msg_copy_body(q, &m, 1) == -1) {
		err = errno;
		cli_warn(queue, err);
		mq_msg_close(&m);
		return mq_exit_status(err);
	}
	mq_msg_close(&m);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "show", required_argument, NULL, 'S' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct timespec ts;
	unsigned states = MQ_ALL_STATES;
	const char *id = NULL, *key = NULL;
	int c, st, err, status;

	while ((c = getopt_long(argc, argv, "+s:jS:k:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if ((st = mq_state_parse(optarg)) == -1) {
				cli_warnx(NULL, "--state: unknown state: %s "
				    "(ready, delayed, inflight, dead, "
				    "quarantine)", optarg);
				return 64;
			}
			states = MQ_STATE_BIT(st);
			break;
		case 'j':
			json = 1;
			break;
		case 'S':
			id = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'h':
			cli_help(usage, help);
		case 'V':
			cli_version();
		default:
			cli_usage(usage);
		}
	}
	if (argc - optind != 1 || (id != NULL && (json || states !=
	    MQ_ALL_STATES)) || (key != NULL && id == NULL))
		cli_usage(usage);
	if ((q = mq_open(argv[optind])) == NULL ||
	    (key != NULL && mq_set_key(q, key) == -1)) {
		err = errno;
		cli_warn(q == NULL ? argv[optind] : key, err);
		mq_close(q);
		return mq_exit_status(err);
	}
	if (id != NULL)
		status = show(argv[optind], id);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
		status = 0;
		if (mq_walk(q, states, list_one, NULL) == -1) {
			err = errno;
			cli_warn(argv[optind], err);
			status = mq_exit_status(err);
		}
	}
	mq_close(q);
	return cli_flush(status);
}
