#include "model.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

#include "json_fields.h"
#include "placement.h"

namespace cvm {

using nlohmann::json;

namespace {

template <typename Enum, size_t N>
Result<Enum> ParseEnum(std::string_view what, std::string_view s,
                       const std::pair<Enum, std::string_view> (&names)[N]) {
  std::string choices;
  for (const auto& [value, name] : names) {
    if (name == s) return value;
    choices += (choices.empty() ? "" : ", ") + std::string(name);
  }
  return InvalidArgument(
      fmt::format("{} '{}' is not one of {}", what, Printable(s), choices));
}

constexpr std::pair<Transport, std::string_view> kTransports[] = {
    {Transport::kTcp, "tcp"}, {Transport::kRdma, "rdma"}};
constexpr std::pair<FailureDomain, std::string_view> kDomains[] = {
    {FailureDomain::kHost, "host"},
    {FailureDomain::kRack, "rack"},
    {FailureDomain::kRow, "row"}};
constexpr std::pair<Provisioning, std::string_view> kProvisionings[] = {
    {Provisioning::kThin, "thin"}, {Provisioning::kThick, "thick"}};

template <typename Enum, size_t N>
std::string_view EnumName(Enum v,
                          const std::pair<Enum, std::string_view> (&names)[N]) {
  for (const auto& [value, name] : names) {
    if (value == v) return name;
  }
  return "?";
}

// A volume's fence record, {"<host id>": epoch}: JSON keys are strings.
json FencedToJson(const std::map<uint64_t, uint64_t>& fenced) {
  json out = json::object();
  for (const auto& [host, epoch] : fenced) out[std::to_string(host)] = epoch;
  return out;
}

Result<std::map<uint64_t, uint64_t>> FencedFromJson(const json& j) {
  std::map<uint64_t, uint64_t> out;
  if (!j.is_object()) {
    return Corruption("volume record field 'fenced' is not an object");
  }
  for (const auto& [key, epoch] : j.items()) {
    uint64_t host = 0;
    const auto [end, ec] =
        std::from_chars(key.data(), key.data() + key.size(), host);
    if (ec != std::errc() || end != key.data() + key.size() || host == 0 ||
        !epoch.is_number_unsigned()) {
      return Corruption(fmt::format(
          "volume record field 'fenced': '{}' is not a host id with an epoch",
          Printable(key)));
    }
    out[host] = epoch.get<uint64_t>();
  }
  return out;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
         c == '-';
}

Status ValidateAddress(std::string_view a) {
  if (a.empty() || a.size() > 255) {
    return InvalidArgument("host address must be 1 to 255 characters");
  }
  for (char c : a) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == ':' ||
          c == '-' || c == '[' || c == ']' || c == '_' || c == '%')) {
      return InvalidArgument(fmt::format(
          "host address '{}' is invalid: expected host, host:port or "
          "[ipv6]:port",
          Printable(a)));
    }
  }
  return {};
}

Status ValidateSectorSize(std::string_view what, uint64_t bytes) {
  if (bytes == 0) return InvalidArgument(fmt::format("{} must be > 0", what));
  if (bytes % kSectorSize != 0) {
    return InvalidArgument(
        fmt::format("{} {} is not a multiple of the {}-byte sector", what,
                    bytes, kSectorSize));
  }
  return {};
}

// Decoding helpers: every decode failure is corruption, named by kind.
Status AsCorruption(const Status& s, std::string_view kind) {
  if (s.ok()) return s;
  if (s.code() == Code::kCorruption) return s;
  return Corruption(fmt::format("{} record: {}", kind, s.message()));
}

Result<json> ParseRecord(std::string_view bytes, std::string_view kind) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Corruption(fmt::format("{} record is not valid JSON ({} bytes)",
                                  kind, bytes.size()));
  }
  if (!j.is_object()) {
    return Corruption(fmt::format("{} record is a JSON {}, not an object", kind,
                                  j.type_name()));
  }
  return j;
}

template <typename T>
Status AssignParsed(T* out, Result<T> r, std::string_view kind) {
  if (!r.ok()) return AsCorruption(r.status(), kind);
  *out = std::move(r).value();
  return {};
}

}  // namespace

std::string_view ToString(Transport t) { return EnumName(t, kTransports); }
std::string_view ToString(FailureDomain f) { return EnumName(f, kDomains); }
std::string_view ToString(Provisioning p) {
  return EnumName(p, kProvisionings);
}
Result<Transport> ParseTransport(std::string_view s) {
  return ParseEnum("transport", s, kTransports);
}
Result<FailureDomain> ParseFailureDomain(std::string_view s) {
  return ParseEnum("failure domain", s, kDomains);
}
Result<Provisioning> ParseProvisioning(std::string_view s) {
  return ParseEnum("provisioning", s, kProvisionings);
}

