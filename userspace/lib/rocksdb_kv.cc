// KvStore on embedded RocksDB: one column family per Cf. One process at a
// time (RocksDB's lock file), so a commit never conflicts.

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>

#include "etcd_client.h"
#include "kv_store.h"

namespace cvm {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return {};
  if (s.IsCorruption()) {
    return Corruption(fmt::format("{}: {}", what, s.ToString()));
  }
  return IoError(fmt::format("{}: {}", what, s.ToString()));
}

class RocksKv final : public KvStore {
 public:
  explicit RocksKv(std::string dir) : dir_(std::move(dir)) {}
  ~RocksKv() override {
    if (!db_) return;
    for (auto* handle : all_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close();
  }

  Status Open();

  std::string Describe() const override { return dir_; }
  Status Begin() override { return {}; }
  void End() override {}

  Result<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), Handle(cf), ToSlice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    CVM_RETURN_IF_ERROR(FromRocks(s, fmt::format("read {}", CfName(cf))));
    return std::optional<std::string>(std::move(value));
  }

  Status Scan(Cf cf, const KvScanFn& fn) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), Handle(cf)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      CVM_RETURN_IF_ERROR(
          fn(std::string_view(it->key().data(), it->key().size()),
             std::string_view(it->value().data(), it->value().size())));
    }
    return FromRocks(it->status(), fmt::format("scan {}", CfName(cf)));
  }

  Result<uint64_t> Count(Cf cf) override {
    uint64_t n = 0;
    CVM_RETURN_IF_ERROR(Scan(cf, [&](std::string_view, std::string_view) {
      ++n;
      return Status();
    }));
    return n;
  }

  Status Commit(const KvBatch& batch, bool sync) override {
    rocksdb::WriteBatch wb;
    for (const auto& op : batch.ops()) {
      if (op.value) {
        wb.Put(Handle(op.cf), op.key, *op.value);
      } else {
        wb.Delete(Handle(op.cf), op.key);
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    CVM_RETURN_IF_ERROR(FromRocks(db_->Write(wo, &wb), "metadata commit"));
    ++commits_;
    return {};
  }

  // One process writes (the lock file): its own commits are every change.
  Result<int64_t> ChangeMark() override { return commits_.load(); }

 private:
  rocksdb::ColumnFamilyHandle* Handle(Cf cf) const {
    return cf_[static_cast<size_t>(cf)];
  }

  std::string dir_;
  std::atomic<int64_t> commits_{0};
  // Handles go before the DB (the destructor), which RocksDB's own API hands
  // out as a raw owning pointer.
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> all_;  // everything opened
  rocksdb::ColumnFamilyHandle* cf_[std::size(kAllCfs)] = {};
};

Status RocksKv::Open() {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 4;
  db_options.max_log_file_size = 1 << 20;

  // Open every family that exists (a newer version may have added some) plus
  // the ones we need.
  std::vector<std::string> names;
  rocksdb::Status ls =
      rocksdb::DB::ListColumnFamilies(db_options, dir_, &names);
  if (!ls.ok()) names.clear();  // a new database
  if (std::find(names.begin(), names.end(),
                rocksdb::kDefaultColumnFamilyName) == names.end()) {
    names.push_back(rocksdb::kDefaultColumnFamilyName);
  }
  for (Cf cf : kAllCfs) {
    if (std::find(names.begin(), names.end(), CfName(cf)) == names.end()) {
      names.emplace_back(CfName(cf));
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, dir_, descriptors, &all_, &raw);
  if (!s.ok()) {
    const std::string text = s.ToString();
    if (s.IsIOError() && (text.find("lock") != std::string::npos ||
                          text.find("LOCK") != std::string::npos)) {
      return Unavailable(fmt::format(
          "metadata database {} is locked by another process (is another cvmd "
          "running?): {}",
          dir_, text));
    }
    return FromRocks(s, fmt::format("cannot open metadata database {}", dir_));
  }
  db_.reset(raw);
  for (size_t i = 0; i < names.size(); ++i) {
    for (Cf cf : kAllCfs) {
      if (names[i] == CfName(cf)) cf_[static_cast<size_t>(cf)] = all_[i];
    }
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<KvStore>> OpenRocksKv(const std::string& dir) {
  auto kv = std::make_unique<RocksKv>(dir);
  CVM_RETURN_IF_ERROR(kv->Open());
  return std::unique_ptr<KvStore>(std::move(kv));
}

Result<std::unique_ptr<KvStore>> OpenKvStore(const std::string& location) {
  if (IsEtcdUri(location)) return OpenEtcdKv(location);
  return OpenRocksKv(location);
}

}  // namespace cvm
