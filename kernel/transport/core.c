// SPDX-License-Identifier: GPL-2.0
/*
 * Transport core: the registry of transports and the protocol every
 * transport follows, so that it is written once: the wire header checks
 * (cvm_wire.h, "Validation"), HELLO on both ends (versions, status to
 * errno, the per-connection limits), reply headers and their checks, the
 * budgets of requests in flight, and the lifetime of a listener's
 * connections.  tcp.c and rdma.c move bytes; they call in here.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/crc32c.h>
#include <linux/cvm_wire.h>
#include <linux/highmem.h>
#include <linux/mutex.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "transport.h"

#define CVM_TRANSPORT_MAX	4

static DEFINE_MUTEX(cvm_transport_lock);
static const struct cvm_transport_ops *cvm_transports[CVM_TRANSPORT_MAX];

/* Target: connections on this module's listeners, bytes charged to them. */
static atomic_t cvm_xprt_conns = ATOMIC_INIT(0);
static atomic64_t cvm_xprt_pinned = ATOMIC64_INIT(0);

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
	case CVM_WIRE_OP_AUTH:
		return CVM_WIRE_F_DATA_CRC;
	case CVM_WIRE_OP_WRITE:
		return CVM_WIRE_F_DATA_CRC | CVM_WIRE_F_FUA |
		       CVM_WIRE_F_VERSIONED;
	case CVM_WIRE_OP_LIST:
		return CVM_WIRE_F_INTENT;
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