Result<HostPort> ParseHostPort(std::string_view a) {
  const auto bad = [&](std::string_view why) {
    return InvalidArgument(
        fmt::format("address '{}' {}: expected IPv4:PORT or [IPv6]:PORT",
                    Printable(a), why));
  };
  const size_t colon = a.rfind(':');
  if (colon == std::string_view::npos) return bad("has no port");
  std::string_view host = a.substr(0, colon);
  const std::string_view port = a.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("needs brackets around an IPv6 address");
  }
  unsigned value = 0;
  auto [ptr, ec] =
      std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() ||
      value == 0 || value > 65535) {
    return bad("has no port from 1 to 65535");
  }
  HostPort hp{std::string(host), static_cast<uint16_t>(value)};
  in6_addr buf;
  if (inet_pton(AF_INET, hp.addr.c_str(), &buf) != 1 &&
      inet_pton(AF_INET6, hp.addr.c_str(), &buf) != 1) {
    return bad("is not a numeric IP address");
  }
  return hp;
}

Result<Policy> ParsePolicy(std::string_view text) {
  const auto bad = [&] {
    return InvalidArgument(
        fmt::format("policy '{}' is malformed: expected replicated:N or ec:K,M",
                    Printable(text)));
  };
  const auto parse_u32 = [](std::string_view s, uint32_t* out) {
    if (s.empty() || s.size() > 3) return false;
    uint32_t v = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  };
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return bad();
  const std::string_view kind = text.substr(0, colon);
  const std::string_view rest = text.substr(colon + 1);
  Policy p;
  if (kind == "replicated" || kind == "rep") {
    p = Policy::Replicated(0);
    if (!parse_u32(rest, &p.replicas)) return bad();
  } else if (kind == "ec") {
    const size_t sep = rest.find_first_of(",+");
    if (sep == std::string_view::npos) return bad();
    p = Policy::Erasure(0, 0);
    if (!parse_u32(rest.substr(0, sep), &p.k) ||
        !parse_u32(rest.substr(sep + 1), &p.m)) {
      return bad();
    }
  } else {
    return bad();
  }
  CVM_RETURN_IF_ERROR(ValidatePolicy(p));
  return p;
}

std::string ToString(const Policy& p) {
  if (p.kind == Policy::Kind::kReplicated) {
    return fmt::format("replicated:{}", p.replicas);
  }
  return fmt::format("ec:{},{}", p.k, p.m);
}

Status ValidateName(std::string_view kind, std::string_view name) {
  if (name.empty()) {
    return InvalidArgument(fmt::format("{} name must not be empty", kind));
  }
  if (name.size() > kMaxNameLength) {
    return InvalidArgument(
        fmt::format("{} name '{}' is too long ({} characters, at most {})",
                    kind, Printable(name, 40), name.size(), kMaxNameLength));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return InvalidArgument(
          fmt::format("{} name '{}' is invalid: use letters, digits, '.', '_' "
                      "and '-' only",
                      kind, Printable(name)));
    }
  }
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) {
    return InvalidArgument(
        fmt::format("{} name '{}' must start with a letter or digit", kind,
                    Printable(name)));
  }
  return {};
}

Status ValidateHost(const Host& h) {
  CVM_RETURN_IF_ERROR(ValidateName("host", h.name));
  if (h.addresses.empty()) {
    return InvalidArgument(
        fmt::format("host '{}' needs at least one address", h.name));
  }
  if (h.addresses.size() > kMaxAddresses) {
    return InvalidArgument(fmt::format("host '{}' has {} addresses, at most {}",
                                       h.name, h.addresses.size(),
                                       kMaxAddresses));
  }
  for (const auto& a : h.addresses) CVM_RETURN_IF_ERROR(ValidateAddress(a));
  for (const auto& l : h.listeners) {
    if (std::find(h.addresses.begin(), h.addresses.end(), l) ==
        h.addresses.end()) {
      return InvalidArgument(fmt::format(
          "host '{}' listens on '{}', which is not one of its addresses",
          h.name, Printable(l)));
    }
  }
  if (!h.rack.empty()) CVM_RETURN_IF_ERROR(ValidateName("rack", h.rack));
  if (!h.row.empty()) CVM_RETURN_IF_ERROR(ValidateName("row", h.row));
  return {};
}

