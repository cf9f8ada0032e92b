/*
 * mq.h - libmq, durable spool message queues on plain files.
 *
 * A queue is a directory; a message is a file; sending is write, fsync and
 * an atomic rename; claiming is a rename.  This header is the whole public
 * interface.  Every function that can fail returns -1 (or NULL) with errno
 * set and never prints or exits; mq_strerror() turns the errno values that
 * libmq gives a queue-specific meaning into text.  Functions answering a
 * yes/no question return 1 for yes, 0 for no, -1 on error.
 */
#ifndef MQ_H
#define MQ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define MQ_VERSION "0.1.0"

/* Sizes of the text buffers the API fills, terminating NUL included. */
#define MQ_ID_SIZE 17       /* 16 hex digits */
#define MQ_RECEIPT_SIZE 48  /* ID.ATTEMPT.TOKEN */
#define MQ_LEASE_NAME_SIZE 72 /* RECEIPT.DEADLINE */

/* Defaults for a queue whose config does not say otherwise. */
#define MQ_DEFAULT_LEASE_S 60
#define MQ_DEFAULT_MAX_ATTEMPTS 5
#define MQ_DEFAULT_BACKOFF_S 1
#define MQ_STALE_TMP_S (36 * 3600)

/* errno values with a queue-specific meaning (see mq_strerror). */
#define MQ_ESTALE ESTALE     /* receipt no longer holds its message */
#define MQ_EBADRECEIPT EBADR /* text is not a receipt */
#define MQ_ENOTQUEUE ENOTDIR /* directory is not a queue */
#define MQ_EBADMSG EBADMSG   /* message file is damaged */
#define MQ_EBADCONF ENOEXEC  /* config file is malformed */
#define MQ_EFORMAT EPROTO    /* message format version unknown */
#define MQ_EBADKEY EKEYREJECTED  /* not an mq key file */
#define MQ_EKEYPERM EKEYEXPIRED  /* secret key readable by others */
#define MQ_ENOKEY ENOKEY         /* sealed, and no key to open it */
#define MQ_EBADSIG EBADE         /* signature does not match */
#define MQ_EUNTRUSTED EKEYREVOKED /* signed by a key not trusted */
#define MQ_EUNSIGNED ENOMSG      /* unsigned, signatures required */
#define MQ_EOTHERQUEUE EXDEV     /* signed for another queue or id */
#define MQ_ETOOBIG EFBIG         /* larger than the queue allows */
#define MQ_EBADHEADER EILSEQ     /* header name or value not allowed */

struct mq_queue;
struct mq_draft;
struct mq_waiter;

/* An Ed25519 key pair (libsodium layout: sk holds the seed and pk). */
struct mq_key {
	unsigned char pk[32];
	unsigned char sk[64];
};

struct mq_pubkey {
	unsigned char pk[32];
};

#define MQ_HEADER_MAX 4096

/* How mq_draft_new writes a message. */
struct mq_send_opts {
	int compress;                 /* MQ_COMPRESS_* */
	const struct mq_key *sign;    /* sign with this key, or NULL */
	const struct mq_pubkey *seal_to; /* seal the body to this key */
	const char *const *headers;   /* "name=value" ..., NULL-terminated */
	int priority;                 /* 0 to 9, higher first */
	int64_t not_before_ns;        /* deliver no earlier; 0: at once */
	unsigned ttl_s;               /* expire unreceived after; 0: config */
	const char *dedup_key;        /* idempotency key, or NULL */
	const char *group;            /* message group, or NULL */
};
#define MQ_COMPRESS_CONFIG 0          /* as the queue's config says */
#define MQ_COMPRESS_NO 1
#define MQ_COMPRESS_YES 2
#define MQ_COMPRESS_AUTO 3            /* when it saves space */

struct mq_config {
	unsigned lease_s;
	unsigned max_attempts;
	unsigned backoff_s;
	int compress;                 /* MQ_COMPRESS_NO or _AUTO */
	unsigned compress_min;        /* auto: smallest body to try */
	int require_signature;
	char trusted_keys[256];       /* file or directory of .pub, or "" */
	char key[256];                /* secret key opening sealed bodies */
	uint64_t max_size;            /* largest body accepted, 0: any */
	unsigned ttl_s;               /* default expiry, 0: never */
	int expired_drop;             /* drop expired messages, not dead */
	unsigned dedup_window_s;      /* how long an idempotency key holds */
	char subscribers[1024];       /* topic: subscriber paths, ':' between */
	char topic[256];              /* subscriber: its topic's path */
};

