// SPDX-License-Identifier: GPL-2.0
/*
 * Attached volumes: one blk-mq disk, /dev/cvm<minor>, per volume.
 *
 * Attach and detach run under cvm_config_mutex.  Detach refuses an open
 * device unless forced; a forced detach removes the disk under its openers
 * (del_gendisk() marks it dead and drains the I/O in flight), and the
 * volume's memory lives on until the block layer releases the disk
 * (->free_disk), so a late ->release finds it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blkdev.h>
#include <linux/idr.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include <net/genetlink.h>

#include "initiator.h"
#include "../common/ec_journal.h"

#define CVM_QUEUE_DEPTH		128
#define CVM_IO_TIMEOUT		(30 * HZ)
#define CVM_MAX_SEGMENTS	128

LIST_HEAD(cvm_volumes);
static DEFINE_IDA(cvm_minor_ida);

static int cvm_blk_open(struct block_device *bdev, fmode_t mode)
{
	struct cvm_volume *vol = bdev->bd_disk->private_data;
	int ret = 0;

	mutex_lock(&vol->lock);
	if (vol->dying)
		ret = -ENXIO;
	else
		vol->open_count++;
	mutex_unlock(&vol->lock);
	return ret;
}

static void cvm_blk_release(struct gendisk *disk, fmode_t mode)
{
	struct cvm_volume *vol = disk->private_data;

	mutex_lock(&vol->lock);
	vol->open_count--;
	mutex_unlock(&vol->lock);
}

/* The block layer let go of the disk: nobody can reach the volume now. */
static void cvm_blk_free_disk(struct gendisk *disk)
{
	struct cvm_volume *vol = disk->private_data;

	ida_free(&cvm_minor_ida, vol->minor);
	cvm_stats_free(vol);
	cvm_unflushed_destroy(&vol->unflushed);
	mutex_destroy(&vol->lock);
	kfree(vol);
}

static const struct block_device_operations cvm_blk_fops = {
	.owner		= THIS_MODULE,
	.open		= cvm_blk_open,
	.release	= cvm_blk_release,
	.free_disk	= cvm_blk_free_disk,
};

static struct cvm_volume *cvm_volume_find(u64 id)
{
	struct cvm_volume *vol;

	list_for_each_entry(vol, &cvm_volumes, entry)
		if (vol->id == id)
			return vol;
	return NULL;
}

/* The attached volume @id, or NULL; under cvm_config_mutex. */
struct cvm_volume *cvm_volume_lookup(u64 id)
{
	lockdep_assert_held(&cvm_config_mutex);
	return cvm_volume_find(id);
}

unsigned int cvm_volume_count(void)
{
	struct cvm_volume *vol;
	unsigned int n = 0;

	list_for_each_entry(vol, &cvm_volumes, entry)
		n++;
	return n;
}

static int cvm_volume_check(const struct cvm_volume_spec *spec,
			    struct cvm_layout *layout, u32 *ec_m,
			    struct netlink_ext_ack *extack)
{
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	struct cvm_err err = {};
	int ret;

	if (!spec->size || !IS_ALIGNED(spec->size, SZ_4K)) {
		NL_SET_ERR_MSG(extack, "volume size must be a non-zero multiple of 4096");
		return -EINVAL;
	}
	if (!is_power_of_2(spec->object_size)) {
		NL_SET_ERR_MSG(extack, "object size must be a power of two");
		return -EINVAL;
	}
	if (!spec->attach_epoch) {
		NL_SET_ERR_MSG(extack, "attach epoch must not be 0");
		return -EINVAL;
	}
	/* The request's own fields first, then what the map says. */
	layout->size = spec->size;
	layout->object_shift = ilog2(spec->object_size);
	layout->ec_k = 0;
	layout->unit_shift = 0;
	*ec_m = 0;
	ret = cvm_layout_check(layout, &err);
	if (ret) {
		cvm_extack_why(extack, &err);
		return ret;
	}
	if (cvm_volume_find(spec->id)) {
		NL_SET_ERR_MSG(extack, "volume already attached");
		return -EEXIST;
	}

