// SPDX-License-Identifier: GPL-2.0
/*
 * Persistent records of missed writes: write intent and object versions
 * kept by the targets (cvm_wire.h, "Object shard versions"), so that which
 * replica missed an acknowledged write survives this host: a crash, a
 * module reload, a detach and re-attach.
 *
 * Writing.  A target sets a shard's intent bit, durably, before the first
 * change to it completes; steady-state overwrites write no metadata.  A
 * write that missed a replica is acknowledged only once the replicas that
 * took it have BUMPed the object's version (request.c, once per object
 * and missing device: cvm_stale_obj.recorded), so the one that missed it
 * is behind on disk, not only in this host's memory.
 *
 * Cleaning.  Every object this attachment writes is remembered in
 * @vol->active; once it has seen no write for a whole CVM_CLEAN_PERIOD and
 * no replica is stale for it, every replica gets a CLEAN (the target
 * flushes, then clears the bit), with writes to the object held off by the
 * object fence meanwhile.  Detach cleans whatever is left.  So the bits
 * set at any time are those of the objects written in the last few seconds
 * (and those with a stale replica): what a crash can leave different.
 *
 * Attach ("scan", as Ceph's peering).  Before a PG serves I/O, enough of
 * its devices are asked for the volume's shards with the intent bit (LIST)
 * and, for each such object, every replica for its version (STAT):
 * replicas behind the highest version, and those that could not be asked,
 * are recorded stale and resynced; of a replicated object whose replicas
 * agree, one is copied over the others (a write the crash cut off may have
 * reached only some).  A write is acknowledged on at least `need` fresh
 * replicas (k shards for EC), each holding the record, so once
 * n - need + 1 devices of the PG have been scanned one of them holds it:
 * until then I/O to the PG is held (cvm.loss_timeout).  An object is
 * settled only when that many of its replicas answered STAT.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/xarray.h>

#include "initiator.h"
#include "../common/ec_journal.h"

#define CVM_CLEAN_PERIOD	(5 * HZ)
#define CVM_SCAN_RETRY		(HZ / 2)
#define CVM_XA_RECENT		XA_MARK_0	/* written this period */
#define CVM_XA_SETTLED		XA_MARK_1	/* settled by the scan */
#define CVM_LIST_PAGES		16		/* 64 KiB: 2730 entries */

struct cvm_call_wait {
	struct completion	done;
	struct cvm_call		*call;
};

static void cvm_call_done(struct cvm_xprt_req *req)
{
	struct cvm_call_wait *w = req->core_priv;

	w->call->status = req->status;
	w->call->rsp_version = req->rsp_version;
	w->call->rsp_len = req->rsp_len;
	w->call->error = req->error;
	req->conn->ops->free_req(req);
	complete(&w->done);
}

/*
 * cvm_call() - one request to @device_id on its current connection, and
 * wait for the answer (process context)
 *
 * Returns 0 with @c->status the target's answer, -ENOTCONN when the device
 * is unreachable or the connection failed, -ENOMEM.
 */
int cvm_call(u32 device_id, struct cvm_call *c)
{
	const struct cvm_transport_ops *ops;
	struct cvm_call_wait w = { .call = c };
	const struct cvm_state *st;
	struct cvm_xprt_req *req;
	struct cvm_conn *conn;
	int ret;

	init_completion(&w.done);
	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	conn = st ? cvm_dev_conn(st, device_id) : NULL;
	if (!conn) {
		rcu_read_unlock();
		return -ENOTCONN;
	}
	ops = conn->ops;
	req = ops->alloc_req(conn, GFP_ATOMIC);
	if (!req) {
		rcu_read_unlock();
		return -ENOMEM;
	}
	req->hdr.opcode = c->op;
	req->hdr.flags = cpu_to_le16(c->flags);
	req->hdr.map_epoch = cpu_to_le64(st->map->epoch);
	req->hdr.volume_id = cpu_to_le64(c->volume_id);
	req->hdr.attach_epoch = cpu_to_le64(c->attach_epoch);
	req->hdr.object_no = cpu_to_le64(c->object_no);
	req->hdr.shard = cpu_to_le16(c->shard);
	req->hdr.offset = cpu_to_le64(c->offset);
	req->hdr.length = cpu_to_le32(c->length);
	req->hdr.shard_version = cpu_to_le32(c->shard_version);
	req->bvec = c->bvec;
	req->nr_bvec = c->nr_bvec;
	req->data_len = c->data_len;
	req->done = cvm_call_done;
	req->core_priv = &w;
	ret = ops->submit(req);
	rcu_read_unlock();
	if (ret) {
		ops->free_req(req);
		return -ENOTCONN;
	}
	wait_for_completion(&w.done);
	return c->error ? -ENOTCONN : 0;
}

