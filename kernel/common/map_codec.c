// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Cluster map encoder and decoder.  The layout is documented in
 * map_codec.h; the decoder must be safe on any input, since the kernel
 * receives it from userspace.
 */
#include "map_codec.h"
#include "hash.h"

static u16 get_le16(const u8 *p)
{
	return p[0] | p[1] << 8;
}

static void put_le16(u8 *p, u16 v)
{
	p[0] = v;
	p[1] = v >> 8;
}

/* Length implied by the counts; u64 so no count can overflow it. */
static u64 blob_len(u32 header_len, u64 nr_devices, u64 nr_buckets,
		    u64 nr_children, u64 nr_pools, u64 nr_pins,
		    u64 nr_overrides)
{
	return header_len + nr_devices * CVM_MAP_DEVICE_LEN +
	       nr_buckets * CVM_MAP_BUCKET_LEN +
	       nr_children * CVM_MAP_CHILD_LEN + nr_pools * CVM_MAP_POOL_LEN +
	       nr_pins * CVM_MAP_PIN_LEN +
	       nr_overrides * CVM_MAP_OVERRIDE_LEN;
}

/* CRC32C of the blob with the CRC field itself left out. */
u32 cvm_map_blob_crc(const void *blob, size_t total_len)
{
	const u8 *p = blob;
	u32 crc;

	crc = cvm_crc32c(~0u, p, CVM_MAP_CRC_OFFSET);
	crc = cvm_crc32c(crc, p + CVM_MAP_CRC_OFFSET + 4,
			 total_len - CVM_MAP_CRC_OFFSET - 4);
	return ~crc;
}

/* Children actually listed by the buckets, which is what gets encoded. */
static u32 listed_children(const struct cvm_map *map)
{
	u32 i, n = 0;

	for (i = 0; i < map->nr_buckets; i++)
		n += map->buckets[i].nr_children;
	return n;
}

size_t cvm_map_encoded_len(const struct cvm_map *map)
{
	return blob_len(CVM_MAP_HEADER_LEN, map->nr_devices, map->nr_buckets,
			listed_children(map), map->nr_pools, map->nr_pins,
			map->nr_overrides);
}

/*
 * cvm_map_encode() - encode a finalized map into @buf
 * @len: bytes at @buf, at least cvm_map_encoded_len()
 *
 * Return: 0, or -EINVAL (map not finalized) or -ENOSPC with @err set.
 */
int cvm_map_encode(const struct cvm_map *map, void *buf, size_t len,
		   struct cvm_err *err)
{
	const size_t total = cvm_map_encoded_len(map);
	u8 *p = buf;
	u32 i, j;

	if (!map->finalized)
		return cvm_fail(err, -EINVAL, "map is not finalized", 0);
	if (len < total)
		return cvm_fail(err, -ENOSPC, "buffer too small for the map",
				total);

	cvm_put_le32(p, CVM_MAP_MAGIC);
	put_le16(p + 4, CVM_MAP_VERSION);
	put_le16(p + 6, CVM_MAP_HEADER_LEN);
	cvm_put_le32(p + 8, total);
	cvm_put_le64(p + 16, map->epoch);
	cvm_put_le32(p + 24, map->nr_devices);
	cvm_put_le32(p + 28, map->nr_buckets);
	cvm_put_le32(p + 32, listed_children(map));
	cvm_put_le32(p + 36, map->nr_pools);
	cvm_put_le32(p + 40, 0);
	cvm_put_le32(p + 44, map->nr_pins);
	cvm_put_le32(p + 48, map->nr_overrides);
	cvm_put_le32(p + 52, 0);
	p += CVM_MAP_HEADER_LEN;

