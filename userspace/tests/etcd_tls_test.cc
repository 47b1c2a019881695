// Issue 17, secrets at rest: etcd reached over TLS with client
// certificates. A real etcd that takes only TLS and requires a client
// certificate signed by its CA (etcd_server.h, certificates from
// scripts/etcd-certs.sh); the store works for holders of a certificate and
// is refused, with the reason, to everyone else. About 3 s (etcd's start).

#include <gtest/gtest.h>

#include "etcd_client.h"
#include "etcd_server.h"
#include "metadata_store.h"
#include "test_util.h"

namespace cvm {
namespace {

using testing::EtcdServer;
using testing::TempDir;

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(EtcdServer::GetTls().uri(), "") << EtcdServer::GetTls().error();
  }
  static std::string Prefix() {
    static int n = 0;
    return "/tls" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  }
};

TEST_F(EtcdTlsTest, NodesWithClientCertificatesShareTheStore) {
  const std::string prefix = Prefix();
  auto n1 = MetadataStore::Open(EtcdServer::GetTls().TlsUri(prefix, "n1"));
  ASSERT_OK(n1);
  EXPECT_TRUE((*n1)->location().starts_with("etcds://")) << (*n1)->location();
  Host spec;
  spec.name = "h1";
  spec.addresses = {"10.0.0.1:7800"};
  ASSERT_OK((*n1)->AddHost(spec));
  auto n2 = MetadataStore::Open(EtcdServer::GetTls().TlsUri(prefix, "n2"));
  ASSERT_OK(n2);
  auto h = (*n2)->GetHost("h1");
  ASSERT_OK(h);
  EXPECT_EQ(h->addresses.front(), "10.0.0.1:7800");
}

TEST_F(EtcdTlsTest, WithoutTheRightCertificatesTheStoreIsRefused) {
  const EtcdServer& etcd = EtcdServer::GetTls();
  const std::string good = etcd.TlsUri(Prefix());
  const std::string endpoint =
      good.substr(8, good.find('/', 8) - 8);  // 127.0.0.1:PORT
  // Plain HTTP to the TLS port.
  auto plain = MetadataStore::Open("etcd://" + endpoint + "/p");
  EXPECT_EQ(plain.status().code(), Code::kUnavailable);
  // TLS without a client certificate is not even a valid store.
  EXPECT_EQ(MetadataStore::Open("etcds://" + endpoint + "/p").status().code(),
            Code::kInvalidArgument);
  // A client certificate from another CA: etcd refuses the handshake.
  TempDir other;
  ASSERT_EQ(std::system((std::string(CVM_TOP) + "/scripts/etcd-certs.sh " +
                         other.path() + " --client n1")
                            .c_str()),
            0);
  const std::string ca = etcd.certs_dir() + "/ca.crt";
  auto foreign = MetadataStore::Open("etcds://" + endpoint + "/p?ca=" + ca +
                                     "&cert=" + other.Sub("client-n1.crt") +
                                     "&key=" + other.Sub("client-n1.key"));
  EXPECT_EQ(foreign.status().code(), Code::kUnavailable)
      << foreign.status().ToString();
  EXPECT_NE(foreign.status().message().find("certificate"), std::string::npos)
      << foreign.status().ToString();
  // The right client certificate but not trusting etcd's CA (the system's
  // CAs do not know it): cvmd refuses the server.
  auto untrusted = MetadataStore::Open(
      "etcds://" + endpoint + "/p?cert=" + etcd.certs_dir() +
      "/client-n1.crt&key=" + etcd.certs_dir() + "/client-n1.key");
  EXPECT_EQ(untrusted.status().code(), Code::kUnavailable);
  EXPECT_NE(untrusted.status().message().find("not trusted"), std::string::npos)
      << untrusted.status().ToString();
  // A write (a transaction) that fails at the handshake surely did not
  // reach etcd: it is not reported as of unknown outcome.
  EtcdClient client({endpoint}, {true, ca, other.Sub("client-n1.crt"),
                                 other.Sub("client-n1.key")});
  auto txn = client.Call("/v3/kv/txn", nlohmann::json::object(),
                         /*idempotent=*/false);
  EXPECT_EQ(txn.status().code(), Code::kUnavailable);
  EXPECT_EQ(txn.status().message().find("unknown"), std::string::npos)
      << txn.status().ToString();
  // Malformed parameters are refused with the reason.
  for (const std::string& bad :
       {"etcd://" + endpoint + "/p?cert=/a&key=/b",
        "etcds://" + endpoint + "/p?cert=rel.crt&key=/b",
        "etcds://" + endpoint + "/p?cert=/a&key=/b&cert=/c",
        "etcds://" + endpoint + "/p?cert=/a&key=/b&pin=x",
        "etcds://" + endpoint + "/p?cert=/a"}) {
    EXPECT_EQ(ParseEtcdUri(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  auto parsed = ParseEtcdUri(good);
  ASSERT_OK(parsed);
  EXPECT_TRUE(parsed->tls.enabled);
  EXPECT_EQ(parsed->tls.ca, ca);
}

}  // namespace
}  // namespace cvm
