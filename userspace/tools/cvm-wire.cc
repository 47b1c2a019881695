// cvm-wire: talk the CVM wire protocol to a target from userspace.
//
//   cvm-wire HOST:PORT write|read|remove|stat|flush --device ID
//            [--volume V --object N --shard S --offset O --length L]
//            [--pattern BYTE | --file F] [--fua] [--out F]
//            [--cluster ID --host-id H --secret HEX --key-id K]
//   cvm-wire HOST:PORT sums --device ID --volume V --object N --count C
//            --length L [--shard S]
//   cvm-wire HOST:PORT dump --device ID --volume V --object N --count C
//            --shards S --length L --out DIR
//   cvm-wire HOST:PORT fuzz --device ID
//   cvm-wire HOST:PORT auth --device ID --volume V --object N
//            [--foreign-host H --foreign-secret HEX]
//
// Every connection authenticates as host --host-id with the device key
// derived from --secret, or from the current secret of a cvmd's
// --secret-file (its host.secret; cvm_wire.h, "Authentication"). The
// environment's CVM_WIRE_HOST_ID and CVM_WIRE_SECRET_FILE are the defaults,
// and without them the raw tests' host (tests/vm/lib/target_genl.py). auth
// tries to get in without the key: no AUTH, a wrong key, a replayed AUTH, the
// target's own proof reflected, an unknown key id, and (with --foreign-host) a
// host let in but not given volume V: each must be refused and read nothing.
//
// read writes the data to --out (default stdout).  sums reads L bytes of
// each of the C objects from N on, over one connection, and prints one
// line "OBJECT CRC32C" per object: replicas are compared by these lines.
// dump asks for shards 0..S-1 of each of the C objects from N on, over one
// connection, and writes the first L bytes (read 1 MiB at a time) of each one
// the target holds to DIR/oOBJECT.sSHARD (a shard it does not hold is skipped).
// Exit status: 0 when the target answered OK, 1 when it answered another status
// (printed), 2 on a usage, connection or protocol error. fuzz sends one
// malformed message of each class on its own connection, checks that the target
// closes it without a reply, and that a good connection still works afterwards.

#include <endian.h>
#include <fmt/core.h>
#include <linux/cvm_wire.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "hash.h"
#include "host_keys.h"
#include "wire_client.h"

namespace {

using cvm::wire::Client;
using cvm::wire::Header;

struct Options {
  std::string host;
  uint16_t port = 0;
  std::string verb;
  cvm::wire::Hello hello;
  cvm::wire::Key secret{};
  uint64_t foreign_host = 0;
  cvm::wire::Key foreign_secret{};
  cvm::wire::ObjectKey key;
  uint64_t offset = 0;
  uint32_t length = 0;
  int pattern = -1;
  std::string file;
  std::string out;
  bool fua = false;
  uint64_t count = 1;
  bool count_given = false;
  uint32_t shards = 1;
};

[[noreturn]] void Usage(const std::string& why) {
  fmt::print(stderr, "cvm-wire: {}\n", why);
  fmt::print(
      stderr,
      "usage: cvm-wire HOST:PORT "
      "write|read|remove|stat|stats|list|clean|bump|flush|sums|dump|fuzz "
      "--device ID [--volume V] [--object N] [--shard S] [--attach-epoch E] "
      "[--offset O] "
      "[--length L] [--count C] [--shards S] [--pattern BYTE|--file F] [--fua] "
      "[--out F] [--cluster ID --host-id H --secret HEX --key-id K]\n");
  std::exit(2);
}

uint64_t Number(const std::string& opt, const char* s) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno || !*s || *end) Usage(fmt::format("{}: not a number: {}", opt, s));
  return v;
}

cvm::wire::Key Hex(const std::string& opt, const std::string& hex) {
  cvm::wire::Key k{};
  if (hex.size() != 2 * k.size())
    Usage(fmt::format("{}: want {} hex digits", opt, 2 * k.size()));
  for (size_t i = 0; i < k.size(); i++) {
    char* end = nullptr;
    std::string byte = hex.substr(2 * i, 2);
    k[i] = std::strtoul(byte.c_str(), &end, 16);
    if (*end) Usage(fmt::format("{}: not hex: {}", opt, hex));
  }
  return k;
}

