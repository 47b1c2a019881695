// cvmadm token create --role admin|reader [--name N] [--expires 30d]
// [--output FILE]: a bearer token for the HTTPS API (api_tokens.h). The
// token is shown once: on stdout, or written to FILE (mode 0600, refused
// when it exists).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>

#include "shell.h"
#include "unique_fd.h"

namespace cvm::adm::token_create {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()(
      "role", po::value<std::string>()->required()->value_name("ROLE"),
      "admin (every op) or reader (ops that change nothing, /metrics)")(
      "name", po::value<std::string>()->value_name("NAME"),
      "what the token is for (shown by token list and in cvmd's log)")(
      "expires", po::value<std::string>()->value_name("DURATION"),
      "lifetime: seconds, or a number with s, m, h or d (default: never)")(
      "output,o", po::value<std::string>()->value_name("FILE"),
      "write the token to FILE (mode 0600) instead of stdout");
}

// "90", "15m", "12h", "30d" -> seconds.
Result<uint64_t> ParseLifetime(const std::string& text) {
  uint64_t n = 0;
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), n);
  const std::string_view unit(end, text.data() + text.size() - end);
  uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1;
  if (unit == "m") scale = 60;
  if (unit == "h") scale = 3600;
  if (unit == "d") scale = 86400;
  if (ec != std::errc() || scale == 0 || n == 0 || n > (1ULL << 40) / scale)
    return InvalidArgument(fmt::format(
        "--expires '{}' is not a positive duration (90, 15m, 12h, 30d)", text));
  return n * scale;
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  nlohmann::json args = {{"role", vm["role"].as<std::string>()}};
  if (vm.count("name")) args["name"] = vm["name"].as<std::string>();
  if (vm.count("expires")) {
    auto ttl = ParseLifetime(vm["expires"].as<std::string>());
    if (!ttl.ok()) return Fail(r, ttl.status());
    args["expires_in"] = *ttl;
  }
  // Made before the token exists: a file that cannot be written must not
  // leave a live token nobody has.
  UniqueFd out;
  std::string out_path;
  if (vm.count("output")) {
    out_path = vm["output"].as<std::string>();
    out.reset(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                     0600));
    if (!out.valid())
      return Fail(r, InvalidArgument(fmt::format("--output {}: {}", out_path,
                                                 strerror(errno))));
  }
  if (int err = CallDaemon(ctx, "token.create", args, r)) {
    if (out.valid()) ::unlink(out_path.c_str());
    return err;
  }
  const std::string token = r->data.value("token", "");
  const int64_t expires = r->data.value("expires", int64_t{0});
  const std::string lifetime =
      expires == 0 ? "never expires"
                   : fmt::format("expires at {} (unix time)", expires);
  if (out.valid()) {
    const std::string line = token + "\n";
    if (::write(out.get(), line.data(), line.size()) !=
            static_cast<ssize_t>(line.size()) ||
        ::fsync(out.get()) != 0) {
      // Nobody holds the token now: it must not stay valid.
      const Status failed =
          IoError(fmt::format("writing {}: {}", out_path, strerror(errno)));
      ::unlink(out_path.c_str());
      CliResult revoked;
      const std::string id = r->data.value("id", "");
      const int err = CallDaemon(ctx, "token.revoke", {{"id", id}}, &revoked);
      return Fail(r, err == 0 ? failed
                              : IoError(fmt::format(
                                    "{}; and revoking token {} failed too: {} "
                                    "(revoke it with 'cvmadm token revoke')",
                                    failed.message(), id, revoked.error)));
    }
    r->data.erase("token");
    r->data["file"] = out_path;
    r->text = fmt::format("{} token {} written to {}; it {}",
                          r->data.value("role", ""), r->data.value("id", ""),
                          out_path, lifetime);
    return 0;
  }
  r->text = token;
  return 0;
}

Shell::Registrar action({{"token", "create"},
                         "Create a token for the HTTPS API (shown once)",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::token_create
