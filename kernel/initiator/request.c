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
 *
 * Reads and writes of an EC volume go to ec_io.c, which runs each piece in
 * process context; only a read inside one chunk of a healthy shard is sent
 * from here (cvm_obj_ec_read_direct()), and goes to ec_io.c if it fails.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blk-mq.h>
#include <linux/delay.h>
#include <linux/hash.h>
#include <linux/moduleparam.h>
#include <linux/rhashtable.h>
#include <linux/slab.h>
#include <linux/xarray.h>

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
 * once from CVM_OBJ_START and are done when the last one completes.  A
 * write (discard, write-zeroes) succeeds when at least
 * cvm_write_min_replicas() replicas acknowledged it; every replica it
 * could not reach (no connection, transport error, connection lost) is
 * then recorded as stale for that object (cvm_obj_write_finish()), and a
 * refusal of the protocol (NO_SPACE, INVALID, fenced, ...) still fails
 * it.  A write that no replica took fails and records nothing.  A read
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
 * @devs, @nr_devs: writes: the replicas (row of the PG) it was placed on,
 *	then the PG's backfill targets (backfill.c)
 * @nr_acting: writes: the first @nr_acting of @devs are the row; only they
 *	count toward @need, take part in FLUSH and hold its record
 * @missed: writes: slots of @devs that did not take it, as a bit mask
 * @acked: writes: replicas that acknowledged it
 * @acked_mask: writes: slots of @devs that acknowledged it, as a bit mask
 * @instances: writes: per slot of @acked_mask, the device instance that
 *	acknowledged it (cvm_wire_hello.instance: flush.c)
 * @io_error: writes: some replica answered IO_ERROR
 * @need: writes: fresh acknowledgements it needs (cvm_write_need())
 * @record_work: writes that missed a replica: makes the record durable
 *	(cvm_obj_record_work()); discards of a whole object: frees its
 *	extents (cvm_obj_remove_work())
 * @ec: reads and writes of an EC volume: the piece, run by ec_io.c
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
	u32			devs[CVM_MAX_PG_WIDTH];
	unsigned int		nr_devs;
	unsigned int		nr_acting;
	unsigned long		missed;
	atomic_t		acked;
	unsigned long		acked_mask;
	u64			instances[CVM_MAX_PG_WIDTH];
	bool			io_error;
	unsigned int		need;
	struct cvm_ec_io	ec;
	struct work_struct	record_work;
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
 * @flush_gen: FLUSH: its generation (flush.c)
 * @held: it found no replica to take it and is being retried
 *	(cvm_io_hold()); kept across requeues, cleared when it ends
 * @hold_until: jiffies: when a held request gives up (cvm.loss_timeout)
 * @start_ns: when it started (the block layer's stamp, else first sent;
 *	not reset by a hold), for stats.c
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
	u64			flush_gen;
	bool			held;
	unsigned long		hold_until;
	u64			start_ns;
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
blk_status_t cvm_wire_blk_status(const struct cvm_xprt_req *req)
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
	case CVM_WIRE_STATUS_DENIED:
		/*
		 * That target has not been told the volume is ours (its cvmd
		 * is behind): like an unreachable replica, another one or a
		 * later try may do.  A host never given the volume gets it
		 * from every replica, and fails.
		 */
		return BLK_STS_TRANSPORT;
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

static bool cvm_op_is_write(u8 op)
{
	return op == CVM_WIRE_OP_WRITE || op == CVM_WIRE_OP_DISCARD ||
	       op == CVM_WIRE_OP_WRITE_ZEROES;
}

static bool cvm_fence_enter(const struct cvm_io *cmd);
static void cvm_fence_exit(const struct cvm_obj *obj);

/* A live connection to @device_id under @st, or NULL.  RCU held. */
struct cvm_conn *cvm_dev_conn(const struct cvm_state *st, u32 device_id)
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

