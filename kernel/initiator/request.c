// SPDX-License-Identifier: GPL-2.0
/*
 * The I/O pipeline: a blk-mq request is split at object boundaries
 * (cvm_object_extent()), each piece is placed (object -> PG -> device list
 * from the RCU-protected PG table) and sent as one wire request per
 * replica for writes, discards and write-zeroes, or to the first reachable
 * replica for reads.  The completions are gathered per object and then per
 * request.  A FLUSH goes to every device of the map that has a live
 * connection.
 *
 * Payload pages are the request's own: the transport is handed bio_vecs
 * that point into the bios, nothing is copied.  Every sub-request of a
 * write shares one bio_vec array.
 *
 * Placement happens in queue_rq under rcu_read_lock(), with whatever map is
 * installed then; a read retried on another replica is placed again with
 * the map installed at that moment.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blk-mq.h>
#include <linux/slab.h>

#include "initiator.h"

/* Pieces a request is cut into: see the queue limits in volume.c. */
#define CVM_RQ_MAX_OBJS		2
/* bio_vecs kept inside the request PDU; more are allocated. */
#define CVM_INLINE_BVECS	8

/*
 * Per-object state machine, one per piece of a request:
 *
 *              cvm_obj_advance()
 *                     |
 *                     v
 *              CVM_OBJ_START ----------------------.
 *                     | sub-request(s) sent         | nothing could be
 *                     v                             | sent: no replica
 *    .-------> CVM_OBJ_WAIT                         | reachable, no memory
 *    |                | last sub-request done       |
 *    |                v                             |
 *    |       read failed and another                |
 *    '-- yes - replica is reachable?                |
 *                     | no                          |
 *                     v                             v
 *                   done <--------------------------'
 *
 * Writes, discards, write-zeroes and flushes send every sub-request at
 * once from CVM_OBJ_START and are done when the last one completes; a read
 * sends one and, on failure, moves to the next replica of the PG (placed
 * again with the current map).  cvm_obj_advance() returns true when the
 * object is done; its result is in cvm_obj.status.
 */
enum cvm_obj_state {
	CVM_OBJ_START = 1,
	CVM_OBJ_WAIT,
};

struct cvm_io;

/*
 * struct cvm_obj - one piece of a request, inside one object
 * @cmd: the request
 * @state: enum cvm_obj_state
 * @ext: object number, offset and length
 * @bvec, @nr_bvec: payload (reads and writes)
 * @tried: reads: replica slots tried so far, as a bit mask
 * @pending: sub-requests not completed yet, plus one while sending
 * @status: first error of a sub-request, BLK_STS_OK if none
 */
struct cvm_obj {
	struct cvm_io		*cmd;
	enum cvm_obj_state	state;
	struct cvm_extent	ext;
	struct bio_vec		*bvec;
	unsigned int		nr_bvec;
	unsigned long		tried;
	atomic_t		pending;
	blk_status_t		status;
};

/*
 * struct cvm_io - blk-mq PDU of a request
 * @vol: the volume
 * @rq: the request
 * @op: wire opcode
 * @wire_flags: CVM_WIRE_F_FUA / CVM_WIRE_F_NOUNMAP
 * @nr_objs: pieces in @objs
 * @pending: pieces not done yet, plus one while starting
 * @status: first error of any piece
 * @bvec: payload bio_vecs, split at object boundaries: @inline_bvec or
 *	allocated
 */
struct cvm_io {
	struct cvm_volume	*vol;
	struct request		*rq;
	u8			op;
	u16			wire_flags;
	unsigned int		nr_objs;
	atomic_t		pending;
	blk_status_t		status;
	struct bio_vec		*bvec;
	struct cvm_obj		objs[CVM_RQ_MAX_OBJS];
	struct bio_vec		inline_bvec[CVM_INLINE_BVECS];
};

size_t cvm_io_size(void)
{
	return sizeof(struct cvm_io);
}

/*
 * The one place protocol status and transport errors become blk_status_t.
 */
