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

#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "mq.h"

#define MQ_BUCKET_BITS 10
#define MQ_NAME_MAX 96

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
	int remote;			/* -1 not yet known */
	off_t lock_off;			/* this queue's byte in message locks */
	unsigned seq_ahead;		/* ids to take at a time (mq_send_ahead) */
	uint64_t seq_next;		/* next of the ids taken, ... */
	unsigned seq_left;		/* ... and how many are left */
	int have_config;
	struct mq_config config;
	struct mq_pubkey *trusted;
	size_t ntrusted;
	int verifying;			/* trusted keys named: only their
					   signatures pass, even with none */
	int trust_loaded;
	struct mq_key *open_key;	/* sodium_malloc'ed */
	struct mq_cursor *cursor;	/* what a consumer keeps between claims */
	int claimed_last;		/* the last mq_claim claimed */
	int cursor_failed;		/* no cursor here (remote, no inotify) */
	int claims_unsynced;		/* mq_claim_many syncs cur/ once */
	void (*on_quarantine)(const char *, int, void *);
	void *on_quarantine_arg;
	char path[PATH_MAX];
};

/* layout.c */
int mq_dir(struct mq_queue *q, enum mq_dir which);
int mq_is_remote(struct mq_queue *q);
int64_t mq_now_ns(void);
void mq_id_format(uint64_t seq, char id[MQ_ID_SIZE]);
int mq_id_parse(const char *s, uint64_t *seq);
#define MQ_BUCKET_NAME_SIZE 24
struct mq_bucket {
	uint64_t base;
	int prio;
};
void mq_bucket_name(uint64_t seq, int prio, char name[MQ_BUCKET_NAME_SIZE]);
int mq_bucket_name_parse(const char *name, struct mq_bucket *b);
int mq_file_priority(int dirfd, const char *name);
int mq_ready_name_parse(const char *name, uint64_t *seq, unsigned *n);
int mq_receipt_parse(const char *r, uint64_t *seq, unsigned *n, char *kind);
int mq_lease_name_parse(const char *name, uint64_t *seq, unsigned *n,
    char *kind, int64_t *deadline);
int mq_dead_name_parse(const char *name, uint64_t *seq, unsigned *n,
    char *reason, size_t size);
int mq_delay_name_parse(const char *name, int64_t *due, uint64_t *seq,
    unsigned *n);
int mq_lease_find(struct mq_queue *q, const char *receipt, char *name,
    size_t size);
int mq_move_to_ready(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n, int prio, int sync);
int mq_move_to_dead(struct mq_queue *q, int fromfd, const char *from,
    uint64_t seq, unsigned n, const char *reason);
int mq_quarantine(struct mq_queue *q, int fromfd, const char *from, int err);
int mq_token(char *buf, size_t size, int keep_lock);

/* io.c */
int mq_chmodat(int dirfd, const char *name, mode_t mode);
int mq_listing_end(DIR *d);
int mq_mkdirat(struct mq_queue *q, int dirfd, const char *name);
int mq_folder_lock(struct mq_queue *q, int dirfd, const char *what);
int mq_write_file(struct mq_queue *q, const char *name, const void *buf,
    size_t len, int replace);
int mq_wait_writable(int fd);
int mq_write_all(int fd, const void *buf, size_t n);
int mq_pwrite_all(int fd, const void *buf, size_t n, off_t off);
ssize_t mq_read_full(int fd, void *buf, size_t n);
/* fsync fd and close it; the fsync's result and errno. */
int mq_fsync_close(int fd);
int mq_fsync_dirat(int dirfd, const char *name);
int mq_prealloc(int fd, off_t off, off_t len);
#define MQ_WRITEBACK_STEP (8 << 20)
void mq_writeback(int fd, off_t *from, off_t to);
int mq_rename_noreplace(int ofd, const char *from, int nfd, const char *to);
int mq_move(int ofd, const char *from, int nfd, const char *to);
int mq_move_unique(int ofd, const char *from, int nfd, const char *to);
int mq_rename_unique(int ofd, const char *from, int nfd, const char *to);
int mq_linked(int ofd, const char *from, int nfd, const char *to);

int mq_tmp_clean(struct mq_queue *q, unsigned max_age_s);
mode_t mq_umask(void);

/* seq.c */
int mq_seq_reserve(struct mq_queue *q, unsigned count, uint64_t *first);
int mq_seq_create(struct mq_queue *q);
int mq_seq_peek(struct mq_queue *q, uint64_t *next);

/* format.c */
#define MQ_SIZE_DIGITS 20
#define MQ_TRAILER_LEN 94	/* "sig: " base64(64 bytes) "\n" */
struct mq_header_fields {
	const char *id;
	int64_t ns;
	const char *queue;
	int compressed;
	int sealed;
	const char *sealed_to, *seal_key, *seal_header;	/* base64 */
	const char *signer;				/* base64, or NULL */
	const char *const *headers;
	int priority;
	int64_t expires_ns;
	const char *group;
};
int mq_header_build(char *buf, size_t size, const struct mq_header_fields *f,
    off_t *size_at, off_t *raw_at);