/* STAT of one shard: its version, or -ENOENT, -ENOTCONN, -EIO. */
static int cvm_call_stat(u32 device_id, u64 volume_id, u64 attach_epoch,
			 u64 object_no, u16 shard, struct page *page,
			 u32 *version)
{
	struct bio_vec bv;
	struct cvm_call c = {
		.op = CVM_WIRE_OP_STAT, .volume_id = volume_id,
		.attach_epoch = attach_epoch, .object_no = object_no,
		.shard = shard, .bvec = &bv, .nr_bvec = 1,
		.data_len = sizeof(struct cvm_wire_stat),
	};
	struct cvm_wire_stat *stat;
	int ret;

	bvec_set_page(&bv, page, PAGE_SIZE, 0);
	ret = cvm_call(device_id, &c);
	if (ret)
		return ret;
	if (c.status == CVM_WIRE_STATUS_NOT_FOUND)
		return -ENOENT;
	if (c.status || c.rsp_len < sizeof(*stat))
		return -EIO;
	stat = page_address(page);
	*version = le32_to_cpu(stat->version);
	return 0;
}

/* STAT of one shard (process context): 0, -ENOENT, -ENOTCONN, -EIO. */
int cvm_intent_stat(u32 device_id, u64 volume_id, u64 attach_epoch,
		    u64 object_no, u16 shard, u32 *version)
{
	struct page *page = alloc_page(GFP_KERNEL);
	int ret;

	if (!page)
		return -ENOMEM;
	ret = cvm_call_stat(device_id, volume_id, attach_epoch, object_no,
			    shard, page, version);
	__free_page(page);
	return ret;
}

/*
 * cvm_intent_version() - the version a copy of the object should carry:
 * the highest that the replicas (shards) other than @except answer with.
 * -EAGAIN if none answered.
 */
int cvm_intent_version(u64 volume_id, u64 attach_epoch, u32 pool_id,
		       u64 object_no, bool ec, u32 except, u32 *version)
{
	u32 devs[CVM_MAX_PG_WIDTH], width, i, v, need;
	struct page *page;
	int ret = -EAGAIN;

	width = cvm_intent_row(pool_id, volume_id, object_no, devs, &need);
	page = alloc_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	*version = 0;
	for (i = 0; i < width; i++) {
		int r;

		if (devs[i] == CVM_DEV_NONE || devs[i] == except)
			continue;
		r = cvm_call_stat(devs[i], volume_id, attach_epoch, object_no,
				  ec ? i : 0, page, &v);
		if (r == -ENOENT) {
			v = 0;
			r = 0;
		}
		if (r)
			continue;
		*version = max(*version, v);
		ret = 0;
	}
	__free_page(page);
	return ret;
}

/* Devices of a row that are not CVM_DEV_NONE. */
static u32 cvm_row_devices(const u32 *row, u32 width)
{
	u32 i, nr = 0;

	for (i = 0; i < width; i++)
		nr += row[i] != CVM_DEV_NONE;
	return nr;
}

/*
 * The PG row of an object under the current map, copied into @devs
 * (CVM_MAX_PG_WIDTH entries), and in *@need the copies a write of it needs
 * (cvm_write_need()); returns its width, 0 if the pool is gone.
 */
u32 cvm_intent_row(u32 pool_id, u64 volume_id, u64 object_no, u32 *devs,
		   u32 *need)
{
	const struct cvm_pool_table *pt;
	const struct cvm_state *st;
	u32 width = 0, pg;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	pt = st ? cvm_state_pool(st, pool_id) : NULL;
	if (pt) {
		width = min_t(u32, pt->width, CVM_MAX_PG_WIDTH);
		pg = cvm_object_pg(volume_id, object_no, pt->pg_num);
		memcpy(devs, &pt->devs[(size_t)pg * pt->width],
		       width * sizeof(*devs));
		*need = cvm_write_need(st, pool_id,
				       cvm_row_devices(devs, width));
	}
	rcu_read_unlock();
	return width;
}

