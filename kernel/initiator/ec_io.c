// SPDX-License-Identifier: GPL-2.0
/*
 * Erasure-coded volumes: ec(k,m) stripes in the I/O path.
 *
 * An object of an EC volume is cut into stripes of k data chunks of one
 * stripe unit each (kernel/common/object.h); chunk j of every stripe lives
 * on the object's shard j, stored by device j of the object's PG row, and
 * parity row r on shard k + r.  Stripe t's chunk sits at shard offset
 * t * unit, so a range of stripes is one contiguous range on every shard.
 *
 * Each piece of a request (the part inside one object) runs in process
 * context on cvm_ec_wq, from first sub-request to last, because a write may
 * need reads first and reconstruction may need any survivor:
 *
 *  - Healthy read: one READ per data shard the piece touches, of exactly
 *    the bytes it needs.  A shard that is unreachable, stale (a degraded
 *    write left it behind) or fails its READ is erased: the whole stripes
 *    are then read from every other shard and the lost chunks rebuilt.
 *  - Write: reconstruct-write.  Chunks of the first and last stripe the
 *    piece only partly covers are read whole (rebuilt if their shard is
 *    lost), the new data copied in, parity computed for every stripe of
 *    the range, then the changed data ranges and the parity ranges are
 *    written.  A shard that cannot be written is recorded stale for the
 *    object (request.c's stale sets), so no read trusts it until it is
 *    rebuilt; the write fails if fewer than k shards took it.
 *  - Stripe locks serialise writes, and degraded reads, of a stripe: a
 *    stripe's data and parity must not be read while another write of the
 *    same stripe has changed one but not yet the other.
 *  - Backfill: while a PG is pinned, the device placement now gives a slot
 *    (its backfill target) gets every write of that shard too, without
 *    counting toward the write's quorum; one that misses it is recorded
 *    stale for the object on the target, and resync rebuilds the shard
 *    there from the pin's shards (cvm_ec_resync()).
 *
 * Parity rows 0 and 1 (m <= 2) come from lib/raid6 (gen_syndrome, and its
 * recovery routines) and xor_blocks, the code md uses; rows 2 and 3 and
 * other erasure patterns use kernel/common/ec.c (Reed-Solomon, same code).
 *
 * Buffers: a piece works in bounce buffers, one per shard, covering its
 * stripe range; payload bytes are copied between them and the request.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/crc32c.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/raid/pq.h>
#include <linux/raid/xor.h>
#include <linux/sched/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>

#include "initiator.h"
#include "../common/ec.h"
#include "../common/ec_journal.h"

#define CVM_EC_LOCK_BITS	10
/* Stripes one piece may span: max_hw_sectors over the smallest unit. */
#define CVM_EC_MAX_STRIPES	(CVM_EC_MAX_PIECE / SZ_4K + 1)
/*
 * Sub-requests in flight at once: per shard, a read per partial stripe end
 * and a write; or journal header and chunk writes of up to two runs.
 */
#define CVM_EC_MAX_SUBS		(4 * CVM_EC_MAX_SHARDS)

static bool cvm_ec_journal_on = true;
module_param_named(ec_journal, cvm_ec_journal_on, bool, 0644);
MODULE_PARM_DESC(ec_journal,
		 "journal EC stripe writes (off re-opens the write hole: for tests and measurements only)");

static struct workqueue_struct *cvm_ec_wq;
static struct mutex cvm_ec_locks[1 << CVM_EC_LOCK_BITS];

/* One wire request of a piece, waited for with the others. */
struct cvm_ec_sub {
	struct cvm_ec_ctx	*ctx;
	unsigned int		shard;
	bool			to_target;	/* the shard's backfill target */
	struct bio_vec		*bvec;
	int			result;	/* 0, -ENOTCONN (lost), -EIO */
	blk_status_t		sts;
};

/*
 * struct cvm_ec_ctx - one piece being worked on, or one resync window
 * @io: the piece (NULL for a resync)
 * @vol_id, @pool_id, @attach_epoch, @object_no, @wire_flags: what the
 *	sub-requests carry
 * @k, @m, @n: the code; n = k + m shards
 * @unit: stripe unit, bytes
 * @s0, @nst: first stripe of the piece in its object, and stripe count
 * @row: device of each shard (CVM_DEV_NONE: none)
 * @lost: shards not to be read or written: unreachable, stale, failed
 * @refused: shards a target refused at the last wait (I/O error, ...)
 * @unreachable: shards with no device or no live connection at placement
 * @target: per shard, its backfill target (CVM_DEV_NONE: none)
 * @target_missed: shards whose target missed a write
 * @buf: per shard, @nst units: stripe s0 + t's chunk at t * unit
 * @subs, @nr_subs, @pending, @done: sub-requests in flight
 * @locks, @nr_locks: stripe lock buckets held, ascending
 * @jslots: journal slots of the volume
 * @jhdr: journal headers being written, @nst per shard
 */
struct cvm_ec_ctx {
	struct cvm_ec_io	*io;
	u64			vol_id;
	u32			pool_id;
	u64			attach_epoch;
	u64			object_no;
	u16			wire_flags;
	unsigned int		k, m, n;
	u32			unit;
	u64			s0;
	u32			nst;
	u32			row[CVM_EC_MAX_SHARDS];
	u32			lost;
	unsigned int		need;		/* cvm_write_need() */
	u32			refused;
	u32			unreachable;
	u32			target[CVM_EC_MAX_SHARDS];
	u32			target_missed;
	u64			instances[CVM_EC_MAX_SHARDS];
	u8			*buf[CVM_EC_MAX_SHARDS];
	struct cvm_ec_sub	subs[CVM_EC_MAX_SUBS];
	unsigned int		nr_subs;
	atomic_t		pending;
	struct completion	done;
	unsigned int		locks[CVM_EC_MAX_STRIPES];
	unsigned int		nr_locks;
	u32			jslots;
	u8			*jhdr;
};

/* ---- stripe locks ---- */

static int cvm_ec_cmp_uint(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;

	return x < y ? -1 : x > y;
}

/*
 * Lock the buckets of stripes s0 .. s0 + nst - 1, in ascending order.  A
 * bucket is chosen by journal slot, so writes of stripes sharing a slot
 * are serialised too (the slot must hold the newest of them).
 */
static void cvm_ec_lock(struct cvm_ec_ctx *ctx)
{
	unsigned int i, n = 0;

	for (i = 0; i < ctx->nst; i++) {
		u32 slot = cvm_ec_journal_slot(ctx->object_no, ctx->s0 + i,
					       ctx->jslots);

		ctx->locks[n++] = hash_64(ctx->vol_id ^ ((u64)slot << 40),
					  CVM_EC_LOCK_BITS);
	}
	sort(ctx->locks, n, sizeof(ctx->locks[0]), cvm_ec_cmp_uint, NULL);
	ctx->nr_locks = 0;
	for (i = 0; i < n; i++) {
		if (i && ctx->locks[i] == ctx->locks[i - 1])
			continue;
		ctx->locks[ctx->nr_locks++] = ctx->locks[i];
		mutex_lock(&cvm_ec_locks[ctx->locks[i]]);
	}
}

static void cvm_ec_unlock(struct cvm_ec_ctx *ctx)
{
	while (ctx->nr_locks)
		mutex_unlock(&cvm_ec_locks[ctx->locks[--ctx->nr_locks]]);
}

/* ---- parity ---- */

/* Parity of one stripe: @ptrs holds k data then m parity chunks. */
static void cvm_ec_gen_parity(unsigned int k, unsigned int m, u32 len,
			      void **ptrs)
{
	unsigned int j, r;

	if (m == 1) {
		memcpy(ptrs[k], ptrs[0], len);
		for (j = 1; j < k; j += MAX_XOR_BLOCKS)
			xor_blocks(min_t(unsigned int, MAX_XOR_BLOCKS, k - j),
				   len, ptrs[k], &ptrs[j]);
		return;
	}
	raid6_call.gen_syndrome(k + 2, len, ptrs);
	for (r = 2; r < m; r++)
		cvm_ec_encode_row(r, k, len, (const void *const *)ptrs,
				  ptrs[k + r]);
}