int mq_header_parse(int fd, struct mq_msg *m, off_t file_size);
int mq_header_get(const struct mq_msg *m, const char *key, char *buf,
    size_t size);
int mq_header_name_valid(const char *s, size_t len);
int mq_header_value_valid(const char *s, size_t len);

/* decode.c */
int mq_verify(struct mq_queue *q, const struct mq_msg *m);
int mq_decode(struct mq_queue *q, const struct mq_msg *m, int out);
int mq_sealed_for_us(struct mq_queue *q, const struct mq_msg *m);

/* dedup.c: claim returns 0 claimed (*keyfd holds the key's lock until
 * settle or release close it), 1 duplicate of dup_id, -1 error. */
#define MQ_DEDUP_NAME_SIZE 33
void mq_dedup_name(const char *key, char name[MQ_DEDUP_NAME_SIZE]);
int mq_dedup_claim(struct mq_queue *q, const char *key, unsigned window_s,
    char name[MQ_DEDUP_NAME_SIZE], char dup_id[MQ_ID_SIZE], int *keyfd);
int mq_dedup_settle(struct mq_queue *q, int keyfd, const char *id,
    unsigned window_s);
void mq_dedup_release(struct mq_queue *q, const char *name, int keyfd);

/* fanout.c */
int mq_fanout(struct mq_queue *topic, const struct mq_config *cfg,
    const char *tmp_name, const char *topic_id, int prio, int64_t due_ns);
int mq_fanout_recover(struct mq_queue *topic);
/* A subscriber finishes its topic's committed fan-outs, so a crashed
 * sender's message arrives even if nothing is ever sent to the topic
 * again.  0 when none is left (or the queue has no topic, or its topic is
 * gone), -1 when one may be. */
int mq_fanout_finish(const struct mq_config *cfg);

/* group.c: 1 id owns its group now, 0 another message comes first. */
int mq_group_acquire(struct mq_queue *q, const char *group, const char *id);

/* keys.c */
int mq_sodium_init(void);
int mq_b64_decode(const char *text, unsigned char *out, size_t len);
int mq_trusted(const struct mq_queue *q, const unsigned char pk[32]);
void mq_pubkey_text(const unsigned char pk[32], char *buf, size_t size);
void mq_keys_free(struct mq_queue *q);

/* config.c */
void mq_config_defaults(struct mq_config *c);
int mq_config_parse(char *buf, size_t len, struct mq_config *c);
int mq_config_write(struct mq_queue *q, const struct mq_config *c);

/* claim.c */
struct mq_ready {
	uint64_t seq;
	unsigned n;
	int gone;			/* claimed or no longer there */
};
/* A bucket holds at most 1024 ids; more entries than this are forged
 * names and are ignored so that memory stays bounded. */
#define MQ_BUCKET_ENTRIES_MAX 4096
DIR *mq_opendirat(int dirfd, const char *name);
/* The buckets in new/ in claim order (priority down, then id up), and
 * the sorted entries of one bucket; NULL with errno 0 when empty. */
struct mq_bucket *mq_list_buckets(int newfd, size_t *count);
struct mq_ready *mq_list_bucket(int newfd, const char *bucket, uint64_t base,
    size_t *count);
int mq_msg_belongs(const struct mq_queue *q, const struct mq_config *cfg,
    const struct mq_msg *m, const char *id, nlink_t nlink);

/* cursor.c: see there.  mq_cursor_start returns 0, or -1 when there can
 * be no cursor; mq_cursor_watch_bucket returns the watch descriptor or
 * -1; mq_cursor_keep takes ownership of bucketfd and e; mq_cursor_entries
 * returns NULL when nothing is kept. */
struct mq_cursor;
int mq_cursor_start(struct mq_queue *q);
void mq_cursor_free(struct mq_cursor *c);
void mq_cursor_drop(struct mq_queue *q);
int mq_cursor_watch_bucket(struct mq_queue *q, const char *bucket);
void mq_cursor_keep(struct mq_queue *q, const struct mq_bucket *b, int wd,
    int bucketfd, struct mq_ready *e, size_t count, size_t pos);
struct mq_ready *mq_cursor_entries(struct mq_queue *q, int *bucketfd,
    size_t **pos, size_t *count);
int mq_cursor_update(struct mq_queue *q);
int mq_cursor_reap_due(struct mq_queue *q, int64_t now);
void mq_cursor_reaped(struct mq_queue *q, int64_t now, int64_t next);

/* reap.c */
/* 1 when some process holds this queue's lock byte of message file fd. */
int mq_msg_locked(const struct mq_queue *q, int fd);
/* mq_reap returns how many messages it made ready, or -1; *next_ns is
 * the earliest lease end or due time still ahead (INT64_MAX if none),
 * *have_locked whether a lease held by a lock was seen. */
int mq_reap(struct mq_queue *q, int64_t *next_ns, int *have_locked);

#endif