/* The backfill targets of @obj's PG (backfill.c), or NULL.  RCU held. */
static const struct cvm_pg_targets *cvm_obj_targets(const struct cvm_obj *obj,
						    const struct cvm_state *st)
{
	const struct cvm_volume *vol = obj->cmd->vol;
	const struct cvm_pool_table *pt = cvm_state_pool(st, vol->pool_id);

	if (!pt || !pt->nr_targets)
		return NULL;
	return cvm_pool_targets(pt, cvm_object_pg(vol->id, obj->ext.object_no,
						  pt->pg_num));
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
		/* Never read a copy a degraded write left behind. */
		if (cvm_stale_test(row[i], obj->cmd->vol->id,
				   obj->ext.object_no))
			continue;
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
 * Send to every replica (writes, discards, write-zeroes).  A replica that
 * cannot be sent to (marked down in the map, no live connection, no
 * memory) is only noted in @obj->missed: cvm_obj_write_finish() decides.
 */
static bool cvm_obj_send_all(struct cvm_obj *obj, const struct cvm_state *st)
{
	const struct cvm_pg_targets *targets;
	struct cvm_xprt_req *reqs[CVM_MAX_PG_WIDTH];
	unsigned int nr = 0, i, crcs;
	struct cvm_conn *conn;
	const u32 *row;
	u32 width;

	row = cvm_obj_row(obj, st, &width);
	if (!row)
		return false;
	targets = cvm_obj_targets(obj, st);
	obj->nr_devs = 0;
	obj->nr_acting = 0;
	for (i = 0; i < width + (targets ? targets->nr : 0) &&
		    obj->nr_devs < CVM_MAX_PG_WIDTH; i++) {
		const u32 dev = i < width ? row[i] : targets->devs[i - width];

		if (i == width)
			obj->nr_acting = obj->nr_devs;
		if (dev == CVM_DEV_NONE)
			continue;
		obj->devs[obj->nr_devs] = dev;
		conn = cvm_dev_conn(st, dev);
		reqs[nr] = conn ? cvm_sub_alloc(obj, st, conn) : NULL;
		if (!reqs[nr]) {
			__set_bit(obj->nr_devs, &obj->missed);
		} else {
			/*
			 * A backfill target's copy is durable when it answers:
			 * FLUSH accounting (flush.c) knows only the row.
			 */
			if (i >= width)
				reqs[nr]->hdr.flags |=
					cpu_to_le16(CVM_WIRE_F_FUA);
			nr++;
		}
		obj->nr_devs++;
	}
	if (i <= width)
		obj->nr_acting = obj->nr_devs;
	obj->need = cvm_write_need(st, obj->cmd->vol->pool_id,
				   obj->nr_acting);
	if (!nr)
		return false;
	/* One payload CRC for all replicas that send one, not one each. */
	crcs = 0;
	for (i = 0; i < nr; i++)
		crcs += reqs[i]->conn->ops->payload_crc;
	if (obj->cmd->op == CVM_WIRE_OP_WRITE && crcs > 1) {
		u32 crc = cvm_crc32c_bvec(obj->bvec, obj->nr_bvec,
					  obj->ext.len);

		for (i = 0; i < nr; i++) {
			reqs[i]->data_crc = crc;
			reqs[i]->data_crc_set = true;
		}
	}
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

static unsigned int cvm_min_replicas;
module_param_named(write_min_replicas, cvm_min_replicas, uint, 0644);
MODULE_PARM_DESC(write_min_replicas,
		 "host-wide override of replicated pools' min_size: fresh replicas that must acknowledge a write; 0 (default): the pool's min_size");

/*
 * Acknowledgements of fresh replicas (cvm_stale_settle()) or shards a
 * write on @nr_devs devices of the pool needs: the pool's min_size (by
 * default a majority of replicas, n - n/2, as Ceph's, so an acknowledged
 * write survives the loss of any one replica of three before resync; EC:
 * cvm_pool_min_size()), at most @nr_devs.  With fewer, the write is held
 * and retried (cvm.loss_timeout) instead of acknowledged.  The record of
 * what the others missed is made durable on the replicas that took it
 * before the write is acknowledged (cvm_obj_record_work(), intent.c).
 * RCU held.
 */
unsigned int cvm_write_need(const struct cvm_state *st, u32 pool_id,
			    unsigned int nr_devs)
{
	const struct cvm_pool_table *pt = cvm_state_pool(st, pool_id);
	unsigned int min = pt ? pt->min_size : nr_devs - nr_devs / 2;

	if (pt && pt->kind == CVM_POOL_REPLICATED && READ_ONCE(cvm_min_replicas))
		min = READ_ONCE(cvm_min_replicas);
	return clamp(min, 1U, max(nr_devs, 1U));
}

/*
 * A write succeeded: tell flush.c which replicas hold it in their caches,
 * or that FUA made it durable there.
 */
static void cvm_obj_write_unflushed(struct cvm_obj *obj)
{
	struct cvm_volume *vol = obj->cmd->vol;
	u64 instances[CVM_MAX_PG_WIDTH];
	u32 devs[CVM_MAX_PG_WIDTH];
	unsigned int i, nr = 0;

	/* Durable where acknowledged; earlier writes keep their entry. */
	if (obj->cmd->wire_flags & CVM_WIRE_F_FUA)
		return;
	for_each_set_bit(i, &obj->acked_mask, obj->nr_acting) {
		devs[nr] = obj->devs[i];
		instances[nr++] = READ_ONCE(obj->instances[i]);
	}
	if (cvm_unflushed_record(&vol->unflushed, obj->ext.object_no, devs,
				 instances, nr)) {
		/* A FLUSH could not account for it: fail it now. */
		pr_warn_ratelimited("volume %llu object %llu: cannot record the write for FLUSH\n",
				    vol->id, obj->ext.object_no);
		cvm_obj_fail(obj, BLK_STS_RESOURCE);
	}
}

/*
 * A write's sub-requests are all done: record the replicas it missed as
 * stale, if some replica took it, and settle its status.
 */
static void cvm_obj_write_finish(struct cvm_obj *obj)
{
	unsigned int acked = atomic_read(&obj->acked);
	const struct cvm_volume *vol = obj->cmd->vol;
	unsigned int need = obj->need;
	int fresh;

	if (!acked) {
		if (obj->status == BLK_STS_OK)
			cvm_obj_fail(obj, READ_ONCE(obj->io_error) ?
				     BLK_STS_IOERR : BLK_STS_TRANSPORT);
		return;
	}
	fresh = cvm_stale_settle(vol->id, obj->ext.object_no, obj->devs,
				 obj->nr_devs, obj->nr_acting, obj->acked_mask,
				 obj->missed, need);
	if (fresh < 0) {
		/* Unrecorded, a missed copy could be read: fail the write. */
		pr_warn_ratelimited("volume %llu object %llu: cannot record the replicas it missed as stale\n",
				    vol->id, obj->ext.object_no);
		cvm_obj_fail(obj, BLK_STS_IOERR);
	} else if (fresh < need && obj->status == BLK_STS_OK) {
		/* Too few complete copies took it: held and sent again. */
		cvm_obj_fail(obj, BLK_STS_TRANSPORT);
	}
	if (obj->status == BLK_STS_OK)
		cvm_obj_write_unflushed(obj);
}

static struct workqueue_struct *cvm_resync_wq;
static void cvm_obj_done(struct cvm_obj *obj);

/*
 * A write succeeded but missed replicas: is the record of that already
 * durable on the replicas that took it (an earlier write BUMPed them)?
 */
static bool cvm_obj_needs_record(const struct cvm_obj *obj)
{
	u64 vol_id = obj->cmd->vol->id;
	unsigned int i;

	if (obj->status != BLK_STS_OK || !obj->missed)
		return false;
	for_each_set_bit(i, &obj->missed, obj->nr_devs)
		if (!cvm_stale_recorded(obj->devs[i], vol_id,
					obj->ext.object_no))
			return true;
	return false;
}

/*
 * BUMP the object's version on the fresh replicas that took the write, so
 * the replicas it missed are behind on disk too, then complete the write.
 * Fewer than the write quorum recorded it: held and sent again.
 */
static void cvm_obj_record_work(struct work_struct *work)
{
	struct cvm_obj *obj = container_of(work, struct cvm_obj, record_work);
	const struct cvm_volume *vol = obj->cmd->vol;
	unsigned int i, bumped = 0;

	for_each_set_bit(i, &obj->acked_mask, obj->nr_acting) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_BUMP, .volume_id = vol->id,
			.attach_epoch = vol->attach_epoch,
			.object_no = obj->ext.object_no,
		};

		if (cvm_stale_test(obj->devs[i], vol->id, obj->ext.object_no))
			continue;
		if (!cvm_call(obj->devs[i], &c) && !c.status)
			bumped++;
	}
	if (bumped < obj->need) {
		pr_warn_ratelimited("volume %llu object %llu: the record of a degraded write reached %u replicas, retrying\n",
				    vol->id, obj->ext.object_no, bumped);
		cvm_obj_fail(obj, BLK_STS_TRANSPORT);
	} else {
		for_each_set_bit(i, &obj->missed, obj->nr_devs)
			cvm_stale_set_recorded(obj->devs[i], vol->id,
					       obj->ext.object_no);
	}
	cvm_obj_done(obj);
}

/*
 * A discard (or unmapping write-zeroes) of a whole object that every
 * replica applied, none of them stale: the extents can go (REMOVE).
 * Not otherwise: a replica that missed it would keep its old bytes while
 * the others lost the versions that say so.
 */
static bool cvm_obj_wants_remove(const struct cvm_obj *obj)
{
	const struct cvm_io *cmd = obj->cmd;
	const struct cvm_volume *vol = cmd->vol;
	unsigned int i;

	if ((cmd->op != CVM_WIRE_OP_DISCARD &&
	     (cmd->op != CVM_WIRE_OP_WRITE_ZEROES ||
	      (cmd->wire_flags & CVM_WIRE_F_NOUNMAP))) ||
	    vol->layout.ec_k || obj->status != BLK_STS_OK || obj->missed ||
	    obj->ext.offset || obj->ext.len != cvm_object_size(&vol->layout) ||
	    atomic_read(&obj->acked) != obj->nr_devs)
		return false;
	for (i = 0; i < obj->nr_devs; i++)
		if (cvm_stale_test(obj->devs[i], vol->id, obj->ext.object_no))
			return false;
	return true;
}

/*
 * Every replica now reads the object as zeroes: free its extents.  A
 * replica whose REMOVE failed keeps a zeroed extent with its version while
 * the others lost theirs: it is recorded stale, and its resync removes it
 * (the source holds nothing), so versions never go back on one replica
 * only.  A crash midway leaves zeroes with the intent bit on the others
 * (the scan at attach copies them back).  The discard succeeded either way.
 */
static void cvm_obj_remove_work(struct work_struct *work)
{
	struct cvm_obj *obj = container_of(work, struct cvm_obj, record_work);
	const struct cvm_volume *vol = obj->cmd->vol;
	unsigned int i;

	for (i = 0; i < obj->nr_devs; i++) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_REMOVE, .volume_id = vol->id,
			.attach_epoch = vol->attach_epoch,
			.object_no = obj->ext.object_no,
		};

		if (!cvm_call(obj->devs[i], &c) &&
		    (!c.status || c.status == CVM_WIRE_STATUS_NOT_FOUND))
			continue;
		if (cvm_stale_mark(obj->devs[i], vol->id, obj->ext.object_no))
			pr_warn_ratelimited("volume %llu object %llu: device %u kept its extent and cannot be recorded stale\n",
					    vol->id, obj->ext.object_no,
					    obj->devs[i]);
	}
	cvm_obj_done(obj);
}

/* Every device answered a FLUSH: was everything made durable somewhere? */
static void cvm_obj_flush_finish(struct cvm_obj *obj)
{
	struct cvm_io *cmd = obj->cmd;

	int ret;

	if (obj->status != BLK_STS_OK)
		return;
	ret = cvm_flush_finish(&cmd->vol->unflushed, cmd->vol->id,
			       cmd->flush_gen);
	/* -EAGAIN: replicas that hold writes were not reached: held. */
	if (ret)
		cvm_obj_fail(obj, ret == -EAGAIN ? BLK_STS_TRANSPORT :
						   BLK_STS_IOERR);
}

static void cvm_obj_ec_done(struct cvm_ec_io *io)
{
	struct cvm_obj *obj = container_of(io, struct cvm_obj, ec);

	if (io->status != BLK_STS_OK)
		cvm_obj_fail(obj, io->status);
	cvm_obj_done(obj);
}

static bool cvm_obj_is_ec(const struct cvm_obj *obj)
{
	return obj->cmd->vol->layout.ec_k &&
	       (obj->cmd->op == CVM_WIRE_OP_READ ||
		obj->cmd->op == CVM_WIRE_OP_WRITE);
}

/*
 * An EC read inside one chunk whose shard is reachable and not stale: sent
 * straight from here into the request's pages, as a replicated read is.
 * Anything else, or its failure, goes to ec_io.c.
 */
