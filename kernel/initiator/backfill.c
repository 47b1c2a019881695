// SPDX-License-Identifier: GPL-2.0
/*
 * Backfill of attached volumes: copying a replicated volume's pinned PGs to
 * the devices placement now gives them.
 *
 * A map pins a PG to the devices holding its data while placement wants it
 * elsewhere (kernel/common/placement.h); the devices of its up row that the
 * pin lacks are its backfill targets (cvm_pool_table.targets).  While the
 * pin lasts, writes reach the targets too (cvm_obj_send_all()) without
 * counting toward the write's quorum, and reads never go to them.  At each
 * map, every attached volume lists its objects on the pins' devices and
 * records each object of a pinned PG stale on the PG's targets; the resync
 * engine (request.c) then copies them from the pin's devices under the
 * object fence, so a copy and a client write of one object never
 * interleave, and a write a target misses records it stale again.  The
 * targets are listed too: a target may hold copies already (a device back
 * from being out keeps them), and each is recorded stale on it, so that
 * resync writes only what differs and removes what the pin no longer has
 * (an object discarded meanwhile would otherwise be read back).
 *
 * The copy is complete for a map epoch once the listing of that epoch is
 * done and the volume has no stale object left anywhere: VOLUME_LIST then
 * reports the epoch (CVM_VOLUME_ATTR_BACKFILLED), and cvmd may cut the pins
 * in a new epoch.  Unattached volumes are copied by cvmd itself
 * (userspace/lib/backfill.h).  Erasure-coded volumes are copied the same
 * way, shard by shard: a target gets its slot's shard (ec_io.c), read from
 * the pin's device or rebuilt from the others; a PG whose target holds
 * another of its shards in the pin (crossed) waits for a detach.
 */
#include "initiator.h"

#define CVM_BACKFILL_RETRY	HZ
#define CVM_BACKFILL_PAGES	16	/* 64 KiB of LIST entries */
#define CVM_BACKFILL_DRAIN	(5 * HZ)

/*
 * Writes placed with an older map went to the pins' devices only: one still
 * in flight could create an object after its device was listed, and its new
 * devices would never learn of it.  So every request in flight finishes
 * first (new ones wait meanwhile, at most CVM_BACKFILL_DRAIN; held I/O
 * makes it give up and try again later).
 */
static bool cvm_backfill_drain(struct cvm_volume *vol)
{
	struct request_queue *q = vol->disk->queue;
	bool drained;

	blk_freeze_queue_start(q);
	drained = blk_mq_freeze_queue_wait_timeout(q, CVM_BACKFILL_DRAIN) > 0;
	blk_mq_unfreeze_queue(q);
	return drained;
}

struct cvm_backfill_list {
	u64		epoch;
	unsigned long	marked;
};

/*
 * An object @device_id holds: if its PG is pinned there, record it stale
 * on the PG's targets; if @device_id is one of them, on @device_id.
 * -EAGAIN when the map changed meanwhile (a new run is queued).
 */
static int cvm_backfill_list_obj(struct cvm_volume *vol, u32 device_id,
				 u64 object_no, void *arg)
{
	struct cvm_backfill_list *bl = arg;
	const struct cvm_pool_table *pt;
	const struct cvm_pg_targets *t;
	const struct cvm_state *st;
	bool held = false;
	int ret = 0;
	u32 pg, j;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	if (!st || st->map->epoch != bl->epoch) {
		rcu_read_unlock();
		return -EAGAIN;
	}
	pt = cvm_state_pool(st, vol->pool_id);
	pg = pt ? cvm_object_pg(vol->id, object_no, pt->pg_num) : 0;
	t = pt ? cvm_pool_targets(pt, pg) : NULL;
	for (j = 0; t && j < pt->width; j++)
		held |= pt->devs[(size_t)pg * pt->width + j] == device_id;
	for (j = 0; t && j < t->nr; j++) {
		if ((!held && t->devs[j] != device_id) ||
		    cvm_stale_test(t->devs[j], vol->id, object_no))
			continue;
		ret = cvm_stale_mark(t->devs[j], vol->id, object_no);
		if (ret)
			break;
		bl->marked++;
	}
	rcu_read_unlock();
	return ret;
}