/* May @shard_version be non-zero in this message? */
static bool cvm_wire_has_shard_version(const struct cvm_wire_hdr *hdr,
				       bool is_reply)
{
	switch (hdr->opcode) {
	case CVM_WIRE_OP_WRITE:
		return !is_reply &&
		       (le16_to_cpu(hdr->flags) & CVM_WIRE_F_VERSIONED);
	case CVM_WIRE_OP_SET_VERSION:
		return true;
	case CVM_WIRE_OP_BUMP:
		return is_reply;
	default:
		return false;
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
	case CVM_WIRE_OP_AUTH:
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
	case CVM_WIRE_OP_AUTH:
		if (len != sizeof(struct cvm_wire_hello))
			return "HELLO or AUTH length is not the hello payload size";
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
	if (hdr->reserved1)
		return "reserved field is not zero";
	if (hdr->shard_version && !cvm_wire_has_shard_version(hdr, is_reply))
		return "shard_version is not zero for this opcode";
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
	if (cvm_wire_op_handshake(op) &&
	    (hdr->volume_id || hdr->object_no || hdr->shard ||
	     hdr->map_epoch || hdr->attach_epoch))
		return "HELLO or AUTH with nonzero object or epoch fields";
	if (op == CVM_WIRE_OP_FLUSH &&
	    (hdr->volume_id || hdr->object_no || hdr->shard))
		return "FLUSH with nonzero object fields";
	return NULL;
}

u32 cvm_wire_req_data(const struct cvm_wire_hdr *hdr)
{
	return max(cvm_wire_payload_len(hdr), cvm_wire_reply_max_len(hdr));
}

/* Budgets */

void cvm_budget_init(struct cvm_budget *b)
{
	atomic_set(&b->inflight, 0);
	atomic_set(&b->data, 0);
	b->max_inflight = 0;
	b->max_data = 0;
}

bool cvm_xprt_budget_take(struct cvm_budget *b, struct cvm_xprt_req *req)
{
	u32 data = cvm_wire_req_data(&req->hdr);

	if (atomic_read(&b->inflight) >= (int)b->max_inflight ||
	    (u64)atomic_read(&b->data) + data > b->max_data)
		return false;
	atomic_inc(&b->inflight);
	atomic_add(data, &b->data);
	req->budget_data = data;
	req->in_budget = true;
	return true;
}

void cvm_xprt_budget_give(struct cvm_budget *b, struct cvm_xprt_req *req)
{
	if (!req->in_budget)
		return;
	atomic_dec(&b->inflight);
	atomic_sub(req->budget_data, &b->data);
	req->in_budget = false;
}

void cvm_conn_init(struct cvm_conn *conn, const struct cvm_transport_ops *ops,
		   enum cvm_conn_role role, const struct cvm_conn_cb *cb,
		   void *core_priv)
{
	conn->ops = ops;
	conn->cb = cb;
	conn->role = role;
	conn->core_priv = core_priv;
	kref_init(&conn->ref);
	conn->state = role == CVM_CONN_TARGET ? CVM_CONN_HELLO :
						CVM_CONN_CONNECTING;
	INIT_LIST_HEAD(&conn->lentry);
	cvm_budget_init(&conn->budget);
}

/* Target: receiving requests */

/*
 * cvm_xprt_check_req() - may the target act on this request header?
 * NULL if so.  A HELLO in a version we do not speak sets *refuse_version
 * (and returns NULL): answer it CVM_WIRE_STATUS_VERSION, then close.
 */
const char *cvm_xprt_check_req(struct cvm_conn *conn,
			       const struct cvm_wire_hdr *hdr,
			       bool *refuse_version)
{
	int state = READ_ONCE(conn->state);
	const char *why;

	*refuse_version = false;
	if (state == CVM_CONN_HELLO &&
	    le32_to_cpu(hdr->magic) == CVM_WIRE_MAGIC &&
	    hdr->opcode == CVM_WIRE_OP_HELLO &&
	    hdr->version != CVM_WIRE_VERSION) {
		pr_info_ratelimited("initiator %pISpc: HELLO version %u, we speak %u\n",
				    &conn->peer, hdr->version,
				    CVM_WIRE_VERSION);
		*refuse_version = true;
		return NULL;
	}
	why = cvm_wire_check_hdr(hdr, false);
	if (why)
		return why;
	if (state == CVM_CONN_HELLO && hdr->opcode != CVM_WIRE_OP_HELLO)
		return "request before HELLO";
	if (state != CVM_CONN_HELLO && hdr->opcode == CVM_WIRE_OP_HELLO)
		return "second HELLO";
	if (state == CVM_CONN_AUTH && hdr->opcode != CVM_WIRE_OP_AUTH)
		return "request before AUTH";
	if (state != CVM_CONN_AUTH && hdr->opcode == CVM_WIRE_OP_AUTH)
		return "AUTH out of turn";
	return NULL;
}

/*
 * cvm_xprt_charge_req() - count a validated request against the limits
 * its connection agreed, before the transport allocates anything for it
 * (HELLO, which comes before any, is not counted).  The transport gives
 * the charge back when it frees the request, reply sent.  Returns why the
 * peer is disconnected if it went beyond what it was granted.
 */
const char *cvm_xprt_charge_req(struct cvm_conn *conn, struct cvm_xprt_req *req)
{
	struct cvm_budget *b = &conn->budget;

	if (cvm_wire_op_handshake(req->hdr.opcode))
		return NULL;
	if (cvm_xprt_budget_take(b, req)) {
		atomic64_add(req->budget_data, &cvm_xprt_pinned);
		return NULL;
	}
	if (atomic_read(&b->inflight) >= (int)b->max_inflight)
		return "more requests in flight than agreed in HELLO";
	return "more payload bytes in flight than agreed in HELLO";
}

/* Target: @req's reply is on its way or it is freed: it leaves the budget. */
void cvm_xprt_uncharge_req(struct cvm_conn *conn, struct cvm_xprt_req *req)
{
	if (!req->in_budget)
		return;
	atomic64_sub(req->budget_data, &cvm_xprt_pinned);
	cvm_xprt_budget_give(&conn->budget, req);
}

u32 cvm_xprt_target_conns(void)
{
	return atomic_read(&cvm_xprt_conns);
}

u64 cvm_xprt_target_pinned(void)
{
	return atomic64_read(&cvm_xprt_pinned);
}

/*
 * cvm_xprt_hello_recv() - a HELLO payload arrived: take what the peer
 * announces into @conn and grant it limits (at most @cap_inflight, the
 * transport's own bound, e.g. rdma's receive queue).  NULL, or why the
 * HELLO is malformed.  The core's recv_req() then decides its status.
 */
const char *cvm_xprt_hello_recv(struct cvm_conn *conn,
				const struct cvm_wire_hello *h,
				u32 cap_inflight)
{
	const struct cvm_conn_limits *lim = conn->cb->limits;
	u32 want_inflight = le16_to_cpu(h->max_inflight);
	u32 want_data = le32_to_cpu(h->max_data);
	struct cvm_budget *b = &conn->budget;

	if (h->features || h->reserved1 || h->instance || h->reserved2)
		return "HELLO with unknown features";
	if (want_data && want_data < CVM_WIRE_MAX_DATA_LEN)
		return "HELLO asks for less than CVM_WIRE_MAX_DATA_LEN";
	if (memchr_inv(h->proof, 0, sizeof(h->proof)))
		return "HELLO request with a proof";
	if (!memchr_inv(h->nonce, 0, sizeof(h->nonce)))
		return "HELLO without a challenge";
	conn->hello.cluster_id = le64_to_cpu(h->cluster_id);
	conn->hello.host_id = le64_to_cpu(h->host_id);
	conn->hello.device_id = le32_to_cpu(h->device_id);
	conn->hello.key_id = le32_to_cpu(h->key_id);
	memcpy(conn->auth.host_nonce, h->nonce, CVM_WIRE_NONCE_LEN);

	b->max_inflight = min3(lim->max_inflight, cap_inflight, (u32)U16_MAX);
	if (want_inflight)
		b->max_inflight = min(b->max_inflight, want_inflight);
	b->max_data = max(lim->max_data, CVM_WIRE_MAX_DATA_LEN);
	if (want_data)
		b->max_data = min(b->max_data, want_data);
	return NULL;
}

/*
 * Target: the HELLO reply payload: what the peer said, grants, and our
 * challenge and proof (cvm_auth_challenge() made them).
 */
void cvm_xprt_hello_reply(const struct cvm_conn *conn,
			  struct cvm_wire_hello *out)
{
	memset(out, 0, sizeof(*out));
	out->cluster_id = cpu_to_le64(conn->hello.cluster_id);
	out->host_id = cpu_to_le64(conn->hello.host_id);
	out->device_id = cpu_to_le32(conn->hello.device_id);
	out->max_inflight = cpu_to_le16(conn->budget.max_inflight);
	out->max_data = cpu_to_le32(conn->budget.max_data);
	out->instance = cpu_to_le64(conn->hello.instance);
	out->key_id = cpu_to_le32(conn->hello.key_id);
	memcpy(out->nonce, conn->auth.target_nonce, CVM_WIRE_NONCE_LEN);
	memcpy(out->proof, conn->auth.target_proof, CVM_WIRE_PROOF_LEN);
}

/*
 * cvm_xprt_auth_recv() - an AUTH payload arrived: keep the host's proof
 * for recv_req() to check (cvm_auth_check()).  NULL, or why it is
 * malformed.
 */
const char *cvm_xprt_auth_recv(struct cvm_conn *conn,
			       const struct cvm_wire_hello *h)
{
	if (memchr_inv(h, 0, offsetof(struct cvm_wire_hello, proof)))
		return "AUTH with fields other than the proof";
	memcpy(conn->auth.host_proof, h->proof, CVM_WIRE_PROOF_LEN);
	return NULL;
}

/*
 * cvm_xprt_reply_hdr() - build the reply header to @req into @w from the
 * core's @req->rsp_status and @req->rsp_len, with at most @room payload
 * bytes (what the transport can deliver; rdma: the initiator's buffer).
 * Returns the payload length.  A HELLO answered OK makes the connection
 * live; any other HELLO answer sets *close_after: close once it is sent.
 */
u32 cvm_xprt_reply_hdr(struct cvm_xprt_req *req, struct cvm_wire_hdr *w,
		       u32 room, bool *close_after)
{
	u16 status = req->rsp_status;
	bool hello = req->hdr.opcode == CVM_WIRE_OP_HELLO;
	bool auth = req->hdr.opcode == CVM_WIRE_OP_AUTH;
	u32 len = 0;

	*close_after = false;
	if (hello || auth) {
		if (status != CVM_WIRE_STATUS_OK)
			*close_after = true;
		else if (hello)
			len = sizeof(struct cvm_wire_hello);
	} else if (status == CVM_WIRE_STATUS_OK) {
		len = min3(req->rsp_len, req->data_len, room);
	}

	memset(w, 0, sizeof(*w));
	w->magic = cpu_to_le32(CVM_WIRE_MAGIC);
	w->version = CVM_WIRE_VERSION;
	w->opcode = req->hdr.opcode;
	w->flags = cpu_to_le16(CVM_WIRE_F_REPLY);
	w->tag = req->hdr.tag;
	w->volume_id = req->hdr.volume_id;
	w->object_no = req->hdr.object_no;
	w->shard = req->hdr.shard;
	w->offset = req->hdr.offset;
	w->length = cpu_to_le32(len);
	w->status = cpu_to_le16(status);
	if (req->hdr.opcode == CVM_WIRE_OP_BUMP ||
	    req->hdr.opcode == CVM_WIRE_OP_SET_VERSION)
		w->shard_version = cpu_to_le32(req->rsp_version);
	if (len && !hello && req->conn->ops->payload_crc) {
		w->flags |= cpu_to_le16(CVM_WIRE_F_DATA_CRC);
		w->data_crc = cpu_to_le32(cvm_crc32c_bvec(req->bvec,
							  req->nr_bvec, len));
	}
	/*
	 * Only from the state the handshake is in: a connection aborted
	 * meanwhile (HELLO timeout, its key withdrawn) stays dead, and the
	 * reply is its last word.
	 */
	if ((hello || auth) && !*close_after &&
	    cmpxchg(&req->conn->state,
		    hello ? CVM_CONN_HELLO : CVM_CONN_AUTH,
		    hello ? CVM_CONN_AUTH : CVM_CONN_LIVE) !=
	    (hello ? CVM_CONN_HELLO : CVM_CONN_AUTH))
		*close_after = true;
	cvm_wire_hdr_seal(w);
	return len;
}

/* Target: listeners */

static void cvm_listener_hello_work(struct work_struct *w);

void cvm_listener_init(struct cvm_listener *l,
		       const struct cvm_transport_ops *ops,
		       const struct sockaddr_storage *addr,
		       const struct cvm_conn_cb *cb, void *core_priv)
{
	l->ops = ops;
	l->cb = cb;
	l->addr = *addr;
	l->core_priv = core_priv;
	INIT_LIST_HEAD(&l->entry);
	spin_lock_init(&l->lock);
	INIT_LIST_HEAD(&l->conns);
	l->nr_conns = 0;
	l->stopping = false;
	init_waitqueue_head(&l->wq);
	INIT_DELAYED_WORK(&l->hello_work, cvm_listener_hello_work);
}

static unsigned int cvm_listener_hello_pending(struct cvm_listener *l)
{
	struct cvm_conn *conn;
	unsigned int n = 0;

	lockdep_assert_held(&l->lock);
	list_for_each_entry(conn, &l->conns, lentry)
		n += cvm_conn_handshaking(conn);
	return n;
}

/*
 * cvm_listener_add_conn() - a transport accepted @conn on @l.  Returns 0,
 * or -EBUSY when the listener is stopping or full (too many connections,
 * or too many that have not said HELLO): the transport then closes @conn
 * at once, and nothing of it is on the listener.
 */
int cvm_listener_add_conn(struct cvm_listener *l, struct cvm_conn *conn)
{
	const struct cvm_conn_limits *lim = l->cb->limits;
	const char *why = NULL;

	spin_lock_bh(&l->lock);
	if (l->stopping)
		why = "";
	else if (l->nr_conns >= lim->max_conns)
		why = "connections";
	else if (cvm_listener_hello_pending(l) >= lim->max_hello_pending)
		why = "connections waiting for HELLO";
	if (!why) {
		conn->listener = l;
		conn->accepted = jiffies;
		list_add_tail(&conn->lentry, &l->conns);
		l->nr_conns++;
		atomic_inc(&cvm_xprt_conns);
	}
	spin_unlock_bh(&l->lock);
	if (!why)	/* no-op while a scan is pending: floods cannot defer it */
		queue_delayed_work(system_wq, &l->hello_work,
				   lim->hello_timeout);
	else if (*why)
		pr_warn_ratelimited("%pISpc: refused a connection from %pISpc: too many %s\n",
				    &l->addr, &conn->peer, why);
	return why ? -EBUSY : 0;
}

/*
 * cvm_listener_del_conn() - @conn finished tearing down; the last thing a
 * transport does with the listener.  The wake-up happens under the lock:
 * unlisten frees the listener as soon as it sees the list empty, which it
 * can only do after this unlock.
 */
void cvm_listener_del_conn(struct cvm_conn *conn)
{
	struct cvm_listener *l = conn->listener;

	if (!l)
		return;
	spin_lock_bh(&l->lock);
	list_del_init(&conn->lentry);
	l->nr_conns--;
	atomic_dec(&cvm_xprt_conns);
	conn->listener = NULL;
	wake_up_all(&l->wq);
	spin_unlock_bh(&l->lock);
}

static bool cvm_listener_idle(struct cvm_listener *l)
{
	bool idle;

	spin_lock_bh(&l->lock);
	idle = list_empty(&l->conns);
	spin_unlock_bh(&l->lock);
	return idle;
}

/*
 * Aborts every live connection on @l that @pick selects, one at a time:
 * each is pinned with a reference under the lock and aborted after it
 * (abort() does not sleep, but nothing of a connection's teardown may run
 * under the listener's lock).  An aborted connection is dead, so the next
 * pass skips it.
 */
void cvm_listener_abort_each(struct cvm_listener *l,
			     bool (*pick)(struct cvm_listener *l,
					  struct cvm_conn *conn),
			     const char *why)
{
	struct cvm_conn *conn, *found;

	do {
		found = NULL;
		spin_lock_bh(&l->lock);
		list_for_each_entry(conn, &l->conns, lentry) {
			if (READ_ONCE(conn->state) != CVM_CONN_DEAD &&
			    pick(l, conn)) {
				cvm_conn_get(conn);
				found = conn;
				break;
			}
		}
		spin_unlock_bh(&l->lock);
		if (found) {
			found->ops->abort(found, why);
			cvm_conn_put(found);
		}
	} while (found);
}

static bool cvm_listener_pick_all(struct cvm_listener *l, struct cvm_conn *conn)
{
	return true;
}

static bool cvm_listener_pick_no_hello(struct cvm_listener *l,
				       struct cvm_conn *conn)
{
	return cvm_conn_handshaking(conn) &&
	       time_after_eq(jiffies, conn->accepted +
			     l->cb->limits->hello_timeout);
}

/* Closes the connections that did not say HELLO and AUTH in time. */
static void cvm_listener_hello_work(struct work_struct *w)
{
	struct cvm_listener *l = container_of(to_delayed_work(w),
					      struct cvm_listener, hello_work);
	bool again;

	cvm_listener_abort_each(l, cvm_listener_pick_no_hello,
				"no HELLO and AUTH in time");
	spin_lock_bh(&l->lock);
	again = !l->stopping && cvm_listener_hello_pending(l);
	spin_unlock_bh(&l->lock);
	if (again)
		queue_delayed_work(system_wq, &l->hello_work,
				   l->cb->limits->hello_timeout / 2 + 1);
}

/*
 * cvm_listener_close_conns() - after the transport stopped accepting on
 * @l: close every connection it accepted and wait until each has torn
 * down (cvm_listener_del_conn()).  Sleeps; the transport frees @l after.
 */
void cvm_listener_close_conns(struct cvm_listener *l)
{
	spin_lock_bh(&l->lock);
	l->stopping = true;
	spin_unlock_bh(&l->lock);
	cancel_delayed_work_sync(&l->hello_work);
	/* A connection that dies on its own meanwhile is skipped. */
	while (!cvm_listener_idle(l)) {
		cvm_listener_abort_each(l, cvm_listener_pick_all, NULL);
		wait_event_timeout(l->wq, cvm_listener_idle(l), HZ);
	}
}

/* Initiator: HELLO */

void cvm_xprt_hello_req(const struct cvm_hello_params *p,
			struct cvm_wire_hdr *hdr, struct cvm_wire_hello *h,
			u32 want_inflight)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = cpu_to_le32(CVM_WIRE_MAGIC);
	hdr->version = CVM_WIRE_VERSION;
	hdr->opcode = CVM_WIRE_OP_HELLO;
	hdr->length = cpu_to_le32(sizeof(*h));
	memset(h, 0, sizeof(*h));
	h->cluster_id = cpu_to_le64(p->cluster_id);
	h->host_id = cpu_to_le64(p->host_id);
	h->device_id = cpu_to_le32(p->device_id);
	h->max_inflight = cpu_to_le16(min_t(u32, want_inflight, U16_MAX));
	h->max_data = cpu_to_le32(CVM_CONN_WANT_DATA);
	h->key_id = cpu_to_le32(p->key_id);
	/* Our challenge: fresh for every connection (and rdma queue pair). */
	do {
		get_random_bytes(h->nonce, sizeof(h->nonce));
	} while (!memchr_inv(h->nonce, 0, sizeof(h->nonce)));
}

