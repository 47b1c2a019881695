// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for kernel/common/ec: GF(2^8) arithmetic, and the code's
 * agreement with lib/raid6 (P and Q, and raid6's own recovery routines),
 * which cvm.ko uses for the first two parity rows.
 */
#include <kunit/test.h>
#include <linux/raid/pq.h>
#include <linux/random.h>
#include <linux/slab.h>
#include "ec.h"

/* Carry-less multiply reduced by 0x11d, one bit at a time. */
static u8 gf_mul_slow(u8 a, u8 b)
{
	unsigned int r = 0, x = a;

	while (b) {
		if (b & 1)
			r ^= x;
		b >>= 1;
		x <<= 1;
		if (x & 0x100)
			x ^= 0x11d;
	}
	return r;
}

static void ec_gf_tables(struct kunit *test)
{
	unsigned int a, b;

	for (a = 0; a < 256; a++)
		for (b = 0; b < 256; b++)
			if (cvm_gf_mul(a, b) != gf_mul_slow(a, b))
				KUNIT_FAIL(test, "%u * %u: %u, want %u", a, b,
					   cvm_gf_mul(a, b), gf_mul_slow(a, b));
	for (a = 1; a < 256; a++)
		KUNIT_EXPECT_EQ(test, cvm_gf_mul(a, cvm_gf_inv(a)), 1);
	/* 2 generates the field: its powers are every non-zero element. */
	for (a = 0; a < 255; a++)
		KUNIT_EXPECT_EQ(test, cvm_gf_log[cvm_gf_exp[a]], a);
}

static void ec_mul2_x8(struct kunit *test)
{
	unsigned int i, b;

	for (i = 0; i < 256; i++) {
		u64 v = get_random_u64(), got = cvm_gf_mul2_x8(v);

		for (b = 0; b < 8; b++)
			KUNIT_EXPECT_EQ(test, (u8)(got >> (8 * b)),
					gf_mul_slow((u8)(v >> (8 * b)), 2));
	}
}

struct ec_stripe {
	void *shard[CVM_EC_MAX_SHARDS];
	void *copy[CVM_EC_MAX_SHARDS];
};

static void ec_stripe_alloc(struct kunit *test, struct ec_stripe *st,
			    unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		st->shard[i] = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
		st->copy[i] = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, st->shard[i]);
		KUNIT_ASSERT_NOT_NULL(test, st->copy[i]);
	}
}

/* Rows 0 and 1 are raid6's P and Q for every k; rows 2, 3 the formula. */
static void ec_parity_matches_raid6(struct kunit *test)
{
	struct ec_stripe st;
	unsigned int k, r, j, i;
	u8 *want = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, want);
	ec_stripe_alloc(test, &st, CVM_EC_MAX_SHARDS);
	for (k = 2; k <= CVM_EC_MAX_DATA; k++) {
		for (j = 0; j < k; j++)
			get_random_bytes(st.shard[j], PAGE_SIZE);
		cvm_ec_encode(k, 4, PAGE_SIZE, (const void *const *)st.shard,
			      st.shard + k);
		/* raid6: data disks, then P, then Q */
		for (j = 0; j < k + 2; j++)
			st.copy[j] = j < k ? st.shard[j] : st.copy[j];
		raid6_call.gen_syndrome(k + 2, PAGE_SIZE, st.copy);
		KUNIT_EXPECT_EQ_MSG(test, memcmp(st.copy[k], st.shard[k],
						 PAGE_SIZE), 0, "P, k %u", k);
		KUNIT_EXPECT_EQ_MSG(test, memcmp(st.copy[k + 1],
						 st.shard[k + 1], PAGE_SIZE),
				    0, "Q, k %u", k);
		for (r = 2; r < 4; r++) {
			for (i = 0; i < PAGE_SIZE; i++) {
				u8 p = 0;

				for (j = 0; j < k; j++)
					p ^= gf_mul_slow(cvm_ec_coef(r, j),
							 ((u8 *)st.shard[j])[i]);
				want[i] = p;
			}
			KUNIT_EXPECT_EQ_MSG(test, memcmp(want, st.shard[k + r],
							 PAGE_SIZE), 0,
					    "row %u, k %u", r, k);
		}
	}
}

