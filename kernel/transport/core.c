// SPDX-License-Identifier: GPL-2.0
/*
 * Transport core: the registry of transports and the wire header checks
 * every transport applies before it acts on a message (cvm_wire.h,
 * "Validation").
 */
#include <linux/bvec.h>
#include <linux/crc32c.h>
#include <linux/cvm_wire.h>
#include <linux/highmem.h>
#include <linux/mutex.h>
#include <linux/string.h>

#include "transport.h"

#define CVM_TRANSPORT_MAX	4

static DEFINE_MUTEX(cvm_transport_lock);
static const struct cvm_transport_ops *cvm_transports[CVM_TRANSPORT_MAX];

int cvm_transport_register(const struct cvm_transport_ops *ops)
{
	int i, free = -1, ret = 0;

	if (ops->api_version != CVM_TRANSPORT_API_VERSION ||
	    strnlen(ops->name, CVM_TRANSPORT_NAME_LEN) >= CVM_TRANSPORT_NAME_LEN)
		return -EINVAL;

	mutex_lock(&cvm_transport_lock);
	for (i = 0; i < CVM_TRANSPORT_MAX; i++) {
		if (!cvm_transports[i]) {
			if (free < 0)
				free = i;
		} else if (!strcmp(cvm_transports[i]->name, ops->name)) {
			ret = -EEXIST;
			goto out_unlock;
		}
	}
	if (free < 0)
		ret = -ENOSPC;
	else
		cvm_transports[free] = ops;
out_unlock:
	mutex_unlock(&cvm_transport_lock);
	return ret;
}

void cvm_transport_unregister(const struct cvm_transport_ops *ops)
{
	int i;

	mutex_lock(&cvm_transport_lock);
	for (i = 0; i < CVM_TRANSPORT_MAX; i++)
		if (cvm_transports[i] == ops)
			cvm_transports[i] = NULL;
	mutex_unlock(&cvm_transport_lock);
}

const struct cvm_transport_ops *cvm_transport_find(const char *name)
{
	const struct cvm_transport_ops *ops = NULL;
	int i;

	mutex_lock(&cvm_transport_lock);
	for (i = 0; i < CVM_TRANSPORT_MAX; i++) {
		if (cvm_transports[i] && !strcmp(cvm_transports[i]->name, name)) {
			ops = cvm_transports[i];
			break;
		}
	}
	mutex_unlock(&cvm_transport_lock);
	return ops;
}

int cvm_transports_init(void)
{
	int ret;

	ret = cvm_tcp_init();
	if (ret)
		return ret;
	ret = cvm_rdma_init();
	if (ret)
		goto out_tcp_exit;
	return 0;

out_tcp_exit:
	cvm_tcp_exit();
	return ret;
}

void cvm_transports_exit(void)
{
	cvm_rdma_exit();
	cvm_tcp_exit();
}

static void cvm_conn_release(struct kref *ref)
{
	struct cvm_conn *conn = container_of(ref, struct cvm_conn, ref);

	conn->ops->release_conn(conn);
}

void cvm_conn_put(struct cvm_conn *conn)
{
	kref_put(&conn->ref, cvm_conn_release);
}

u32 cvm_wire_hdr_crc(const struct cvm_wire_hdr *hdr)
{
	return crc32c(~0U, hdr, offsetof(struct cvm_wire_hdr, hdr_crc)) ^ ~0U;
}

void cvm_wire_hdr_seal(struct cvm_wire_hdr *hdr)
{
	hdr->hdr_crc = cpu_to_le32(cvm_wire_hdr_crc(hdr));
}

u32 cvm_crc32c_bvec(const struct bio_vec *bv, unsigned int nr, u32 len)
{
	u32 crc = ~0U;
	unsigned int i;

	for (i = 0; i < nr && len; i++) {
		u32 n = min(len, bv[i].bv_len);
		void *p = kmap_local_page(bv[i].bv_page);

		crc = crc32c(crc, p + bv[i].bv_offset, n);
		kunmap_local(p);
		len -= n;
	}
	return crc ^ ~0U;
}

static bool cvm_wire_op_ranged(u8 op)
{
	switch (op) {
	case CVM_WIRE_OP_READ:
	case CVM_WIRE_OP_WRITE:
	case CVM_WIRE_OP_WRITE_ZEROES:
	case CVM_WIRE_OP_DISCARD:
	case CVM_WIRE_OP_PREALLOC:
		return true;
	default:
		return false;
	}
}

static u16 cvm_wire_op_req_flags(u8 op)
{
	switch (op) {
	case CVM_WIRE_OP_HELLO:
		return CVM_WIRE_F_DATA_CRC;
	case CVM_WIRE_OP_WRITE:
		return CVM_WIRE_F_DATA_CRC | CVM_WIRE_F_FUA;
	case CVM_WIRE_OP_WRITE_ZEROES:
		return CVM_WIRE_F_FUA | CVM_WIRE_F_NOUNMAP;
	case CVM_WIRE_OP_DISCARD:
	case CVM_WIRE_OP_REMOVE:
	case CVM_WIRE_OP_ROLLBACK:
	case CVM_WIRE_OP_PREALLOC:
		return CVM_WIRE_F_FUA;
	default:
		return 0;
	}
}

/* Does the opcode use @snap_seq / @snap_id?  Else they must be zero. */
static bool cvm_wire_op_snap_seq(u8 op)
{
	return op == CVM_WIRE_OP_WRITE || op == CVM_WIRE_OP_WRITE_ZEROES ||
	       op == CVM_WIRE_OP_DISCARD || op == CVM_WIRE_OP_REMOVE ||
	       op == CVM_WIRE_OP_PREALLOC;
}

static bool cvm_wire_op_snap_id(u8 op)
{
	return op == CVM_WIRE_OP_READ || op == CVM_WIRE_OP_ROLLBACK;
}

