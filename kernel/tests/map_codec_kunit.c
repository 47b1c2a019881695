// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for kernel/common/map_codec: the decoder refuses every kind
 * of damaged blob, naming the damage, and accepts the shared vector map.
 */
#include <kunit/test.h>
#include "map_codec.h"
#include "placement_vectors.h"

/* A private, writable copy of the vector blob. */
static u8 *vec_blob(struct kunit *test)
{
	u8 *blob = kunit_kmalloc(test, sizeof(cvm_vec_map), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, blob);
	memcpy(blob, cvm_vec_map, sizeof(cvm_vec_map));
	return blob;
}

static void fix_crc(u8 *blob, size_t len)
{
	cvm_put_le32(blob + CVM_MAP_CRC_OFFSET, cvm_map_blob_crc(blob, len));
}

static void expect_refused(struct kunit *test, const u8 *blob, size_t len,
			   int ret, const char *words)
{
	struct cvm_map *map = NULL;
	struct cvm_err err = {};

	KUNIT_EXPECT_EQ(test, cvm_map_decode(blob, len, &map, &err), ret);
	KUNIT_EXPECT_NULL(test, map);
	KUNIT_ASSERT_NOT_NULL(test, err.why);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(err.why, words),
				  "reason was: %s", err.why);
}

static void codec_decodes_vector_map(struct kunit *test)
{
	struct cvm_map *map = NULL;
	struct cvm_err err = {};

	KUNIT_ASSERT_EQ(test, cvm_map_decode(cvm_vec_map, sizeof(cvm_vec_map),
					     &map, &err), 0);
	KUNIT_EXPECT_EQ(test, map->epoch, 7ull);
	KUNIT_EXPECT_TRUE(test, map->finalized);
	cvm_map_free(map);
}

/* Every prefix is refused; none is read past. */
static void codec_refuses_truncation(struct kunit *test)
{
	size_t len;

	for (len = 0; len < sizeof(cvm_vec_map); len++) {
		struct cvm_map *map = NULL;

		KUNIT_EXPECT_EQ(test, cvm_map_decode(cvm_vec_map, len, &map,
						     NULL), -EBADMSG);
		KUNIT_EXPECT_NULL(test, map);
	}
	expect_refused(test, cvm_vec_map, sizeof(cvm_vec_map) - 1, -EBADMSG,
		       "truncated");
	expect_refused(test, cvm_vec_map, 10, -EBADMSG, "shorter than header");
}

static void codec_refuses_bad_header(struct kunit *test)
{
	const size_t len = sizeof(cvm_vec_map);
	u8 *blob = vec_blob(test);
	u8 *longer;

	blob[0] ^= 1;
	expect_refused(test, blob, len, -EBADMSG, "magic");
	blob[0] ^= 1;

	blob[4] = CVM_MAP_VERSION_MIN - 1;	/* version 2: 12-byte pool records */
	expect_refused(test, blob, len, -EPROTO, "version");
	blob[4] = CVM_MAP_VERSION;

	blob[6] = 40;
	expect_refused(test, blob, len, -EBADMSG, "header length");
	blob[6] = CVM_MAP_HEADER_LEN;

	blob[40] = 1;
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "flags");
	blob[40] = 0;

	blob[44] = 1;	/* a pin the blob has no room for */
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "does not match its counts");
	blob[44] = 0;

	blob[4] = 4;	/* version 4's header is 48 bytes */
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "header length");
	blob[4] = CVM_MAP_VERSION;

	blob[48] += 1;	/* an override the blob has no room for */
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "does not match its counts");
	blob[48] -= 1;
	blob[52] = 1;
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "reserved");
	blob[52] = 0;

	longer = kunit_kzalloc(test, len + 4, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, longer);
	memcpy(longer, cvm_vec_map, len);
	expect_refused(test, longer, len + 4, -EBADMSG, "trailing");
}

/* Any flipped bit after the header is caught by the CRC. */
static void codec_refuses_bad_crc(struct kunit *test)
{
	const size_t len = sizeof(cvm_vec_map);
	u8 *blob = vec_blob(test);
	size_t pos;

	for (pos = CVM_MAP_HEADER_LEN; pos < len; pos += 7) {
		blob[pos] ^= 0x10;
		expect_refused(test, blob, len, -EBADMSG, "CRC");
		blob[pos] ^= 0x10;
	}
	blob[16] ^= 1;	/* epoch is covered too */
	expect_refused(test, blob, len, -EBADMSG, "CRC");
}

/* Counts that disagree with the length or the limits, CRC made valid. */
static void codec_refuses_bad_counts(struct kunit *test)
{
	const size_t len = sizeof(cvm_vec_map);
	u8 *blob = vec_blob(test);

	cvm_put_le32(blob + 24, cvm_get_le32(blob + 24) + 1);
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "does not match its counts");

	cvm_put_le32(blob + 24, CVM_MAX_DEVICES + 1);
	fix_crc(blob, len);
	expect_refused(test, blob, len, -E2BIG, "too many devices");

	/* 2^30 devices: the implied length must not wrap. */
	cvm_put_le32(blob + 24, 1u << 30);
	fix_crc(blob, len);
	expect_refused(test, blob, len, -E2BIG, "too many devices");
}

/* Children counts that disagree, and a bad map in a well-formed blob. */
static void codec_refuses_bad_content(struct kunit *test)
{
	const size_t len = sizeof(cvm_vec_map);
	const size_t buckets = CVM_MAP_HEADER_LEN +
			       cvm_get_le32(cvm_vec_map + 24) *
			       CVM_MAP_DEVICE_LEN;
	u8 *blob = vec_blob(test);

	/* The buckets claim one child less than the header counts. */
	cvm_put_le32(blob + buckets + 8, cvm_get_le32(blob + buckets + 8) - 1);
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "does not match the buckets");

	memcpy(blob, cvm_vec_map, len);
	cvm_put_le32(blob + buckets + 8, 0xffffffff);
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EBADMSG, "exceed the child count");

	memcpy(blob, cvm_vec_map, len);
	cvm_put_le32(blob + CVM_MAP_HEADER_LEN, 1);	/* device 0 -> id 1 */
	fix_crc(blob, len);
	expect_refused(test, blob, len, -EINVAL, "duplicate device id");
}

static struct kunit_case codec_cases[] = {
	KUNIT_CASE(codec_decodes_vector_map),
	KUNIT_CASE(codec_refuses_truncation),
	KUNIT_CASE(codec_refuses_bad_header),
	KUNIT_CASE(codec_refuses_bad_crc),
	KUNIT_CASE(codec_refuses_bad_counts),
	KUNIT_CASE(codec_refuses_bad_content),
	{}
};

static struct kunit_suite codec_suite = {
	.name = "cvm_map_codec",
	.test_cases = codec_cases,
};

kunit_test_suite(codec_suite);

MODULE_LICENSE("GPL");