static int cvm_xprt_hello_status_errno(u16 status)
{
	switch (status) {
	case CVM_WIRE_STATUS_OK:
		return 0;
	case CVM_WIRE_STATUS_AUTH:
		return -EACCES;
	case CVM_WIRE_STATUS_VERSION:
		return -EPROTONOSUPPORT;
	case CVM_WIRE_STATUS_NOT_FOUND:
		return -ENODEV;
	default:
		return -EPROTO;
	}
}

/*
 * cvm_xprt_hello_rsp_hdr() - the header of the reply to our HELLO.
 * Returns 1 if its payload (a struct cvm_wire_hello) follows and
 * cvm_xprt_hello_done() finishes; else the connect's result: an errno for
 * a refusal (the status is stored in *hello_status) or -EPROTO.  A
 * VERSION refusal comes in the target's version, which is logged.
 */
int cvm_xprt_hello_rsp_hdr(struct cvm_conn *conn,
			   const struct cvm_wire_hdr *rsp, u16 *hello_status)
{
	u16 status = le16_to_cpu(rsp->status);
	const char *why;

	if (le32_to_cpu(rsp->magic) == CVM_WIRE_MAGIC &&
	    rsp->version != CVM_WIRE_VERSION &&
	    rsp->opcode == CVM_WIRE_OP_HELLO &&
	    status == CVM_WIRE_STATUS_VERSION) {
		pr_err_ratelimited("target %pISpc speaks wire version %u, we speak %u\n",
				   &conn->peer, rsp->version,
				   CVM_WIRE_VERSION);
		if (hello_status)
			*hello_status = status;
		return -EPROTONOSUPPORT;
	}
	why = cvm_wire_check_hdr(rsp, true);
	if (!why && rsp->opcode != CVM_WIRE_OP_HELLO)
		why = "reply to HELLO is not a HELLO";
	if (!why && status == CVM_WIRE_STATUS_DENIED)
		why = "HELLO answered DENIED";
	if (!why && status == CVM_WIRE_STATUS_OK &&
	    le32_to_cpu(rsp->length) != sizeof(struct cvm_wire_hello))
		why = "HELLO reply length";
	if (!why && status && rsp->length)
		why = "HELLO error reply with payload";
	if (why) {
		pr_err_ratelimited("target %pISpc: %s\n", &conn->peer, why);
		return -EPROTO;
	}
	if (hello_status)
		*hello_status = status;
	if (status)
		return cvm_xprt_hello_status_errno(status);
	return 1;
}