/*
 * Rebuild the @erased chunks of one stripe.  The patterns raid6 handles
 * (one data chunk from P or Q, two data chunks from P and Q) use its
 * recovery code; the rest the Reed-Solomon decoder.
 */
static int cvm_ec_rebuild(unsigned int k, unsigned int m, u32 len,
			  void **ptrs, u32 erased)
{
	u32 data = erased & (BIT(k) - 1);
	bool p_ok = !(erased & BIT(k)), q_ok = m >= 2 && !(erased & BIT(k + 1));
	unsigned int a, b;
	int ret = 0;

	if (!erased)
		return 0;
	a = data ? __ffs(data) : 0;
	if (hweight32(data) == 1 && p_ok) {
		unsigned int j, n = 0;
		void *srcs[CVM_EC_MAX_DATA];

		memcpy(ptrs[a], ptrs[k], len);
		for (j = 0; j < k; j++)
			if (j != a)
				srcs[n++] = ptrs[j];
		for (j = 0; j < n; j += MAX_XOR_BLOCKS)
			xor_blocks(min_t(unsigned int, MAX_XOR_BLOCKS, n - j),
				   len, ptrs[a], &srcs[j]);
	} else if (hweight32(data) == 1 && q_ok) {
		raid6_datap_recov(k + 2, len, a, ptrs);	/* rewrites P */
	} else if (hweight32(data) == 2 && p_ok && q_ok) {
		b = __ffs(data & ~BIT(a));
		raid6_2data_recov(k + 2, len, a, b, ptrs);
	} else if (data) {
		ret = cvm_ec_reconstruct(k, m, len, ptrs, erased, NULL);
	}
	/* Parity is only rebuilt for a resync; recompute it whole. */
	if (!ret && (erased >> k))
		cvm_ec_gen_parity(k, m, len, ptrs);
	return ret;
}

/* ---- sub-requests ---- */

static void cvm_ec_sub_done(struct cvm_xprt_req *req)
{
	struct cvm_ec_sub *sub = req->core_priv;
	struct cvm_ec_ctx *ctx = sub->ctx;

	sub->sts = cvm_wire_blk_status(req);
	/* Which device instance holds the write in its cache (flush.c). */
	if (sub->sts == BLK_STS_OK && req->hdr.opcode == CVM_WIRE_OP_WRITE &&
	    !sub->to_target) {
		u64 *inst = &ctx->instances[sub->shard];
		u64 old = cmpxchg64(inst, 0, req->conn->hello.instance);

		if (old && old != req->conn->hello.instance)
			WRITE_ONCE(*inst, CVM_INSTANCE_MIXED);
	}
	if (req->error || sub->sts == BLK_STS_TRANSPORT)
		sub->result = -ENOTCONN;
	else if (sub->sts != BLK_STS_OK)
		sub->result = -EIO;
	if (sub->result && !req->error)
		pr_warn_ratelimited("volume %llu object %llu shard %u: %s to %pISpc failed: status %u error %d\n",
				    ctx->vol_id, ctx->object_no, sub->shard,
				    req->hdr.opcode == CVM_WIRE_OP_READ ?
				    "read" : "write", &req->conn->peer,
				    req->status, req->error);
	req->conn->ops->free_req(req);
	if (atomic_dec_and_test(&ctx->pending))
		complete(&ctx->done);
}

/* bio_vecs over @len bytes of a kvmalloc'ed buffer at @p. */
static struct bio_vec *cvm_ec_buf_bvec(u8 *p, u32 len, unsigned int *nr)
{
	unsigned int n = 0, max = DIV_ROUND_UP(offset_in_page(p) + len,
					       PAGE_SIZE);
	struct bio_vec *bv = kmalloc_array(max, sizeof(*bv), GFP_NOIO);

	if (!bv)
		return NULL;
	while (len) {
		u32 take = min_t(u32, len, PAGE_SIZE - offset_in_page(p));
		struct page *page = is_vmalloc_addr(p) ? vmalloc_to_page(p) :
							 virt_to_page(p);

		bvec_set_page(&bv[n++], page, take, offset_in_page(p));
		p += take;
		len -= take;
	}
	*nr = n;
	return bv;
}

/* A sub-request of @shard could not be sent. */
static void cvm_ec_unsent(struct cvm_ec_ctx *ctx, unsigned int shard,
			  bool to_target)
{
	if (to_target)
		ctx->target_missed |= BIT(shard);
	else
		ctx->lost |= BIT(shard);
}

/*
 * Send @op of @len bytes at @off of object shard (@object_no, @shard) on
 * device @dev, from or to @p.  A shard that cannot be reached is marked
 * lost at once (its backfill target, @to_target: missed).
 */
static void cvm_ec_send_to(struct cvm_ec_ctx *ctx, u8 op, unsigned int shard,
			   u32 dev, u64 object_no, u64 off, u8 *p, u32 len,
			   u16 flags, bool to_target)
{
	const struct cvm_state *st;
	struct cvm_ec_sub *sub;
	struct cvm_xprt_req *req;
	struct cvm_conn *conn;
	unsigned int nr;

	if (!len || (!to_target && (ctx->lost & BIT(shard))))
		return;
	if (WARN_ON_ONCE(ctx->nr_subs == CVM_EC_MAX_SUBS)) {
		cvm_ec_unsent(ctx, shard, to_target);
		return;
	}
	sub = &ctx->subs[ctx->nr_subs];
	sub->ctx = ctx;
	sub->shard = shard;
	sub->to_target = to_target;
	sub->result = 0;
	sub->sts = BLK_STS_OK;
	sub->bvec = cvm_ec_buf_bvec(p, len, &nr);
	if (!sub->bvec) {
		cvm_ec_unsent(ctx, shard, to_target);
		return;
	}

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	conn = st ? cvm_dev_conn(st, dev) : NULL;
	req = conn ? conn->ops->alloc_req(conn, GFP_ATOMIC) : NULL;
	if (!req) {
		rcu_read_unlock();
		kfree(sub->bvec);
		cvm_ec_unsent(ctx, shard, to_target);
		return;
	}
	req->hdr.opcode = op;
	req->hdr.flags = cpu_to_le16(flags);
	req->hdr.map_epoch = cpu_to_le64(st->map->epoch);
	req->hdr.volume_id = cpu_to_le64(ctx->vol_id);
	req->hdr.object_no = cpu_to_le64(object_no);
	req->hdr.shard = cpu_to_le16(shard);
	req->hdr.offset = cpu_to_le64(off);
	req->hdr.attach_epoch = cpu_to_le64(ctx->attach_epoch);
	req->hdr.length = cpu_to_le32(len);
	req->bvec = sub->bvec;
	req->nr_bvec = nr;
	req->data_len = len;
	req->done = cvm_ec_sub_done;
	req->core_priv = sub;
	ctx->nr_subs++;
	atomic_inc(&ctx->pending);
	if (conn->ops->submit(req)) {
		req->error = -ENOTCONN;
		cvm_ec_sub_done(req);
	}
	rcu_read_unlock();
}

/* @op of shard @shard's range [@off, @off + @len), its piece buffer. */
static void cvm_ec_send(struct cvm_ec_ctx *ctx, u8 op, unsigned int shard,
			u64 off, u32 len)
{
	u16 flags = 0;

	if (op == CVM_WIRE_OP_WRITE)
		flags = ctx->wire_flags & CVM_WIRE_F_FUA;
	cvm_ec_send_to(ctx, op, shard, ctx->row[shard], ctx->object_no, off,
		       ctx->buf[shard] + off - ctx->s0 * ctx->unit, len, flags,
		       false);
}

