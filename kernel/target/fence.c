// SPDX-License-Identifier: GPL-2.0
/*
 * Fencing: a device refuses requests of an attachment that is not the
 * volume's newest.
 *
 * Every attach of a volume gets a new, higher attach epoch (cvmd's), and
 * every request of that attachment carries it.  Each device keeps, per
 * volume, the newest epoch it knows, learnt two ways:
 *
 *   - from cvmd (TARGET_VOLUME_FENCE, cvm_fence_set()): written to the
 *     device with FUA before the command returns, and returned only once
 *     every request accepted before it has completed (the gate below), so
 *     when cvmd has fenced every device of a volume no request of an older
 *     attachment is in flight anywhere nor will be accepted, and a device
 *     that restarts still refuses them;
 *   - from requests that carry a newer epoch (cvm_fence_enter()): raised
 *     at once in memory, written to the device soon after (a restart in
 *     between forgets it until cvmd or the next request says it again).
 *
 * A request of an older epoch is answered CVM_WIRE_STATUS_STALE_ATTACH,
 * which the initiator fails without retrying.  Epoch 0 names no
 * attachment (tools, scrub): it may read and STAT a fenced volume, never
 * change it.
 *
 * Each entry also names the attaching host (cvmd gives it with the
 * epoch): a host that is not cvmd's agent on the device (hosts.c) may
 * only touch the volumes fenced for it, others are answered
 * CVM_WIRE_STATUS_DENIED.
 *
 * The gate.  Requests enter under @lock, counted in one of two counters;
 * cvm_fence_set() raises the epoch and switches new requests to the other
 * counter in the same critical section, then waits until the old one
 * drains.  Fence changes are serialised by @set_lock, so the counter a
 * change switches away from has drained before the next change reuses it.
 *
 * On disk (store format version 2, store.c): @blocks 4 KiB blocks of
 * 32-byte entries (struct cvm_fence_disk), 16 per 512-byte sector; an
 * entry is rewritten in place and never crosses a sector, so a torn write
 * leaves it old or new.  Each carries its own CRC32C.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/cvm_wire.h>
#include <linux/hash.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "fence.h"

#define CVM_FENCE_F_USED	(1U << 0)
#define CVM_FENCE_DRAIN_TIMEOUT	(30 * HZ)

/* struct cvm_fence_disk - one volume's fence on disk */
struct cvm_fence_disk {
	__le64	volume_id;
	__le64	attach_epoch;
	__le64	host_id;	/* the attaching host; 0: none */
	__le32	flags;
	__le32	crc;		/* CRC32C of the preceding bytes */
};

static_assert(sizeof(struct cvm_fence_disk) == 32);
static_assert(SECTOR_SIZE % sizeof(struct cvm_fence_disk) == 0);

#define CVM_FENCE_PER_BLOCK	(CVM_FENCE_BLK_SIZE / sizeof(struct cvm_fence_disk))

/* struct cvm_fence_ent - one volume's fence in memory */
struct cvm_fence_ent {
	struct hlist_node	node;
	u64			volume_id;
	u64			epoch;
	u64			host_id;
	u32			slot;
};

static u32 cvm_fence_crc(const struct cvm_fence_disk *e)
{
	return crc32c(~0U, e, offsetof(struct cvm_fence_disk, crc)) ^ ~0U;
}

static struct hlist_head *cvm_fence_bucket(struct cvm_fence_table *ft,
					   u64 volume_id)
{
	return &ft->buckets[hash_64(volume_id, CVM_FENCE_HASH_BITS)];
}

static struct cvm_fence_ent *cvm_fence_find(struct cvm_fence_table *ft,
					    u64 volume_id)
{
	struct cvm_fence_ent *e;

	hlist_for_each_entry(e, cvm_fence_bucket(ft, volume_id), node)
		if (e->volume_id == volume_id)
			return e;
	return NULL;
}

static struct cvm_fence_disk *cvm_fence_slot(struct cvm_fence_table *ft,
					     u32 slot)
{
	return (struct cvm_fence_disk *)ft->image + slot;
}

/* Write @e's epoch into the image.  @lock held. */
static void cvm_fence_seal(struct cvm_fence_table *ft,
			   const struct cvm_fence_ent *e)
{
	struct cvm_fence_disk *de = cvm_fence_slot(ft, e->slot);

	de->volume_id = cpu_to_le64(e->volume_id);
	de->attach_epoch = cpu_to_le64(e->epoch);
	de->host_id = cpu_to_le64(e->host_id);
	de->flags = cpu_to_le32(CVM_FENCE_F_USED);
	de->crc = cpu_to_le32(cvm_fence_crc(de));
	__set_bit(e->slot / CVM_FENCE_PER_BLOCK, ft->dirty);
}

