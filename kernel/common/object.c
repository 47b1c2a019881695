// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Volume, object and EC stripe arithmetic; see object.h. */
#include "object.h"
#include "placement.h"

#define SECTOR_MASK	((1u << CVM_SECTOR_SHIFT) - 1)

/*
 * cvm_layout_check() - refuse a layout the I/O path cannot use
 *
 * Return: 0 or -EINVAL with @err naming the bad field.
 */
int cvm_layout_check(const struct cvm_layout *l, struct cvm_err *err)
{
	if (!l->size || l->size > CVM_MAX_VOLUME_SIZE)
		return cvm_fail(err, -EINVAL,
				"volume size must be 1 sector to 64 PiB",
				l->size);
	if (l->size & SECTOR_MASK)
		return cvm_fail(err, -EINVAL,
				"volume size not a multiple of 512", l->size);
	if (l->object_shift < CVM_OBJECT_SHIFT_MIN ||
	    l->object_shift > CVM_OBJECT_SHIFT_MAX)
		return cvm_fail(err, -EINVAL,
				"object size must be 4 KiB to 64 MiB",
				l->object_shift);
	if (!l->ec_k)
		return 0;
	if (l->ec_k < CVM_EC_MIN_K || l->ec_k > CVM_EC_MAX_K)
		return cvm_fail(err, -EINVAL,
				"EC data chunks k must be 2 to 8", l->ec_k);
	if (l->unit_shift < CVM_UNIT_SHIFT_MIN ||
	    l->unit_shift > CVM_UNIT_SHIFT_MAX)
		return cvm_fail(err, -EINVAL,
				"stripe unit must be 512 B to 1 MiB",
				l->unit_shift);
	if (l->unit_shift > l->object_shift)
		return cvm_fail(err, -EINVAL,
				"stripe unit larger than the object",
				l->unit_shift);
	return 0;
}

/*
 * cvm_object_extent() - the first piece of a volume range
 * @offset: volume byte offset, sector aligned
 * @len: bytes, sector aligned, non-zero, within the volume
 * @ext: the part of the range inside the first object it touches
 *
 * Callers split an I/O by advancing @offset by @ext->len until done.
 *
 * Return: 0, or -EINVAL/-ERANGE with @err set.
 */
int cvm_object_extent(const struct cvm_layout *l, u64 offset, u64 len,
		      struct cvm_extent *ext, struct cvm_err *err)
{
	u64 room;

	if (!len)
		return cvm_fail(err, -EINVAL, "empty range", 0);
	if ((offset | len) & SECTOR_MASK)
		return cvm_fail(err, -EINVAL, "range not sector aligned",
				offset);
	if (offset >= l->size || len > l->size - offset)
		return cvm_fail(err, -ERANGE, "range beyond end of volume",
				offset);

	ext->object_no = offset >> l->object_shift;
	ext->offset = offset & (cvm_object_size(l) - 1);
	room = cvm_object_size(l) - ext->offset;
	ext->len = len < room ? len : room;
	return 0;
}

/*
 * cvm_ec_locate() - stripe, chunk and chunk offset of an object byte
 *
 * Return: 0, or -EINVAL (not an EC layout) / -ERANGE with @err set.
 */
int cvm_ec_locate(const struct cvm_layout *l, u32 obj_offset,
		  struct cvm_chunk_pos *pos, struct cvm_err *err)
{
	u64 unit_no;

	if (!l->ec_k)
		return cvm_fail(err, -EINVAL, "layout is not erasure coded", 0);
	if (obj_offset >= cvm_object_size(l))
		return cvm_fail(err, -ERANGE, "offset beyond end of object",
				obj_offset);

	unit_no = obj_offset >> l->unit_shift;
	pos->stripe_no = div_u64(unit_no, l->ec_k);
	pos->chunk = unit_no - pos->stripe_no * l->ec_k;
	pos->offset = obj_offset & ((1u << l->unit_shift) - 1);
	return 0;
}

/*
 * cvm_ec_offset() - object byte offset of a chunk position
 *
 * Return: 0, or -EINVAL (not an EC layout, bad chunk) / -ERANGE with @err
 * set.
 */
int cvm_ec_offset(const struct cvm_layout *l,
		  const struct cvm_chunk_pos *pos, u32 *obj_offset,
		  struct cvm_err *err)
{
	u64 off;

	if (!l->ec_k)
		return cvm_fail(err, -EINVAL, "layout is not erasure coded", 0);
	if (pos->chunk >= l->ec_k)
		return cvm_fail(err, -EINVAL, "chunk index not below k",
				pos->chunk);
	if (pos->offset >> l->unit_shift)
		return cvm_fail(err, -EINVAL, "offset beyond end of chunk",
				pos->offset);
	if (pos->stripe_no > cvm_object_size(l) >> l->unit_shift)
		return cvm_fail(err, -ERANGE, "stripe beyond end of object",
				pos->stripe_no);

	off = ((pos->stripe_no * l->ec_k + pos->chunk) << l->unit_shift) +
	      pos->offset;
	if (off >= cvm_object_size(l))
		return cvm_fail(err, -ERANGE,
				"position beyond end of object", off);
	*obj_offset = off;
	return 0;
}
