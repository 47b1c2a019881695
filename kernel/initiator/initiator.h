/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cvm.ko internals shared between its source files.
 *
 *   main.c	module init/exit
 *   netlink.c	the "cvm" generic netlink family
 *   map.c	the installed cluster state (map, PG tables, device paths),
 *		published under RCU; map upload; connections and reconnects
 *   volume.c	attached volumes: one blk-mq disk each
 *   request.c	the I/O pipeline: split, place, fan out, gather; stale
 *		objects of degraded writes and their resync
 *   flush.c	what a FLUSH must make durable, per device instance
 *   ec_io.c	EC reads and writes, the stripe journal
 *   intent.c	persistent records of missed writes: write intent and
 *		object versions on the targets, cleaning, the scan at attach
 *   backfill.c	copying pinned PGs of attached volumes to their up rows
 */
#ifndef _CVM_INITIATOR_H
#define _CVM_INITIATOR_H

#include <linux/blk-mq.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <net/netlink.h>
#include <linux/rcupdate.h>
#include <linux/socket.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "../common/object.h"
#include "../common/placement.h"
#include "../transport/transport.h"

/* Name of the block major and prefix of /dev/cvmN. */
#define CVM_BLKDEV_NAME	"cvm"

/* Dynamic block major of /dev/cvmN, set at module load. */
extern int cvm_major;

/*
 * Serialises every configuration change: map upload and commit, attach,
 * detach, path reconnects' bookkeeping.  Never taken by the I/O path.
 */
extern struct mutex cvm_config_mutex;

/*
 * Hand a kernel/common refusal to netlink: cvm_err.why is a static string,
 * as extack requires (NL_SET_ERR_MSG() only takes literals).
 */
static inline void cvm_extack_why(struct netlink_ext_ack *extack,
				  const struct cvm_err *err)
{
	if (extack && err->why)
		extack->_msg = err->why;
}

/*
 * struct cvm_path - how to reach one device of the map
 * @ref: held by every cluster state that lists the path
 * @device_id: device id in the map
 * @addr: target address
 * @ops: the transport
 * @conn: live connection, NULL while (re)connecting; RCU-protected so the
 *	I/O path can use it without a lock
 * @work: (re)connect work
 * @backoff: next reconnect delay, in jiffies
 * @stopping: set once the last state dropped the path: no more reconnects
 * @entry: in cvm_paths (under cvm_config_mutex)
 *
 * Paths outlive map epochs: a path with the same device, address and
 * transport in the next map is the same object, and keeps its connection.
 */
struct cvm_path {
	struct kref			ref;
	u32				device_id;
	struct sockaddr_storage		addr;
	const struct cvm_transport_ops	*ops;
	struct cvm_conn __rcu		*conn;
	struct delayed_work		work;
	unsigned long			backoff;
	bool				stopping;
	bool				timed_out;
	unsigned long			keepalive_at;
	struct list_head		entry;
};

/*
 * The backfill targets of a pinned PG (backfill.c): the devices of its up
 * row that its pin (the row in @devs of its table) lacks; for EC, in that
 * slot.  @slots: each target's slot of the up row (EC: its shard).
 * @crossed: EC only, a target holds another shard of the PG in the pin:
 * stale sets are per object, not per shard, so cvm.ko does not copy it
 * (cvmd does, once the volume is detached) and leaves it out of the table.
 */
struct cvm_pg_targets {
	u32	pg;
	u32	nr;
	u32	devs[CVM_MAX_PG_WIDTH];
	u8	slots[CVM_MAX_PG_WIDTH];
	bool	crossed;
};

/*
 * One pool's PG table: @pg_num rows of @width device ids.  @min_size: the
 * copies (shards) a write needs, the pool's or its policy's default.
 * @targets: pinned PGs with backfill targets, by PG.
 * @crossed: some of them are crossed (struct cvm_pg_targets).
 */