Status ValidateDevice(const Device& d) {
  if (d.path.empty() || d.path[0] != '/') {
    return InvalidArgument(fmt::format(
        "device path '{}' must be an absolute path such as /dev/nvme0n1",
        Printable(d.path)));
  }
  if (d.path.size() > kMaxPathLength) {
    return InvalidArgument("device path is too long");
  }
  for (char c : d.path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return InvalidArgument(
          fmt::format("device path '{}' contains a space or control character",
                      Printable(d.path)));
    }
  }
  CVM_RETURN_IF_ERROR(ValidateSectorSize("device capacity", d.capacity));
  if (!std::isfinite(d.weight) || d.weight <= 0 || d.weight > kMaxWeight) {
    return InvalidArgument(fmt::format(
        "device weight {} must be > 0 and at most {}", d.weight, kMaxWeight));
  }
  CVM_RETURN_IF_ERROR(ValidateName("device class", d.device_class));
  return {};
}

Status ValidateNewHost(const Host& h) {
  CVM_RETURN_IF_ERROR(ValidateHost(h));
  for (size_t i = 0; i < h.addresses.size(); ++i) {
    CVM_RETURN_IF_ERROR(ParseHostPort(h.addresses[i]).status());
    for (size_t j = 0; j < i; ++j) {
      if (h.addresses[j] == h.addresses[i]) {
        return InvalidArgument(fmt::format(
            "host '{}': address '{}' is given twice", h.name, h.addresses[i]));
      }
    }
  }
  return {};
}

Status ValidateNewDevice(const Device& d) {
  CVM_RETURN_IF_ERROR(ValidateDevice(d));
  if (d.weight < kMinWeight) {
    return InvalidArgument(fmt::format(
        "device weight {} is below the smallest the map can hold, 1/65536 "
        "({:.7f}): weights are 16.16 fixed point",
        d.weight, kMinWeight));
  }
  return {};
}

Status ValidatePolicy(const Policy& p) {
  if (p.kind == Policy::Kind::kReplicated) {
    if (p.replicas < 1 || p.replicas > kMaxReplicas) {
      return InvalidArgument(
          fmt::format("replicated pool needs 1 to {} replicas, not {}",
                      kMaxReplicas, p.replicas));
    }
    return {};
  }
  if (p.k < kMinEcK || p.k > kMaxEcK) {
    return InvalidArgument(
        fmt::format("erasure-coded pool needs k in {}..{} data chunks, not {}",
                    kMinEcK, kMaxEcK, p.k));
  }
  if (p.m < kMinEcM || p.m > kMaxEcM) {
    return InvalidArgument(fmt::format(
        "erasure-coded pool needs m in {}..{} parity chunks, not {}", kMinEcM,
        kMaxEcM, p.m));
  }
  return {};
}

Status ValidatePool(const Pool& p) {
  CVM_RETURN_IF_ERROR(ValidateName("pool", p.name));
  CVM_RETURN_IF_ERROR(ValidatePolicy(p.policy));
  if (!IsPowerOfTwo(p.pg_num) || p.pg_num > kMaxPgNum) {
    return InvalidArgument(fmt::format(
        "pg_num {} must be a power of two from 1 to {}", p.pg_num, kMaxPgNum));
  }
  if (!p.device_class.empty()) {
    CVM_RETURN_IF_ERROR(ValidateName("device class", p.device_class));
  }
  if (p.min_size != 0) {
    const bool ec = p.policy.kind == Policy::Kind::kErasure;
    const uint32_t lo = ec ? p.policy.k : 1;
    const uint32_t hi = ec ? p.policy.k + p.policy.m : p.policy.replicas;
    if (p.min_size < lo || p.min_size > hi) {
      return InvalidArgument(fmt::format(
          "min_size {} must be from {} to {} for {} ({})", p.min_size, lo, hi,
          ToString(p.policy),
          ec ? "fewer than k shards cannot hold the data" : "its copies"));
    }
  }
  return {};
}

uint32_t EffectiveMinSize(const Pool& p) {
  if (p.min_size != 0) return p.min_size;
  if (p.policy.kind == Policy::Kind::kErasure) {
    return p.policy.m >= 2 ? p.policy.k + 1 : p.policy.k;
  }
  return p.policy.replicas - p.policy.replicas / 2;
}

