// SPDX-License-Identifier: GPL-2.0
/*
 * The installed cluster state and the connections to the devices it names.
 *
 * Map swap.  CVM_CMD_MAP_SET builds a complete struct cvm_state off line
 * (decode, validate, every pool's PG table, the device -> path table) under
 * cvm_config_mutex, then publishes it with one rcu_replace_pointer().  The
 * I/O path reads cvm_state under rcu_read_lock() only, so a map update never
 * stalls I/O: requests placed with the old map finish on it.  The old state
 * is freed by queue_rcu_work() after a grace period, in process context,
 * because dropping its paths may disconnect.
 *
 * Connections.  The wire header has no device field (HELLO names the
 * device), so there is one connection per device path, shared by every
 * hardware queue and every volume.  A path (device, address, transport) is
 * reference counted by the states that list it, so a path unchanged from
 * one map to the next keeps its connection.  Its work item connects (HELLO
 * sleeps) and, after the transport reported the connection dead, takes it
 * out of service, disconnects it and connects again with exponential
 * backoff.  While a path has no live connection its device counts as
 * unreachable: reads go to another replica, writes complete on the others
 * and record what it missed as stale (request.c), which is copied to it
 * once it is connected again.  Losing a live connection sends
 * CVM_CMD_EVENT_PATH_DOWN, making one CVM_CMD_EVENT_PATH_UP.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bsearch.h>
#include <linux/inet.h>
#include <linux/jiffies.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/spinlock.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>

#include "../common/map_codec.h"
#include "initiator.h"

/*
 * Reconnect backoff.  Held I/O (request.c) waits for a path to return, so
 * the cap bounds how long after a target's return I/O resumes; one connect
 * attempt every 2 s per unreachable device costs little.
 */
#define CVM_RECONNECT_MIN	(HZ / 10)
#define CVM_RECONNECT_MAX	(2 * HZ)

DEFINE_MUTEX(cvm_config_mutex);
struct cvm_state __rcu *cvm_state;

/* Every live path, for reuse across maps. */
static LIST_HEAD(cvm_paths);
static DEFINE_MUTEX(cvm_paths_lock);
/* Protects cvm_path.stopping against the transport's callback. */
static DEFINE_SPINLOCK(cvm_path_stop_lock);

static struct workqueue_struct *cvm_wq;

/* A MAP_SET upload in progress; under cvm_config_mutex. */
static struct {
	u32		portid;
	u8		*buf;
	u32		total;
	u32		received;
	unsigned long	last;
} cvm_upload;

/* ---- lookups (I/O path, under rcu_read_lock) ---- */

const struct cvm_pool_table *cvm_state_pool(const struct cvm_state *st,
					    u32 pool_id)
{
	u32 i;

	for (i = 0; i < st->nr_pools; i++)
		if (st->pools[i].pool_id == pool_id)
			return &st->pools[i];
	return NULL;
}

static int cvm_dev_path_cmp(const void *a, const void *b)
{
	const struct cvm_dev_path *x = a, *y = b;

	if (x->device_id != y->device_id)
		return x->device_id < y->device_id ? -1 : 1;
	return 0;
}

static const struct cvm_dev_path *cvm_state_dev(const struct cvm_state *st,
						u32 device_id)
{
	const struct cvm_dev_path key = { .device_id = device_id };

	return bsearch(&key, st->paths, st->nr_paths, sizeof(key),
		       cvm_dev_path_cmp);
}

struct cvm_path *cvm_state_path(const struct cvm_state *st, u32 device_id)
{
	const struct cvm_dev_path *dp = cvm_state_dev(st, device_id);

	return dp ? dp->path : NULL;
}

/* The map says the device is up, and it has a path. */
bool cvm_state_dev_up(const struct cvm_state *st, u32 device_id)
{
	const struct cvm_dev_path *dp = cvm_state_dev(st, device_id);

	return dp && dp->path && (dp->state & CVM_DEV_UP);
}

/* The map names the device and does not mark it down (dead, or out). */
bool cvm_state_dev_marked_up(const struct cvm_state *st, u32 device_id)
{
	const struct cvm_dev_path *dp = cvm_state_dev(st, device_id);

	return dp && (dp->state & CVM_DEV_UP);
}

