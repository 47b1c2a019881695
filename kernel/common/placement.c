// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Cluster map validation and straw2 placement.  See placement.h for the
 * model; this file keeps to integer arithmetic and bounded loops so the
 * kernel can run it on a map it received from userspace.
 */
#include "placement.h"
#include "hash.h"

/*
 * log2_frac_q32[i] = round(2^32 * log2(1 + i / 256)), i = 0 .. 255.
 * Generated with Python: round((1 << 32) * math.log2(1 + i / 256)).
 */
static const u32 log2_frac_q32[256] = {
	0x00000000, 0x01709c47, 0x02dfca17, 0x044d8c46,
	0x05b9e5a1, 0x0724d8ef, 0x088e68eb, 0x09f6984a,
	0x0b5d69bb, 0x0cc2dfe2, 0x0e26fd5d, 0x0f89c4c2,
	0x10eb38a0, 0x124b5b7e, 0x13aa2fdd, 0x1507b836,
	0x1663f6fb, 0x17beee97, 0x1918a16e, 0x1a7111df,
	0x1bc84241, 0x1d1e34e3, 0x1e72ec11, 0x1fc66a0f,
	0x2118b11a, 0x2269c369, 0x23b9a32f, 0x25085296,
	0x2655d3c5, 0x27a228db, 0x28ed53f3, 0x2a375721,
	0x2b803474, 0x2cc7edf6, 0x2e0e85aa, 0x2f53fd90,
	0x309857a0, 0x31db95d0, 0x331dba0f, 0x345ec646,
	0x359ebc5b, 0x36dd9e2f, 0x381b6d9c, 0x39582c79,
	0x3a93dc98, 0x3bce7fc7, 0x3d0817cf, 0x3e40a672,
	0x3f782d72, 0x40aeae89, 0x41e42b6f, 0x4318a5d5,
	0x444c1f6b, 0x457e99db, 0x46b016ca, 0x47e097db,
	0x49101eac, 0x4a3eacd7, 0x4b6c43f1, 0x4c98e58e,
	0x4dc4933b, 0x4eef4e83, 0x501918ec, 0x5141f3fb,
	0x5269e12f, 0x5390e204, 0x54b6f7f1, 0x55dc246d,
	0x570068e8, 0x5823c6d1, 0x59463f92, 0x5a67d492,
	0x5b888736, 0x5ca858df, 0x5dc74aea, 0x5ee55eb1,
	0x6002958c, 0x611ef0cf, 0x623a71cc, 0x635519cf,
	0x646eea24, 0x6587e415, 0x66a008e4, 0x67b759d6,
	0x68cdd82a, 0x69e3851c, 0x6af861e6, 0x6c0c6fc0,
	0x6d1fafdd, 0x6e322370, 0x6f43cba8, 0x7054a9b1,
	0x7164beb5, 0x72740bdb, 0x73829249, 0x74905320,
	0x759d4f81, 0x76a98888, 0x77b4ff51, 0x78bfb4f4,
	0x79c9aa88, 0x7ad2e11f, 0x7bdb59cd, 0x7ce3159f,
	0x7dea15a3, 0x7ef05ae4, 0x7ff5e66a, 0x80fab93c,
	0x81fed45d, 0x830238d0, 0x8404e794, 0x8506e1a8,
	0x86082807, 0x8708bbaa, 0x88089d8b, 0x8907ce9d,
	0x8a064fd5, 0x8b042225, 0x8c01467c, 0x8cfdbdc8,
	0x8df988f5, 0x8ef4a8ed, 0x8fef1e98, 0x90e8eade,
	0x91e20ea1, 0x92da8ac6, 0x93d2602c, 0x94c98fb4,
	0x95c01a3a, 0x96b6009b, 0x97ab43af, 0x989fe451,
	0x9993e356, 0x9a874193, 0x9b79ffdb, 0x9c6c1f01,
	0x9d5d9fd5, 0x9e4e8325, 0x9f3ec9bd, 0xa02e746a,
	0xa11d83f5, 0xa20bf926, 0xa2f9d4c5, 0xa3e71797,
	0xa4d3c25e, 0xa5bfd5df, 0xa6ab52da, 0xa7963a0d,
	0xa8808c38, 0xa96a4a17, 0xaa537465, 0xab3c0bdc,
	0xac241135, 0xad0b8526, 0xadf26866, 0xaed8bba8,
	0xafbe7fa1, 0xb0a3b502, 0xb1885c7b, 0xb26c76bc,
	0xb3500472, 0xb433064b, 0xb5157cf3, 0xb5f76913,
	0xb6d8cb54, 0xb7b9a45e, 0xb899f4d9, 0xb979bd69,
	0xba58feb2, 0xbb37b959, 0xbc15edff, 0xbcf39d45,
	0xbdd0c7ca, 0xbead6e2d, 0xbf89910c, 0xc0653103,
	0xc1404eae, 0xc21aeaa6, 0xc2f50586, 0xc3ce9fe4,
	0xc4a7ba58, 0xc5805579, 0xc65871da, 0xc7301011,
	0xc80730b0, 0xc8ddd449, 0xc9b3fb6d, 0xca89a6ac,
	0xcb5ed695, 0xcc338bb7, 0xcd07c69e, 0xcddb87d6,
	0xceaecfeb, 0xcf819f66, 0xd053f6d2, 0xd125d6b7,
	0xd1f73f9c, 0xd2c83209, 0xd398ae81, 0xd468b58c,
	0xd53847ac, 0xd6076565, 0xd6d60f39, 0xd7a445a9,
	0xd8720936, 0xd93f5a60, 0xda0c39a5, 0xdad8a784,
	0xdba4a47b, 0xdc703104, 0xdd3b4d9d, 0xde05fac0,
	0xded038e6, 0xdf9a088a, 0xe0636a24, 0xe12c5e2b,
	0xe1f4e517, 0xe2bcff5e, 0xe384ad75, 0xe44befd0,
	0xe512c6e5, 0xe5d93326, 0xe69f3506, 0xe764ccf7,
	0xe829fb69, 0xe8eec0ce, 0xe9b31d94, 0xea77122b,
	0xeb3a9f02, 0xebfdc485, 0xecc08322, 0xed82db45,
	0xee44cd5a, 0xef0659cc, 0xefc78104, 0xf088436d,
	0xf148a170, 0xf2089b75, 0xf2c831e4, 0xf3876524,
	0xf446359b, 0xf504a3af, 0xf5c2afc6, 0xf6805a44,
	0xf73da38e, 0xf7fa8c05, 0xf8b7140f, 0xf9733c0c,
	0xfa2f045e, 0xfaea6d67, 0xfba57787, 0xfc60231e,
	0xfd1a708c, 0xfdd4602e, 0xfe8df264, 0xff47278b,
};

