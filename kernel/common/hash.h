/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Hashing shared by the kernel and userspace.
 *
 * cvm_hash32_*() feed 32-bit words through the MurmurHash3 (x86_32) block
 * mix and finish with its avalanche step: every input bit affects every
 * output bit with probability close to 1/2.  Over n words the result equals
 * MurmurHash3_x86_32() of the words' little-endian bytes, so any published
 * MurmurHash3 vector checks it.  It is not a cryptographic hash: placement
 * needs speed and uniformity, and ids are chosen by the administrator.
 *
 * The seed separates uses (object -> PG, PG -> input, straw2 draw) so that
 * the same numbers hashed for different purposes give unrelated values.
 */
#ifndef _CVM_HASH_H
#define _CVM_HASH_H

#include "cvm_compat.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seeds: arbitrary odd constants, part of the on-disk/wire behaviour. */
#define CVM_SEED_OBJECT_PG	0x6f626a21u	/* (volume, object) -> pg */
#define CVM_SEED_PG_INPUT	0x70676e6fu	/* (pool, pg) -> placement x */
#define CVM_SEED_STRAW2		0x73747277u	/* (x, item, attempt) draw */

static inline u32 cvm_rotl32(u32 v, unsigned int shift)
{
	return (v << shift) | (v >> (32 - shift));
}

static inline u32 cvm_hash_absorb(u32 h, u32 word)
{
	word *= 0xcc9e2d51u;
	word = cvm_rotl32(word, 15);
	word *= 0x1b873593u;
	h ^= word;
	h = cvm_rotl32(h, 13);
	return h * 5 + 0xe6546b64u;
}

static inline u32 cvm_hash_finish(u32 h, u32 nr_words)
{
	h ^= nr_words * 4;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static inline u32 cvm_hash32_1(u32 seed, u32 a)
{
	return cvm_hash_finish(cvm_hash_absorb(seed, a), 1);
}

static inline u32 cvm_hash32_2(u32 seed, u32 a, u32 b)
{
	return cvm_hash_finish(cvm_hash_absorb(cvm_hash_absorb(seed, a), b), 2);
}

static inline u32 cvm_hash32_3(u32 seed, u32 a, u32 b, u32 c)
{
	u32 h = cvm_hash_absorb(cvm_hash_absorb(seed, a), b);

	return cvm_hash_finish(cvm_hash_absorb(h, c), 3);
}

static inline u32 cvm_hash32_4(u32 seed, u32 a, u32 b, u32 c, u32 d)
{
	u32 h = cvm_hash_absorb(cvm_hash_absorb(seed, a), b);

	h = cvm_hash_absorb(cvm_hash_absorb(h, c), d);
	return cvm_hash_finish(h, 4);
}

/* Two 64-bit inputs, each as its low word then its high word. */
static inline u32 cvm_hash64_2(u32 seed, u64 a, u64 b)
{
	return cvm_hash32_4(seed, (u32)a, (u32)(a >> 32), (u32)b,
			    (u32)(b >> 32));
}

/*
 * cvm_crc32c() - CRC32C (Castagnoli, reflected polynomial 0x82F63B78)
 * @crc: running value; start with ~0 and invert the result for the standard
 *       CRC32C, exactly as with the kernel's crc32c()
 * @buf: data
 * @len: bytes in @buf
 *
 * The kernel build calls crc32c() from <linux/crc32c.h>, which may use the
 * CPU's instruction; userspace uses a byte-wise table.  Both give the same
 * value: crc32c("123456789") is 0xE3069283.
 */
u32 cvm_crc32c(u32 crc, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* _CVM_HASH_H */
