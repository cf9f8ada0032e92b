/*
 * error.c - what a failure means to the person reading it.
 *
 * libmq reports failures as errno values, borrowing a few to carry
 * queue-specific meanings (a stale receipt, a damaged message); this file
 * gives those their own text and sorts every errno into the sysexits-style
 * exit status the programs document: temporary conditions (75) a caller
 * may retry, permanent ones it should not.
 */
#include <errno.h>
#include <string.h>

#include "mq_impl.h"

const char *
mq_strerror(int err)
{
	switch (err) {
	case MQ_ESTALE:
		return "Stale receipt: lease expired or message already settled";
	case MQ_EBADRECEIPT:
		return "Not a receipt";
	case MQ_ENOTQUEUE:
		return "Not a queue (run mq-init)";
	case MQ_EBADMSG:
		return "Damaged message file";
	case MQ_EBADCONF:
		return "Malformed queue config";
	case MQ_EFORMAT:
		return "Unknown message format version";
	case MQ_EBADKEY:
		return "Not an mq key file";
	case MQ_EKEYPERM:
		return "Secret key is readable by others (chmod 600)";
	case MQ_ENOKEY:
		return "Sealed to a key this consumer does not have";
	case MQ_EBADSIG:
		return "Bad signature";
	case MQ_EUNTRUSTED:
		return "Signed by a key that is not trusted";
	case MQ_EUNSIGNED:
		return "Unsigned, and signatures are required";
	case MQ_EOTHERQUEUE:
		return "Signed for another queue";
	case MQ_ETOOBIG:
		return "Larger than the queue's max-size";
	case MQ_EBADHEADER:
		return "Header name or value not allowed";
	default:
		return strerror(err);
	}
}

int
mq_exit_status(int err)
{
	switch (err) {
	case ENOENT:
	case MQ_ENOTQUEUE:
		return 66;	/* EX_NOINPUT */
	case EACCES:
	case EPERM:
	case EROFS:
		return 77;	/* EX_NOPERM */
	case EINVAL:
	case ENAMETOOLONG:
	case MQ_EBADRECEIPT:
	case MQ_EBADMSG:
	case MQ_EFORMAT:
	case MQ_EBADSIG:
	case MQ_EUNTRUSTED:
	case MQ_EUNSIGNED:
	case MQ_EOTHERQUEUE:
	case MQ_ETOOBIG:
	case MQ_EBADHEADER:
		return 65;	/* EX_DATAERR */
	case MQ_EBADKEY:
	case MQ_EKEYPERM:
	case MQ_ENOKEY:
		return 78;	/* EX_CONFIG */
	case MQ_EBADCONF:
		return 78;	/* EX_CONFIG */
	case EIO:
		return 74;	/* EX_IOERR */
	case EINTR:
	case EAGAIN:
	case ENOMEM:
	case ENOSPC:
	case EDQUOT:
	case EMFILE:
	case ENFILE:
	case EBUSY:
	case ETIMEDOUT:
	case MQ_ESTALE:
		return 75;	/* EX_TEMPFAIL */
	default:
		return 71;	/* EX_OSERR */
	}
}
