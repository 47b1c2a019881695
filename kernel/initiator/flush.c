// SPDX-License-Identifier: GPL-2.0
/*
 * What a FLUSH must make durable, per volume.
 *
 * A replica's acknowledgement of a write without FUA only says the data
 * reached its device's volatile cache.  A FLUSH then makes it durable,
 * unless that device cannot be flushed: its target was lost or stopped
 * answering.  Failing the FLUSH would fail fsync() for one lost replica;
 * ignoring it would keep a copy that a power loss on that node may roll
 * back without anyone knowing.  So every volume remembers, per object
 * written since it was last covered by a FLUSH, which replicas acknowledged
 * the newest write (an "unflushed" entry), and when a FLUSH completes:
 *
 *   - a replica that acknowledged it and was flushed holds it durably;
 *   - the other replicas that acknowledged it are recorded as stale for
 *     the object (resync copies it back to them later, with FUA);
 *   - if no replica that acknowledged it was flushed: when some of them
 *     could not be reached, the FLUSH is held and sent again (request.c:
 *     the writes are still in their caches, for all we know); when all
 *     answered, under other instances (they restarted), the data is
 *     durable nowhere and the FLUSH fails.
 *
 * Generations order writes and flushes: cvm_flush_begin() takes the next
 * one when a FLUSH starts, an entry keeps the generation current when its
 * newest write completed, and a FLUSH covers exactly the entries older than
 * it (a write completed before the FLUSH was sent was already in the
 * device's cache).  A device's newest successfully flushed generation lives
 * with its stale set (cvm_dev_flush_ok()); a later FLUSH covers an earlier
 * one.
 *
 * A cache only survives with the target that filled it: one that lost
 * power with writes in its volatile cache and came back inside the
 * reconnect backoff answers the next FLUSH OK for a cache that no longer
 * holds them.  So an entry keeps, per replica, the device instance
 * (cvm_wire_hello.instance, new each time a target starts serving the
 * device) that acknowledged its writes, and a FLUSH only counts for a
 * replica when it was answered by that same instance; writes of one entry
 * acknowledged by two instances of a device count on neither
 * (CVM_INSTANCE_MIXED).  A mere network outage keeps the instance: the
 * writes are still in that target's cache, and a FLUSH after the
 * reconnect makes them durable.  (Counting per connection instead would
 * fail every fsync after any outage of all replicas.)
 *
 * An entry is per object, not per range: a write with FUA is durable where
 * acknowledged, but earlier writes to other ranges of the object are not,
 * so FUA leaves the entry as it is.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/slab.h>

#include "initiator.h"

struct cvm_unflushed_obj {
	struct hlist_node	node;
	u64			object_no;
	u64			gen;
	u32			devs[CVM_MAX_PG_WIDTH];
	u64			instances[CVM_MAX_PG_WIDTH];
	unsigned int		nr_devs;
};

static atomic64_t cvm_flush_gen = ATOMIC64_INIT(1);

void cvm_unflushed_init(struct cvm_unflushed *uf)
{
	unsigned int i;

	spin_lock_init(&uf->lock);
	for (i = 0; i < ARRAY_SIZE(uf->buckets); i++)
		INIT_HLIST_HEAD(&uf->buckets[i]);
	uf->count = 0;
}

void cvm_unflushed_destroy(struct cvm_unflushed *uf)
{
	struct cvm_unflushed_obj *e;
	struct hlist_node *tmp;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(uf->buckets); i++)
		hlist_for_each_entry_safe(e, tmp, &uf->buckets[i], node)
			kfree(e);
}

static struct hlist_head *cvm_unflushed_bucket(struct cvm_unflushed *uf,
					       u64 object_no)
{
	return &uf->buckets[hash_64(object_no, CVM_UNFLUSHED_HASH_BITS)];
}

static struct cvm_unflushed_obj *cvm_unflushed_find(struct cvm_unflushed *uf,
						    u64 object_no)
{
	struct cvm_unflushed_obj *e;

	hlist_for_each_entry(e, cvm_unflushed_bucket(uf, object_no), node)
		if (e->object_no == object_no)
			return e;
	return NULL;
}

/* Add the replicas of a newer write to @e (see the top of this file). */
static void cvm_unflushed_merge(struct cvm_unflushed_obj *e, const u32 *devs,
				const u64 *instances, unsigned int nr_devs)
{
	unsigned int i, j;

	for (i = 0; i < nr_devs; i++) {
		for (j = 0; j < e->nr_devs; j++)
			if (e->devs[j] == devs[i])
				break;
		if (j == e->nr_devs) {
			if (j == CVM_MAX_PG_WIDTH)
				continue;	/* cannot be: devs of one PG */
			e->devs[j] = devs[i];
			e->instances[j] = instances[i];
			e->nr_devs++;
		} else if (e->instances[j] != instances[i]) {
			e->instances[j] = CVM_INSTANCE_MIXED;
		}
	}
}