/*
 * Take a free slot for @volume_id with @fresh (allocated by the caller).
 * @lock held.  NULL when every slot is taken.
 */
static struct cvm_fence_ent *cvm_fence_add(struct cvm_fence_table *ft,
					   struct cvm_fence_ent *fresh,
					   u64 volume_id)
{
	u32 slot, nr = ft->blocks * CVM_FENCE_PER_BLOCK;

	for (slot = 0; slot < nr; slot++)
		if (!cvm_fence_slot(ft, slot)->flags)
			break;
	if (slot == nr)
		return NULL;
	fresh->volume_id = volume_id;
	fresh->epoch = 0;
	fresh->host_id = 0;
	fresh->slot = slot;
	hlist_add_head(&fresh->node, cvm_fence_bucket(ft, volume_id));
	return fresh;
}

/*
 * Write the blocks changed since the last call, with FUA.  @set_lock held.
 * Each block is copied under @lock, so it is never written half-changed.
 */
static int cvm_fence_write_dirty(struct cvm_fence_table *ft)
{
	u8 *blk = kmalloc(CVM_FENCE_BLK_SIZE, GFP_KERNEL);
	unsigned long b;
	int ret = 0;

	if (!blk)
		return -ENOMEM;
	for (;;) {
		spin_lock(&ft->lock);
		b = find_first_bit(ft->dirty, ft->blocks);
		if (b < ft->blocks) {
			__clear_bit(b, ft->dirty);
			memcpy(blk, ft->image + b * CVM_FENCE_BLK_SIZE,
			       CVM_FENCE_BLK_SIZE);
		}
		spin_unlock(&ft->lock);
		if (b >= ft->blocks)
			break;
		ret = cvm_bdev_rw_block(ft->bdev, ft->start + b, blk,
					REQ_OP_WRITE | REQ_SYNC | REQ_FUA);
		if (ret) {
			spin_lock(&ft->lock);
			__set_bit(b, ft->dirty);	/* try again later */
			spin_unlock(&ft->lock);
			break;
		}
	}
	kfree(blk);
	return ret;
}

static void cvm_fence_persist_work(struct work_struct *work)
{
	struct cvm_fence_table *ft = container_of(work, struct cvm_fence_table,
						  persist);
	int ret;

	mutex_lock(&ft->set_lock);
	ret = cvm_fence_write_dirty(ft);
	mutex_unlock(&ft->set_lock);
	if (ret)
		pr_warn_ratelimited("%pg: writing learnt attach epochs failed (%d)\n",
				    ft->bdev, ret);
}

static int cvm_fence_alloc(struct cvm_fence_table *ft, struct block_device *bdev,
			   u64 start, u32 blocks)
{
	unsigned int i;

	ft->bdev = bdev;
	ft->start = start;
	ft->blocks = blocks;
	spin_lock_init(&ft->lock);
	mutex_init(&ft->set_lock);
	init_waitqueue_head(&ft->drained);
	atomic_set(&ft->inflight[0], 0);
	atomic_set(&ft->inflight[1], 0);
	ft->gate = 0;
	ft->nr_fenced = 0;
	for (i = 0; i < ARRAY_SIZE(ft->buckets); i++)
		INIT_HLIST_HEAD(&ft->buckets[i]);
	INIT_WORK(&ft->persist, cvm_fence_persist_work);
	ft->image = kvzalloc((size_t)blocks * CVM_FENCE_BLK_SIZE, GFP_KERNEL);
	ft->dirty = bitmap_zalloc(blocks, GFP_KERNEL);
	if (!ft->image || !ft->dirty)
		return -ENOMEM;
	return 0;
}

/* An empty table, written to the device (FORMAT). */
int cvm_fence_format(struct cvm_fence_table *ft, struct block_device *bdev,
		     u64 start, u32 blocks)
{
	int ret = cvm_fence_alloc(ft, bdev, start, blocks);
	u32 b;

	if (ret)
		return ret;
	for (b = 0; b < blocks; b++) {
		ret = cvm_bdev_rw_block(bdev, start + b,
					ft->image + b * CVM_FENCE_BLK_SIZE,
					REQ_OP_WRITE);
		if (ret)
			return ret;
	}
	return 0;
}