static blk_status_t cvm_sub_status(const struct cvm_xprt_req *req)
{
	if (req->error)
		return BLK_STS_TRANSPORT;	/* connection lost, bad reply */

	switch (req->status) {
	case CVM_WIRE_STATUS_OK:
		return BLK_STS_OK;
	case CVM_WIRE_STATUS_NO_SPACE:
		return BLK_STS_NOSPC;
	case CVM_WIRE_STATUS_STALE_ATTACH:
		return BLK_STS_NEXUS;		/* fenced by a newer attach */
	case CVM_WIRE_STATUS_UNSUPPORTED:
		return BLK_STS_NOTSUPP;
	case CVM_WIRE_STATUS_STALE_MAP:
	case CVM_WIRE_STATUS_BUSY:
	case CVM_WIRE_STATUS_DATA_CRC:
		return BLK_STS_TRANSPORT;	/* another try may work */
	case CVM_WIRE_STATUS_IO_ERROR:
	case CVM_WIRE_STATUS_INVALID:
	case CVM_WIRE_STATUS_NOT_FOUND:
	default:
		return BLK_STS_IOERR;
	}
}

static void cvm_obj_fail(struct cvm_obj *obj, blk_status_t sts)
{
	WRITE_ONCE(obj->status, sts);
}

/* A live connection to @device_id under @st, or NULL.  RCU held. */
static struct cvm_conn *cvm_dev_conn(const struct cvm_state *st,
				     u32 device_id)
{
	struct cvm_path *path;
	struct cvm_conn *conn;

	if (!cvm_state_dev_up(st, device_id))
		return NULL;
	path = cvm_state_path(st, device_id);
	conn = rcu_dereference(path->conn);
	if (!conn || READ_ONCE(conn->state) != CVM_CONN_LIVE)
		return NULL;
	return conn;
}

static void cvm_sub_done(struct cvm_xprt_req *req);

/* Fill a wire request for @obj on @conn.  RCU held. */
static struct cvm_xprt_req *cvm_sub_alloc(struct cvm_obj *obj,
					  const struct cvm_state *st,
					  struct cvm_conn *conn)
{
	struct cvm_io *cmd = obj->cmd;
	struct cvm_volume *vol = cmd->vol;
	struct cvm_wire_hdr *hdr;
	struct cvm_xprt_req *req;

	req = conn->ops->alloc_req(conn, GFP_ATOMIC);
	if (!req)
		return NULL;
	hdr = &req->hdr;
	hdr->opcode = cmd->op;
	hdr->flags = cpu_to_le16(cmd->wire_flags);
	hdr->map_epoch = cpu_to_le64(st->map->epoch);
	if (cmd->op != CVM_WIRE_OP_FLUSH) {
		hdr->volume_id = cpu_to_le64(vol->id);
		hdr->object_no = cpu_to_le64(obj->ext.object_no);
		hdr->offset = cpu_to_le64(obj->ext.offset);
		hdr->attach_epoch = cpu_to_le64(vol->attach_epoch);
		hdr->length = cpu_to_le32(obj->ext.len);
	}
	if (cmd->op == CVM_WIRE_OP_READ || cmd->op == CVM_WIRE_OP_WRITE) {
		req->bvec = obj->bvec;
		req->nr_bvec = obj->nr_bvec;
		req->data_len = obj->ext.len;
	}
	req->done = cvm_sub_done;
	req->core_priv = obj;
	return req;
}

static void cvm_sub_submit(struct cvm_obj *obj, struct cvm_xprt_req *req)
{
	int ret = req->conn->ops->submit(req);

	if (ret) {
		/* done() will not run: complete it here. */
		req->error = ret;
		cvm_sub_done(req);
	}
}

/* Row of the PG @obj's object maps to, or NULL.  RCU held. */
static const u32 *cvm_obj_row(const struct cvm_obj *obj,
			      const struct cvm_state *st, u32 *width)
{
	const struct cvm_volume *vol = obj->cmd->vol;
	const struct cvm_pool_table *pt;
	u32 pg;

	pt = cvm_state_pool(st, vol->pool_id);
	if (!pt)
		return NULL;
	pg = cvm_object_pg(vol->id, obj->ext.object_no, pt->pg_num);
	*width = pt->width;
	return &pt->devs[(size_t)pg * pt->width];
}