/*
 * cvm_xprt_hello_done() - the payload of an OK reply to HELLO @asked:
 * the target must prove it holds our key (else -EACCES: we send it
 * nothing), and what it granted becomes @b's limits.  0, or -EPROTO for
 * grants outside what the protocol allows.  Then the caller sends AUTH
 * (cvm_xprt_auth_req()).
 */
int cvm_xprt_hello_done(struct cvm_conn *conn, const struct cvm_wire_hdr *rsp,
			const struct cvm_wire_hello *rh,
			const struct cvm_wire_hello *asked,
			struct cvm_budget *b)
{
	u32 inflight = le16_to_cpu(rh->max_inflight);
	u32 data = le32_to_cpu(rh->max_data);

	if (!inflight || inflight > le16_to_cpu(asked->max_inflight) ||
	    data < CVM_WIRE_MAX_DATA_LEN || data > le32_to_cpu(asked->max_data)) {
		pr_err_ratelimited("target %pISpc: HELLO grants %u requests and %u bytes, outside what we asked\n",
				   &conn->peer, inflight, data);
		return -EPROTO;
	}
	if (!rh->instance) {
		pr_err_ratelimited("target %pISpc: HELLO reply without the device's instance\n",
				   &conn->peer);
		return -EPROTO;
	}
	if (rh->cluster_id != asked->cluster_id ||
	    rh->host_id != asked->host_id ||
	    rh->device_id != asked->device_id || rh->key_id != asked->key_id ||
	    rh->features || rh->reserved1 || rh->reserved2) {
		pr_err_ratelimited("target %pISpc: HELLO reply does not repeat our HELLO\n",
				   &conn->peer);
		return -EPROTO;
	}
	memcpy(conn->auth.host_nonce, asked->nonce, CVM_WIRE_NONCE_LEN);
	memcpy(conn->auth.target_nonce, rh->nonce, CVM_WIRE_NONCE_LEN);
	if (!cvm_auth_target_ok(conn, rh->proof)) {
		pr_err_ratelimited("target %pISpc: failed to prove it holds the key of host %llu for device %u (key id %u)\n",
				   &conn->peer, conn->hello.host_id,
				   conn->hello.device_id, conn->hello.key_id);
		return -EACCES;
	}
	conn->hello.instance = le64_to_cpu(rh->instance);
	b->max_inflight = inflight;
	b->max_data = data;
	return 0;
}

