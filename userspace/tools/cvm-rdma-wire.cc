// cvm-rdma-wire: the CVM wire protocol over RDMA (rdma_cm, RC queue pairs)
// from userspace, written from include/uapi/linux/cvm_wire.h alone, to check
// cvm_target.ko's rdma transport from the outside.
//
//   cvm-rdma-wire ADDR:PORT hello   --device ID [common options]
//   cvm-rdma-wire ADDR:PORT session --device ID [common options]
//   cvm-rdma-wire ADDR:PORT fuzz    --device ID [common options]
//                                   [--case NAME]... [--no-health]
//   cvm-rdma-wire cases
//
// Common options: --cluster ID, --token HEX (up to 64 hex digits; zero
// padded, as target_genl.py listen), --volume V --object N --offset O (the
// object range the data requests use; default 1 1 0), --timeout SECS (each
// wait; default 10), --keys mw|mr.
//
// hello: connect and say HELLO; prints the status.
// session: a good session: HELLO, a 4 KiB WRITE inline, a 64 KiB WRITE from
//   a registered buffer (the target RDMA READs it), a 64 KiB and a 4 KiB
//   READ into one (the target RDMA WRITEs it), a 4 KiB READ and a STAT
//   naming no buffer (the reply payload comes inline), byte comparisons,
//   STAT into a buffer and FLUSH; every reply is validated, and the replies
//   to requests that named a buffer must come as SEND with Invalidate of
//   that buffer's key, the others as plain SENDs.
// fuzz: one case per malformed or refused message (`cases` lists them),
//   each on a fresh connection; after each, a new connection must say
//   HELLO and READ (skipped with --no-health).
//
// Registered buffers.  A SEND with Invalidate can only end a registration
// that is invalidatable: a memory window of type 2 or a fast-registered MR.
// ibv_reg_mr() makes neither, so with --keys mr the target's SEND with
// Invalidate fails at our end (rxe: IBV_WC_REM_INV_REQ_ERR, the queue pair
// goes to error).  By default (--keys mw) each buffer is an ibv_reg_mr()
// registration with IBV_ACCESS_MW_BIND and a type 2 window bound over it
// with IBV_ACCESS_REMOTE_READ or IBV_ACCESS_REMOTE_WRITE; the window's rkey
// is what the request names and what the target invalidates.
//
// Output: one line per step or case, "ok   NAME: detail" or "FAIL NAME:
// reason", then "N passed, N failed".  Exit status: 0 when every
// expectation held, 1 when one did not (hello: the target answered another
// status), 2 on a usage error or when the client itself could not run.

#include <fcntl.h>
#include <fmt/core.h>
#include <infiniband/verbs.h>
#include <linux/cvm_wire.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "wire_client.h"

namespace {

namespace wire = cvm::wire;
using cvm::Code;
using cvm::Result;
using cvm::Status;

static_assert(sizeof(cvm_wire_hdr) == wire::kHeaderLen);
static_assert(sizeof(cvm_wire_rdma_sgl) == 16);
static_assert(sizeof(cvm_wire_rdma_cmd) == wire::kHeaderLen + 16);
static_assert(sizeof(cvm_wire_rdma_cm_req) == 16);
static_assert(sizeof(cvm_wire_rdma_cm_rep) == 16);
static_assert(sizeof(cvm_wire_hello) == wire::kHelloLen);

constexpr size_t kCmdLen = sizeof(cvm_wire_rdma_cmd);
// Receive buffers hold a reply header and an inline payload of up to the
// inline size asked at connect (at least a HELLO's, at most kMaxRecvInline),
// and kRecvSlack more bytes, so that an oversized reply is seen as such
// rather than as a length error.
constexpr size_t kMaxRecvInline = 65536;
constexpr size_t kRecvSlack = 512;
constexpr uint32_t kBogusKey = 0xfffffe5a;
// Soft-RoCE writes the kernel's struct ib_wc flags into the user CQ ring and
// its provider copies them as they are, so a SEND with Invalidate shows as
// the kernel's IB_WC_WITH_INVALIDATE (1 << 2; IBV_WC_IP_CSUM_OK in
// userspace) instead of IBV_WC_WITH_INV (1 << 3).  Either bit counts; the
// invalidated rkey must still be ours.
constexpr unsigned kKernelWithInv = 1U << 2;

using wire::GetLe;
using wire::PutLe;

Status Errno(std::string_view what) {
  return cvm::IoError(fmt::format("{}: {}", what, std::strerror(errno)));
}

Status Timeout(std::string_view what) {
  return Status(Code::kTimeout, std::string(what));
}

// RAII for the verbs and rdma_cm objects: each is released by its own
// function.
template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using EventChannel =
    std::unique_ptr<rdma_event_channel, Deleter<rdma_destroy_event_channel>>;
using CmId = std::unique_ptr<rdma_cm_id, Deleter<rdma_destroy_id>>;
// The queue pair rdma_create_qp() made on a cm id: destroys the QP only.
using CmQp = std::unique_ptr<rdma_cm_id, Deleter<rdma_destroy_qp>>;
using CmEvent = std::unique_ptr<rdma_cm_event, Deleter<rdma_ack_cm_event>>;
using Pd = std::unique_ptr<ibv_pd, Deleter<ibv_dealloc_pd>>;
using CompChannel =
    std::unique_ptr<ibv_comp_channel, Deleter<ibv_destroy_comp_channel>>;
using Cq = std::unique_ptr<ibv_cq, Deleter<ibv_destroy_cq>>;
using Mr = std::unique_ptr<ibv_mr, Deleter<ibv_dereg_mr>>;
using Mw = std::unique_ptr<ibv_mw, Deleter<ibv_dealloc_mw>>;

// Wire structures of the RDMA framing, host order.

struct Sgl {
  uint64_t addr = 0;
  uint32_t length = 0;
  uint32_t key = 0;
};

// struct cvm_wire_rdma_cm_req.
struct CmReq {
  uint16_t recfmt = CVM_WIRE_RDMA_RECFMT;
  uint16_t queue_depth = 16;
  uint32_t inline_size = 4096;
  uint16_t qid = 0;
  std::array<uint16_t, 3> reserved{};

  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> b(sizeof(cvm_wire_rdma_cm_req));
    PutLe(&b[0], recfmt, 2);
    PutLe(&b[2], queue_depth, 2);
    PutLe(&b[4], inline_size, 4);
    PutLe(&b[8], qid, 2);
    for (size_t i = 0; i < reserved.size(); i++)
      PutLe(&b[10 + 2 * i], reserved[i], 2);
    return b;
  }
};

// struct cvm_wire_rdma_cm_rep, as received.
struct CmRep {
  size_t len = 0;
  uint16_t recfmt = 0;
  uint16_t queue_depth = 0;
  uint32_t inline_size = 0;
  uint64_t reserved = 0;
};

// A request as SENT: header, sgl, inline payload.
std::vector<uint8_t> Command(const wire::Header& h, const Sgl& sgl,
                             std::span<const uint8_t> payload = {},
                             bool seal = true) {
  wire::HeaderBytes hb = wire::Encode(h, seal);
  std::vector<uint8_t> b(hb.begin(), hb.end());
  b.resize(kCmdLen);
  PutLe(&b[wire::kHeaderLen], sgl.addr, 8);
  PutLe(&b[wire::kHeaderLen + 8], sgl.length, 4);
  PutLe(&b[wire::kHeaderLen + 12], sgl.key, 4);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// A completion as we keep it; a received message's bytes are copied out.
struct Completion {
  enum class Kind { kSend, kRecv, kBind } kind = Kind::kSend;
  ibv_wc_status status = IBV_WC_SUCCESS;
  uint32_t byte_len = 0;
  bool invalidated = false;
  uint32_t invalidated_rkey = 0;
  unsigned wc_flags = 0;
  std::vector<uint8_t> data;
};

std::string_view KindName(Completion::Kind k) {
  switch (k) {
    case Completion::Kind::kSend:
      return "SEND";
    case Completion::Kind::kRecv:
      return "RECV";
    case Completion::Kind::kBind:
      return "BIND_MW";
  }
  return "?";
}

// A reply as received.
struct Reply {
  wire::Header hdr;
  std::vector<uint8_t> payload;  // bytes after the header in the SEND
  bool invalidated = false;
  uint32_t invalidated_rkey = 0;
  unsigned wc_flags = 0;
};

enum class KeyMode { kWindow, kMr };

// A buffer the target may access by RDMA: a registration and, in
// KeyMode::kWindow, a type 2 memory window bound over it.
struct Window {
  std::vector<uint8_t> buf;
  Mr mr;
  Mw mw;
  uint32_t rkey = 0;

  Sgl sgl() const {
    return {reinterpret_cast<uintptr_t>(buf.data()),
            static_cast<uint32_t>(buf.size()), rkey};
  }
};

struct Endpoint {
  std::string host;
  std::string port;
};

struct ConnectOptions {
  std::vector<uint8_t> private_data = CmReq{}.Bytes();
  uint32_t send_slots = 16;
  uint32_t recv_slots = 32;
  uint32_t recv_size = wire::kHeaderLen + 4096 + kRecvSlack;
  uint32_t send_size = kCmdLen + 8192;
  int timeout_ms = 10000;
};

// How a connection attempt ended.
enum class ConnectEnd { kEstablished, kRejected };

// One rdma_cm connection with its queue pair, receive buffers posted, send
// buffers and the registered windows of its requests.
class Connection {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (end_ == ConnectEnd::kEstablished && id_) rdma_disconnect(id_.get());
  }

  // Resolves, connects with o.private_data and waits for the target's
  // answer: an established connection or a rejected one (rejected()).
  static Result<std::unique_ptr<Connection>> Open(const Endpoint& ep,
                                                  const ConnectOptions& o);

  bool rejected() const { return end_ == ConnectEnd::kRejected; }
  int reject_status() const { return reject_status_; }
  const CmRep& rep() const { return rep_; }

  // Copies `msg` into a send buffer and posts it as one SEND.
  Status Send(std::span<const uint8_t> msg);
  // A buffer of `len` bytes the target may access with `access`
  // (IBV_ACCESS_REMOTE_READ or IBV_ACCESS_REMOTE_WRITE); owned here.
  Result<Window*> Expose(size_t len, int access, KeyMode mode);

  // The next completion; Unavailable("DISCONNECTED") once the target has
  // disconnected and nothing is left, kTimeout when nothing came in time.
  Result<Completion> Next(int timeout_ms);
  // The next message received; failed work requests are errors.
  Result<Reply> AwaitReply(int timeout_ms);
  // The target closes the connection without sending anything: nullopt and
  // what showed it in `how`; else why not.
  std::optional<std::string> AwaitClose(int timeout_ms, std::string* how);

  uint64_t NextTag() { return next_tag_++; }

 private:
  Connection() = default;

  Status Setup(const ConnectOptions& o);
  Status PostRecv(uint32_t slot);
  Status Pump(int timeout_ms);
  void PollCq();
  void ReadCmEvents();
  Result<CmEvent> WaitCmEvent(int timeout_ms);

  static constexpr uint64_t kSendTag = 1ULL << 60;
  static constexpr uint64_t kRecvTag = 2ULL << 60;
  static constexpr uint64_t kBindTag = 3ULL << 60;
  static constexpr uint64_t kTagMask = 0xfULL << 60;

  // Destroyed in reverse: windows, buffers' registrations, QP, CQ, PD, id.
  EventChannel channel_;
  CmId id_;
  Pd pd_;
  CompChannel comp_;
  Cq cq_;
  CmQp qp_;
  std::vector<uint8_t> rx_;
  std::vector<uint8_t> tx_;
  Mr rx_mr_;
  Mr tx_mr_;
  std::vector<std::unique_ptr<Window>> windows_;

  uint32_t send_size_ = 0;
  uint32_t recv_size_ = 0;
  std::vector<uint32_t> free_tx_;
  std::deque<Completion> completions_;
  std::deque<CmEvent> cm_events_;
  bool disconnected_ = false;
  ConnectEnd end_ = ConnectEnd::kRejected;
  int reject_status_ = 0;
  CmRep rep_;
  uint64_t next_tag_ = 1;
};

