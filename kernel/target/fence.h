/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fencing of older attachments, per device (fence.c).
 */
#ifndef _CVM_TARGET_FENCE_H
#define _CVM_TARGET_FENCE_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "target.h"

struct cvm_wire_hdr;

#define CVM_FENCE_BLK_SIZE	4096U
#define CVM_FENCE_HASH_BITS	6

/*
 * struct cvm_fence_table - one device's attach epochs
 * @bdev, @start, @blocks: where the table lives on the device
 * @image: the table's blocks in memory
 * @dirty: blocks of @image changed since they were last written
 * @buckets: volume id -> struct cvm_fence_ent
 * @nr_fenced: volumes with an epoch
 * @lock: protects @image, @dirty, @buckets, epochs and @gate
 * @gate: which of @inflight new requests count in
 * @inflight: requests let in and not answered yet, per gate
 * @drained: woken when a counter of @inflight drops to zero
 * @set_lock: serialises cvm_fence_set() and writes of @image
 * @persist: writes epochs learnt from requests
 */
struct cvm_fence_table {
	struct block_device	*bdev;
	u64			start;
	u32			blocks;
	u8			*image;
	unsigned long		*dirty;
	struct hlist_head	buckets[1 << CVM_FENCE_HASH_BITS];
	u32			nr_fenced;
	spinlock_t		lock;
	int			gate;
	atomic_t		inflight[2];
	wait_queue_head_t	drained;
	struct mutex		set_lock;
	struct work_struct	persist;
};

int cvm_fence_format(struct cvm_fence_table *ft, struct block_device *bdev,
		     u64 start, u32 blocks);
int cvm_fence_load(struct cvm_fence_table *ft, struct block_device *bdev,
		   u64 start, u32 blocks, const char **why);
void cvm_fence_destroy(struct cvm_fence_table *ft);
u16 cvm_fence_enter(struct cvm_fence_table *ft, const struct cvm_wire_hdr *h,
		    u64 host_id, u32 device_id, int *gate);
void cvm_fence_exit(struct cvm_fence_table *ft, int gate);
bool cvm_fence_granted(struct cvm_fence_table *ft, const struct cvm_wire_hdr *h,
		       u64 host_id, u32 device_id);
int cvm_fence_set(struct cvm_fence_table *ft, u64 volume_id, u64 epoch,
		  u64 host_id, const char **why);
u32 cvm_fence_count(struct cvm_fence_table *ft);

#endif /* _CVM_TARGET_FENCE_H */
