#pragma once

// Writes behind the metadata store's back, as disk corruption or a buggy
// writer would: for tests of what the store and cvmd do with bad records.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <string>
#include <vector>

#include "metadata_store.h"

namespace cvm::testing {

// Puts `value` under `key` of column family `cf` of the closed database in
// `dir`, with RocksDB directly.
inline void WriteRaw(const std::string& dir, Cf cf, const std::string& key,
                     const std::string& value) {
  std::vector<std::string> names;
  ASSERT_TRUE(
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names)
    descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(
      rocksdb::DB::Open(rocksdb::DBOptions(), dir, descriptors, &handles, &db)
          .ok());
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == CfName(cf)) {
      ASSERT_TRUE(
          db->Put(rocksdb::WriteOptions(), handles[i], key, value).ok());
    }
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;  // RocksDB's own API hands out a raw owning pointer
}

}  // namespace cvm::testing