/*
 * The same WRITE to shard @shard's backfill target, if it has one.  FUA:
 * FLUSH accounts for the row only (flush.c), so a target must not hold a
 * write in a volatile cache it could lose unrecorded.
 */
static void cvm_ec_send_target(struct cvm_ec_ctx *ctx, unsigned int shard,
			       u64 off, u32 len)
{
	if (ctx->target[shard] == CVM_DEV_NONE)
		return;
	cvm_ec_send_to(ctx, CVM_WIRE_OP_WRITE, shard, ctx->target[shard],
		       ctx->object_no, off,
		       ctx->buf[shard] + off - ctx->s0 * ctx->unit, len,
		       CVM_WIRE_F_FUA, true);
}

/*
 * Wait for every sub-request sent since the last wait.  Shards whose
 * request was lost join @ctx->lost; a refusal by a target (fenced, no
 * space, I/O error) is returned, the first one.
 */
static blk_status_t cvm_ec_wait(struct cvm_ec_ctx *ctx, u32 *failed)
{
	blk_status_t sts = BLK_STS_OK;
	unsigned int i;

	if (!atomic_dec_and_test(&ctx->pending))
		wait_for_completion(&ctx->done);
	*failed = 0;
	ctx->refused = 0;
	for (i = 0; i < ctx->nr_subs; i++) {
		struct cvm_ec_sub *sub = &ctx->subs[i];

		if (sub->to_target) {
			/* Copied again by resync; the write goes on. */
			if (sub->result)
				ctx->target_missed |= BIT(sub->shard);
		} else if (sub->result == -ENOTCONN) {
			*failed |= BIT(sub->shard);
		} else if (sub->result) {
			ctx->refused |= BIT(sub->shard);
			if (sts == BLK_STS_OK)
				sts = sub->sts;
		}
		kfree(sub->bvec);
	}
	ctx->lost |= *failed;
	ctx->nr_subs = 0;
	atomic_set(&ctx->pending, 1);
	reinit_completion(&ctx->done);
	return sts;
}

/* ---- piece geometry ---- */

/* Byte range [*lo, *hi) of data shard @j the piece covers (shard offsets). */
static void cvm_ec_shard_range(const struct cvm_ec_ctx *ctx, unsigned int j,
			       u64 *lo, u64 *hi)
{
	const struct cvm_extent *ext = &ctx->io->ext;
	u64 sw = (u64)ctx->k * ctx->unit, t;
	u64 start = ext->offset, end = start + ext->len;

	*lo = U64_MAX;
	*hi = 0;
	for (t = ctx->s0; t < ctx->s0 + ctx->nst; t++) {
		u64 c0 = t * sw + (u64)j * ctx->unit, c1 = c0 + ctx->unit;
		u64 a = max(c0, start), b = min(c1, end);

		if (a >= b)
			continue;
		*lo = min(*lo, t * ctx->unit + (a - c0));
		*hi = max(*hi, t * ctx->unit + (b - c0));
	}
	if (*lo > *hi)
		*lo = *hi = 0;
}

/* Copy the piece between the request's pages and the shard buffers. */
static void cvm_ec_copy(struct cvm_ec_ctx *ctx, bool to_bufs)
{
	struct cvm_ec_io *io = ctx->io;
	const struct cvm_layout *l = &io->vol->layout;
	u32 pos = io->ext.offset;
	unsigned int i;

	for (i = 0; i < io->nr_bvec; i++) {
		struct bio_vec bv = io->bvec[i];

		while (bv.bv_len) {
			struct page *pg = nth_page(bv.bv_page,
						   bv.bv_offset >> PAGE_SHIFT);
			u32 po = offset_in_page(bv.bv_offset), take;
			struct cvm_chunk_pos cp;
			void *va;
			u8 *b;

			/* Inside the object: the split guarantees it. */
			cvm_ec_locate(l, pos, &cp, NULL);
			take = min_t(u32, bv.bv_len, ctx->unit - cp.offset);
			b = ctx->buf[cp.chunk] +
			    cvm_ec_shard_offset(l, &cp) - ctx->s0 * ctx->unit;
			take = min_t(u32, take, PAGE_SIZE - po);
			va = kmap_local_page(pg);
			if (to_bufs)
				memcpy(b, va + po, take);
			else
				memcpy(va + po, b, take);
			kunmap_local(va);
			bv.bv_offset += take;
			bv.bv_len -= take;
			pos += take;
		}
	}
}

/* Chunk pointers of stripe s0 + @t. */
static void cvm_ec_stripe_ptrs(const struct cvm_ec_ctx *ctx, u32 t,
			       void **ptrs)
{
	unsigned int s;

	for (s = 0; s < ctx->n; s++)
		ptrs[s] = ctx->buf[s] + (size_t)t * ctx->unit;
}

/*
 * Read the whole stripes whose bit is set in @stripes (bit t: s0 + t)
 * from every shard not lost, then rebuild the lost chunks.  Reads that
 * fail add to the lost set and are retried from the others.
 */
static blk_status_t cvm_ec_read_rebuild(struct cvm_ec_ctx *ctx,
					const unsigned long *stripes)
{
	void *ptrs[CVM_EC_MAX_SHARDS];
	blk_status_t sts;
	unsigned int s;
	u32 t, e, failed;

	do {
		if (hweight32(ctx->lost) > ctx->m)
			return BLK_STS_TRANSPORT;
		/* One READ per shard and run of stripes: at most two runs. */
		for (t = find_first_bit(stripes, ctx->nst); t < ctx->nst;
		     t = find_next_bit(stripes, ctx->nst, e)) {
			e = find_next_zero_bit(stripes, ctx->nst, t);
			for (s = 0; s < ctx->n; s++)
				cvm_ec_send(ctx, CVM_WIRE_OP_READ, s,
					    (ctx->s0 + t) * ctx->unit,
					    (e - t) * ctx->unit);
		}
		sts = cvm_ec_wait(ctx, &failed);
		if (sts)
			return sts;
	} while (failed);
	if (hweight32(ctx->lost) > ctx->m)
		return BLK_STS_TRANSPORT;
	for_each_set_bit(t, stripes, ctx->nst) {
		cvm_ec_stripe_ptrs(ctx, t, ptrs);
		if (cvm_ec_rebuild(ctx->k, ctx->m, ctx->unit, ptrs, ctx->lost))
			return BLK_STS_IOERR;
	}
	return BLK_STS_OK;
}

/* ---- reads and writes ---- */

static blk_status_t cvm_ec_read(struct cvm_ec_ctx *ctx)
{
	DECLARE_BITMAP(all, CVM_EC_MAX_STRIPES);
	blk_status_t sts;
	unsigned int j;
	u32 failed;
	u64 lo, hi;

	for (j = 0; j < ctx->k; j++) {
		cvm_ec_shard_range(ctx, j, &lo, &hi);
		if (hi > lo)
			cvm_ec_send(ctx, CVM_WIRE_OP_READ, j, lo, hi - lo);
	}
	sts = cvm_ec_wait(ctx, &failed);
	if (sts)
		return sts;
	for (j = 0; j < ctx->k; j++) {
		cvm_ec_shard_range(ctx, j, &lo, &hi);
		if (hi > lo && (ctx->lost & BIT(j)))
			break;
	}
	if (j < ctx->k) {
		/* Degraded: under the stripe locks, as a write would be. */
		bitmap_fill(all, ctx->nst);
		cvm_ec_lock(ctx);
		sts = cvm_ec_read_rebuild(ctx, all);
		cvm_ec_unlock(ctx);
		if (sts)
			return sts;
	}
	cvm_ec_copy(ctx, false);
	return BLK_STS_OK;
}

