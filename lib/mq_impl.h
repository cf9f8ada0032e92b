/*
 * mq_impl.h - libmq internals shared between the files of lib/.
 *
 * Names on disk (mq-queue(5) is the reference):
 *   tmp/PID.NS.SEQ            a message being written
 *   new/BUCKET/ID.N           ready; BUCKET is ID with its last 10 bits
 *                             cleared, N the deliveries so far
 *   cur/ID.N.TOKEN.DEADLINE   leased; ID.N.TOKEN is the receipt,
 *                             DEADLINE the lease end (ns)
 *   delay/DUE.ID.N            waiting to be ready again at DUE (ns)
 *   dead/ID.N.REASON          dead letters
 *   quarantine/NAME           files that are not messages
 */
#ifndef MQ_IMPL_H
#define MQ_IMPL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "mq.h"

#define MQ_BUCKET_BITS 10
#define MQ_NAME_MAX 96
#define MQ_HEADER_MAX 4096

enum mq_dir {
	MQ_DIR_TMP,
	MQ_DIR_NEW,
	MQ_DIR_CUR,
	MQ_DIR_DELAY,
	MQ_DIR_DEAD,
	MQ_DIR_QUARANTINE,
	MQ_NDIRS
};

extern const char *const mq_dir_names[MQ_NDIRS];

struct mq_queue {
	int fd;
	int dirfd[MQ_NDIRS];
	mode_t file_mode;
	mode_t dir_mode;
	int have_config;
	struct mq_config config;
	void (*on_quarantine)(const char *, int, void *);
	void *on_quarantine_arg;
	char path[PATH_MAX];
};

/* layout.c */
int mq_dir(struct mq_queue *q, enum mq_dir which);
int64_t mq_now_ns(void);
void mq_id_format(uint64_t seq, char id[MQ_ID_SIZE]);
int mq_id_parse(const char *s, uint64_t *seq);
void mq_bucket_name(uint64_t seq, char name[MQ_ID_SIZE]);
int mq_ready_name_parse(const char *name, uint64_t *seq, unsigned *n);
int mq_receipt_parse(const char *r, uint64_t *seq, unsigned *n, char *kind);
int mq_lease_name_parse(const char *name, uint64_t *seq, unsigned *n,
    char *kind, int64_t *deadline);
int mq_delay_name_parse(const char *name, int64_t *due, uint64_t *seq,
    unsigned *n);
int mq_lease_find(struct mq_queue *q, const char *receipt, char *name,
    size_t size);
int mq_move_to_ready(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n);
int mq_move_to_dead(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n, const char *reason);
int mq_quarantine(struct mq_queue *q, int fromfd, const char *from);
int mq_token(char *buf, size_t size, int keep_lock);

/* io.c */
int mq_mkdirat(struct mq_queue *q, int dirfd, const char *name);
int mq_write_all(int fd, const void *buf, size_t n);
ssize_t mq_read_full(int fd, void *buf, size_t n);
int mq_fsync_dirat(int dirfd, const char *name);
int mq_rename_noreplace(int ofd, const char *from, int nfd, const char *to);

int mq_tmp_clean(struct mq_queue *q, unsigned max_age_s);

/* seq.c */
int mq_seq_reserve(struct mq_queue *q, unsigned count, uint64_t *first);
int mq_seq_create(struct mq_queue *q);

/* format.c */
int mq_header_format(char *buf, size_t size, const char *id, int64_t ns,
    off_t *size_at);
int mq_header_set_size(int fd, off_t at, off_t body_size);
int mq_header_parse(int fd, struct mq_msg *m, off_t file_size);

/* config.c */
int mq_config_write(struct mq_queue *q, const struct mq_config *c);

/* claim.c: returns how many messages it made ready, or -1. */
int mq_reap(struct mq_queue *q, int64_t *next_ns, int *have_locked);

#endif