/* ---- cleaning ---- */

/* The object is being written (queue_rq): remember it for cleaning. */
static void cvm_intent_mark(struct cvm_volume *vol, u64 object_no,
			    xa_mark_t mark)
{
	if (xa_get_mark(&vol->active, object_no, mark))
		return;
	xa_lock_bh(&vol->active);
	/* Without memory the bit is cleaned at the next attach instead. */
	if (xa_load(&vol->active, object_no) ||
	    !xa_err(__xa_store(&vol->active, object_no, xa_mk_value(1),
			       GFP_ATOMIC)))
		__xa_set_mark(&vol->active, object_no, mark);
	xa_unlock_bh(&vol->active);
}

/* The object is being written (its PG is ready): clean it later. */
void cvm_intent_touch(struct cvm_volume *vol, u64 object_no)
{
	cvm_intent_mark(vol, object_no, CVM_XA_RECENT);
}

/* CLEAN every replica of one object; 0 when every one answered OK. */
static int cvm_intent_clean_obj(struct cvm_volume *vol, u64 object_no)
{
	u32 devs[CVM_MAX_PG_WIDTH], width, i, need;
	struct cvm_fence *f;
	int ret = 0;

	width = cvm_intent_row(vol->pool_id, vol->id, object_no, devs, &need);
	if (!width)
		return -ENOENT;
	for (i = 0; i < width; i++)
		if (devs[i] != CVM_DEV_NONE &&
		    cvm_stale_test(devs[i], vol->id, object_no))
			return -EAGAIN;	/* its resync comes first */

	/* No write of the object may be in flight while the bit goes. */
	f = cvm_fence_raise(vol->id, object_no);
	if (!f)
		return -EBUSY;
	for (i = 0; i < width && !ret; i++) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_CLEAN, .volume_id = vol->id,
			.attach_epoch = vol->attach_epoch,
			.object_no = object_no, .shard = vol->layout.ec_k ? i : 0,
		};

		if (devs[i] == CVM_DEV_NONE ||
		    cvm_stale_test(devs[i], vol->id, object_no)) {
			ret = -EAGAIN;
			break;
		}
		ret = cvm_call(devs[i], &c);
		if (!ret && c.status)
			ret = -EIO;
	}
	cvm_fence_lower(f);
	return ret;
}

/*
 * One pass: objects written in the last period lose their mark; the
 * others are cleaned.  @all: clean every object now (detach).
 */
static unsigned long cvm_intent_clean(struct cvm_volume *vol, bool all)
{
	unsigned long object_no, cleaned = 0;
	void *entry;

	xa_for_each(&vol->active, object_no, entry) {
		if (!all && xa_get_mark(&vol->active, object_no,
					CVM_XA_RECENT)) {
			xa_lock_bh(&vol->active);
			__xa_clear_mark(&vol->active, object_no, CVM_XA_RECENT);
			xa_unlock_bh(&vol->active);
			continue;
		}
		if (cvm_intent_clean_obj(vol, object_no) == 0) {
			/* Unless written again meanwhile. */
			xa_lock_bh(&vol->active);
			if (!xa_get_mark(&vol->active, object_no,
					 CVM_XA_RECENT))
				__xa_erase(&vol->active, object_no);
			xa_unlock_bh(&vol->active);
			cleaned++;
		}
		cond_resched();
	}
	return cleaned;
}

static void cvm_intent_clean_work(struct work_struct *work)
{
	struct cvm_volume *vol = container_of(to_delayed_work(work),
					      struct cvm_volume, clean_work);

	cvm_intent_clean(vol, false);
	if (!READ_ONCE(vol->dying))
		queue_delayed_work(system_unbound_wq, &vol->clean_work,
				   CVM_CLEAN_PERIOD);
}

/* ---- scan at attach ---- */

/*
 * Settle one object whose intent bit a device reported: -EAGAIN when too
 * few replicas answered to know which are behind (nothing recorded).
 * Returns the number of replicas recorded stale.
 */