/* The map marks the device full (cvmd: past the cluster's full_ratio). */
bool cvm_state_dev_full(const struct cvm_state *st, u32 device_id)
{
	const struct cvm_dev_path *dp = cvm_state_dev(st, device_id);

	return dp && (dp->state & CVM_DEV_FULL);
}

u64 cvm_map_epoch(void)
{
	const struct cvm_state *st;
	u64 epoch = 0;

	rcu_read_lock();
	st = rcu_dereference(cvm_state);
	if (st)
		epoch = st->map->epoch;
	rcu_read_unlock();
	return epoch;
}

/* ---- paths and connections ---- */

/*
 * A target that stops answering without closing (hung, or its traffic
 * blocked) would hold requests until TCP gives up, many minutes later.
 * The watchdog aborts a connection whose oldest request is older than
 * this; its requests then fail over like those of a lost connection.
 */
static unsigned int cvm_request_timeout = 30;
module_param_named(request_timeout, cvm_request_timeout, uint, 0644);
MODULE_PARM_DESC(request_timeout,
		 "seconds a request may wait for a target's reply before the connection is dropped and reconnected; 0 never (default 30)");

/*
 * An idle connection to a powered-off node is never closed: no RST comes,
 * and with no request on it the watchdog has nothing to time out, so the
 * device would look up for ever (and never be marked out, down_out.h).
 * Every keepalive seconds each live connection with no request in flight
 * carries one STAT of volume 0 (no volume has id 0: the answer is
 * NOT_FOUND, from the target's memory); any answer will do, and none
 * within request_timeout drops the connection as for any other request.
 * As NVMe-oF's keep-alive.  Being answered from memory, it proves the
 * target alive, not its disk (a hung disk is the requests' timeout's).
 */
static unsigned int cvm_keepalive = 5;
module_param_named(keepalive, cvm_keepalive, uint, 0644);
MODULE_PARM_DESC(keepalive,
		 "seconds between keep-alive requests on each idle connection, so that a target gone silent is noticed (at most 3600); 0 never (default 5)");

static void cvm_watchdog_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(cvm_watchdog, cvm_watchdog_fn);

static void cvm_path_schedule(struct cvm_path *path, unsigned long delay)
{
	unsigned long flags;

	spin_lock_irqsave(&cvm_path_stop_lock, flags);
	if (!path->stopping)
		mod_delayed_work(cvm_wq, &path->work, delay);
	spin_unlock_irqrestore(&cvm_path_stop_lock, flags);
}

/* Transport callback, from its workqueue: the connection died. */
static void cvm_path_state_change(struct cvm_conn *conn,
				  enum cvm_conn_state state)
{
	struct cvm_path *path = conn->core_priv;

	if (state != CVM_CONN_DEAD)
		return;
	pr_warn("device %u at %pISpc: connection lost, reconnecting\n",
		path->device_id, &path->addr);
	cvm_path_schedule(path, 0);
}

static const struct cvm_conn_cb cvm_path_conn_cb = {
	.state_change	= cvm_path_state_change,
};

/* Take @path's connection out of service and close it.  Sleeps. */
static void cvm_path_drop_conn(struct cvm_path *path)
{
	struct cvm_conn *conn;

	conn = rcu_replace_pointer(path->conn, NULL, true);
	if (!conn)
		return;
	/* No submitter can still be looking at it after this. */
	synchronize_rcu();
	path->ops->disconnect(conn);
}

/*
 * Who this host is at the targets: cluster and host id, and its secret
 * with its key id (@key holds the secret here; each connection derives its
 * device's key from it).  Set with each map (MAP_SET) and on its own
 * (HOST_KEY_SET: a rotation keeps the map); read by each connect.
 */
static DEFINE_SPINLOCK(cvm_cred_lock);
static struct cvm_hello_params cvm_cred;

/* A map without a key (a tool's, an older cvmd's) keeps the one we have. */
void cvm_cred_set(const struct cvm_hello_params *p, bool with_key)
{
	spin_lock(&cvm_cred_lock);
	cvm_cred.cluster_id = p->cluster_id;
	cvm_cred.host_id = p->host_id;
	if (with_key) {
		memcpy(cvm_cred.key, p->key, sizeof(cvm_cred.key));
		cvm_cred.key_id = p->key_id;
	}
	spin_unlock(&cvm_cred_lock);
}