Status SetNonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return Errno("fcntl O_NONBLOCK");
  return Status::Ok();
}

Result<std::unique_ptr<Connection>> Connection::Open(const Endpoint& ep,
                                                     const ConnectOptions& o) {
  std::unique_ptr<Connection> c(new Connection());
  c->channel_.reset(rdma_create_event_channel());
  if (!c->channel_) return Errno("rdma_create_event_channel");
  CVM_RETURN_IF_ERROR(SetNonBlocking(c->channel_->fd));
  rdma_cm_id* id = nullptr;
  if (rdma_create_id(c->channel_.get(), &id, nullptr, RDMA_PS_TCP))
    return Errno("rdma_create_id");
  c->id_.reset(id);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(ep.host.c_str(), ep.port.c_str(), &hints, &res);
  if (rc)
    return cvm::InvalidArgument(
        fmt::format("cannot resolve {}: {}", ep.host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, Deleter<freeaddrinfo>> ai(res);
  if (rdma_resolve_addr(id, nullptr, ai->ai_addr, o.timeout_ms))
    return Errno("rdma_resolve_addr");
  CVM_ASSIGN_OR_RETURN(CmEvent ev, c->WaitCmEvent(o.timeout_ms));
  if (ev->event != RDMA_CM_EVENT_ADDR_RESOLVED)
    return cvm::Unavailable(fmt::format("resolving {}: {} ({})", ep.host,
                                        rdma_event_str(ev->event), ev->status));
  ev.reset();
  if (rdma_resolve_route(id, o.timeout_ms)) return Errno("rdma_resolve_route");
  CVM_ASSIGN_OR_RETURN(ev, c->WaitCmEvent(o.timeout_ms));
  if (ev->event != RDMA_CM_EVENT_ROUTE_RESOLVED)
    return cvm::Unavailable(fmt::format("route to {}: {} ({})", ep.host,
                                        rdma_event_str(ev->event), ev->status));
  ev.reset();
  CVM_RETURN_IF_ERROR(c->Setup(o));

  ibv_device_attr attr{};
  if (ibv_query_device(id->verbs, &attr)) return Errno("ibv_query_device");
  rdma_conn_param param{};
  param.private_data = o.private_data.empty() ? nullptr : o.private_data.data();
  param.private_data_len = static_cast<uint8_t>(o.private_data.size());
  // The target RDMA READs WRITE payloads from us: let it have reads in
  // flight (rdma_cm hands our responder_resources to it as its
  // initiator_depth).
  param.responder_resources =
      static_cast<uint8_t>(std::min(attr.max_qp_rd_atom, 16));
  param.initiator_depth =
      static_cast<uint8_t>(std::min(attr.max_qp_init_rd_atom, 16));
  param.flow_control = 1;
  param.retry_count = 7;
  param.rnr_retry_count = 7;
  if (rdma_connect(id, &param)) return Errno("rdma_connect");
  CVM_ASSIGN_OR_RETURN(ev, c->WaitCmEvent(o.timeout_ms));
  switch (ev->event) {
    case RDMA_CM_EVENT_ESTABLISHED: {
      c->end_ = ConnectEnd::kEstablished;
      const auto* p = static_cast<const uint8_t*>(ev->param.conn.private_data);
      CmRep& r = c->rep_;
      r.len = p ? ev->param.conn.private_data_len : 0;
      if (r.len >= sizeof(cvm_wire_rdma_cm_rep)) {
        r.recfmt = GetLe(p, 2);
        r.queue_depth = GetLe(p + 2, 2);
        r.inline_size = GetLe(p + 4, 4);
        r.reserved = GetLe(p + 8, 8);
      }
      return c;
    }
    case RDMA_CM_EVENT_REJECTED:
      c->end_ = ConnectEnd::kRejected;
      c->reject_status_ = ev->status;
      return c;
    default:
      return cvm::Unavailable(fmt::format("connect to {}:{}: {} ({})", ep.host,
                                          ep.port, rdma_event_str(ev->event),
                                          ev->status));
  }
}

// PD, CQ with its completion channel, QP, send and receive buffers; the
// receives posted.
Status Connection::Setup(const ConnectOptions& o) {
  ibv_context* verbs = id_->verbs;
  pd_.reset(ibv_alloc_pd(verbs));
  if (!pd_) return Errno("ibv_alloc_pd");
  comp_.reset(ibv_create_comp_channel(verbs));
  if (!comp_) return Errno("ibv_create_comp_channel");
  CVM_RETURN_IF_ERROR(SetNonBlocking(comp_->fd));
  // Sends, window binds (one per send at most) and receives.
  int cqe = static_cast<int>(2 * o.send_slots + o.recv_slots + 16);
  cq_.reset(ibv_create_cq(verbs, cqe, nullptr, comp_.get(), 0));
  if (!cq_) return Errno("ibv_create_cq");
  if (ibv_req_notify_cq(cq_.get(), 0)) return Errno("ibv_req_notify_cq");

  ibv_qp_init_attr qa{};
  qa.send_cq = cq_.get();
  qa.recv_cq = cq_.get();
  qa.qp_type = IBV_QPT_RC;
  qa.cap.max_send_wr = 2 * o.send_slots + 4;
  qa.cap.max_recv_wr = o.recv_slots;
  qa.cap.max_send_sge = 1;
  qa.cap.max_recv_sge = 1;
  if (rdma_create_qp(id_.get(), pd_.get(), &qa)) return Errno("rdma_create_qp");
  qp_.reset(id_.get());

  send_size_ = o.send_size;
  tx_.assign(static_cast<size_t>(o.send_slots) * send_size_, 0);
  recv_size_ = o.recv_size;
  rx_.assign(static_cast<size_t>(o.recv_slots) * recv_size_, 0);
  tx_mr_.reset(ibv_reg_mr(pd_.get(), tx_.data(), tx_.size(), 0));
  if (!tx_mr_) return Errno("ibv_reg_mr (send buffers)");
  rx_mr_.reset(
      ibv_reg_mr(pd_.get(), rx_.data(), rx_.size(), IBV_ACCESS_LOCAL_WRITE));
  if (!rx_mr_) return Errno("ibv_reg_mr (receive buffers)");
  for (uint32_t i = 0; i < o.send_slots; i++) free_tx_.push_back(i);
  for (uint32_t i = 0; i < o.recv_slots; i++) CVM_RETURN_IF_ERROR(PostRecv(i));
  return Status::Ok();
}

Status Connection::PostRecv(uint32_t slot) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(
      rx_.data() + static_cast<size_t>(slot) * recv_size_);
  sge.length = recv_size_;
  sge.lkey = rx_mr_->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = kRecvTag | slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (int err = ibv_post_recv(qp_->qp, &wr, &bad)) {
    errno = err;
    return Errno("ibv_post_recv");
  }
  return Status::Ok();
}

Status Connection::Send(std::span<const uint8_t> msg) {
  if (msg.size() > send_size_)
    return cvm::InvalidArgument(fmt::format(
        "message of {} bytes, send buffers hold {}", msg.size(), send_size_));
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(10000);
  while (free_tx_.empty()) {
    if (disconnected_) return cvm::Unavailable("DISCONNECTED");
    if (std::chrono::steady_clock::now() > deadline)
      return Timeout("no send buffer came free");
    CVM_RETURN_IF_ERROR(Pump(100));
  }
  uint32_t slot = free_tx_.back();
  free_tx_.pop_back();
  uint8_t* p = tx_.data() + static_cast<size_t>(slot) * send_size_;
  std::memcpy(p, msg.data(), msg.size());
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(p);
  sge.length = static_cast<uint32_t>(msg.size());
  sge.lkey = tx_mr_->lkey;
  ibv_send_wr wr{};
  wr.wr_id = kSendTag | slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  ibv_send_wr* bad = nullptr;
  if (int err = ibv_post_send(qp_->qp, &wr, &bad)) {
    free_tx_.push_back(slot);
    errno = err;
    return Errno("ibv_post_send");
  }
  return Status::Ok();
}

Result<Window*> Connection::Expose(size_t len, int access, KeyMode mode) {
  auto w = std::make_unique<Window>();
  w->buf.assign(len, 0);
  if (mode == KeyMode::kMr) {
    w->mr.reset(ibv_reg_mr(pd_.get(), w->buf.data(), len,
                           IBV_ACCESS_LOCAL_WRITE | access));
    if (!w->mr) return Errno("ibv_reg_mr");
    w->rkey = w->mr->rkey;
    windows_.push_back(std::move(w));
    return windows_.back().get();
  }
  w->mr.reset(ibv_reg_mr(pd_.get(), w->buf.data(), len,
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_MW_BIND));
  if (!w->mr) return Errno("ibv_reg_mr (IBV_ACCESS_MW_BIND)");
  w->mw.reset(ibv_alloc_mw(pd_.get(), IBV_MW_TYPE_2));
  if (!w->mw) return Errno("ibv_alloc_mw (type 2)");
  uint32_t rkey = ibv_inc_rkey(w->mw->rkey);
  ibv_send_wr wr{};
  wr.wr_id = kBindTag;
  wr.opcode = IBV_WR_BIND_MW;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.bind_mw.mw = w->mw.get();
  wr.bind_mw.rkey = rkey;
  wr.bind_mw.bind_info.mr = w->mr.get();
  wr.bind_mw.bind_info.addr = reinterpret_cast<uintptr_t>(w->buf.data());
  wr.bind_mw.bind_info.length = len;
  wr.bind_mw.bind_info.mw_access_flags = access;
  ibv_send_wr* bad = nullptr;
  if (int err = ibv_post_send(qp_->qp, &wr, &bad)) {
    errno = err;
    return Errno("ibv_post_send (BIND_MW)");
  }
  // Completions of other work requests wait behind the bind's.
  std::deque<Completion> others;
  Status st = Status::Ok();
  while (true) {
    auto c = Next(10000);
    if (!c.ok()) {
      st = c.status().WithContext("binding a memory window");
      break;
    }
    if (c->kind != Completion::Kind::kBind) {
      others.push_back(std::move(*c));
      continue;
    }
    if (c->status != IBV_WC_SUCCESS)
      st = cvm::IoError(
          fmt::format("BIND_MW completion: {}", ibv_wc_status_str(c->status)));
    break;
  }
  completions_.insert(completions_.begin(), others.begin(), others.end());
  CVM_RETURN_IF_ERROR(st);
  w->rkey = rkey;
  windows_.push_back(std::move(w));
  return windows_.back().get();
}

void Connection::PollCq() {
  ibv_wc wc[16];
  int n;
  while ((n = ibv_poll_cq(cq_.get(), 16, wc)) > 0) {
    for (int i = 0; i < n; i++) {
      Completion c;
      c.status = wc[i].status;
      c.byte_len = wc[i].byte_len;
      uint64_t tag = wc[i].wr_id & kTagMask;
      uint32_t slot = static_cast<uint32_t>(wc[i].wr_id & ~kTagMask);
      if (tag == kSendTag) {
        c.kind = Completion::Kind::kSend;
        free_tx_.push_back(slot);
      } else if (tag == kBindTag) {
        c.kind = Completion::Kind::kBind;
      } else {
        c.kind = Completion::Kind::kRecv;
        if (c.status == IBV_WC_SUCCESS) {
          c.wc_flags = wc[i].wc_flags;
          c.invalidated = wc[i].wc_flags & (IBV_WC_WITH_INV | kKernelWithInv);
          c.invalidated_rkey = wc[i].invalidated_rkey;
          const uint8_t* p =
              rx_.data() + static_cast<size_t>(slot) * recv_size_;
          c.data.assign(p, p + std::min<size_t>(c.byte_len, recv_size_));
          // Best effort: after a failure nothing more arrives anyway.
          (void)PostRecv(slot);
        }
      }
      completions_.push_back(std::move(c));
    }
  }
}

void Connection::ReadCmEvents() {
  rdma_cm_event* e = nullptr;
  while (rdma_get_cm_event(channel_.get(), &e) == 0) {
    CmEvent ev(e);
    if (ev->event == RDMA_CM_EVENT_DISCONNECTED) {
      disconnected_ = true;
      continue;
    }
    cm_events_.push_back(std::move(ev));
  }
}

// Waits up to `timeout_ms` for a completion or an rdma_cm event and takes
// in whatever came.
Status Connection::Pump(int timeout_ms) {
  if (cq_) PollCq();
  if (!completions_.empty()) return Status::Ok();
  pollfd fds[2] = {{channel_->fd, POLLIN, 0},
                   {comp_ ? comp_->fd : -1, POLLIN, 0}};
  int n = ::poll(fds, comp_ ? 2 : 1, std::max(timeout_ms, 0));
  if (n < 0) return errno == EINTR ? Status::Ok() : Errno("poll");
  if (comp_ && (fds[1].revents & POLLIN)) {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    if (ibv_get_cq_event(comp_.get(), &cq, &ctx) == 0) {
      ibv_ack_cq_events(cq, 1);
      if (ibv_req_notify_cq(cq, 0)) return Errno("ibv_req_notify_cq");
    }
    PollCq();
  }
  if (fds[0].revents & POLLIN) ReadCmEvents();
  return Status::Ok();
}

Result<CmEvent> Connection::WaitCmEvent(int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (cm_events_.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return Timeout("no rdma_cm event in time");
    CVM_RETURN_IF_ERROR(Pump(static_cast<int>(left)));
  }
  CmEvent ev = std::move(cm_events_.front());
  cm_events_.pop_front();
  return ev;
}

Result<Completion> Connection::Next(int timeout_ms) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (disconnected_) PollCq();
    if (!completions_.empty()) {
      Completion c = std::move(completions_.front());
      completions_.pop_front();
      return c;
    }
    if (disconnected_) return cvm::Unavailable("DISCONNECTED");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return Timeout("nothing in time");
    CVM_RETURN_IF_ERROR(Pump(static_cast<int>(left)));
  }
}