u32 cvm_wire_payload_len(const struct cvm_wire_hdr *hdr)
{
	u16 flags = le16_to_cpu(hdr->flags);

	if (flags & CVM_WIRE_F_REPLY)
		return le32_to_cpu(hdr->length);
	switch (hdr->opcode) {
	case CVM_WIRE_OP_HELLO:
	case CVM_WIRE_OP_WRITE:
		return le32_to_cpu(hdr->length);
	default:
		return 0;
	}
}

u32 cvm_wire_reply_max_len(const struct cvm_wire_hdr *hdr)
{
	switch (hdr->opcode) {
	case CVM_WIRE_OP_HELLO:
		return sizeof(struct cvm_wire_hello);
	case CVM_WIRE_OP_READ:
	case CVM_WIRE_OP_LIST:
		return le32_to_cpu(hdr->length);
	case CVM_WIRE_OP_STAT:
		return sizeof(struct cvm_wire_stat);
	default:
		return 0;
	}
}

/* The request's @length rule, per opcode. */
static const char *cvm_wire_check_req_len(u8 op, u32 len)
{
	switch (op) {
	case CVM_WIRE_OP_HELLO:
		if (len != sizeof(struct cvm_wire_hello))
			return "HELLO length is not the hello payload size";
		return NULL;
	case CVM_WIRE_OP_READ:
	case CVM_WIRE_OP_WRITE:
		if (!len || len > CVM_WIRE_MAX_DATA_LEN)
			return "length is zero or above CVM_WIRE_MAX_DATA_LEN";
		return NULL;
	case CVM_WIRE_OP_WRITE_ZEROES:
	case CVM_WIRE_OP_DISCARD:
	case CVM_WIRE_OP_PREALLOC:
		if (!len)
			return "length is zero";
		return NULL;
	case CVM_WIRE_OP_LIST:
		if (!len || len > CVM_WIRE_MAX_DATA_LEN ||
		    len % sizeof(struct cvm_wire_list_ent))
			return "LIST length is not a valid entry array size";
		return NULL;
	default:
		if (len)
			return "length must be zero for this opcode";
		return NULL;
	}
}

const char *cvm_wire_check_hdr(const struct cvm_wire_hdr *hdr, bool is_reply)
{
	u16 flags = le16_to_cpu(hdr->flags);
	u64 off = le64_to_cpu(hdr->offset);
	u32 len = le32_to_cpu(hdr->length);
	u8 op = hdr->opcode;
	u16 allowed;
	const char *why;

	if (le32_to_cpu(hdr->magic) != CVM_WIRE_MAGIC)
		return "bad magic";
	if (hdr->version != CVM_WIRE_VERSION)
		return "bad version";
	if (le32_to_cpu(hdr->hdr_crc) != cvm_wire_hdr_crc(hdr))
		return "header CRC mismatch";
	if (op < 1 || op > CVM_WIRE_OP_MAX)
		return "unknown opcode";
	if (flags & ~CVM_WIRE_F_ALL)
		return "unknown flag bits";
	if (!!(flags & CVM_WIRE_F_REPLY) != is_reply)
		return is_reply ? "request where a reply was expected" :
				  "reply flag set on a request";
	allowed = is_reply ? (CVM_WIRE_F_REPLY | CVM_WIRE_F_DATA_CRC) :
			     cvm_wire_op_req_flags(op);
	if (flags & ~allowed)
		return "flag not allowed for this opcode";
	if (hdr->reserved0 || hdr->reserved1)
		return "reserved field is not zero";
	if (!is_reply && hdr->status)
		return "status is not zero in a request";
	if (is_reply && le16_to_cpu(hdr->status) > CVM_WIRE_STATUS_MAX)
		return "unknown status";

	if (is_reply) {
		if (len > CVM_WIRE_MAX_DATA_LEN)
			return "reply length above CVM_WIRE_MAX_DATA_LEN";
	} else {
		why = cvm_wire_check_req_len(op, len);
		if (why)
			return why;
	}
	if (!cvm_wire_payload_len(hdr) && (flags & CVM_WIRE_F_DATA_CRC))
		return "data CRC flag on a message without payload";
	if (!(flags & CVM_WIRE_F_DATA_CRC) && hdr->data_crc)
		return "data_crc is not zero without the data CRC flag";
	if (le16_to_cpu(hdr->shard) >= CVM_WIRE_MAX_SHARDS)
		return "shard out of range";

	if (cvm_wire_op_ranged(op)) {
		if (off % CVM_WIRE_SECTOR_SIZE ||
		    (!is_reply && len % CVM_WIRE_SECTOR_SIZE))
			return "offset or length not sector aligned";
		if (off > CVM_WIRE_MAX_OBJECT_SIZE ||
		    (!is_reply && off + len > CVM_WIRE_MAX_OBJECT_SIZE))
			return "range beyond CVM_WIRE_MAX_OBJECT_SIZE";
	} else if (off) {
		return "offset must be zero for this opcode";
	}
	if (is_reply)
		return NULL;

	if (!cvm_wire_op_snap_seq(op) && hdr->snap_seq)
		return "snap_seq must be zero for this opcode";
	if (!cvm_wire_op_snap_id(op) && hdr->snap_id)
		return "snap_id must be zero for this opcode";
	if (op == CVM_WIRE_OP_HELLO &&
	    (hdr->volume_id || hdr->object_no || hdr->shard ||
	     hdr->map_epoch || hdr->attach_epoch))
		return "HELLO with nonzero object or epoch fields";
	if (op == CVM_WIRE_OP_FLUSH &&
	    (hdr->volume_id || hdr->object_no || hdr->shard))
		return "FLUSH with nonzero object fields";
	return NULL;
}
