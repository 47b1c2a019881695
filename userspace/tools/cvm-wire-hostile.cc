// cvm-wire-hostile: a peer that breaks the CVM wire protocol's rules on
// purpose (include/uapi/linux/cvm_wire.h), to show that cvm.ko and
// cvm_target.ko survive it over TCP.
//
//   cvm-wire-hostile HOST:PORT early-reply [--ahead K] [--timeout S]
//       Acts as a target: listens on HOST:PORT, answers one initiator's
//       HELLO, answers the attach's LISTs of write-intent records as
//       empty, reads its first other request (tag T), then stops reading and,
//       after a second, answers tag T+K (a request the initiator has
//       queued but cannot have sent while nothing is read) with OK.
//       Passes when the initiator closes the connection without ever
//       sending tag T+K, the request it was told is done (sending it would
//       send memory the initiator already completed and freed).
//   cvm-wire-hostile HOST:PORT flood --device ID [--count N] [--length L]
//       [--hold S]
//       Acts as an initiator: HELLO, then N READ headers of L bytes (for
//       objects never written) without ever reading a reply; holds the
//       connection S seconds.  Prints what the target granted in HELLO,
//       how many headers went out and whether the target closed the
//       connection (it must, once N exceeds the requests it granted).
//   cvm-wire-hostile HOST:PORT half-open --count N [--hold S]
//       Opens N TCP connections that never say HELLO and holds them S
//       seconds; prints how many the target had closed by then.
//
// Output: "ok" or "FAIL" lines and a final "N passed, N failed" where a
// verdict is made; exit 0 when it held, 1 when it did not, 2 on a usage
// error or when the tool itself could not run.

#include <arpa/inet.h>
#include <fmt/core.h>
#include <linux/cvm_wire.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "unique_fd.h"
#include "wire_client.h"

namespace {

namespace wire = cvm::wire;
using cvm::UniqueFd;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string host;
  uint16_t port = 0;
  std::string verb;
  uint32_t device = 0;
  uint64_t ahead = 8;
  uint64_t count = 1000;
  uint32_t length = 1 << 20;
  int hold_s = 5;
  int timeout_s = 30;
};

[[noreturn]] void Usage(const std::string& why) {
  fmt::print(stderr, "cvm-wire-hostile: {}\n", why);
  fmt::print(stderr,
             "usage: cvm-wire-hostile HOST:PORT early-reply|flood|half-open "
             "[--device ID] [--ahead K] [--count N] [--length L] [--hold S] "
             "[--timeout S]\n");
  std::exit(2);
}

[[noreturn]] void Die(const std::string& why) {
  fmt::print(stderr, "cvm-wire-hostile: {}\n", why);
  std::exit(2);
}

uint64_t Number(const std::string& opt, const char* s) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno || !*s || *end) Usage(fmt::format("{}: not a number: {}", opt, s));
  return v;
}

Options Parse(int argc, char** argv) {
  if (argc < 3) Usage("missing arguments");
  Options o;
  std::string hp = argv[1];
  auto colon = hp.rfind(':');
  if (colon == std::string::npos) Usage("want HOST:PORT");
  o.host = hp.substr(0, colon);
  o.port = Number("port", hp.c_str() + colon + 1);
  o.verb = argv[2];
  for (int i = 3; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) Usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--device")
      o.device = Number(a, val());
    else if (a == "--ahead")
      o.ahead = Number(a, val());
    else if (a == "--count")
      o.count = Number(a, val());
    else if (a == "--length")
      o.length = Number(a, val());
    else if (a == "--hold")
      o.hold_s = Number(a, val());
    else if (a == "--timeout")
      o.timeout_s = Number(a, val());
    else
      Usage("unknown option " + a);
  }
  return o;
}

sockaddr_in Ipv4(const Options& o) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(o.port);
  if (inet_pton(AF_INET, o.host.c_str(), &sa.sin_addr) != 1)
    Usage("want a numeric IPv4 address: " + o.host);
  return sa;
}

// Reads exactly n bytes; false on EOF, error or when the deadline passes.
bool RecvAll(int fd, uint8_t* p, size_t n, Clock::time_point deadline) {
  while (n) {
    int left = std::chrono::duration_cast<std::chrono::milliseconds>(
                   deadline - Clock::now())
                   .count();
    if (left <= 0) return false;
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, left) <= 0) continue;
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= r;
  }
  return true;
}