static void cvm_backfill_work(struct work_struct *work)
{
	struct cvm_volume *vol = container_of(to_delayed_work(work),
					      struct cvm_volume,
					      backfill_work);
	struct bio_vec bv[CVM_BACKFILL_PAGES];
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	struct cvm_backfill_list bl = {};
	u32 *devs = NULL, nr = 0, i, j, k;
	u64 epoch = 0;
	int ret = 0;

	memset(bv, 0, sizeof(bv));
	for (i = 0; i < CVM_BACKFILL_PAGES; i++) {
		struct page *p = alloc_page(GFP_KERNEL);

		if (!p)
			goto out_retry;
		bvec_set_page(&bv[i], p, PAGE_SIZE, 0);
	}

	/*
	 * The devices of the pins that have targets (they hold the data) and
	 * the targets.  A device the map marks down (dead, marked out after
	 * down_out_interval) is not listed: an object it holds is on enough
	 * of the others too (cvmd cuts no pin that keeps min_size copies on
	 * down devices).
	 */
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, vol->pool_id) : NULL;
	if (st)
		epoch = st->map->epoch;
	if (pt && pt->nr_targets) {
		devs = kcalloc(pt->nr_targets * pt->width * 2, sizeof(*devs),
			       GFP_ATOMIC);
		for (i = 0; devs && i < pt->nr_targets; i++) {
			const struct cvm_pg_targets *t = &pt->targets[i];
			const u32 *row = &pt->devs[(size_t)t->pg * pt->width];

			for (j = 0; j < pt->width + t->nr; j++) {
				u32 dev = j < pt->width ? row[j] :
					  t->devs[j - pt->width];

				if (dev == CVM_DEV_NONE ||
				    !cvm_state_dev_marked_up(st, dev))
					continue;
				for (k = 0; k < nr && devs[k] != dev; k++)
					;
				if (k == nr)
					devs[nr++] = dev;
			}
		}
		if (!devs)
			epoch = 0;
	}
	rcu_read_unlock();
	if (!epoch)
		goto out_retry;
	bl.epoch = epoch;

	if (nr && !cvm_backfill_drain(vol))
		ret = -EBUSY;
	for (i = 0; !ret && i < nr && !READ_ONCE(vol->dying); i++)
		ret = cvm_list_walk(vol, devs[i], 0, bv, CVM_BACKFILL_PAGES,
				    cvm_backfill_list_obj, &bl);
	if (!ret && !READ_ONCE(vol->dying)) {
		WRITE_ONCE(vol->backfill_listed, epoch);
		if (nr)
			pr_info("volume %llu: backfill of map epoch %llu: %lu object copies to make, listed on %u devices\n",
				vol->id, epoch, bl.marked, nr);
	} else if (ret && ret != -EAGAIN) {
		pr_warn_ratelimited("volume %llu: backfill listing failed (%pe), retrying\n",
				    vol->id, ERR_PTR(ret));
	}
out_retry:
	kfree(devs);
	for (i = 0; i < CVM_BACKFILL_PAGES; i++)
		if (bv[i].bv_page)
			__free_page(bv[i].bv_page);
	if (READ_ONCE(vol->backfill_listed) != epoch && !READ_ONCE(vol->dying))
		queue_delayed_work(system_unbound_wq, &vol->backfill_work,
				   ret == -EAGAIN ? 0 : CVM_BACKFILL_RETRY);
}

void cvm_backfill_attach(struct cvm_volume *vol)
{
	INIT_DELAYED_WORK(&vol->backfill_work, cvm_backfill_work);
	vol->backfill_listed = 0;
	queue_delayed_work(system_unbound_wq, &vol->backfill_work, 0);
}

void cvm_backfill_detach(struct cvm_volume *vol)
{
	cancel_delayed_work_sync(&vol->backfill_work);
}

/* Under cvm_config_mutex: a new map may pin (or release) PGs. */
void cvm_backfill_map_changed(void)
{
	struct cvm_volume *vol;

	lockdep_assert_held(&cvm_config_mutex);
	list_for_each_entry(vol, &cvm_volumes, entry)
		mod_delayed_work(system_unbound_wq, &vol->backfill_work, 0);
}

/*
 * The map epoch whose pinned PGs this volume's copies are complete for, or
 * 0: listed at the current epoch, no object of it stale on a backfill
 * target.  (Stale copies on a pin's own devices, such as a dead one's,
 * are resync's business: the copies to the targets never read them.)  EC
 * volumes: 0 while their pool has a crossed PG (copied once detached).
 * The distinct target devices are gathered under RCU; their stale sets,
 * which can be long, are walked after it, each once.
 */
u64 cvm_backfill_done(const struct cvm_volume *vol)
{
	const struct cvm_pool_table *pt = NULL;
	const struct cvm_state *st;
	u32 *devs = NULL, nr = 0, i, j, k;
	bool pinned = false, stale = false;
	u64 epoch = 0;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	if (st) {
		epoch = st->map->epoch;
		pt = cvm_state_pool(st, vol->pool_id);
		for (i = 0; i < st->map->nr_pins; i++)
			pinned |= st->map->pins[i].pool_id == vol->pool_id;
		if (pinned && pt && pt->crossed)
			epoch = 0;
	}
	if (epoch && READ_ONCE(vol->backfill_listed) == epoch && pt &&
	    pt->nr_targets) {
		devs = kcalloc(pt->nr_targets * pt->width, sizeof(*devs),
			       GFP_ATOMIC);
		if (!devs)
			epoch = 0;
		for (i = 0; devs && i < pt->nr_targets; i++) {
			const struct cvm_pg_targets *t = &pt->targets[i];

			for (j = 0; j < t->nr; j++) {
				for (k = 0; k < nr && devs[k] != t->devs[j]; k++)
					;
				if (k == nr)
					devs[nr++] = t->devs[j];
			}
		}
	}
	rcu_read_unlock();
	for (i = 0; i < nr && !stale; i++) {
		stale = cvm_stale_volume_on(devs[i], vol->id);
		cond_resched();
	}
	kfree(devs);
	if (!epoch || READ_ONCE(vol->backfill_listed) != epoch)
		return 0;
	return stale ? 0 : epoch;
}