// The current secret of a cvmd's host.secret (host_keys.h).
void SecretFile(Options& o, const std::string& path) {
  auto secrets = cvm::HostSecrets::Load(path, /*create=*/false);
  if (!secrets.ok()) Usage(secrets.status().message());
  const cvm::HostSecret cur = (*secrets)->Current();
  o.secret = cur.secret;
  o.hello.key_id = cur.key_id;
}

Options Parse(int argc, char** argv) {
  if (argc < 3) Usage("missing arguments");
  Options o;
  // The raw tests' host (tests/vm/lib/target_genl.py), unless the
  // environment names a cvmd's.
  o.hello.host_id = 1;
  for (size_t i = 0; i < o.secret.size(); i++) o.secret[i] = i + 1;
  if (const char* id = std::getenv("CVM_WIRE_HOST_ID"); id && *id)
    o.hello.host_id = Number("CVM_WIRE_HOST_ID", id);
  if (const char* f = std::getenv("CVM_WIRE_SECRET_FILE"); f && *f)
    SecretFile(o, f);
  std::string hp = argv[1];
  auto colon = hp.rfind(':');
  if (colon == std::string::npos) Usage("want HOST:PORT");
  o.host = hp.substr(0, colon);
  if (o.host.size() > 2 && o.host.front() == '[')
    o.host = o.host.substr(1, o.host.size() - 2);
  o.port = Number("port", hp.c_str() + colon + 1);
  o.verb = argv[2];
  bool have_device = false;
  for (int i = 3; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--device") {
      o.hello.device_id = Number(a, val());
      have_device = true;
    } else if (a == "--volume") {
      o.key.volume_id = Number(a, val());
    } else if (a == "--object") {
      o.key.object_no = Number(a, val());
    } else if (a == "--shard") {
      o.key.shard = Number(a, val());
    } else if (a == "--attach-epoch") {
      o.key.attach_epoch = Number(a, val());
    } else if (a == "--offset") {
      o.offset = Number(a, val());
    } else if (a == "--length") {
      o.length = Number(a, val());
    } else if (a == "--pattern") {
      o.pattern = Number(a, val()) & 0xff;
    } else if (a == "--file") {
      o.file = val();
    } else if (a == "--out") {
      o.out = val();
    } else if (a == "--shards") {
      o.shards = Number(a, val());
    } else if (a == "--count") {
      o.count = Number(a, val());
      o.count_given = true;
    } else if (a == "--fua") {
      o.fua = true;
    } else if (a == "--cluster") {
      o.hello.cluster_id = Number(a, val());
    } else if (a == "--host-id") {
      o.hello.host_id = Number(a, val());
    } else if (a == "--key-id") {
      o.hello.key_id = Number(a, val());
    } else if (a == "--secret") {
      o.secret = Hex(a, val());
    } else if (a == "--secret-file") {
      SecretFile(o, val());
    } else if (a == "--foreign-host") {
      o.foreign_host = Number(a, val());
    } else if (a == "--foreign-secret") {
      o.foreign_secret = Hex(a, val());
    } else {
      Usage("unknown option " + a);
    }
  }
  if (!have_device) Usage("--device is required");
  return o;
}

int Report(const cvm::Result<cvm::wire::Reply>& r, const char* what) {
  if (!r.ok()) {
    fmt::print(stderr, "cvm-wire: {} error: {}\n", what, r.status().ToString());
    return 2;
  }
  uint16_t st = r->header.status;
  if (st != CVM_WIRE_STATUS_OK) {
    fmt::print(stderr, "cvm-wire: {}: status {}\n", what,
               cvm::wire::StatusName(st));
    return 1;
  }
  return 0;
}

