#pragma once

// cvmadm's command shell, after Ceph's rbd Shell: every verb lives in its own
// file under actions/ and registers itself with a static Shell::Action, giving
// its command words, its options and an execute function. Execute fills one
// CliResult and returns 0 or a negative errno; the shell alone prints results,
// so --json and human output come from one place.

#include <boost/program_options.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api_client.h"
#include "status.h"

namespace cvm::adm {

namespace po = boost::program_options;

// One shape for every command's outcome (Vitastor's cli_result_t).
struct CliResult {
  int err = 0;        // 0, or a negative errno
  std::string error;  // why it failed, when err != 0
  std::string code;   // the API's error code name ("not_found"), if any
  bool transport_error = false;  // cvmd never answered
  nlohmann::json data;  // the machine-readable result: what --json prints
  std::string text;     // the same, for people
};

struct Context {
  std::string socket_path;
  // The HTTPS API instead of the socket (https_client.h).
  std::string url;
  std::string token_file;
  std::string ca_cert;
  bool json = false;
  // Made on first use; kInvalidArgument for a bad --url or token file.
  Result<ApiCaller*> client();

 private:
  std::unique_ptr<ApiCaller> client_;
};

// Positional arguments go in `positional` (in order, one value each); options
// in `options`.
using GetArgumentsFn = void (*)(po::options_description* positional,
                                po::options_description* options);
using ExecuteFn = int (*)(const po::variables_map& vm, Context& ctx,
                          CliResult* result);

class Shell {
 public:
  struct Action {
    std::vector<std::string> command;  // {"volume", "create"}
    std::string description;
    GetArgumentsFn get_arguments;
    ExecuteFn execute;
  };

  // Static registration: `Shell::Registrar kAction({...});` in each verb file.
  struct Registrar {
    explicit Registrar(Action action);
  };

  // Returns the process exit code: 0 success, 1 failure, 2 usage error.
  int Run(int argc, const char* const* argv);

 private:
  static std::vector<Action>& Actions();
};

// Sets `result` from `status` and returns the negative errno.
int Fail(CliResult* result, const Status& status);

// Calls the daemon; on success stores the reply in result->data.
int CallDaemon(Context& ctx, std::string_view op, const nlohmann::json& args,
               CliResult* result);

// A size option ("10G", "512M", "4096"); kInvalidArgument names the option.
Result<uint64_t> SizeOption(const po::variables_map& vm,
                            const std::string& name);

// A positive decimal id argument (boost would accept "-1" as 2^64-1);
// errors name it "<name>". IdOption is the same for an option ("--name").
Result<uint64_t> IdArgument(const po::variables_map& vm,
                            const std::string& name);
Result<uint64_t> IdOption(const po::variables_map& vm, const std::string& name);

// Column-aligned table with a header row.
std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);
// "key:   value" lines, keys aligned.
std::string RenderFields(
    const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace cvm::adm
