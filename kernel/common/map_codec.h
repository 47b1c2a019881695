/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Binary encoding of a cluster map, as cvmd sends it to the kernel.
 *
 * All fields little-endian, no padding:
 *
 *   header, CVM_MAP_HEADER_LEN bytes (version 3 and 4: 48)
 *	 0  u32 magic		CVM_MAP_MAGIC ("CVMM")
 *	 4  u16 version		CVM_MAP_VERSION
 *	 6  u16 header_len	CVM_MAP_HEADER_LEN
 *	 8  u32 total_len	whole blob, header included
 *	12  u32 crc		CRC32C of bytes [0, 12) then [16, total_len)
 *	16  u64 epoch
 *	24  u32 nr_devices
 *	28  u32 nr_buckets
 *	32  u32 nr_children	sum of the buckets' nr_children
 *	36  u32 nr_pools
 *	40  u32 flags		none defined, must be 0
 *	44  u32 nr_pins		version 4; must be 0 in version 3
 *	48  u32 nr_overrides	version 5
 *	52  u32 reserved	0
 *   nr_devices records:  u32 id, u32 weight, u32 state (bits 0-1: up, in;
 *			  bits 8-15: device class, 0 = none)
 *   nr_buckets records:  s32 id, u32 type, u32 nr_children
 *   nr_children records: s32 item id, bucket by bucket in bucket order
 *   nr_pools records:    u32 id, u32 pg_num, u8 kind, u8 k, u8 m,
 *			  u8 failure_domain, u8 min_size, u8 device_class,
 *			  u8 reserved[2] (0)
 *   nr_pins records:     u32 pool_id, u32 pg, u32 devs[CVM_MAX_PG_WIDTH]
 *			  (struct cvm_pg_pin), ascending by (pool_id, pg)
 *   nr_overrides records: u32 pool_id, u32 pg, u32 slot, u32 dev
 *			  (struct cvm_pg_override), ascending by
 *			  (pool_id, pg, slot)
 *
 * Versions: 1 first; 2 pool records grow to 16 bytes with min_size; 3
 * device classes (a device's in its state, a pool's in byte 13): a pool
 * with a class places only on devices of it; 4 pins (a PG's I/O stays on
 * the devices holding its data while it moves); 5 the balancer's
 * overrides, and the header grows to 56 bytes.  The encoder writes
 * CVM_MAP_VERSION; the decoder also reads versions 3 and 4 (maps without
 * pins or overrides, as a store written by an earlier release keeps).
 *
 * The decoder trusts nothing: it checks the header, the length implied by
 * the counts, the CRC, and then the map itself through cvm_map_finalize().
 */
#ifndef _CVM_MAP_CODEC_H
#define _CVM_MAP_CODEC_H

#include "placement.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CVM_MAP_MAGIC		0x4d4d5643u
#define CVM_MAP_VERSION		5
#define CVM_MAP_VERSION_MIN	3
#define CVM_MAP_HEADER_LEN	56
#define CVM_MAP_HEADER_LEN_V4	48	/* versions 3 and 4 */
#define CVM_MAP_DEVICE_LEN	12
#define CVM_MAP_BUCKET_LEN	12
#define CVM_MAP_CHILD_LEN	4
#define CVM_MAP_POOL_LEN	16
#define CVM_MAP_PIN_LEN		(8 + 4 * CVM_MAX_PG_WIDTH)
#define CVM_MAP_OVERRIDE_LEN	16
#define CVM_MAP_CRC_OFFSET	12

size_t cvm_map_encoded_len(const struct cvm_map *map);
int cvm_map_encode(const struct cvm_map *map, void *buf, size_t len,
		   struct cvm_err *err);
int cvm_map_decode(const void *buf, size_t len, struct cvm_map **mapp,
		   struct cvm_err *err);
u32 cvm_map_blob_crc(const void *blob, size_t total_len);

#ifdef __cplusplus
}
#endif

#endif /* _CVM_MAP_CODEC_H */
