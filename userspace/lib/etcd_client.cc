#include "etcd_client.h"

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <charconv>

#include "json_fields.h"

namespace cvm {

using nlohmann::json;

namespace {

// The reason in an etcd error reply: {"message": "..."} or {"error": "..."}
// from unary calls, {"error": {"message": ...}} from streaming ones (lease
// keepalive); whatever else, its text. Never throws on an odd shape.
std::string ErrorMessage(const nlohmann::json& reply) {
  for (const char* field : {"message", "error"}) {
    auto it = reply.find(field);
    if (it == reply.end()) continue;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object()) return ErrorMessage(*it);
  }
  return Printable(reply.dump().substr(0, 200));
}

constexpr char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string EtcdB64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> EtcdUnb64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) return Corruption("etcd sent invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string EtcdPrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) != 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // everything
}

int64_t EtcdInt(const json& j, const char* name) {
  if (!j.is_object() || !j.contains(name)) return 0;
  const json& v = j[name];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    int64_t out = 0;
    const std::string& s = v.get_ref<const std::string&>();
    std::from_chars(s.data(), s.data() + s.size(), out);
    return out;
  }
  return 0;
}

namespace {

Status CheckEndpoint(std::string_view text, std::string* host, int* port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument(
        fmt::format("etcd endpoint '{}' must be HOST:PORT", Printable(text)));
  }
  *host = std::string(text.substr(0, colon));
  const auto p = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), *port);
  if (ec != std::errc() || end != p.data() + p.size() || *port < 1 ||
      *port > 65535) {
    return InvalidArgument(fmt::format(
        "etcd endpoint '{}': port must be 1 to 65535", Printable(text)));
  }
  for (char c : *host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
          c == '-')) {
      return InvalidArgument(
          fmt::format("etcd endpoint '{}': bad host name", Printable(text)));
    }
  }
  return {};
}

}  // namespace

bool IsEtcdUri(std::string_view location) {
  return location.starts_with("etcd://") || location.starts_with("etcds://");
}

Result<EtcdUri> ParseEtcdUri(const std::string& uri) {
  EtcdUri out;
  std::string_view rest = uri;
  if (rest.starts_with("etcds://")) {
    out.tls.enabled = true;
    rest.remove_prefix(8);
  } else if (rest.starts_with("etcd://")) {
    rest.remove_prefix(7);
  } else {
    return InvalidArgument(
        fmt::format("'{}' is not an etcd:// or etcds:// store", uri));
  }
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    if (!out.tls.enabled) {
      return InvalidArgument(
          "etcd:// takes no parameters; TLS files go with etcds://");
    }
    std::string_view query = rest.substr(q + 1);
    rest = rest.substr(0, q);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view item = query.substr(0, amp);
      const auto eq = item.find('=');
      const std::string_view name = item.substr(0, eq);
      const std::string value(
          eq == std::string_view::npos ? "" : item.substr(eq + 1));
      std::string* field = name == "ca"     ? &out.tls.ca
                           : name == "cert" ? &out.tls.cert
                           : name == "key"  ? &out.tls.key
                                            : nullptr;
      if (!field || value.empty() || !field->empty()) {
        return InvalidArgument(fmt::format(
            "etcds:// parameter '{}': expected ca=FILE, cert=FILE and key=FILE "
            "once each",
            Printable(item)));
      }
      if (value.front() != '/') {
        return InvalidArgument(
            fmt::format("etcds:// {}={}: give an absolute path", name, value));
      }
      *field = value;
      if (amp == std::string_view::npos) break;
      query = query.substr(amp + 1);
    }
  }
  if (out.tls.enabled && (out.tls.cert.empty() || out.tls.key.empty())) {
    return InvalidArgument(
        "etcds:// needs this node's client certificate: "
        "etcds://HOST:PORT[/PREFIX]?cert=FILE&key=FILE[&ca=FILE] "
        "(scripts/etcd-certs.sh makes them)");
  }
  out.prefix = "/cvm";
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    out.prefix = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
    while (out.prefix.size() > 1 && out.prefix.back() == '/') {
      out.prefix.pop_back();
    }
    if (out.prefix == "/") {
      return InvalidArgument("etcd store prefix must not be empty");
    }
  }
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto text = rest.substr(0, comma);
    std::string host;
    int port = 0;
    CVM_RETURN_IF_ERROR(CheckEndpoint(text, &host, &port));
    out.endpoints.emplace_back(text);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (out.endpoints.empty()) {
    return InvalidArgument(
        "etcd store needs at least one endpoint: etcd://HOST:PORT[,...]");
  }
  return out;
}