Result<Reply> Connection::AwaitReply(int timeout_ms) {
  while (true) {
    CVM_ASSIGN_OR_RETURN(Completion c, Next(timeout_ms));
    if (c.status != IBV_WC_SUCCESS)
      return cvm::IoError(fmt::format("{} completion: {}", KindName(c.kind),
                                      ibv_wc_status_str(c.status)));
    if (c.kind != Completion::Kind::kRecv) continue;
    if (c.byte_len < wire::kHeaderLen)
      return cvm::Corruption(
          fmt::format("reply of {} bytes, shorter than a header", c.byte_len));
    if (c.byte_len > c.data.size())
      return cvm::Corruption(fmt::format("reply of {} bytes", c.byte_len));
    Reply r;
    r.hdr = wire::DecodeRaw(std::span<const uint8_t, wire::kHeaderLen>(
        c.data.data(), wire::kHeaderLen));
    r.payload.assign(c.data.begin() + wire::kHeaderLen, c.data.end());
    r.invalidated = c.invalidated;
    r.invalidated_rkey = c.invalidated_rkey;
    r.wc_flags = c.wc_flags;
    return r;
  }
}

std::optional<std::string> Connection::AwaitClose(int timeout_ms,
                                                  std::string* how) {
  while (true) {
    auto c = Next(timeout_ms);
    if (!c.ok()) {
      if (c.status().code() == Code::kTimeout)
        return fmt::format("still open after {} ms", timeout_ms);
      *how = c.status().message();
      return std::nullopt;
    }
    if (c->status != IBV_WC_SUCCESS) {
      *how =
          fmt::format("{} {}", KindName(c->kind), ibv_wc_status_str(c->status));
      return std::nullopt;
    }
    if (c->kind == Completion::Kind::kRecv) {
      std::string what = fmt::format("a message of {} bytes", c->byte_len);
      if (c->byte_len >= wire::kHeaderLen) {
        wire::Header h =
            wire::DecodeRaw(std::span<const uint8_t, wire::kHeaderLen>(
                c->data.data(), wire::kHeaderLen));
        what = fmt::format("a {} reply, status {}", wire::OpName(h.opcode),
                           wire::StatusName(h.status));
      }
      return fmt::format("expected no reply, got {}", what);
    }
  }
}

// Command line

struct Options {
  Endpoint ep;
  std::string verb;
  wire::Hello hello;
  // The raw tests' host (tests/vm/lib/target_genl.py) unless told.
  wire::Key secret{};
  // A host the device lets in without volume --volume (foreign-volume).
  uint64_t foreign_host = 0;
  wire::Key foreign_secret{};
  wire::ObjectKey key{1, 1, 0};
  uint64_t offset = 0;
  int timeout_ms = 10000;
  KeyMode keys = KeyMode::kWindow;
  std::vector<std::string> cases;
  bool health = true;
};

constexpr std::string_view kUsage =
    "usage: cvm-rdma-wire ADDR:PORT hello|session|fuzz --device ID\n"
    "           [--cluster ID] [--host-id H --secret HEX] [--volume V] "
    "[--object N]\n"
    "           [--offset O] [--timeout SECS] [--keys mw|mr]\n"
    "           [--case NAME]... [--no-health]   (fuzz)\n"
    "       cvm-rdma-wire cases\n";

Status Usage(std::string why) { return cvm::InvalidArgument(std::move(why)); }

Result<uint64_t> Number(std::string_view opt, const char* s, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 0);
  if (errno || !*s || *end || *s == '-')
    return Usage(fmt::format("{}: not a number: '{}'", opt, s));
  if (v > max) return Usage(fmt::format("{}: {} is above {}", opt, v, max));
  return static_cast<uint64_t>(v);
}

Result<wire::Key> Token(const std::string& hex) {
  wire::Key t{};
  if (hex.size() != 2 * t.size())
    return Usage(fmt::format("--secret: want {} hex digits", 2 * t.size()));
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto digit = [](char ch) -> int {
      if (ch >= '0' && ch <= '9') return ch - '0';
      if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
      if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
      return -1;
    };
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return Usage(fmt::format("--secret: '{}' is not hex", hex));
    t[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return t;
}

Result<Endpoint> ParseEndpoint(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return Usage(fmt::format("want ADDR:PORT, got '{}'", s));
  Endpoint ep{s.substr(0, colon), s.substr(colon + 1)};
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']')
    ep.host = ep.host.substr(1, ep.host.size() - 2);
  CVM_ASSIGN_OR_RETURN(uint64_t port,
                       Number("port", ep.port.c_str(), UINT16_MAX));
  if (!port) return Usage("port 0");
  return ep;
}