uint64_t RawBytes(const Policy& p, uint64_t bytes) {
  // Volumes are at most 1 EiB and policies at most 5x or (8+4)/2: no overflow
  // in 128 bits, and the result fits 64.
  if (p.kind == Policy::Kind::kReplicated) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(bytes) *
                                 p.replicas);
  }
  const unsigned __int128 raw =
      (static_cast<unsigned __int128>(bytes) * (p.k + p.m) + p.k - 1) / p.k;
  return static_cast<uint64_t>(raw);
}

Status ValidateVolume(const Volume& v) {
  CVM_RETURN_IF_ERROR(ValidateName("volume", v.name));
  CVM_RETURN_IF_ERROR(ValidateSectorSize("volume size", v.size));
  if (v.size > kMaxVolumeSize) {
    return InvalidArgument(fmt::format("volume size {} exceeds the {} limit",
                                       FormatSize(v.size),
                                       FormatSize(kMaxVolumeSize)));
  }
  if (!IsPowerOfTwo(v.object_size) || v.object_size < kMinObjectSize ||
      v.object_size > kMaxObjectSize) {
    return InvalidArgument(fmt::format(
        "object size {} must be a power of two from {} to {}", v.object_size,
        FormatSize(kMinObjectSize), FormatSize(kMaxObjectSize)));
  }
  if (!IsPowerOfTwo(v.stripe_unit) || v.stripe_unit < kMinStripeUnit ||
      v.stripe_unit > v.object_size) {
    return InvalidArgument(fmt::format(
        "stripe unit {} must be a power of two from {} to the object size ({})",
        v.stripe_unit, FormatSize(kMinStripeUnit), FormatSize(v.object_size)));
  }
  if (!v.attached_host.empty()) {
    CVM_RETURN_IF_ERROR(ValidateName("attached host", v.attached_host));
    if (v.attach_epoch == 0) {
      return InvalidArgument(
          fmt::format("volume '{}' is attached with attach epoch 0", v.name));
    }
  }
  return {};
}

Status ValidateSnapshot(const Snapshot& s) {
  CVM_RETURN_IF_ERROR(ValidateName("snapshot", s.name));
  if (s.seq == 0) return InvalidArgument("snapshot seq must be > 0");
  CVM_RETURN_IF_ERROR(ValidateSectorSize("snapshot size", s.size));
  return {};
}

namespace {
constexpr uint64_t kMaxDownOutInterval = 30 * 86400;
constexpr double kMinRatio = 0.05, kMaxRatio = 0.99;
constexpr uint64_t kMaxBalancerMoves = CVM_MAX_PG_NUM;
constexpr uint64_t kMaxIoErrorLimit = 1u << 20;

// A whole decimal number in [0, max] for setting `key`, or why not:
// "KEY must be 0 (ZERO) to MAX UNIT, not 'VALUE'".
Result<uint64_t> SettingCount(std::string_view key, std::string_view value,
                              uint64_t max, std::string_view zero,
                              std::string_view unit) {
  uint64_t v = 0;
  const auto [end, ec] =
      std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size() || v > max) {
    return InvalidArgument(fmt::format("{} must be 0 ({}) to {} {}, not '{}'",
                                       key, zero, max, unit, value));
  }
  return v;
}
}  // namespace

const std::vector<std::pair<std::string, std::string>>& SettingNames() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"down_out_interval",
       "seconds a device's path may stay down before it is marked out and "
       "its data rebuilt elsewhere (0: never)"},
      {"nearfull_ratio",
       "share of a device's space past which it is nearfull: a warning, and "
       "backfill places no data there"},
      {"full_ratio",
       "share of a device's space past which writes reaching it are refused "
       "with NO_SPACE"},
      {"balancer_max_moves",
       "PGs the balancer moves at once to even out the devices' shares, "
       "those still moving included (0: none)"},
      {"io_error_limit",
       "failed requests of a device's disk within a minute after which it "
       "is marked down and out (0: never)"},
  };
  return names;
}