static int cvm_intent_settle(struct cvm_volume *vol, u64 object_no,
			     struct page *page)
{
	u32 devs[CVM_MAX_PG_WIDTH], vers[CVM_MAX_PG_WIDTH];
	bool ec = vol->layout.ec_k, converge;
	unsigned long known = 0, exists = 0;
	u32 width, i, max = 0, src = U32_MAX, need = 0;
	int ret, nr = 0, marked = 0;

	width = cvm_intent_row(vol->pool_id, vol->id, object_no, devs, &need);
	for (i = 0; i < width; i++) {
		if (devs[i] == CVM_DEV_NONE)
			continue;
		nr++;
		ret = cvm_call_stat(devs[i], vol->id, vol->attach_epoch,
				    object_no, ec ? i : 0, page, &vers[i]);
		if (ret == -ENOENT) {
			vers[i] = 0;
			ret = 0;
		} else if (!ret) {
			__set_bit(i, &exists);
		}
		if (ret)
			continue;
		__set_bit(i, &known);
		max = max(max, vers[i]);
	}
	if (!nr || bitmap_weight(&known, width) < nr - need + 1)
		return -EAGAIN;
	for_each_set_bit(i, &known, width)
		if (vers[i] == max && test_bit(i, &exists) &&
		    !cvm_stale_test(devs[i], vol->id, object_no)) {
			src = i;
			break;
		}
	/* No complete copy answered: nothing to copy from yet. */
	if (!ec && src == U32_MAX)
		return -EAGAIN;
	/* Replicas that agree may still differ by a write cut off. */
	converge = !ec;
	for (i = 0; i < width; i++) {
		if (devs[i] == CVM_DEV_NONE || i == src)
			continue;
		if (test_bit(i, &known) && vers[i] == max && !converge &&
		    (ec || test_bit(i, &exists)))
			continue;
		if (cvm_stale_test(devs[i], vol->id, object_no))
			continue;
		ret = cvm_stale_mark(devs[i], vol->id, object_no);
		if (ret)
			return ret;
		/* Behind on disk too: a write it misses need not BUMP. */
		if (test_bit(i, &known) && vers[i] < max)
			cvm_stale_set_recorded(devs[i], vol->id, object_no);
		marked++;
	}
	/* Cleaned once the copies are made. */
	cvm_intent_mark(vol, object_no, CVM_XA_SETTLED);
	return marked;
}

/*
 * An object this attachment wrote before @device_id's records were read
 * (its PG was ready without them): the device's copy may hold a write a
 * crash cut off, so it is copied over from a replica that took every
 * write since.  EC stripes have their journal instead.
 */
static int cvm_intent_late(struct cvm_volume *vol, u64 object_no,
			   u32 device_id)
{
	u32 devs[CVM_MAX_PG_WIDTH], width, i, need, fresh = 0;
	bool mark;
	int ret = 0;

	width = cvm_intent_row(vol->pool_id, vol->id, object_no, devs, &need);
	for (i = 0; i < width; i++)
		if (devs[i] != CVM_DEV_NONE && devs[i] != device_id &&
		    !cvm_stale_test(devs[i], vol->id, object_no))
			fresh++;
	mark = !vol->layout.ec_k && fresh;
	if (mark)
		ret = cvm_stale_mark(device_id, vol->id, object_no);
	if (ret)
		return ret;
	cvm_intent_mark(vol, object_no, CVM_XA_SETTLED);
	return mark;
}

/*
 * Entry @i of a LIST reply in @bv: 24-byte entries cross page boundaries
 * (4096 is no multiple of 24), so it is copied in up to two pieces.
 */
static void cvm_list_ent_get(const struct bio_vec *bv, u32 i,
			     struct cvm_wire_list_ent *ent)
{
	size_t off = (size_t)i * sizeof(*ent), done = 0;

	while (done < sizeof(*ent)) {
		size_t in_page = off % PAGE_SIZE;
		size_t n = min(sizeof(*ent) - done, PAGE_SIZE - in_page);

		memcpy_from_page((char *)ent + done, bv[off / PAGE_SIZE].bv_page,
				 in_page, n);
		done += n;
		off += n;
	}
}