Result<Options> Parse(int argc, char** argv) {
  if (argc < 3) return Usage("want ADDR:PORT and a verb");
  Options o;
  o.hello.host_id = 1;
  for (size_t i = 0; i < o.secret.size(); i++) o.secret[i] = i + 1;
  CVM_ASSIGN_OR_RETURN(o.ep, ParseEndpoint(argv[1]));
  o.verb = argv[2];
  if (o.verb != "hello" && o.verb != "session" && o.verb != "fuzz")
    return Usage(fmt::format("unknown verb '{}'", o.verb));
  bool have_device = false;
  for (int i = 3; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> Result<const char*> {
      if (i + 1 >= argc) return Usage(a + " needs a value");
      return argv[++i];
    };
    auto num = [&](uint64_t max) -> Result<uint64_t> {
      CVM_ASSIGN_OR_RETURN(const char* v, val());
      return Number(a, v, max);
    };
    if (a == "--device") {
      CVM_ASSIGN_OR_RETURN(o.hello.device_id, num(UINT32_MAX));
      have_device = true;
    } else if (a == "--cluster") {
      CVM_ASSIGN_OR_RETURN(o.hello.cluster_id, num(UINT64_MAX));
    } else if (a == "--secret") {
      CVM_ASSIGN_OR_RETURN(const char* v, val());
      CVM_ASSIGN_OR_RETURN(o.secret, Token(v));
    } else if (a == "--host-id") {
      CVM_ASSIGN_OR_RETURN(o.hello.host_id, num(UINT64_MAX));
    } else if (a == "--foreign-host") {
      CVM_ASSIGN_OR_RETURN(o.foreign_host, num(UINT64_MAX));
    } else if (a == "--foreign-secret") {
      CVM_ASSIGN_OR_RETURN(const char* v, val());
      CVM_ASSIGN_OR_RETURN(o.foreign_secret, Token(v));
    } else if (a == "--volume") {
      CVM_ASSIGN_OR_RETURN(o.key.volume_id, num(UINT64_MAX));
    } else if (a == "--object") {
      CVM_ASSIGN_OR_RETURN(o.key.object_no, num(UINT64_MAX));
    } else if (a == "--offset") {
      CVM_ASSIGN_OR_RETURN(o.offset, num(CVM_WIRE_MAX_OBJECT_SIZE));
      if (o.offset % CVM_WIRE_SECTOR_SIZE)
        return Usage("--offset: not a multiple of 512");
    } else if (a == "--timeout") {
      CVM_ASSIGN_OR_RETURN(uint64_t s, num(3600));
      if (!s) return Usage("--timeout: 0");
      o.timeout_ms = static_cast<int>(s * 1000);
    } else if (a == "--keys") {
      CVM_ASSIGN_OR_RETURN(const char* v, val());
      if (std::string_view(v) == "mw") {
        o.keys = KeyMode::kWindow;
      } else if (std::string_view(v) == "mr") {
        o.keys = KeyMode::kMr;
      } else {
        return Usage(fmt::format("--keys: want mw or mr, got '{}'", v));
      }
    } else if (a == "--case" && o.verb == "fuzz") {
      CVM_ASSIGN_OR_RETURN(const char* v, val());
      o.cases.emplace_back(v);
    } else if (a == "--no-health" && o.verb == "fuzz") {
      o.health = false;
    } else {
      return Usage(fmt::format("unknown option '{}' for {}", a, o.verb));
    }
  }
  if (!have_device) return Usage("--device is required");
  return o;
}

// Reporting: one line per step or case.
class Tally {
 public:
  void Ok(std::string_view name, std::string_view detail) {
    fmt::print("ok   {}{}{}\n", name, detail.empty() ? "" : ": ", detail);
    passed_++;
    std::fflush(stdout);
  }
  void Fail(std::string_view name, std::string_view why) {
    fmt::print("FAIL {}: {}\n", name, why);
    failed_++;
    std::fflush(stdout);
  }
  // Records `s` under `name`: true if it was ok.
  bool Record(std::string_view name, const Result<std::string>& r) {
    if (r.ok()) {
      Ok(name, *r);
      return true;
    }
    Fail(name, r.status().message());
    return false;
  }
  int Finish() const {
    fmt::print("{} passed, {} failed\n", passed_, failed_);
    return failed_ ? 1 : 0;
  }

 private:
  int passed_ = 0;
  int failed_ = 0;
};

// Protocol steps

ConnectOptions DefaultConnect(const Options& o, CmReq cm = {}) {
  ConnectOptions c;
  c.private_data = cm.Bytes();
  c.recv_size = static_cast<uint32_t>(
      wire::kHeaderLen +
      std::clamp<size_t>(cm.inline_size, wire::kHelloLen, kMaxRecvInline) +
      kRecvSlack);
  c.timeout_ms = o.timeout_ms;
  return c;
}

// Connects; a rejection is an error.
Result<std::unique_ptr<Connection>> Dial(const Options& o,
                                         const ConnectOptions& co) {
  CVM_ASSIGN_OR_RETURN(auto c, Connection::Open(o.ep, co));
  if (c->rejected())
    return cvm::Unavailable(
        fmt::format("connect rejected (status {})", c->reject_status()));
  return c;
}

wire::Header Request(Connection& c, uint8_t op) {
  wire::Header h = wire::MakeRequest(op);
  h.tag = c.NextTag();
  return h;
}

wire::Header Ranged(Connection& c, const Options& o, uint8_t op,
                    uint64_t offset, uint32_t length) {
  wire::Header h = Request(c, op);
  h.volume_id = o.key.volume_id;
  h.object_no = o.key.object_no;
  h.shard = o.key.shard;
  h.offset = offset;
  h.length = length;
  return h;
}

std::vector<uint8_t> HelloCommand(Connection& c, const wire::Hello& hello) {
  wire::Header h = Request(c, CVM_WIRE_OP_HELLO);
  h.length = wire::kHelloLen;
  auto p = wire::EncodeHello(hello);
  return Command(h, {}, p);
}

// A reply must answer `req` with `status`, a payload of `len` bytes and,
// when `inv_rkey` is set, come as SEND with Invalidate of that key (else as
// a plain SEND).
Status CheckReply(const Reply& r, const wire::Header& req, uint16_t status,
                  uint32_t len, std::optional<uint32_t> inv_rkey) {
  const wire::Header& h = r.hdr;
  if (auto why = wire::Check(h, true))
    return cvm::Corruption(fmt::format("malformed reply: {}", *why));
  if (h.tag != req.tag || h.opcode != req.opcode ||
      h.volume_id != req.volume_id || h.object_no != req.object_no ||
      h.shard != req.shard || h.offset != req.offset)
    return cvm::Corruption(fmt::format(
        "reply does not echo the request (tag {} op {}, want tag {} op {})",
        h.tag, wire::OpName(h.opcode), req.tag, wire::OpName(req.opcode)));
  if (h.status != status)
    return cvm::Corruption(fmt::format("status {}, want {}",
                                       wire::StatusName(h.status),
                                       wire::StatusName(status)));
  if (h.length != len)
    return cvm::Corruption(
        fmt::format("reply length {}, want {}", h.length, len));
  // A reply payload travels in the reply's SEND unless the request named
  // a buffer for it.
  size_t inline_len = inv_rkey ? 0 : h.length;
  if (r.payload.size() != inline_len)
    return cvm::Corruption(
        fmt::format("{} payload bytes in the reply SEND, "
                    "want {}",
                    r.payload.size(), inline_len));
  if (inv_rkey) {
    if (!r.invalidated)
      return cvm::Corruption(
          fmt::format("reply is a plain SEND (wc_flags {:#x}), want SEND with "
                      "Invalidate of {:#x}",
                      r.wc_flags, *inv_rkey));
    if (r.invalidated_rkey != *inv_rkey)
      return cvm::Corruption(fmt::format("reply invalidated {:#x}, want {:#x}",
                                         r.invalidated_rkey, *inv_rkey));
  } else if (r.invalidated) {
    return cvm::Corruption(
        fmt::format("reply invalidated {:#x}, but the request named no buffer",
                    r.invalidated_rkey));
  }
  return Status::Ok();
}

// Sends `cmd` (of header `req`) and checks its reply.
Result<Reply> Call(Connection& c, const Options& o, const wire::Header& req,
                   std::span<const uint8_t> cmd, uint16_t status, uint32_t len,
                   std::optional<uint32_t> inv_rkey) {
  CVM_RETURN_IF_ERROR(c.Send(cmd));
  CVM_ASSIGN_OR_RETURN(Reply r, c.AwaitReply(o.timeout_ms));
  CVM_RETURN_IF_ERROR(CheckReply(r, req, status, len, inv_rkey));
  return r;
}

// HELLO answered with `status` (and the hello echoed on OK); on OK the
// target's proof is checked and AUTH sent with ours (version 5).
Status SayHello(Connection& c, const Options& o, const wire::Hello& asked,
                uint16_t status = CVM_WIRE_STATUS_OK) {
  wire::Hello hello = asked;
  if (std::all_of(hello.nonce.begin(), hello.nonce.end(),
                  [](uint8_t b) { return !b; }))
    hello.nonce = wire::RandomNonce();
  auto cmd = HelloCommand(c, hello);
  wire::Header req = wire::DecodeRaw(
      std::span<const uint8_t, wire::kHeaderLen>(cmd.data(), wire::kHeaderLen));
  uint32_t len = status == CVM_WIRE_STATUS_OK ? wire::kHelloLen : 0;
  CVM_ASSIGN_OR_RETURN(Reply r, Call(c, o, req, cmd, status, len, {}));
  if (status != CVM_WIRE_STATUS_OK) return Status::Ok();
  const uint8_t* p = r.payload.data();
  if (GetLe(p, 8) != hello.cluster_id || GetLe(p + 8, 8) != hello.host_id ||
      GetLe(p + 20, 4) != hello.device_id)
    return cvm::Corruption("HELLO reply does not echo cluster, host, device");
  if (GetLe(p + 16, 4) || GetLe(p + 26, 2))
    return cvm::Corruption("HELLO reply with features or reserved set");
  // Version 2: the grants, within what was asked (0: anything).
  uint32_t inflight = GetLe(p + 24, 2), data = GetLe(p + 28, 4);
  if (!inflight || (hello.max_inflight && inflight > hello.max_inflight) ||
      data < CVM_WIRE_MAX_DATA_LEN || (hello.max_data && data > hello.max_data))
    return cvm::Corruption(fmt::format(
        "HELLO reply grants {} requests, {} bytes", inflight, data));
  // Version 3: the device's instance, never 0.
  if (!GetLe(p + 64, 8))
    return cvm::Corruption("HELLO reply without the device's instance");
  // Version 5: the target proves it holds our key, then we do.
  wire::Hello got = wire::DecodeHello(
      std::span<const uint8_t, wire::kHelloLen>(p, wire::kHelloLen));
  const wire::Key key = wire::DeriveKey(o.secret, hello.cluster_id,
                                        hello.host_id, hello.device_id);
  if (wire::Proof(key, "cvm-target", hello, hello.nonce, got.nonce) !=
      got.proof)
    return cvm::Corruption("the target's proof is wrong");
  wire::Hello auth;
  auth.proof = wire::Proof(key, "cvm-host", hello, hello.nonce, got.nonce);
  wire::Header h = Request(c, CVM_WIRE_OP_AUTH);
  h.length = wire::kHelloLen;
  auto acmd = Command(h, {}, wire::EncodeHello(auth));
  wire::Header areq =
      wire::DecodeRaw(std::span<const uint8_t, wire::kHeaderLen>(
          acmd.data(), wire::kHeaderLen));
  CVM_ASSIGN_OR_RETURN(Reply ar,
                       Call(c, o, areq, acmd, CVM_WIRE_STATUS_OK, 0, {}));
  (void)ar;
  return Status::Ok();
}