/*
 * cvm_unflushed_record() - a write without FUA completed on @devs
 * @instances: per replica, the device instance that acknowledged it
 *
 * Process or softirq context.  0, or -ENOMEM and nothing recorded: the
 * caller must then fail the write, since a FLUSH could not account for it.
 */
int cvm_unflushed_record(struct cvm_unflushed *uf, u64 object_no,
			 const u32 *devs, const u64 *instances,
			 unsigned int nr_devs)
{
	struct cvm_unflushed_obj *e, *fresh = NULL;

	if (nr_devs > CVM_MAX_PG_WIDTH)
		return -EINVAL;
	spin_lock_bh(&uf->lock);
	e = cvm_unflushed_find(uf, object_no);
	if (e)
		goto out_update;
	spin_unlock_bh(&uf->lock);

	fresh = kmalloc(sizeof(*fresh), GFP_ATOMIC);
	spin_lock_bh(&uf->lock);
	e = cvm_unflushed_find(uf, object_no);
	if (!e && fresh) {
		e = fresh;
		fresh = NULL;
		e->object_no = object_no;
		e->nr_devs = 0;
		hlist_add_head(&e->node, cvm_unflushed_bucket(uf, object_no));
		uf->count++;
	}
	if (!e) {
		spin_unlock_bh(&uf->lock);
		return -ENOMEM;
	}
out_update:
	/*
	 * Keep every replica that holds some write of the object unflushed:
	 * one the newest write missed is recorded stale by the write path.
	 */
	e->gen = atomic64_read(&cvm_flush_gen);
	cvm_unflushed_merge(e, devs, instances, nr_devs);
	spin_unlock_bh(&uf->lock);
	kfree(fresh);
	return 0;
}

/* A FLUSH starts: its generation. */
u64 cvm_flush_begin(void)
{
	return atomic64_inc_return(&cvm_flush_gen);
}

/*
 * cvm_flush_finish() - every device of a FLUSH of generation @gen answered
 *
 * Settles the entries the FLUSH covers (see the top of this file).  Process
 * or softirq context, as transport completions are.  0; -EAGAIN when some
 * object's writes are durable nowhere yet because replicas that hold them
 * were not reached (send the FLUSH again later); -EIO when they are
 * durable nowhere (every replica that took them answered under a new
 * instance: the entry is dropped, the loss reported once).  Entries not
 * settled otherwise stay for a later FLUSH.
 */
int cvm_flush_finish(struct cvm_unflushed *uf, u64 volume_id, u64 gen)
{
	struct cvm_unflushed_obj *e;
	struct hlist_node *tmp;
	unsigned int i, j;
	u64 lost = 0, marked = 0, unreached = 0;
	int ret = 0;

	spin_lock_bh(&uf->lock);
	for (i = 0; i < ARRAY_SIZE(uf->buckets); i++) {
		hlist_for_each_entry_safe(e, tmp, &uf->buckets[i], node) {
			bool durable = false;

			if (e->gen >= gen)
				continue;	/* completed after we started */
			/* Durable on a complete copy: see cvm_stale_settle(). */
			cvm_stale_settle_begin();
			for (j = 0; j < e->nr_devs; j++)
				durable |= cvm_dev_flushed(e->devs[j], gen,
							   e->instances[j]) &&
					   !cvm_stale_test(e->devs[j], volume_id,
							   e->object_no);
			if (!durable) {
				bool all_answered = true;

				for (j = 0; j < e->nr_devs; j++)
					all_answered &=
						cvm_dev_flush_answered(e->devs[j],
								       gen);
				cvm_stale_settle_end();
				if (!all_answered) {
					unreached++;
					continue;
				}
				/* Reported once, as fsync() reports an error. */
				lost++;
				hlist_del(&e->node);
				uf->count--;
				kfree(e);
				continue;
			}
			for (j = 0; j < e->nr_devs; j++) {
				if (cvm_dev_flushed(e->devs[j], gen,
						    e->instances[j]))
					continue;
				if (cvm_stale_mark(e->devs[j], volume_id,
						   e->object_no))
					durable = false;
				else
					marked++;
			}
			cvm_stale_settle_end();
			if (!durable) {
				lost++;		/* could not record: keep it */
				continue;
			}
			/* Settled: durable on the replicas flushed. */
			hlist_del(&e->node);
			uf->count--;
			kfree(e);
		}
	}
	spin_unlock_bh(&uf->lock);
	if (marked)
		pr_warn_ratelimited("volume %llu: flush missed a replica, %llu objects recorded as stale\n",
				    volume_id, marked);
	if (lost) {
		pr_err_ratelimited("volume %llu: flush failed, %llu objects are durable on no replica\n",
				   volume_id, lost);
		ret = -EIO;
	} else if (unreached) {
		pr_warn_ratelimited("volume %llu: flush waits: the replicas of %llu objects are unreachable\n",
				    volume_id, unreached);
		ret = -EAGAIN;
	}
	return ret;
}