static bool cvm_obj_ec_read_direct(struct cvm_obj *obj)
{
	const struct cvm_layout *l = &obj->cmd->vol->layout;
	const struct cvm_state *st;
	struct cvm_chunk_pos pos;
	struct cvm_xprt_req *req;
	struct cvm_conn *conn;
	u32 j, width, dev;
	const u32 *row;
	bool sent = false;

	if (cvm_ec_locate(l, obj->ext.offset, &pos, NULL) ||
	    pos.offset + obj->ext.len > 1U << l->unit_shift)
		return false;
	j = pos.chunk;
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	row = st ? cvm_obj_row(obj, st, &width) : NULL;
	if (!row || j >= width)
		goto out_unlock;
	dev = row[j];
	if (dev == CVM_DEV_NONE ||
	    cvm_stale_test(dev, obj->cmd->vol->id, obj->ext.object_no))
		goto out_unlock;
	conn = cvm_dev_conn(st, dev);
	req = conn ? cvm_sub_alloc(obj, st, conn) : NULL;
	if (!req)
		goto out_unlock;
	req->hdr.shard = cpu_to_le16(j);
	req->hdr.offset = cpu_to_le64(cvm_ec_shard_offset(l, &pos));
	__set_bit(0, &obj->tried);
	/* One for the read, one bias dropped by cvm_obj_advance(). */
	atomic_set(&obj->pending, 2);
	cvm_sub_submit(obj, req);
	sent = true;
out_unlock:
	rcu_read_unlock();
	return sent;
}

/* An EC volume's read or write: ec_io.c runs the whole piece. */
static void cvm_obj_ec_start(struct cvm_obj *obj)
{
	struct cvm_ec_io *io = &obj->ec;

	io->vol = obj->cmd->vol;
	io->op = obj->cmd->op;
	io->wire_flags = obj->cmd->wire_flags;
	io->ext = obj->ext;
	io->bvec = obj->bvec;
	io->nr_bvec = obj->nr_bvec;
	io->status = BLK_STS_OK;
	io->done = cvm_obj_ec_done;
	obj->state = CVM_OBJ_WAIT;
	cvm_ec_io_queue(io);
}

/* Were enough devices of the object's PG scanned (intent.c)? */
static bool cvm_obj_ready(const struct cvm_obj *obj)
{
	const struct cvm_state *st;
	const u32 *row;
	bool ready = false;
	u32 width;

	if (likely(READ_ONCE(obj->cmd->vol->scan_done)))
		return true;
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	row = st ? cvm_obj_row(obj, st, &width) : NULL;
	if (row)
		ready = cvm_intent_ready(obj->cmd->vol, st, row, width);
	rcu_read_unlock();
	return ready;
}

/*
 * A write to an object whose row has a device the map marks full is
 * refused with NO_SPACE before anything is sent: no copy takes it, so no
 * replica goes stale because one device filled first.  cvmd marks a device
 * full past the cluster's full_ratio and clears it once space was freed
 * (discards and removals still go through).
 */
static bool cvm_obj_row_full(struct cvm_obj *obj)
{
	const struct cvm_state *st;
	const u32 *row;
	bool full = false;
	u32 width, i;

	if (obj->cmd->op != CVM_WIRE_OP_WRITE)
		return false;
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	/* The common case, no device full, costs no row lookup. */
	row = st && st->any_full ? cvm_obj_row(obj, st, &width) : NULL;
	for (i = 0; row && i < width && !full; i++)
		full = row[i] != CVM_DEV_NONE && cvm_state_dev_full(st, row[i]);
	rcu_read_unlock();
	return full;
}