// The accept's private data is well-formed for what we asked.
Status CheckRep(const Connection& c, const CmReq& asked) {
  const CmRep& r = c.rep();
  if (r.len < sizeof(cvm_wire_rdma_cm_rep))
    return cvm::Corruption(
        fmt::format("accept private data of {} bytes", r.len));
  if (r.recfmt != CVM_WIRE_RDMA_RECFMT)
    return cvm::Corruption(fmt::format("accept recfmt {}", r.recfmt));
  if (!r.queue_depth || r.queue_depth > asked.queue_depth)
    return cvm::Corruption(fmt::format("accepted depth {} for {} asked",
                                       r.queue_depth, asked.queue_depth));
  if (r.inline_size > asked.inline_size)
    return cvm::Corruption(fmt::format("accepted inline size {} for {} asked",
                                       r.inline_size, asked.inline_size));
  if (r.reserved)
    return cvm::Corruption(fmt::format("accept reserved {:#x}", r.reserved));
  return Status::Ok();
}

// A connection that said HELLO.
Result<std::unique_ptr<Connection>> Ready(const Options& o,
                                          const ConnectOptions& co) {
  CVM_ASSIGN_OR_RETURN(auto c, Dial(o, co));
  CVM_RETURN_IF_ERROR(SayHello(*c, o, o.hello).WithContext("HELLO"));
  return c;
}

Result<std::unique_ptr<Connection>> Ready(const Options& o) {
  return Ready(o, DefaultConnect(o));
}

// READ of `len` bytes at `offset` into a registered buffer.
Result<std::vector<uint8_t>> ReadKeyed(Connection& c, const Options& o,
                                       uint64_t offset, uint32_t len) {
  CVM_ASSIGN_OR_RETURN(Window * w,
                       c.Expose(len, IBV_ACCESS_REMOTE_WRITE, o.keys));
  wire::Header h = Ranged(c, o, CVM_WIRE_OP_READ, offset, len);
  auto cmd = Command(h, w->sgl());
  CVM_ASSIGN_OR_RETURN(Reply r,
                       Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, len, w->rkey));
  return w->buf;
}

// The target still serves: a new connection says HELLO and READs.
Result<std::string> Healthy(const Options& o) {
  CVM_ASSIGN_OR_RETURN(auto c, Ready(o));
  CVM_ASSIGN_OR_RETURN(auto data, ReadKeyed(*c, o, o.offset, 4096));
  return std::string("HELLO and READ on a new connection");
}

// Verbs

std::vector<uint8_t> AuthCommand(Connection& c, const wire::Key& proof) {
  wire::Header h = Request(c, CVM_WIRE_OP_AUTH);
  h.length = wire::kHelloLen;
  wire::Hello a;
  a.proof = proof;
  return Command(h, {}, wire::EncodeHello(a));
}

int RunHello(const Options& o) {
  auto c = Dial(o, DefaultConnect(o));
  if (!c.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: connect error: {}\n",
               c.status().ToString());
    return 2;
  }
  wire::Hello hello = o.hello;
  hello.nonce = wire::RandomNonce();
  auto cmd = HelloCommand(**c, hello);
  if (Status s = (*c)->Send(cmd); !s.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: hello error: {}\n", s.ToString());
    return 2;
  }
  auto r = (*c)->AwaitReply(o.timeout_ms);
  if (!r.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: hello error: {}\n",
               r.status().ToString());
    return 2;
  }
  wire::Header req = wire::DecodeRaw(
      std::span<const uint8_t, wire::kHeaderLen>(cmd.data(), wire::kHeaderLen));
  uint16_t st = r->hdr.status;
  Status s = CheckReply(*r, req, st, st ? 0 : wire::kHelloLen, {});
  if (!s.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: hello error: {}\n", s.ToString());
    return 2;
  }
  fmt::print("HELLO: {}\n", wire::StatusName(st));
  if (st != CVM_WIRE_STATUS_OK) return 1;
  // The target proved it holds our key; now we prove it.
  wire::Hello got = wire::DecodeHello(std::span<const uint8_t, wire::kHelloLen>(
      r->payload.data(), wire::kHelloLen));
  const wire::Key key = wire::DeriveKey(o.secret, hello.cluster_id,
                                        hello.host_id, hello.device_id);
  if (wire::Proof(key, "cvm-target", hello, hello.nonce, got.nonce) !=
      got.proof) {
    fmt::print(stderr, "cvm-rdma-wire: the target's proof is wrong\n");
    return 2;
  }
  auto acmd = AuthCommand(
      **c, wire::Proof(key, "cvm-host", hello, hello.nonce, got.nonce));
  if (Status as = (*c)->Send(acmd); !as.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: auth error: {}\n", as.ToString());
    return 2;
  }
  auto ar = (*c)->AwaitReply(o.timeout_ms);
  if (!ar.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: auth error: {}\n",
               ar.status().ToString());
    return 2;
  }
  fmt::print("AUTH: {}\n", wire::StatusName(ar->hdr.status));
  return ar->hdr.status == CVM_WIRE_STATUS_OK ? 0 : 1;
}

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

int RunSession(const Options& o) {
  Tally t;
  CmReq cm;
  auto co = DefaultConnect(o, cm);
  auto conn = Dial(o, co);
  if (!conn.ok()) {
    t.Fail("connect", conn.status().message());
    return t.Finish();
  }
  Connection& c = **conn;
  if (Status s = CheckRep(c, cm); !s.ok()) {
    t.Fail("connect", s.message());
  } else {
    t.Ok("connect", fmt::format("accepted: depth {}, inline {} (asked {}, {})",
                                c.rep().queue_depth, c.rep().inline_size,
                                cm.queue_depth, cm.inline_size));
  }
  if (Status s = SayHello(c, o, o.hello); !s.ok()) {
    t.Fail("HELLO", s.message());
    return t.Finish();
  }
  t.Ok("HELLO", "OK, hello echoed, plain SEND");

  const uint64_t off_small = o.offset;
  const uint64_t off_big = o.offset + 65536;
  auto small = Random(4096, 1);
  auto big = Random(65536, 2);
  auto step = [&](std::string_view name, auto fn) {
    Result<std::string> r = fn();
    return t.Record(name, r);
  };

  bool inline_ok = step("WRITE 4 KiB inline", [&]() -> Result<std::string> {
    if (c.rep().inline_size < small.size())
      return cvm::Unavailable(fmt::format("the target accepted {} bytes inline",
                                          c.rep().inline_size));
    wire::Header h = Ranged(c, o, CVM_WIRE_OP_WRITE, off_small, 4096);
    auto cmd = Command(h, {}, small);
    CVM_ASSIGN_OR_RETURN(Reply r,
                         Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, 0, {}));
    return std::string("OK, plain SEND");
  });
  bool big_ok = step(
      "WRITE 64 KiB from a registered buffer", [&]() -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(
            Window * w, c.Expose(big.size(), IBV_ACCESS_REMOTE_READ, o.keys));
        std::copy(big.begin(), big.end(), w->buf.begin());
        wire::Header h = Ranged(c, o, CVM_WIRE_OP_WRITE, off_big, 65536);
        auto cmd = Command(h, w->sgl());
        CVM_ASSIGN_OR_RETURN(
            Reply r, Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, 0, w->rkey));
        return fmt::format("OK, SEND with Invalidate of {:#x}", w->rkey);
      });
  step("READ 64 KiB into a registered buffer", [&]() -> Result<std::string> {
    CVM_ASSIGN_OR_RETURN(auto data, ReadKeyed(c, o, off_big, 65536));
    if (big_ok && data != big)
      return cvm::Corruption("the bytes read differ from those written");
    return std::string(big_ok ? "OK, SEND with Invalidate, bytes match"
                              : "OK, SEND with Invalidate (not compared)");
  });
  step("READ 4 KiB into a registered buffer", [&]() -> Result<std::string> {
    CVM_ASSIGN_OR_RETURN(auto data, ReadKeyed(c, o, off_small, 4096));
    if (inline_ok && data != small)
      return cvm::Corruption("the bytes read differ from the inline WRITE's");
    return std::string(inline_ok ? "OK, bytes match the inline WRITE"
                                 : "OK (not compared)");
  });
  step("READ 4 KiB, reply inline (no buffer named)",
       [&]() -> Result<std::string> {
         wire::Header h = Ranged(c, o, CVM_WIRE_OP_READ, off_small, 4096);
         auto cmd = Command(h, {});
         CVM_ASSIGN_OR_RETURN(Reply r,
                              Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, 4096, {}));
         if (inline_ok && r.payload != small)
           return cvm::Corruption(
               "the bytes read differ from the inline WRITE's");
         return std::string(inline_ok
                                ? "OK, plain SEND, bytes match the inline WRITE"
                                : "OK, plain SEND (not compared)");
       });
  step("STAT, reply inline (no buffer named)", [&]() -> Result<std::string> {
    wire::Header h = Request(c, CVM_WIRE_OP_STAT);
    h.volume_id = o.key.volume_id;
    h.object_no = o.key.object_no;
    h.shard = o.key.shard;
    auto cmd = Command(h, {});
    CVM_ASSIGN_OR_RETURN(
        Reply r, Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, wire::kStatLen, {}));
    uint64_t allocated = GetLe(r.payload.data(), 8);
    if (!allocated)
      return cvm::Corruption("STAT says nothing is allocated after writes");
    return fmt::format("OK, plain SEND, allocated {}", allocated);
  });
  step("STAT into a registered buffer", [&]() -> Result<std::string> {
    CVM_ASSIGN_OR_RETURN(
        Window * w, c.Expose(wire::kStatLen, IBV_ACCESS_REMOTE_WRITE, o.keys));
    wire::Header h = Request(c, CVM_WIRE_OP_STAT);
    h.volume_id = o.key.volume_id;
    h.object_no = o.key.object_no;
    h.shard = o.key.shard;
    auto cmd = Command(h, w->sgl());
    CVM_ASSIGN_OR_RETURN(Reply r, Call(c, o, h, cmd, CVM_WIRE_STATUS_OK,
                                       wire::kStatLen, w->rkey));
    uint64_t allocated = GetLe(w->buf.data(), 8);
    if (!allocated)
      return cvm::Corruption("STAT says nothing is allocated after writes");
    return fmt::format("OK, allocated {}", allocated);
  });
  step("FLUSH", [&]() -> Result<std::string> {
    wire::Header h = Request(c, CVM_WIRE_OP_FLUSH);
    auto cmd = Command(h, {});
    CVM_ASSIGN_OR_RETURN(Reply r,
                         Call(c, o, h, cmd, CVM_WIRE_STATUS_OK, 0, {}));
    return std::string("OK");
  });
  return t.Finish();
}

// Fuzz cases

using CaseFn = std::function<Result<std::string>(const Options&)>;

struct Case {
  std::string name;
  std::string what;
  CaseFn run;
};