void cvm_cred_set_key(const u8 *secret, u32 key_id)
{
	spin_lock(&cvm_cred_lock);
	memcpy(cvm_cred.key, secret, sizeof(cvm_cred.key));
	cvm_cred.key_id = key_id;
	spin_unlock(&cvm_cred_lock);
}

static void cvm_cred_get(struct cvm_hello_params *p)
{
	spin_lock(&cvm_cred_lock);
	*p = cvm_cred;
	spin_unlock(&cvm_cred_lock);
}

void cvm_cred_clear(void)
{
	spin_lock(&cvm_cred_lock);
	memzero_explicit(&cvm_cred, sizeof(cvm_cred));
	spin_unlock(&cvm_cred_lock);
}

static void cvm_path_work(struct work_struct *work)
{
	struct cvm_path *path = container_of(to_delayed_work(work),
					     struct cvm_path, work);
	struct cvm_hello_params hello = {};
	u8 key[CVM_WIRE_KEY_LEN];
	struct cvm_conn *conn;
	u16 hello_status = 0;
	int ret;

	conn = rcu_dereference_protected(path->conn, true);
	if (conn && READ_ONCE(path->timed_out) &&
	    READ_ONCE(conn->state) == CVM_CONN_LIVE) {
		pr_warn("device %u at %pISpc: a request got no reply in %u s, dropping the connection\n",
			path->device_id, &path->addr,
			READ_ONCE(cvm_request_timeout));
		path->ops->abort(conn, "request timed out");
	}
	WRITE_ONCE(path->timed_out, false);
	if (conn) {
		if (READ_ONCE(conn->state) != CVM_CONN_DEAD)
			return;
		cvm_path_drop_conn(path);
		cvm_genl_path_event(CVM_CMD_EVENT_PATH_DOWN, path->device_id,
				    &path->addr);
	}
	if (READ_ONCE(path->stopping))
		return;

	cvm_cred_get(&hello);
	hello.device_id = path->device_id;

	/* The state holds the host's secret; this device's key is from it. */
	ret = cvm_auth_derive_key(hello.key, hello.cluster_id, hello.host_id,
				  hello.device_id, key);
	memcpy(hello.key, key, sizeof(key));
	memzero_explicit(key, sizeof(key));
	conn = ERR_PTR(ret);
	if (!ret)
		conn = path->ops->connect(&path->addr, &hello,
					  &cvm_path_conn_cb, path,
					  &hello_status);
	memzero_explicit(hello.key, sizeof(hello.key));
	if (IS_ERR(conn)) {
		pr_warn_ratelimited("device %u at %pISpc: connect failed (%pe, status %u), retry in %u ms\n",
				    path->device_id, &path->addr, conn,
				    hello_status,
				    jiffies_to_msecs(path->backoff));
		cvm_path_schedule(path, path->backoff);
		path->backoff = min(path->backoff * 2,
				    (unsigned long)CVM_RECONNECT_MAX);
		return;
	}
	/* Every queue said HELLO and AUTH: the key is needed no more. */
	memzero_explicit(conn->hello.key, sizeof(conn->hello.key));
	path->backoff = CVM_RECONNECT_MIN;
	WRITE_ONCE(path->keepalive_at,
		   jiffies + READ_ONCE(cvm_keepalive) * HZ);
	rcu_assign_pointer(path->conn, conn);
	pr_info("device %u at %pISpc: connected\n", path->device_id,
		&path->addr);
	cvm_genl_path_event(CVM_CMD_EVENT_PATH_UP, path->device_id,
			    &path->addr);
	cvm_stale_kick(path->device_id);
	/* It may have died before it was published. */
	if (READ_ONCE(conn->state) == CVM_CONN_DEAD)
		cvm_path_schedule(path, 0);
}

/* The reply's payload, if a volume 0 should ever exist. */
struct cvm_keepalive {
	struct cvm_wire_stat	stat;
	struct bio_vec		bv;
};

static void cvm_keepalive_done(struct cvm_xprt_req *req)
{
	/* Only that it came back counts: the path may be gone by now. */
	kfree(req->core_priv);
	req->conn->ops->free_req(req);
}