/* Returns true when @obj is done; see the diagram above. */
static bool cvm_obj_advance(struct cvm_obj *obj)
{
	for (;;) {
		switch (obj->state) {
		case CVM_OBJ_START:
			/* Until its devices' records were read: held. */
			if (obj->cmd->op != CVM_WIRE_OP_FLUSH &&
			    !cvm_obj_ready(obj)) {
				cvm_obj_fail(obj, BLK_STS_TRANSPORT);
				return true;
			}
			if (cvm_obj_row_full(obj)) {
				cvm_obj_fail(obj, BLK_STS_NOSPC);
				return true;
			}
			/* Its intent bits are set now: clean them later. */
			if (cvm_op_is_write(obj->cmd->op))
				cvm_intent_touch(obj->cmd->vol,
						 obj->ext.object_no);
			if (cvm_obj_is_ec(obj)) {
				if (obj->cmd->op != CVM_WIRE_OP_READ ||
				    !cvm_obj_ec_read_direct(obj)) {
					cvm_obj_ec_start(obj);
					return false;
				}
				obj->state = CVM_OBJ_WAIT;
				if (!atomic_dec_and_test(&obj->pending))
					return false;
				break;
			}
			if (!cvm_obj_send(obj)) {
				if (cvm_op_is_write(obj->cmd->op))
					cvm_obj_write_finish(obj);
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
			if (cvm_obj_is_ec(obj)) {
				/* A direct read: a failure is rebuilt. */
				if (obj->status == BLK_STS_OK ||
				    obj->status == BLK_STS_NEXUS)
					return true;
				obj->status = BLK_STS_OK;
				cvm_obj_ec_start(obj);
				return false;
			}
			if (cvm_op_is_write(obj->cmd->op)) {
				cvm_obj_write_finish(obj);
				if (cvm_obj_needs_record(obj))
					INIT_WORK(&obj->record_work,
						  cvm_obj_record_work);
				else if (cvm_obj_wants_remove(obj))
					INIT_WORK(&obj->record_work,
						  cvm_obj_remove_work);
				else
					return true;
				queue_work(cvm_resync_wq, &obj->record_work);
				return false;
			}
			if (obj->cmd->op == CVM_WIRE_OP_FLUSH) {
				cvm_obj_flush_finish(obj);
				return true;
			}
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
	if (cvm_op_is_write(cmd->op))
		cvm_fence_exit(obj);
	cvm_io_put(cmd);
}

/* Transport completion: softirq or process context, never sleeps. */
static void cvm_sub_done(struct cvm_xprt_req *req)
{
	struct cvm_obj *obj = req->core_priv;
	blk_status_t sts = cvm_wire_blk_status(req);
	unsigned int i;

	if (cvm_op_is_write(obj->cmd->op)) {
		/*
		 * A replica that did not apply it while others may have is
		 * stale for the object, refusal or not.  Transport errors
		 * and its disk's I/O errors are that replica's failure: the
		 * write counts on the others.  Other refusals (NO_SPACE,
		 * INVALID, fenced) still fail the write.
		 */
		if (sts == BLK_STS_IOERR &&
		    req->status == CVM_WIRE_STATUS_IO_ERROR) {
			WRITE_ONCE(obj->io_error, true);
			sts = BLK_STS_TRANSPORT;
		}
		for (i = 0; i < obj->nr_devs; i++) {
			if (obj->devs[i] != req->conn->hello.device_id)
				continue;
			/* A backfill target only misses it: copied again. */
			if (i >= obj->nr_acting && sts != BLK_STS_OK)
				sts = BLK_STS_TRANSPORT;
			if (sts == BLK_STS_OK) {
				WRITE_ONCE(obj->instances[i],
					   req->conn->hello.instance);
				set_bit(i, &obj->acked_mask);
			} else {
				set_bit(i, &obj->missed);
			}
		}
		if (sts == BLK_STS_OK)
			atomic_inc(&obj->acked);
		else if (sts == BLK_STS_TRANSPORT)
			sts = BLK_STS_OK;  /* not a refusal: missed, stale */
	} else if (obj->cmd->op == CVM_WIRE_OP_FLUSH) {
		if (sts == BLK_STS_OK)
			cvm_dev_flush_ok(req->conn->hello.device_id,
					 obj->cmd->flush_gen, req->conn->hello.instance);
		else if (sts == BLK_STS_TRANSPORT)
			sts = BLK_STS_OK;  /* cvm_flush_finish() decides */
	}
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
		cmd->flush_gen = cvm_flush_begin();
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
		obj->nr_devs = 0;
		obj->need = 0;
		obj->missed = 0;
		obj->acked_mask = 0;
		obj->io_error = false;
		atomic_set(&obj->acked, 0);
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

/* When this host last started a client request (resync pacing, below). */
static unsigned long cvm_client_last;	/* jiffies of the last client request */

static void cvm_client_seen(void)
{
	unsigned long now = jiffies;

	if (READ_ONCE(cvm_client_last) != now)
		WRITE_ONCE(cvm_client_last, now);
}

static blk_status_t cvm_queue_rq(struct blk_mq_hw_ctx *hctx,
				 const struct blk_mq_queue_data *bd)
{
	struct cvm_io *cmd = blk_mq_rq_to_pdu(bd->rq);
	unsigned int i;
	blk_status_t sts;

	cmd->vol = hctx->queue->queuedata;
	cmd->rq = bd->rq;
	/* The block layer's own start survives BLK_STS_RESOURCE retries. */
	if (!cmd->held)
		cmd->start_ns = bd->rq->start_time_ns ?: ktime_get_ns();
	sts = cvm_io_prepare(cmd);
	if (!sts && cvm_op_is_write(cmd->op) && !cvm_fence_enter(cmd))
		sts = BLK_STS_RESOURCE;		/* an object is being resynced */
	if (sts) {
		cvm_io_free_bvec(cmd);
		/* blk-mq ends it with @sts: it counts as done. */
		if (sts != BLK_STS_RESOURCE && sts != BLK_STS_DEV_RESOURCE) {
			cmd->held = false;
			cvm_stats_record(cmd->vol, bd->rq, cmd->start_ns);
		}
		return sts;
	}

	blk_mq_start_request(bd->rq);
	cvm_client_seen();
	atomic_set(&cmd->pending, cmd->nr_objs + 1);
	for (i = 0; i < cmd->nr_objs; i++)
		if (cvm_obj_advance(&cmd->objs[i]))
			cvm_obj_done(&cmd->objs[i]);
	cvm_io_put(cmd);
	return BLK_STS_OK;
}

/*
 * ---- holding I/O through an outage ----
 *
 * A request that no replica could take (every path down, every replica
 * answered with a transport error, a payload CRC mismatch or BUSY; for EC
 * fewer than k shards) is not failed: it goes back to the block layer's
 * requeue list and is sent again every CVM_HOLD_RETRY, placed with the map
 * and the paths of that moment, until it succeeds or cvm.loss_timeout
 * seconds have passed since it was first held (as nvme-fabrics'
 * ctrl_loss_tmo).  A request is idempotent (a write rewrites the same
 * stable pages), so resending all of it is safe.  A refusal of the
 * protocol (fenced, no space, disk error on every replica, invalid) still
 * fails at once, as does everything on a volume being detached.
 *
 * Waiting tasks sleep in D state meanwhile: a loss timeout above the
 * kernel's hung-task timeout (120 s by default) lets it report them, as it
 * would for nvme.
 */
#define CVM_HOLD_RETRY_MS	250

static unsigned int cvm_loss_timeout = 600;
module_param_named(loss_timeout, cvm_loss_timeout, uint, 0644);
MODULE_PARM_DESC(loss_timeout,
		 "seconds I/O that no replica can take is held and retried before it fails; 0 fails at once (default 600)");

/* Should @cmd, ending with @sts, be held and sent again? */
static bool cvm_io_hold(struct cvm_io *cmd, blk_status_t sts)
{
	struct cvm_volume *vol = cmd->vol;
	unsigned int limit = READ_ONCE(cvm_loss_timeout);

	if (sts != BLK_STS_TRANSPORT || !limit || READ_ONCE(vol->dying))
		return false;
	if (!cmd->held) {
		cmd->held = true;
		cmd->hold_until = jiffies + (unsigned long)limit * HZ;
		pr_warn_ratelimited("volume %llu: no replica reachable, holding I/O up to %u s\n",
				    vol->id, limit);
		return true;
	}
	if (time_before(jiffies, cmd->hold_until))
		return true;
	pr_err_ratelimited("volume %llu: no replica reachable, gave up after %u s (cvm.loss_timeout)\n",
			   vol->id, limit);
	return false;
}

static void cvm_complete_rq(struct request *rq)
{
	struct cvm_io *cmd = blk_mq_rq_to_pdu(rq);
	blk_status_t sts = READ_ONCE(cmd->status);

	cvm_io_free_bvec(cmd);
	if (cvm_io_hold(cmd, sts)) {
		blk_mq_requeue_request(rq, false);
		blk_mq_delay_kick_requeue_list(rq->q, CVM_HOLD_RETRY_MS);
		return;
	}
	cmd->held = false;
	cvm_stats_record(cmd->vol, rq, cmd->start_ns);
	blk_mq_end_request(rq, sts);
}

/*
 * blk-mq's timer fired: the request has waited the queue's timeout for
 * its sub-requests.  Those are the transports': each completes, at the
 * latest when the request watchdog (cvm.request_timeout) drops a silent
 * connection, and then the request is retried or ends.  Its pages are in
 * flight, so it cannot be completed from here: wait on.
 */
static enum blk_eh_timer_return cvm_timeout_rq(struct request *rq)
{
	struct cvm_io *cmd = blk_mq_rq_to_pdu(rq);

	pr_warn_ratelimited("volume %llu: a %s of %u bytes at %llu is still waiting for its targets\n",
			    cmd->vol->id, blk_op_str(req_op(rq)),
			    blk_rq_bytes(rq), blk_rq_pos(rq) << SECTOR_SHIFT);
	return BLK_EH_RESET_TIMER;
}

const struct blk_mq_ops cvm_mq_ops = {
	.queue_rq	= cvm_queue_rq,
	.complete	= cvm_complete_rq,
	.timeout	= cvm_timeout_rq,
};

/*
 * ---- stale objects and resync ----
 *
 * What is recorded.  When a write (discard, write-zeroes) of object O of
 * volume V succeeded on some replica but could not reach device D (no
 * connection, transport error, connection lost, map marks D down), the
 * key (V, O) is recorded in D's stale set.  A read never goes to a device
 * whose set holds the object; a write still does (it updates part of the
 * copy; the copy stays stale until resynced whole).
 *
 * Where.  One struct cvm_stale_dev per device id ever named by an
 * installed map, in the xarray cvm_stale_devs, made at map commit
 * (cvm_stale_add_devices()) and freed only at module exit: the sets are
 * keyed by device id, not by path or state, so they survive map swaps and
 * reconnects.  Each holds an rhashtable of (volume, object) keys (RCU
 * lookups from the I/O path) and a list of the same entries for the resync
 * walk, both changed under @lock; at most CVM_STALE_MAX_PER_DEV entries
 * (about 64 bytes each): a write that cannot be recorded fails instead.
 *
 * Lifetime of an entry.  Added by the write path; removed only by the
 * device's resync work: once the whole object was copied from a fresh
 * replica, or when the volume is no longer attached (its stale copies are
 * then cvmd's to repair: it saw PATH_DOWN) or the device no longer holds
 * the object's PG under the current map.  Freed after a grace period.
 *
 * Resync.  The resync work of a device runs when a connection to it is
 * made (PATH_UP), when a map is installed, and a second after an entry was
 * added; it copies one object at a time, in chunks of at most
 * CVM_WIRE_MAX_DATA_LEN: READ from a replica that is connected and not
 * stale for the object, WRITE (FUA) to the device, then clears the entry.
 * It stops when the device is unreachable again (the next PATH_UP restarts
 * it) and retries objects it could not copy a second later.
 *
 * Races with writes: object fences.  A write racing with the copy could
 * land on the device before the copy's older bytes and be overwritten by
 * them.  So the copy excludes writes to its object: writers count
 * themselves in a fence bucket (hash of volume and object) for the life
 * of the write, from queue_rq to the object's completion; the resync
 * raises the bucket's fence, waits for the bucket's writes in flight to
 * drain, copies, clears the entry and drops the fence.  queue_rq that
 * finds its object fenced backs out and returns BLK_STS_RESOURCE: blk-mq
 * retries it a few milliseconds later.  The writer increments then checks
 * the fence, the resync raises the fence then checks the count, both with
 * a full barrier between: one of them always sees the other.  A write is
 * held back for at most one object's copy; unrelated objects sharing the
 * bucket wait too, which is harmless.
 */
#define CVM_STALE_MAX_PER_DEV	(1U << 20)
#define CVM_RESYNC_RETRY	HZ
#define CVM_FENCE_BITS		10
#define CVM_FENCE_DRAIN		(10 * HZ)

struct cvm_stale_key {
	u64	volume_id;
	u64	object_no;
};

/*
 * struct cvm_stale_obj - one stale object of a device
 * @node: in cvm_stale_dev.ht
 * @key: volume and object
 * @entry: in cvm_stale_dev.objs
 * @pass: resync pass that last visited it
 * @recorded: the replicas that took the write have BUMPed the object's
 *	version: the record is durable on them (intent.c)
 * @rcu: freed after a grace period (RCU lookups)
 */
struct cvm_stale_obj {
	struct rhash_head	node;
	struct cvm_stale_key	key;
	struct list_head	entry;
	unsigned long		pass;
	bool			recorded;
	struct rcu_head		rcu;
};

/*
 * struct cvm_stale_dev - the stale set of one device
 * @device_id: the device
 * @ht: its stale objects, by key
 * @lock: protects changes of @ht and @objs
 * @objs: the same objects, in resync order
 * @count: entries in @ht
 * @pass: resync passes so far (only the resync work uses it)
 * @resync: the resync work
 */
struct cvm_stale_dev {
	u32			device_id;
	struct rhashtable	ht;
	spinlock_t		lock;
	struct list_head	objs;
	atomic_long_t		count;
	unsigned long		pass;
	struct delayed_work	resync;
	spinlock_t		flush_lock;
	u64			flushed_gen;	/* newest FLUSH it completed */
	u64			flushed_instance;	/* answered by it */
};

struct cvm_fence {
	atomic_t	inflight;	/* writes in flight */
	atomic_t	fenced;		/* resyncs copying an object */
};

static const struct rhashtable_params cvm_stale_params = {
	.key_len		= sizeof(struct cvm_stale_key),
	.key_offset		= offsetof(struct cvm_stale_obj, key),
	.head_offset		= offsetof(struct cvm_stale_obj, node),
	.automatic_shrinking	= true,
};

static DEFINE_XARRAY(cvm_stale_devs);
static atomic_long_t cvm_stale_total = ATOMIC_LONG_INIT(0);
static struct cvm_fence cvm_fences[1 << CVM_FENCE_BITS];

static struct cvm_fence *cvm_fence_of(u64 volume_id, u64 object_no)
{
	return &cvm_fences[hash_64(object_no ^ (volume_id * GOLDEN_RATIO_64),
				   CVM_FENCE_BITS)];
}

/* queue_rq of a write: false if one of its objects is being resynced. */
static bool cvm_fence_enter(const struct cvm_io *cmd)
{
	unsigned int i;

	for (i = 0; i < cmd->nr_objs; i++)
		atomic_inc(&cvm_fence_of(cmd->vol->id,
					 cmd->objs[i].ext.object_no)->inflight);
	/* Count ourselves before looking: pairs with cvm_fence_drain(). */
	smp_mb__after_atomic();
	for (i = 0; i < cmd->nr_objs; i++)
		if (atomic_read(&cvm_fence_of(cmd->vol->id,
					      cmd->objs[i].ext.object_no)->fenced))
			goto out_backout;
	return true;

out_backout:
	for (i = 0; i < cmd->nr_objs; i++)
		atomic_dec(&cvm_fence_of(cmd->vol->id,
					 cmd->objs[i].ext.object_no)->inflight);
	return false;
}

/* A write's object is done (stale entries recorded). */
static void cvm_fence_exit(const struct cvm_obj *obj)
{
	/* Stale entries recorded before the resync may see us gone. */
	smp_mb__before_atomic();
	atomic_dec(&cvm_fence_of(obj->cmd->vol->id,
				 obj->ext.object_no)->inflight);
}

/* Any context; the device's set exists once a map named the device. */
/*
 * Every object keeps at least one replica that no degraded write left
 * behind (a "fresh" one): resync copies from it, reads go to it.  Were two
 * writes of an object each taken by a different single replica, every
 * replica would miss one of them and none could be read.  So a write only
 * counts the replicas that took it and are fresh for the object, and the
 * count and the marking of the replicas it missed happen together, under
 * this lock (also taken by flush.c when a FLUSH marks replicas).
 */
static DEFINE_SPINLOCK(cvm_stale_settle_lock);

void cvm_stale_settle_begin(void)
	__acquires(&cvm_stale_settle_lock)
{
	spin_lock_bh(&cvm_stale_settle_lock);
}

void cvm_stale_settle_end(void)
	__releases(&cvm_stale_settle_lock)
{
	spin_unlock_bh(&cvm_stale_settle_lock);
}

/*
 * cvm_stale_settle() - a write of the object reached the replicas of
 * @acked (a bit mask over @devs) and missed those of @missed
 *
 * Returns how many replicas of @acked among the first @nr_counted of @devs
 * (the row; the rest are backfill targets) are fresh for the object; when that
 * is at least @need, the replicas of @missed have been recorded stale.
 * A negative errno when they could not all be recorded.
 */
int cvm_stale_settle(u64 volume_id, u64 object_no, const u32 *devs,
		     unsigned int nr_devs, unsigned int nr_counted,
		     unsigned long acked, unsigned long missed, unsigned int need)
{
	unsigned int i;
	int fresh = 0, ret = 0;

	/* Nothing missed, nothing to mark: keep the lock off the hot path. */
	if (!missed) {
		for_each_set_bit(i, &acked, nr_counted)
			if (!cvm_stale_test(devs[i], volume_id, object_no))
				fresh++;
		return fresh;
	}
	cvm_stale_settle_begin();
	for_each_set_bit(i, &acked, nr_counted)
		if (!cvm_stale_test(devs[i], volume_id, object_no))
			fresh++;
	if (fresh >= need)
		for_each_set_bit(i, &missed, nr_devs)
			if (cvm_stale_mark(devs[i], volume_id, object_no))
				ret = -ENOMEM;
	cvm_stale_settle_end();
	return ret ?: fresh;
}

static struct cvm_stale_obj *cvm_stale_lookup(u32 device_id, u64 volume_id,
					      u64 object_no)
{
	struct cvm_stale_key key = { volume_id, object_no };
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);

	if (!sd || !atomic_long_read(&sd->count))
		return NULL;
	return rhashtable_lookup(&sd->ht, &key, cvm_stale_params);
}

/* Is the record that @device_id missed a write of the object durable? */
bool cvm_stale_recorded(u32 device_id, u64 volume_id, u64 object_no)
{
	struct cvm_stale_obj *so;
	bool ret;

	rcu_read_lock();
	so = cvm_stale_lookup(device_id, volume_id, object_no);
	ret = so && READ_ONCE(so->recorded);
	rcu_read_unlock();
	return ret;
}

void cvm_stale_set_recorded(u32 device_id, u64 volume_id, u64 object_no)
{
	struct cvm_stale_obj *so;

	rcu_read_lock();
	so = cvm_stale_lookup(device_id, volume_id, object_no);
	if (so)
		WRITE_ONCE(so->recorded, true);
	rcu_read_unlock();
}

bool cvm_stale_test(u32 device_id, u64 volume_id, u64 object_no)
{
	struct cvm_stale_key key = { volume_id, object_no };
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);

	if (!sd || !atomic_long_read(&sd->count))
		return false;
	return rhashtable_lookup_fast(&sd->ht, &key, cvm_stale_params);
}

/*
 * cvm_stale_mark() - record that @device_id missed a write of the object
 *
 * Softirq or process context.  0 when recorded (or already), else an errno
 * and nothing recorded.
 */
int cvm_stale_mark(u32 device_id, u64 volume_id, u64 object_no)
{
	struct cvm_stale_key key = { volume_id, object_no };
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);
	struct cvm_stale_obj *so, *old;

	if (!sd)
		return -ENODEV;
	if (rhashtable_lookup_fast(&sd->ht, &key, cvm_stale_params))
		return 0;
	if (atomic_long_read(&sd->count) >= CVM_STALE_MAX_PER_DEV)
		return -ENOSPC;
	so = kzalloc(sizeof(*so), GFP_ATOMIC);
	if (!so)
		return -ENOMEM;
	so->key = key;

	spin_lock_bh(&sd->lock);
	old = rhashtable_lookup_get_insert_fast(&sd->ht, &so->node,
						cvm_stale_params);
	if (!old) {
		list_add_tail(&so->entry, &sd->objs);
		atomic_long_inc(&sd->count);
		atomic_long_inc(&cvm_stale_total);
	}
	spin_unlock_bh(&sd->lock);
	if (old) {
		kfree(so);
		return IS_ERR(old) ? PTR_ERR(old) : 0;
	}
	/* Reconnected already, or a transient error: the work finds out. */
	queue_delayed_work(cvm_resync_wq, &sd->resync, CVM_RESYNC_RETRY);
	return 0;
}

/* Only the device's resync work (and module exit) removes entries. */
static void cvm_stale_remove(struct cvm_stale_dev *sd,
			     struct cvm_stale_obj *so)
{
	spin_lock_bh(&sd->lock);
	rhashtable_remove_fast(&sd->ht, &so->node, cvm_stale_params);
	list_del(&so->entry);
	atomic_long_dec(&sd->count);
	atomic_long_dec(&cvm_stale_total);
	spin_unlock_bh(&sd->lock);
	kfree_rcu(so, rcu);
}

/* Stale objects of one volume, on every device (backfill.c). */
/* Whether an object of @volume_id is recorded stale on @device_id. */
bool cvm_stale_volume_on(u32 device_id, u64 volume_id)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);
	struct cvm_stale_obj *so;
	bool found = false;

	if (!sd || !atomic_long_read(&sd->count))
		return false;
	spin_lock_bh(&sd->lock);
	list_for_each_entry(so, &sd->objs, entry) {
		if (so->key.volume_id == volume_id) {
			found = true;
			break;
		}
	}
	spin_unlock_bh(&sd->lock);
	return found;
}