struct cvm_pool_table {
	u32	pool_id;
	u32	pg_num;
	u32	width;
	u8	kind;
	u8	k, m;
	u8	min_size;
	u32	*devs;
	u32	nr_targets;
	struct cvm_pg_targets *targets;
	bool	crossed;
};

const struct cvm_pg_targets *cvm_pool_targets(const struct cvm_pool_table *pt,
					      u32 pg);

/* Every device of the map, sorted by device id for bsearch(). */
struct cvm_dev_path {
	u32		device_id;
	u32		state;		/* CVM_DEV_* bits from the map */
	struct cvm_path	*path;		/* NULL: no path given */
};

/*
 * struct cvm_state - one installed map epoch, immutable once published
 * @map: the decoded, finalized map
 * @hello: what connections announce in HELLO (device_id left 0)
 * @pools: PG table of every pool of @map
 * @paths: sorted device -> path table
 * @rwork: frees the state after a grace period, in process context
 *
 * Readers: rcu_read_lock(); st = rcu_dereference(cvm_state).  A state is
 * freed only after a grace period, so everything it points to (paths
 * included) is valid inside the read-side section.
 */
struct cvm_state {
	struct cvm_map		*map;
	u32			nr_pools;
	struct cvm_pool_table	*pools;
	u32			nr_paths;
	struct cvm_dev_path	*paths;
	bool			any_full;	/* a device is CVM_DEV_FULL */
	struct rcu_work		rwork;
};

extern struct cvm_state __rcu *cvm_state;

const struct cvm_pool_table *cvm_state_pool(const struct cvm_state *st,
					    u32 pool_id);
struct cvm_path *cvm_state_path(const struct cvm_state *st, u32 device_id);
bool cvm_state_dev_up(const struct cvm_state *st, u32 device_id);
bool cvm_state_dev_marked_up(const struct cvm_state *st, u32 device_id);
bool cvm_state_dev_full(const struct cvm_state *st, u32 device_id);
u64 cvm_map_epoch(void);

/* map.c: MAP_SET, called under cvm_config_mutex */
struct cvm_map_set_req {
	u32			portid;
	const void		*chunk;
	u32			chunk_len;
	u32			offset;
	u32			total_len;
	const struct nlattr	*paths;
	struct cvm_hello_params	hello;
	bool			has_key;	/* HOST_KEY given */
	bool			has_commit_attrs;
};

int cvm_map_set(const struct cvm_map_set_req *req, bool *committed,
		struct netlink_ext_ack *extack);
/* This host's identity and secret for HELLO and AUTH (map.c). */
void cvm_cred_set(const struct cvm_hello_params *p, bool with_key);
void cvm_cred_set_key(const u8 *secret, u32 key_id);
void cvm_cred_clear(void);
int cvm_map_init(void);
void cvm_map_exit(void);

/*
 * struct cvm_volume - an attached volume, /dev/cvm<minor>
 * @id, @pool_id, @attach_epoch, @name: as attached
 * @layout: object math (kernel/common/object.h)
 * @minor: index of /dev/cvmN
 * @tag_set, @disk: the blk-mq device
 * @lock: protects @open_count and @dying
 * @open_count: opens of the disk
 * @dying: detach started: opens fail
 * @entry: in cvm_volumes (under cvm_config_mutex)
 */
/* flush.c: objects written since the last FLUSH, per volume. */
#define CVM_UNFLUSHED_HASH_BITS	8
struct cvm_unflushed {
	spinlock_t		lock;
	struct hlist_head	buckets[1 << CVM_UNFLUSHED_HASH_BITS];
	unsigned long		count;
};

void cvm_unflushed_init(struct cvm_unflushed *uf);
void cvm_unflushed_destroy(struct cvm_unflushed *uf);
int cvm_unflushed_record(struct cvm_unflushed *uf, u64 object_no,
			 const u32 *devs, const u64 *instances,
			 unsigned int nr_devs);