	st = rcu_dereference_protected(cvm_state,
				       lockdep_is_held(&cvm_config_mutex));
	if (!st) {
		NL_SET_ERR_MSG(extack, "no map installed");
		return -ENOENT;
	}
	pt = cvm_state_pool(st, spec->pool_id);
	if (!pt) {
		NL_SET_ERR_MSG(extack, "pool not in the installed map");
		return -ENOENT;
	}
	if (pt->kind == CVM_POOL_EC) {
		/* Units are whole pages: stripes are worked on in pages. */
		if (!spec->stripe_unit || !is_power_of_2(spec->stripe_unit) ||
		    spec->stripe_unit < SZ_4K) {
			NL_SET_ERR_MSG(extack,
				       "an EC volume needs a stripe unit: a power of two of at least 4096");
			return -EINVAL;
		}
		/* The stripe journal holds at least three units per device. */
		if (spec->stripe_unit > CVM_EC_JOURNAL_MAX_UNIT) {
			NL_SET_ERR_MSG(extack,
				       "stripe unit too large: at most 1 MiB");
			return -EINVAL;
		}
		layout->ec_k = pt->k;
		layout->unit_shift = ilog2(spec->stripe_unit);
		*ec_m = pt->m;
	} else if (pt->kind != CVM_POOL_REPLICATED) {
		NL_SET_ERR_MSG(extack, "pool kind not supported");
		return -EOPNOTSUPP;
	} else if (spec->stripe_unit) {
		NL_SET_ERR_MSG(extack,
			       "a stripe unit is for EC pools; this pool is replicated");
		return -EINVAL;
	}
	ret = cvm_layout_check(layout, &err);
	if (ret) {
		cvm_extack_why(extack, &err);
		return ret;
	}
	return 0;
}

static void cvm_volume_set_limits(struct cvm_volume *vol)
{
	struct request_queue *q = vol->disk->queue;
	u32 obj_sectors = cvm_object_size(&vol->layout) >> SECTOR_SHIFT;
	u32 max_sectors = min_t(u32, obj_sectors,
				CVM_WIRE_MAX_DATA_LEN >> SECTOR_SHIFT);

	blk_queue_logical_block_size(q, SECTOR_SIZE);
	blk_queue_physical_block_size(q, SZ_4K);
	blk_queue_io_min(q, SZ_4K);
	/*
	 * EC: requests come in 4 KiB blocks, as the stripe buffers are worked
	 * in pages, and at most CVM_EC_MAX_PIECE; no discard or write zeroes
	 * (the block layer writes zeroes itself).
	 */
	if (vol->layout.ec_k) {
		max_sectors = min_t(u32, max_sectors,
				    CVM_EC_MAX_PIECE >> SECTOR_SHIFT);
		blk_queue_logical_block_size(q, SZ_4K);
	}
	/* Reads and writes never cross an object; one wire message each. */
	blk_queue_max_hw_sectors(q, max_sectors);
	blk_queue_chunk_sectors(q, obj_sectors);
	blk_queue_max_segments(q, CVM_MAX_SEGMENTS);
	/*
	 * No gaps between segments, as nvme does: the rdma transport
	 * registers a payload as one page list (fast registration).
	 */
	blk_queue_virt_boundary(q, PAGE_SIZE - 1);
	/*
	 * A discard frees space only where it covers a whole object, so the
	 * granularity is the object (as rbd's alloc_size): the block layer
	 * then splits long discards at object boundaries, fstrim skips free
	 * ranges shorter than an object, and a discard at an unaligned
	 * offset is not cut into pieces that each straddle two objects.
	 * Discards may still cross one object boundary: split in queue_rq.
	 */
	q->limits.discard_granularity = cvm_object_size(&vol->layout);
	if (!vol->layout.ec_k) {
		blk_queue_max_discard_sectors(q, obj_sectors);
		blk_queue_max_write_zeroes_sectors(q, obj_sectors);
	}
	blk_queue_write_cache(q, true, true);
	blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	blk_queue_flag_clear(QUEUE_FLAG_ADD_RANDOM, q);
	/*
	 * Pages must not change while a write is in flight: each replica
	 * (each RDMA READ) takes the page at its own moment, EC parity is
	 * computed from it, and the tcp payload CRC is computed once for all
	 * replicas.  Without this the page cache redirties pages under
	 * writeback, and replicas differ or fail their CRC.
	 */
	blk_queue_flag_set(QUEUE_FLAG_STABLE_WRITES, q);
}

/*
 * cvm_volume_attach() - create /dev/cvmN for a volume
 *
 * Called under cvm_config_mutex.  On success *@volp is the new volume.
 */
int cvm_volume_attach(const struct cvm_volume_spec *spec,
		      struct cvm_volume **volp, struct netlink_ext_ack *extack)
{
	struct cvm_layout layout;
	struct cvm_volume *vol;
	struct gendisk *disk;
	u32 ec_m;
	int ret;

	ret = cvm_volume_check(spec, &layout, &ec_m, extack);
	if (ret)
		return ret;

	vol = kzalloc(sizeof(*vol), GFP_KERNEL);
	if (!vol)
		return -ENOMEM;
	vol->id = spec->id;
	vol->pool_id = spec->pool_id;
	vol->attach_epoch = spec->attach_epoch;
	vol->layout = layout;
	vol->ec_m = ec_m;
	if (spec->name)
		strscpy(vol->name, spec->name, sizeof(vol->name));
	mutex_init(&vol->lock);
	cvm_unflushed_init(&vol->unflushed);

	ret = cvm_stats_init(vol);
	if (ret)
		goto out_free_vol;
	ret = ida_alloc_max(&cvm_minor_ida, MINORMASK, GFP_KERNEL);
	if (ret < 0)
		goto out_free_stats;
	vol->minor = ret;