u64 cvm_stale_count(void)
{
	return atomic_long_read(&cvm_stale_total);
}

u64 cvm_stale_dev_count(u32 device_id)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);

	return sd ? atomic_long_read(&sd->count) : 0;
}

/*
 * @device_id completed a FLUSH of generation @gen, answered by its device
 * instance @instance (flush.c).  A newer FLUSH replaces an older one,
 * whatever instance answered either.
 */
void cvm_dev_flush_ok(u32 device_id, u64 gen, u64 instance)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);
	unsigned long flags;

	if (!sd)
		return;
	spin_lock_irqsave(&sd->flush_lock, flags);
	if (gen > sd->flushed_gen) {
		sd->flushed_gen = gen;
		sd->flushed_instance = instance;
	}
	spin_unlock_irqrestore(&sd->flush_lock, flags);
}

/* Has @device_id answered a FLUSH of generation @gen or newer at all? */
bool cvm_dev_flush_answered(u32 device_id, u64 gen)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);
	unsigned long flags;
	bool ok;

	if (!sd)
		return false;
	spin_lock_irqsave(&sd->flush_lock, flags);
	ok = sd->flushed_gen >= gen;
	spin_unlock_irqrestore(&sd->flush_lock, flags);
	return ok;
}

/*
 * Has @device_id completed a FLUSH of generation @gen or newer, answered
 * by the instance @instance that acknowledged the writes it must cover?
 */