/* Send a read to the first reachable replica not tried yet. */
static bool cvm_obj_send_read(struct cvm_obj *obj, const struct cvm_state *st)
{
	struct cvm_xprt_req *req;
	struct cvm_conn *conn;
	const u32 *row;
	u32 i, width;

	row = cvm_obj_row(obj, st, &width);
	if (!row)
		return false;
	for (i = 0; i < width; i++) {
		if (row[i] == CVM_DEV_NONE || test_bit(i, &obj->tried))
			continue;
		__set_bit(i, &obj->tried);
		conn = cvm_dev_conn(st, row[i]);
		if (!conn)
			continue;
		req = cvm_sub_alloc(obj, st, conn);
		if (!req)
			return false;
		/* One for the read, one bias dropped by cvm_obj_advance(). */
		atomic_set(&obj->pending, 2);
		cvm_sub_submit(obj, req);
		return true;
	}
	return false;
}

/*
 * Send to every replica (writes, discards, write-zeroes).  A replica the
 * map marks down is skipped (cvmd resyncs it); one marked up that cannot
 * be reached fails the write.
 */
static bool cvm_obj_send_all(struct cvm_obj *obj, const struct cvm_state *st)
{
	struct cvm_xprt_req *reqs[CVM_MAX_PG_WIDTH];
	unsigned int nr = 0, i;
	struct cvm_conn *conn;
	const u32 *row;
	u32 width;

	row = cvm_obj_row(obj, st, &width);
	if (!row)
		return false;
	for (i = 0; i < width && i < CVM_MAX_PG_WIDTH; i++) {
		if (row[i] == CVM_DEV_NONE || !cvm_state_dev_up(st, row[i]))
			continue;
		conn = cvm_dev_conn(st, row[i]);
		if (!conn) {
			cvm_obj_fail(obj, BLK_STS_TRANSPORT);
			continue;
		}
		reqs[nr] = cvm_sub_alloc(obj, st, conn);
		if (!reqs[nr]) {
			cvm_obj_fail(obj, BLK_STS_IOERR);
			continue;
		}
		nr++;
	}
	if (!nr)
		return false;
	/* The bias keeps the object from completing while we send. */
	atomic_set(&obj->pending, nr + 1);
	for (i = 0; i < nr; i++)
		cvm_sub_submit(obj, reqs[i]);
	return true;
}

/* A flush goes to every device of the map with a live connection. */
static bool cvm_obj_send_flush(struct cvm_obj *obj,
			       const struct cvm_state *st)
{
	struct cvm_xprt_req *req;
	struct cvm_conn *conn;
	unsigned int nr = 0;
	u32 i;

	atomic_set(&obj->pending, 1);
	for (i = 0; i < st->nr_paths; i++) {
		conn = cvm_dev_conn(st, st->paths[i].device_id);
		if (!conn)
			continue;
		req = cvm_sub_alloc(obj, st, conn);
		if (!req) {
			cvm_obj_fail(obj, BLK_STS_IOERR);
			continue;
		}
		atomic_inc(&obj->pending);
		cvm_sub_submit(obj, req);
		nr++;
	}
	return nr;
}

/* Place and send @obj with the current map. */
static bool cvm_obj_send(struct cvm_obj *obj)
{
	const struct cvm_state *st;
	bool sent;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	if (!st)
		sent = false;
	else if (obj->cmd->op == CVM_WIRE_OP_READ)
		sent = cvm_obj_send_read(obj, st);
	else if (obj->cmd->op == CVM_WIRE_OP_FLUSH)
		sent = cvm_obj_send_flush(obj, st);
	else
		sent = cvm_obj_send_all(obj, st);
	rcu_read_unlock();
	return sent;
}

/* Returns true when @obj is done; see the diagram above. */
static bool cvm_obj_advance(struct cvm_obj *obj)
{
	for (;;) {
		switch (obj->state) {
		case CVM_OBJ_START:
			if (!cvm_obj_send(obj)) {
				if (obj->status == BLK_STS_OK)
					cvm_obj_fail(obj, BLK_STS_TRANSPORT);
				return true;
			}
			obj->state = CVM_OBJ_WAIT;
			/* Drop the sending bias: it may complete right here. */
			if (!atomic_dec_and_test(&obj->pending))
				return false;
			fallthrough;
		case CVM_OBJ_WAIT:
			if (obj->cmd->op != CVM_WIRE_OP_READ ||
			    obj->status == BLK_STS_OK ||
			    obj->status == BLK_STS_NEXUS)
				return true;
			/* Try the next replica. */
			obj->status = BLK_STS_OK;
			obj->state = CVM_OBJ_START;
			if (!cvm_obj_send(obj)) {
				cvm_obj_fail(obj, BLK_STS_TRANSPORT);
				return true;
			}
			obj->state = CVM_OBJ_WAIT;
			if (!atomic_dec_and_test(&obj->pending))
				return false;
			break;
		default:
			cvm_obj_fail(obj, BLK_STS_IOERR);
			return true;
		}
	}
}

