// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// The shared placement vectors (kernel/tests/placement_vectors.h): the
// KUnit suite checks the same values inside the kernel, so a pass on both
// sides means the daemon and the kernel place every PG identically.
#include "../../kernel/tests/placement_vectors.h"

#include <gtest/gtest.h>

#include <vector>

#include "../tools/map_builder.h"

namespace cvm::tools {
namespace {

TEST(PlacementVectorsTest, TablesMatchTheVectorFile) {
  cvm_map *raw = nullptr;
  cvm_err err{};
  ASSERT_EQ(cvm_map_decode(cvm_vec_map, sizeof(cvm_vec_map), &raw, &err), 0)
      << err.why;
  MapPtr map(raw);
  ASSERT_EQ(map->nr_pools, std::size(cvm_vec_pools));
  for (const cvm_vec_pool &v : cvm_vec_pools) {
    SCOPED_TRACE(v.pool_id);
    const auto table = PgTable(map.get(), v.pool_id);
    ASSERT_EQ(table.size(), size_t{v.pg_num} * v.width);
    EXPECT_EQ(cvm_pg_table_crc(table.data(), table.size()), v.table_crc);
    for (unsigned r = 0; r < CVM_VEC_ROWS; r++)
      for (unsigned i = 0; i < v.width; i++)
        EXPECT_EQ(table[r * v.width + i], v.rows[r][i]) << "PG " << r;
  }
}

TEST(PlacementVectorsTest, ReencodingGivesTheSameBytes) {
  cvm_map *raw = nullptr;
  ASSERT_EQ(cvm_map_decode(cvm_vec_map, sizeof(cvm_vec_map), &raw, nullptr), 0);
  MapPtr map(raw);
  const std::vector<uint8_t> blob = Encode(map.get());
  EXPECT_EQ(blob, std::vector<uint8_t>(std::begin(cvm_vec_map),
                                       std::end(cvm_vec_map)));
}

TEST(PlacementVectorsTest, ObjectPgsMatchTheVectorFile) {
  for (const cvm_vec_object &o : cvm_vec_objects)
    EXPECT_EQ(cvm_object_pg(o.volume_id, o.object_no, o.pg_num), o.pg)
        << o.volume_id << "/" << o.object_no;
}

// The vector map exercises what it claims: out devices hold nothing.
TEST(PlacementVectorsTest, OutDevicesOfTheVectorMapHoldNothing) {
  cvm_map *raw = nullptr;
  ASSERT_EQ(cvm_map_decode(cvm_vec_map, sizeof(cvm_vec_map), &raw, nullptr), 0);
  MapPtr map(raw);
  unsigned out = 0;
  for (uint32_t i = 0; i < map->nr_devices; i++) {
    const cvm_device &d = map->devices[i];
    if ((d.state & CVM_DEV_IN) && d.weight) continue;
    out++;
    for (const cvm_vec_pool &v : cvm_vec_pools) {
      const auto table = PgTable(map.get(), v.pool_id);
      EXPECT_EQ(std::count(table.begin(), table.end(), d.id), 0);
    }
  }
  EXPECT_EQ(out, 3u);
}

}  // namespace
}  // namespace cvm::tools