namespace {

// Failures that happen before a request has left whole: no connection,
// no TLS session (a bad certificate on either side), a failed send. A
// write that failed so was surely not applied, and another member may
// take it.
bool BeforeSending(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
    case httplib::Error::BindIPAddress:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
    // The request did not get out whole: etcd acts on none but complete
    // ones. (With TLS 1.3 a refused client certificate often shows so.)
    case httplib::Error::Write:
      return true;
    default:
      return false;
  }
}

// A handshake alert from etcd in this thread's OpenSSL error queue (which
// is emptied):
// with TLS 1.3 a refused client certificate shows only once the client
// writes or reads, yet etcd processed nothing.
std::string TlsAlert() {
  std::string alert;
  while (const unsigned long e = ERR_get_error()) {
    // Handshake and certificate alerts only: they come before any request
    // is read.
    const int code = ERR_GET_REASON(e) - SSL_AD_REASON_OFFSET;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        (code == SSL_AD_HANDSHAKE_FAILURE || code == SSL_AD_BAD_CERTIFICATE ||
         code == SSL_AD_UNSUPPORTED_CERTIFICATE ||
         code == SSL_AD_CERTIFICATE_REVOKED ||
         code == SSL_AD_CERTIFICATE_EXPIRED ||
         code == SSL_AD_CERTIFICATE_UNKNOWN || code == SSL_AD_UNKNOWN_CA ||
         code == SSL_AD_ACCESS_DENIED || code == SSL_AD_CERTIFICATE_REQUIRED)) {
      const char* why = ERR_reason_error_string(e);
      alert = why ? why : "a TLS alert";
    }
  }
  return alert;
}

std::string FailureText(const httplib::Client& c, httplib::Error e, bool tls) {
  if (e == httplib::Error::SSLServerVerification) {
    return fmt::format(
        "etcd's certificate is not trusted ({})",
        X509_verify_cert_error_string(c.get_openssl_verify_result()));
  }
  if (e == httplib::Error::SSLConnection)
    return "TLS handshake failed (is this node's client certificate one "
           "etcd's CA signed?)";
  if (e == httplib::Error::Write && tls)
    return "closed while sending (did etcd refuse this node's client "
           "certificate?)";
  if (e == httplib::Error::SSLLoadingCerts)
    return "cannot load the TLS certificates (cert=, key=, ca= files)";
  return httplib::to_string(e);
}

}  // namespace

struct EtcdClient::Endpoint {
  std::string host;
  int port = 0;
  std::unique_ptr<httplib::Client> client;
  std::string Name() const { return fmt::format("{}:{}", host, port); }
};

EtcdClient::EtcdClient(const std::vector<std::string>& endpoints, EtcdTls tls)
    : tls_(std::move(tls)) {
  for (const auto& e : endpoints) {
    auto ep = std::make_unique<Endpoint>();
    static_cast<void>(CheckEndpoint(e, &ep->host, &ep->port));
    endpoints_.push_back(std::move(ep));
  }
}

EtcdClient::~EtcdClient() = default;

std::unique_ptr<httplib::Client> EtcdClient::MakeClient(
    const Endpoint& ep) const {
  if (!tls_.enabled) return std::make_unique<httplib::Client>(ep.host, ep.port);
  const std::string host =
      ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
  auto c = std::make_unique<httplib::Client>(
      fmt::format("https://{}:{}", host, ep.port), tls_.cert, tls_.key);
  if (!tls_.ca.empty()) c->set_ca_cert_path(tls_.ca.c_str());
  c->enable_server_certificate_verification(true);
  return c;
}

std::string EtcdClient::EndpointName(size_t i) const {
  return endpoints_[i]->Name();
}

std::string EtcdClient::Describe() const {
  std::string out;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    out += (i ? "," : "") + endpoints_[i]->Name();
  }
  return out;
}