bool cvm_dev_flushed(u32 device_id, u64 gen, u64 instance)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);
	unsigned long flags;
	bool ok;

	if (!sd)
		return false;
	spin_lock_irqsave(&sd->flush_lock, flags);
	ok = sd->flushed_gen >= gen && sd->flushed_instance == instance;
	spin_unlock_irqrestore(&sd->flush_lock, flags);
	return ok;
}

/* What a resync needs of a volume, copied under cvm_config_mutex. */
struct cvm_resync_vol {
	u64	id;
	u32	pool_id;
	u64	attach_epoch;
	u64	object_size;
	u32	ec_k, ec_m, unit;	/* ec_k 0: replicated */
};

/*
 * struct cvm_resync_buf - one chunk of an object
 * @pages, @bvec: CVM_RESYNC_PAGES pages and the bio_vecs over them
 * @written: bytes copied, for pacing
 * @current_objs: objects found whole on their device already (a device
 *	back from being out keeps its copies): nothing of them was written
 */
#define CVM_RESYNC_PAGES	(CVM_WIRE_MAX_DATA_LEN >> PAGE_SHIFT)
struct cvm_resync_buf {
	struct page	*pages[CVM_RESYNC_PAGES];
	struct bio_vec	bvec[CVM_RESYNC_PAGES];
	u64		written;
	unsigned long	current_objs;
};

/*
 * ---- pacing: copies yield to client I/O ----
 *
 * The resync works (stale objects and backfill copies alike, of every
 * device) run at full speed while this host started no client request in
 * the last 100 ms.  While it does, all of them together keep to
 * cvm.resync_min_rate KiB/s, sleeping between objects (never under an
 * object fence), so client I/O gets the devices, the network and the CPU
 * and the copy still progresses: DRBD's c-min-rate.  The budget is the
 * host's, not each device's: a backfill onto many new devices would
 * otherwise take that many times the rate.  The window starts afresh each
 * time the client becomes busy.  0: never yield.
 */
static unsigned int cvm_resync_min_rate = 2048;
module_param_named(resync_min_rate, cvm_resync_min_rate, uint, 0644);
MODULE_PARM_DESC(resync_min_rate,
		 "KiB/s all resync and backfill copies of this host keep to while client I/O runs (0: never yield)");

static bool cvm_client_busy(void)
{
	return time_before(jiffies, READ_ONCE(cvm_client_last) + HZ / 10);
}

/* The host's window: since when the client is busy, bytes copied since. */
static DEFINE_SPINLOCK(cvm_pace_lock);
static unsigned long cvm_pace_start;
static u64 cvm_pace_bytes;
static bool cvm_pace_busy;

/* After an object that wrote @bytes: sleep while copies run ahead. */
static void cvm_resync_pace(u64 bytes)
{
	u64 rate = (u64)READ_ONCE(cvm_resync_min_rate) << 10;
	unsigned long due;

	spin_lock(&cvm_pace_lock);
	if (!rate || !cvm_client_busy()) {
		cvm_pace_busy = false;
		spin_unlock(&cvm_pace_lock);
		return;
	}
	if (!cvm_pace_busy) {
		cvm_pace_busy = true;
		cvm_pace_start = jiffies;
		cvm_pace_bytes = 0;
	}
	cvm_pace_bytes += bytes;
	due = cvm_pace_start +
	      (unsigned long)div64_u64(cvm_pace_bytes * HZ, rate);
	/* Busy with nothing to copy for long: no credit saved up from it. */
	if (time_after(jiffies, due + HZ)) {
		cvm_pace_start = jiffies;
		cvm_pace_bytes = bytes;
		due = jiffies + (unsigned long)div64_u64(bytes * HZ, rate);
	}
	spin_unlock(&cvm_pace_lock);
	while (time_before(jiffies, due) && cvm_client_busy())
		schedule_timeout_interruptible(min_t(unsigned long,
						     due - jiffies, HZ / 10));
}

/*
 * One READ or WRITE of @len bytes at @offset of an object, on the current
 * connection of @device_id; sleeps until it is answered.  A WRITE carries
 * @version: the target refuses it (-ESTALE) if it holds a newer one.
 * -ENOTCONN when the device is unreachable or the connection failed, -EIO
 * when the target refused it.
 */
static int cvm_resync_io(u32 device_id, u8 op, const struct cvm_resync_vol *v,
			 u64 object_no, u64 offset, struct cvm_resync_buf *buf,
			 u32 len, u32 version)
{
	struct cvm_call c = {
		.op = op, .volume_id = v->id, .attach_epoch = v->attach_epoch,
		.object_no = object_no, .offset = offset, .length = len,
		.bvec = buf->bvec, .nr_bvec = DIV_ROUND_UP(len, PAGE_SIZE),
		.data_len = len,
	};
	int ret;

	if (op == CVM_WIRE_OP_WRITE) {
		c.flags = CVM_WIRE_F_FUA | CVM_WIRE_F_VERSIONED;
		c.shard_version = version;
	}
	ret = cvm_call(device_id, &c);
	if (ret)
		return ret == -ENOMEM ? ret : -ENOTCONN;
	if (c.status == CVM_WIRE_STATUS_STALE_VERSION)
		return -ESTALE;
	if (c.status != CVM_WIRE_STATUS_OK)
		return -EIO;
	if (op == CVM_WIRE_OP_WRITE)
		buf->written += len;
	return 0;
}

/* The copy is whole: the device takes the version it was copied at. */
static int cvm_resync_set_version(u32 device_id, const struct cvm_resync_vol *v,
				  u64 object_no, u16 shard, u32 version)
{
	struct cvm_call c = {
		.op = CVM_WIRE_OP_SET_VERSION, .volume_id = v->id,
		.attach_epoch = v->attach_epoch, .object_no = object_no,
		.shard = shard, .shard_version = version,
	};
	int ret = cvm_call(device_id, &c);

	if (ret)
		return ret == -ENOMEM ? ret : -ENOTCONN;
	if (c.status == CVM_WIRE_STATUS_STALE_VERSION)
		return -ESTALE;
	return c.status == CVM_WIRE_STATUS_OK ? 0 : -EIO;
}

