/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Erasure-code math: GF(2^8) and the Reed-Solomon code of ec(k,m) pools.
 *
 * The field is GF(2^8) with polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d)
 * and generator 2, the field of lib/raid6 and ISA-L.  Parity row r of a
 * stripe (shard k + r) is
 *
 *	P_r = sum over data chunks j of (2^r)^j * D_j
 *
 * so row 0 is the XOR parity (raid5's P, raid6's P), row 1 is raid6's Q,
 * and rows 2 and 3 extend the same Vandermonde pattern.  This is ISA-L's
 * gf_gen_rs_matrix(); for k <= 8 and m <= 4 every choice of k surviving
 * chunks is decodable (the userspace tests check every erasure pattern).
 * Because the first two rows are raid6's, the kernel may compute them with
 * lib/raid6 and use this code only for rows 2 and 3 and for decoding.
 *
 * Chunks are byte buffers whose length is a multiple of 8; they are worked
 * on a 64-bit word at a time, multiplying eight field elements at once by
 * 2 with shifts and masks (as lib/raid6/int.c does).  Nothing here
 * allocates or sleeps.
 */
#ifndef _CVM_EC_H
#define _CVM_EC_H

#include "cvm_compat.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CVM_EC_MAX_DATA		8
#define CVM_EC_MAX_PARITY	4
#define CVM_EC_MAX_SHARDS	(CVM_EC_MAX_DATA + CVM_EC_MAX_PARITY)
#define CVM_EC_ALIGN		8	/* chunk lengths are multiples of this */

extern const u8 cvm_gf_exp[510];
extern const u8 cvm_gf_log[256];

static inline u8 cvm_gf_mul(u8 a, u8 b)
{
	if (!a || !b)
		return 0;
	return cvm_gf_exp[cvm_gf_log[a] + cvm_gf_log[b]];
}

/* Multiplicative inverse; @a must not be 0. */
static inline u8 cvm_gf_inv(u8 a)
{
	return cvm_gf_exp[255 - cvm_gf_log[a]];
}

/* Coefficient of data chunk @col in parity row @row: (2^row)^col. */
static inline u8 cvm_ec_coef(unsigned int row, unsigned int col)
{
	return cvm_gf_exp[(row * col) % 255];
}

/* Eight field elements, one per byte of @v, each multiplied by 2. */
static inline u64 cvm_gf_mul2_x8(u64 v)
{
	u64 high = v & 0x8080808080808080ull;

	return ((v << 1) & 0xfefefefefefefefeull) ^ ((high >> 7) * 0x1d);
}

int cvm_ec_check(unsigned int k, unsigned int m, u32 len,
		 struct cvm_err *err);
void cvm_ec_encode_row(unsigned int row, unsigned int k, u32 len,
		       const void *const *data, void *parity);
void cvm_ec_encode(unsigned int k, unsigned int m, u32 len,
		   const void *const *data, void *const *parity);
void cvm_ec_mul_xor(u8 c, u32 len, const void *src, void *dst);
int cvm_ec_reconstruct(unsigned int k, unsigned int m, u32 len,
		       void *const *shards, u32 erased, struct cvm_err *err);

#ifdef __cplusplus
}
#endif

#endif /* _CVM_EC_H */
