/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The stripe journal of erasure-coded volumes: how an EC write survives a
 * crash of its initiator (no write hole).
 *
 * Before a write changes a stripe in place, every shard it will write
 * first gets the same bytes, and a header describing them, in a journal
 * slot; only when every journal write is durable (FUA) do the in-place
 * writes start.  The journal is an object shard of its own on each device,
 * (volume, CVM_EC_JOURNAL_OBJECT, shard), laid out as
 *
 *	[0, slots * 512)			one header per slot
 *	[CVM_EC_JOURNAL_DATA_OFF, + slots * unit)	one chunk per slot
 *
 * Stripe t of object o uses slot (cvm_ec_journal_base(o) + t) % slots on
 * each of its shards' devices, and writes of stripes sharing a slot are
 * serialised (one stripe lock per slot).  So a slot holds the newest write
 * of the stripe its header names, and a write that finds it again replays
 * the newest contents, never older ones.
 *
 * Replay (at attach) groups the valid headers by (seq, object, stripe).  A
 * record is complete when every shard it names (@shards) has a valid header
 * and chunk, or sits on a device that cannot be reached: its in-place
 * writes may have started, so they are done again, making the stripe the
 * new one.  An incomplete record was torn before any in-place write began:
 * the stripe is still the old one.  Either way data and parity agree, and
 * a lost chunk is rebuilt as old or new contents, never a mix.  After a
 * successful replay the headers are wiped: the records are no longer
 * needed, and must not be replayed over later writes (e.g. ones made with
 * the journal off, or after the map moved a PG).
 */
#ifndef _CVM_EC_JOURNAL_H
#define _CVM_EC_JOURNAL_H

#include "cvm_compat.h"
#ifndef __KERNEL__
#include <linux/types.h>	/* __le32, __le64: the on-disk types */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Object number of the journal; far above any volume's objects. */
#define CVM_EC_JOURNAL_OBJECT	(1ULL << 62)
#define CVM_EC_JOURNAL_MAGIC	0x4a4d5643U	/* "CVMJ" */
#define CVM_EC_JOURNAL_HDR_LEN	512U
#define CVM_EC_JOURNAL_SLOTS	256U
/* Data area: after the headers, 3 MiB inside the target's 4 MiB extent. */
#define CVM_EC_JOURNAL_DATA_OFF	(CVM_EC_JOURNAL_SLOTS * CVM_EC_JOURNAL_HDR_LEN)
#define CVM_EC_JOURNAL_DATA_MAX	(3U << 20)
/* Largest stripe unit the journal can hold: three slots. */
#define CVM_EC_JOURNAL_MAX_UNIT	(1U << 20)

/*
 * struct cvm_ec_jhdr - one slot's header, CVM_EC_JOURNAL_HDR_LEN bytes on
 * disk (the rest zero), little endian
 * @magic: CVM_EC_JOURNAL_MAGIC
 * @hdr_crc: CRC32C of the whole 512-byte header with this field zero
 * @seq: the write's sequence number (per volume, increasing; never 0)
 * @volume_id, @object_no, @stripe: the stripe written
 * @data_crc: CRC32C of the chunk bytes in the slot
 * @offset, @length: the bytes of the chunk written, inside the unit
 * @unit: stripe unit, bytes
 * @shards: bit s set: the write changes shard s of this stripe
 * @missed: shards the write should change but could not reach: stale
 *	until rebuilt (replay marks them again, as the marks were in memory)
 * @slot: this header's slot
 * @shard: the shard this header's chunk belongs to
 * @k, @m: the code
 */
struct cvm_ec_jhdr {
	__le32	magic;
	__le32	hdr_crc;
	__le64	seq;
	__le64	volume_id;
	__le64	object_no;
	__le64	stripe;
	__le32	data_crc;
	__le32	offset;
	__le32	length;
	__le32	unit;
	__le32	shards;
	__le32	slot;
	__le16	shard;
	__u8	k;
	__u8	m;
	__le32	missed;
};

/* Slots of a volume with stripe unit @unit (at most 1 MiB). */
static inline u32 cvm_ec_journal_slots(u32 unit)
{
	u32 n = CVM_EC_JOURNAL_DATA_MAX / unit;

	return n < CVM_EC_JOURNAL_SLOTS ? n : CVM_EC_JOURNAL_SLOTS;
}

/* Where an object's stripes start in the ring of slots. */
static inline u32 cvm_ec_journal_base(u64 object_no, u32 slots)
{
	/* Spread objects over the ring (Knuth's multiplicative hash). */
	return (u32)(((object_no * 0x9e3779b97f4a7c15ULL) >> 32) % slots);
}

static inline u32 cvm_ec_journal_slot(u64 object_no, u64 stripe, u32 slots)
{
	return (u32)((cvm_ec_journal_base(object_no, slots) +
		      stripe % slots) % slots);
}

#ifdef __cplusplus
}
#endif

#endif /* _CVM_EC_JOURNAL_H */
