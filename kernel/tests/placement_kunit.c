// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests for kernel/common/placement: the shared vectors (the same
 * PG tables the userspace suite checks), failure-domain separation, out
 * devices, and refusal of bad maps with a reason.
 */
#include <kunit/test.h>
#include "map_codec.h"
#include "placement_vectors.h"

/*
 * A root (id -1) holding @racks racks holding @hosts hosts each holding
 * @devs devices of weight 1.0, ids in order, and one replicated(3) pool
 * with host failure domain.  Buckets: root, then each rack followed by its
 * hosts.  Not finalized, so tests can break it first.
 */
static struct cvm_map *tree_map(struct kunit *test, u32 racks, u32 hosts,
				u32 devs)
{
	const u32 nr_buckets = 1 + racks * (1 + hosts);
	const u32 nr_devices = racks * hosts * devs;
	struct cvm_map *map;
	u32 r, h, d, b = 1, child = racks, dev = 0;

	KUNIT_ASSERT_EQ(test, cvm_map_alloc(&map, nr_devices, nr_buckets,
					    nr_devices + nr_buckets - 1, 1,
					    NULL), 0);
	map->buckets[0] = (struct cvm_bucket){ -1, CVM_TYPE_ROOT, 0, racks };
	for (r = 0; r < racks; r++) {
		const u32 rack = b++;

		map->children[r] = -1 - (s32)rack;
		map->buckets[rack] = (struct cvm_bucket){
			-1 - (s32)rack, CVM_TYPE_RACK, child, hosts };
		child += hosts;
		for (h = 0; h < hosts; h++) {
			const u32 host = b++;

			map->children[map->buckets[rack].first_child + h] =
				-1 - (s32)host;
			map->buckets[host] = (struct cvm_bucket){
				-1 - (s32)host, CVM_TYPE_HOST, child, devs };
			for (d = 0; d < devs; d++, dev++) {
				map->children[child++] = dev;
				map->devices[dev] = (struct cvm_device){
					dev, 0x10000, CVM_DEV_UP | CVM_DEV_IN };
			}
		}
	}
	map->pools[0] = (struct cvm_pool){ .id = 1, .pg_num = 256,
		.kind = CVM_POOL_REPLICATED, .k = 3,
		.failure_domain = CVM_TYPE_HOST };
	return map;
}

/* Both suites must compute exactly these tables from this map. */
static void placement_shared_vectors(struct kunit *test)
{
	struct cvm_err err = {};
	struct cvm_map *map;
	size_t i, n;
	u32 *table, r;
	u8 *blob;

	KUNIT_ASSERT_EQ(test, cvm_map_decode(cvm_vec_map, sizeof(cvm_vec_map),
					     &map, &err), 0);
	KUNIT_EXPECT_EQ(test, map->nr_pools, ARRAY_SIZE(cvm_vec_pools));

	/* Re-encoding gives the same bytes. */
	blob = kunit_kzalloc(test, sizeof(cvm_vec_map), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, blob);
	KUNIT_EXPECT_EQ(test, cvm_map_encoded_len(map), sizeof(cvm_vec_map));
	KUNIT_EXPECT_EQ(test, cvm_map_encode(map, blob, sizeof(cvm_vec_map),
					     &err), 0);
	KUNIT_EXPECT_EQ(test, memcmp(blob, cvm_vec_map, sizeof(cvm_vec_map)),
			0);

	for (i = 0; i < ARRAY_SIZE(cvm_vec_pools); i++) {
		const struct cvm_vec_pool *v = &cvm_vec_pools[i];

		KUNIT_ASSERT_EQ(test, cvm_pg_table_create(map, v->pool_id,
							  &table, &n, &err),
				0);
		KUNIT_EXPECT_EQ(test, n, (size_t)v->pg_num * v->width);
		KUNIT_EXPECT_EQ_MSG(test, cvm_pg_table_crc(table, n),
				    v->table_crc, "pool %u", v->pool_id);
		for (r = 0; r < CVM_VEC_ROWS; r++)
			KUNIT_EXPECT_EQ(test, memcmp(&table[r * v->width],
						     v->rows[r],
						     v->width * sizeof(u32)),
					0);
		cvm_pg_table_free(table);
	}
	cvm_map_free(map);

	for (i = 0; i < ARRAY_SIZE(cvm_vec_objects); i++) {
		const struct cvm_vec_object *o = &cvm_vec_objects[i];

		KUNIT_EXPECT_EQ(test, cvm_object_pg(o->volume_id, o->object_no,
						    o->pg_num),
				o->pg);
	}
}

/* Hosts are buckets 2.. of their rack; device d sits in host d / devs. */
static void placement_distinct_hosts(struct kunit *test)
{
	struct cvm_map *map = tree_map(test, 3, 4, 3);
	struct cvm_err err = {};
	u32 pg, devs[3];

	KUNIT_ASSERT_EQ(test, cvm_map_finalize(map, &err), 0);
	for (pg = 0; pg < map->pools[0].pg_num; pg++) {
		KUNIT_ASSERT_EQ(test, cvm_place_pg(map, &map->pools[0], pg,
						   devs), 0);
		KUNIT_EXPECT_NE(test, devs[0], CVM_DEV_NONE);
		KUNIT_EXPECT_NE(test, devs[1], CVM_DEV_NONE);
		KUNIT_EXPECT_NE(test, devs[2], CVM_DEV_NONE);
		KUNIT_EXPECT_NE(test, devs[0] / 3, devs[1] / 3);
		KUNIT_EXPECT_NE(test, devs[0] / 3, devs[2] / 3);
		KUNIT_EXPECT_NE(test, devs[1] / 3, devs[2] / 3);
	}
	cvm_map_free(map);
}