/*
 * cvm_xprt_auth_req() - AUTH, our proof, after cvm_xprt_hello_done() took
 * the target's challenge into @conn.  0, or an errno if the proof cannot
 * be computed.
 */
int cvm_xprt_auth_req(struct cvm_conn *conn, struct cvm_wire_hdr *hdr,
		      struct cvm_wire_hello *h)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->magic = cpu_to_le32(CVM_WIRE_MAGIC);
	hdr->version = CVM_WIRE_VERSION;
	hdr->opcode = CVM_WIRE_OP_AUTH;
	hdr->length = cpu_to_le32(sizeof(*h));
	memset(h, 0, sizeof(*h));
	return cvm_auth_host_proof(conn, h->proof);
}

/*
 * cvm_xprt_auth_rsp_hdr() - the reply to our AUTH (no payload): 0 when
 * the connection is live, else an errno (-EACCES: the target refused our
 * proof; the status is stored in *hello_status when not NULL).
 */
int cvm_xprt_auth_rsp_hdr(struct cvm_conn *conn,
			  const struct cvm_wire_hdr *rsp, u16 *hello_status)
{
	u16 status = le16_to_cpu(rsp->status);
	const char *why;

	why = cvm_wire_check_hdr(rsp, true);
	if (!why && rsp->opcode != CVM_WIRE_OP_AUTH)
		why = "reply to AUTH is not an AUTH";
	if (!why && rsp->length)
		why = "AUTH reply with payload";
	if (why) {
		pr_err_ratelimited("target %pISpc: %s\n", &conn->peer, why);
		return -EPROTO;
	}
	if (hello_status)
		*hello_status = status;
	if (status)
		pr_err_ratelimited("target %pISpc: refused our proof (status %u)\n",
				   &conn->peer, status);
	return status ? cvm_xprt_hello_status_errno(status) : 0;
}

/*
 * cvm_xprt_check_rsp() - does the well-formed reply @hdr fit @req, the
 * request its tag names?  NULL if so, else why the connection closes.
 */
const char *cvm_xprt_check_rsp(const struct cvm_xprt_req *req,
			       const struct cvm_wire_hdr *hdr)
{
	u32 len = le32_to_cpu(hdr->length);

	if (hdr->opcode != req->hdr.opcode)
		return "reply opcode differs from request";
	if (hdr->status && len)
		return "error reply with payload";
	if (len > cvm_wire_reply_max_len(&req->hdr) || len > req->data_len ||
	    (hdr->opcode == CVM_WIRE_OP_READ && !hdr->status &&
	     len != le32_to_cpu(req->hdr.length)))
		return "reply length does not fit the request";
	return NULL;
}

/* Initiator: take the reply's status into @req before its done(). */
void cvm_xprt_complete(struct cvm_xprt_req *req, const struct cvm_wire_hdr *hdr)
{
	req->status = le16_to_cpu(hdr->status);
	req->rsp_len = le32_to_cpu(hdr->length);
	req->rsp_map_epoch = le64_to_cpu(hdr->map_epoch);
	req->rsp_version = le32_to_cpu(hdr->shard_version);
	req->error = 0;
}