bool SendAll(int fd, const uint8_t* p, size_t n) {
  while (n) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= r;
  }
  return true;
}

wire::Header Reply(const wire::Header& req, uint16_t status, uint32_t length) {
  wire::Header r{};
  r.magic = CVM_WIRE_MAGIC;
  r.version = CVM_WIRE_VERSION;
  r.opcode = req.opcode;
  r.flags = CVM_WIRE_F_REPLY;
  r.tag = req.tag;
  r.volume_id = req.volume_id;
  r.object_no = req.object_no;
  r.shard = req.shard;
  r.offset = req.offset;
  r.length = length;
  r.status = status;
  return r;
}

int Verdict(bool ok, const std::string& what) {
  fmt::print("{} early-reply: {}\n", ok ? "ok  " : "FAIL", what);
  fmt::print("{} passed, {} failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
}

int EarlyReply(const Options& o) {
  sockaddr_in sa = Ipv4(o);
  UniqueFd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!ls.valid()) Die("socket failed");
  int one = 1;
  ::setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // A small receive window: the initiator's requests back up into its own
  // send list quickly once we stop reading.
  int rcvbuf = 16384;
  ::setsockopt(ls.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (::bind(ls.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) ||
      ::listen(ls.get(), 4))
    Die(fmt::format("cannot listen on {}:{}: {}", o.host, o.port,
                    std::strerror(errno)));
  fmt::print("listening on {}:{}\n", o.host, o.port);
  std::fflush(stdout);

  auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  pollfd pf{ls.get(), POLLIN, 0};
  if (::poll(&pf, 1, o.timeout_s * 1000) <= 0) Die("no initiator connected");
  UniqueFd c(::accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!c.valid()) Die("accept failed");

  wire::HeaderBytes hb;
  uint8_t hello[wire::kHelloLen];
  if (!RecvAll(c.get(), hb.data(), hb.size(), deadline))
    Die("no HELLO from the initiator");
  auto hh = wire::Decode(hb, false);
  if (!hh.ok() || hh->opcode != CVM_WIRE_OP_HELLO)
    Die("first message is not a valid HELLO");
  if (!RecvAll(c.get(), hello, sizeof(hello), deadline))
    Die("HELLO payload missing");
  // The reply: a device instance (version 3), our challenge and proof
  // with the raw tests' host key (version 5), then the host's AUTH.
  wire::Hello asked =
      wire::DecodeHello(std::span<const uint8_t, wire::kHelloLen>(hello));
  wire::Key secret{};
  for (size_t i = 0; i < secret.size(); i++) secret[i] = i + 1;
  const wire::Key key =
      wire::DeriveKey(secret, asked.cluster_id, asked.host_id, asked.device_id);
  wire::Hello answer = asked;
  answer.instance = 0x5a;
  answer.nonce = wire::RandomNonce();
  answer.proof =
      wire::Proof(key, "cvm-target", asked, asked.nonce, answer.nonce);
  auto ab = wire::EncodeHello(answer);
  std::memcpy(hello, ab.data(), sizeof(hello));
  wire::Header hr = Reply(*hh, CVM_WIRE_STATUS_OK, wire::kHelloLen);
  hb = wire::Encode(hr);
  if (!SendAll(c.get(), hb.data(), hb.size()) ||
      !SendAll(c.get(), hello, sizeof(hello)))
    Die("cannot answer HELLO");
  if (!RecvAll(c.get(), hb.data(), hb.size(), deadline) ||
      !RecvAll(c.get(), hello, sizeof(hello), deadline))
    Die("no AUTH from the initiator");
  auto ah = wire::Decode(hb, false);
  if (!ah.ok() || ah->opcode != CVM_WIRE_OP_AUTH)
    Die("second message is not a valid AUTH");
  wire::Hello auth =
      wire::DecodeHello(std::span<const uint8_t, wire::kHelloLen>(hello));
  if (auth.proof !=
      wire::Proof(key, "cvm-host", asked, asked.nonce, answer.nonce))
    Die("the initiator's proof is wrong");
  hb = wire::Encode(Reply(*ah, CVM_WIRE_STATUS_OK, 0));
  if (!SendAll(c.get(), hb.data(), hb.size())) Die("cannot answer AUTH");

  // The first request (after the attach's LIST of write-intent records,
  // answered as empty so the volume's I/O may start) tells us the tag
  // sequence and the opcode in use.
  cvm::Result<wire::Header> first = cvm::Corruption("none yet");
  for (;;) {
    if (!RecvAll(c.get(), hb.data(), hb.size(), deadline))
      Die("no request after HELLO");
    first = wire::Decode(hb, false);
    if (!first.ok()) Die("first request malformed");
    if (first->opcode != CVM_WIRE_OP_LIST) break;
    hb = wire::Encode(Reply(*first, CVM_WIRE_STATUS_OK, 0));
    if (!SendAll(c.get(), hb.data(), hb.size())) Die("cannot answer LIST");
  }
  uint64_t victim = first->tag + o.ahead;
  fmt::print("first request: {} tag {}; answering tag {} early\n",
             wire::OpName(first->opcode), first->tag, victim);
  std::fflush(stdout);

  // Stop reading, let the initiator queue up, then answer the victim.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  wire::Header fake = *first;
  fake.tag = victim;
  uint32_t len = first->opcode == CVM_WIRE_OP_READ ? first->length : 0;
  wire::Header r = Reply(fake, CVM_WIRE_STATUS_OK, len);
  std::vector<uint8_t> payload(len, 0x5a);
  if (len) {
    r.flags |= CVM_WIRE_F_DATA_CRC;
    r.data_crc = wire::Crc32c(payload);
  }
  hb = wire::Encode(r);
  if (!SendAll(c.get(), hb.data(), hb.size()) ||
      !SendAll(c.get(), payload.data(), payload.size()))
    return Verdict(true, "initiator closed before the early reply was sent");

  // Drain: every message the initiator still sends, until it closes.
  uint32_t first_payload =
      first->opcode == CVM_WIRE_OP_WRITE ? first->length : 0;
  std::vector<uint8_t> sink(first_payload);
  if (first_payload && !RecvAll(c.get(), sink.data(), first_payload, deadline))
    return Verdict(true, "initiator closed the connection (mid-payload)");
  for (uint64_t seen = 0;; seen++) {
    if (!RecvAll(c.get(), hb.data(), hb.size(), deadline)) {
      if (Clock::now() >= deadline)
        return Verdict(false, fmt::format("initiator kept the connection {} s "
                                          "after a reply to unsent tag {}",
                                          o.timeout_s, victim));
      return Verdict(true, fmt::format("initiator closed the connection after "
                                       "{} more requests, none tag {}",
                                       seen, victim));
    }
    wire::Header h = wire::DecodeRaw(hb);
    if (h.tag == victim)
      return Verdict(false,
                     fmt::format("initiator sent tag {} after its reply had "
                                 "completed it (magic {:#x}, op {})",
                                 victim, h.magic, h.opcode));
    if (wire::Check(h, false))
      return Verdict(false, "initiator sent a malformed header: " +
                                *wire::Check(h, false));
    uint32_t plen = h.opcode == CVM_WIRE_OP_WRITE ? h.length : 0;
    sink.resize(plen);
    if (plen && !RecvAll(c.get(), sink.data(), plen, deadline))
      return Verdict(true, "initiator closed the connection (mid-payload)");
  }
}

// HELLO on a fresh connection; prints and returns the granted limits.
UniqueFd HelloConn(const Options& o, uint32_t* max_inflight,
                   uint32_t* max_data) {
  sockaddr_in sa = Ipv4(o);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // A small window: replies we never read back up into the target rather
  // than into our own receive queue.
  int rcvbuf = 65536;
  if (fd.valid())
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (!fd.valid() ||
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)))
    Die(fmt::format("cannot connect: {}", std::strerror(errno)));
  wire::Hello hello;
  hello.device_id = o.device;
  hello.host_id = 1;
  hello.nonce = wire::RandomNonce();
  wire::Header h = wire::MakeRequest(CVM_WIRE_OP_HELLO);
  h.length = wire::kHelloLen;
  auto hb = wire::Encode(h);
  auto body = wire::EncodeHello(hello);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  if (!SendAll(fd.get(), hb.data(), hb.size()) ||
      !SendAll(fd.get(), body.data(), body.size()) ||
      !RecvAll(fd.get(), hb.data(), hb.size(), deadline))
    Die("HELLO failed");
  auto r = wire::Decode(hb, true);
  if (!r.ok() || r->status != CVM_WIRE_STATUS_OK ||
      r->length != wire::kHelloLen ||
      !RecvAll(fd.get(), body.data(), body.size(), deadline))
    Die("HELLO refused");
  wire::Hello granted = wire::DecodeHello(body);
  // AUTH as the raw tests' host (tests/vm/lib/target_genl.py).
  wire::Key secret{};
  for (size_t i = 0; i < secret.size(); i++) secret[i] = i + 1;
  const wire::Key key = wire::DeriveKey(secret, 0, hello.host_id, o.device);
  wire::Hello auth;
  auth.proof = wire::Proof(key, "cvm-host", hello, hello.nonce, granted.nonce);
  h = wire::MakeRequest(CVM_WIRE_OP_AUTH);
  h.length = wire::kHelloLen;
  hb = wire::Encode(h);
  body = wire::EncodeHello(auth);
  if (!SendAll(fd.get(), hb.data(), hb.size()) ||
      !SendAll(fd.get(), body.data(), body.size()) ||
      !RecvAll(fd.get(), hb.data(), hb.size(), deadline))
    Die("AUTH failed");
  r = wire::Decode(hb, true);
  if (!r.ok() || r->status != CVM_WIRE_STATUS_OK || r->length)
    Die("AUTH refused");
  *max_inflight = granted.max_inflight;
  *max_data = granted.max_data;
  fmt::print("granted: {} requests, {} payload bytes in flight\n",
             *max_inflight, *max_data);
  return fd;
}

