#include "version.h"

namespace cvm {

std::string_view Version() { return CVM_VERSION_STRING; }

}  // namespace cvm
