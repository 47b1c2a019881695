// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for kernel/common/hash: the MurmurHash3-based word hash and
 * CRC32C through the kernel's crc32c().
 */
#include <kunit/test.h>
#include "hash.h"

/* Published MurmurHash3_x86_32 vectors for 4-byte inputs. */
static void hash_murmur3_vectors(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, cvm_hash32_1(0, 0), 0x2362f9deu);
	KUNIT_EXPECT_EQ(test, cvm_hash32_1(0, 0x87654321), 0xf55b516bu);
	KUNIT_EXPECT_EQ(test, cvm_hash32_1(0x5082edee, 0x87654321),
			0x2362f9deu);
	/* "abcd" and "aaaa" as little-endian words, seed 0x9747b28c */
	KUNIT_EXPECT_EQ(test, cvm_hash32_1(0x9747b28c, 0x64636261),
			0xf0478627u);
	KUNIT_EXPECT_EQ(test, cvm_hash32_1(0x9747b28c, 0x61616161),
			0x5a97808au);
}

/* A 64-bit input is its low word then its high word. */
static void hash_u64_is_two_words(struct kunit *test)
{
	const u64 a = 0x0123456789abcdefull, b = 0xfedcba9876543210ull;

	KUNIT_EXPECT_EQ(test, cvm_hash64_2(7, a, b),
			cvm_hash32_4(7, 0x89abcdef, 0x01234567, 0x76543210,
				     0xfedcba98));
}

/* Flipping any input bit flips about half the output bits. */
static void hash_avalanche(struct kunit *test)
{
	u32 bit, i, flips = 0, trials = 0;

	for (i = 0; i < 64; i++) {
		const u32 a = cvm_hash32_1(1, i), b = cvm_hash32_1(2, i);
		const u32 h = cvm_hash32_3(3, a, b, i);

		for (bit = 0; bit < 32; bit++) {
			flips += hweight32(h ^ cvm_hash32_3(3, a ^ (1u << bit),
							    b, i));
			trials++;
		}
	}
	/* Mean flips per trial within 16 +- 0.5 over 2048 trials. */
	KUNIT_EXPECT_GT(test, flips * 2, trials * 31);
	KUNIT_EXPECT_LT(test, flips * 2, trials * 33);
}

static void crc32c_check_value(struct kunit *test)
{
	static const char digits[] = "123456789";

	KUNIT_EXPECT_EQ(test, ~cvm_crc32c(~0u, digits, 9), 0xe3069283u);
	/* Incremental use gives the same value. */
	KUNIT_EXPECT_EQ(test,
			~cvm_crc32c(cvm_crc32c(~0u, digits, 4), digits + 4, 5),
			0xe3069283u);
	KUNIT_EXPECT_EQ(test, cvm_crc32c(~0u, digits, 0), ~0u);
}

static struct kunit_case hash_cases[] = {
	KUNIT_CASE(hash_murmur3_vectors),
	KUNIT_CASE(hash_u64_is_two_words),
	KUNIT_CASE(hash_avalanche),
	KUNIT_CASE(crc32c_check_value),
	{}
};

static struct kunit_suite hash_suite = {
	.name = "cvm_hash",
	.test_cases = hash_cases,
};

kunit_test_suite(hash_suite);

MODULE_LICENSE("GPL");