	for (i = 0; i < map->nr_devices; i++, p += CVM_MAP_DEVICE_LEN) {
		cvm_put_le32(p, map->devices[i].id);
		cvm_put_le32(p + 4, map->devices[i].weight);
		cvm_put_le32(p + 8, map->devices[i].state);
	}
	for (i = 0; i < map->nr_buckets; i++, p += CVM_MAP_BUCKET_LEN) {
		cvm_put_le32(p, (u32)map->buckets[i].id);
		cvm_put_le32(p + 4, map->buckets[i].type);
		cvm_put_le32(p + 8, map->buckets[i].nr_children);
	}
	for (i = 0; i < map->nr_buckets; i++) {
		const struct cvm_bucket *b = &map->buckets[i];

		for (j = 0; j < b->nr_children; j++, p += CVM_MAP_CHILD_LEN)
			cvm_put_le32(p, (u32)map->children[b->first_child + j]);
	}
	for (i = 0; i < map->nr_pools; i++, p += CVM_MAP_POOL_LEN) {
		const struct cvm_pool *pool = &map->pools[i];

		cvm_put_le32(p, pool->id);
		cvm_put_le32(p + 4, pool->pg_num);
		p[8] = pool->kind;
		p[9] = pool->k;
		p[10] = pool->m;
		p[11] = pool->failure_domain;
		p[12] = pool->min_size;
		p[13] = pool->device_class;
		p[14] = 0;
		p[15] = 0;
	}
	for (i = 0; i < map->nr_pins; i++, p += CVM_MAP_PIN_LEN) {
		const struct cvm_pg_pin *pin = &map->pins[i];

		cvm_put_le32(p, pin->pool_id);
		cvm_put_le32(p + 4, pin->pg);
		for (j = 0; j < CVM_MAX_PG_WIDTH; j++)
			cvm_put_le32(p + 8 + 4 * j, pin->devs[j]);
	}
	for (i = 0; i < map->nr_overrides; i++, p += CVM_MAP_OVERRIDE_LEN) {
		const struct cvm_pg_override *o = &map->overrides[i];

		cvm_put_le32(p, o->pool_id);
		cvm_put_le32(p + 4, o->pg);
		cvm_put_le32(p + 8, o->slot);
		cvm_put_le32(p + 12, o->dev);
	}
	cvm_put_le32((u8 *)buf + CVM_MAP_CRC_OFFSET,
		     cvm_map_blob_crc(buf, total));
	return 0;
}

static u32 header_len(u32 version)
{
	return version < 5 ? CVM_MAP_HEADER_LEN_V4 : CVM_MAP_HEADER_LEN;
}

/* Overrides counted by a header; none before version 5. */
static u32 header_overrides(const u8 *p)
{
	return get_le16(p + 4) < 5 ? 0 : cvm_get_le32(p + 48);
}

/* Header checks, in the order a reader would want to hear about them. */
static int check_header(const u8 *p, size_t len, struct cvm_err *err)
{
	u64 expect;
	u32 total, version;

	if (len < CVM_MAP_HEADER_LEN_V4)
		return cvm_fail(err, -EBADMSG, "map blob shorter than header",
				len);
	if (cvm_get_le32(p) != CVM_MAP_MAGIC)
		return cvm_fail(err, -EBADMSG, "bad map magic",
				cvm_get_le32(p));
	version = get_le16(p + 4);
	if (version < CVM_MAP_VERSION_MIN || version > CVM_MAP_VERSION)
		return cvm_fail(err, -EPROTO, "unsupported map version",
				version);
	if (get_le16(p + 6) != header_len(version))
		return cvm_fail(err, -EBADMSG, "bad map header length",
				get_le16(p + 6));
	if (len < header_len(version))
		return cvm_fail(err, -EBADMSG, "map blob shorter than header",
				len);
	total = cvm_get_le32(p + 8);
	if (total > len)
		return cvm_fail(err, -EBADMSG, "map blob truncated", total);
	if (total < len)
		return cvm_fail(err, -EBADMSG,
				"trailing bytes after map blob", len);
	if (cvm_get_le32(p + 40))
		return cvm_fail(err, -EBADMSG, "unknown map flags",
				cvm_get_le32(p + 40));
	if (version < 4 && cvm_get_le32(p + 44))
		return cvm_fail(err, -EBADMSG, "reserved map field not zero",
				cvm_get_le32(p + 44));
	if (cvm_get_le32(p + 44) > CVM_MAX_PINS)
		return cvm_fail(err, -E2BIG, "too many pinned PGs",
				cvm_get_le32(p + 44));
	if (version >= 5 && cvm_get_le32(p + 52))
		return cvm_fail(err, -EBADMSG, "reserved map field not zero",
				cvm_get_le32(p + 52));
	if (header_overrides(p) > CVM_MAX_OVERRIDES)
		return cvm_fail(err, -E2BIG, "too many PG overrides",
				header_overrides(p));
	if (cvm_get_le32(p + 24) > CVM_MAX_DEVICES)
		return cvm_fail(err, -E2BIG, "too many devices",
				cvm_get_le32(p + 24));
	if (cvm_get_le32(p + 28) > CVM_MAX_BUCKETS)
		return cvm_fail(err, -E2BIG, "too many buckets",
				cvm_get_le32(p + 28));
	if (cvm_get_le32(p + 32) > CVM_MAX_DEVICES + CVM_MAX_BUCKETS)
		return cvm_fail(err, -E2BIG, "too many bucket children",
				cvm_get_le32(p + 32));
	if (cvm_get_le32(p + 36) > CVM_MAX_POOLS)
		return cvm_fail(err, -E2BIG, "too many pools",
				cvm_get_le32(p + 36));
	expect = blob_len(header_len(version), cvm_get_le32(p + 24),
			  cvm_get_le32(p + 28), cvm_get_le32(p + 32),
			  cvm_get_le32(p + 36), cvm_get_le32(p + 44),
			  header_overrides(p));
	if (expect != total)
		return cvm_fail(err, -EBADMSG,
				"map length does not match its counts", total);
	if (cvm_map_blob_crc(p, total) != cvm_get_le32(p + CVM_MAP_CRC_OFFSET))
		return cvm_fail(err, -EBADMSG, "map CRC mismatch",
				cvm_get_le32(p + CVM_MAP_CRC_OFFSET));
	return 0;
}