u64 cvm_flush_begin(void);
int cvm_flush_finish(struct cvm_unflushed *uf, u64 volume_id, u64 gen);

struct cvm_volume {
	u64			id;
	u32			pool_id;
	u64			attach_epoch;
	char			name[CVM_VOLUME_NAME_LEN];
	struct cvm_layout	layout;
	u32			ec_m;
	atomic64_t		ec_jseq;	/* last EC journal sequence */
	int			minor;
	struct blk_mq_tag_set	tag_set;
	struct gendisk		*disk;
	struct mutex		lock;
	unsigned int		open_count;
	bool			dying;
	struct list_head	entry;
	struct cvm_unflushed	unflushed;
	struct xarray		active;
	struct delayed_work	clean_work;
	struct xarray		scanned;
	spinlock_t		scan_lock;	/* scan_gen, scan_done */
	unsigned long		scan_gen;
	bool			scan_done;
	struct delayed_work	scan_work;
	struct delayed_work	backfill_work;
	u64			backfill_listed;	/* map epoch */
	struct cvm_latency __percpu *latency;		/* stats.c */
};

/* stats.c */
int cvm_stats_init(struct cvm_volume *vol);
void cvm_stats_free(struct cvm_volume *vol);
void cvm_stats_record(struct cvm_volume *vol, struct request *rq,
		      u64 start_ns);
extern const struct attribute_group *cvm_disk_attr_groups[];

/* Largest piece (request part inside one object) of an EC volume. */
#define CVM_EC_MAX_PIECE	SZ_256K

/*
 * struct cvm_ec_io - a READ or WRITE piece of an EC volume (ec_io.c)
 * @done: called from the EC workqueue with @status set
 */
struct cvm_ec_io {
	struct work_struct	work;
	struct cvm_volume	*vol;
	u8			op;
	u16			wire_flags;
	struct cvm_extent	ext;
	struct bio_vec		*bvec;
	unsigned int		nr_bvec;
	blk_status_t		status;
	void			(*done)(struct cvm_ec_io *io);
};

/* What an EC stripe operation needs to know of its volume. */
struct cvm_ec_geom {
	u64	vol_id;
	u32	pool_id;
	u64	attach_epoch;
	u32	k, m;
	u32	unit;
};

void cvm_ec_io_queue(struct cvm_ec_io *io);
int cvm_ec_journal_replay(struct cvm_volume *vol);
int cvm_ec_resync(u32 device_id, const struct cvm_ec_geom *g, u64 object_no,
		  u64 object_size, u16 *shardp);
int cvm_ec_init(void);
void cvm_ec_exit(void);

blk_status_t cvm_wire_blk_status(const struct cvm_xprt_req *req);
struct cvm_conn *cvm_dev_conn(const struct cvm_state *st, u32 device_id);
bool cvm_stale_test(u32 device_id, u64 volume_id, u64 object_no);

/* volume.c, called under cvm_config_mutex */
struct cvm_volume_spec {
	u64		id;
	u32		pool_id;
	u64		size;
	u32		object_size;
	u32		stripe_unit;	/* EC pools only; 0: not given */
	u64		attach_epoch;
	const char	*name;
};

extern struct list_head cvm_volumes;

int cvm_volume_attach(const struct cvm_volume_spec *spec,
		      struct cvm_volume **volp, struct netlink_ext_ack *extack);
int cvm_volume_detach(u64 id, u32 flags, struct netlink_ext_ack *extack);
struct cvm_volume *cvm_volume_lookup(u64 id);
unsigned int cvm_volume_count(void);
void cvm_volume_exit(void);

/* request.c */
extern const struct blk_mq_ops cvm_mq_ops;
size_t cvm_io_size(void);

/*
 * request.c: stale objects (a degraded write missed them on a device) and
 * their resync; see the comment above cvm_stale_mark().
 */