/*
 * -log2((u + 1) / 65536) in 32.32 fixed point, for a 16-bit hash u.
 *
 * u + 1 = 2^e * (1 + f) with f in [0, 1) as 15 bits.  The top 8 bits of f
 * index the table, the low 7 interpolate linearly to the next entry.  The
 * table is increasing, so the result is monotonic in u (what straw2 needs
 * for fairness); the interpolation error is below 3e-6.
 */
static u64 neg_log2_q32(u32 u)
{
	u32 v = u + 1;
	unsigned int e;
	u32 frac, idx, rem;
	u64 lo, hi;

	if (v >= 0x10000)
		return 0;
	e = cvm_ilog2(v);
	frac = (v << (15 - e)) & 0x7fff;
	idx = frac >> 7;
	rem = frac & 0x7f;
	lo = log2_frac_q32[idx];
	hi = idx == 255 ? 1ull << 32 : log2_frac_q32[idx + 1];
	return (16ull << 32) - (((u64)e << 32) + lo + (((hi - lo) * rem) >> 7));
}

/*
 * Straw2: every child with weight draws ln(u) / weight, the largest wins.
 * Computed as the smallest cost = -log2(u) / weight (the factor ln 2 does
 * not change the winner).  The cost is scaled by 2^24 so that weights of
 * up to 2^48 (the heaviest tree) keep 20 bits of resolution.  Returns the
 * winner's cvm_child.index, or CVM_DEV_NONE when every child weighs 0.
 * @cw: a class's child weights (cvm_map.class_weight), or NULL for the
 * whole tree's.
 */
static u32 straw2_choose(const struct cvm_map *map,
			 const struct cvm_bucket *b, const u64 *cw, u32 x,
			 u32 r)
{
	const struct cvm_child *c = &map->resolved[b->first_child];
	u32 best = CVM_DEV_NONE;
	u64 best_cost = 0;
	u32 i;

	for (i = 0; i < b->nr_children; i++) {
		const u64 weight = cw ? cw[b->first_child + i] : c[i].weight;
		u32 u;
		u64 cost;

		if (!weight)
			continue;
		u = cvm_hash32_3(CVM_SEED_STRAW2, x, (u32)c[i].id, r) & 0xffff;
		cost = div64_u64(neg_log2_q32(u) << 24, weight);
		if (best == CVM_DEV_NONE || cost < best_cost) {
			best = c[i].index;
			best_cost = cost;
		}
	}
	return best;
}

static u32 item_type(const struct cvm_map *map, u32 index)
{
	if (!(index & CVM_CHILD_BUCKET))
		return CVM_TYPE_DEVICE;
	return map->buckets[index & ~CVM_CHILD_BUCKET].type;
}

/*
 * Descend from @index until an item of type <= @stop.  Types strictly
 * decrease downwards (checked by cvm_map_finalize()), so this takes at
 * most CVM_TYPE_ROOT steps.
 */
static u32 descend(const struct cvm_map *map, const u64 *cw, u32 index,
		   u32 stop, u32 x, u32 r)
{
	while (index != CVM_DEV_NONE && item_type(map, index) > stop)
		index = straw2_choose(map,
				      &map->buckets[index & ~CVM_CHILD_BUCKET],
				      cw, x, r);
	return index;
}

/* The child weights @pool sees: its class's, or NULL for the whole tree. */
static const u64 *pool_weights(const struct cvm_map *map,
			       const struct cvm_pool *pool)
{
	u32 i;

	if (!pool->device_class)
		return NULL;
	for (i = 0; i < map->nr_classes; i++)
		if (map->classes[i] == pool->device_class)
			return map->class_weight + (size_t)i * map->nr_children;
	return NULL;	/* not reached: finalize gave every pool class one */
}

/*
 * Per-PG choice state.  blocked[i] is the first failure domain whose device
 * turned out to be out for slot i: no other slot may take that domain, so
 * a device going out changes exactly the slots that were on it (without
 * the block, a later slot that used to collide with the domain would now
 * take it and move too).
 */
struct pg_choice {
	u32 dev[CVM_MAX_PG_WIDTH];	/* device index or CVM_DEV_NONE */
	u32 domain[CVM_MAX_PG_WIDTH];
	u32 blocked[CVM_MAX_PG_WIDTH];
};

static bool domain_taken(const struct pg_choice *c, u32 width, u32 slot,
			 u32 fd)
{
	u32 i;

	for (i = 0; i < width; i++) {
		if (i == slot)
			continue;
		if ((c->dev[i] != CVM_DEV_NONE && c->domain[i] == fd) ||
		    c->blocked[i] == fd)
			return true;
	}
	return false;
}

/* The first override of PG @pg of pool @pool_id, or NULL; they are sorted. */
static const struct cvm_pg_override *
first_override(const struct cvm_map *map, u32 pool_id, u32 pg)
{
	u32 lo = 0, hi = map->nr_overrides;

	while (lo < hi) {
		const u32 mid = lo + (hi - lo) / 2;
		const struct cvm_pg_override *o = &map->overrides[mid];

		if (o->pool_id < pool_id ||
		    (o->pool_id == pool_id && o->pg < pg))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < map->nr_overrides && map->overrides[lo].pool_id == pool_id &&
	    map->overrides[lo].pg == pg)
		return &map->overrides[lo];
	return NULL;
}