/*
 * cvm_map_decode() - decode and finalize a map from an untrusted blob
 * @buf: the blob
 * @len: its exact length
 * @mapp: the map out, free with cvm_map_free()
 *
 * Return: 0, -ENOMEM, or a negative errno with @err naming the first
 * problem: -EBADMSG for a malformed or corrupt blob, -EPROTO for an
 * unknown version, -E2BIG for counts over the limits, or what
 * cvm_map_finalize() returns for an invalid map.
 */
int cvm_map_decode(const void *buf, size_t len, struct cvm_map **mapp,
		   struct cvm_err *err)
{
	const u8 *p = buf;
	struct cvm_map *map;
	u32 i, j, next_child = 0;
	int ret;

	ret = check_header(p, len, err);
	if (ret)
		return ret;
	ret = cvm_map_alloc(&map, cvm_get_le32(p + 24), cvm_get_le32(p + 28),
			    cvm_get_le32(p + 32), cvm_get_le32(p + 36), err);
	if (ret)
		return ret;
	map->epoch = cvm_get_le64(p + 16);
	ret = cvm_map_alloc_pins(map, cvm_get_le32(p + 44), err);
	if (ret)
		goto out_free;
	ret = cvm_map_alloc_overrides(map, header_overrides(p), err);
	if (ret)
		goto out_free;
	p += header_len(get_le16(p + 4));

	for (i = 0; i < map->nr_devices; i++, p += CVM_MAP_DEVICE_LEN) {
		map->devices[i].id = cvm_get_le32(p);
		map->devices[i].weight = cvm_get_le32(p + 4);
		map->devices[i].state = cvm_get_le32(p + 8);
	}
	for (i = 0; i < map->nr_buckets; i++, p += CVM_MAP_BUCKET_LEN) {
		struct cvm_bucket *b = &map->buckets[i];

		b->id = (s32)cvm_get_le32(p);
		b->type = cvm_get_le32(p + 4);
		b->nr_children = cvm_get_le32(p + 8);
		if (b->nr_children > map->nr_children - next_child) {
			ret = cvm_fail(err, -EBADMSG,
				       "bucket children exceed the child count",
				       b->id);
			goto out_free;
		}
		b->first_child = next_child;
		next_child += b->nr_children;
	}
	if (next_child != map->nr_children) {
		ret = cvm_fail(err, -EBADMSG,
			       "child count does not match the buckets",
			       map->nr_children);
		goto out_free;
	}
	for (i = 0; i < map->nr_children; i++, p += CVM_MAP_CHILD_LEN)
		map->children[i] = (s32)cvm_get_le32(p);
	for (i = 0; i < map->nr_pools; i++, p += CVM_MAP_POOL_LEN) {
		struct cvm_pool *pool = &map->pools[i];

		pool->id = cvm_get_le32(p);
		pool->pg_num = cvm_get_le32(p + 4);
		pool->kind = p[8];
		pool->k = p[9];
		pool->m = p[10];
		pool->failure_domain = p[11];
		pool->min_size = p[12];
		pool->device_class = p[13];
		if (p[14] || p[15]) {
			ret = cvm_fail(err, -EBADMSG,
				       "reserved pool field not zero", pool->id);
			goto out_free;
		}
	}
	for (i = 0; i < map->nr_pins; i++, p += CVM_MAP_PIN_LEN) {
		struct cvm_pg_pin *pin = &map->pins[i];

		pin->pool_id = cvm_get_le32(p);
		pin->pg = cvm_get_le32(p + 4);
		for (j = 0; j < CVM_MAX_PG_WIDTH; j++)
			pin->devs[j] = cvm_get_le32(p + 8 + 4 * j);
	}
	for (i = 0; i < map->nr_overrides; i++, p += CVM_MAP_OVERRIDE_LEN) {
		struct cvm_pg_override *o = &map->overrides[i];

		o->pool_id = cvm_get_le32(p);
		o->pg = cvm_get_le32(p + 4);
		o->slot = cvm_get_le32(p + 8);
		o->dev = cvm_get_le32(p + 12);
	}

	ret = cvm_map_finalize(map, err);
	if (ret)
		goto out_free;
	*mapp = map;
	return 0;

out_free:
	cvm_map_free(map);
	return ret;
}
