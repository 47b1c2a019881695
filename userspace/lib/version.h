#pragma once

#include <string_view>

#ifndef CVM_VERSION_STRING
#define CVM_VERSION_STRING "0.1.0"
#endif

namespace cvm {

// The release string shared by cvmd, cvmadm and the kernel modules.
std::string_view Version();

}  // namespace cvm