Status ApplySetting(ClusterSettings* s, std::string_view key,
                    std::string_view value) {
  if (key == "down_out_interval") {
    CVM_ASSIGN_OR_RETURN(
        s->down_out_interval,
        SettingCount(key, value, kMaxDownOutInterval, "never", "seconds"));
    return {};
  }
  if (key == "balancer_max_moves") {
    CVM_ASSIGN_OR_RETURN(
        uint64_t v, SettingCount(key, value, kMaxBalancerMoves, "none", "PGs"));
    s->balancer_max_moves = static_cast<uint32_t>(v);
    return {};
  }
  if (key == "io_error_limit") {
    CVM_ASSIGN_OR_RETURN(uint64_t v, SettingCount(key, value, kMaxIoErrorLimit,
                                                  "never", "requests"));
    s->io_error_limit = static_cast<uint32_t>(v);
    return {};
  }
  if (key == "nearfull_ratio" || key == "full_ratio") {
    double v = 0;
    const auto [end, ec] =
        std::from_chars(value.data(), value.data() + value.size(), v);
    ClusterSettings next = *s;
    (key == "full_ratio" ? next.full_ratio : next.nearfull_ratio) = v;
    if (ec != std::errc() || end != value.data() + value.size() ||
        !(v >= kMinRatio && v <= kMaxRatio)) {
      return InvalidArgument(
          fmt::format("{} must be a share from {} to {}, not '{}'", key,
                      kMinRatio, kMaxRatio, value));
    }
    if (next.nearfull_ratio > next.full_ratio) {
      return InvalidArgument(
          fmt::format("nearfull_ratio {} must not exceed full_ratio {}",
                      next.nearfull_ratio, next.full_ratio));
    }
    *s = next;
    return {};
  }
  std::string known;
  for (const auto& [name, what] : SettingNames()) {
    known += (known.empty() ? "" : ", ") + name;
  }
  return InvalidArgument(
      fmt::format("unknown setting '{}' (known: {})", key, known));
}

json ToJson(const ClusterSettings& s) {
  return {{"down_out_interval", s.down_out_interval},
          {"nearfull_ratio", s.nearfull_ratio},
          {"full_ratio", s.full_ratio},
          {"balancer_max_moves", s.balancer_max_moves},
          {"io_error_limit", s.io_error_limit}};
}

Result<ClusterSettings> DecodeClusterSettings(std::string_view bytes) {
  ClusterSettings s;
  if (bytes.empty()) return s;
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "settings"));
  JsonFields f(j, "settings field", Code::kCorruption);
  f.Expect({"down_out_interval", "nearfull_ratio", "full_ratio",
            "balancer_max_moves", "io_error_limit"});
  s.down_out_interval =
      f.OptU64("down_out_interval").value_or(s.down_out_interval);
  const double nearfull =
      f.OptDouble("nearfull_ratio").value_or(s.nearfull_ratio);
  const double full = f.OptDouble("full_ratio").value_or(s.full_ratio);
  const uint64_t moves =
      f.OptU64("balancer_max_moves").value_or(s.balancer_max_moves);
  const uint64_t io_errors =
      f.OptU64("io_error_limit").value_or(s.io_error_limit);
  CVM_RETURN_IF_ERROR(f.status());
  // The rules `config set` applies.
  if (s.down_out_interval > kMaxDownOutInterval || moves > kMaxBalancerMoves ||
      io_errors > kMaxIoErrorLimit ||
      !(nearfull >= kMinRatio && nearfull <= kMaxRatio) ||
      !(full >= kMinRatio && full <= kMaxRatio) || nearfull > full) {
    return Corruption(fmt::format(
        "settings out of range: down_out_interval {}, nearfull_ratio {}, "
        "full_ratio {}, balancer_max_moves {}, io_error_limit {}",
        s.down_out_interval, nearfull, full, moves, io_errors));
  }
  s.balancer_max_moves = static_cast<uint32_t>(moves);
  s.io_error_limit = static_cast<uint32_t>(io_errors);
  s.nearfull_ratio = nearfull;
  s.full_ratio = full;
  return s;
}

Status ValidatePathState(const PathState& p) {
  if (p.address.empty() || p.address.size() > kMaxPathAddressLength) {
    return InvalidArgument(fmt::format(
        "path address must be 1 to {} characters", kMaxPathAddressLength));
  }
  for (char c : p.address) {
    if (static_cast<unsigned char>(c) <= 0x20 ||
        static_cast<unsigned char>(c) >= 0x7f) {
      return InvalidArgument(fmt::format(
          "path address '{}' contains a space or a non-printable character",
          Printable(p.address)));
    }
  }
  return {};
}

json ToJson(const Host& h) {
  return {{"id", h.id},
          {"name", h.name},
          {"addresses", h.addresses},
          {"transport", ToString(h.transport)},
          {"rack", h.rack},
          {"row", h.row},
          {"listeners", h.listeners},
          {"join_hash", h.join_hash},
          {"key_hash", h.key_hash},
          {"created", h.created}};
}

json ToJson(const Device& d) {
  return {{"id", d.id},         {"host_id", d.host_id},
          {"path", d.path},     {"capacity", d.capacity},
          {"weight", d.weight}, {"class", d.device_class},
          {"up", d.up},         {"in", d.in},
          {"served", d.served}, {"nearfull", d.nearfull},
          {"full", d.full},     {"created", d.created}};
}