// One POST. `try_next`: the failure is the endpoint's (unreachable, no
// leader), so another member may serve the request.
Result<json> EtcdClient::Post(Endpoint& ep, const std::string& path,
                              const std::string& text, bool idempotent,
                              bool* try_next) {
  *try_next = false;
  if (!ep.client) {
    ep.client = MakeClient(ep);
    ep.client->set_connection_timeout(std::chrono::seconds(2));
    ep.client->set_read_timeout(std::chrono::seconds(15));
    ep.client->set_keep_alive(true);
    ep.client->set_tcp_nodelay(true);  // no 40 ms Nagle stall per request
  }
  auto res = ep.client->Post(path, text, "application/json");
  if (!res) {
    const auto error = res.error();
    const std::string alert = TlsAlert();
    const std::string why = alert.empty()
                                ? FailureText(*ep.client, error, tls_.enabled)
                                : fmt::format(
                                      "etcd refused the TLS session ({}): is "
                                      "this node's client certificate one "
                                      "etcd's CA signed?",
                                      alert);
    ep.client.reset();
    if (!idempotent && !BeforeSending(error) && alert.empty()) {
      return Unavailable(fmt::format(
          "{}: {} after the request was sent: whether etcd applied the "
          "change is unknown; look before trying again",
          ep.Name(), why));
    }
    *try_next = true;
    return Unavailable(fmt::format("{}: {}", ep.Name(), why));
  }
  json reply = json::parse(res->body, nullptr, false);
  if (res->status == 200 && reply.is_object()) return reply;
  const std::string message = reply.is_object()
                                  ? ErrorMessage(reply)
                                  : Printable(res->body.substr(0, 200));
  // gRPC code 14 (unavailable) and 4 (deadline): a member without a leader
  // or quorum; another member may have one.
  const int64_t code = reply.is_object() ? EtcdInt(reply, "code") : 0;
  if (!idempotent && code == 4) {  // timed out: it may still commit
    return Unavailable(fmt::format(
        "{}: {}: whether etcd applied the change is unknown; look before "
        "trying again",
        ep.Name(), message));
  }
  if (res->status == 503 || code == 14 || code == 4) {
    *try_next = true;
    return Unavailable(fmt::format("{}: {}", ep.Name(), message));
  }
  if (message.find("compacted") != std::string::npos) {
    return Status(Code::kConflict, "etcd: " + message);
  }
  return IoError(fmt::format("etcd {} {}: HTTP {}: {}", ep.Name(), path,
                             res->status, message));
}

Result<json> EtcdClient::Call(const std::string& path, const json& body,
                              bool idempotent) {
  std::lock_guard lock(mutex_);
  const std::string text = body.dump();
  std::string errors;
  for (size_t tried = 0; tried < endpoints_.size(); ++tried) {
    bool try_next = false;
    auto r = Post(*endpoints_[current_], path, text, idempotent, &try_next);
    if (r.ok() || !try_next) return r;
    errors += "; " + r.status().message();
    current_ = (current_ + 1) % endpoints_.size();
  }
  return Unavailable(
      fmt::format("the cluster store (etcd) cannot take requests: {}",
                  errors.empty() ? "no endpoint" : errors.substr(2)));
}

// Its own short-lived client, so it holds no lock: a slow member's status
// never delays the lease keepalive.
Result<json> EtcdClient::CallOne(size_t endpoint, const std::string& path,
                                 const json& body) {
  const Endpoint& ep = *endpoints_[endpoint];
  std::unique_ptr<httplib::Client> one = MakeClient(ep);
  one->set_connection_timeout(std::chrono::seconds(1));
  one->set_read_timeout(std::chrono::seconds(2));
  one->set_tcp_nodelay(true);
  auto res = one->Post(path, body.dump(), "application/json");
  if (!res) {
    const std::string alert = TlsAlert();
    return Unavailable(fmt::format(
        "{}: {}", ep.Name(),
        alert.empty() ? FailureText(*one, res.error(), tls_.enabled)
                      : "etcd refused the TLS session (" + alert + ")"));
  }
  json reply = json::parse(res->body, nullptr, false);
  if (res->status != 200 || !reply.is_object()) {
    return Unavailable(fmt::format("{}: HTTP {}", ep.Name(), res->status));
  }
  return reply;
}

}  // namespace cvm
