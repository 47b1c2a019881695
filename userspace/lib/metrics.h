#pragma once

// Prometheus metrics (text format 0.0.4) for GET /metrics and the "metrics"
// op: what this cvmd's kernel measures of the volumes attached here (IOPS
// and bytes from the block layer's /sys/block/cvmN/stat, a latency
// histogram from cvm.ko's /sys/block/cvmN/cvm/latency), the store's view of
// every device (state, capacity, use as its node last reported it, each
// initiator's path and the stale objects it recorded) and the cluster's
// recovery.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model.h"
#include "status.h"

namespace cvm {

struct LatencyHistogram {
  uint64_t count = 0;
  uint64_t sum_ns = 0;
  std::vector<uint64_t> buckets;  // bucket i: at most 2^i us (cvm.h)
};

// One volume attached on this node, as its kernel counts it.
struct VolumeIoStats {
  std::string name;
  uint32_t minor = 0;
  uint64_t reads = 0, read_bytes = 0, read_ms = 0;
  uint64_t writes = 0, written_bytes = 0, write_ms = 0;
  uint64_t in_flight = 0;
  bool has_latency = false;  // an older cvm.ko has no histogram
  LatencyHistogram read_latency, write_latency;
};

// Reads /sys/block/cvm<minor>/stat and cvm/latency under `sys_block`.
Result<VolumeIoStats> ReadVolumeIoStats(const std::string& sys_block,
                                        const std::string& name,
                                        uint32_t minor);
// The latency file's text; kCorruption when it does not parse.
Result<std::pair<LatencyHistogram, LatencyHistogram>> ParseLatency(
    const std::string& text);

struct MetricsInput {
  uint64_t map_epoch = 0;
  std::vector<Device> devices;
  std::map<uint64_t, std::string> host_names;  // host id -> name
  std::map<uint64_t, uint64_t> device_used;    // device id -> bytes
  std::vector<PathState> paths;
  nlohmann::json df = nlohmann::json::object();        // cluster.df
  nlohmann::json recovery = nlohmann::json::object();  // recovery.status
  std::vector<VolumeIoStats> volumes;
};

std::string RenderMetrics(const MetricsInput& in);

}  // namespace cvm