// The connect request is refused.
Result<std::string> ExpectRejected(const Options& o,
                                   std::vector<uint8_t> private_data) {
  ConnectOptions co = DefaultConnect(o);
  co.private_data = std::move(private_data);
  CVM_ASSIGN_OR_RETURN(auto c, Connection::Open(o.ep, co));
  if (!c->rejected())
    return cvm::Corruption(
        fmt::format("accepted (depth {}, inline {}), want a rejection",
                    c->rep().queue_depth, c->rep().inline_size));
  return fmt::format("rejected (status {})", c->reject_status());
}

// `msg` (built on a connection set up with `cm`, after HELLO unless
// `hello` is false) makes the target close without a reply.
using Build = std::function<Result<std::vector<uint8_t>>(Connection&)>;

Result<std::string> ExpectClosed(const Options& o, bool hello, CmReq cm,
                                 const Build& build) {
  CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o, cm)));
  if (hello) CVM_RETURN_IF_ERROR(SayHello(*c, o, o.hello).WithContext("HELLO"));
  CVM_ASSIGN_OR_RETURN(auto msg, build(*c));
  if (Status s = c->Send(msg); !s.ok()) return s.WithContext("sending");
  std::string how;
  if (auto why = c->AwaitClose(o.timeout_ms, &how))
    return cvm::Corruption(*why);
  return fmt::format("closed without a reply ({})", how);
}

Result<std::string> ExpectClosed(const Options& o, bool hello,
                                 const Build& build) {
  return ExpectClosed(o, hello, CmReq{}, build);
}

// A HELLO answered with `status`, then the connection closed.
Result<std::string> ExpectRefusedHello(
    const Options& o, std::function<void(wire::Header&, wire::Hello&)> mutate,
    uint16_t status) {
  CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o)));
  wire::Header h = Request(*c, CVM_WIRE_OP_HELLO);
  h.length = wire::kHelloLen;
  wire::Hello hello = o.hello;
  hello.nonce = wire::RandomNonce();
  mutate(h, hello);
  auto cmd = Command(h, {}, wire::EncodeHello(hello));
  CVM_RETURN_IF_ERROR(c->Send(cmd));
  CVM_ASSIGN_OR_RETURN(Reply r, c->AwaitReply(o.timeout_ms));
  // The reply is in the target's version, whatever ours was.
  wire::Header want = h;
  want.version = CVM_WIRE_VERSION;
  CVM_RETURN_IF_ERROR(CheckReply(r, want, status, 0, {}));
  std::string how;
  if (auto why = c->AwaitClose(o.timeout_ms, &how))
    return cvm::Corruption(
        fmt::format("after the {} reply: {}", wire::StatusName(status), *why));
  return fmt::format("{} reply, then closed ({})", wire::StatusName(status),
                     how);
}

// Authentication (version 5).

// HELLO with a fresh challenge, answered OK: what we sent, what came back.
Result<std::pair<wire::Hello, wire::Hello>> HelloOnly(Connection& c,
                                                      const Options& o,
                                                      wire::Hello hello) {
  if (std::all_of(hello.nonce.begin(), hello.nonce.end(),
                  [](uint8_t b) { return !b; }))
    hello.nonce = wire::RandomNonce();
  auto cmd = HelloCommand(c, hello);
  wire::Header req = wire::DecodeRaw(
      std::span<const uint8_t, wire::kHeaderLen>(cmd.data(), wire::kHeaderLen));
  CVM_ASSIGN_OR_RETURN(
      Reply r, Call(c, o, req, cmd, CVM_WIRE_STATUS_OK, wire::kHelloLen, {}));
  return std::pair{hello,
                   wire::DecodeHello(std::span<const uint8_t, wire::kHelloLen>(
                       r.payload.data(), wire::kHelloLen))};
}

// AUTH with `proof` answered AUTH, then the connection closed.
Result<std::string> ExpectRefusedAuth(Connection& c, const Options& o,
                                      const wire::Key& proof) {
  auto cmd = AuthCommand(c, proof);
  wire::Header req = wire::DecodeRaw(
      std::span<const uint8_t, wire::kHeaderLen>(cmd.data(), wire::kHeaderLen));
  CVM_ASSIGN_OR_RETURN(Reply r,
                       Call(c, o, req, cmd, CVM_WIRE_STATUS_AUTH, 0, {}));
  (void)r;
  std::string how;
  if (auto why = c.AwaitClose(o.timeout_ms, &how))
    return cvm::Corruption(fmt::format("after the AUTH reply: {}", *why));
  return fmt::format("AUTH reply, then closed ({})", how);
}

wire::Key HostProof(const Options& o, const wire::Key& secret,
                    const wire::Hello& asked, const wire::Hello& got) {
  const wire::Key key =
      wire::DeriveKey(secret, asked.cluster_id, asked.host_id, asked.device_id);
  return wire::Proof(key, "cvm-host", asked, asked.nonce, got.nonce);
}

// A header for the "close" cases: a READ of 4 KiB of the test object.
wire::Header Read4k(Connection& c, const Options& o) {
  return Ranged(c, o, CVM_WIRE_OP_READ, o.offset, 4096);
}

// A READ command with a valid 4 KiB window, `mutate`d.
Build KeyedRead(const Options& o,
                std::function<void(wire::Header&, Sgl&, bool&)> mutate) {
  return [&o, mutate](Connection& c) -> Result<std::vector<uint8_t>> {
    CVM_ASSIGN_OR_RETURN(Window * w,
                         c.Expose(65536, IBV_ACCESS_REMOTE_WRITE, o.keys));
    wire::Header h = Read4k(c, o);
    Sgl sgl = w->sgl();
    sgl.length = 4096;
    bool seal = true;
    mutate(h, sgl, seal);
    return Command(h, sgl, {}, seal);
  };
}

// A WRITE of `len` bytes from a registered window, `mutate`d.
Build KeyedWrite(const Options& o, uint32_t len,
                 std::function<void(wire::Header&, Sgl&)> mutate) {
  return [&o, len, mutate](Connection& c) -> Result<std::vector<uint8_t>> {
    CVM_ASSIGN_OR_RETURN(Window * w,
                         c.Expose(len, IBV_ACCESS_REMOTE_READ, o.keys));
    wire::Header h = Ranged(c, o, CVM_WIRE_OP_WRITE, o.offset, len);
    Sgl sgl = w->sgl();
    mutate(h, sgl);
    return Command(h, sgl);
  };
}

// What a flood sends.
enum class FloodOf {
  kInlineWrites,  // 4 KiB WRITEs, payload inline
  kInlineReads,   // 4 KiB READs naming no buffer, reply inline
  kKeyedReads,    // 64 KiB READs into registered buffers
};

// Many requests in flight at once, beyond the agreed depth: the target
// answers them or closes, and lives.
Result<std::string> Flood(const Options& o, FloodOf what, uint32_t count) {
  CmReq cm;
  cm.queue_depth = 4;
  ConnectOptions co = DefaultConnect(o, cm);
  co.send_slots = count;
  co.recv_slots = count + 16;
  CVM_ASSIGN_OR_RETURN(auto c, Dial(o, co));
  CVM_RETURN_IF_ERROR(SayHello(*c, o, o.hello).WithContext("HELLO"));
  const bool keyed = what == FloodOf::kKeyedReads;
  const uint32_t len = keyed ? 65536 : 4096;
  std::vector<uint8_t> data(len, 0x5a);
  std::vector<std::pair<wire::Header, uint32_t>> sent;  // header, rkey
  std::vector<Window*> windows;
  for (uint32_t i = 0; keyed && i < count; i++) {
    CVM_ASSIGN_OR_RETURN(Window * w,
                         c->Expose(len, IBV_ACCESS_REMOTE_WRITE, o.keys));
    windows.push_back(w);
  }
  for (uint32_t i = 0; i < count; i++) {
    uint64_t off = o.offset + (i % 64) * 65536ULL;
    bool write = what == FloodOf::kInlineWrites;
    wire::Header h =
        Ranged(*c, o, write ? CVM_WIRE_OP_WRITE : CVM_WIRE_OP_READ, off, len);
    Sgl sgl = keyed ? windows[i]->sgl() : Sgl{};
    auto cmd = write ? Command(h, {}, data) : Command(h, sgl);
    if (Status s = c->Send(cmd); !s.ok()) break;
    sent.emplace_back(h, sgl.key);
  }
  const size_t total = sent.size();
  uint32_t answered = 0;
  while (answered < total) {
    auto r = c->AwaitReply(o.timeout_ms * 3);
    if (!r.ok()) {
      if (r.status().code() == Code::kTimeout)
        return cvm::Corruption(fmt::format(
            "{} of {} answered, then nothing for {} s and still open", answered,
            total, o.timeout_ms * 3 / 1000));
      return fmt::format("{} of {} sent answered, then closed ({})", answered,
                         total, r.status().message());
    }
    auto it = std::find_if(sent.begin(), sent.end(), [&](const auto& s) {
      return s.first.tag == r->hdr.tag;
    });
    if (it == sent.end())
      return cvm::Corruption(
          fmt::format("reply to no outstanding tag ({})", r->hdr.tag));
    std::optional<uint32_t> inv;
    if (keyed) inv = it->second;
    uint32_t rlen = what == FloodOf::kInlineWrites ? 0 : len;
    CVM_RETURN_IF_ERROR(CheckReply(*r, it->first, CVM_WIRE_STATUS_OK, rlen, inv)
                            .WithContext(fmt::format("reply {}", answered)));
    sent.erase(it);
    answered++;
  }
  return fmt::format("all {} answered at depth {}", answered,
                     c->rep().queue_depth);
}

