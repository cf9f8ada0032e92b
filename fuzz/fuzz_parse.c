/*
 * fuzz_parse.c - libFuzzer target for everything libmq parses from files
 * or from users: message files (header, signature, and the decoder of
 * compressed bodies), queue config text, receipts and state-folder names,
 * and durations.  The first input byte chooses the parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../lib/mq_impl.h"

static void
fuzz_message(const uint8_t *data, size_t size)
{
	struct mq_queue q;
	struct mq_msg *m;
	int fd, i;

	if ((fd = memfd_create("msg", MFD_CLOEXEC)) == -1)
		return;
	if (mq_write_all(fd, data, size) == -1 || (m = calloc(1, sizeof(*m))) == NULL) {
		close(fd);
		return;
	}
	memset(&q, 0, sizeof(q));
	for (i = 0; i < MQ_NDIRS; i++)
		q.dirfd[i] = -1;
	strcpy(q.path, "/fuzz/q");
	m->fd = fd;
	if (mq_header_parse(fd, m, (off_t)size) == 0) {
		char name[80], value[MQ_HEADER_MAX];
		size_t it = 0;
		while (mq_msg_header_next(m, &it, name, sizeof(name), value,
		    sizeof(value)) == 1)
			;
		if (m->signed_)
			mq_verify(&q, m);
		if (m->compressed && !m->sealed && m->raw_size < (1 << 24))
			mq_decode(&q, m, -1);
	}
	free(m);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[70000];
	struct mq_config c;
	uint64_t seq;
	unsigned n;
	int64_t t;
	char kind;

	if (size == 0 || size > sizeof(buf) - 1)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		fuzz_message(data + 1, size - 1);
		break;
	case 1:
		mq_config_defaults(&c);
		mq_config_parse(buf, size - 1, &c);
		break;
	case 2:
		mq_receipt_parse(buf, &seq, &n, &kind);
		mq_lease_name_parse(buf, &seq, &n, &kind, &t);
		mq_delay_name_parse(buf, &t, &seq, &n);
		mq_ready_name_parse(buf, &seq, &n);
		mq_id_parse(buf, &seq);
		break;
	default:
		mq_parse_duration(buf, &n);
		break;
	}
	return 0;
}