	vol->tag_set.ops = &cvm_mq_ops;
	vol->tag_set.nr_hw_queues = num_online_cpus();
	vol->tag_set.queue_depth = CVM_QUEUE_DEPTH;
	vol->tag_set.numa_node = NUMA_NO_NODE;
	vol->tag_set.cmd_size = cvm_io_size();
	vol->tag_set.flags = BLK_MQ_F_SHOULD_MERGE;
	vol->tag_set.timeout = CVM_IO_TIMEOUT;
	vol->tag_set.driver_data = vol;
	ret = blk_mq_alloc_tag_set(&vol->tag_set);
	if (ret)
		goto out_free_minor;

	disk = blk_mq_alloc_disk(&vol->tag_set, vol);
	if (IS_ERR(disk)) {
		ret = PTR_ERR(disk);
		goto out_cleanup_tags;
	}
	vol->disk = disk;
	disk->major = cvm_major;
	disk->first_minor = vol->minor;
	disk->minors = 1;
	disk->fops = &cvm_blk_fops;
	disk->private_data = vol;
	disk->flags |= GENHD_FL_NO_PART;
	snprintf(disk->disk_name, sizeof(disk->disk_name), CVM_BLKDEV_NAME "%d",
		 vol->minor);
	cvm_volume_set_limits(vol);
	set_capacity(disk, spec->size >> SECTOR_SHIFT);

	/* Finish the stripe writes a crash of the last initiator cut off. */
	if (vol->layout.ec_k) {
		ret = cvm_ec_journal_replay(vol);
		if (ret) {
			NL_SET_ERR_MSG(extack,
				       "EC stripe journal could not be replayed (see the kernel log)");
			goto out_cleanup_disk;
		}
	}

	/* Read the targets' records of missed writes before any I/O. */
	cvm_intent_attach(vol);
	cvm_backfill_attach(vol);
	ret = device_add_disk(NULL, disk, cvm_disk_attr_groups);
	if (ret)
		goto out_stop_intent;

	list_add_tail(&vol->entry, &cvm_volumes);
	pr_info("%s: volume %llu (%s) attached, pool %u, %llu bytes, objects of %llu, epoch %llu\n",
		disk->disk_name, vol->id, vol->name, vol->pool_id,
		vol->layout.size, cvm_object_size(&vol->layout),
		vol->attach_epoch);
	*volp = vol;
	return 0;

out_stop_intent:
	WRITE_ONCE(vol->dying, true);
	cvm_backfill_detach(vol);
	cvm_intent_detach(vol, false);
out_cleanup_disk:
	put_disk(disk);
out_cleanup_tags:
	blk_mq_free_tag_set(&vol->tag_set);
out_free_minor:
	ida_free(&cvm_minor_ida, vol->minor);
out_free_stats:
	cvm_stats_free(vol);
out_free_vol:
	mutex_destroy(&vol->lock);
	kfree(vol);
	return ret;
}

/* Remove the disk; the volume is freed by ->free_disk. */
static void cvm_volume_remove(struct cvm_volume *vol)
{
	struct gendisk *disk = vol->disk;

	list_del(&vol->entry);
	pr_info("%s: volume %llu detached\n", disk->disk_name, vol->id);
	/* Its listing freezes the queue too: stopped first. */
	cvm_backfill_detach(vol);
	/* Freezes the queue: waits for every request in flight. */
	del_gendisk(disk);
	/* No I/O any more: clear the intent bits of what it wrote. */
	cvm_intent_detach(vol, true);
	/* del_gendisk() exited the queue: the tag set may go now. */
	blk_mq_free_tag_set(&vol->tag_set);
	put_disk(disk);
}

/* Called under cvm_config_mutex. */
int cvm_volume_detach(u64 id, u32 flags, struct netlink_ext_ack *extack)
{
	struct cvm_volume *vol = cvm_volume_find(id);

	if (!vol) {
		NL_SET_ERR_MSG(extack, "volume not attached");
		return -ENOENT;
	}
	mutex_lock(&vol->lock);
	if (vol->open_count && !(flags & CVM_VOLUME_F_FORCE)) {
		mutex_unlock(&vol->lock);
		NL_SET_ERR_MSG(extack, "device is open (CVM_VOLUME_F_FORCE detaches anyway)");
		return -EBUSY;
	}
	WRITE_ONCE(vol->dying, true);	/* held I/O fails now */
	mutex_unlock(&vol->lock);

	cvm_volume_remove(vol);
	return 0;
}

/* Module exit: nothing is open (each opener holds a module reference). */
void cvm_volume_exit(void)
{
	struct cvm_volume *vol, *next;

	mutex_lock(&cvm_config_mutex);
	list_for_each_entry_safe(vol, next, &cvm_volumes, entry) {
		WRITE_ONCE(vol->dying, true);	/* held I/O fails now */
		cvm_volume_remove(vol);
	}
	mutex_unlock(&cvm_config_mutex);
}