json ToJson(const Policy& p) {
  if (p.kind == Policy::Kind::kReplicated) {
    return {{"type", "replicated"}, {"replicas", p.replicas}};
  }
  return {{"type", "ec"}, {"k", p.k}, {"m", p.m}};
}

json ToJson(const Pool& p) {
  return {{"id", p.id},
          {"name", p.name},
          {"policy", ToJson(p.policy)},
          {"failure_domain", ToString(p.failure_domain)},
          {"pg_num", p.pg_num},
          {"device_class", p.device_class},
          {"min_size", p.min_size},
          {"effective_min_size", EffectiveMinSize(p)},
          {"created", p.created}};
}

json ToJson(const Volume& v) {
  return {{"id", v.id},
          {"name", v.name},
          {"pool_id", v.pool_id},
          {"size", v.size},
          {"object_size", v.object_size},
          {"stripe_unit", v.stripe_unit},
          {"provisioning", ToString(v.provisioning)},
          {"snap_seq", v.snap_seq},
          {"attached_host", v.attached_host},
          {"attach_epoch", v.attach_epoch},
          {"served_epoch", v.served_epoch},
          {"fenced", FencedToJson(v.fenced)},
          {"migrate_to", v.migrate_to},
          {"migrate_error", v.migrate_error},
          {"backfilled_epoch", v.backfilled_epoch},
          {"backfilled_attach", v.backfilled_attach},
          {"created", v.created}};
}

json ToJson(const Snapshot& s) {
  return {{"id", s.id},   {"volume_id", s.volume_id}, {"name", s.name},
          {"seq", s.seq}, {"size", s.size},           {"created", s.created}};
}

json ToJson(const MapEpoch& e) {
  return {{"epoch", e.epoch},      {"created", e.created},
          {"reason", e.reason},    {"map_size", e.map_size},
          {"map_crc", e.map_crc},  {"problem", e.problem},
          {"left_out", e.left_out}};
}

json ToJson(const PathState& p) {
  json initiators = json::object();
  for (const auto& [host, i] : p.initiators) {
    initiators[host] = {{"state", i.up ? "up" : "down"},
                        {"since", i.since},
                        {"stale_objects", i.stale_objects},
                        {"address", i.address}};
  }
  return {{"device_id", p.device_id},
          {"state", p.up ? "up" : "down"},
          {"since", p.since},
          {"stale_objects", p.stale_objects},
          {"address", p.address},
          {"host", p.host},
          {"initiators", std::move(initiators)}};
}

std::string Encode(const json& record) { return DumpJson(record); }

Result<Policy> PolicyFromJson(const json& j, Code code) {
  const auto recode = [code](const Status& s) {
    return Status(code, s.message());
  };
  if (j.is_string()) {
    auto p = ParsePolicy(j.get<std::string>());
    if (!p.ok()) return recode(p.status());
    return p;
  }
  JsonFields f(j, "policy field", code);
  const std::string type = f.String("type");
  Policy p;
  if (f.ok() && type == "replicated") {
    f.Expect({"type", "replicas"});
    const uint64_t n = f.U64("replicas");
    p = Policy::Replicated(static_cast<uint32_t>(std::min<uint64_t>(n, 1000)));
  } else if (f.ok() && type == "ec") {
    f.Expect({"type", "k", "m"});
    const uint64_t k = f.U64("k"), m = f.U64("m");
    p = Policy::Erasure(static_cast<uint32_t>(std::min<uint64_t>(k, 1000)),
                        static_cast<uint32_t>(std::min<uint64_t>(m, 1000)));
  } else if (f.ok()) {
    return Status(code, fmt::format("policy type '{}' is not replicated or ec",
                                    Printable(type)));
  }
  CVM_RETURN_IF_ERROR(f.status());
  if (Status s = ValidatePolicy(p); !s.ok()) return recode(s);
  return p;
}

Result<Host> DecodeHost(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "host"));
  JsonFields f(j, "host record field", Code::kCorruption);
  f.Expect({"id", "name", "addresses", "transport", "rack", "row", "listeners",
            "join_hash", "key_hash", "created"});
  Host h;
  h.id = f.U64("id");
  h.name = f.String("name");
  h.addresses = f.StringList("addresses");
  const std::string transport = f.String("transport");
  h.rack = f.String("rack");
  h.row = f.String("row");
  // Absent in records written before listeners were recorded.
  if (f.Raw("listeners") != nullptr) h.listeners = f.StringList("listeners");
  h.join_hash = f.OptString("join_hash").value_or("");
  h.key_hash = f.OptString("key_hash").value_or("");
  h.created = f.I64("created");
  CVM_RETURN_IF_ERROR(f.status());
  CVM_RETURN_IF_ERROR(
      AssignParsed(&h.transport, ParseTransport(transport), "host"));
  if (h.id == 0) return Corruption("host record: id 0 is invalid");
  CVM_RETURN_IF_ERROR(AsCorruption(ValidateHost(h), "host"));
  return h;
}

