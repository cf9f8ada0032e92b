/*
 * shutdown - cut the power under a mounted filesystem, as its disk sees
 * it: FS_IOC_SHUTDOWN with FS_GOING_FLAGS_NOLOGFLUSH stops every further
 * write at once, without writing the journal or log the filesystem holds
 * in memory, so what is on the disk afterwards is what a power cut at
 * this instant would have left.  Supported by ext4, XFS and f2fs.
 *
 * usage: shutdown PATH   (any file or directory on the filesystem)
 * Exit 0 on success, 1 with a message on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* From <linux/fs.h> on newer kernels; the values are the ABI. */
#ifndef FS_IOC_SHUTDOWN
#define FS_IOC_SHUTDOWN _IOR('X', 125, uint32_t)
#endif
#ifndef FS_GOING_FLAGS_NOLOGFLUSH
#define FS_GOING_FLAGS_NOLOGFLUSH 0x2
#endif

int
main(int argc, char *argv[])
{
	uint32_t flags = FS_GOING_FLAGS_NOLOGFLUSH;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: shutdown PATH\n");
		return 1;
	}
	if ((fd = open(argv[1], O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "shutdown: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (ioctl(fd, FS_IOC_SHUTDOWN, &flags) == -1) {
		fprintf(stderr, "shutdown: %s: FS_IOC_SHUTDOWN: %s\n", argv[1],
		    strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}