/*
 * The balancer's overrides of one PG, each replacing one slot's device.  A
 * set that would name a device twice is ignored as a whole and straw2's row
 * stands (cvmd refuses to seal one): a row never holds a device twice.
 */
static void apply_overrides(const struct cvm_map *map,
			    const struct cvm_pool *pool, u32 pg, u32 *devs)
{
	const struct cvm_pg_override *o = first_override(map, pool->id, pg);
	const struct cvm_pg_override *end = map->overrides + map->nr_overrides;
	const u32 width = cvm_pool_width(pool);
	u32 row[CVM_MAX_PG_WIDTH];
	u32 i, j;

	if (!o)
		return;
	memcpy(row, devs, width * sizeof(*row));
	for (; o < end && o->pool_id == pool->id && o->pg == pg; o++)
		row[o->slot] = o->dev;
	for (i = 0; i < width; i++)
		for (j = 0; j < i; j++)
			if (row[i] != CVM_DEV_NONE && row[i] == row[j])
				return;
	memcpy(devs, row, width * sizeof(*row));
}

u32 cvm_object_pg(u64 volume_id, u64 object_no, u32 pg_num)
{
	return cvm_hash64_2(CVM_SEED_OBJECT_PG, volume_id, object_no) &
	       (pg_num - 1);
}

/*
 * cvm_place_pg() - ordered devices of one PG
 * @map: finalized map
 * @pool: a pool of @map
 * @pg: 0 .. pool->pg_num - 1
 * @devs: cvm_pool_width(@pool) device ids out, CVM_DEV_NONE for a slot no
 *	in device could be found for (too many devices out)
 *
 * Return: 0, or -EINVAL for an unfinalized map or a PG out of range.
 */
int cvm_place_pg(const struct cvm_map *map, const struct cvm_pool *pool,
		 u32 pg, u32 *devs)
{
	struct pg_choice c;
	const u32 width = cvm_pool_width(pool);
	const u32 root = map->root | CVM_CHILD_BUCKET;
	const u64 *cw;
	u32 x, round, slot, filled = 0;

	if (!map->finalized || pg >= pool->pg_num ||
	    width > CVM_MAX_PG_WIDTH)
		return -EINVAL;
	cw = pool_weights(map, pool);

	x = cvm_hash32_2(CVM_SEED_PG_INPUT, pool->id, pg);
	for (slot = 0; slot < width; slot++) {
		c.dev[slot] = CVM_DEV_NONE;
		c.blocked[slot] = CVM_DEV_NONE;
	}

	for (round = 0; round < CVM_CHOOSE_ROUNDS && filled < width; round++) {
		for (slot = 0; slot < width; slot++) {
			const u32 r = slot + round * width;
			u32 fd, dev;

			if (c.dev[slot] != CVM_DEV_NONE)
				continue;
			fd = descend(map, cw, root, pool->failure_domain, x,
				     r);
			if (fd == CVM_DEV_NONE ||
			    domain_taken(&c, width, slot, fd))
				continue;
			dev = descend(map, cw, fd, CVM_TYPE_DEVICE, x, r);
			if (dev == CVM_DEV_NONE)
				continue;
			if (!(map->devices[dev].state & CVM_DEV_IN)) {
				if (c.blocked[slot] == CVM_DEV_NONE)
					c.blocked[slot] = fd;
				continue;
			}
			c.domain[slot] = fd;
			c.dev[slot] = dev;
			filled++;
		}
	}

	for (slot = 0; slot < width; slot++)
		devs[slot] = c.dev[slot] == CVM_DEV_NONE ? CVM_DEV_NONE :
			     map->devices[c.dev[slot]].id;
	apply_overrides(map, pool, pg, devs);
	return 0;
}

