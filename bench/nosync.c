/*
 * nosync.c - LD_PRELOAD shim that turns the sync calls into no-ops, so
 * the benchmark can run mq-send's own code path without the disk and
 * tell what a batch costs in mq itself from what it costs in fsync.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <unistd.h>

int fsync(int fd) { (void)fd; return 0; }
int fdatasync(int fd) { (void)fd; return 0; }
int syncfs(int fd) { (void)fd; return 0; }
int
sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
	(void)fd; (void)off; (void)n; (void)flags;
	return 0;
}