static void cvm_io_put(struct cvm_io *cmd)
{
	if (atomic_dec_and_test(&cmd->pending))
		blk_mq_complete_request(cmd->rq);
}

/* @obj is done: fold its result into the request. */
static void cvm_obj_done(struct cvm_obj *obj)
{
	struct cvm_io *cmd = obj->cmd;

	if (obj->status != BLK_STS_OK)
		WRITE_ONCE(cmd->status, obj->status);
	cvm_io_put(cmd);
}

/* Transport completion: softirq or process context, never sleeps. */
static void cvm_sub_done(struct cvm_xprt_req *req)
{
	struct cvm_obj *obj = req->core_priv;
	blk_status_t sts = cvm_sub_status(req);

	if (sts != BLK_STS_OK) {
		pr_warn_ratelimited("volume %llu object %llu: %s to %pISpc failed: status %u error %d\n",
				    obj->cmd->vol->id, obj->ext.object_no,
				    blk_op_str(req_op(obj->cmd->rq)),
				    &req->conn->peer, req->status,
				    req->error);
		cvm_obj_fail(obj, sts);
	}
	req->conn->ops->free_req(req);

	if (!atomic_dec_and_test(&obj->pending))
		return;
	if (cvm_obj_advance(obj))
		cvm_obj_done(obj);
}

/*
 * Cut the request's bio_vecs at the objects' boundaries into cmd->bvec,
 * pointing each piece at its share.  No data is copied.
 */
static blk_status_t cvm_io_map_data(struct cvm_io *cmd)
{
	struct request *rq = cmd->rq;
	struct req_iterator iter;
	unsigned int n = 0, max = 0, o = 0;
	struct cvm_obj *obj = &cmd->objs[0];
	u32 left = obj->ext.len;
	struct bio_vec bv;

	rq_for_each_bvec(bv, rq, iter)
		max++;
	max += cmd->nr_objs - 1;
	cmd->bvec = cmd->inline_bvec;
	if (max > CVM_INLINE_BVECS) {
		cmd->bvec = kmalloc_array(max, sizeof(*cmd->bvec), GFP_ATOMIC);
		if (!cmd->bvec)
			return BLK_STS_RESOURCE;
	}
	obj->bvec = cmd->bvec;

	/* The iterator advances by bv.bv_len: cut a copy, not bv itself. */
	rq_for_each_bvec(bv, rq, iter) {
		struct bio_vec cur = bv;

		while (cur.bv_len) {
			u32 take = min(cur.bv_len, left);
			struct bio_vec *dst = &cmd->bvec[n++];

			if (!take || n > max)
				return BLK_STS_IOERR;	/* bytes beyond the split */
			dst->bv_page = nth_page(cur.bv_page,
						cur.bv_offset >> PAGE_SHIFT);
			dst->bv_offset = offset_in_page(cur.bv_offset);
			dst->bv_len = take;
			obj->nr_bvec++;
			cur.bv_offset += take;
			cur.bv_len -= take;
			left -= take;
			if (!left && ++o < cmd->nr_objs) {
				obj = &cmd->objs[o];
				obj->bvec = &cmd->bvec[n];
				left = obj->ext.len;
			}
		}
	}
	return BLK_STS_OK;
}

/* Split the request into objects; sets cmd->nr_objs. */
static blk_status_t cvm_io_split(struct cvm_io *cmd)
{
	const struct cvm_layout *l = &cmd->vol->layout;
	u64 pos = blk_rq_pos(cmd->rq) << SECTOR_SHIFT;
	u64 len = blk_rq_bytes(cmd->rq);
	struct cvm_err err = {};
	struct cvm_extent ext;

	cmd->nr_objs = 0;
	while (len) {
		if (cmd->nr_objs == CVM_RQ_MAX_OBJS) {
			pr_err_ratelimited("request at %llu of %u bytes spans more than %u objects\n",
					   blk_rq_pos(cmd->rq) << SECTOR_SHIFT,
					   blk_rq_bytes(cmd->rq),
					   CVM_RQ_MAX_OBJS);
			return BLK_STS_IOERR;
		}
		if (cvm_object_extent(l, pos, len, &ext, &err)) {
			pr_err_ratelimited("request at %llu: %s\n", pos,
					   err.why);
			return BLK_STS_IOERR;
		}
		cmd->objs[cmd->nr_objs++].ext = ext;
		pos += ext.len;
		len -= ext.len;
	}
	return BLK_STS_OK;
}