/* Under rcu_read_lock(), as every submit. */
static void cvm_keepalive_send(const struct cvm_state *st,
			       struct cvm_conn *conn)
{
	const struct cvm_transport_ops *ops = conn->ops;
	struct cvm_xprt_req *req;
	struct cvm_keepalive *ka;

	ka = kzalloc(sizeof(*ka), GFP_NOWAIT);
	if (!ka)
		return;
	req = ops->alloc_req(conn, GFP_NOWAIT);
	if (!req)
		goto free_ka;
	bvec_set_page(&ka->bv, virt_to_page(&ka->stat), sizeof(ka->stat),
		      offset_in_page(&ka->stat));
	req->hdr.opcode = CVM_WIRE_OP_STAT;
	req->hdr.map_epoch = cpu_to_le64(st->map->epoch);
	req->bvec = &ka->bv;
	req->nr_bvec = 1;
	req->data_len = sizeof(ka->stat);
	req->done = cvm_keepalive_done;
	req->core_priv = ka;
	if (!ops->submit(req))
		return;
	ops->free_req(req);
free_ka:
	kfree(ka);
}

/*
 * Once a second: flag paths whose connection has a request too old, and
 * send the keep-alives that are due.
 */
static void cvm_watchdog_fn(struct work_struct *work)
{
	unsigned long timeout = READ_ONCE(cvm_request_timeout) * HZ;
	unsigned long keepalive = min(READ_ONCE(cvm_keepalive), 3600U) * HZ;
	const struct cvm_state *st;
	struct cvm_path *path;
	struct cvm_conn *conn;
	unsigned long oldest;

	mutex_lock(&cvm_paths_lock);
	list_for_each_entry(path, &cvm_paths, entry) {
		rcu_read_lock();
		conn = rcu_dereference(path->conn);
		st = rcu_dereference(cvm_state);
		oldest = 0;
		/*
		 * A request in flight is probe enough; so at most one
		 * keep-alive waits, and none without a timeout to catch it.
		 */
		if (conn && READ_ONCE(conn->state) == CVM_CONN_LIVE && timeout) {
			oldest = path->ops->oldest_request(conn);
			if (!oldest && keepalive && st &&
			    time_after_eq(jiffies,
					  READ_ONCE(path->keepalive_at))) {
				cvm_keepalive_send(st, conn);
				WRITE_ONCE(path->keepalive_at,
					   jiffies + keepalive);
			}
		}
		rcu_read_unlock();
		if (oldest && time_after(jiffies, oldest + timeout)) {
			WRITE_ONCE(path->timed_out, true);
			cvm_path_schedule(path, 0);
		}
	}
	mutex_unlock(&cvm_paths_lock);
	queue_delayed_work(cvm_wq, &cvm_watchdog, HZ);
}

/* Last reference gone; called under cvm_paths_lock. */
static void cvm_path_unlink(struct kref *ref)
{
	list_del(&container_of(ref, struct cvm_path, ref)->entry);
}

/* Stop reconnecting, close the connection, free.  Sleeps. */
static void cvm_path_destroy(struct cvm_path *path)
{
	unsigned long flags;

	spin_lock_irqsave(&cvm_path_stop_lock, flags);
	path->stopping = true;
	spin_unlock_irqrestore(&cvm_path_stop_lock, flags);
	cancel_delayed_work_sync(&path->work);
	cvm_path_drop_conn(path);
	kfree(path);
}

static void cvm_path_put(struct cvm_path *path)
{
	bool last;

	/* Under the lock: cvm_path_get() must not find a dying path. */
	mutex_lock(&cvm_paths_lock);
	last = kref_put(&path->ref, cvm_path_unlink);
	mutex_unlock(&cvm_paths_lock);
	if (last)
		cvm_path_destroy(path);
}

/*
 * cvm_path_get() - the path for (device, address, transport), shared with
 * the installed state if it has the same one, else a new one (which starts
 * connecting once scheduled by cvm_state_start_paths()).
 */