std::vector<Case> Cases() {
  std::vector<Case> v;
  auto add = [&](std::string name, std::string what, CaseFn fn) {
    v.push_back({std::move(name), std::move(what), std::move(fn)});
  };
  // rdma_cm private data.  On InfiniBand and RoCE the connect request
  // carries 56 bytes of private data whatever the initiator gave (zero
  // padded): "no" and "short" private data reach the target as zeroes.
  add("cm-no-private-data", "connect without private data: rejected",
      [](const Options& o) { return ExpectRejected(o, {}); });
  add("cm-short-private-data", "2 bytes of private data: rejected",
      [](const Options& o) {
        return ExpectRejected(o, {CVM_WIRE_RDMA_RECFMT & 0xff, 0});
      });
  add("cm-bad-recfmt", "recfmt 1: rejected", [](const Options& o) {
    CmReq cm;
    cm.recfmt = 1;
    return ExpectRejected(o, cm.Bytes());
  });
  add("cm-queue-depth-0", "queue_depth 0: rejected", [](const Options& o) {
    CmReq cm;
    cm.queue_depth = 0;
    return ExpectRejected(o, cm.Bytes());
  });
  add("cm-reserved", "reserved field not zero: rejected", [](const Options& o) {
    CmReq cm;
    cm.reserved[1] = 1;
    return ExpectRejected(o, cm.Bytes());
  });
  add("cm-depth-above-max",
      "queue_depth 65535: accepted with a depth the target holds, and works",
      [](const Options& o) -> Result<std::string> {
        CmReq cm;
        cm.queue_depth = 65535;
        cm.inline_size = 1 << 20;
        CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o, cm)));
        CVM_RETURN_IF_ERROR(CheckRep(*c, cm));
        CVM_RETURN_IF_ERROR(SayHello(*c, o, o.hello));
        return fmt::format("accepted depth {}, inline {}; HELLO OK",
                           c->rep().queue_depth, c->rep().inline_size);
      });
  add("cm-inline-0-hello",
      "inline_size 0 asked: the HELLO (always inline) still works, or the "
      "connect is rejected",
      [](const Options& o) -> Result<std::string> {
        CmReq cm;
        cm.inline_size = 0;
        ConnectOptions co = DefaultConnect(o, cm);
        CVM_ASSIGN_OR_RETURN(auto c, Connection::Open(o.ep, co));
        if (c->rejected()) return std::string("rejected");
        CVM_RETURN_IF_ERROR(CheckRep(*c, cm));
        CVM_RETURN_IF_ERROR(SayHello(*c, o, o.hello)
                                .WithContext(fmt::format(
                                    "accepted with inline size {}, but HELLO",
                                    c->rep().inline_size)));
        return fmt::format("accepted with inline size {}; HELLO OK",
                           c->rep().inline_size);
      });

  // Authentication: nobody gets in without the key, nor at a volume it
  // was not given.
  add("auth-skipped", "HELLO, then a READ without AUTH: closed",
      [](const Options& o) -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o)));
        CVM_RETURN_IF_ERROR(HelloOnly(*c, o, o.hello).status());
        CVM_ASSIGN_OR_RETURN(auto msg,
                             KeyedRead(o, [](auto&, auto&, auto&) {})(*c));
        CVM_RETURN_IF_ERROR(c->Send(msg));
        std::string how;
        if (auto why = c->AwaitClose(o.timeout_ms, &how))
          return cvm::Corruption(*why);
        return fmt::format("closed without a reply ({})", how);
      });
  add("auth-wrong-key", "AUTH made with another secret: AUTH reply, closed",
      [](const Options& o) -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o)));
        CVM_ASSIGN_OR_RETURN(auto hg, HelloOnly(*c, o, o.hello));
        wire::Key wrong = o.secret;
        wrong[7] ^= 0x21;
        return ExpectRefusedAuth(*c, o,
                                 HostProof(o, wrong, hg.first, hg.second));
      });
  add("auth-replayed",
      "a good HELLO and AUTH replayed on a new connection: AUTH reply, "
      "closed",
      [](const Options& o) -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(auto c1, Dial(o, DefaultConnect(o)));
        CVM_ASSIGN_OR_RETURN(auto hg, HelloOnly(*c1, o, o.hello));
        const wire::Key recorded = HostProof(o, o.secret, hg.first, hg.second);
        auto ok = AuthCommand(*c1, recorded);
        wire::Header req =
            wire::DecodeRaw(std::span<const uint8_t, wire::kHeaderLen>(
                ok.data(), wire::kHeaderLen));
        CVM_RETURN_IF_ERROR(
            Call(*c1, o, req, ok, CVM_WIRE_STATUS_OK, 0, {}).status());
        CVM_ASSIGN_OR_RETURN(auto c2, Dial(o, DefaultConnect(o)));
        CVM_RETURN_IF_ERROR(HelloOnly(*c2, o, hg.first).status());
        return ExpectRefusedAuth(*c2, o, recorded);
      });
  add("auth-reflected",
      "the target's own proof sent back as AUTH: AUTH reply, closed",
      [](const Options& o) -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(auto c, Dial(o, DefaultConnect(o)));
        CVM_ASSIGN_OR_RETURN(auto hg, HelloOnly(*c, o, o.hello));
        return ExpectRefusedAuth(*c, o, hg.second.proof);
      });
  add("foreign-volume",
      "a host let in, but not given the volume: READ and WRITE answered "
      "DENIED",
      [](const Options& o) -> Result<std::string> {
        if (!o.foreign_host)
          return cvm::InvalidArgument("needs --foreign-host and its secret");
        Options f = o;
        f.hello.host_id = o.foreign_host;
        f.secret = o.foreign_secret;
        CVM_ASSIGN_OR_RETURN(auto c, Dial(f, DefaultConnect(f)));
        CVM_RETURN_IF_ERROR(SayHello(*c, f, f.hello).WithContext("HELLO"));
        // No buffers named: the refusals come as plain SENDs.
        wire::Header rh = Ranged(*c, f, CVM_WIRE_OP_READ, f.offset, 4096);
        auto rd = Command(rh, {});
        CVM_RETURN_IF_ERROR(
            Call(*c, f, rh, rd, CVM_WIRE_STATUS_DENIED, 0, {}).status());
        wire::Header wh = Ranged(*c, f, CVM_WIRE_OP_WRITE, f.offset, 4096);
        auto wr = Command(wh, {}, std::vector<uint8_t>(4096, 0xee));
        CVM_RETURN_IF_ERROR(
            Call(*c, f, wh, wr, CVM_WIRE_STATUS_DENIED, 0, {}).status());
        return std::string("READ and WRITE answered DENIED");
      });

  // Framing and header, before and after HELLO.
  add("short-send", "a SEND of a bare header (no sgl): closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [&o](Connection& c) {
          auto b = Command(Read4k(c, o), {});
          b.resize(wire::kHeaderLen);
          return Result<std::vector<uint8_t>>(b);
        });
      });
  add("short-send-before-hello", "a SEND of 40 bytes as the first: closed",
      [](const Options& o) {
        return ExpectClosed(o, false, [](Connection& c) {
          auto b = HelloCommand(c, {});
          b.resize(40);
          return Result<std::vector<uint8_t>>(b);
        });
      });
  auto hdr_case = [&](std::string name, std::string what,
                      std::function<void(wire::Header&, bool&)> mutate) {
    add(std::move(name), std::move(what), [mutate](const Options& o) {
      return ExpectClosed(
          o, true, KeyedRead(o, [mutate](wire::Header& h, Sgl&, bool& seal) {
            mutate(h, seal);
          }));
    });
  };
  hdr_case("bad-magic", "magic not CVMW: closed",
           [](wire::Header& h, bool&) { h.magic ^= 0x20; });
  hdr_case("bad-hdr-crc", "hdr_crc wrong: closed",
           [](wire::Header& h, bool& seal) {
             h.hdr_crc = wire::DecodeRaw(wire::Encode(h)).hdr_crc ^ 1;
             seal = false;
           });
  hdr_case("bad-version", "another version on a READ after HELLO: closed",
           [](wire::Header& h, bool&) { h.version = CVM_WIRE_VERSION + 1; });
  hdr_case("unknown-opcode", "opcode 200: closed",
           [](wire::Header& h, bool&) { h.opcode = 200; });
  hdr_case("unknown-flag", "flag bit 12: closed",
           [](wire::Header& h, bool&) { h.flags = 1U << 12; });
  hdr_case("reply-flag", "REPLY flag on a request: closed",
           [](wire::Header& h, bool&) { h.flags = CVM_WIRE_F_REPLY; });
  hdr_case("nonzero-reserved", "reserved1 not zero: closed",
           [](wire::Header& h, bool&) { h.reserved1 = 1; });
  hdr_case("nonzero-status", "status not zero in a request: closed",
           [](wire::Header& h, bool&) { h.status = 1; });
  hdr_case("misaligned-offset", "offset 100: closed",
           [](wire::Header& h, bool&) { h.offset = 100; });
  hdr_case(
      "oversize-length", "READ above CVM_WIRE_MAX_DATA_LEN: closed",
      [](wire::Header& h, bool&) { h.length = CVM_WIRE_MAX_DATA_LEN + 4096; });
  hdr_case("shard-out-of-range", "shard 32: closed",
           [](wire::Header& h, bool&) { h.shard = CVM_WIRE_MAX_SHARDS; });
  add("request-before-hello", "a good READ before HELLO: closed",
      [](const Options& o) {
        return ExpectClosed(o, false, KeyedRead(o, [](auto&, auto&, auto&) {}));
      });
  add("second-hello", "HELLO again after HELLO: closed", [](const Options& o) {
    return ExpectClosed(o, true, [&o](Connection& c) {
      return Result<std::vector<uint8_t>>(HelloCommand(c, o.hello));
    });
  });
  add("hello-sgl-length", "HELLO naming a buffer (sgl.length 72): closed",
      [](const Options& o) {
        return ExpectClosed(o, false, [&o](Connection& c) {
          wire::Header h = Request(c, CVM_WIRE_OP_HELLO);
          h.length = wire::kHelloLen;
          Sgl sgl{0x1000, wire::kHelloLen, 0x1234};
          return Result<std::vector<uint8_t>>(
              Command(h, sgl, wire::EncodeHello(o.hello)));
        });
      });
  add("hello-short-payload", "HELLO with 32 of its 72 payload bytes: closed",
      [](const Options& o) {
        return ExpectClosed(o, false, [&o](Connection& c) {
          auto b = HelloCommand(c, o.hello);
          b.resize(kCmdLen + 32);
          return Result<std::vector<uint8_t>>(b);
        });
      });
  add("hello-trailing-bytes", "HELLO followed by 8 more bytes: closed",
      [](const Options& o) {
        return ExpectClosed(o, false, [&o](Connection& c) {
          auto b = HelloCommand(c, o.hello);
          b.resize(b.size() + 8, 0xee);
          return Result<std::vector<uint8_t>>(b);
        });
      });
  add("hello-length", "HELLO with length 32: closed", [](const Options& o) {
    return ExpectClosed(o, false, [&o](Connection& c) {
      wire::Header h = Request(c, CVM_WIRE_OP_HELLO);
      h.length = 32;
      auto p = wire::EncodeHello(o.hello);
      return Result<std::vector<uint8_t>>(
          Command(h, {}, std::span<const uint8_t>(p.data(), 32)));
    });
  });
  add("hello-features", "HELLO with feature bits: closed without a reply",
      [](const Options& o) {
        return ExpectClosed(o, false, [&o](Connection& c) {
          auto b = HelloCommand(c, o.hello);
          PutLe(&b[kCmdLen + 16], 1, 4);
          return Result<std::vector<uint8_t>>(b);
        });
      });
  add("hello-reserved", "HELLO with reserved1 set: closed without a reply",
      [](const Options& o) {
        return ExpectClosed(o, false, [&o](Connection& c) {
          auto b = HelloCommand(c, o.hello);
          PutLe(&b[kCmdLen + 26], 1, 2);
          return Result<std::vector<uint8_t>>(b);
        });
      });

  // Inline payloads.
  add("inline-length-mismatch", "WRITE of 4096 with 2048 bytes inline: closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [&o](Connection& c) {
          wire::Header h = Ranged(c, o, CVM_WIRE_OP_WRITE, o.offset, 4096);
          std::vector<uint8_t> p(2048, 1);
          return Result<std::vector<uint8_t>>(Command(h, {}, p));
        });
      });
  add("inline-above-agreed", "4 KiB inline after agreeing on 1 KiB: closed",
      [](const Options& o) {
        CmReq cm;
        cm.inline_size = 1024;
        return ExpectClosed(o, true, cm, [&o](Connection& c) {
          if (c.rep().inline_size != 1024)
            return Result<std::vector<uint8_t>>(cvm::Corruption(fmt::format(
                "accepted inline size {}, asked 1024", c.rep().inline_size)));
          wire::Header h = Ranged(c, o, CVM_WIRE_OP_WRITE, o.offset, 4096);
          std::vector<uint8_t> p(4096, 2);
          return Result<std::vector<uint8_t>>(Command(h, {}, p));
        });
      });
  add("inline-read", "READ with an inline payload: closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [&o](Connection& c) {
          std::vector<uint8_t> p(512, 3);
          return Result<std::vector<uint8_t>>(Command(Read4k(c, o), {}, p));
        });
      });

  // Registered buffers.
  add("keyed-write-sgl-length",
      "WRITE of 64 KiB naming a 32 KiB buffer: closed", [](const Options& o) {
        return ExpectClosed(o, true, KeyedWrite(o, 65536, [](auto&, Sgl& s) {
                              s.length = 32768;
                            }));
      });
  add("keyed-write-bad-rkey",
      "WRITE naming a bogus rkey: the RDMA READ fails, closed",
      [](const Options& o) {
        return ExpectClosed(o, true, KeyedWrite(o, 65536, [](auto&, Sgl& s) {
                              s.key = kBogusKey;
                            }));
      });
  add("keyed-write-outside-buffer",
      "WRITE naming a range past its buffer: the RDMA READ fails, closed",
      [](const Options& o) {
        return ExpectClosed(o, true, KeyedWrite(o, 65536, [](auto&, Sgl& s) {
                              s.addr += 32768;
                            }));
      });
  add("keyed-write-trailing-bytes",
      "WRITE naming a buffer with 16 bytes inline too: closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [&o](Connection& c) {
          auto b = KeyedWrite(o, 65536, [](auto&, auto&) {})(c);
          if (b.ok()) b->resize(b->size() + 16, 0x77);
          return b;
        });
      });
  add("read-no-buffer-above-inline",
      "READ of 8 KiB naming no buffer (more than the inline size): closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [&o](Connection& c) {
          wire::Header h = Ranged(c, o, CVM_WIRE_OP_READ, o.offset, 8192);
          return Result<std::vector<uint8_t>>(Command(h, {}));
        });
      });
  add("read-no-buffer-above-agreed",
      "READ of 4 KiB naming no buffer after agreeing on 1 KiB inline: closed",
      [](const Options& o) {
        CmReq cm;
        cm.inline_size = 1024;
        return ExpectClosed(o, true, cm, [&o](Connection& c) {
          if (c.rep().inline_size != 1024)
            return Result<std::vector<uint8_t>>(cvm::Corruption(fmt::format(
                "accepted inline size {}, asked 1024", c.rep().inline_size)));
          return Result<std::vector<uint8_t>>(Command(Read4k(c, o), {}));
        });
      });
  add("read-sgl-above-length", "READ of 4 KiB naming an 8 KiB buffer: closed",
      [](const Options& o) {
        return ExpectClosed(o, true,
                            KeyedRead(o, [](wire::Header&, Sgl& s, bool&) {
                              s.length = 8192;
                            }));
      });
  add("read-bad-rkey", "READ naming a bogus rkey: the RDMA WRITE fails, closed",
      [](const Options& o) {
        return ExpectClosed(o, true,
                            KeyedRead(o, [](wire::Header&, Sgl& s, bool&) {
                              s.key = kBogusKey;
                            }));
      });
  add("read-outside-buffer",
      "READ naming a range past its buffer: the RDMA WRITE fails, closed",
      [](const Options& o) {
        return ExpectClosed(o, true,
                            KeyedRead(o, [](wire::Header& h, Sgl& s, bool&) {
                              h.length = 65536;
                              s.length = 65536;
                              s.addr += 32768;
                            }));
      });
  add("stat-buffer-too-big", "STAT naming 64 bytes (reply is 32): closed",
      [](const Options& o) {
        return ExpectClosed(o, true,
                            KeyedRead(o, [](wire::Header& h, Sgl& s, bool&) {
                              h.opcode = CVM_WIRE_OP_STAT;
                              h.offset = 0;
                              h.length = 0;
                              s.length = 64;
                            }));
      });
  add("flush-with-buffer", "FLUSH naming a buffer: closed",
      [](const Options& o) {
        return ExpectClosed(o, true,
                            KeyedRead(o, [](wire::Header& h, Sgl&, bool&) {
                              h = wire::MakeRequest(CVM_WIRE_OP_FLUSH);
                              h.tag = 99;
                            }));
      });
  add("trailing-bytes", "FLUSH followed by 16 bytes: closed",
      [](const Options& o) {
        return ExpectClosed(o, true, [](Connection& c) {
          auto b = Command(Request(c, CVM_WIRE_OP_FLUSH), {});
          b.resize(b.size() + 16, 0x11);
          return Result<std::vector<uint8_t>>(b);
        });
      });

  // Refusals with a status.
  add("hello-version", "HELLO of the previous version: VERSION reply, closed",
      [](const Options& o) {
        return ExpectRefusedHello(
            o,
            [](wire::Header& h, wire::Hello&) {
              h.version = CVM_WIRE_VERSION - 1;
            },
            CVM_WIRE_STATUS_VERSION);
      });
  add("hello-unknown-host",
      "HELLO of a host the device has no key for: AUTH reply, then closed",
      [](const Options& o) {
        return ExpectRefusedHello(
            o,
            [](wire::Header&, wire::Hello& he) {
              he.host_id ^= 0x4000;
              he.nonce = wire::RandomNonce();
            },
            CVM_WIRE_STATUS_AUTH);
      });
  add("hello-unknown-key-id",
      "HELLO with a key id the device has no key for: AUTH reply, closed",
      [](const Options& o) {
        return ExpectRefusedHello(
            o,
            [](wire::Header&, wire::Hello& he) {
              he.key_id += 1000;
              he.nonce = wire::RandomNonce();
            },
            CVM_WIRE_STATUS_AUTH);
      });
  add("hello-unknown-device",
      "HELLO for a device neither served nor keyed: AUTH reply, then closed",
      [](const Options& o) {
        return ExpectRefusedHello(
            o, [](wire::Header&, wire::Hello& he) { he.device_id ^= 0x40000; },
            CVM_WIRE_STATUS_AUTH);
      });
  add("data-crc-mismatch",
      "inline WRITE with a wrong DATA_CRC: DATA_CRC reply, connection "
      "stays; the right CRC then gives OK",
      [](const Options& o) -> Result<std::string> {
        CVM_ASSIGN_OR_RETURN(auto c, Ready(o));
        std::vector<uint8_t> p(4096, 0x3c);
        wire::Header h = Ranged(*c, o, CVM_WIRE_OP_WRITE, o.offset, 4096);
        h.flags = CVM_WIRE_F_DATA_CRC;
        h.data_crc = wire::Crc32c(p) ^ 1;
        CVM_ASSIGN_OR_RETURN(Reply r, Call(*c, o, h, Command(h, {}, p),
                                           CVM_WIRE_STATUS_DATA_CRC, 0, {}));
        h.tag = c->NextTag();
        h.data_crc ^= 1;
        CVM_ASSIGN_OR_RETURN(
            r, Call(*c, o, h, Command(h, {}, p), CVM_WIRE_STATUS_OK, 0, {}));
        return std::string("DATA_CRC, then OK on the same connection");
      });

  // More than the agreed depth in flight.
  add("flood-inline-writes",
      "256 inline WRITEs in flight at depth 4: answered or closed",
      [](const Options& o) { return Flood(o, FloodOf::kInlineWrites, 256); });
  add("flood-inline-reads",
      "256 READs of 4 KiB, replies inline, in flight at depth 4: answered "
      "or closed",
      [](const Options& o) { return Flood(o, FloodOf::kInlineReads, 256); });
  add("flood-keyed-reads",
      "64 READs of 64 KiB in flight at depth 4: answered or closed",
      [](const Options& o) { return Flood(o, FloodOf::kKeyedReads, 64); });
  return v;
}