/*
 * Is @device_id a backfill target of the object's PG (not in its row)?
 * Then its copy is never the authority: one of a newer version than the
 * row's (a device back from being out, the object removed and written
 * anew meanwhile) is removed and copied again.
 */
static bool cvm_resync_is_target(u32 device_id, const struct cvm_resync_vol *v,
				 u64 object_no)
{
	const struct cvm_pg_targets *t;
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	bool target = false;
	u32 i, pg;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, v->pool_id) : NULL;
	if (pt) {
		pg = cvm_object_pg(v->id, object_no, pt->pg_num);
		t = cvm_pool_targets(pt, pg);
		for (i = 0; t && i < t->nr; i++)
			target |= t->devs[i] == device_id;
		for (i = 0; target && i < pt->width; i++)
			target &= pt->devs[(size_t)pg * pt->width + i] !=
				  device_id;
	}
	rcu_read_unlock();
	return target;
}

/*
 * A replica to copy the object from: connected, not stale for it.
 * -ENOENT when @device_id no longer holds the object's PG, -EAGAIN when
 * no replica is fit now.
 */
static int cvm_resync_source(u32 device_id, const struct cvm_resync_vol *v,
			     u64 object_no, u32 *src)
{
	const struct cvm_pg_targets *targets;
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	bool member = false;
	int ret = -EAGAIN;
	const u32 *row;
	u32 i, pg;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, v->pool_id) : NULL;
	if (!pt)
		goto out_unlock;
	pg = cvm_object_pg(v->id, object_no, pt->pg_num);
	row = &pt->devs[(size_t)pg * pt->width];
	/* A backfill target is copied to from the row, never from. */
	targets = cvm_pool_targets(pt, pg);
	for (i = 0; targets && i < targets->nr; i++)
		member |= targets->devs[i] == device_id;
	for (i = 0; i < pt->width; i++) {
		if (row[i] == device_id) {
			member = true;
			continue;
		}
		if (row[i] == CVM_DEV_NONE || ret == 0 ||
		    cvm_stale_test(row[i], v->id, object_no) ||
		    !cvm_dev_conn(st, row[i]))
			continue;
		*src = row[i];
		ret = 0;
	}
	if (!member)
		ret = -ENOENT;
out_unlock:
	rcu_read_unlock();
	return ret;
}

static bool cvm_fence_drain(struct cvm_fence *f);

/*
 * Hold off writes of the object (and of its bucket) until
 * cvm_fence_lower(); NULL if its writes in flight did not drain.
 */
struct cvm_fence *cvm_fence_raise(u64 volume_id, u64 object_no)
{
	struct cvm_fence *f = cvm_fence_of(volume_id, object_no);

	atomic_inc(&f->fenced);
	if (cvm_fence_drain(f))
		return f;
	atomic_dec(&f->fenced);
	return NULL;
}

void cvm_fence_lower(struct cvm_fence *f)
{
	/* What was done under the fence is seen by the writes it let in. */
	smp_mb__before_atomic();
	atomic_dec(&f->fenced);
}

/* Wait for the writes in flight in @f to drain; the fence is up. */
static bool cvm_fence_drain(struct cvm_fence *f)
{
	unsigned long deadline = jiffies + CVM_FENCE_DRAIN;

	/* Fence up before counting: pairs with cvm_fence_enter(). */
	smp_mb__after_atomic();
	while (atomic_read(&f->inflight)) {
		if (time_after(jiffies, deadline))
			return false;
		usleep_range(500, 1000);
	}
	/* What the drained writes recorded is seen by the copy. */
	smp_mb();
	return true;
}

/*
 * Does @device_id hold the @len bytes at @offset of the object that @buf
 * holds?  Read into @held; false when it cannot tell.
 */
static bool cvm_resync_same(u32 device_id, const struct cvm_resync_vol *v,
			    u64 object_no, u64 offset,
			    const struct cvm_resync_buf *buf,
			    struct cvm_resync_buf *held, u32 len)
{
	unsigned int i;

	if (cvm_resync_io(device_id, CVM_WIRE_OP_READ, v, object_no, offset,
			  held, len, 0))
		return false;
	for (i = 0; i < DIV_ROUND_UP(len, PAGE_SIZE); i++) {
		size_t n = min_t(size_t, PAGE_SIZE, len - i * PAGE_SIZE);

		if (memcmp(page_address(buf->pages[i]),
			   page_address(held->pages[i]), n))
			return false;
	}
	return true;
}

/*
 * Copy one stale object to its device and clear it.  0 when done (or the
 * entry dropped), -ENOTCONN when the device is unreachable, another errno
 * to retry later.
 */
static int cvm_resync_obj(struct cvm_stale_dev *sd, struct cvm_stale_obj *so,
			  struct cvm_resync_buf *buf, struct cvm_resync_buf *held)
{
	u64 object_no = so->key.object_no;
	struct cvm_resync_vol v = {};
	struct cvm_volume *vol;
	struct cvm_fence *f;
	u32 src = 0, len, version = 0, i;
	bool copy_all, wrote = false;
	u16 shard = 0;
	u64 off;
	int ret;

	mutex_lock(&cvm_config_mutex);
	vol = cvm_volume_lookup(so->key.volume_id);
	if (vol) {
		v.id = vol->id;
		v.pool_id = vol->pool_id;
		v.attach_epoch = vol->attach_epoch;
		v.object_size = cvm_object_size(&vol->layout);
		v.ec_k = vol->layout.ec_k;
		v.ec_m = vol->ec_m;
		v.unit = 1U << vol->layout.unit_shift;
	}
	mutex_unlock(&cvm_config_mutex);
	if (!vol) {
		pr_warn("device %u: volume %llu object %llu left stale: volume detached\n",
			sd->device_id, so->key.volume_id, object_no);
		cvm_stale_remove(sd, so);
		return 0;
	}

	f = cvm_fence_of(v.id, object_no);
	atomic_inc(&f->fenced);
	if (!cvm_fence_drain(f)) {
		ret = -EBUSY;
		goto out_unfence;
	}
	if (v.ec_k) {
		struct cvm_ec_geom g = {
			.vol_id = v.id, .pool_id = v.pool_id,
			.attach_epoch = v.attach_epoch,
			.k = v.ec_k, .m = v.ec_m, .unit = v.unit,
		};

		/* A shard is not a copy: rebuild it from the others. */
		ret = cvm_ec_resync(sd->device_id, &g, object_no,
				    v.object_size, &shard);
		if (!ret)	/* about a shard's bytes, for pacing */
			buf->written += div_u64(v.object_size, v.ec_k);
	} else {
		ret = cvm_resync_source(sd->device_id, &v, object_no, &src);
	}
	if (ret == -ENOENT) {
		/* The map moved the PG away: nobody reads this copy. */
		cvm_stale_remove(sd, so);
		ret = 0;
		goto out_unfence;
	}
	if (ret)
		goto out_done;
	/* The version the copy carries: the newest of the others. */
	if (cvm_intent_version(v.id, v.attach_epoch, v.pool_id, object_no,
			       v.ec_k, sd->device_id, &version)) {
		ret = -EAGAIN;
		goto out_unfence;
	}
	if (v.ec_k)
		goto out_version;
	/* The source holds nothing (a discard removed it): nor should we. */
	ret = cvm_intent_stat(src, v.id, v.attach_epoch, object_no, 0, &i);
	if (ret == -ENOENT) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_REMOVE, .volume_id = v.id,
			.attach_epoch = v.attach_epoch, .object_no = object_no,
		};

		ret = cvm_call(sd->device_id, &c);
		if (!ret && c.status && c.status != CVM_WIRE_STATUS_NOT_FOUND)
			ret = -EIO;
		goto out_done;
	}
	if (ret) {
		ret = -EAGAIN;
		goto out_unfence;
	}
	/*
	 * A copy the device holds already (it is back from being out, or it
	 * missed part of the writes) is compared chunk by chunk: only what
	 * differs is written.  Under the fence, so no write races the compare.
	 */
	copy_all = cvm_intent_stat(sd->device_id, v.id, v.attach_epoch,
				   object_no, 0, &i) != 0;
	len = min_t(u64, v.object_size, CVM_WIRE_MAX_DATA_LEN);
	for (off = 0; off < v.object_size; off += len) {
		ret = cvm_resync_io(src, CVM_WIRE_OP_READ, &v, object_no, off,
				    buf, len, 0);
		if (ret) {
			ret = -EAGAIN;		/* the source, not the device */
			goto out_unfence;
		}
		if (!copy_all && cvm_resync_same(sd->device_id, &v, object_no,
						 off, buf, held, len)) {
			buf->written += len;	/* read, for pacing */
			continue;
		}
		ret = cvm_resync_io(sd->device_id, CVM_WIRE_OP_WRITE, &v,
				    object_no, off, buf, len, version);
		if (ret)
			goto out_refused;
		wrote = true;
	}
	if (!wrote)
		buf->current_objs++;