/* A claimed message.  fd is open on the message file and holds its lock. */
struct mq_msg {
	char id[MQ_ID_SIZE];
	char receipt[MQ_RECEIPT_SIZE];
	unsigned attempt;      /* 1 on first delivery */
	int fd;
	off_t body_offset;
	off_t body_size;
	int64_t sent_ns;       /* enqueue time, ns since the epoch */
	int64_t deadline_ns;   /* lease end */
	char lease_name[MQ_LEASE_NAME_SIZE]; /* its name in cur/ */
	int feeder;            /* -1, or what mq_msg_body_fd's decoding
				  child reports: a byte (its errno) if it
				  failed, the end of the pipe if not */
	/* From the message header (mq-queue(5)). */
	off_t raw_size;        /* body size once decoded */
	int compressed;
	int sealed;
	int signed_;
	unsigned char signer[32];
	int priority;
	int64_t expires_ns;    /* 0: never */
	char group[132];       /* "" when in no group */
	char queue[256];       /* the queue it was sent to (a topic, for a
				  subscriber's copy) */
	size_t header_len;
	char header[MQ_HEADER_MAX];
};

struct mq_init_opts {
	mode_t mode;           /* directory mode, files get mode & 0666 */
	gid_t gid;             /* (gid_t)-1: leave as created */
	unsigned lease_s;      /* 0: keep/default */
	unsigned max_attempts; /* 0: keep/default */
	unsigned backoff_s;    /* 0: keep/default; see set_backoff */
	int set_backoff;
	const char *const *settings; /* more "key = value" config lines */
};

/* Resolve a queue operand: containing '/', a path, without trailing
 * slashes; else a name under mq_root().  Writes at most size bytes; -1
 * ENAMETOOLONG or EINVAL. */
int mq_resolve(const char *operand, char *path, size_t size);

/* The directory bare queue names live in: $MQ_ROOT, else /var/spool/mq for
 * root, else $XDG_DATA_HOME/mq or ~/.local/share/mq. */
const char *mq_root(char *buf, size_t size);

/* Create QUEUE or repair a missing part of it; harmless when complete. */
int mq_init(const char *operand, const struct mq_init_opts *opts);

/* Make queue a subscriber of topic (on), or no longer (off): a message
 * sent to a topic is delivered to each of its subscribers. */
int mq_subscribe(const char *topic, const char *queue, int on);

/* Open an existing queue.  Returns NULL with errno (MQ_ENOTQUEUE when the
 * directory lacks the queue's folders). */
struct mq_queue *mq_open(const char *operand);
void mq_close(struct mq_queue *q);
const char *mq_path(const struct mq_queue *q);
/* The queue's settings, parsed from its config file on first use. */
int mq_config(struct mq_queue *q, struct mq_config *out);

/* Sending.  A draft is a message being written in tmp/; it becomes
 * visible only through mq_commit.  opts may be NULL for a plain message;
 * it must live until mq_draft_close.  Fails with MQ_EBADHEADER for a
 * header name or value that is not allowed. */
struct mq_draft *mq_draft_new(struct mq_queue *q,
    const struct mq_send_opts *opts);
int mq_draft_write(struct mq_draft *d, const void *buf, size_t n);
/* Copy fd to EOF into the draft; bounded memory.  On failure
 * *input_failed tells whether reading fd (1) or the queue (0) failed. */
int mq_draft_copy(struct mq_draft *d, int fd, int *input_failed);
const char *mq_draft_id(const struct mq_draft *d);
/* Take ids from the counter n at a time for a run of sends from this
 * process: one locked counter update per n messages.  Ids left unused
 * when a group is committed, or when this is called, are skipped, so a
 * message's id is never older than the group it is committed with. */
void mq_send_ahead(struct mq_queue *q, unsigned n);
/* Finish the body: flush compression and sealing, release buffers.
 * mq_commit does it for drafts not yet closed.  Fails with MQ_ETOOBIG
 * when the body exceeds the queue's max-size. */
