/*
 * runx.c - run commands many times, interleaved, and report medians.
 *
 * Machines here are noisy (±30-50 %), so commands compared with each
 * other run in rounds: each round runs every command once, starting with
 * a different one each round, so that drift in the machine, and whatever
 * one command leaves behind for the next, hits every command alike.  Each
 * run is a posix_spawn and wait4: wall time from spawn to reaped, CPU
 * time (user + system) and peak RSS from the child's rusage.
 *
 * usage: runx [-fs] [-n RUNS] [-w WARMUP] -- [<IN] [>OUT] CMD ARG... [::: ...]
 *
 * -f keeps the order fixed, for commands that depend on each other (a
 * send, then the receive of what it sent).
 *
 * -s syncs the filesystems before each run, untimed, so that a command
 * that syncs does not write what the one before it left unwritten.
 *
 * Prints one line per command, in order:
 *   wall_median_us cpu_median_us maxrss_max_kb wall_p10_us wall_p90_us
 * A command that exits non-zero is reported on stderr and makes runx
 * exit 1 after printing.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct cmd {
	char **argv;
	const char *in, *out;
	double *wall, *cpu;
	long maxrss;
};

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[(int)(p * (n - 1) + 0.5)];
}

/* Run c once; returns its exit status (-1 when it could not run). */
static int
run(struct cmd *c, double *wall, double *cpu, long *rss)
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	double t0;
	pid_t pid;
	int st, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, c->in ? c->in : "/dev/null",
	    O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, c->out ? c->out : "/dev/null",
	    O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t0 = now_us();
	rc = posix_spawnp(&pid, c->argv[0], &fa, NULL, c->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "runx: %s: %s\n", c->argv[0], strerror(rc));
		return -1;
	}
	while (wait4(pid, &st, 0, &ru) == -1)
		if (errno != EINTR)
			return -1;
	*wall = now_us() - t0;
	*cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
	*rss = ru.ru_maxrss;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
main(int argc, char *argv[])
{
	struct cmd cmds[16];
	int runs = 20, warm = 2, ncmd = 0, i, r, c, k, st, failed = 0;
	int fixed = 0, sync_first = 0;
	double w = 0, u = 0;
	long rss = 0;

	while ((c = getopt(argc, argv, "+fsn:w:")) != -1) {
		switch (c) {
		case 'f':
			fixed = 1;
			break;
		case 's':
			sync_first = 1;
			break;
		case 'n':
			runs = atoi(optarg);
			break;
		case 'w':
			warm = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (runs < 1 || optind >= argc)
		goto usage;
	for (i = optind; i < argc && ncmd < 16; ) {
		struct cmd *m = &cmds[ncmd++];
		memset(m, 0, sizeof(*m));
		for (; i < argc && (argv[i][0] == '<' || argv[i][0] == '>'); i++) {
			if (argv[i][0] == '<')
				m->in = argv[i] + 1;
			else
				m->out = argv[i] + 1;
		}
		m->argv = argv + i;
		for (; i < argc && strcmp(argv[i], ":::") != 0; i++)
			;
		if (i < argc)
			argv[i++] = NULL;
		if (m->argv[0] == NULL)
			goto usage;
		m->wall = calloc((size_t)runs, sizeof(double));
		m->cpu = calloc((size_t)runs, sizeof(double));
	}
	for (r = -warm; r < runs; r++) {
		for (k = 0; k < ncmd; k++) {
			c = fixed ? k : (k + r + warm) % ncmd;
			if (sync_first)
				sync();
			st = run(&cmds[c], &w, &u, &rss);
			if (st != 0) {
				fprintf(stderr, "runx: %s exited %d\n",
				    cmds[c].argv[0], st);
				failed = 1;
			}
			if (r < 0)
				continue;
			cmds[c].wall[r] = w;
			cmds[c].cpu[r] = u;
			if (rss > cmds[c].maxrss)
				cmds[c].maxrss = rss;
		}
	}
	for (c = 0; c < ncmd; c++) {
		double med = pct(cmds[c].wall, runs, 0.5);
		double p10 = pct(cmds[c].wall, runs, 0.1);
		double p90 = pct(cmds[c].wall, runs, 0.9);
		printf("%.1f %.1f %ld %.1f %.1f\n", med, pct(cmds[c].cpu, runs, 0.5),
		    cmds[c].maxrss, p10, p90);
	}
	return failed;
usage:
	fprintf(stderr, "usage: runx [-fs] [-n RUNS] [-w WARMUP] -- [<IN] [>OUT] "
	    "CMD ARG... [::: ...]\n");
	return 64;
}