/* Is chunk @j of stripe s0 + @t wholly inside the piece? */
static bool cvm_ec_chunk_covered(const struct cvm_ec_ctx *ctx, u32 t,
				 unsigned int j)
{
	u64 c0 = (ctx->s0 + t) * ctx->k * (u64)ctx->unit + (u64)j * ctx->unit;

	return c0 >= ctx->io->ext.offset &&
	       c0 + ctx->unit <= ctx->io->ext.offset + ctx->io->ext.len;
}

/* ---- the stripe journal (../common/ec_journal.h) ---- */

/* Bytes [*a, *b) of chunk @s of stripe s0 + @t the piece writes; false: none. */
static bool cvm_ec_chunk_written(const struct cvm_ec_ctx *ctx, u32 t,
				 unsigned int s, u32 *a, u32 *b)
{
	const struct cvm_extent *ext = &ctx->io->ext;
	u64 c0 = (ctx->s0 + t) * ctx->k * (u64)ctx->unit + (u64)s * ctx->unit;

	if (s >= ctx->k) {
		*a = 0;
		*b = ctx->unit;
		return true;
	}
	if (ext->offset >= c0 + ctx->unit || ext->offset + ext->len <= c0)
		return false;
	*a = ext->offset > c0 ? ext->offset - c0 : 0;
	*b = min_t(u64, ext->offset + ext->len - c0, ctx->unit);
	return true;
}

static void cvm_ec_jhdr_fill(struct cvm_ec_ctx *ctx, u32 t, unsigned int s,
			     u64 seq, u32 shards, u32 missed, u32 a, u32 b)
{
	struct cvm_ec_jhdr *h = (void *)(ctx->jhdr +
		((size_t)s * ctx->nst + t) * CVM_EC_JOURNAL_HDR_LEN);
	u64 stripe = ctx->s0 + t;

	memset(h, 0, CVM_EC_JOURNAL_HDR_LEN);
	h->magic = cpu_to_le32(CVM_EC_JOURNAL_MAGIC);
	h->seq = cpu_to_le64(seq);
	h->volume_id = cpu_to_le64(ctx->vol_id);
	h->object_no = cpu_to_le64(ctx->object_no);
	h->stripe = cpu_to_le64(stripe);
	h->data_crc = cpu_to_le32(crc32c(~0U, ctx->buf[s] +
					 (size_t)t * ctx->unit + a, b - a));
	h->offset = cpu_to_le32(a);
	h->length = cpu_to_le32(b - a);
	h->unit = cpu_to_le32(ctx->unit);
	h->shards = cpu_to_le32(shards);
	h->missed = cpu_to_le32(missed);
	h->slot = cpu_to_le32(cvm_ec_journal_slot(ctx->object_no, stripe,
						  ctx->jslots));
	h->shard = cpu_to_le16(s);
	h->k = ctx->k;
	h->m = ctx->m;
	h->hdr_crc = cpu_to_le32(crc32c(~0U, h, CVM_EC_JOURNAL_HDR_LEN));
}

/*
 * Journal shard @s's stripes [@t1, @t2] (consecutive slots, no wrap):
 * their headers and the chunk bytes the in-place write will write.
 */
static void cvm_ec_journal_run(struct cvm_ec_ctx *ctx, unsigned int s,
			       u32 t1, u32 t2)
{
	u32 slot = cvm_ec_journal_slot(ctx->object_no, ctx->s0 + t1,
				       ctx->jslots);
	u32 a, b, a2, b2;

	cvm_ec_chunk_written(ctx, t1, s, &a, &b);
	cvm_ec_chunk_written(ctx, t2, s, &a2, &b2);
	cvm_ec_send_to(ctx, CVM_WIRE_OP_WRITE, s, ctx->row[s],
		       CVM_EC_JOURNAL_OBJECT,
		       (u64)slot * CVM_EC_JOURNAL_HDR_LEN,
		       ctx->jhdr + ((size_t)s * ctx->nst + t1) *
				   CVM_EC_JOURNAL_HDR_LEN,
		       (t2 - t1 + 1) * CVM_EC_JOURNAL_HDR_LEN, CVM_WIRE_F_FUA,
		       false);
	cvm_ec_send_to(ctx, CVM_WIRE_OP_WRITE, s, ctx->row[s],
		       CVM_EC_JOURNAL_OBJECT,
		       CVM_EC_JOURNAL_DATA_OFF + (u64)slot * ctx->unit + a,
		       ctx->buf[s] + (size_t)t1 * ctx->unit + a,
		       (t2 - t1) * ctx->unit + b2 - a, CVM_WIRE_F_FUA, false);
}

/*
 * Write the piece's new stripes to the journal on every shard the write
 * will change, and wait until all of it is durable.  A shard lost on the
 * way is left out and the journal written again under a new sequence
 * number, so a complete record always names exactly the shards written in
 * place.
 */
static blk_status_t cvm_ec_journal(struct cvm_ec_ctx *ctx)
{
	struct cvm_volume *vol = ctx->io->vol;
	u32 failed, t, t1, a, b, shards, missed;
	unsigned int s;
	blk_status_t sts;
	u64 seq;

	if (!ctx->jhdr) {
		ctx->jhdr = kvmalloc((size_t)ctx->n * ctx->nst *
				     CVM_EC_JOURNAL_HDR_LEN, GFP_NOIO);
		if (!ctx->jhdr)
			return BLK_STS_RESOURCE;
	}
	do {
		if (ctx->n - hweight32(ctx->lost) < ctx->k)
			return BLK_STS_TRANSPORT;
		seq = atomic64_inc_return(&vol->ec_jseq);
		for (t = 0; t < ctx->nst; t++) {
			shards = 0;
			for (s = 0; s < ctx->n; s++)
				if (cvm_ec_chunk_written(ctx, t, s, &a, &b))
					shards |= BIT(s);
			missed = shards & ctx->lost;
			shards &= ~ctx->lost;
			for (s = 0; s < ctx->n; s++)
				if (shards & BIT(s)) {
					cvm_ec_chunk_written(ctx, t, s, &a, &b);
					cvm_ec_jhdr_fill(ctx, t, s, seq, shards,
							 missed, a, b);
				}
		}
		/* A shard's stripes are consecutive; split where slots wrap. */
		for (s = 0; s < ctx->n; s++) {
			t1 = U32_MAX;
			for (t = 0; t <= ctx->nst; t++) {
				bool in = t < ctx->nst &&
					  cvm_ec_chunk_written(ctx, t, s, &a, &b);

				if (in && t1 == U32_MAX)
					t1 = t;
				if (t1 == U32_MAX)
					continue;
				if (!in) {
					cvm_ec_journal_run(ctx, s, t1, t - 1);
					t1 = U32_MAX;
				} else if (t + 1 < ctx->nst &&
					   !cvm_ec_journal_slot(ctx->object_no,
								ctx->s0 + t + 1,
								ctx->jslots)) {
					cvm_ec_journal_run(ctx, s, t1, t);
					t1 = U32_MAX;
				}
			}
		}
		sts = cvm_ec_wait(ctx, &failed);
		if (sts)
			return sts;
	} while (failed);
	return BLK_STS_OK;
}

/*
 * Shards missed the write: before it is acknowledged, the shards that
 * took it BUMP the object's version, so the missed ones are behind on
 * disk too (intent.c).  Once per object and missing device.
 */
static blk_status_t cvm_ec_record(struct cvm_ec_ctx *ctx)
{
	unsigned int s, recorded = 0;
	bool needed = false;

	for (s = 0; s < ctx->n; s++)
		if ((ctx->lost & BIT(s)) && ctx->row[s] != CVM_DEV_NONE &&
		    !cvm_stale_recorded(ctx->row[s], ctx->vol_id,
					ctx->object_no))
			needed = true;
	if (!needed)
		return BLK_STS_OK;
	for (s = 0; s < ctx->n; s++) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_BUMP, .volume_id = ctx->vol_id,
			.attach_epoch = ctx->attach_epoch,
			.object_no = ctx->object_no, .shard = s,
		};

		if ((ctx->lost & BIT(s)) || ctx->row[s] == CVM_DEV_NONE ||
		    cvm_stale_test(ctx->row[s], ctx->vol_id, ctx->object_no))
			continue;
		/* A shard its target does not hold yet is created by BUMP. */
		if (!cvm_call(ctx->row[s], &c) && !c.status)
			recorded++;
	}
	if (recorded < ctx->need)
		return BLK_STS_TRANSPORT;
	for (s = 0; s < ctx->n; s++)
		if ((ctx->lost & BIT(s)) && ctx->row[s] != CVM_DEV_NONE)
			cvm_stale_set_recorded(ctx->row[s], ctx->vol_id,
					       ctx->object_no);
	return BLK_STS_OK;
}

