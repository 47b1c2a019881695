#pragma once

// The HTTPS API's certificate. Without one given, cvmd makes a self-signed
// one on first start (EC P-256, ten years) for its host name, "localhost",
// 127.0.0.1 and the listen address; clients trust that file
// (cvmadm --ca-cert) or the operator replaces both files with ones from
// their own CA. The key is written 0600 and refused when others can read it.

#include <string>
#include <vector>

#include "status.h"

namespace cvm {

// Makes `cert_path` and `key_path` when neither exists; checks the key's
// mode when they do. `names`: DNS names or IP addresses for the
// certificate's subjectAltName (the first is its common name).
Status EnsureSelfSignedCert(const std::string& cert_path,
                            const std::string& key_path,
                            const std::vector<std::string>& names);

// The SHA-256 fingerprint of the PEM certificate at `cert_path`, as
// AA:BB:..., for the log and `cvmadm` users to compare.
Result<std::string> CertFingerprint(const std::string& cert_path);

}  // namespace cvm
