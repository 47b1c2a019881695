#include "shell.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "https_client.h"
#include "json_fields.h"
#include "units.h"
#include "unix_socket.h"
#include "version.h"

namespace cvm::adm {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::string Joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

struct GlobalArgs {
  std::string socket;
  std::string url;
  std::string token_file;
  std::string ca_cert;
  bool json = false;
  bool wait = false;
};

std::string Env(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The global options that take a value (their values are not command
// words).
constexpr std::string_view kValuedGlobals[] = {"--socket", "--url",
                                               "--token-file", "--ca-cert"};

po::options_description GlobalOptions(GlobalArgs* g) {
  g->socket = Env("CVM_SOCKET", kDefaultSocketPath);
  g->url = Env("CVM_URL");
  g->token_file = Env("CVM_TOKEN_FILE");
  g->ca_cert = Env("CVM_CA_CERT");
  po::options_description global("Global options");
  global.add_options()(
      "socket", po::value(&g->socket)->value_name("PATH"),
      fmt::format("cvmd's API socket (env CVM_SOCKET, default {})",
                  kDefaultSocketPath)
          .c_str())(
      "url", po::value(&g->url)->value_name("https://HOST:PORT"),
      "use cvmd's HTTPS API instead of the socket, from any machine (env "
      "CVM_URL); needs --token-file")(
      "token-file", po::value(&g->token_file)->value_name("FILE"),
      "the API token for --url, mode 0600 (env CVM_TOKEN_FILE; cvmadm token "
      "create)")("ca-cert", po::value(&g->ca_cert)->value_name("FILE"),
                 "trust this CA or certificate for --url (cvmd's api.crt; env "
                 "CVM_CA_CERT; default: the system's CAs)")(
      "json", po::bool_switch(&g->json), "print results as JSON")(
      "wait", po::bool_switch(&g->wait),
      "after a change that cuts a map epoch: wait until that epoch is "
      "installed on every node that runs cvm.ko")("help,h", "show help");
  return global;
}

nlohmann::json ErrorJson(const std::string& code, const std::string& message) {
  return {{"code", code.empty() ? "internal" : code}, {"message", message}};
}

// Prints the result: data (or its text) on stdout, the error on stderr. With
// --json everything is one JSON document on stdout, an error as its "error"
// object ({"code", "message"}), so a script reads one stream.
int Print(CliResult r, const Context& ctx, const std::string& command) {
  if (ctx.json) {
    if (r.err != 0) {
      const std::string message =
          r.error.empty() ? std::string(strerror(-r.err)) : r.error;
      if (!r.data.is_object()) r.data = nlohmann::json::object();
      r.data["error"] = ErrorJson(r.code, message);
    }
    if (!r.data.is_null()) std::cout << DumpJson(r.data, 2) << "\n";
    return r.err != 0 ? kExitFailure : 0;
  }
  if (!r.text.empty()) {
    std::cout << r.text;
    if (r.text.back() != '\n') std::cout << "\n";
  }
  if (r.err != 0) {
    std::cerr << "cvmadm: " << command << ": "
              << (r.error.empty() ? std::string(strerror(-r.err)) : r.error)
              << "\n";
    return kExitFailure;
  }
  return 0;
}

}  // namespace

Result<ApiCaller*> Context::client() {
  // Longer than cvmd's own waits (a migration's two steps of 20 s, an
  // attach waiting for fencing, --wait), so their errors reach the user.
  constexpr std::chrono::seconds kTimeout(60);
  if (client_) return client_.get();
  if (url.empty()) {
    client_ = std::make_unique<ApiClient>(socket_path, kTimeout);
    return client_.get();
  }
  if (token_file.empty()) {
    return InvalidArgument(
        "--url needs --token-file FILE (a token from 'cvmadm token create')");
  }
  CVM_ASSIGN_OR_RETURN(std::string token, ReadTokenFile(token_file));
  CVM_ASSIGN_OR_RETURN(auto https,
                       HttpsApiClient::Create({url, token, ca_cert, kTimeout}));
  client_ = std::move(https);
  return client_.get();
}

std::vector<Shell::Action>& Shell::Actions() {
  static std::vector<Action> actions;
  return actions;
}

Shell::Registrar::Registrar(Action action) {
  Actions().push_back(std::move(action));
}

int Shell::Run(int argc, const char* const* argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto& actions = Actions();
  std::sort(
      actions.begin(), actions.end(),
      [](const Action& a, const Action& b) { return a.command < b.command; });

  GlobalArgs g;
  const po::options_description global = GlobalOptions(&g);
  const bool& json = g.json;
  const bool& wait = g.wait;

  // Find the command words: the leading non-option words, skipping global
  // options (and the value of --socket).
  std::vector<std::string> words;
  std::vector<size_t> word_index;
  const bool help = std::any_of(
      args.begin(), args.end(),
      [](const std::string& a) { return a == "--help" || a == "-h"; });
  const bool version =
      std::find(args.begin(), args.end(), "--version") != args.end();
  for (size_t i = 0; i < args.size() && words.size() < 3; ++i) {
    const std::string& a = args[i];
    if (std::find(std::begin(kValuedGlobals), std::end(kValuedGlobals), a) !=
        std::end(kValuedGlobals)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    // Stop once the words so far name an action that takes no verb.
    words.push_back(a);
    word_index.push_back(i);
    if (std::any_of(actions.begin(), actions.end(),
                    [&](const Action& x) { return x.command == words; })) {
      break;
    }
  }

  const auto usage = [&](std::ostream& out, const std::string& noun) {
    out << "Usage: cvmadm [global options] <noun> <verb> [arguments] "
           "[options]\n\n";
    out << (noun.empty() ? "Commands:\n" : "Commands for " + noun + ":\n");
    for (const auto& a : actions) {
      if (!noun.empty() && a.command[0] != noun) continue;
      out << fmt::format("  {:<20} {}\n", Joined(a.command), a.description);
    }
    out << "\n" << global << "\n";
    if (noun.empty()) {
      out << "Run 'cvmadm <noun> --help' or 'cvmadm <noun> <verb> --help' for "
             "more.\n";
    }
  };

  // A usage error: with --json, one JSON error on stdout (code "usage");
  // otherwise the message and the help on stderr.
  const bool json_requested =
      std::find(args.begin(), args.end(), "--json") != args.end();
  const auto usage_error = [&](const std::string& message,
                               const std::function<void()>& print_help) {
    if (json_requested) {
      std::cout << DumpJson(
                       nlohmann::json{{"error", ErrorJson("usage", message)}},
                       2)
                << "\n";
    } else {
      std::cerr << "cvmadm: " << message << "\n\n";
      print_help();
    }
    return kExitUsage;
  };

  if (version && words.empty()) {
    std::cout << "cvmadm " << Version() << "\n";
    return 0;
  }
  if (words.empty()) {
    usage(help ? std::cout : std::cerr, "");
    return help ? 0 : kExitUsage;
  }
  const auto match =
      std::find_if(actions.begin(), actions.end(),
                   [&](const Action& a) { return a.command == words; });
  if (match == actions.end()) {
    const bool noun_known =
        std::any_of(actions.begin(), actions.end(),
                    [&](const Action& a) { return a.command[0] == words[0]; });
    if (!noun_known) {
      return usage_error("unknown command '" + Printable(words[0]) + "'",
                         [&] { usage(std::cerr, ""); });
    }
    if (words.size() == 1 && help) {
      usage(std::cout, words[0]);
      return 0;
    }
    return usage_error(words.size() == 1 ? words[0] + ": missing verb"
                                         : words[0] + ": unknown verb '" +
                                               Printable(words[1]) + "'",
                       [&] { usage(std::cerr, words[0]); });
  }

  const Action& action = *match;
  const std::string command = Joined(action.command);
  po::options_description positional("Arguments");
  po::options_description options("Options");
  action.get_arguments(&positional, &options);
  po::positional_options_description positional_order;
  std::string positional_usage;
  for (const auto& opt : positional.options()) {
    positional_order.add(opt->long_name().c_str(), 1);
    positional_usage += " <" + opt->long_name() + ">";
  }
  const auto action_help = [&](std::ostream& out) {
    out << "Usage: cvmadm " << command << positional_usage
        << (options.options().empty() ? "" : " [options]") << "\n\n"
        << action.description << "\n\n";
    if (!positional.options().empty()) {
      out << "Arguments:\n";
      for (const auto& opt : positional.options()) {
        out << fmt::format(
            "  <{}>{:<{}} {}\n", opt->long_name(), "",
            std::max<int>(1, 18 - static_cast<int>(opt->long_name().size())),
            opt->description());
      }
      out << "\n";
    }
    if (!options.options().empty()) out << options << "\n";
    out << global;
  };
  if (help) {
    action_help(std::cout);
    return 0;
  }

  // Everything but the command words goes to the action's parser.
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (std::find(word_index.begin(), word_index.end(), i) ==
        word_index.end()) {
      rest.push_back(args[i]);
    }
  }
  po::options_description all;
  all.add(positional).add(options).add(global);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(rest)
                  .options(all)
                  .positional(positional_order)
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::string what = e.what();
    // Boost calls positionals "--name"; say "<name>".
    for (const auto& opt : positional.options()) {
      const std::string flag = "--" + opt->long_name();
      for (size_t p; (p = what.find(flag)) != std::string::npos;) {
        what.replace(p, flag.size(), "<" + opt->long_name() + ">");
      }
    }
    return usage_error(command + ": " + what, [&] { action_help(std::cerr); });
  }

  Context ctx;
  ctx.socket_path = g.socket;
  ctx.url = g.url;
  ctx.token_file = g.token_file;
  ctx.ca_cert = g.ca_cert;
  ctx.json = json;
  CliResult result;
  int err = 0;
  try {
    err = action.execute(vm, ctx, &result);
  } catch (const std::exception& e) {  // boundary: report, never abort
    err = -EFAULT;
    result.error = fmt::format("internal error: {}", e.what());
  }
  if (err != 0 && result.err == 0) result.err = err;
  // --wait: the change names the epoch that carries it; wait for it.
  if (err == 0 && wait && result.data.is_object() &&
      result.data.contains("map_epoch")) {
    CliResult waited;
    if (int w = CallDaemon(ctx, "map.wait",
                           {{"epoch", result.data["map_epoch"]}}, &waited)) {
      // The change itself is done: its answer (a join token) is not lost.
      if (!json) std::cout << result.text << "\n";
      waited.err = w;
      return Print(waited, ctx, command);
    }
    result.data["installed"] = waited.data;
    result.text +=
        fmt::format("\nmap epoch {} installed on {} node(s) in {:.0f} ms",
                    waited.data.value("epoch", 0),
                    waited.data.value("nodes", nlohmann::json::object()).size(),
                    waited.data.value("ms", 0.0));
  }
  return Print(result, ctx, command);
}

int Fail(CliResult* result, const Status& status) {
  result->err = CodeToErrno(status.code());
  if (result->err == 0) result->err = -EFAULT;
  result->error = status.message();
  result->code = std::string(CodeName(status.code()));
  return result->err;
}

int CallDaemon(Context& ctx, std::string_view op, const nlohmann::json& args,
               CliResult* result) {
  Result<ApiCaller*> client = ctx.client();
  if (!client.ok()) {
    result->transport_error = true;
    return Fail(result, client.status());
  }
  Result<nlohmann::json> reply = (*client)->Call(op, args);
  if (!reply.ok()) {
    result->transport_error = !(*client)->answered();
    return Fail(result, reply.status());
  }
  result->data = std::move(reply).value();
  return 0;
}

Result<uint64_t> SizeOption(const po::variables_map& vm,
                            const std::string& name) {
  auto parsed = ParseSize(vm[name].as<std::string>());
  if (!parsed.ok()) {
    return InvalidArgument(
        fmt::format("--{}: {}", name, parsed.status().message()));
  }
  return parsed;
}

namespace {

Result<uint64_t> PositiveInteger(const po::variables_map& vm,
                                 const std::string& name,
                                 const std::string& shown) {
  const std::string text = vm[name].as<std::string>();
  uint64_t id = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || ptr != text.data() + text.size() || id == 0) {
    return InvalidArgument(fmt::format("{} '{}' is not a positive integer",
                                       shown, Printable(text)));
  }
  return id;
}

}  // namespace

Result<uint64_t> IdArgument(const po::variables_map& vm,
                            const std::string& name) {
  return PositiveInteger(vm, name, "<" + name + ">");
}

Result<uint64_t> IdOption(const po::variables_map& vm,
                          const std::string& name) {
  return PositiveInteger(vm, name, "--" + name);
}

std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) widths[c] = headers[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  std::string out;
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < headers.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : "";
      l += c + 1 == headers.size() ? cell
                                   : fmt::format("{:<{}}  ", cell, widths[c]);
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(headers);
  for (const auto& row : rows) line(row);
  return out;
}

std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [k, v] : fields) width = std::max(width, k.size() + 1);
  std::string out;
  for (const auto& [k, v] : fields) {
    out += fmt::format("{:<{}} {}\n", k + ":", width, v);
  }
  return out;
}

}  // namespace cvm::adm
