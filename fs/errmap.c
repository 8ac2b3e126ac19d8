/* errmap.c - the one mapping from key/value outcomes and errors to errno (errmap.h). */
#include "fs/errmap.h"

#include <errno.h>

#include "kv/cmd.h"
#include "kv/proto.h"

static int kv_err_to_errno(int kv_err)
{
	switch (kv_err) {
	case KV_OK:
		return 0;
	case KV_ENOENT:
		return ENOENT;
	case KV_EEXIST:
		return EEXIST;
	case KV_ENOTDIR:
		return ENOTDIR;
	case KV_EISDIR:
		return EISDIR;
	case KV_ENOTEMPTY:
		return ENOTEMPTY;
	case KV_EINVAL:
		return EINVAL;
	case KV_ENAMETOOLONG:
		return ENAMETOOLONG;
	case KV_EFBIG:
		return EFBIG;
	case KV_EPERM:
		return EPERM;
	case KV_ENOMEM:
		return ENOMEM;
	default:
		/* KV_ESTALE, KV_ESESSION_EXPIRED (after its one retry), KV_ECORRUPT, KV_EVERSION,
		 * KV_EIO and anything unknown: the caller cannot do better than an I/O error */
		return EIO;
	}
}

int fs_errno(int status, int kv_err)
{
	switch (status) {
	case KV_STATUS_OK:
		return kv_err_to_errno(kv_err);
	case KV_STATUS_NOT_APPLIED:
		return ETIMEDOUT; /* certainly not applied: the caller may retry */
	case KV_STATUS_BAD_REQUEST:
		return EINVAL;
	case KV_STATUS_UNKNOWN: /* it may have been applied: say so */
	case KV_STATUS_SHUTDOWN:
	default:
		return EIO;
	}
}