/* Read and check the table.  -EUCLEAN with *@why on a bad entry. */
int cvm_fence_load(struct cvm_fence_table *ft, struct block_device *bdev,
		   u64 start, u32 blocks, const char **why)
{
	int ret = cvm_fence_alloc(ft, bdev, start, blocks);
	u32 b, slot, nr = blocks * CVM_FENCE_PER_BLOCK;

	if (ret)
		return ret;
	for (b = 0; b < blocks; b++) {
		ret = cvm_bdev_rw_block(bdev, start + b,
					ft->image + b * CVM_FENCE_BLK_SIZE,
					REQ_OP_READ);
		if (ret) {
			*why = "reading the fence table failed";
			return ret;
		}
	}
	for (slot = 0; slot < nr; slot++) {
		struct cvm_fence_disk *de = cvm_fence_slot(ft, slot);
		struct cvm_fence_ent *e;

		if (!de->flags && !de->volume_id && !de->attach_epoch &&
		    !de->host_id && !de->crc)
			continue;
		if (le32_to_cpu(de->crc) != cvm_fence_crc(de)) {
			*why = "fence table entry CRC mismatch";
			return -EUCLEAN;
		}
		if (le32_to_cpu(de->flags) != CVM_FENCE_F_USED) {
			*why = "fence table entry with unknown flags";
			return -EUCLEAN;
		}
		if (cvm_fence_find(ft, le64_to_cpu(de->volume_id))) {
			*why = "fence table names a volume twice";
			return -EUCLEAN;
		}
		e = kzalloc(sizeof(*e), GFP_KERNEL);
		if (!e)
			return -ENOMEM;
		e->volume_id = le64_to_cpu(de->volume_id);
		e->epoch = le64_to_cpu(de->attach_epoch);
		e->host_id = le64_to_cpu(de->host_id);
		e->slot = slot;
		hlist_add_head(&e->node, cvm_fence_bucket(ft, e->volume_id));
		ft->nr_fenced++;
	}
	return 0;
}

/* Nothing may use @ft any more (device removal). */
void cvm_fence_destroy(struct cvm_fence_table *ft)
{
	struct cvm_fence_ent *e;
	struct hlist_node *tmp;
	unsigned int i;

	if (ft->bdev)
		cancel_work_sync(&ft->persist);
	for (i = 0; i < ARRAY_SIZE(ft->buckets); i++)
		hlist_for_each_entry_safe(e, tmp, &ft->buckets[i], node)
			kfree(e);
	bitmap_free(ft->dirty);
	kvfree(ft->image);
	ft->dirty = NULL;
	ft->image = NULL;
}

static bool cvm_fence_op_changes(u8 opcode)
{
	return opcode != CVM_WIRE_OP_READ && opcode != CVM_WIRE_OP_STAT;
}

/*
 * May @host_id send @h, of the volume of entry @e (NULL: none)?  The host
 * the volume is fenced for may; of volume 0, which is no volume, anyone
 * may STAT (keep-alives); else only the device's agent (hosts.c), looked
 * up only then, off the common path.  @lock held.
 */
static bool cvm_fence_lets(const struct cvm_fence_ent *e,
			   const struct cvm_wire_hdr *h, u64 host_id,
			   u32 device_id)
{
	if (h->volume_id ? e && e->host_id == host_id :
			   h->opcode == CVM_WIRE_OP_STAT)
		return true;
	return cvm_hosts_agent(device_id, host_id);
}

/*
 * cvm_fence_enter() - may this request of a volume go ahead?
 * @host_id: the host that sent it (authenticated in HELLO)
 * @device_id: the device @ft belongs to (whose agent may touch any volume)
 * @gate: set when it may; give it to cvm_fence_exit() once answered
 *
 * CVM_WIRE_STATUS_OK, STALE_ATTACH for an older attachment's request, or
 * DENIED for a volume not fenced for @host_id.  Process context.
 */
u16 cvm_fence_enter(struct cvm_fence_table *ft, const struct cvm_wire_hdr *h,
		    u64 host_id, u32 device_id, int *gate)
{
	u64 volume_id = le64_to_cpu(h->volume_id);
	u64 epoch = le64_to_cpu(h->attach_epoch);
	struct cvm_fence_ent *e, *fresh = NULL;
	bool learnt = false;

	for (;;) {
		spin_lock(&ft->lock);
		e = cvm_fence_find(ft, volume_id);
		if (e || !epoch || fresh)
			break;
		/* A first epoch for this volume: allocate, then look again. */
		spin_unlock(&ft->lock);
		fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);
		if (!fresh) {
			spin_lock(&ft->lock);
			e = cvm_fence_find(ft, volume_id);
			break;
		}
	}
	/*
	 * An older attachment is fenced whoever sends it: that answer is
	 * final (the initiator fails the I/O at once).  DENIED, which it
	 * waits out, is for a host this device was not told about.
	 */
	if (e && epoch < e->epoch &&
	    (epoch || cvm_fence_op_changes(h->opcode))) {
		spin_unlock(&ft->lock);
		kfree(fresh);
		pr_warn_ratelimited("%pg: volume %llu: refused a request of attach epoch %llu, the volume's is %llu\n",
				    ft->bdev, volume_id, epoch, e->epoch);
		return CVM_WIRE_STATUS_STALE_ATTACH;
	}
	if (!cvm_fence_lets(e, h, host_id, device_id)) {
		spin_unlock(&ft->lock);
		kfree(fresh);
		pr_warn_ratelimited("%pg: volume %llu: refused host %llu, which was not given the volume\n",
				    ft->bdev, volume_id, host_id);
		return CVM_WIRE_STATUS_DENIED;
	}
	if (!e && fresh && epoch) {
		e = cvm_fence_add(ft, fresh, volume_id);
		if (e) {
			fresh = NULL;
			ft->nr_fenced++;
		}
	}
	if (e && epoch > e->epoch) {
		e->epoch = epoch;
		cvm_fence_seal(ft, e);
		learnt = true;
	}
	*gate = ft->gate;
	atomic_inc(&ft->inflight[*gate]);
	spin_unlock(&ft->lock);
	kfree(fresh);
	if (learnt)
		queue_work(system_unbound_wq, &ft->persist);
	return CVM_WIRE_STATUS_OK;
}