static struct cvm_path *cvm_path_get(u32 device_id,
				     const struct sockaddr_storage *addr,
				     const struct cvm_transport_ops *ops)
{
	struct cvm_path *path;

	mutex_lock(&cvm_paths_lock);
	list_for_each_entry(path, &cvm_paths, entry) {
		if (path->device_id == device_id && path->ops == ops &&
		    !memcmp(&path->addr, addr, sizeof(*addr))) {
			kref_get(&path->ref);
			goto out_unlock;
		}
	}
	path = kzalloc(sizeof(*path), GFP_KERNEL);
	if (!path)
		goto out_unlock;
	kref_init(&path->ref);
	path->device_id = device_id;
	path->addr = *addr;
	path->ops = ops;
	path->backoff = CVM_RECONNECT_MIN;
	INIT_DELAYED_WORK(&path->work, cvm_path_work);
	list_add(&path->entry, &cvm_paths);
out_unlock:
	mutex_unlock(&cvm_paths_lock);
	return path;
}

/* ---- states ---- */

static void cvm_state_free(struct cvm_state *st)
{
	u32 i;

	if (st->paths)
		for (i = 0; i < st->nr_paths; i++)
			if (st->paths[i].path)
				cvm_path_put(st->paths[i].path);
	kvfree(st->paths);
	if (st->pools)
		for (i = 0; i < st->nr_pools; i++) {
			cvm_pg_table_free(st->pools[i].devs);
			kvfree(st->pools[i].targets);
		}
	kfree(st->pools);
	cvm_map_free(st->map);
	kfree(st);
}

static void cvm_state_free_work(struct work_struct *work)
{
	cvm_state_free(container_of(to_rcu_work(work), struct cvm_state,
				    rwork));
}

/* Connect every path of a newly published state that has no connection. */
static void cvm_state_start_paths(struct cvm_state *st)
{
	struct cvm_conn *conn;
	u32 i;

	for (i = 0; i < st->nr_paths; i++) {
		struct cvm_path *path = st->paths[i].path;

		if (!path)
			continue;
		rcu_read_lock();
		conn = rcu_dereference(path->conn);
		rcu_read_unlock();
		if (!conn)
			cvm_path_schedule(path, 0);
	}
}

static int cvm_state_add_path(struct cvm_state *st, const struct nlattr *nla,
			      struct netlink_ext_ack *extack)
{
	struct nlattr *tb[CVM_PATH_ATTR_MAX + 1];
	const struct cvm_transport_ops *ops;
	char transport[CVM_PATH_TRANSPORT_LEN] = "tcp";
	char addr[CVM_PATH_ADDR_LEN], port[8];
	struct sockaddr_storage ss = {};
	struct cvm_dev_path *dp;
	u32 device_id;
	int ret;

	ret = nla_parse_nested(tb, CVM_PATH_ATTR_MAX, nla, cvm_path_nl_policy,
			       extack);
	if (ret)
		return ret;
	if (NL_REQ_ATTR_CHECK(extack, nla, tb, CVM_PATH_ATTR_DEVICE_ID) ||
	    NL_REQ_ATTR_CHECK(extack, nla, tb, CVM_PATH_ATTR_ADDR) ||
	    NL_REQ_ATTR_CHECK(extack, nla, tb, CVM_PATH_ATTR_PORT))
		return -EINVAL;

	device_id = nla_get_u32(tb[CVM_PATH_ATTR_DEVICE_ID]);
	dp = (struct cvm_dev_path *)cvm_state_dev(st, device_id);
	if (!dp) {
		NL_SET_ERR_MSG_ATTR(extack, tb[CVM_PATH_ATTR_DEVICE_ID],
				    "path for a device not in the map");
		return -EINVAL;
	}
	if (dp->path) {
		NL_SET_ERR_MSG_ATTR(extack, tb[CVM_PATH_ATTR_DEVICE_ID],
				    "two paths for one device");
		return -EINVAL;
	}

	nla_strscpy(addr, tb[CVM_PATH_ATTR_ADDR], sizeof(addr));
	snprintf(port, sizeof(port), "%u",
		 nla_get_u16(tb[CVM_PATH_ATTR_PORT]));
	if (inet_pton_with_scope(&init_net, AF_UNSPEC, addr, port, &ss)) {
		NL_SET_ERR_MSG_ATTR(extack, tb[CVM_PATH_ATTR_ADDR],
				    "not a numeric IPv4 or IPv6 address");
		return -EINVAL;
	}
	if (tb[CVM_PATH_ATTR_TRANSPORT])
		nla_strscpy(transport, tb[CVM_PATH_ATTR_TRANSPORT],
			    sizeof(transport));
	ops = cvm_transport_find(transport);
	if (!ops) {
		NL_SET_ERR_MSG_ATTR(extack, tb[CVM_PATH_ATTR_TRANSPORT],
				    "unknown transport");
		return -EPROTONOSUPPORT;
	}

