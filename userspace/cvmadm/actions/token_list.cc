// cvmadm token list: the HTTPS API's tokens, without their secrets.
#include "format.h"
#include "shell.h"

namespace cvm::adm::token_list {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "token.list", nlohmann::json::object(), r))
    return err;
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : r->data) {
    const int64_t expires = t.value("expires", int64_t{0});
    rows.push_back(
        {Str(t, "id"), Str(t, "role"), t.value("name", ""), Str(t, "created"),
         expires == 0 ? "never"
                      : std::to_string(expires) +
                            (t.value("expired", false) ? " (expired)" : "")});
  }
  r->text = RenderTable({"ID", "ROLE", "NAME", "CREATED", "EXPIRES"}, rows);
  return 0;
}

Shell::Registrar action(
    {{"token", "list"}, "List HTTPS API tokens", &GetArguments, &Execute});

}  // namespace cvm::adm::token_list