/* Out and zero-weight devices get nothing; a down but in one keeps data. */
static void placement_skips_out_devices(struct kunit *test)
{
	struct cvm_map *map = tree_map(test, 2, 3, 3);
	struct cvm_err err = {};
	u32 pg, i, devs[3], on_down = 0;

	map->devices[4].state = CVM_DEV_UP;
	map->devices[8].weight = 0;
	map->devices[11].state = CVM_DEV_IN;
	KUNIT_ASSERT_EQ(test, cvm_map_finalize(map, &err), 0);
	for (pg = 0; pg < map->pools[0].pg_num; pg++) {
		KUNIT_ASSERT_EQ(test, cvm_place_pg(map, &map->pools[0], pg,
						   devs), 0);
		for (i = 0; i < 3; i++) {
			KUNIT_EXPECT_NE(test, devs[i], 4u);
			KUNIT_EXPECT_NE(test, devs[i], 8u);
			KUNIT_EXPECT_NE(test, devs[i], CVM_DEV_NONE);
			on_down += devs[i] == 11;
		}
	}
	KUNIT_EXPECT_GT(test, on_down, 0u);
	cvm_map_free(map);
}

struct bad_map_case {
	const char *name;
	void (*breaker)(struct cvm_map *map);
	int ret;
	const char *words;	/* must appear in the reason */
};

/* tree_map(2, 3, 2): buckets -1 root, -2 rack (hosts -3..-5), -6 rack. */
static void dup_device(struct cvm_map *m)
{
	m->devices[3].id = 2;
}

static void dangling(struct cvm_map *m)
{
	m->children[m->nr_children - 1] = 999;
}

static void twice(struct cvm_map *m)
{
	m->children[m->nr_children - 1] = m->children[m->nr_children - 2];
}

/* The root's second rack is replaced by the root itself. */
static void root_loop(struct cvm_map *m)
{
	m->children[1] = -1;
}

static void no_root(struct cvm_map *m)
{
	m->buckets[0].type = CVM_TYPE_ROW;
}

static void no_weight(struct cvm_map *m)
{
	u32 i;

	for (i = 0; i < m->nr_devices; i++)
		m->devices[i].weight = 0;
}

static void few_domains(struct cvm_map *m)
{
	m->pools[0].failure_domain = CVM_TYPE_RACK;
}

static void bad_pg_num(struct cvm_map *m)
{
	m->pools[0].pg_num = 3;
}

static void bad_state(struct cvm_map *m)
{
	m->devices[0].state = 0x10;
}

/* Only device 0 is of class 1: a pool of that class has too few hosts. */
static void few_class_domains(struct cvm_map *m)
{
	m->devices[0].state |= 1u << CVM_DEV_CLASS_SHIFT;
	m->pools[0].device_class = 1;
}

static const struct bad_map_case bad_map_cases[] = {
	{ "duplicate device", dup_device, -EINVAL, "duplicate device id" },
	{ "dangling child", dangling, -EINVAL, "not a known device" },
	{ "child twice", twice, -EINVAL, "listed twice" },
	{ "loop", root_loop, -ELOOP, "loop" },
	{ "no root", no_root, -EINVAL, "no root" },
	{ "zero weight", no_weight, -EINVAL, "total weight is zero" },
	{ "few domains", few_domains, -EINVAL, "more slots than failure" },
	{ "pg_num", bad_pg_num, -EINVAL, "pg_num" },
	{ "state", bad_state, -EINVAL, "state bits" },
	{ "class", few_class_domains, -EINVAL, "devices of its class" },
};

static void bad_map_desc(const struct bad_map_case *c, char *desc)
{
	strscpy(desc, c->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(bad_map, bad_map_cases, bad_map_desc);

static void placement_refuses_bad_map(struct kunit *test)
{
	const struct bad_map_case *c = test->param_value;
	struct cvm_map *map = tree_map(test, 2, 3, 2);
	struct cvm_err err = {};

	c->breaker(map);
	KUNIT_EXPECT_EQ(test, cvm_map_finalize(map, &err), c->ret);
	KUNIT_ASSERT_NOT_NULL(test, err.why);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(err.why, c->words),
				  "reason was: %s", err.why);
	KUNIT_EXPECT_FALSE(test, map->finalized);
	cvm_map_free(map);
}

static struct kunit_case placement_cases[] = {
	KUNIT_CASE(placement_shared_vectors),
	KUNIT_CASE(placement_distinct_hosts),
	KUNIT_CASE(placement_skips_out_devices),
	KUNIT_CASE_PARAM(placement_refuses_bad_map, bad_map_gen_params),
	{}
};

static struct kunit_suite placement_suite = {
	.name = "cvm_placement",
	.test_cases = placement_cases,
};

kunit_test_suite(placement_suite);

MODULE_LICENSE("GPL");