int RunFuzz(const Options& o) {
  Tally t;
  auto cases = Cases();
  for (const std::string& name : o.cases) {
    if (std::none_of(cases.begin(), cases.end(),
                     [&](const Case& c) { return c.name == name; })) {
      fmt::print(stderr, "cvm-rdma-wire: no fuzz case '{}' (see: cases)\n",
                 name);
      return 2;
    }
  }
  for (const Case& c : cases) {
    if (!o.cases.empty() &&
        std::find(o.cases.begin(), o.cases.end(), c.name) == o.cases.end())
      continue;
    Result<std::string> r = c.run(o);
    if (r.ok() && o.health) {
      auto h = Healthy(o);
      if (!h.ok()) {
        r =
            cvm::Unavailable(fmt::format("{}; then the target is not healthy: "
                                         "{}",
                                         *r, h.status().message()));
      } else {
        r = fmt::format("{}; {}", *r, *h);
      }
    }
    t.Record(c.name, r);
  }
  return t.Finish();
}

int ListCases() {
  for (const Case& c : Cases()) fmt::print("{:28} {}\n", c.name, c.what);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "cases") return ListCases();
  if (argc == 2 && (std::string_view(argv[1]) == "--help" ||
                    std::string_view(argv[1]) == "-h")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  Result<Options> o = Parse(argc, argv);
  if (!o.ok()) {
    fmt::print(stderr, "cvm-rdma-wire: {}\n{}", o.status().message(), kUsage);
    return 2;
  }
  if (o->verb == "hello") return RunHello(*o);
  if (o->verb == "session") return RunSession(*o);
  return RunFuzz(*o);
}