/* Record @dev stale for the piece's object; nonzero when it cannot. */
static int cvm_ec_mark_stale(struct cvm_ec_ctx *ctx, u32 dev)
{
	int ret = cvm_stale_mark(dev, ctx->vol_id, ctx->object_no);

	if (ret)
		pr_warn_ratelimited("volume %llu object %llu: cannot record device %u as stale\n",
				    ctx->vol_id, ctx->object_no, dev);
	return ret;
}

static blk_status_t cvm_ec_write(struct cvm_ec_ctx *ctx)
{
	DECLARE_BITMAP(rebuild, CVM_EC_MAX_STRIPES);
	struct cvm_ec_io *io = ctx->io;
	void *ptrs[CVM_EC_MAX_SHARDS];
	u32 ends[2] = { 0, ctx->nst - 1 }, failed, t;
	unsigned int i, j, s, written;
	blk_status_t sts;
	u64 lo, hi;

	bitmap_zero(rebuild, CVM_EC_MAX_STRIPES);
	/* Old data of the chunks the first and last stripe only partly cover. */
	for (i = 0; i < 2; i++) {
		t = ends[i];
		if (i && t == ends[0])
			break;
		for (j = 0; j < ctx->k; j++) {
			if (cvm_ec_chunk_covered(ctx, t, j))
				continue;
			if (ctx->lost & BIT(j))
				__set_bit(t, rebuild);
			else
				cvm_ec_send(ctx, CVM_WIRE_OP_READ, j,
					    (ctx->s0 + t) * ctx->unit,
					    ctx->unit);
		}
	}
	sts = cvm_ec_wait(ctx, &failed);
	if (sts)
		return sts;
	if (failed || !bitmap_empty(rebuild, CVM_EC_MAX_STRIPES)) {
		/* A chunk to keep is lost: rebuild its stripe whole. */
		for (i = 0; i < 2; i++) {
			t = ends[i];
			for (j = 0; j < ctx->k; j++)
				if ((ctx->lost & BIT(j)) &&
				    !cvm_ec_chunk_covered(ctx, t, j))
					__set_bit(t, rebuild);
		}
		sts = cvm_ec_read_rebuild(ctx, rebuild);
		if (sts)
			return sts;
	}

	cvm_ec_copy(ctx, true);
	for (t = 0; t < ctx->nst; t++) {
		cvm_ec_stripe_ptrs(ctx, t, ptrs);
		cvm_ec_gen_parity(ctx->k, ctx->m, ctx->unit, ptrs);
	}
	if (cvm_ec_journal_on) {
		sts = cvm_ec_journal(ctx);
		if (sts)
			return sts;
	}

	memset(ctx->instances, 0, sizeof(ctx->instances));
	for (j = 0; j < ctx->k; j++) {
		cvm_ec_shard_range(ctx, j, &lo, &hi);
		if (hi > lo) {
			cvm_ec_send(ctx, CVM_WIRE_OP_WRITE, j, lo, hi - lo);
			cvm_ec_send_target(ctx, j, lo, hi - lo);
		}
	}
	for (s = ctx->k; s < ctx->n; s++) {
		cvm_ec_send(ctx, CVM_WIRE_OP_WRITE, s, ctx->s0 * ctx->unit,
			    ctx->nst * ctx->unit);
		cvm_ec_send_target(ctx, s, ctx->s0 * ctx->unit,
				   ctx->nst * ctx->unit);
	}
	sts = cvm_ec_wait(ctx, &failed);
	/*
	 * Every shard that missed the write is stale until rebuilt, also
	 * when a target refused it: the stripe is part new, and its journal
	 * slot may be reused once the stripe lock is dropped.
	 */
	if (sts != BLK_STS_NEXUS)	/* fenced: not ours to write any more */
		ctx->lost |= ctx->refused;
	written = 0;
	for (s = 0; s < ctx->n; s++) {
		if (!(ctx->lost & BIT(s))) {
			written++;
			continue;
		}
		if (ctx->row[s] != CVM_DEV_NONE &&
		    cvm_ec_mark_stale(ctx, ctx->row[s]))
			return BLK_STS_IOERR;
	}
	/* A target that missed it is copied again before the cut-over. */
	for (s = 0; s < ctx->n; s++)
		if ((ctx->target_missed & BIT(s)) &&
		    cvm_ec_mark_stale(ctx, ctx->target[s]))
			return BLK_STS_IOERR;
	if (sts)
		return sts;
	/* Fewer than the pool's min_size: held, not acknowledged. */
	if (written < ctx->need)
		return BLK_STS_TRANSPORT;
	if (ctx->lost) {
		sts = cvm_ec_record(ctx);
		if (sts)
			return sts;
	}
	if (!(io->wire_flags & CVM_WIRE_F_FUA)) {
		u64 instances[CVM_EC_MAX_SHARDS];
		u32 devs[CVM_EC_MAX_SHARDS];
		unsigned int nr = 0;

		for (s = 0; s < ctx->n; s++) {
			/* A shard this piece left alone holds nothing new. */
			if ((ctx->lost & BIT(s)) || !ctx->instances[s])
				continue;
			devs[nr] = ctx->row[s];
			instances[nr++] = ctx->instances[s];
		}
		if (cvm_unflushed_record(&io->vol->unflushed,
					 io->ext.object_no, devs, instances,
					 nr))
			return BLK_STS_RESOURCE;
	}
	return BLK_STS_OK;
}

/* ---- setup ---- */

/*
 * Place the piece: the PG row and which shards are usable now.  Shards
 * recorded stale for the object are lost for reads and writes alike.
 */
static int cvm_ec_place(struct cvm_ec_ctx *ctx)
{
	const struct cvm_pg_targets *targets;
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	unsigned int s;
	int ret = 0;
	u32 pg;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, ctx->pool_id) : NULL;
	if (!pt || pt->width != ctx->n) {
		ret = -ENOENT;
		goto out_unlock;
	}
	pg = cvm_object_pg(ctx->vol_id, ctx->object_no, pt->pg_num);
	targets = cvm_pool_targets(pt, pg);	/* ctx->target[] are NONE */
	for (s = 0; targets && s < targets->nr; s++)
		ctx->target[targets->slots[s]] = targets->devs[s];
	for (s = 0; s < ctx->n; s++) {
		u32 dev = pt->devs[(size_t)pg * pt->width + s];

		ctx->row[s] = dev;
		if (dev == CVM_DEV_NONE || !cvm_dev_conn(st, dev))
			ctx->unreachable |= BIT(s);
		if (cvm_stale_test(dev, ctx->vol_id, ctx->object_no))
			ctx->lost |= BIT(s);
	}
	ctx->lost |= ctx->unreachable;
	ctx->need = cvm_write_need(st, ctx->pool_id, ctx->n);
out_unlock:
	rcu_read_unlock();
	return ret;
}

static void cvm_ec_ctx_free(struct cvm_ec_ctx *ctx)
{
	unsigned int s;

	for (s = 0; s < ctx->n; s++)
		kvfree(ctx->buf[s]);
	kvfree(ctx->jhdr);
	kfree(ctx);
}