/* Two lost shards: cvm_ec_reconstruct() rebuilds what raid6's recovery does. */
static void ec_recovery_matches_raid6(struct kunit *test)
{
	const unsigned int k = 6, n = k + 2;
	struct ec_stripe st;
	void *orig[CVM_EC_MAX_SHARDS];
	unsigned int a, b, i;

	ec_stripe_alloc(test, &st, n);
	for (i = 0; i < n; i++) {
		orig[i] = kunit_kzalloc(test, PAGE_SIZE, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, orig[i]);
		if (i < k)
			get_random_bytes(orig[i], PAGE_SIZE);
	}
	cvm_ec_encode(k, 2, PAGE_SIZE, (const void *const *)orig, orig + k);
	for (a = 0; a < k; a++) {
		for (b = a; b < k + 1; b++) {
			u32 erased = BIT(a) | BIT(b);

			for (i = 0; i < n; i++) {
				memcpy(st.shard[i], orig[i], PAGE_SIZE);
				memcpy(st.copy[i], orig[i], PAGE_SIZE);
			}
			memset(st.shard[a], 0, PAGE_SIZE);
			memset(st.shard[b], 0, PAGE_SIZE);
			memset(st.copy[a], 0, PAGE_SIZE);
			memset(st.copy[b], 0, PAGE_SIZE);
			KUNIT_ASSERT_EQ(test, cvm_ec_reconstruct(k, 2, PAGE_SIZE,
								 st.shard, erased,
								 NULL), 0);
			if (b == a || b == k)	/* from Q; P rewritten */
				raid6_datap_recov(n, PAGE_SIZE, a, st.copy);
			else
				raid6_2data_recov(n, PAGE_SIZE, a, b, st.copy);
			KUNIT_EXPECT_EQ_MSG(test, memcmp(st.shard[a], orig[a],
							 PAGE_SIZE), 0,
					    "ec lost %u,%u", a, b);
			KUNIT_EXPECT_EQ_MSG(test, memcmp(st.copy[a], orig[a],
							 PAGE_SIZE), 0,
					    "raid6 lost %u,%u", a, b);
			KUNIT_EXPECT_EQ_MSG(test, memcmp(st.shard[b], orig[b],
							 PAGE_SIZE), 0,
					    "ec lost %u,%u", a, b);
		}
	}
}

/* ec(8,4): every pattern of up to four lost shards comes back. */
static void ec_reconstruct_every_pattern(struct kunit *test)
{
	const unsigned int k = 8, m = 4, n = k + m, len = 256;
	void *orig[CVM_EC_MAX_SHARDS], *shard[CVM_EC_MAX_SHARDS];
	unsigned int i, patterns = 0;
	struct cvm_err err = {};
	u32 erased;

	for (i = 0; i < n; i++) {
		orig[i] = kunit_kzalloc(test, len, GFP_KERNEL);
		shard[i] = kunit_kzalloc(test, len, GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, orig[i]);
		KUNIT_ASSERT_NOT_NULL(test, shard[i]);
		if (i < k)
			get_random_bytes(orig[i], len);
	}
	cvm_ec_encode(k, m, len, (const void *const *)orig, orig + k);
	for (erased = 1; erased < BIT(n); erased++) {
		if (hweight32(erased) > m)
			continue;
		patterns++;
		for (i = 0; i < n; i++) {
			memcpy(shard[i], orig[i], len);
			if (erased & BIT(i))
				memset(shard[i], 0xee, len);
		}
		KUNIT_ASSERT_EQ(test, cvm_ec_reconstruct(k, m, len, shard,
							 erased, &err), 0);
		for (i = 0; i < n; i++)
			if (memcmp(shard[i], orig[i], len))
				KUNIT_FAIL(test, "erased %#x: shard %u differs",
					   erased, i);
	}
	KUNIT_EXPECT_EQ(test, patterns, 793U);
	/* Five lost: refused, with the reason. */
	KUNIT_EXPECT_EQ(test, cvm_ec_reconstruct(k, m, len, shard, 0x1f, &err),
			-EINVAL);
	KUNIT_EXPECT_STREQ(test, err.why,
			   "EC stripe has more erasures than parity chunks");
}

static struct kunit_case ec_cases[] = {
	KUNIT_CASE(ec_gf_tables),
	KUNIT_CASE(ec_mul2_x8),
	KUNIT_CASE(ec_parity_matches_raid6),
	KUNIT_CASE(ec_recovery_matches_raid6),
	KUNIT_CASE(ec_reconstruct_every_pattern),
	{}
};

static struct kunit_suite ec_suite = {
	.name = "cvm_ec",
	.test_cases = ec_cases,
};
kunit_test_suite(ec_suite);
