#include "https_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>

#include "rest_routes.h"
#include "unique_fd.h"

namespace cvm {

using json = nlohmann::json;

Result<std::string> ReadTokenFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid())
    return NotFound(
        fmt::format("cannot open token file {}: {}", path, strerror(errno)));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return InvalidArgument(fmt::format("{} is not a regular file", path));
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied(fmt::format(
        "token file {} is mode {:04o}: others could read it; chmod 600 it",
        path, st.st_mode & 07777));
  }
  std::string text(4096, '\0');
  const ssize_t n = ::read(fd.get(), text.data(), text.size());
  if (n < 0)
    return IoError(fmt::format("reading {}: {}", path, strerror(errno)));
  text.resize(n);
  while (!text.empty() &&
         (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  if (text.empty() || text.find_first_of("\r\n ") != std::string::npos)
    return InvalidArgument(fmt::format(
        "token file {} must hold one token (cvmtok:ID:SECRET)", path));
  return text;
}

HttpsApiClient::HttpsApiClient(HttpsClientOptions options)
    : options_(std::move(options)) {}

HttpsApiClient::~HttpsApiClient() = default;

Result<std::unique_ptr<HttpsApiClient>> HttpsApiClient::Create(
    HttpsClientOptions options) {
  std::string_view rest = options.url;
  if (rest.starts_with("http://")) {
    return InvalidArgument(fmt::format(
        "{}: cvmd's API is HTTPS only (plain HTTP would show the token to "
        "the network); use https://",
        options.url));
  }
  if (!rest.starts_with("https://"))
    return InvalidArgument(
        fmt::format("--url '{}' is not https://HOST[:PORT]", options.url));
  rest.remove_prefix(8);
  if (rest.ends_with("/")) rest.remove_suffix(1);
  std::string host;
  int port = 7480;
  std::string_view port_text;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument(fmt::format("--url '{}': no ']'", options.url));
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (rest.starts_with(":"))
      port_text = rest.substr(1);
    else if (!rest.empty())
      return InvalidArgument(fmt::format("--url '{}' has a path", options.url));
  } else {
    const size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (!port_text.empty()) {
    const auto [end, ec] = std::from_chars(
        port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535)
      return InvalidArgument(
          fmt::format("--url '{}': bad port (or a path)", options.url));
  }
  if (host.empty() || host.find('/') != std::string::npos)
    return InvalidArgument(fmt::format("--url '{}': no host", options.url));
  std::unique_ptr<HttpsApiClient> c(new HttpsApiClient(std::move(options)));
  c->client_ = std::make_unique<httplib::SSLClient>(host, port);
  httplib::SSLClient& cli = *c->client_;
  if (!c->options_.ca_cert.empty())
    cli.set_ca_cert_path(c->options_.ca_cert.c_str());
  cli.enable_server_certificate_verification(true);
  // OpenSSL itself checks the name against the certificate's
  // subjectAltName (httplib's own check also takes the CN).
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(cli.ssl_context());
  unsigned char addr[16];
  const bool is_ip = inet_pton(AF_INET, host.c_str(), addr) == 1 ||
                     inet_pton(AF_INET6, host.c_str(), addr) == 1;
  if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
             : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0)) != 1)
    return InvalidArgument(
        fmt::format("--url '{}': bad host name", c->options_.url));
  cli.set_connection_timeout(c->options_.timeout);
  cli.set_read_timeout(c->options_.timeout);
  cli.set_write_timeout(c->options_.timeout);
  return c;
}

namespace {

Status TransportFailure(const HttpsClientOptions& o, httplib::Error e,
                        long verify_result) {
  std::string why = httplib::to_string(e);
  if (e == httplib::Error::SSLServerVerification) {
    why = fmt::format(
        "the server's certificate is not trusted ({}); give its CA or "
        "certificate with --ca-cert (cvmd writes api.crt)",
        X509_verify_cert_error_string(verify_result));
  }
  return Unavailable(fmt::format("cannot reach cvmd at {}: {}", o.url, why));
}

}  // namespace

Result<json> HttpsApiClient::Call(std::string_view op, const json& args) {
  answered_ = false;
  if (!args.is_object())
    return InvalidArgument("the arguments must be a JSON object");
  const std::string path = RestPathOf(op);
  const httplib::Headers headers = {
      {"Authorization", "Bearer " + options_.token}};
  httplib::Result res = [&] {
    if (RestMethodOf(op) == "GET") {
      httplib::Params params;
      for (const auto& [k, v] : args.items())
        params.emplace(k, RestQueryText(v));
      return client_->Get(path, params, headers);
    }
    return client_->Post(path, headers, args.dump(), "application/json");
  }();
  if (!res)
    return TransportFailure(options_, res.error(),
                            client_->get_openssl_verify_result());
  answered_ = true;
  const json body = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("ok")) {
    return Internal(fmt::format("{} answered HTTP {} without the API's JSON",
                                path, res->status));
  }
  if (body.value("ok", false)) return body.value("data", json());
  const json error = body.value("error", json::object());
  return Status(CodeFromName(error.value("code", "internal")),
                error.value("message", "(no message)"));
}

Result<std::pair<int, std::string>> HttpsApiClient::GetRaw(
    const std::string& path) {
  answered_ = false;
  auto res =
      client_->Get(path, {{"Authorization", "Bearer " + options_.token}});
  if (!res)
    return TransportFailure(options_, res.error(),
                            client_->get_openssl_verify_result());
  answered_ = true;
  return std::make_pair(res->status, res->body);
}

}  // namespace cvm