Result<Device> DecodeDevice(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "device"));
  JsonFields f(j, "device record field", Code::kCorruption);
  f.Expect({"id", "host_id", "path", "capacity", "weight", "class", "up", "in",
            "served", "nearfull", "full", "created"});
  Device d;
  d.id = f.U64("id");
  d.host_id = f.U64("host_id");
  d.path = f.String("path");
  d.capacity = f.U64("capacity");
  d.weight = f.Double("weight");
  d.device_class = f.String("class");
  d.up = f.Bool("up");
  d.in = f.Bool("in");
  d.served = f.OptBool("served").value_or(false);      // older records lack it
  d.nearfull = f.OptBool("nearfull").value_or(false);  // and these
  d.full = f.OptBool("full").value_or(false);
  d.created = f.I64("created");
  CVM_RETURN_IF_ERROR(f.status());
  if (d.id == 0 || d.host_id == 0) {
    return Corruption("device record: id and host_id must be > 0");
  }
  CVM_RETURN_IF_ERROR(AsCorruption(ValidateDevice(d), "device"));
  return d;
}

Result<Pool> DecodePool(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "pool"));
  JsonFields f(j, "pool record field", Code::kCorruption);
  f.Expect({"id", "name", "policy", "failure_domain", "pg_num", "device_class",
            "min_size", "effective_min_size", "created"});
  Pool p;
  p.id = f.U64("id");
  p.name = f.String("name");
  const std::string domain = f.String("failure_domain");
  const uint64_t pg_num = f.U64("pg_num");
  p.device_class = f.String("device_class");
  p.created = f.I64("created");
  // Records written before min_size existed have none: the default.
  const uint64_t min_size = f.OptU64("min_size").value_or(0);
  f.OptU64("effective_min_size");  // derived, written for readers
  const json* policy = f.Raw("policy");
  if (f.ok() && policy == nullptr) {
    return Corruption("pool record: field 'policy' is required");
  }
  if (min_size > 255) {
    return Corruption(
        fmt::format("pool record: min_size {} out of range", min_size));
  }
  p.min_size = static_cast<uint32_t>(min_size);
  CVM_RETURN_IF_ERROR(f.status());
  if (p.id == 0) return Corruption("pool record: id 0 is invalid");
  if (pg_num > kMaxPgNum) {
    return Corruption(
        fmt::format("pool record: pg_num {} out of range", pg_num));
  }
  p.pg_num = static_cast<uint32_t>(pg_num);
  CVM_RETURN_IF_ERROR(AssignParsed(
      &p.policy, PolicyFromJson(*policy, Code::kCorruption), "pool"));
  CVM_RETURN_IF_ERROR(
      AssignParsed(&p.failure_domain, ParseFailureDomain(domain), "pool"));
  CVM_RETURN_IF_ERROR(AsCorruption(ValidatePool(p), "pool"));
  return p;
}

Result<Volume> DecodeVolume(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "volume"));
  JsonFields f(j, "volume record field", Code::kCorruption);
  f.Expect({"id", "name", "pool_id", "size", "object_size", "stripe_unit",
            "provisioning", "snap_seq", "attached_host", "attach_epoch",
            "served_epoch", "fenced", "migrate_to", "migrate_error",
            "backfilled_epoch", "backfilled_attach", "created"});
  Volume v;
  v.id = f.U64("id");
  v.name = f.String("name");
  v.pool_id = f.U64("pool_id");
  v.size = f.U64("size");
  v.object_size = f.U64("object_size");
  v.stripe_unit = f.U64("stripe_unit");
  const std::string provisioning = f.String("provisioning");
  v.snap_seq = f.U64("snap_seq");
  // Older records lack the attachment fields: detached.
  v.attached_host = f.OptString("attached_host").value_or("");
  v.attach_epoch = f.OptU64("attach_epoch").value_or(0);
  v.served_epoch = f.OptU64("served_epoch").value_or(0);
  v.migrate_to = f.OptString("migrate_to").value_or("");
  v.migrate_error = f.OptString("migrate_error").value_or("");
  v.backfilled_epoch = f.OptU64("backfilled_epoch").value_or(0);
  v.backfilled_attach = f.OptU64("backfilled_attach").value_or(0);
  v.created = f.I64("created");
  CVM_RETURN_IF_ERROR(f.status());
  if (j.contains("fenced")) {
    auto fenced = FencedFromJson(j["fenced"]);
    if (!fenced.ok()) return fenced.status();
    v.fenced = std::move(*fenced);
  }
  if (v.id == 0 || v.pool_id == 0) {
    return Corruption("volume record: id and pool_id must be > 0");
  }
  CVM_RETURN_IF_ERROR(
      AssignParsed(&v.provisioning, ParseProvisioning(provisioning), "volume"));
  CVM_RETURN_IF_ERROR(AsCorruption(ValidateVolume(v), "volume"));
  return v;
}

