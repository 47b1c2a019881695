/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Volume -> object -> stripe arithmetic.
 *
 * A volume is cut into objects of 2^object_shift bytes; object n holds
 * volume bytes [n << object_shift, (n + 1) << object_shift).  I/O is split
 * at object boundaries.
 *
 * In an EC pool an object is cut into stripes of k data chunks of
 * 2^unit_shift bytes (the stripe unit); the stripe width is k units.  Data
 * chunk i of every stripe is stored by shard i, at shard offset
 * stripe_no * unit + offset in chunk.  k need not be a power of two, so the
 * last stripe of an object may be partial: its missing chunks count as
 * zeroes for parity and are never stored.
 *
 * Offsets and lengths are in bytes and must be multiples of 512 (a sector).
 */
#ifndef _CVM_OBJECT_H
#define _CVM_OBJECT_H

#include "cvm_compat.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CVM_SECTOR_SHIFT	9
#define CVM_OBJECT_SHIFT_MIN	12	/* 4 KiB */
#define CVM_OBJECT_SHIFT_MAX	26	/* 64 MiB */
#define CVM_OBJECT_SHIFT_DEFAULT 22	/* 4 MiB */
#define CVM_UNIT_SHIFT_MIN	9	/* 512 B */
#define CVM_UNIT_SHIFT_MAX	20	/* 1 MiB */
#define CVM_MAX_VOLUME_SIZE	(1ull << 56)	/* 64 PiB */

/*
 * struct cvm_layout - how a volume's bytes map to objects and chunks
 * @size: volume size in bytes, a non-zero multiple of 512
 * @object_shift: log2 of the object size
 * @ec_k: EC data chunks, or 0 for a replicated pool (no striping)
 * @unit_shift: log2 of the EC stripe unit; ignored when @ec_k is 0
 */
struct cvm_layout {
	u64 size;
	u32 object_shift;
	u32 ec_k;
	u32 unit_shift;
};

/* A piece of an I/O that lies inside one object. */
struct cvm_extent {
	u64 object_no;
	u32 offset;		/* within the object */
	u32 len;
};

/* Where an object byte lives in an EC stripe. */
struct cvm_chunk_pos {
	u64 stripe_no;		/* within the object */
	u32 chunk;		/* data chunk index = shard, 0 .. k - 1 */
	u32 offset;		/* within the chunk */
};

int cvm_layout_check(const struct cvm_layout *l, struct cvm_err *err);

static inline u64 cvm_object_size(const struct cvm_layout *l)
{
	return 1ull << l->object_shift;
}

static inline u64 cvm_object_count(const struct cvm_layout *l)
{
	return (l->size + cvm_object_size(l) - 1) >> l->object_shift;
}

int cvm_object_extent(const struct cvm_layout *l, u64 offset, u64 len,
		      struct cvm_extent *ext, struct cvm_err *err);

static inline u32 cvm_stripe_width(const struct cvm_layout *l)
{
	return l->ec_k << l->unit_shift;
}

int cvm_ec_locate(const struct cvm_layout *l, u32 obj_offset,
		  struct cvm_chunk_pos *pos, struct cvm_err *err);
int cvm_ec_offset(const struct cvm_layout *l,
		  const struct cvm_chunk_pos *pos, u32 *obj_offset,
		  struct cvm_err *err);

/* Offset of a chunk position inside its shard. */
static inline u64 cvm_ec_shard_offset(const struct cvm_layout *l,
				      const struct cvm_chunk_pos *pos)
{
	return (pos->stripe_no << l->unit_shift) + pos->offset;
}

/* Bytes a shard stores for one object: one unit per (partial) stripe. */
static inline u64 cvm_ec_shard_size(const struct cvm_layout *l)
{
	const u64 width = cvm_stripe_width(l);

	return div64_u64(cvm_object_size(l) + width - 1, width) <<
	       l->unit_shift;
}

#ifdef __cplusplus
}
#endif

#endif /* _CVM_OBJECT_H */