/* A context for stripes [@s0, @s0 + @nst) of an object; NULL: no memory. */
static struct cvm_ec_ctx *cvm_ec_ctx_alloc(const struct cvm_ec_geom *g,
					   u64 object_no, u64 s0, u32 nst)
{
	struct cvm_ec_ctx *ctx;
	unsigned int s;

	if (WARN_ON_ONCE(nst > CVM_EC_MAX_STRIPES || !nst))
		return NULL;
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return NULL;
	ctx->vol_id = g->vol_id;
	ctx->pool_id = g->pool_id;
	ctx->attach_epoch = g->attach_epoch;
	ctx->object_no = object_no;
	ctx->k = g->k;
	ctx->m = g->m;
	ctx->n = g->k + g->m;
	ctx->unit = g->unit;
	ctx->s0 = s0;
	ctx->nst = nst;
	ctx->jslots = cvm_ec_journal_slots(g->unit);
	atomic_set(&ctx->pending, 1);
	init_completion(&ctx->done);
	for (s = 0; s < ctx->n; s++) {
		ctx->target[s] = CVM_DEV_NONE;
		ctx->buf[s] = kvmalloc((size_t)nst * ctx->unit, GFP_KERNEL);
		if (!ctx->buf[s]) {
			cvm_ec_ctx_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

static struct cvm_ec_geom cvm_ec_geom_of(const struct cvm_volume *vol)
{
	return (struct cvm_ec_geom) {
		.vol_id = vol->id,
		.pool_id = vol->pool_id,
		.attach_epoch = vol->attach_epoch,
		.k = vol->layout.ec_k,
		.m = vol->ec_m,
		.unit = 1U << vol->layout.unit_shift,
	};
}

static blk_status_t cvm_ec_run(struct cvm_ec_io *io)
{
	const struct cvm_volume *vol = io->vol;
	struct cvm_ec_geom g = cvm_ec_geom_of(vol);
	u64 sw = (u64)g.k * g.unit, s0, last;
	unsigned int noio = memalloc_noio_save();
	struct cvm_ec_ctx *ctx;
	blk_status_t sts;

	s0 = div64_u64(io->ext.offset, sw);
	last = div64_u64(io->ext.offset + io->ext.len - 1, sw);
	ctx = cvm_ec_ctx_alloc(&g, io->ext.object_no, s0, last - s0 + 1);
	if (!ctx) {
		sts = BLK_STS_RESOURCE;
		goto out_noio;
	}
	ctx->io = io;
	ctx->wire_flags = io->wire_flags;
	if (cvm_ec_place(ctx)) {
		sts = BLK_STS_TRANSPORT;
	} else if (io->op == CVM_WIRE_OP_READ) {
		sts = cvm_ec_read(ctx);
	} else {
		cvm_ec_lock(ctx);
		sts = cvm_ec_write(ctx);
		cvm_ec_unlock(ctx);
	}
	cvm_ec_ctx_free(ctx);
out_noio:
	memalloc_noio_restore(noio);
	return sts;
}

/* The slot of @dev in @devs, @n if none. */
static unsigned int cvm_ec_slot_of(const u32 *devs, unsigned int n, u32 dev)
{
	unsigned int s;

	for (s = 0; s < n && devs[s] != dev; s++)
		;
	return s;
}

static bool cvm_ec_dev_connected(u32 dev)
{
	const struct cvm_state *st;
	bool up;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	up = st && cvm_dev_conn(st, dev);
	rcu_read_unlock();
	return up;
}

/*
 * Write the rebuilt window of shard @shard to its backfill target
 * @device_id, unless the target holds those bytes already (a device back
 * from being out keeps its shards): 0, -ENOTCONN, -EIO, -ENOMEM.
 */
static int cvm_ec_resync_target(struct cvm_ec_ctx *ctx, u32 device_id,
				unsigned int shard)
{
	u32 len = ctx->nst * ctx->unit, failed, version;
	u8 *held = kvmalloc(len, GFP_KERNEL);
	int ret = 0;

	if (!held)
		return -ENOMEM;
	ctx->target_missed = 0;
	/* An absent shard reads as zeroes: written whatever it holds. */
	if (cvm_intent_stat(device_id, ctx->vol_id, ctx->attach_epoch,
			    ctx->object_no, shard, &version))
		goto write_window;
	cvm_ec_send_to(ctx, CVM_WIRE_OP_READ, shard, device_id,
		       ctx->object_no, ctx->s0 * ctx->unit, held, len, 0, true);
	cvm_ec_wait(ctx, &failed);
	if (!ctx->target_missed && !memcmp(held, ctx->buf[shard], len))
		goto out_free;
write_window:
	ctx->target_missed = 0;
	cvm_ec_send_to(ctx, CVM_WIRE_OP_WRITE, shard, device_id,
		       ctx->object_no, ctx->s0 * ctx->unit, ctx->buf[shard],
		       len, CVM_WIRE_F_FUA, true);
	cvm_ec_wait(ctx, &failed);
	if (ctx->target_missed)
		ret = cvm_ec_dev_connected(device_id) ? -EIO : -ENOTCONN;
out_free:
	kvfree(held);
	return ret;
}

/**
 * cvm_ec_resync() - rebuild @device_id's shard of an object
 * @g: the volume
 * @object_size: bytes
 * @shardp: set to the shard rebuilt
 *
 * Called by the resync work with writes to the object fenced off.  The
 * shard is rebuilt window by window from the other shards and written
 * back (FUA).  A backfill target of a pinned PG gets its slot's shard,
 * read from the pin's device or rebuilt from the others.  Return: 0;
 * -ENOENT when @device_id no longer holds the object's PG (nor is one of
 * its targets); -ENOTCONN when it is unreachable; -EAGAIN when too few
 * other shards answer.
 */
int cvm_ec_resync(u32 device_id, const struct cvm_ec_geom *g, u64 object_no,
		  u64 object_size, u16 *shardp)
{
	u64 sw = (u64)g->k * g->unit;
	u64 nst_total = div64_u64(object_size + sw - 1, sw), s0;
	u32 window = min_t(u64, CVM_EC_MAX_STRIPES, SZ_1M / g->unit);
	DECLARE_BITMAP(all, CVM_EC_MAX_STRIPES);
	unsigned int noio = memalloc_noio_save();
	struct cvm_ec_ctx *ctx;
	unsigned int shard;
	bool to_target;
	blk_status_t sts;
	int ret = 0;
	u32 failed;

	/* Under the object fence: reclaim must not write to this volume. */
	window = max(window, 1U);
	for (s0 = 0; s0 < nst_total && !ret; s0 += window) {
		u32 nst = min_t(u64, window, nst_total - s0);

		ctx = cvm_ec_ctx_alloc(g, object_no, s0, nst);
		if (!ctx) {
			ret = -ENOMEM;
			break;
		}
		ctx->wire_flags = CVM_WIRE_F_FUA;
		if (cvm_ec_place(ctx)) {
			ret = -EAGAIN;
			goto next;
		}
		shard = cvm_ec_slot_of(ctx->row, ctx->n, device_id);
		to_target = shard == ctx->n;
		if (to_target)
			shard = cvm_ec_slot_of(ctx->target, ctx->n, device_id);
		if (shard == ctx->n) {
			ret = -ENOENT;
			goto next;
		}
		*shardp = shard;
		if (!to_target && (ctx->unreachable & BIT(shard))) {
			ret = -ENOTCONN;
			goto next;
		}
		/* Rebuild it from the others, as if lost (a target's: read). */
		if (!to_target)
			ctx->lost |= BIT(shard);
		bitmap_fill(all, nst);
		cvm_ec_lock(ctx);
		sts = cvm_ec_read_rebuild(ctx, all);
		if (sts) {
			ret = -EAGAIN;
		} else if (to_target) {
			ret = cvm_ec_resync_target(ctx, device_id, shard);
		} else {
			ctx->lost &= ~BIT(shard);
			cvm_ec_send(ctx, CVM_WIRE_OP_WRITE, shard,
				    s0 * g->unit, nst * g->unit);
			sts = cvm_ec_wait(ctx, &failed);
			/* Not sent (connection gone) or lost on the way. */
			if (ctx->lost & BIT(shard))
				ret = -ENOTCONN;
			else if (sts)
				ret = -EIO;
		}
		cvm_ec_unlock(ctx);
next:
		cvm_ec_ctx_free(ctx);
	}
	memalloc_noio_restore(noio);
	return ret;
}

/* ---- journal replay ---- */

/* A valid journal chunk found at attach. */
struct cvm_ec_jfound {
	u64	seq;
	u64	object_no;
	u64	stripe;
	u32	dev;
	u32	slot;
	u32	offset;
	u32	length;
	u32	shards;
	u32	missed;
	u16	shard;
};

static int cvm_ec_jfound_cmp(const void *a, const void *b)
{
	const struct cvm_ec_jfound *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->object_no != y->object_no)
		return x->object_no < y->object_no ? -1 : 1;
	if (x->stripe != y->stripe)
		return x->stripe < y->stripe ? -1 : 1;
	return x->shard - y->shard;
}

/* Send one request and wait for it; 0, -ENOTCONN or -EIO. */
static int cvm_ec_sync(struct cvm_ec_ctx *ctx, u8 op, unsigned int shard,
		       u32 dev, u64 object_no, u64 off, u8 *p, u32 len)
{
	u32 failed;

	ctx->lost = 0;
	cvm_ec_send_to(ctx, op, shard, dev, object_no, off, p, len,
		       op == CVM_WIRE_OP_WRITE ? CVM_WIRE_F_FUA : 0, false);
	if (ctx->lost)
		return -ENOTCONN;
	if (cvm_ec_wait(ctx, &failed))
		return -EIO;
	return failed ? -ENOTCONN : 0;
}

/*
 * Is the header in slot @slot of device @dev's journal shard @shard one of
 * this volume's, intact and describing a chunk that fits?  Headers come
 * from disk: every field is checked before use.
 */
static bool cvm_ec_jhdr_valid(const struct cvm_ec_ctx *ctx,
			      const struct cvm_volume *vol,
			      struct cvm_ec_jhdr *h, unsigned int shard,
			      u32 slot, struct cvm_ec_jfound *f)
{
	u64 sw = (u64)ctx->k * ctx->unit;
	u64 stripes = div64_u64(cvm_object_size(&vol->layout) + sw - 1, sw);
	u32 crc = le32_to_cpu(h->hdr_crc);

	if (le32_to_cpu(h->magic) != CVM_EC_JOURNAL_MAGIC)
		return false;
	h->hdr_crc = 0;
	if (crc32c(~0U, h, CVM_EC_JOURNAL_HDR_LEN) != crc)
		return false;
	f->seq = le64_to_cpu(h->seq);
	f->object_no = le64_to_cpu(h->object_no);
	f->stripe = le64_to_cpu(h->stripe);
	f->slot = slot;
	f->offset = le32_to_cpu(h->offset);
	f->length = le32_to_cpu(h->length);
	f->shards = le32_to_cpu(h->shards);
	f->missed = le32_to_cpu(h->missed);
	f->shard = shard;
	return f->seq && le64_to_cpu(h->volume_id) == ctx->vol_id &&
	       h->k == ctx->k && h->m == ctx->m &&
	       le32_to_cpu(h->unit) == ctx->unit &&
	       le16_to_cpu(h->shard) == shard &&
	       le32_to_cpu(h->slot) == slot &&
	       f->object_no < cvm_object_count(&vol->layout) &&
	       f->stripe < stripes &&
	       cvm_ec_journal_slot(f->object_no, f->stripe, ctx->jslots) ==
	       slot &&
	       f->length && f->offset < ctx->unit &&
	       f->length <= ctx->unit - f->offset &&
	       IS_ALIGNED(f->offset | f->length, CVM_WIRE_SECTOR_SIZE) &&
	       f->shards < BIT(ctx->n) && (f->shards & BIT(shard)) &&
	       f->missed < BIT(ctx->n) && !(f->missed & f->shards);
}

/*
 * Read device @dev's journal shard @shard; append its valid chunks to
 * @found (room for ctx->jslots more).  Returns how many were appended, or
 * an errno when the device did not answer a READ: its records are then
 * unknown, and it must count as unreachable, not as holding nothing.
 */
static int cvm_ec_journal_scan(struct cvm_ec_ctx *ctx,
			       const struct cvm_volume *vol, u32 dev,
			       unsigned int shard, u8 *hbuf, u8 *dbuf,
			       struct cvm_ec_jfound *found)
{
	u32 slot, hlen = ctx->jslots * CVM_EC_JOURNAL_HDR_LEN;
	int n = 0, ret;

	ret = cvm_ec_sync(ctx, CVM_WIRE_OP_READ, shard, dev,
			  CVM_EC_JOURNAL_OBJECT, 0, hbuf, hlen);
	if (ret)
		return ret;
	for (slot = 0; slot < ctx->jslots; slot++) {
		struct cvm_ec_jfound *f = &found[n];
		struct cvm_ec_jhdr *h = (void *)(hbuf +
					slot * CVM_EC_JOURNAL_HDR_LEN);
		u64 off = CVM_EC_JOURNAL_DATA_OFF + (u64)slot * ctx->unit;

		if (!cvm_ec_jhdr_valid(ctx, vol, h, shard, slot, f))
			continue;
		f->dev = dev;
		ret = cvm_ec_sync(ctx, CVM_WIRE_OP_READ, shard, dev,
				  CVM_EC_JOURNAL_OBJECT, off + f->offset, dbuf,
				  f->length);
		if (ret)
			return ret;
		/* A torn chunk: its record was never complete. */
		if (crc32c(~0U, dbuf, f->length) == le32_to_cpu(h->data_crc))
			n++;
	}
	return n;
}

static bool cvm_ec_dev_in(u32 dev, const u32 *devs, unsigned int nr)
{
	while (nr--)
		if (devs[nr] == dev)
			return true;
	return false;
}

/*
 * Replay the record @f[0 .. @nr) (one write of one stripe) if it is
 * complete: every shard it names was found, or its device is unreachable.
 * Returns 1 if replayed, 0 if torn, 2 if left for later (more than m of
 * the stripe's devices unreachable: replaying part of it now would only
 * mark shards stale that could then never be rebuilt), or an errno.
 */
static int cvm_ec_journal_apply(struct cvm_ec_ctx *ctx,
				struct cvm_ec_jfound *f, unsigned int nr,
				u8 *dbuf, const u32 *bad, unsigned int nr_bad)
{
	u32 have = 0, unit = ctx->unit;
	unsigned int i, s;

	ctx->object_no = f[0].object_no;
	ctx->lost = 0;
	ctx->unreachable = 0;
	if (cvm_ec_place(ctx))
		return -ENOENT;
	/* Devices whose journal could not be read are as good as gone. */
	for (s = 0; s < ctx->n; s++)
		if (cvm_ec_dev_in(ctx->row[s], bad, nr_bad))
			ctx->unreachable |= BIT(s);
	if (hweight32(ctx->unreachable) > ctx->m)
		return 2;
	for (i = 0; i < nr; i++)
		have |= BIT(f[i].shard);
	for (s = 0; s < ctx->n; s++)
		if ((f[0].shards & BIT(s)) && !(have & BIT(s)) &&
		    !(ctx->unreachable & BIT(s)))
			return 0;
	for (i = 0; i < nr; i++) {
		s = f[i].shard;
		if (ctx->unreachable & BIT(s))
			continue;
		if (cvm_ec_sync(ctx, CVM_WIRE_OP_READ, s, f[i].dev,
				CVM_EC_JOURNAL_OBJECT,
				CVM_EC_JOURNAL_DATA_OFF +
				(u64)f[i].slot * unit + f[i].offset,
				dbuf, f[i].length) ||
		    cvm_ec_sync(ctx, CVM_WIRE_OP_WRITE, s, ctx->row[s],
				f[i].object_no,
				f[i].stripe * unit + f[i].offset,
				dbuf, f[i].length))
			ctx->unreachable |= BIT(s);
	}
	/*
	 * Shards the record could not reach, now or when it was written,
	 * are behind: rebuild them.
	 */
	for (s = 0; s < ctx->n; s++)
		if (((f[0].shards & ctx->unreachable) | f[0].missed) & BIT(s) &&
		    ctx->row[s] != CVM_DEV_NONE &&
		    cvm_stale_mark(ctx->row[s], ctx->vol_id, f[0].object_no))
			return -ENOMEM;
	return 1;
}

/* Devices of the volume's pool, sorted, each once, in *@devsp (kfree). */
static int cvm_ec_pool_devs(u32 pool_id, u32 **devsp, unsigned int *nr)
{
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	unsigned int i, n = 0, total = 0, cap;
	u32 *devs;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, pool_id) : NULL;
	if (pt)
		total = pt->pg_num * pt->width;
	rcu_read_unlock();
	*devsp = NULL;
	*nr = 0;
	if (!total)
		return 0;
	devs = kmalloc_array(total, sizeof(*devs), GFP_KERNEL);
	if (!devs)
		return -ENOMEM;
	cap = total;
	/* The map may have changed meanwhile: take what fits of the new one. */
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, pool_id) : NULL;
	total = pt ? min(cap, pt->pg_num * pt->width) : 0;
	for (i = 0; i < total; i++)
		if (pt->devs[i] != CVM_DEV_NONE)
			devs[n++] = pt->devs[i];
	rcu_read_unlock();
	sort(devs, n, sizeof(*devs), cvm_ec_cmp_uint, NULL);
	for (i = 0, total = 0; i < n; i++)
		if (!total || devs[i] != devs[total - 1])
			devs[total++] = devs[i];
	*devsp = devs;
	*nr = total;
	return 0;
}