	dp->path = cvm_path_get(device_id, &ss, ops);
	return dp->path ? 0 : -ENOMEM;
}

static int cvm_state_build_paths(struct cvm_state *st,
				 const struct nlattr *paths,
				 struct netlink_ext_ack *extack)
{
	const struct cvm_map *map = st->map;
	const struct nlattr *nla;
	int rem, ret;
	u32 i;

	st->paths = kvcalloc(map->nr_devices, sizeof(*st->paths), GFP_KERNEL);
	if (!st->paths)
		return -ENOMEM;
	st->nr_paths = map->nr_devices;
	for (i = 0; i < map->nr_devices; i++) {
		st->paths[i].device_id = map->devices[i].id;
		st->paths[i].state = map->devices[i].state;
		st->any_full |= !!(map->devices[i].state & CVM_DEV_FULL);
	}
	/* cvm_map_finalize() refused duplicate device ids. */
	sort(st->paths, st->nr_paths, sizeof(*st->paths), cvm_dev_path_cmp,
	     NULL);

	nla_for_each_nested(nla, paths, rem) {
		if (nla_type(nla) != CVM_MAP_PATHS_ATTR_PATH) {
			NL_SET_ERR_MSG_ATTR(extack, nla,
					    "unknown attribute in path list");
			return -EINVAL;
		}
		ret = cvm_state_add_path(st, nla, extack);
		if (ret)
			return ret;
	}
	return 0;
}