out_version:
	ret = cvm_resync_set_version(sd->device_id, &v, object_no, shard,
				     version);
out_refused:
	if (ret == -ESTALE && cvm_resync_is_target(sd->device_id, &v, object_no)) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_REMOVE, .volume_id = v.id,
			.attach_epoch = v.attach_epoch, .object_no = object_no,
			.shard = shard,
		};

		pr_info_ratelimited("device %u: volume %llu object %llu: its old copy is newer than the row's (%u): removed, copied again\n",
				    sd->device_id, v.id, object_no, version);
		ret = cvm_call(sd->device_id, &c) ? -ENOTCONN : -EAGAIN;
		goto out_unfence;
	}
	if (ret == -ESTALE) {
		/* Never write an older copy over a newer one: left stale. */
		pr_warn_ratelimited("device %u: volume %llu object %llu holds a newer version than its copies (%u): left stale\n",
				    sd->device_id, v.id, object_no, version);
		goto out_unfence;
	}
out_done:
	if (!ret)
		cvm_stale_remove(sd, so);

out_unfence:
	/* The entry is gone before writers may pass the fence again. */
	smp_mb__before_atomic();
	atomic_dec(&f->fenced);
	/*
	 * Its intent bits go once every replica agrees.  Not under the fence:
	 * detach holds the mutex while it waits for writes in flight.
	 */
	if (!ret) {
		mutex_lock(&cvm_config_mutex);
		vol = cvm_volume_lookup(v.id);
		if (vol)
			cvm_intent_touch(vol, object_no);
		mutex_unlock(&cvm_config_mutex);
	}
	return ret;
}

static struct cvm_resync_buf *cvm_resync_buf_alloc(void)
{
	struct cvm_resync_buf *buf = kvzalloc(sizeof(*buf), GFP_KERNEL);
	unsigned int i;

	if (!buf)
		return NULL;
	for (i = 0; i < CVM_RESYNC_PAGES; i++) {
		buf->pages[i] = alloc_page(GFP_KERNEL);
		if (!buf->pages[i])
			goto out_free;
		bvec_set_page(&buf->bvec[i], buf->pages[i], PAGE_SIZE, 0);
	}
	return buf;

out_free:
	while (i--)
		__free_page(buf->pages[i]);
	kvfree(buf);
	return NULL;
}

static void cvm_resync_buf_free(struct cvm_resync_buf *buf)
{
	unsigned int i;

	for (i = 0; i < CVM_RESYNC_PAGES; i++)
		__free_page(buf->pages[i]);
	kvfree(buf);
}

/*
 * One pass over the device's stale objects, oldest first; each visited
 * object moves to the tail, so objects added meanwhile are visited too.
 */
static void cvm_resync_work(struct work_struct *work)
{
	struct cvm_stale_dev *sd = container_of(to_delayed_work(work),
						struct cvm_stale_dev, resync);
	unsigned long pass = ++sd->pass;
	struct cvm_resync_buf *buf, *held;
	struct cvm_stale_obj *so;
	unsigned long done = 0;
	u64 paced = 0;
	int ret = 0;

	if (!atomic_long_read(&sd->count))
		return;
	buf = cvm_resync_buf_alloc();
	if (!buf)
		goto out_retry;
	held = cvm_resync_buf_alloc();
	if (!held)
		goto out_free_buf;
	for (;;) {
		spin_lock_bh(&sd->lock);
		so = list_first_entry_or_null(&sd->objs, struct cvm_stale_obj,
					      entry);
		if (so && so->pass != pass) {
			so->pass = pass;
			list_move_tail(&so->entry, &sd->objs);
		} else {
			so = NULL;
		}
		spin_unlock_bh(&sd->lock);
		if (!so)
			break;
		ret = cvm_resync_obj(sd, so, buf, held);
		if (ret == -ENOTCONN)
			break;
		if (!ret)
			done++;
		else
			pr_warn_ratelimited("device %u: volume %llu object %llu not resynced (%pe), retrying\n",
					    sd->device_id, so->key.volume_id,
					    so->key.object_no, ERR_PTR(ret));
		cvm_resync_pace(buf->written - paced);
		paced = buf->written;
		cond_resched();
	}
	if (done)
		pr_info("device %u: %lu stale objects resynced (%lu of them current there already), %ld left\n",
			sd->device_id, done, buf->current_objs,
			atomic_long_read(&sd->count));
	cvm_resync_buf_free(held);
out_free_buf:
	cvm_resync_buf_free(buf);
	/* Unreachable: the next connection restarts it. */
	if (ret == -ENOTCONN)
		return;
out_retry:
	if (atomic_long_read(&sd->count))
		queue_delayed_work(cvm_resync_wq, &sd->resync,
				   CVM_RESYNC_RETRY);
}

/* Resync @device_id now (a connection to it was made). */
void cvm_stale_kick(u32 device_id)
{
	struct cvm_stale_dev *sd = xa_load(&cvm_stale_devs, device_id);

	if (sd && atomic_long_read(&sd->count))
		mod_delayed_work(cvm_resync_wq, &sd->resync, 0);
}

/* A new map: every device with stale objects may have a source now. */
void cvm_stale_kick_all(void)
{
	struct cvm_stale_dev *sd;
	unsigned long id;

	xa_for_each(&cvm_stale_devs, id, sd)
		if (atomic_long_read(&sd->count))
			mod_delayed_work(cvm_resync_wq, &sd->resync, 0);
}

/* Map commit (cvm_config_mutex): a stale set for every device of @map. */
int cvm_stale_add_devices(const struct cvm_map *map)
{
	struct cvm_stale_dev *sd;
	u32 i;
	int ret;

	for (i = 0; i < map->nr_devices; i++) {
		u32 id = map->devices[i].id;

		if (xa_load(&cvm_stale_devs, id))
			continue;
		sd = kzalloc(sizeof(*sd), GFP_KERNEL);
		if (!sd)
			return -ENOMEM;
		sd->device_id = id;
		spin_lock_init(&sd->lock);
		spin_lock_init(&sd->flush_lock);
		INIT_LIST_HEAD(&sd->objs);
		INIT_DELAYED_WORK(&sd->resync, cvm_resync_work);
		ret = rhashtable_init(&sd->ht, &cvm_stale_params);
		if (ret)
			goto out_free;
		ret = xa_insert(&cvm_stale_devs, id, sd, GFP_KERNEL);
		if (ret)
			goto out_destroy;
	}
	return 0;

out_destroy:
	rhashtable_destroy(&sd->ht);
out_free:
	kfree(sd);
	return ret;
}

int cvm_stale_init(void)
{
	cvm_resync_wq = alloc_workqueue("cvm_resync", WQ_MEM_RECLAIM, 0);
	return cvm_resync_wq ? 0 : -ENOMEM;
}

static void cvm_stale_free_obj(void *ptr, void *arg)
{
	kfree(ptr);
}

/* Module exit: no volume, no map, no connection any more. */
void cvm_stale_exit(void)
{
	struct cvm_stale_dev *sd;
	unsigned long id;

	xa_for_each(&cvm_stale_devs, id, sd)
		cancel_delayed_work_sync(&sd->resync);
	xa_for_each(&cvm_stale_devs, id, sd) {
		if (atomic_long_read(&sd->count))
			pr_warn("device %u: %ld stale objects forgotten\n",
				sd->device_id, atomic_long_read(&sd->count));
		xa_erase(&cvm_stale_devs, id);
		rhashtable_free_and_destroy(&sd->ht, cvm_stale_free_obj, NULL);
		kfree(sd);
	}
	xa_destroy(&cvm_stale_devs);
	/* kfree_rcu() of removed entries. */
	rcu_barrier();
	destroy_workqueue(cvm_resync_wq);
}