/*
 * Wipe the headers of the journal shards that held records (@had: shard
 * bits per device of @devs), once every record is replayed.
 */
static void cvm_ec_journal_wipe(struct cvm_ec_ctx *ctx, const u32 *devs,
				const u32 *had, unsigned int nr_devs, u8 *hbuf)
{
	u32 hlen = ctx->jslots * CVM_EC_JOURNAL_HDR_LEN;
	unsigned int i, s;

	memset(hbuf, 0, hlen);
	for (i = 0; i < nr_devs; i++)
		for (s = 0; s < ctx->n; s++)
			if ((had[i] & BIT(s)) &&
			    cvm_ec_sync(ctx, CVM_WIRE_OP_WRITE, s, devs[i],
					CVM_EC_JOURNAL_OBJECT, 0, hbuf, hlen))
				pr_warn("volume %llu: journal shard %u on device %u not wiped; its records will be looked at again\n",
					ctx->vol_id, s, devs[i]);
}

/**
 * cvm_ec_journal_replay() - finish the writes a crash interrupted
 * @vol: an EC volume being attached, before its disk is added
 *
 * Reads every reachable device's journal shards, replays the complete
 * records in sequence order (see ../common/ec_journal.h), wipes the
 * journal when nothing is left waiting, and sets the volume's next
 * sequence number past every record found.  Return: 0 or an errno (no
 * memory; a record that could not be written).
 */