int cvm_stale_init(void);
void cvm_stale_exit(void);
int cvm_stale_add_devices(const struct cvm_map *map);
void cvm_stale_kick(u32 device_id);
void cvm_stale_kick_all(void);
u64 cvm_stale_count(void);
u64 cvm_stale_dev_count(u32 device_id);
int cvm_stale_mark(u32 device_id, u64 volume_id, u64 object_no);
int cvm_stale_settle(u64 volume_id, u64 object_no, const u32 *devs,
		     unsigned int nr_devs, unsigned int nr_counted,
		     unsigned long acked, unsigned long missed, unsigned int need);
void cvm_stale_settle_begin(void);
void cvm_stale_settle_end(void);
void cvm_dev_flush_ok(u32 device_id, u64 gen, u64 instance);
bool cvm_dev_flushed(u32 device_id, u64 gen, u64 instance);
bool cvm_dev_flush_answered(u32 device_id, u64 gen);

unsigned int cvm_write_need(const struct cvm_state *st, u32 pool_id,
			    unsigned int nr_devs);
bool cvm_stale_recorded(u32 device_id, u64 volume_id, u64 object_no);
void cvm_stale_set_recorded(u32 device_id, u64 volume_id, u64 object_no);
struct cvm_fence;
struct cvm_fence *cvm_fence_raise(u64 volume_id, u64 object_no);
void cvm_fence_lower(struct cvm_fence *f);

/*
 * intent.c: persistent records of missed writes.
 *
 * struct cvm_call - a request sent by cvm_call(), and its answer
 * @status, @rsp_version, @rsp_len, @error: the answer
 */
struct cvm_call {
	u8		op;
	u16		flags;
	u64		volume_id;
	u64		attach_epoch;
	u64		object_no;
	u16		shard;
	u64		offset;
	u32		length;
	u32		shard_version;
	struct bio_vec	*bvec;
	unsigned int	nr_bvec;
	u32		data_len;
	u16		status;
	u32		rsp_version;
	u32		rsp_len;
	int		error;
};

int cvm_call(u32 device_id, struct cvm_call *c);
int cvm_list_walk(struct cvm_volume *vol, u32 device_id, u16 flags,
		  struct bio_vec *bv, unsigned int nr_pages,
		  int (*fn)(struct cvm_volume *vol, u32 device_id,
			    u64 object_no, void *arg),
		  void *arg);
u32 cvm_intent_row(u32 pool_id, u64 volume_id, u64 object_no, u32 *devs,
		   u32 *need);
int cvm_intent_stat(u32 device_id, u64 volume_id, u64 attach_epoch,
		    u64 object_no, u16 shard, u32 *version);
int cvm_intent_version(u64 volume_id, u64 attach_epoch, u32 pool_id,
		       u64 object_no, bool ec, u32 except, u32 *version);
void cvm_intent_touch(struct cvm_volume *vol, u64 object_no);
bool cvm_intent_ready(struct cvm_volume *vol, const struct cvm_state *st,
		      const u32 *row, u32 width);
void cvm_intent_map_changed(void);
void cvm_intent_attach(struct cvm_volume *vol);
void cvm_intent_detach(struct cvm_volume *vol, bool clean);

/* backfill.c */
void cvm_backfill_attach(struct cvm_volume *vol);
void cvm_backfill_detach(struct cvm_volume *vol);
void cvm_backfill_map_changed(void);
u64 cvm_backfill_done(const struct cvm_volume *vol);
bool cvm_stale_volume_on(u32 device_id, u64 volume_id);

/* netlink.c */
extern const struct nla_policy cvm_path_nl_policy[CVM_PATH_ATTR_MAX + 1];
int cvm_genl_register(void);
void cvm_genl_unregister(void);
void cvm_genl_path_event(u8 cmd, u32 device_id,
			 const struct sockaddr_storage *addr);

#endif /* _CVM_INITIATOR_H */