const struct cvm_pg_targets *cvm_pool_targets(const struct cvm_pool_table *pt,
					      u32 pg)
{
	u32 lo = 0, hi = pt->nr_targets;

	while (lo < hi) {
		const u32 mid = lo + (hi - lo) / 2;

		if (pt->targets[mid].pg == pg)
			return &pt->targets[mid];
		if (pt->targets[mid].pg < pg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * A pool's pinned PGs whose up row has devices the pin lacks (EC: in that
 * slot): writes reach those too while backfill copies the rest
 * (backfill.c).
 */
static int cvm_pool_table_targets(const struct cvm_map *map,
				  const struct cvm_pool *pool,
				  struct cvm_pool_table *pt)
{
	const bool ec = pool->kind == CVM_POOL_EC;
	const u32 width = cvm_pool_width(pool);
	u32 i, n = 0, s, j;

	for (i = 0; i < map->nr_pins; i++)
		n += map->pins[i].pool_id == pool->id;
	if (!n)
		return 0;
	pt->targets = kvcalloc(n, sizeof(*pt->targets), GFP_KERNEL);
	if (!pt->targets)
		return -ENOMEM;
	for (i = 0; i < map->nr_pins; i++) {
		const struct cvm_pg_pin *pin = &map->pins[i];
		struct cvm_pg_targets *t = &pt->targets[pt->nr_targets];
		u32 up[CVM_MAX_PG_WIDTH];

		if (pin->pool_id != pool->id ||
		    cvm_place_pg(map, pool, pin->pg, up))
			continue;
		t->pg = pin->pg;
		t->nr = 0;
		t->crossed = false;
		for (s = 0; s < width; s++) {
			bool pinned = false;

			if (up[s] == CVM_DEV_NONE || (ec && pin->devs[s] == up[s]))
				continue;
			for (j = 0; j < width; j++)
				pinned |= pin->devs[j] == up[s];
			if (pinned && !ec)
				continue;
			t->crossed |= pinned;
			t->slots[t->nr] = s;
			t->devs[t->nr++] = up[s];
		}
		/*
		 * Crossed: no targets at all here.  Marking its target stale
		 * would also hide the shard it holds in the pin from reads.
		 */
		pt->crossed |= t->crossed;
		if (t->nr && !t->crossed)
			pt->nr_targets++;
	}
	return 0;
}

static int cvm_state_build_pools(struct cvm_state *st,
				 struct netlink_ext_ack *extack)
{
	const struct cvm_map *map = st->map;
	struct cvm_err err = {};
	size_t nr_entries;
	u32 i;
	int ret;

	st->pools = kcalloc(map->nr_pools, sizeof(*st->pools), GFP_KERNEL);
	if (map->nr_pools && !st->pools)
		return -ENOMEM;
	st->nr_pools = map->nr_pools;
	for (i = 0; i < map->nr_pools; i++) {
		const struct cvm_pool *pool = &map->pools[i];
		struct cvm_pool_table *pt = &st->pools[i];

		ret = cvm_pg_table_create(map, pool->id, &pt->devs,
					  &nr_entries, &err);
		if (ret) {
			cvm_extack_why(extack, &err);
			return ret;
		}
		pt->pool_id = pool->id;
		pt->pg_num = pool->pg_num;
		pt->width = cvm_pool_width(pool);
		pt->kind = pool->kind;
		pt->k = pool->k;
		pt->m = pool->m;
		pt->min_size = cvm_pool_min_size(pool);
		ret = cvm_pool_table_targets(map, pool, pt);
		if (ret)
			return ret;
	}
	return 0;
}

/* Attached volumes must keep their pool and its code. */
static int cvm_state_check_volumes(const struct cvm_state *st,
				   struct netlink_ext_ack *extack)
{
	const struct cvm_pool_table *pt;
	struct cvm_volume *vol;

	list_for_each_entry(vol, &cvm_volumes, entry) {
		pt = cvm_state_pool(st, vol->pool_id);
		if (!pt || (vol->layout.ec_k ?
			    pt->kind != CVM_POOL_EC || pt->k != vol->layout.ec_k ||
			    pt->m != vol->ec_m :
			    pt->kind != CVM_POOL_REPLICATED)) {
			NL_SET_ERR_MSG(extack,
				       "map drops or changes the pool of an attached volume");
			pr_warn("map refused: pool %u of volume %llu missing or changed\n",
				vol->pool_id, vol->id);
			return -EBUSY;
		}
	}
	return 0;
}

static int cvm_map_commit(const struct cvm_map_set_req *req, const void *blob,
			  u32 len, struct netlink_ext_ack *extack)
{
	struct cvm_state *st, *old;
	struct cvm_err err = {};
	u64 installed;
	int ret;

	if (!req->paths) {
		NL_SET_ERR_MSG(extack,
			       "the last map chunk needs CVM_ATTR_MAP_PATHS");
		return -EINVAL;
	}
	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	INIT_RCU_WORK(&st->rwork, cvm_state_free_work);

	ret = cvm_map_decode(blob, len, &st->map, &err);
	if (ret) {
		cvm_extack_why(extack, &err);
		goto out_free_state;
	}
	old = rcu_dereference_protected(cvm_state,
					lockdep_is_held(&cvm_config_mutex));
	installed = old ? old->map->epoch : 0;
	if (st->map->epoch <= installed) {
		NL_SET_ERR_MSG(extack,
			       "map epoch not newer than the installed one");
		ret = -ESTALE;
		goto out_free_state;
	}
	ret = cvm_state_build_pools(st, extack);
	if (ret)
		goto out_free_state;
	ret = cvm_state_check_volumes(st, extack);
	if (ret)
		goto out_free_state;
	ret = cvm_state_build_paths(st, req->paths, extack);
	if (ret)
		goto out_free_state;
	/* Stale sets are per device id and outlive this state. */
	ret = cvm_stale_add_devices(st->map);
	if (ret)
		goto out_free_state;

	cvm_cred_set(&req->hello, req->has_key);
	old = rcu_replace_pointer(cvm_state, st,
				  lockdep_is_held(&cvm_config_mutex));
	cvm_state_start_paths(st);
	cvm_stale_kick_all();
	cvm_intent_map_changed();	/* new devices are scanned first */
	cvm_backfill_map_changed();
	if (old)
		queue_rcu_work(cvm_wq, &old->rwork);
	pr_info("map epoch %llu installed: %u devices, %u pools\n",
		st->map->epoch, st->map->nr_devices, st->map->nr_pools);
	return 0;

out_free_state:
	cvm_state_free(st);
	return ret;
}

/* ---- upload ---- */

static void cvm_upload_reset(void)
{
	kvfree(cvm_upload.buf);
	memset(&cvm_upload, 0, sizeof(cvm_upload));
}

/*
 * cvm_map_set() - one CVM_CMD_MAP_SET message (see cvm.h)
 * @committed: set when this chunk completed the blob and the map is in
 *
 * Called under cvm_config_mutex.
 */
int cvm_map_set(const struct cvm_map_set_req *req, bool *committed,
		struct netlink_ext_ack *extack)
{
	bool busy;
	int ret;

	*committed = false;
	if (!req->chunk_len) {
		NL_SET_ERR_MSG(extack, "empty map chunk");
		return -EINVAL;
	}
	if (!req->total_len || req->total_len > CVM_MAP_MAX_LEN) {
		NL_SET_ERR_MSG(extack, "map total length 0 or over the limit");
		return -EINVAL;
	}
	if (req->offset > req->total_len ||
	    req->chunk_len > req->total_len - req->offset) {
		NL_SET_ERR_MSG(extack, "map chunk ends beyond the total length");
		return -EINVAL;
	}
	/* A map in one message: no upload state at all. */
	if (!req->offset && req->chunk_len == req->total_len) {
		if (cvm_upload.buf && cvm_upload.portid == req->portid)
			cvm_upload_reset();
		ret = cvm_map_commit(req, req->chunk, req->chunk_len, extack);
		*committed = !ret;
		return ret;
	}
	if (req->has_commit_attrs &&
	    req->offset + req->chunk_len != req->total_len) {
		NL_SET_ERR_MSG(extack,
			       "paths, cluster id, host id and token go with the last map chunk");
		return -EINVAL;
	}

	if (!req->offset) {
		busy = cvm_upload.buf && cvm_upload.portid != req->portid &&
		       time_before(jiffies, cvm_upload.last +
				   CVM_MAP_UPLOAD_IDLE_SECS * HZ);
		if (busy) {
			NL_SET_ERR_MSG(extack,
				       "another socket is uploading a map");
			return -EBUSY;
		}
		cvm_upload_reset();
		cvm_upload.buf = kvmalloc(req->total_len, GFP_KERNEL);
		if (!cvm_upload.buf)
			return -ENOMEM;
		cvm_upload.portid = req->portid;
		cvm_upload.total = req->total_len;
	} else if (!cvm_upload.buf || cvm_upload.portid != req->portid) {
		NL_SET_ERR_MSG(extack, "no map upload started by this socket");
		return -ENOENT;
	} else if (req->total_len != cvm_upload.total ||
		   req->offset != cvm_upload.received) {
		NL_SET_ERR_MSG(extack,
			       "map chunk out of order or total length changed");
		cvm_upload_reset();
		return -EINVAL;
	}

	memcpy(cvm_upload.buf + req->offset, req->chunk, req->chunk_len);
	cvm_upload.received += req->chunk_len;
	cvm_upload.last = jiffies;
	if (cvm_upload.received < cvm_upload.total)
		return 0;

	ret = cvm_map_commit(req, cvm_upload.buf, cvm_upload.total, extack);
	cvm_upload_reset();
	*committed = !ret;
	return ret;
}

int cvm_map_init(void)
{
	cvm_wq = alloc_workqueue("cvm", WQ_MEM_RECLAIM, 0);
	if (!cvm_wq)
		return -ENOMEM;
	queue_delayed_work(cvm_wq, &cvm_watchdog, HZ);
	return 0;
}

/* Module exit: no volume is attached and netlink is gone. */
void cvm_map_exit(void)
{
	struct cvm_state *st;

	cancel_delayed_work_sync(&cvm_watchdog);
	mutex_lock(&cvm_config_mutex);
	cvm_upload_reset();
	st = rcu_replace_pointer(cvm_state, NULL,
				 lockdep_is_held(&cvm_config_mutex));
	mutex_unlock(&cvm_config_mutex);
	/* Older states' rcu_works, then this one. */
	rcu_barrier();
	flush_workqueue(cvm_wq);
	if (st) {
		synchronize_rcu();
		cvm_state_free(st);
	}
	destroy_workqueue(cvm_wq);
	cvm_cred_clear();
}