/*
 * cvm_list_walk() - LIST @device_id's object shards of @vol (@flags: 0, or
 * CVM_WIRE_F_INTENT for those with write intent) into @bv (@nr_pages
 * pages) and call @fn with each object number, ascending.  EC stripe
 * journals are left out (ec_io.c replays them at attach).  Stops at the
 * first negative return of @fn, which it returns.
 */
int cvm_list_walk(struct cvm_volume *vol, u32 device_id, u16 flags,
		  struct bio_vec *bv, unsigned int nr_pages,
		  int (*fn)(struct cvm_volume *vol, u32 device_id,
			    u64 object_no, void *arg),
		  void *arg)
{
	const u32 room = nr_pages * PAGE_SIZE /
			 sizeof(struct cvm_wire_list_ent) *
			 sizeof(struct cvm_wire_list_ent);
	u64 from = 0;
	int ret;

	for (;;) {
		struct cvm_call c = {
			.op = CVM_WIRE_OP_LIST, .flags = flags,
			.volume_id = vol->id, .attach_epoch = vol->attach_epoch,
			.object_no = from, .length = room, .bvec = bv,
			.nr_bvec = nr_pages, .data_len = room,
		};
		u32 n, i;

		ret = cvm_call(device_id, &c);
		if (ret)
			return ret;
		if (c.status)
			return -EIO;
		n = c.rsp_len / sizeof(struct cvm_wire_list_ent);
		for (i = 0; i < n; i++) {
			struct cvm_wire_list_ent ent;

			cvm_list_ent_get(bv, i, &ent);
			from = le64_to_cpu(ent.object_no) + 1;
			if (from - 1 >= CVM_EC_JOURNAL_OBJECT)
				continue;
			ret = fn(vol, device_id, from - 1, arg);
			if (ret < 0)
				return ret;
		}
		if (n < room / sizeof(struct cvm_wire_list_ent))
			return 0;
	}
}

struct cvm_intent_scan {
	struct page	*page;
	unsigned long	objs;
	unsigned long	marked;
};

/* One intent shard listed: settle its object, once. */
static int cvm_intent_scan_obj(struct cvm_volume *vol, u32 device_id,
			       u64 object_no, void *arg)
{
	struct cvm_intent_scan *scan = arg;
	int ret;

	/* An object listed by another device is settled. */
	if (xa_get_mark(&vol->active, object_no, CVM_XA_SETTLED))
		return 0;
	if (xa_load(&vol->active, object_no))
		ret = cvm_intent_late(vol, object_no, device_id);
	else
		ret = cvm_intent_settle(vol, object_no, scan->page);
	if (ret < 0)
		return ret;
	scan->objs++;
	scan->marked += ret;
	return 0;
}

/* LIST @device_id's intent shards of the volume and settle each. */
static int cvm_intent_scan_dev(struct cvm_volume *vol, u32 device_id,
			       struct bio_vec *bv, struct page *page,
			       unsigned long *objs, unsigned long *marked)
{
	struct cvm_intent_scan scan = { .page = page };
	int ret;

	ret = cvm_list_walk(vol, device_id, CVM_WIRE_F_INTENT, bv,
			    CVM_LIST_PAGES, cvm_intent_scan_obj, &scan);
	*objs += scan.objs;
	*marked += scan.marked;
	return ret;
}

