/*
 * stamp.c - an mq-watch handler that only says when it started: it
 * prints CLOCK_MONOTONIC in nanoseconds on standard output and exits 0
 * (which acks the message).  The wake-up benchmark reads the line.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
main(void)
{
	struct timespec ts;
	char line[32];
	int n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%lld\n",
	    (long long)ts.tv_sec * 1000000000 + ts.tv_nsec);
	return write(1, line, (size_t)n) == n ? 0 : 1;
}