int mq_draft_close(struct mq_draft *d);
/* Close the draft and its file now, for a caller gathering many drafts
 * for one mq_commit: a parked draft holds no descriptor, and its data is
 * synced with the rest of the group, by one syncfs. */
int mq_draft_park(struct mq_draft *d);
/* Make drafts durable and visible as one group: data synced, renamed into
 * new/, directories synced.  Returns how many drafts, from the first, were
 * committed; fewer than n means errno says why the rest were not (they are
 * removed).  A committed message survives a crash.  q may be another
 * handle of the drafts' queue, for a thread that commits one group while
 * the drafts' handle writes the next; q is not to be used by two threads
 * at once, and parked drafts need nothing of their own handle. */
size_t mq_commit(struct mq_queue *q, struct mq_draft **d, size_t n);
/* Remove an uncommitted draft's file and free it; safe on committed ones. */
void mq_draft_free(struct mq_draft *d);

/* Receiving.  Claim the oldest ready message, first returning expired
 * leases and due retries to the ready set.  lease_s 0 means the queue's
 * lease.  keep_lock: the caller stays alive while it holds the message,
 * so its death gives the message back at once.  Returns 1 with *m filled,
 * 0 when nothing is ready, -1 on error. */
int mq_claim(struct mq_queue *q, unsigned lease_s, int keep_lock,
    struct mq_msg *m);
/* Claim up to max ready messages at once, in the order mq_claim takes
 * them, into m[0..max-1], with one directory sync for all of them instead
 * of one each.  Returns how many (0 when nothing is ready), or -1 on
 * error with none held. */
int mq_claim_many(struct mq_queue *q, unsigned lease_s, int keep_lock,
    struct mq_msg *m, size_t max);
/* Called for each file a claim or a redrive moves to quarantine/ (not a
 * message, or a damaged one), with the name it had and why; fn NULL to
 * stop. */
void mq_set_quarantine_hook(struct mq_queue *q,
    void (*fn)(const char *name, int err, void *arg), void *arg);
/* Close a claimed message's descriptors (does not ack). */
void mq_msg_close(struct mq_msg *m);
/* Copy the decoded body to fd.  Returns 0, or -1 with errno (EBADMSG when
 * the file is damaged, MQ_ENOKEY when sealed to a key we lack). */
int mq_msg_copy_body(struct mq_queue *q, const struct mq_msg *m, int fd);
/* The same, and durable before it returns when fd is a regular file (a
 * pipe or a device is only copied to): its data synced, and the directory
 * of path, the name fd was opened by, synced too. */
int mq_msg_save_body(struct mq_queue *q, const struct mq_msg *m, int fd,
    const char *path);
/* A fresh, unlocked descriptor that reads the decoded body, for a
 * handler: the file itself, or a pipe fed by a decoding child, which
 * reports a failure part way through on m->feeder before the pipe ends.
 * Like mq_handler_spawn, it waits for a child: SIGCHLD must not be
 * ignored, or the kernel reaps the child before its status is seen. */
int mq_msg_body_fd(struct mq_queue *q, struct mq_msg *m);
/* 1 with errno set when the decoding child of m's body reported a
 * failure (what a handler read of it then was short), else 0. */
int mq_msg_feed_failed(const struct mq_msg *m);
/* Iterate user headers: *it starts at 0; returns 1 with name and value
 * copied (NUL-terminated, truncated to their sizes), 0 at the end. */
int mq_msg_header_next(const struct mq_msg *m, size_t *it, char *name,
    size_t nsize, char *value, size_t vsize);

/* Settling a claim.  All refuse a receipt that no longer holds its
 * message with MQ_ESTALE, and text that is not a receipt with
 * MQ_EBADRECEIPT. */
int mq_ack(struct mq_queue *q, const char *receipt);
/* Give the message back, ready again after delay_s (0: at once).  A
 * message that has used up its attempts goes to dead/ instead; *dead is
 * set to 1 then (dead may be NULL). */
int mq_retry(struct mq_queue *q, const char *receipt, unsigned delay_s,
    int *dead);
/* Give back without counting the delivery (the body never left us). */
int mq_unclaim(struct mq_queue *q, const char *receipt);
/* Move straight to dead/. */
int mq_fail(struct mq_queue *q, const char *receipt);
/* Move the lease end to now + lease_s. */
int mq_extend(struct mq_queue *q, const char *receipt, unsigned lease_s);
/* The same for a message this process claimed, without a lookup; m's
 * lease name and deadline follow. */