// Prints a STAT reply as one line; with absent_ok a NOT_FOUND prints
// "absent" (an object the target does not hold).
int PrintStat(const cvm::Result<cvm::wire::Reply>& r, bool absent_ok) {
  if (absent_ok && r.ok() && r->header.status == CVM_WIRE_STATUS_NOT_FOUND) {
    fmt::print("absent\n");
    return 0;
  }
  int rc = Report(r, "stat");
  if (rc) return rc;
  if (r->data.size() < cvm::wire::kStatLen) return 2;
  uint64_t allocated = 0, seq = 0;
  uint32_t flags = 0, version = 0;
  for (int i = 7; i >= 0; i--) allocated = allocated << 8 | r->data[i];
  for (int i = 15; i >= 8; i--) seq = seq << 8 | r->data[i];
  for (int i = 19; i >= 16; i--) flags = flags << 8 | r->data[i];
  for (int i = 27; i >= 24; i--) version = version << 8 | r->data[i];
  fmt::print("allocated {} snap_seq {} intent {} version {}\n", allocated, seq,
             (flags & CVM_WIRE_STAT_F_INTENT) ? 1 : 0, version);
  return 0;
}

// Sends one malformed header on a fresh, HELLOed connection.
struct FuzzCase {
  const char* name;
  bool before_hello;
  void (*mutate)(Header& h, bool& seal);
};

const FuzzCase kFuzz[] = {
    {"bad magic", false, [](Header& h, bool&) { h.magic ^= 1; }},
    {"bad version", false, [](Header& h, bool&) { h.version = 9; }},
    {"bad header CRC", false,
     [](Header& h, bool& seal) {
       seal = false;
       h.hdr_crc = 0xdeadbeef;
     }},
    {"oversize length", false,
     [](Header& h, bool&) {
       h.opcode = CVM_WIRE_OP_READ;
       h.length = CVM_WIRE_MAX_DATA_LEN + 4096;
     }},
    {"unknown opcode", false, [](Header& h, bool&) { h.opcode = 200; }},
    {"nonzero reserved", false, [](Header& h, bool&) { h.reserved1 = 1; }},
    {"unknown flag", false, [](Header& h, bool&) { h.flags = 1U << 12; }},
    {"reply flag on request", false,
     [](Header& h, bool&) { h.flags = CVM_WIRE_F_REPLY; }},
    {"misaligned offset", false, [](Header& h, bool&) { h.offset = 100; }},
    {"range beyond object", false,
     [](Header& h, bool&) { h.offset = CVM_WIRE_MAX_OBJECT_SIZE; }},
    {"shard out of range", false,
     [](Header& h, bool&) { h.shard = CVM_WIRE_MAX_SHARDS; }},
    {"nonzero status", false, [](Header& h, bool&) { h.status = 1; }},
    {"request before HELLO", true, [](Header&, bool&) {}},
    {"second HELLO", false,
     [](Header& h, bool&) {
       h = cvm::wire::MakeRequest(CVM_WIRE_OP_HELLO);
       h.length = cvm::wire::kHelloLen;
     }},
};