Result<Snapshot> DecodeSnapshot(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "snapshot"));
  JsonFields f(j, "snapshot record field", Code::kCorruption);
  f.Expect({"id", "volume_id", "name", "seq", "size", "created"});
  Snapshot s;
  s.id = f.U64("id");
  s.volume_id = f.U64("volume_id");
  s.name = f.String("name");
  s.seq = f.U64("seq");
  s.size = f.U64("size");
  s.created = f.I64("created");
  CVM_RETURN_IF_ERROR(f.status());
  if (s.id == 0 || s.volume_id == 0) {
    return Corruption("snapshot record: id and volume_id must be > 0");
  }
  CVM_RETURN_IF_ERROR(AsCorruption(ValidateSnapshot(s), "snapshot"));
  return s;
}

Result<MapEpoch> DecodeMapEpoch(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "map epoch"));
  JsonFields f(j, "map epoch record field", Code::kCorruption);
  f.Expect({"epoch", "created", "reason", "map_size", "map_crc", "problem",
            "left_out"});
  MapEpoch e;
  e.epoch = f.U64("epoch");
  e.created = f.I64("created");
  e.reason = f.String("reason");
  e.map_size = f.U64("map_size");
  const uint64_t crc = f.U64("map_crc");
  e.problem = f.String("problem");
  e.left_out = f.StringList("left_out");
  CVM_RETURN_IF_ERROR(f.status());
  if (crc > UINT32_MAX) {
    return Corruption("map epoch record: map_crc is wider than 32 bits");
  }
  e.map_crc = static_cast<uint32_t>(crc);
  if (e.epoch == 0) return Corruption("map epoch record: epoch 0 is invalid");
  return e;
}

Result<PathState> DecodePathState(std::string_view bytes) {
  CVM_ASSIGN_OR_RETURN(json j, ParseRecord(bytes, "path"));
  JsonFields f(j, "path record field", Code::kCorruption);
  f.Expect({"device_id", "state", "since", "stale_objects", "address", "host",
            "initiators"});
  PathState p;
  p.device_id = f.U64("device_id");
  const std::string state = f.String("state");
  p.since = f.I64("since");
  p.stale_objects = f.U64("stale_objects");
  p.address = f.String("address");
  p.host = f.OptString("host").value_or("");
  CVM_RETURN_IF_ERROR(f.status());
  if (j.contains("initiators")) {
    if (!j["initiators"].is_object()) {
      return Corruption("path record field 'initiators' is not an object");
    }
    for (const auto& [host, i] : j["initiators"].items()) {
      JsonFields g(i, "path record initiator field", Code::kCorruption);
      g.Expect({"state", "since", "stale_objects", "address"});
      InitiatorPath ip;
      const std::string st = g.String("state");
      ip.since = g.I64("since");
      ip.stale_objects = g.U64("stale_objects");
      ip.address = g.String("address");
      CVM_RETURN_IF_ERROR(g.status());
      if ((st != "up" && st != "down") || !ValidateName("host", host).ok()) {
        return Corruption(
            fmt::format("path record: initiator '{}' with state '{}'",
                        Printable(host), Printable(st)));
      }
      ip.up = st == "up";
      p.initiators[host] = std::move(ip);
    }
  }
  if (p.device_id == 0) return Corruption("path record: device_id 0");
  if (state != "up" && state != "down") {
    return Corruption(fmt::format("path record: state '{}' is not up or down",
                                  Printable(state)));
  }
  p.up = state == "up";
  CVM_RETURN_IF_ERROR(AsCorruption(ValidatePathState(p), "path"));
  return p;
}

}  // namespace cvm