int mq_msg_extend(struct mq_queue *q, struct mq_msg *m, unsigned lease_s);
/* Ack a message this process claimed, without a lookup. */
int mq_msg_ack(struct mq_queue *q, struct mq_msg *m);
/* 1 if text is a well-formed receipt, or message id, else 0. */
int mq_receipt_valid(const char *receipt);
int mq_id_valid(const char *id);

/* Waiting, without missing a send: arm the waiter, try to claim, and
 * only if nothing was ready, wait.  mq_waiter_arm discards old events and
 * watches every bucket, so a send after it always wakes the wait.
 * mq_waiter_timeout returns expired leases and due retries to the ready
 * set and sets *ms to how long a wait may sleep (0: something became ready,
 * or limit_ms passed; -1 forever) before a lease or delay runs out or, where
 * changes cannot be watched (NFS, a dead lock holder), a poll is due.
 * mq_waiter_wait sleeps that long or until an event; it returns 0, or -1
 * with EINTR when a signal arrived. */
struct mq_waiter *mq_waiter_new(struct mq_queue *q);
int mq_waiter_arm(struct mq_waiter *w);
int mq_waiter_timeout(struct mq_waiter *w, int limit_ms, int *ms);
int mq_waiter_wait(struct mq_waiter *w, int limit_ms);
int mq_waiter_fd(const struct mq_waiter *w);	/* -1 when polling */
void mq_waiter_free(struct mq_waiter *w);

/* Handlers.  Start argv with the body of m on its standard input and
 * MQ_QUEUE, MQ_ID, MQ_RECEIPT, MQ_ATTEMPT in its environment.  Returns
 * the pid and a pidfd; -1 with *exec_err set when exec failed (the
 * message is untouched), or with errno on other errors.  own_group puts
 * the handler in a process group of its own, out of reach of a terminal's
 * Ctrl-C meant for the caller.  The caller must not ignore SIGCHLD: the
 * kernel would reap the handler before mq_handler_wait saw its status. */
pid_t mq_handler_spawn(struct mq_queue *q, struct mq_msg *m,
    char *const argv[], int own_group, int *pidfd, int *exec_err);
/* Wait for the handler, renewing the lease of m while it runs; closes
 * pidfd.  Returns 0 with the wait status, or -1. */
int mq_handler_wait(struct mq_queue *q, struct mq_msg *m, pid_t pid,
    int pidfd, unsigned lease_s, int *wstatus);

/* How a handler's exit settles its message: 0 acks (MQ_ACKED), 100 sends
 * it to dead/ (MQ_DEADLETTERED), anything else, a signal included, releases it
 * for redelivery after retry_delay_s (MQ_RETRIED; MQ_DEADLETTERED when that used
 * up its attempts).  Closes m's descriptor first so the next consumer can
 * take the message at once.  Returns the outcome or -1 (MQ_ESTALE: the
 * lease was lost, the message is another consumer's now).  A handler that
 * exited 0 after its body's decoding failed part way has not had the
 * message: it is released as for a failure, and -1 returned with the
 * decoder's errno. */
enum mq_outcome { MQ_ACKED, MQ_RETRIED, MQ_DEADLETTERED };
#define MQ_EXIT_PERMANENT 100
int mq_handler_settle(struct mq_queue *q, struct mq_msg *m, int wstatus,
    unsigned retry_delay_s);
/* Retry delay for a message that failed its attempt-th delivery:
 * backoff_s * 2^(attempt-1), at most an hour. */
unsigned mq_backoff(const struct mq_config *c, unsigned attempt);

/* Inspection: reading a queue without changing it, so it works for a
 * user who may only read.  mq_walk calls fn for each message in the
 * states asked for (ready in id order, other folders in directory
 * order); fn returning non-zero stops the walk with that value. */