// True if the peer closed (or reset) the connection within timeout_ms (0:
// already).  Peeks, so the replies stay unread and the peer's send side
// stays full.
bool PeerClosed(int fd, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  uint8_t b;
  for (;;) {
    int left = std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 Clock::now())
               .count());
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, std::min(left, 100)) > 0) {
      ssize_t r = ::recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return true;
      if (pf.revents & (POLLHUP | POLLERR)) return true;
      // Unread replies: poll stays ready, so pace the checks.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (left == 0) return false;
  }
}

int Flood(const Options& o) {
  uint32_t max_inflight = 0, max_data = 0;
  UniqueFd fd = HelloConn(o, &max_inflight, &max_data);
  uint64_t sent = 0;
  for (; sent < o.count; sent++) {
    wire::Header h = wire::MakeRequest(CVM_WIRE_OP_READ);
    h.tag = sent + 1;
    h.volume_id = 0xf100d;
    h.object_no = sent;
    h.length = o.length;
    auto hb = wire::Encode(h);
    if (!SendAll(fd.get(), hb.data(), hb.size())) break;
  }
  fmt::print("sent {} READ headers of {} bytes, read no reply\n", sent,
             o.length);
  std::fflush(stdout);
  bool closed = PeerClosed(fd.get(), o.hold_s * 1000);
  fmt::print("target {} the connection\n", closed ? "closed" : "kept");
  return 0;
}

int HalfOpen(const Options& o) {
  sockaddr_in sa = Ipv4(o);
  std::vector<UniqueFd> fds;
  for (uint64_t i = 0; i < o.count; i++) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) Die("socket failed (raise ulimit -n?)");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)))
      break;
    fds.push_back(std::move(fd));
  }
  fmt::print("opened {} connections without HELLO\n", fds.size());
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(o.hold_s));
  size_t closed = 0;
  for (auto& fd : fds)
    if (PeerClosed(fd.get(), 0)) closed++;
  fmt::print("target closed {} of {}\n", closed, fds.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  if (o.verb == "early-reply") return EarlyReply(o);
  if (o.verb == "flood") return Flood(o);
  if (o.verb == "half-open") return HalfOpen(o);
  Usage("unknown verb " + o.verb);
}