/* May @host_id send @h (LIST, ROLLBACK)?  Process context. */
bool cvm_fence_granted(struct cvm_fence_table *ft, const struct cvm_wire_hdr *h,
		       u64 host_id, u32 device_id)
{
	bool ok;

	spin_lock(&ft->lock);
	ok = cvm_fence_lets(cvm_fence_find(ft, le64_to_cpu(h->volume_id)), h,
			    host_id, device_id);
	spin_unlock(&ft->lock);
	return ok;
}

/* A request let in by cvm_fence_enter() was answered.  Any context. */
void cvm_fence_exit(struct cvm_fence_table *ft, int gate)
{
	if (atomic_dec_and_test(&ft->inflight[gate]))
		wake_up(&ft->drained);
}

/*
 * cvm_fence_set() - @volume_id's attach epoch is now @epoch (cvmd), and
 * its attaching host @host_id (0: none)
 *
 * Refuses to lower it (-ESTALE).  Returns once the epoch is on the device
 * and every request accepted before it has been answered.  Process
 * context; *@why says what failed.
 */
int cvm_fence_set(struct cvm_fence_table *ft, u64 volume_id, u64 epoch,
		  u64 host_id, const char **why)
{
	struct cvm_fence_ent *e, *fresh;
	int ret = 0, old;

	fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);
	if (!fresh)
		return -ENOMEM;
	mutex_lock(&ft->set_lock);
	spin_lock(&ft->lock);
	e = cvm_fence_find(ft, volume_id);
	if (!e) {
		e = cvm_fence_add(ft, fresh, volume_id);
		if (!e) {
			spin_unlock(&ft->lock);
			*why = "the device's fence table is full";
			ret = -ENOSPC;
			goto out_unlock;
		}
		fresh = NULL;
		ft->nr_fenced++;
	}
	if (epoch < e->epoch) {
		spin_unlock(&ft->lock);
		*why = "the device knows a newer attach epoch of the volume";
		ret = -ESTALE;
		goto out_unlock;
	}
	if (epoch > e->epoch || host_id != e->host_id) {
		e->epoch = epoch;
		e->host_id = host_id;
		cvm_fence_seal(ft, e);
	}
	old = ft->gate;
	/* The counter we switch to: empty unless an earlier drain timed out. */
	if (atomic_read(&ft->inflight[old ^ 1])) {
		spin_unlock(&ft->lock);
		if (!wait_event_timeout(ft->drained,
					!atomic_read(&ft->inflight[old ^ 1]),
					CVM_FENCE_DRAIN_TIMEOUT)) {
			*why = "requests accepted before an earlier fence are still in flight";
			ret = -ETIMEDOUT;
			goto out_unlock;
		}
		spin_lock(&ft->lock);
	}
	ft->gate ^= 1;
	spin_unlock(&ft->lock);

	ret = cvm_fence_write_dirty(ft);
	if (ret) {
		*why = "writing the fence table failed";
		goto out_unlock;
	}
	if (!wait_event_timeout(ft->drained, !atomic_read(&ft->inflight[old]),
				CVM_FENCE_DRAIN_TIMEOUT)) {
		*why = "requests accepted before the fence are still in flight";
		ret = -ETIMEDOUT;
	}
out_unlock:
	mutex_unlock(&ft->set_lock);
	kfree(fresh);
	return ret;
}

/* Fenced volumes, for STATUS. */
u32 cvm_fence_count(struct cvm_fence_table *ft)
{
	u32 n;

	spin_lock(&ft->lock);
	n = ft->nr_fenced;
	spin_unlock(&ft->lock);
	return n;
}