int Fuzz(const Options& o) {
  int passed = 0, failed = 0;
  auto result = [&](const std::string& name, bool ok, const std::string& why) {
    fmt::print("{} {}{}\n", ok ? "ok  " : "FAIL", name,
               why.empty() ? "" : ": " + why);
    (ok ? passed : failed)++;
  };
  for (const FuzzCase& c : kFuzz) {
    auto conn = c.before_hello
                    ? Client::ConnectRaw(o.host, o.port)
                    : Client::Connect(o.host, o.port, o.hello, o.secret);
    if (!conn.ok()) {
      result(c.name, false, conn.status().ToString());
      continue;
    }
    Header h = cvm::wire::MakeRequest(CVM_WIRE_OP_READ);
    h.tag = 77;
    h.volume_id = o.key.volume_id;
    h.object_no = o.key.object_no;
    h.length = 4096;
    bool seal = true;
    c.mutate(h, seal);
    auto bytes = cvm::wire::Encode(h, seal);
    cvm::Status s = conn->SendAll(bytes);
    if (h.opcode == CVM_WIRE_OP_HELLO && s.ok()) {
      auto hello = cvm::wire::EncodeHello(o.hello);
      s = conn->SendAll(hello);
    }
    if (!s.ok()) {
      // The target may close before the whole message is sent.
      result(std::string(c.name) + " closes the connection", true, "");
      continue;
    }
    bool closed = conn->WaitClosed(5000);
    result(std::string(c.name) + " closes the connection", closed,
           closed ? "" : "connection stayed open or a reply came");
  }

  // A HELLO of the previous version is answered VERSION, then closed.
  {
    auto conn = Client::ConnectRaw(o.host, o.port);
    bool ok = false;
    std::string why;
    if (conn.ok()) {
      Header h = cvm::wire::MakeRequest(CVM_WIRE_OP_HELLO);
      h.version = CVM_WIRE_VERSION - 1;
      h.length = cvm::wire::kHelloLen;
      auto hello = cvm::wire::EncodeHello(o.hello);
      if (conn->SendAll(cvm::wire::Encode(h)).ok() &&
          conn->SendAll(hello).ok()) {
        auto rb = conn->RecvExact(cvm::wire::kHeaderLen);
        if (rb.ok()) {
          Header r = cvm::wire::DecodeRaw(
              std::span<const uint8_t, cvm::wire::kHeaderLen>(
                  rb->data(), cvm::wire::kHeaderLen));
          ok = r.status == CVM_WIRE_STATUS_VERSION &&
               r.version == CVM_WIRE_VERSION && conn->WaitClosed(5000);
          why = fmt::format("status {}", cvm::wire::StatusName(r.status));
        } else {
          why = rb.status().ToString();
        }
      }
    } else {
      why = conn.status().ToString();
    }
    result("HELLO of the previous version answered VERSION and closed", ok,
           ok ? "" : why);
  }

  // The target still serves a good connection.
  {
    auto conn = Client::Connect(o.host, o.port, o.hello, o.secret);
    bool ok = false;
    std::string why;
    if (conn.ok()) {
      auto r = conn->Read(o.key, 0, 4096);
      ok = r.ok() && r->header.status == CVM_WIRE_STATUS_OK &&
           r->data.size() == 4096;
      why = r.ok() ? std::string(cvm::wire::StatusName(r->header.status))
                   : r.status().ToString();
    } else {
      why = conn.status().ToString();
    }
    result("a good connection still works", ok, ok ? "" : why);
  }
  fmt::print("{} passed, {} failed\n", passed, failed);
  return failed ? 1 : 0;
}

}  // namespace

// One unauthenticated try: what it did and whether the target refused it
// without serving the read.
struct AuthTry {
  const char* name;
  // Runs the handshake its way on a fresh connection; returns the
  // connection if the target let it get as far as a data request.
  std::function<cvm::Result<Client>(const Options&)> run;
};

cvm::Result<cvm::wire::Hello> HelloOnly(Client& c, const Options& o,
                                        cvm::wire::Hello* asked) {
  cvm::wire::Hello h = o.hello;
  h.nonce = cvm::wire::RandomNonce();
  if (asked) *asked = h;
  CVM_ASSIGN_OR_RETURN(auto r, c.Handshake(CVM_WIRE_OP_HELLO, h));
  if (r.header.status != CVM_WIRE_STATUS_OK)
    return cvm::PermissionDenied(fmt::format(
        "HELLO refused: {}", cvm::wire::StatusName(r.header.status)));
  return cvm::wire::DecodeHello(std::span<const uint8_t, cvm::wire::kHelloLen>(
      r.data.data(), cvm::wire::kHelloLen));
}

// AUTH with `proof`; an error unless the target says OK.
cvm::Status Auth(Client& c, const cvm::wire::Key& proof) {
  cvm::wire::Hello a;
  a.proof = proof;
  CVM_ASSIGN_OR_RETURN(auto r, c.Handshake(CVM_WIRE_OP_AUTH, a));
  if (r.header.status != CVM_WIRE_STATUS_OK)
    return cvm::PermissionDenied(fmt::format(
        "AUTH refused: {}", cvm::wire::StatusName(r.header.status)));
  return cvm::Status::Ok();
}