/* The pin of PG @pg of pool @pool_id, or NULL; pins are sorted. */
const struct cvm_pg_pin *cvm_map_pin(const struct cvm_map *map, u32 pool_id,
				     u32 pg)
{
	u32 lo = 0, hi = map->nr_pins;

	while (lo < hi) {
		const u32 mid = lo + (hi - lo) / 2;
		const struct cvm_pg_pin *p = &map->pins[mid];

		if (p->pool_id == pool_id && p->pg == pg)
			return p;
		if (p->pool_id < pool_id ||
		    (p->pool_id == pool_id && p->pg < pg))
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct cvm_pool *cvm_map_pool(const struct cvm_map *map, u32 pool_id)
{
	u32 i;

	for (i = 0; i < map->nr_pools; i++)
		if (map->pools[i].id == pool_id)
			return &map->pools[i];
	return NULL;
}

/*
 * cvm_pg_table_fill() - place every PG of @pool
 * @table: cvm_pg_table_entries(@pool) entries, @nr_entries of them
 *
 * A pinned PG gets its pin (the devices holding its data), the others their
 * up row.
 *
 * Return: 0, or -EINVAL with @err set.
 */
int cvm_pg_table_fill(const struct cvm_map *map, const struct cvm_pool *pool,
		      u32 *table, size_t nr_entries, struct cvm_err *err)
{
	u32 pg, i;
	int ret;

	if (!map->finalized)
		return cvm_fail(err, -EINVAL, "map is not finalized", 0);
	ret = cvm_pool_check(pool, err);
	if (ret)
		return ret;
	if (nr_entries != cvm_pg_table_entries(pool))
		return cvm_fail(err, -EINVAL,
				"PG table size does not match the pool",
				nr_entries);

	for (pg = 0; pg < pool->pg_num; pg++) {
		ret = cvm_place_pg(map, pool, pg, table + (size_t)pg *
				   cvm_pool_width(pool));
		if (ret)
			return cvm_fail(err, ret, "PG placement failed", pg);
		if ((pg & 1023) == 1023)
			cvm_cond_resched();
	}
	for (i = 0; i < map->nr_pins; i++) {
		const struct cvm_pg_pin *pin = &map->pins[i];

		if (pin->pool_id == pool->id && pin->pg < pool->pg_num)
			memcpy(table + (size_t)pin->pg * cvm_pool_width(pool),
			       pin->devs, cvm_pool_width(pool) * sizeof(u32));
	}
	return 0;
}

/*
 * cvm_pg_table_create() - allocate and fill the PG table of pool @pool_id
 *
 * Return: 0 with *@tablep (free with cvm_pg_table_free()) and
 * *@nr_entriesp set, -ENOENT for an unknown pool, -ENOMEM, or -EINVAL.
 */
int cvm_pg_table_create(const struct cvm_map *map, u32 pool_id,
			u32 **tablep, size_t *nr_entriesp,
			struct cvm_err *err)
{
	const struct cvm_pool *pool = cvm_map_pool(map, pool_id);
	size_t nr_entries;
	u32 *table;
	int ret;

	if (!pool)
		return cvm_fail(err, -ENOENT, "no such pool", pool_id);
	ret = cvm_pool_check(pool, err);
	if (ret)
		return ret;
	nr_entries = cvm_pg_table_entries(pool);
	table = cvm_zalloc(nr_entries * sizeof(*table));
	if (!table)
		return cvm_fail(err, -ENOMEM, "out of memory for PG table",
				nr_entries);
	ret = cvm_pg_table_fill(map, pool, table, nr_entries, err);
	if (ret) {
		cvm_free(table);
		return ret;
	}
	*tablep = table;
	*nr_entriesp = nr_entries;
	return 0;
}

void cvm_pg_table_free(u32 *table)
{
	cvm_free(table);
}

/*
 * CRC32C of a PG table's entries as little-endian u32s: lets the daemon and
 * the kernel (and the test vectors) compare whole tables cheaply.
 */
u32 cvm_pg_table_crc(const u32 *table, size_t nr_entries)
{
	u8 buf[256];
	u32 crc = ~0u;

	while (nr_entries) {
		size_t n = nr_entries < 64 ? nr_entries : 64;
		size_t i;

		for (i = 0; i < n; i++)
			cvm_put_le32(buf + 4 * i, table[i]);
		crc = cvm_crc32c(crc, buf, 4 * n);
		table += n;
		nr_entries -= n;
	}
	return ~crc;
}

/*
 * cvm_map_alloc() - allocate a map with room for the given counts
 *
 * One zeroed allocation holds the map and all its arrays; the caller fills
 * devices, buckets, children and pools, then calls cvm_map_finalize().
 *
 * Return: 0, -E2BIG when a count exceeds its limit, or -ENOMEM.
 */
int cvm_map_alloc(struct cvm_map **mapp, u32 nr_devices, u32 nr_buckets,
		  u32 nr_children, u32 nr_pools, struct cvm_err *err)
{
	struct cvm_map *map;
	size_t size;
	u8 *p;

	if (nr_devices > CVM_MAX_DEVICES)
		return cvm_fail(err, -E2BIG, "too many devices", nr_devices);
	if (nr_buckets > CVM_MAX_BUCKETS)
		return cvm_fail(err, -E2BIG, "too many buckets", nr_buckets);
	if (nr_children > CVM_MAX_DEVICES + CVM_MAX_BUCKETS)
		return cvm_fail(err, -E2BIG, "too many bucket children",
				nr_children);
	if (nr_pools > CVM_MAX_POOLS)
		return cvm_fail(err, -E2BIG, "too many pools", nr_pools);

	/* 8-byte aligned arrays first; the limits keep size from overflow. */
	size = sizeof(*map) +
	       (size_t)nr_children * sizeof(struct cvm_child) +
	       (size_t)nr_buckets * sizeof(u64) +
	       (size_t)nr_devices * sizeof(struct cvm_device) +
	       (size_t)nr_buckets * sizeof(struct cvm_bucket) +
	       (size_t)nr_pools * sizeof(struct cvm_pool) +
	       (size_t)nr_children * sizeof(s32);
	map = cvm_zalloc(size);
	if (!map)
		return cvm_fail(err, -ENOMEM, "out of memory for map", size);

	p = (u8 *)(map + 1);
	map->resolved = (struct cvm_child *)p;
	p += (size_t)nr_children * sizeof(struct cvm_child);
	map->bucket_weight = (u64 *)p;
	p += (size_t)nr_buckets * sizeof(u64);
	map->devices = (struct cvm_device *)p;
	p += (size_t)nr_devices * sizeof(struct cvm_device);
	map->buckets = (struct cvm_bucket *)p;
	p += (size_t)nr_buckets * sizeof(struct cvm_bucket);
	map->pools = (struct cvm_pool *)p;
	p += (size_t)nr_pools * sizeof(struct cvm_pool);
	map->children = (s32 *)p;

	map->nr_devices = nr_devices;
	map->nr_buckets = nr_buckets;
	map->nr_children = nr_children;
	map->nr_pools = nr_pools;
	*mapp = map;
	return 0;
}

/*
 * cvm_map_alloc_pins() - room for @nr_pins pins in an unfinalized map
 *
 * The caller fills them (sorted by pool and PG); cvm_map_finalize() checks
 * them against the pools and devices.
 *
 * Return: 0, -E2BIG, -EINVAL (pins already allocated) or -ENOMEM.
 */
int cvm_map_alloc_pins(struct cvm_map *map, u32 nr_pins,
		       struct cvm_err *err)
{
	if (map->pins || map->finalized)
		return cvm_fail(err, -EINVAL, "map pins already set", 0);
	if (nr_pins > CVM_MAX_PINS)
		return cvm_fail(err, -E2BIG, "too many pinned PGs", nr_pins);
	if (!nr_pins)
		return 0;
	map->pins = cvm_zalloc((size_t)nr_pins * sizeof(*map->pins));
	if (!map->pins)
		return cvm_fail(err, -ENOMEM, "out of memory for map pins",
				nr_pins);
	map->nr_pins = nr_pins;
	return 0;
}

/*
 * cvm_map_alloc_overrides() - room for @nr_overrides overrides
 *
 * The caller fills them (sorted by pool, PG and slot); cvm_map_finalize()
 * checks them against the pools and devices.
 *
 * Return: 0, -E2BIG, -EINVAL (already allocated) or -ENOMEM.
 */
int cvm_map_alloc_overrides(struct cvm_map *map, u32 nr_overrides,
			    struct cvm_err *err)
{
	if (map->overrides || map->finalized)
		return cvm_fail(err, -EINVAL, "map overrides already set", 0);
	if (nr_overrides > CVM_MAX_OVERRIDES)
		return cvm_fail(err, -E2BIG, "too many PG overrides",
				nr_overrides);
	if (!nr_overrides)
		return 0;
	map->overrides = cvm_zalloc((size_t)nr_overrides *
				    sizeof(*map->overrides));
	if (!map->overrides)
		return cvm_fail(err, -ENOMEM, "out of memory for map overrides",
				nr_overrides);
	map->nr_overrides = nr_overrides;
	return 0;
}

void cvm_map_free(struct cvm_map *map)
{
	if (map) {
		cvm_free(map->class_weight);
		cvm_free(map->pins);
		cvm_free(map->overrides);
	}
	cvm_free(map);
}

/*
 * cvm_pool_check() - refuse a policy placement cannot honour
 *
 * Return: 0 or -EINVAL with @err naming the bad field.
 */
int cvm_pool_check(const struct cvm_pool *pool, struct cvm_err *err)
{
	switch (pool->kind) {
	case CVM_POOL_REPLICATED:
		if (pool->k < 1 || pool->k > CVM_MAX_REPLICAS)
			return cvm_fail(err, -EINVAL,
					"replica count must be 1 to 5",
					pool->k);
		if (pool->m)
			return cvm_fail(err, -EINVAL,
					"replicated pool with parity chunks",
					pool->m);
		break;
	case CVM_POOL_EC:
		if (pool->k < CVM_EC_MIN_K || pool->k > CVM_EC_MAX_K)
			return cvm_fail(err, -EINVAL,
					"EC data chunks k must be 2 to 8",
					pool->k);
		if (pool->m < 1 || pool->m > CVM_EC_MAX_M)
			return cvm_fail(err, -EINVAL,
					"EC parity chunks m must be 1 to 4",
					pool->m);
		if (cvm_pool_width(pool) > CVM_MAX_PG_WIDTH)
			return cvm_fail(err, -EINVAL,
					"EC k + m exceeds 12",
					cvm_pool_width(pool));
		break;
	default:
		return cvm_fail(err, -EINVAL, "unknown pool kind", pool->kind);
	}
	if (pool->min_size &&
	    (pool->min_size > cvm_pool_width(pool) ||
	     (pool->kind == CVM_POOL_EC && pool->min_size < pool->k)))
		return cvm_fail(err, -EINVAL,
				"min_size must be 1 to the replica count (EC: k to k + m)",
				pool->min_size);
	if (pool->failure_domain > CVM_TYPE_ROW)
		return cvm_fail(err, -EINVAL,
				"failure domain must be device, host, rack or row",
				pool->failure_domain);
	if (!pool->pg_num || pool->pg_num > CVM_MAX_PG_NUM ||
	    (pool->pg_num & (pool->pg_num - 1)))
		return cvm_fail(err, -EINVAL,
				"pg_num must be a power of two up to 2^20",
				pool->pg_num);
	return 0;
}

/* Scratch space for cvm_map_finalize(), freed before it returns. */
struct finalize_scratch {
	u32 dev_index[CVM_MAX_DEVICES];		/* id -> index */
	u32 bucket_index[CVM_MAX_BUCKETS];	/* -1 - id -> index */
	u32 *dev_parent;			/* index -> parent bucket */
	u32 *bucket_parent;
	u32 *queue;				/* breadth-first walk */
	bool *reached;				/* bucket index -> from root */
};

static int check_items(struct cvm_map *map, struct finalize_scratch *s,
		       struct cvm_err *err)
{
	bool have_root = false;
	u32 i;

	if (!map->nr_devices)
		return cvm_fail(err, -EINVAL, "map has no devices", 0);
	if (!map->nr_buckets)
		return cvm_fail(err, -EINVAL, "map has no buckets", 0);

	for (i = 0; i < map->nr_devices; i++) {
		const struct cvm_device *d = &map->devices[i];

		if (d->id >= CVM_MAX_DEVICES)
			return cvm_fail(err, -EINVAL,
					"device id out of range", d->id);
		if (d->state & ~(CVM_DEV_STATE_MASK | CVM_DEV_CLASS_MASK))
			return cvm_fail(err, -EINVAL,
					"unknown device state bits", d->id);
		if (s->dev_index[d->id] != CVM_DEV_NONE)
			return cvm_fail(err, -EINVAL, "duplicate device id",
					d->id);
		s->dev_index[d->id] = i;
	}

	for (i = 0; i < map->nr_buckets; i++) {
		const struct cvm_bucket *b = &map->buckets[i];

		if (b->id >= 0 || b->id < -CVM_MAX_BUCKETS)
			return cvm_fail(err, -EINVAL,
					"bucket id out of range", b->id);
		if (b->type < CVM_TYPE_HOST || b->type > CVM_TYPE_ROOT)
			return cvm_fail(err, -EINVAL, "unknown bucket type",
					b->id);
		if (b->nr_children > CVM_MAX_BUCKET_CHILDREN)
			return cvm_fail(err, -E2BIG,
					"bucket has too many children", b->id);
		if ((u64)b->first_child + b->nr_children > map->nr_children)
			return cvm_fail(err, -EINVAL,
					"bucket children out of range", b->id);
		if (s->bucket_index[-1 - b->id] != CVM_DEV_NONE)
			return cvm_fail(err, -EINVAL, "duplicate bucket id",
					b->id);
		s->bucket_index[-1 - b->id] = i;
		if (b->type == CVM_TYPE_ROOT) {
			if (have_root)
				return cvm_fail(err, -EINVAL,
						"more than one root bucket",
						b->id);
			have_root = true;
			map->root = i;
		}
	}
	if (!have_root)
		return cvm_fail(err, -EINVAL, "no root bucket", 0);
	return 0;
}

/* Resolve child ids and record each item's single parent. */
static int link_children(struct cvm_map *map, struct finalize_scratch *s,
			 struct cvm_err *err)
{
	u32 i, j;

	for (i = 0; i < map->nr_buckets; i++) {
		const struct cvm_bucket *b = &map->buckets[i];

		for (j = 0; j < b->nr_children; j++) {
			const u32 pos = b->first_child + j;
			const s32 id = map->children[pos];
			u32 index, *parent;

			if (id >= 0 && id < CVM_MAX_DEVICES &&
			    s->dev_index[id] != CVM_DEV_NONE) {
				index = s->dev_index[id];
				parent = &s->dev_parent[index];
			} else if (id < 0 && id >= -CVM_MAX_BUCKETS &&
				   s->bucket_index[-1 - id] != CVM_DEV_NONE) {
				index = s->bucket_index[-1 - id];
				parent = &s->bucket_parent[index];
				index |= CVM_CHILD_BUCKET;
			} else {
				return cvm_fail(err, -EINVAL,
						"child is not a known device or bucket",
						id);
			}
			if (*parent == i)
				return cvm_fail(err, -EINVAL,
						"child listed twice in a bucket",
						id);
			if (*parent != CVM_DEV_NONE)
				return cvm_fail(err, -EINVAL,
						"item has two parent buckets",
						id);
			*parent = i;
			map->resolved[pos].id = id;
			map->resolved[pos].index = index;
		}
	}
	return 0;
}

/*
 * Every bucket must hang off the root.  Walk down from the root; for the
 * first bucket not reached, follow its parents: within nr_buckets steps
 * they either end at a parentless bucket (an orphan subtree) or go round.
 */
static int check_tree(struct cvm_map *map, struct finalize_scratch *s,
		      struct cvm_err *err)
{
	u32 head = 0, tail = 0, i, j, b;

	for (i = 0; i < map->nr_devices; i++)
		if (s->dev_parent[i] == CVM_DEV_NONE)
			return cvm_fail(err, -EINVAL,
					"device is not in any host",
					map->devices[i].id);

	if (s->bucket_parent[map->root] == CVM_DEV_NONE)
		s->queue[tail++] = map->root;
	while (head < tail) {
		const struct cvm_bucket *p = &map->buckets[s->queue[head++]];

		s->reached[p - map->buckets] = true;
		for (j = 0; j < p->nr_children; j++) {
			const struct cvm_child *c =
				&map->resolved[p->first_child + j];

			if (c->index & CVM_CHILD_BUCKET)
				s->queue[tail++] = c->index & ~CVM_CHILD_BUCKET;
		}
	}
	if (tail == map->nr_buckets)
		return 0;

	for (b = 0; s->reached[b]; b++)
		;
	for (i = 0; i < map->nr_buckets; i++) {
		if (s->bucket_parent[b] == CVM_DEV_NONE)
			return cvm_fail(err, -EINVAL,
					"bucket is not connected to the root",
					map->buckets[b].id);
		b = s->bucket_parent[b];
	}
	return cvm_fail(err, -ELOOP, "loop in the bucket tree",
			map->buckets[b].id);
}

/* Types decrease downwards; hosts hold devices and nothing else does. */
static int check_types(const struct cvm_map *map, struct cvm_err *err)
{
	u32 i, j;

	for (i = 0; i < map->nr_buckets; i++) {
		const struct cvm_bucket *b = &map->buckets[i];

		for (j = 0; j < b->nr_children; j++) {
			const struct cvm_child *c =
				&map->resolved[b->first_child + j];
			const u32 type = item_type(map, c->index);

			if (b->type == CVM_TYPE_HOST && type != CVM_TYPE_DEVICE)
				return cvm_fail(err, -EINVAL,
						"host bucket holds a bucket",
						c->id);
			if (b->type != CVM_TYPE_HOST && type == CVM_TYPE_DEVICE)
				return cvm_fail(err, -EINVAL,
						"device outside a host bucket",
						c->id);
			if (type >= b->type)
				return cvm_fail(err, -EINVAL,
						"bucket type not below its parent's",
						c->id);
		}
	}
	return 0;
}

/* Bottom-up by type, so children are summed before their parents. */
static void sum_weights(struct cvm_map *map)
{
	u32 type, i, j;

	for (type = CVM_TYPE_HOST; type <= CVM_TYPE_ROOT; type++) {
		for (i = 0; i < map->nr_buckets; i++) {
			const struct cvm_bucket *b = &map->buckets[i];
			struct cvm_child *c = &map->resolved[b->first_child];
			u64 sum = 0;

			if (b->type != type)
				continue;
			for (j = 0; j < b->nr_children; j++) {
				const u32 idx = c[j].index & ~CVM_CHILD_BUCKET;

				if (c[j].index & CVM_CHILD_BUCKET)
					c[j].weight = map->bucket_weight[idx];
				else
					c[j].weight = map->devices[idx].weight;
				sum += c[j].weight;
			}
			map->bucket_weight[i] = sum;
		}
	}
}

/* Adds @cls to the map's classes; -E2BIG past CVM_MAX_CLASSES. */
static int add_class(struct cvm_map *map, u8 cls, struct cvm_err *err)
{
	u32 n;

	for (n = 0; n < map->nr_classes; n++)
		if (map->classes[n] == cls)
			return 0;
	if (map->nr_classes == CVM_MAX_CLASSES)
		return cvm_fail(err, -E2BIG,
				"pools ask for more than 8 device classes", cls);
	map->classes[map->nr_classes++] = cls;
	return 0;
}

/*
 * Per class pools ask for, the children's weights counting only the class's
 * devices: the bottom-up sum of sum_weights(), once per class.
 */
static void sum_class_weights(struct cvm_map *map, u32 n, u64 *sum)
{
	u64 *cw = map->class_weight + (size_t)n * map->nr_children;
	u32 type, i, j;

	for (type = CVM_TYPE_HOST; type <= CVM_TYPE_ROOT; type++) {
		for (i = 0; i < map->nr_buckets; i++) {
			const struct cvm_bucket *b = &map->buckets[i];
			const struct cvm_child *c =
				&map->resolved[b->first_child];
			u64 total = 0;

			if (b->type != type)
				continue;
			for (j = 0; j < b->nr_children; j++) {
				const u32 idx = c[j].index & ~CVM_CHILD_BUCKET;
				u64 w = 0;

				if (c[j].index & CVM_CHILD_BUCKET)
					w = sum[idx];
				else if (cvm_dev_class(map->devices[idx].state) ==
					 map->classes[n])
					w = map->devices[idx].weight;
				cw[b->first_child + j] = w;
				total += w;
			}
			sum[i] = total;
		}
	}
}

static int class_weights(struct cvm_map *map, struct cvm_err *err)
{
	u64 *sum;
	u32 i;
	int ret;

	/* A finalize that failed earlier may have left some. */
	cvm_free(map->class_weight);
	map->class_weight = NULL;
	map->nr_classes = 0;

	for (i = 0; i < map->nr_pools; i++) {
		if (!map->pools[i].device_class)
			continue;
		ret = add_class(map, map->pools[i].device_class, err);
		if (ret)
			return ret;
	}
	if (!map->nr_classes)
		return 0;
	map->class_weight = cvm_zalloc((size_t)map->nr_classes *
				       map->nr_children * sizeof(u64));
	sum = cvm_zalloc((size_t)map->nr_buckets * sizeof(u64));
	if (!map->class_weight || !sum) {
		cvm_free(sum);
		return cvm_fail(err, -ENOMEM,
				"out of memory for class weights", 0);
	}
	for (i = 0; i < map->nr_classes; i++)
		sum_class_weights(map, i, sum);
	cvm_free(sum);
	return 0;
}

/*
 * Failure domains of each level L, and those with weight as the whole tree
 * (@cw NULL) or a class (@cw its weights) weighs them.  A failure domain of
 * level L is an item of type <= L whose parent's type is > L.
 */
static void count_domains(const struct cvm_map *map, const u64 *cw,
			  u32 *domains, u32 *weighted)
{
	u32 level, i, j;

	for (i = 0; i < map->nr_buckets; i++) {
		const struct cvm_bucket *b = &map->buckets[i];

		for (j = 0; j < b->nr_children; j++) {
			const u32 child = b->first_child + j;
			const u32 type =
				item_type(map, map->resolved[child].index);
			const u64 w = cw ? cw[child] :
				      map->resolved[child].weight;

			for (level = type; level < b->type; level++) {
				domains[level]++;
				if (w)
					weighted[level]++;
			}
		}
	}
}

/*
 * Each pool needs as many failure domains as PG slots, and as many of them
 * with weight (in its class, if it asks for one), or some slots could never
 * be filled.
 */
static int check_pools(const struct cvm_map *map, struct cvm_err *err)
{
	u32 domains[CVM_TYPE_ROOT] = { 0 };
	u32 weighted[CVM_TYPE_ROOT] = { 0 };
	u32 level, i, j;
	int ret;

	if (!map->bucket_weight[map->root])
		return cvm_fail(err, -EINVAL, "total weight is zero", 0);
	count_domains(map, NULL, domains, weighted);

	for (i = 0; i < map->nr_pools; i++) {
		const struct cvm_pool *pool = &map->pools[i];
		u32 class_domains[CVM_TYPE_ROOT] = { 0 };
		u32 class_weighted[CVM_TYPE_ROOT] = { 0 };
		const u32 *have = weighted;

		ret = cvm_pool_check(pool, err);
		if (ret)
			return ret;
		if (pool->device_class) {
			count_domains(map, pool_weights(map, pool),
				      class_domains, class_weighted);
			have = class_weighted;
		}
		for (j = 0; j < i; j++)
			if (map->pools[j].id == pool->id)
				return cvm_fail(err, -EINVAL,
						"duplicate pool id", pool->id);
		level = pool->failure_domain;
		if (domains[level] < cvm_pool_width(pool))
			return cvm_fail(err, -EINVAL,
					"pool has more slots than failure domains",
					pool->id);
		if (have[level] < cvm_pool_width(pool))
			return cvm_fail(err, -EINVAL,
					pool->device_class ?
					"pool has more slots than failure domains with devices of its class" :
					"pool has more slots than failure domains with weight",
					pool->id);
	}
	return 0;
}

/*
 * Pins name a pool of the map and one of its PGs, in ascending order, and
 * within the pool's width distinct devices of the map (or CVM_DEV_NONE);
 * the entries beyond the width are CVM_DEV_NONE.
 */
static int check_pins(const struct cvm_map *map,
		      const struct finalize_scratch *s, struct cvm_err *err)
{
	const struct cvm_pg_pin *prev = NULL;
	u32 i, j, k;

	for (i = 0; i < map->nr_pins; i++) {
		const struct cvm_pg_pin *pin = &map->pins[i];
		const struct cvm_pool *pool = cvm_map_pool(map, pin->pool_id);
		u32 width;

		if (!pool)
			return cvm_fail(err, -EINVAL, "pin of an unknown pool",
					pin->pool_id);
		if (pin->pg >= pool->pg_num)
			return cvm_fail(err, -EINVAL, "pin of a PG beyond pg_num",
					pin->pg);
		if (prev && (prev->pool_id > pin->pool_id ||
			     (prev->pool_id == pin->pool_id &&
			      prev->pg >= pin->pg)))
			return cvm_fail(err, -EINVAL,
					"pins not in ascending order", pin->pg);
		prev = pin;
		width = cvm_pool_width(pool);
		for (j = 0; j < CVM_MAX_PG_WIDTH; j++) {
			const u32 dev = pin->devs[j];

			if (dev == CVM_DEV_NONE)
				continue;
			if (j >= width)
				return cvm_fail(err, -EINVAL,
						"pin has devices beyond the pool's width",
						pin->pg);
			if (dev >= CVM_MAX_DEVICES ||
			    s->dev_index[dev] == CVM_DEV_NONE)
				return cvm_fail(err, -EINVAL,
						"pin names a device not in the map",
						dev);
			for (k = 0; k < j; k++)
				if (pin->devs[k] == dev)
					return cvm_fail(err, -EINVAL,
							"pin names a device twice",
							dev);
		}
	}
	return 0;
}

/*
 * Overrides name a pool of the map, one of its PGs and a slot within its
 * width, in strictly ascending order, and a device of the map that may take
 * data for the pool: in, weighing more than 0, of the pool's class.
 */
static int check_overrides(const struct cvm_map *map,
			   const struct finalize_scratch *s,
			   struct cvm_err *err)
{
	const struct cvm_pg_override *prev = NULL;
	const struct cvm_pool *pool = NULL;
	u32 i;

	for (i = 0; i < map->nr_overrides; i++) {
		const struct cvm_pg_override *o = &map->overrides[i];
		const struct cvm_device *d;

		if (!pool || pool->id != o->pool_id)
			pool = cvm_map_pool(map, o->pool_id);
		if (!pool)
			return cvm_fail(err, -EINVAL,
					"override of an unknown pool",
					o->pool_id);
		if (o->pg >= pool->pg_num)
			return cvm_fail(err, -EINVAL,
					"override of a PG beyond pg_num", o->pg);
		if (o->slot >= cvm_pool_width(pool))
			return cvm_fail(err, -EINVAL,
					"override of a slot beyond the pool's width",
					o->slot);
		if (prev && (prev->pool_id > o->pool_id ||
			     (prev->pool_id == o->pool_id &&
			      (prev->pg > o->pg ||
			       (prev->pg == o->pg && prev->slot >= o->slot)))))
			return cvm_fail(err, -EINVAL,
					"overrides not in ascending order",
					o->pg);
		prev = o;
		if (o->dev >= CVM_MAX_DEVICES ||
		    s->dev_index[o->dev] == CVM_DEV_NONE)
			return cvm_fail(err, -EINVAL,
					"override names a device not in the map",
					o->dev);
		d = &map->devices[s->dev_index[o->dev]];
		if (!(d->state & CVM_DEV_IN) || !d->weight)
			return cvm_fail(err, -EINVAL,
					"override names a device that takes no data",
					o->dev);
		if (pool->device_class &&
		    cvm_dev_class(d->state) != pool->device_class)
			return cvm_fail(err, -EINVAL,
					"override names a device of another class",
					o->dev);
	}
	return 0;
}

/*
 * cvm_map_finalize() - validate a filled map and prepare it for placement
 *
 * Checks ids and their ranges, duplicates, dangling and repeated children,
 * that the buckets form one tree under a single root with types decreasing
 * downwards, the total weight, and each pool's policy against the tree.
 *
 * Return: 0, -ENOMEM, or -EINVAL/-E2BIG/-ELOOP with @err naming the first
 * problem found and the offending id.
 */
int cvm_map_finalize(struct cvm_map *map, struct cvm_err *err)
{
	struct finalize_scratch *s;
	u32 i;
	int ret;

	if (map->finalized)
		return cvm_fail(err, -EINVAL, "map is already finalized", 0);
	if (map->nr_devices > CVM_MAX_DEVICES ||
	    map->nr_buckets > CVM_MAX_BUCKETS ||
	    map->nr_pools > CVM_MAX_POOLS)
		return cvm_fail(err, -E2BIG, "map counts exceed limits", 0);

	s = cvm_zalloc(sizeof(*s) + (size_t)map->nr_devices * sizeof(u32) +
		       (size_t)map->nr_buckets *
		       (2 * sizeof(u32) + sizeof(bool)));
	if (!s)
		return cvm_fail(err, -ENOMEM, "out of memory for map checks",
				0);
	s->dev_parent = (u32 *)(s + 1);
	s->bucket_parent = s->dev_parent + map->nr_devices;
	s->queue = s->bucket_parent + map->nr_buckets;
	s->reached = (bool *)(s->queue + map->nr_buckets);
	memset(s->dev_index, 0xff, sizeof(s->dev_index));
	memset(s->bucket_index, 0xff, sizeof(s->bucket_index));
	for (i = 0; i < map->nr_devices; i++)
		s->dev_parent[i] = CVM_DEV_NONE;
	for (i = 0; i < map->nr_buckets; i++)
		s->bucket_parent[i] = CVM_DEV_NONE;

	ret = check_items(map, s, err);
	if (!ret)
		ret = link_children(map, s, err);
	if (!ret)
		ret = check_tree(map, s, err);
	if (!ret)
		ret = check_types(map, err);
	if (!ret) {
		sum_weights(map);
		ret = class_weights(map, err);
	}
	if (!ret)
		ret = check_pools(map, err);
	if (!ret)
		ret = check_pins(map, s, err);
	if (!ret)
		ret = check_overrides(map, s, err);
	cvm_free(s);
	if (!ret)
		map->finalized = true;
	return ret;
}