static blk_status_t cvm_io_prepare(struct cvm_io *cmd)
{
	struct request *rq = cmd->rq;
	unsigned int i;
	blk_status_t sts;

	cmd->wire_flags = 0;
	cmd->status = BLK_STS_OK;
	cmd->bvec = NULL;
	switch (req_op(rq)) {
	case REQ_OP_READ:
		cmd->op = CVM_WIRE_OP_READ;
		break;
	case REQ_OP_WRITE:
		cmd->op = CVM_WIRE_OP_WRITE;
		break;
	case REQ_OP_DISCARD:
		cmd->op = CVM_WIRE_OP_DISCARD;
		break;
	case REQ_OP_WRITE_ZEROES:
		cmd->op = CVM_WIRE_OP_WRITE_ZEROES;
		if (rq->cmd_flags & REQ_NOUNMAP)
			cmd->wire_flags |= CVM_WIRE_F_NOUNMAP;
		break;
	case REQ_OP_FLUSH:
		cmd->op = CVM_WIRE_OP_FLUSH;
		break;
	default:
		return BLK_STS_NOTSUPP;
	}
	if (rq->cmd_flags & REQ_FUA && cmd->op != CVM_WIRE_OP_READ &&
	    cmd->op != CVM_WIRE_OP_FLUSH)
		cmd->wire_flags |= CVM_WIRE_F_FUA;

	if (cmd->op == CVM_WIRE_OP_FLUSH) {
		cmd->nr_objs = 1;
		memset(&cmd->objs[0].ext, 0, sizeof(cmd->objs[0].ext));
	} else {
		sts = cvm_io_split(cmd);
		if (sts)
			return sts;
	}
	for (i = 0; i < cmd->nr_objs; i++) {
		struct cvm_obj *obj = &cmd->objs[i];

		obj->cmd = cmd;
		obj->state = CVM_OBJ_START;
		obj->bvec = NULL;
		obj->nr_bvec = 0;
		obj->tried = 0;
		obj->status = BLK_STS_OK;
		atomic_set(&obj->pending, 0);
	}
	if (cmd->op == CVM_WIRE_OP_READ || cmd->op == CVM_WIRE_OP_WRITE)
		return cvm_io_map_data(cmd);
	return BLK_STS_OK;
}

static void cvm_io_free_bvec(struct cvm_io *cmd)
{
	if (cmd->bvec != cmd->inline_bvec)
		kfree(cmd->bvec);
	cmd->bvec = NULL;
}

static blk_status_t cvm_queue_rq(struct blk_mq_hw_ctx *hctx,
				 const struct blk_mq_queue_data *bd)
{
	struct cvm_io *cmd = blk_mq_rq_to_pdu(bd->rq);
	unsigned int i;
	blk_status_t sts;

	cmd->vol = hctx->queue->queuedata;
	cmd->rq = bd->rq;
	sts = cvm_io_prepare(cmd);
	if (sts) {
		cvm_io_free_bvec(cmd);
		return sts;
	}

	blk_mq_start_request(bd->rq);
	atomic_set(&cmd->pending, cmd->nr_objs + 1);
	for (i = 0; i < cmd->nr_objs; i++)
		if (cvm_obj_advance(&cmd->objs[i]))
			cvm_obj_done(&cmd->objs[i]);
	cvm_io_put(cmd);
	return BLK_STS_OK;
}

static void cvm_complete_rq(struct request *rq)
{
	struct cvm_io *cmd = blk_mq_rq_to_pdu(rq);

	cvm_io_free_bvec(cmd);
	blk_mq_end_request(rq, READ_ONCE(cmd->status));
}

const struct blk_mq_ops cvm_mq_ops = {
	.queue_rq	= cvm_queue_rq,
	.complete	= cvm_complete_rq,
};
