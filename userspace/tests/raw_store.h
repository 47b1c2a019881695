#pragma once

// Writes behind the metadata store's back, as disk corruption or a buggy
// writer would: for tests of what the store and cvmd do with bad records.

#include <gtest/gtest.h>

#include <string>

#include "kv_store.h"
#include "metadata_store.h"
#include "test_util.h"

namespace cvm::testing {

// Puts `value` under `key` of family `cf` at `location` (a RocksDB
// directory, closed, or an etcd:// URI), through the key-value layer.
inline void WriteRaw(const std::string& location, Cf cf, const std::string& key,
                     const std::string& value) {
  auto kv = OpenKvStore(location);
  ASSERT_OK(kv);
  ASSERT_OK((*kv)->Begin());
  KvBatch batch;
  batch.Put(cf, key, value);
  EXPECT_OK((*kv)->Commit(batch, /*sync=*/true));
  (*kv)->End();
}

}  // namespace cvm::testing