int cvm_ec_journal_replay(struct cvm_volume *vol)
{
	struct cvm_ec_geom g = cvm_ec_geom_of(vol);
	unsigned int i, j, s, nr_devs = 0, nr = 0, nr_bad = 0;
	unsigned int replayed = 0, torn = 0, waiting = 0;
	struct cvm_ec_jfound *found = NULL;
	u8 *hbuf = NULL, *dbuf = NULL;
	u64 next = ktime_get_real_ns();
	u32 *devs, *bad = NULL, *had = NULL;
	struct cvm_ec_ctx *ctx;
	int ret;

	ctx = cvm_ec_ctx_alloc(&g, 0, 0, 1);
	if (!ctx)
		return -ENOMEM;
	ret = cvm_ec_pool_devs(g.pool_id, &devs, &nr_devs);
	if (ret || !nr_devs)
		goto out_free_ctx;
	ret = -ENOMEM;
	hbuf = kvmalloc(ctx->jslots * CVM_EC_JOURNAL_HDR_LEN, GFP_KERNEL);
	dbuf = kvmalloc(g.unit, GFP_KERNEL);
	found = kvmalloc_array((size_t)nr_devs * ctx->n * ctx->jslots,
			       sizeof(*found), GFP_KERNEL);
	bad = kcalloc(nr_devs, sizeof(*bad), GFP_KERNEL);
	had = kcalloc(nr_devs, sizeof(*had), GFP_KERNEL);
	if (!hbuf || !dbuf || !found || !bad || !had)
		goto out_free;

	for (i = 0; i < nr_devs; i++) {
		for (s = 0; s < ctx->n; s++) {
			int n = cvm_ec_journal_scan(ctx, vol, devs[i], s, hbuf,
						    dbuf, found + nr);

			if (n < 0) {
				bad[nr_bad++] = devs[i];
				break;
			}
			if (n)
				had[i] |= BIT(s);
			nr += n;
		}
	}
	sort(found, nr, sizeof(*found), cvm_ec_jfound_cmp, NULL);
	for (i = 0; i < nr; i = j) {
		for (j = i + 1; j < nr && found[j].seq == found[i].seq &&
		     found[j].object_no == found[i].object_no &&
		     found[j].stripe == found[i].stripe; j++)
			;
		next = max(next, found[i].seq + 1);
		ret = cvm_ec_journal_apply(ctx, &found[i], j - i, dbuf, bad,
					   nr_bad);
		if (ret < 0) {
			pr_err("volume %llu: journal record %llu (object %llu stripe %llu) not replayed: %d\n",
			       vol->id, found[i].seq, found[i].object_no,
			       found[i].stripe, ret);
			goto out_free;
		}
		if (ret == 1)
			replayed++;
		else if (ret == 2)
			waiting++;
		else
			torn++;
	}
	ret = 0;
	if (nr)
		pr_info("volume %llu: journal: %u stripe writes replayed, %u incomplete (torn or superseded) left out\n",
			vol->id, replayed, torn);
	if (waiting)
		pr_warn("volume %llu: journal: %u stripe writes not replayed: more than %u devices of their stripe unreachable; attach again once they are back\n",
			vol->id, waiting, ctx->m);
	else
		cvm_ec_journal_wipe(ctx, devs, had, nr_devs, hbuf);
	atomic64_set(&vol->ec_jseq, next);
out_free:
	kfree(had);
	kfree(bad);
	kvfree(found);
	kvfree(dbuf);
	kvfree(hbuf);
	kfree(devs);
out_free_ctx:
	cvm_ec_ctx_free(ctx);
	return ret;
}

static void cvm_ec_work(struct work_struct *work)
{
	struct cvm_ec_io *io = container_of(work, struct cvm_ec_io, work);

	io->status = cvm_ec_run(io);
	io->done(io);
}

/* Run an EC piece (READ or WRITE); @io->done runs when it is over. */
void cvm_ec_io_queue(struct cvm_ec_io *io)
{
	INIT_WORK(&io->work, cvm_ec_work);
	queue_work(cvm_ec_wq, &io->work);
}

int cvm_ec_init(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cvm_ec_locks); i++)
		mutex_init(&cvm_ec_locks[i]);
	cvm_ec_wq = alloc_workqueue("cvm_ec", WQ_MEM_RECLAIM, 0);
	return cvm_ec_wq ? 0 : -ENOMEM;
}

void cvm_ec_exit(void)
{
	destroy_workqueue(cvm_ec_wq);
}
