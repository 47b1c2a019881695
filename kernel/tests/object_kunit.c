// SPDX-License-Identifier: GPL-2.0
/* KUnit tests for kernel/common/object: object and EC stripe arithmetic. */
#include <kunit/test.h>
#include "object.h"

static const struct cvm_layout four_mib = {
	.size = 10ull << 20,	/* 2.5 objects */
	.object_shift = CVM_OBJECT_SHIFT_DEFAULT,
};

static const struct cvm_layout ec_3_4k = {
	.size = 1ull << 30,
	.object_shift = 22,
	.ec_k = 3,
	.unit_shift = 12,
};

static void object_split_at_boundaries(struct kunit *test)
{
	struct cvm_extent ext;
	u64 off = (4ull << 20) - 4096, len = (4ull << 20) + 8192;
	u32 pieces = 0;

	/* 4 KiB at the end of object 0, all of object 1, 4 KiB of object 2 */
	while (len) {
		KUNIT_ASSERT_EQ(test, cvm_object_extent(&four_mib, off, len,
							&ext, NULL), 0);
		KUNIT_EXPECT_EQ(test, ext.object_no, (u64)pieces);
		KUNIT_EXPECT_EQ(test, ext.offset,
				pieces ? 0u : (4u << 20) - 4096);
		KUNIT_EXPECT_EQ(test, ext.len,
				pieces == 1 ? 4u << 20 : 4096u);
		off += ext.len;
		len -= ext.len;
		pieces++;
	}
	KUNIT_EXPECT_EQ(test, pieces, 3u);
	KUNIT_EXPECT_EQ(test, cvm_object_count(&four_mib), 3ull);
}

static void object_refuses_bad_ranges(struct kunit *test)
{
	struct cvm_extent ext;
	struct cvm_err err = {};

	KUNIT_EXPECT_EQ(test, cvm_object_extent(&four_mib, 0, 0, &ext, &err),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, cvm_object_extent(&four_mib, 256, 512, &ext,
						&err), -EINVAL);
	KUNIT_EXPECT_STREQ(test, err.why, "range not sector aligned");
	KUNIT_EXPECT_EQ(test, cvm_object_extent(&four_mib, four_mib.size - 512,
						1024, &ext, &err), -ERANGE);
	KUNIT_EXPECT_EQ(test, cvm_object_extent(&four_mib, ~0ull - 511, 512,
						&ext, &err), -ERANGE);
	KUNIT_EXPECT_EQ(test, cvm_object_extent(&four_mib, 512, ~0ull - 511,
						&ext, &err), -ERANGE);
}

/* Every unit of an object round-trips through its chunk position. */
static void object_ec_round_trip(struct kunit *test)
{
	struct cvm_chunk_pos pos;
	u32 off, back;

	KUNIT_ASSERT_EQ(test, cvm_layout_check(&ec_3_4k, NULL), 0);
	KUNIT_EXPECT_EQ(test, cvm_stripe_width(&ec_3_4k), 3u * 4096);
	/* 4 MiB / 12 KiB = 341.3 stripes: 342 units per shard. */
	KUNIT_EXPECT_EQ(test, cvm_ec_shard_size(&ec_3_4k), 342ull * 4096);

	for (off = 0; off < 4u << 20; off += 4096 + 512) {
		KUNIT_ASSERT_EQ(test, cvm_ec_locate(&ec_3_4k, off, &pos, NULL),
				0);
		KUNIT_EXPECT_EQ(test, pos.stripe_no, off / (3 * 4096ull));
		KUNIT_EXPECT_EQ(test, pos.chunk, off / 4096 % 3);
		KUNIT_EXPECT_EQ(test, pos.offset, off % 4096);
		KUNIT_ASSERT_EQ(test, cvm_ec_offset(&ec_3_4k, &pos, &back,
						    NULL), 0);
		KUNIT_EXPECT_EQ(test, back, off);
	}
	/* The partial last stripe holds one unit: stripe 341, chunk 0. */
	KUNIT_ASSERT_EQ(test, cvm_ec_locate(&ec_3_4k, (4u << 20) - 1, &pos,
					    NULL), 0);
	KUNIT_EXPECT_EQ(test, pos.stripe_no, 341ull);
	KUNIT_EXPECT_EQ(test, pos.chunk, 0u);
	KUNIT_EXPECT_EQ(test, cvm_ec_shard_offset(&ec_3_4k, &pos),
			341ull * 4096 + 4095);
}

static void object_refuses_bad_layouts(struct kunit *test)
{
	struct cvm_layout l = ec_3_4k;
	struct cvm_err err = {};

	l.size = 1000;
	KUNIT_EXPECT_EQ(test, cvm_layout_check(&l, &err), -EINVAL);
	KUNIT_EXPECT_STREQ(test, err.why, "volume size not a multiple of 512");
	l = ec_3_4k;
	l.object_shift = 27;
	KUNIT_EXPECT_EQ(test, cvm_layout_check(&l, &err), -EINVAL);
	l = ec_3_4k;
	l.ec_k = 9;
	KUNIT_EXPECT_EQ(test, cvm_layout_check(&l, &err), -EINVAL);
	l = ec_3_4k;
	l.unit_shift = 23;
	KUNIT_EXPECT_EQ(test, cvm_layout_check(&l, &err), -EINVAL);
}

static struct kunit_case object_cases[] = {
	KUNIT_CASE(object_split_at_boundaries),
	KUNIT_CASE(object_refuses_bad_ranges),
	KUNIT_CASE(object_ec_round_trip),
	KUNIT_CASE(object_refuses_bad_layouts),
	{}
};

static struct kunit_suite object_suite = {
	.name = "cvm_object",
	.test_cases = object_cases,
};

kunit_test_suite(object_suite);

MODULE_LICENSE("GPL");