enum mq_state {
	MQ_READY, MQ_DELAYED, MQ_INFLIGHT, MQ_DEAD, MQ_QUARANTINED, MQ_NSTATES
};
#define MQ_STATE_BIT(s) (1u << (s))
#define MQ_ALL_STATES ((1u << MQ_NSTATES) - 1)
struct mq_entry {
	enum mq_state state;
	char id[MQ_ID_SIZE];     /* "" in quarantine when not a message name */
	unsigned attempts;       /* deliveries so far */
	int64_t when_ns;         /* delayed: due; in flight: lease end */
	char reason[64];         /* dead: attempts|failed|expired; quarantine */
	char path[320];          /* relative to the queue directory */
	int dirfd;               /* the folder holding it, for openat */
	const char *name;        /* its name in that folder */
	struct stat st;
};
int mq_walk(struct mq_queue *q, unsigned states,
    int (*fn)(const struct mq_entry *, void *), void *arg);
const char *mq_state_name(enum mq_state s);
int mq_state_parse(const char *name);	/* -1 if unknown */

/* Counts come from names alone.  The oldest ready message is sought in
 * the lowest bucket of each priority and among the first ids of the
 * others, and every lease is stated; MQ_STATS_BYTES states every file
 * to sum the bytes, which costs about a microsecond per message. */
struct mq_stats {
	uint64_t count[MQ_NSTATES];
	uint64_t bytes;              /* message files, all states; 0 unless
	                                MQ_STATS_BYTES */
	int64_t oldest_ready_ns;     /* send time of the oldest ready; 0 */
	int64_t oldest_lease_ns;     /* claim time of the oldest lease; 0 */
};
#define MQ_STATS_BYTES 1u
int mq_stats(struct mq_queue *q, struct mq_stats *s, unsigned flags);
/* Open message id (any state) for reading, not claiming: m gets its
 * header and an fd; read the body with mq_msg_copy_body. */
int mq_peek(struct mq_queue *q, const char *id, struct mq_msg *m,
    enum mq_state *state);
/* The same for an entry mq_walk gave, without looking for it again. */
int mq_peek_entry(struct mq_queue *q, const struct mq_entry *e,
    struct mq_msg *m);

/* Repair.  mq_redrive moves dead letters back to ready, at their old
 * place in FIFO order: all of them, or those whose id is in ids
 * (NULL-terminated), and only those that died at least min_age_s and at
 * most max_age_s ago (0: no bound).  reset starts their attempt count
 * afresh.  mq_purge removes every message in the given states (never in
 * flight).  Both return how many messages they moved or removed. */
long mq_redrive(struct mq_queue *q, const char *const *ids,
    unsigned min_age_s, unsigned max_age_s, int reset);
long mq_purge(struct mq_queue *q, unsigned states);

/* Checking.  mq_fsck finds what a crash or a careless admin leaves and,
 * with fix, repairs it, never deleting a message (damaged files go to
 * quarantine/).  It calls fn once per problem; returns the number of
 * problems, or -1. */
struct mq_problem {
	const char *path;        /* relative to the queue directory */
	const char *what;        /* what is wrong */
	const char *action;      /* what fixing does / did */
	int fixed;               /* 1 fixed, 0 only found, -1 fix failed */
	int err;                 /* errno when the fix failed */
};
long mq_fsck(const char *operand, int fix,
    void (*fn)(const struct mq_problem *, void *), void *arg);

/* Keys (mq-keygen(1)).  mq_keygen writes NAME.key (0600) and NAME.pub,
 * refusing to overwrite.  Loading a secret key readable by group or
 * others fails with MQ_EKEYPERM. */
int mq_keygen(const char *name);
int mq_key_load(const char *path, struct mq_key *k);
int mq_pubkey_load(const char *path, struct mq_pubkey *p);
/* Trust a public key file, or every *.pub in a directory: claims then
 * deliver only messages signed by a trusted key (none, from a directory
 * with no key in it). */
int mq_trust(struct mq_queue *q, const char *path);
/* The secret key that opens bodies sealed to it. */
int mq_set_key(struct mq_queue *q, const char *path);

/* Durations: seconds, or a number with suffix s, m, h or d.  Returns 0 or
 * -1 EINVAL/ERANGE. */
int mq_parse_duration(const char *s, unsigned *seconds);
/* Sizes: bytes, or a number with suffix k (or K), M or G, powers of
 * 1024.  Returns 0 or -1 EINVAL/ERANGE. */
int mq_parse_size(const char *s, uint64_t *bytes);

/* Text for err, covering the errno values above. */
const char *mq_strerror(int err);
/* Map errno to a sysexits-style exit status. */
int mq_exit_status(int err);

#endif