static void cvm_intent_scan_work(struct work_struct *work)
{
	struct cvm_volume *vol = container_of(to_delayed_work(work),
					      struct cvm_volume, scan_work);
	unsigned long objs = 0, marked = 0;
	struct bio_vec bv[CVM_LIST_PAGES];
	const struct cvm_state *st;
	u32 *devs = NULL, nr = 0, i;
	struct page *page = NULL;
	unsigned long gen;
	bool all = true;

	spin_lock(&vol->scan_lock);
	gen = vol->scan_gen;
	spin_unlock(&vol->scan_lock);

	memset(bv, 0, sizeof(bv));
	for (i = 0; i < CVM_LIST_PAGES; i++) {
		struct page *p = alloc_page(GFP_KERNEL);

		if (!p)
			goto out_retry;
		bvec_set_page(&bv[i], p, PAGE_SIZE, 0);
	}
	page = alloc_page(GFP_KERNEL);
	if (!page)
		goto out_retry;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	if (st) {
		devs = kcalloc(st->nr_paths, sizeof(*devs), GFP_ATOMIC);
		for (i = 0; devs && i < st->nr_paths; i++)
			devs[nr++] = st->paths[i].device_id;
	}
	rcu_read_unlock();
	if (!devs)
		goto out_retry;

	for (i = 0; i < nr && !READ_ONCE(vol->dying); i++) {
		if (xa_load(&vol->scanned, devs[i]))
			continue;
		if (cvm_intent_scan_dev(vol, devs[i], bv, page, &objs,
					&marked)) {
			all = false;
			continue;
		}
		xa_store(&vol->scanned, devs[i], xa_mk_value(1), GFP_KERNEL);
	}
	if (objs || marked)
		pr_info("volume %llu: %lu objects had write intent, %lu replicas recorded stale\n",
			vol->id, objs, marked);
	/* Done unless a new map came meanwhile (it queued another run). */
	spin_lock(&vol->scan_lock);
	if (all && gen == vol->scan_gen)
		WRITE_ONCE(vol->scan_done, true);
	spin_unlock(&vol->scan_lock);
	if (all && READ_ONCE(vol->scan_done))
		pr_info("volume %llu: write intent of %u devices read\n",
			vol->id, nr);
out_retry:
	kfree(devs);
	if (page)
		__free_page(page);
	for (i = 0; i < CVM_LIST_PAGES; i++)
		if (bv[i].bv_page)
			__free_page(bv[i].bv_page);
	if (!READ_ONCE(vol->scan_done) && !READ_ONCE(vol->dying))
		queue_delayed_work(system_unbound_wq, &vol->scan_work,
				   CVM_SCAN_RETRY);
}

/*
 * May I/O of an object in this PG row go out?  Only once enough of the
 * row was scanned to know its stale replicas.  RCU held.
 */
bool cvm_intent_ready(struct cvm_volume *vol, const struct cvm_state *st,
		      const u32 *row, u32 width)
{
	u32 i, nr = 0, scanned = 0;

	if (likely(READ_ONCE(vol->scan_done)))
		return true;
	for (i = 0; i < width; i++) {
		if (row[i] == CVM_DEV_NONE)
			continue;
		nr++;
		if (xa_load(&vol->scanned, row[i]))
			scanned++;
	}
	return nr && scanned >= nr - cvm_write_need(st, vol->pool_id, nr) + 1;
}

/* A new map may bring devices not scanned yet. */
void cvm_intent_map_changed(void)
{
	struct cvm_volume *vol;

	lockdep_assert_held(&cvm_config_mutex);
	list_for_each_entry(vol, &cvm_volumes, entry) {
		spin_lock(&vol->scan_lock);
		vol->scan_gen++;
		WRITE_ONCE(vol->scan_done, false);
		spin_unlock(&vol->scan_lock);
		mod_delayed_work(system_unbound_wq, &vol->scan_work, 0);
	}
}

void cvm_intent_attach(struct cvm_volume *vol)
{
	xa_init_flags(&vol->active, XA_FLAGS_LOCK_BH);
	xa_init(&vol->scanned);
	spin_lock_init(&vol->scan_lock);
	INIT_DELAYED_WORK(&vol->scan_work, cvm_intent_scan_work);
	INIT_DELAYED_WORK(&vol->clean_work, cvm_intent_clean_work);
	queue_delayed_work(system_unbound_wq, &vol->scan_work, 0);
	queue_delayed_work(system_unbound_wq, &vol->clean_work,
			   CVM_CLEAN_PERIOD);
}

/* After the disk's last I/O (del_gendisk), or on an attach that failed. */
void cvm_intent_detach(struct cvm_volume *vol, bool clean)
{
	cancel_delayed_work_sync(&vol->scan_work);
	cancel_delayed_work_sync(&vol->clean_work);
	/* What it wrote or settled; stale objects keep their bits. */
	if (clean) {
		unsigned long object_no, left = 0;
		void *entry;

		cvm_intent_clean(vol, true);
		xa_for_each(&vol->active, object_no, entry)
			left++;
		if (left)
			pr_info("volume %llu: %lu objects keep their write intent (settled at the next attach)\n",
				vol->id, left);
	}
	xa_destroy(&vol->active);
	xa_destroy(&vol->scanned);
}