int AuthFuzz(const Options& o) {
  using cvm::wire::Key;
  int passed = 0, failed = 0;
  auto result = [&](const std::string& name, bool ok, const std::string& why) {
    fmt::print("{} {}{}\n", ok ? "ok  " : "FAIL", name,
               why.empty() ? "" : ": " + why);
    (ok ? passed : failed)++;
  };
  // A read that must not be served: refused or the connection closed.
  auto refused = [&](const std::string& name, cvm::Result<Client> c) {
    if (!c.ok()) return result(name, true, c.status().message());
    auto r = c->Read(o.key, 0, 4096);
    bool ok = !r.ok() || r->header.status != CVM_WIRE_STATUS_OK;
    result(name, ok,
           r.ok() ? std::string(cvm::wire::StatusName(r->header.status))
                  : r.status().message());
  };
  const Key key = cvm::wire::DeriveKey(o.secret, o.hello.cluster_id,
                                       o.hello.host_id, o.hello.device_id);

  // The real thing works: the tries below fail for what they lack.
  {
    auto c = Client::Connect(o.host, o.port, o.hello, o.secret);
    auto r = c.ok() ? c->Read(o.key, 0, 4096)
                    : cvm::Result<cvm::wire::Reply>(c.status());
    result("authenticated host reads", r.ok() && !r->header.status,
           r.ok() ? std::string(cvm::wire::StatusName(r->header.status))
                  : r.status().message());
  }
  // HELLO answered, no AUTH: a data request is out of turn.
  refused("no AUTH", [&]() -> cvm::Result<Client> {
    CVM_ASSIGN_OR_RETURN(Client c, Client::ConnectRaw(o.host, o.port));
    CVM_RETURN_IF_ERROR(HelloOnly(c, o, nullptr).status());
    return c;
  }());
  // Another secret: the target's proof does not check out, and ours is
  // refused.
  refused("wrong key", [&]() -> cvm::Result<Client> {
    Key wrong = o.secret;
    wrong[0] ^= 0x5a;
    CVM_ASSIGN_OR_RETURN(Client c, Client::ConnectRaw(o.host, o.port));
    cvm::wire::Hello asked;
    CVM_ASSIGN_OR_RETURN(auto got, HelloOnly(c, o, &asked));
    Key k = cvm::wire::DeriveKey(wrong, o.hello.cluster_id, o.hello.host_id,
                                 o.hello.device_id);
    CVM_RETURN_IF_ERROR(Auth(
        c, cvm::wire::Proof(k, "cvm-host", asked, asked.nonce, got.nonce)));
    return c;
  }());
  // A key id the target has no key for.
  refused("unknown key id", [&]() -> cvm::Result<Client> {
    Options other = o;
    other.hello.key_id = o.hello.key_id + 1000;
    return Client::Connect(o.host, o.port, other.hello, o.secret);
  }());
  // A good AUTH recorded on one connection, replayed on another: the
  // target's challenge differs.
  refused("replayed AUTH", [&]() -> cvm::Result<Client> {
    CVM_ASSIGN_OR_RETURN(Client c1, Client::ConnectRaw(o.host, o.port));
    cvm::wire::Hello asked;
    CVM_ASSIGN_OR_RETURN(auto got, HelloOnly(c1, o, &asked));
    Key recorded =
        cvm::wire::Proof(key, "cvm-host", asked, asked.nonce, got.nonce);
    CVM_RETURN_IF_ERROR(Auth(c1, recorded));
    // The eavesdropper replays the host's HELLO and AUTH.
    CVM_ASSIGN_OR_RETURN(Client c2, Client::ConnectRaw(o.host, o.port));
    CVM_ASSIGN_OR_RETURN(auto r, c2.Handshake(CVM_WIRE_OP_HELLO, asked));
    if (r.header.status) return cvm::PermissionDenied("HELLO refused");
    CVM_RETURN_IF_ERROR(Auth(c2, recorded));
    return c2;
  }());
  // The target's proof sent back as ours; and a second connection whose
  // challenge is the first's target challenge, its target proof reflected.
  refused("reflected proof", [&]() -> cvm::Result<Client> {
    CVM_ASSIGN_OR_RETURN(Client c1, Client::ConnectRaw(o.host, o.port));
    CVM_ASSIGN_OR_RETURN(auto got1, HelloOnly(c1, o, nullptr));
    CVM_ASSIGN_OR_RETURN(Client c2, Client::ConnectRaw(o.host, o.port));
    cvm::wire::Hello h2 = o.hello;
    h2.nonce = got1.nonce;
    CVM_ASSIGN_OR_RETURN(auto r2, c2.Handshake(CVM_WIRE_OP_HELLO, h2));
    if (r2.header.status) return cvm::PermissionDenied("HELLO refused");
    auto got2 =
        cvm::wire::DecodeHello(std::span<const uint8_t, cvm::wire::kHelloLen>(
            r2.data.data(), cvm::wire::kHelloLen));
    if (Auth(c1, got1.proof).ok()) return c1;
    CVM_RETURN_IF_ERROR(Auth(c1, got2.proof));
    return c1;
  }());
  // A host the device lets in, but not at volume V.
  if (o.foreign_host) {
    Options f = o;
    f.hello.host_id = o.foreign_host;
    auto c = Client::Connect(o.host, o.port, f.hello, o.foreign_secret);
    if (!c.ok()) {
      result("foreign host connects", false, c.status().message());
    } else {
      auto r = c->Read(o.key, 0, 4096);
      result("foreign volume read DENIED",
             r.ok() && r->header.status == CVM_WIRE_STATUS_DENIED,
             r.ok() ? std::string(cvm::wire::StatusName(r->header.status))
                    : r.status().message());
      auto w = c->Write(o.key, 0, std::vector<uint8_t>(4096, 0xee));
      result("foreign volume write DENIED",
             w.ok() && w->header.status == CVM_WIRE_STATUS_DENIED,
             w.ok() ? std::string(cvm::wire::StatusName(w->header.status))
                    : w.status().message());
    }
  }
  fmt::print("{} passed, {} failed\n", passed, failed);
  return failed ? 1 : 0;
}

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  if (o.verb == "fuzz") return Fuzz(o);
  if (o.verb == "auth") return AuthFuzz(o);

  auto conn = Client::Connect(o.host, o.port, o.hello, o.secret);
  if (!conn.ok()) {
    fmt::print(stderr, "cvm-wire: connect error: {}\n",
               conn.status().ToString());
    return 2;
  }
  if (o.verb == "write") {
    std::vector<uint8_t> data;
    if (!o.file.empty()) {
      std::ifstream f(o.file, std::ios::binary);
      if (!f) Usage("cannot open " + o.file);
      data.assign(std::istreambuf_iterator<char>(f), {});
    } else {
      if (o.pattern < 0 || !o.length)
        Usage("write needs --length and --pattern or --file");
      data.assign(o.length, static_cast<uint8_t>(o.pattern));
    }
    return Report(conn->Write(o.key, o.offset, data, o.fua), "write");
  }
  if (o.verb == "read") {
    if (!o.length) Usage("read needs --length");
    auto r = conn->Read(o.key, o.offset, o.length);
    int rc = Report(r, "read");
    if (rc) return rc;
    FILE* f = o.out.empty() ? stdout : std::fopen(o.out.c_str(), "wb");
    if (!f) Usage("cannot open " + o.out);
    std::fwrite(r->data.data(), 1, r->data.size(), f);
    if (f != stdout) std::fclose(f);
    return 0;
  }
  if (o.verb == "sums") {
    if (!o.length || !o.count) Usage("sums needs --length and --count");
    cvm::wire::ObjectKey k = o.key;
    for (uint64_t i = 0; i < o.count; i++, k.object_no++) {
      auto r = conn->Read(k, o.offset, o.length);
      int rc = Report(r, "read");
      if (rc) return rc;
      uint32_t crc = ~cvm_crc32c(~0U, r->data.data(), r->data.size());
      fmt::print("{} {:08x}\n", k.object_no, crc);
    }
    return 0;
  }
  if (o.verb == "dump") {
    if (!o.length || !o.count || !o.shards || o.out.empty())
      Usage("dump needs --length, --count, --shards and --out");
    cvm::wire::ObjectKey k = o.key;
    for (uint64_t i = 0; i < o.count; i++, k.object_no++) {
      for (k.shard = 0; k.shard < o.shards; k.shard++) {
        auto st = conn->Stat(k);
        if (st.ok() && st->header.status == CVM_WIRE_STATUS_NOT_FOUND) continue;
        int rc = Report(st, "stat");
        if (rc) return rc;
        std::string path =
            fmt::format("{}/o{}.s{}", o.out, k.object_no, k.shard);
        std::ofstream f(path, std::ios::binary);
        // At most CVM_WIRE_MAX_DATA_LEN a READ.
        for (uint64_t off = 0; off < o.length; off += CVM_WIRE_MAX_DATA_LEN) {
          auto r = conn->Read(k, off,
                              static_cast<uint32_t>(std::min<uint64_t>(
                                  CVM_WIRE_MAX_DATA_LEN, o.length - off)));
          rc = Report(r, "read");
          if (rc) return rc;
          f.write(reinterpret_cast<const char*>(r->data.data()),
                  r->data.size());
        }
        if (!f) Usage("cannot write " + path);
        fmt::print("{} {}\n", k.object_no, k.shard);
      }
    }
    return 0;
  }
  if (o.verb == "list") {
    // Pages through LIST, --count entries a page (default 1,000; --fua asks
    // for shards with the write-intent bit only): "object shard version
    // intent" per shard, in the order the target answers.
    constexpr uint64_t kMaxPage =
        CVM_WIRE_MAX_DATA_LEN / sizeof(cvm_wire_list_ent);
    if (o.count_given && (o.count == 0 || o.count > kMaxPage))
      Usage(fmt::format("list: --count from 1 to {}", kMaxPage));
    const auto page = static_cast<uint32_t>(o.count_given ? o.count : 1000);
    uint64_t from = o.key.object_no;
    for (;;) {
      cvm::wire::Header h = cvm::wire::MakeRequest(CVM_WIRE_OP_LIST);
      h.volume_id = o.key.volume_id;
      h.object_no = from;
      h.length = page * sizeof(cvm_wire_list_ent);
      if (o.fua) h.flags |= CVM_WIRE_F_INTENT;
      auto r = conn->Call(h);
      if (int rc = Report(r, "list")) return rc;
      const size_t n = r->data.size() / sizeof(cvm_wire_list_ent);
      for (size_t i = 0; i < n; i++) {
        cvm_wire_list_ent e;
        std::memcpy(&e, r->data.data() + i * sizeof(e), sizeof(e));
        fmt::print("{} {} {} {}\n", le64toh(e.object_no), le16toh(e.shard),
                   le32toh(e.version),
                   (le16toh(e.flags) & CVM_WIRE_STAT_F_INTENT) ? 1 : 0);
        from = le64toh(e.object_no) + 1;
      }
      if (n < page) return 0;
    }
  }
  if (o.verb == "remove") return Report(conn->Remove(o.key), "remove");
  if (o.verb == "clean") {
    return Report(conn->VersionOp(CVM_WIRE_OP_CLEAN, o.key), "clean");
  }
  if (o.verb == "bump") {
    auto r = conn->VersionOp(CVM_WIRE_OP_BUMP, o.key);
    int rc = Report(r, "bump");
    if (!rc) fmt::print("version {}\n", r->header.shard_version);
    return rc;
  }
  if (o.verb == "flush") return Report(conn->Flush(), "flush");
  if (o.verb == "stat") return PrintStat(conn->Stat(o.key), false);
  if (o.verb == "stats") {
    // A line per object from --object on: its STAT, or "absent".
    cvm::wire::ObjectKey k = o.key;
    for (uint64_t i = 0; i < o.count; i++, k.object_no++) {
      if (int rc = PrintStat(conn->Stat(k), true)) return rc;
    }
    return 0;
  }
  Usage("unknown verb " + o.verb);
}
