/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Cluster map and placement: object -> PG -> ordered device list.
 *
 * The map is a failure-domain tree.  Buckets (root, row, rack, host) hold
 * buckets of a lower type or, for hosts, devices.  Levels may be skipped
 * (a root may hold hosts directly).  Every item has exactly one parent;
 * the root has none.
 *
 * Ids: devices 0 .. CVM_MAX_DEVICES - 1, buckets -1 .. -CVM_MAX_BUCKETS.
 * Weights are 16.16 fixed point (0x10000 = 1.0), typically capacity in TiB.
 * A bucket weighs the sum of its children.
 *
 * A PG's devices are chosen by hierarchical straw2 (weighted rendezvous
 * hashing): at each bucket every child draws ln(u) / weight with u uniform
 * in (0, 1] from a hash of (PG, child, attempt); the largest draw wins.
 * Changing one child's weight only moves data to or from that child, which
 * is what keeps movement close to the minimum when devices come and go.
 *
 * Slot i of a PG descends from the root to a failure domain of the pool's
 * level, then to a device inside it.  A slot is refused, and retried in the
 * next round with a fresh attempt number, when its failure domain is already
 * used by another slot or its device is out.  Rounds process slots in order
 * and a slot once filled never changes in later rounds, so a device going
 * out moves only the slots that were on it.  After CVM_CHOOSE_ROUNDS a slot
 * still empty holds CVM_DEV_NONE.
 *
 * Device state: only "in" matters for placement; a down but in device keeps
 * its data (I/O to it is degraded, not remapped).  Weight 0 removes a device
 * from the tree's weights entirely; "out" keeps its weight and refuses it,
 * so its data spreads over the whole cluster and nothing else moves.
 *
 * Device classes: a device may carry a class (1 .. 255, e.g. "ssd"), and a
 * pool may ask for one.  Such a pool sees the tree weighed by that class
 * alone (Ceph's shadow trees): a bucket weighs the sum of its devices of
 * the class, other devices weigh 0, so its PGs land only on the class and
 * spread over it as the class's weights say.  A pool with class 0 sees
 * every device.
 */
#ifndef _CVM_PLACEMENT_H
#define _CVM_PLACEMENT_H

#include "cvm_compat.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits; each refusal names the one exceeded. */
#define CVM_MAX_DEVICES		65536	/* device ids 0 .. 65535 */
#define CVM_MAX_BUCKETS		16384	/* bucket ids -1 .. -16384 */
#define CVM_MAX_BUCKET_CHILDREN	4096	/* straw2 cost is linear in it */
#define CVM_MAX_POOLS		256
#define CVM_MAX_PG_NUM		(1u << 20)
#define CVM_MAX_REPLICAS	5
#define CVM_EC_MIN_K		2
#define CVM_EC_MAX_K		8
#define CVM_EC_MAX_M		4
#define CVM_MAX_PG_WIDTH	12	/* devices per PG: replicas or k + m */
#define CVM_CHOOSE_ROUNDS	50
#define CVM_MAX_CLASSES		8	/* distinct classes pools ask for */
#define CVM_MAX_PINS		(1u << 20)	/* PGs pinned to acting rows */
#define CVM_MAX_OVERRIDES	(1u << 22)	/* balancer slot choices */

/* PG table entry for a slot no device could be found for. */
#define CVM_DEV_NONE		U32_MAX

/* Item types, lowest first; a bucket holds only lower types. */
enum cvm_item_type {
	CVM_TYPE_DEVICE = 0,
	CVM_TYPE_HOST = 1,
	CVM_TYPE_RACK = 2,
	CVM_TYPE_ROW = 3,
	CVM_TYPE_ROOT = 4,
};

/* Device state bits. */
#define CVM_DEV_UP		0x1u	/* reachable */
#define CVM_DEV_IN		0x2u	/* may hold data; out is skipped */
#define CVM_DEV_FULL		0x4u	/* past the full ratio: no new data */
#define CVM_DEV_STATE_MASK	(CVM_DEV_UP | CVM_DEV_IN | CVM_DEV_FULL)
/* The device's class sits in state bits 8..15; 0 = none. */
#define CVM_DEV_CLASS_SHIFT	8
#define CVM_DEV_CLASS_MASK	(0xffu << CVM_DEV_CLASS_SHIFT)

static inline u32 cvm_dev_class(u32 state)
{
	return (state & CVM_DEV_CLASS_MASK) >> CVM_DEV_CLASS_SHIFT;
}

enum cvm_pool_kind {
	CVM_POOL_REPLICATED = 1,
	CVM_POOL_EC = 2,
};

struct cvm_device {
	u32 id;
	u32 weight;		/* 16.16 fixed point; 0 = holds nothing */
	u32 state;		/* CVM_DEV_* bits */
};

struct cvm_bucket {
	s32 id;			/* negative */
	u32 type;		/* enum cvm_item_type, HOST .. ROOT */
	u32 first_child;	/* index into cvm_map.children */
	u32 nr_children;
};

/*
 * struct cvm_pool - placement policy
 * @k: replicas (CVM_POOL_REPLICATED) or data chunks (CVM_POOL_EC)
 * @m: parity chunks (EC), 0 when replicated
 * @failure_domain: enum cvm_item_type the slots of a PG must not share;
 *	CVM_TYPE_DEVICE only asks for distinct devices
 * @pg_num: power of two, 1 .. CVM_MAX_PG_NUM
 * @min_size: copies (replicated) or shards (EC) a write must reach to be
 *	acknowledged; 0: the policy's default (cvm_pool_min_size())
 * @device_class: place only on devices of this class; 0: on any device
 */
struct cvm_pool {
	u32 id;
	u32 pg_num;
	u8 kind;
	u8 k;
	u8 m;
	u8 failure_domain;
	u8 min_size;
	u8 device_class;
};

/* Straw2 candidate: a bucket child with what a draw needs, in one line. */
struct cvm_child {
	u64 weight;
	s32 id;
	u32 index;		/* device index, or bucket index | BUCKET */
};
#define CVM_CHILD_BUCKET	0x80000000u

/*
 * struct cvm_pg_pin - a PG held on the devices that hold its data
 * @pool_id, @pg: the PG
 * @devs: its acting row, cvm_pool_width() entries (CVM_DEV_NONE for a slot
 *	whose copy is lost); entries beyond the width are CVM_DEV_NONE
 *
 * Placement ("up") moves a PG as soon as the tree changes; its data does
 * not.  A pin keeps the PG's I/O on the devices that hold its complete data
 * (Ceph's pg_temp) until they have been copied to the up row; cvmd then
 * cuts the pin in a later epoch.  cvm_pg_table_fill() gives pinned PGs
 * their pin; cvm_place_pg() always gives the up row.
 */
struct cvm_pg_pin {
	u32 pool_id;
	u32 pg;
	u32 devs[CVM_MAX_PG_WIDTH];
};

/*
 * struct cvm_pg_override - the balancer's device for one slot of a PG
 * @pool_id, @pg: the PG
 * @slot: the slot, below the pool's width
 * @dev: the device the slot gets instead of straw2's choice; in the map,
 *	in, weighing more than 0, and of the pool's class if it has one
 *
 * Straw2 alone leaves devices 20-40 % above their share and moves 2-3x the
 * least data when a device comes or goes (cvm-placement-stats).  cvmd's
 * balancer (userspace/lib/balancer.cc) corrects both with explicit choices
 * (Ceph's upmap): cvm_place_pg() gives straw2's row with these applied,
 * which is the PG's up row.  Overrides are part of the map, so the kernel
 * and cvmd compute the same rows.
 */
struct cvm_pg_override {
	u32 pool_id;
	u32 pg;
	u32 slot;
	u32 dev;
};

/*
 * struct cvm_map - one epoch of the cluster map
 *
 * The caller (or the decoder) fills epoch and the four arrays of the sizes
 * given to cvm_map_alloc(), then calls cvm_map_finalize(), which validates
 * everything and fills the remaining fields.  A finalized map is read-only
 * and may be shared by any number of readers.
 */
struct cvm_map {
	u64 epoch;
	u32 nr_devices;
	u32 nr_buckets;
	u32 nr_children;
	u32 nr_pools;
	struct cvm_device *devices;
	struct cvm_bucket *buckets;
	s32 *children;		/* item ids, per bucket first_child.. */
	struct cvm_pool *pools;

	/* Set by cvm_map_finalize(). */
	struct cvm_child *resolved;	/* parallel to children */
	u64 *bucket_weight;
	/*
	 * Per class pools ask for, classes[i]: the children's weights counting
	 * only devices of that class, class_weight[i * nr_children + child].
	 */
	u32 nr_classes;
	u8 classes[CVM_MAX_CLASSES];
	u64 *class_weight;
	u32 root;			/* bucket index */
	bool finalized;

	/* Pins, by (pool_id, pg) ascending; see cvm_map_alloc_pins(). */
	u32 nr_pins;
	struct cvm_pg_pin *pins;

	/* Overrides, by (pool_id, pg, slot) ascending; see alloc_overrides. */
	u32 nr_overrides;
	struct cvm_pg_override *overrides;
};

int cvm_map_alloc(struct cvm_map **mapp, u32 nr_devices, u32 nr_buckets,
		  u32 nr_children, u32 nr_pools, struct cvm_err *err);
int cvm_map_alloc_pins(struct cvm_map *map, u32 nr_pins,
		       struct cvm_err *err);
int cvm_map_alloc_overrides(struct cvm_map *map, u32 nr_overrides,
			    struct cvm_err *err);
void cvm_map_free(struct cvm_map *map);
int cvm_map_finalize(struct cvm_map *map, struct cvm_err *err);

int cvm_pool_check(const struct cvm_pool *pool, struct cvm_err *err);
const struct cvm_pool *cvm_map_pool(const struct cvm_map *map, u32 pool_id);

static inline u32 cvm_pool_width(const struct cvm_pool *pool)
{
	return pool->k + pool->m;
}

/*
 * Copies (shards) a write needs before it is acknowledged.  Defaults:
 * replicated(n) a majority, n - n/2 (Ceph's), so an acknowledged write
 * outlives any minority of failures; ec(k,m) k + 1 when m >= 2, so a write
 * acknowledged on the fewest shards still survives one more failure, and
 * k when m = 1 (k + 1 would be every shard: one failure would stop writes).
 */
static inline u32 cvm_pool_min_size(const struct cvm_pool *pool)
{
	if (pool->min_size)
		return pool->min_size;
	if (pool->kind == CVM_POOL_EC)
		return pool->m >= 2 ? pool->k + 1U : pool->k;
	return pool->k - pool->k / 2U;
}

/* PG of an object, the I/O path's one hash; @pg_num from a checked pool. */
u32 cvm_object_pg(u64 volume_id, u64 object_no, u32 pg_num);

int cvm_place_pg(const struct cvm_map *map, const struct cvm_pool *pool,
		 u32 pg, u32 *devs);
const struct cvm_pg_pin *cvm_map_pin(const struct cvm_map *map, u32 pool_id,
				     u32 pg);

/*
 * A PG table holds pg_num rows of cvm_pool_width() device ids, row pg at
 * table[pg * width].
 */
static inline size_t cvm_pg_table_entries(const struct cvm_pool *pool)
{
	return (size_t)pool->pg_num * cvm_pool_width(pool);
}

int cvm_pg_table_fill(const struct cvm_map *map, const struct cvm_pool *pool,
		      u32 *table, size_t nr_entries, struct cvm_err *err);
int cvm_pg_table_create(const struct cvm_map *map, u32 pool_id,
			u32 **tablep, size_t *nr_entriesp,
			struct cvm_err *err);
void cvm_pg_table_free(u32 *table);
u32 cvm_pg_table_crc(const u32 *table, size_t nr_entries);

#ifdef __cplusplus
}
#endif

#endif /* _CVM_PLACEMENT_H */
