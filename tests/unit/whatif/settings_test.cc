// The --what-if settings parser: postgresql.conf syntax, PostgreSQL 15's defaults, bad values.
#include "whatif/settings.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace pgtlsmon::whatif {
namespace {

TEST(WhatIfSettings, EmptyTextGivesPostgres15Defaults) {
  auto s = ParseSettings("");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->policy.min_version, "TLSv1.2");
  EXPECT_EQ(s->policy.max_version, "");
  EXPECT_EQ(s->policy.ciphers, "HIGH:MEDIUM:+3DES:!aNULL");
  EXPECT_TRUE(s->policy.prefer_server_ciphers);
  EXPECT_EQ(s->policy.ecdh_curve, "prime256v1");
  EXPECT_FALSE(s->policy.groups);
  EXPECT_FALSE(s->policy.tls13_ciphers);
  EXPECT_TRUE(s->ignored.empty());
}

TEST(WhatIfSettings, PostgresqlConfSyntax) {
  auto s = ParseSettings(
      "# planned\n"
      "ssl_min_protocol_version = 'TLSv1.3'   # PCI\n"
      "SSL_Ciphers 'ECDHE+AESGCM:!aNULL'\n"
      "ssl_prefer_server_ciphers=off; ssl_ecdh_curve = secp384r1\n"
      "ssl_tls13_ciphers = 'TLS_AES_128_GCM_SHA256'\n"
      "ssl_groups = 'X25519:prime256v1'\n"
      "ssl_max_protocol_version = ''\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->policy.min_version, "TLSv1.3");
  EXPECT_EQ(s->policy.ciphers, "ECDHE+AESGCM:!aNULL");
  EXPECT_FALSE(s->policy.prefer_server_ciphers);
  EXPECT_EQ(s->policy.ecdh_curve, "secp384r1");
  EXPECT_EQ(s->policy.tls13_ciphers.value_or(""), "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(s->policy.groups.value_or(""), "X25519:prime256v1");
}

TEST(WhatIfSettings, QuotesAndEscapes) {
  auto s = ParseSettings("ssl_ciphers = 'a''b#c;d'; ssl_ecdh_curve = 'x\\'y'");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->policy.ciphers, "a'b#c;d");
  EXPECT_EQ(s->policy.ecdh_curve, "x'y");
  EXPECT_FALSE(ParseSettings("ssl_ciphers = 'open").ok());
}

TEST(WhatIfSettings, LaterLineWins) {
  auto s = ParseSettings("ssl_min_protocol_version = 'TLSv1'\nssl_min_protocol_version='TLSv1.3'");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->policy.min_version, "TLSv1.3");
}

TEST(WhatIfSettings, OtherParametersAreIgnoredAndListedOnce) {
  auto s = ParseSettings(
      "max_connections = 100\nshared_buffers = 128MB\nmax_connections = 200\n"
      "include_if_exists = 'x.conf'\nssl = on\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ignored, (std::vector<std::string>{"max_connections", "shared_buffers",
                                                  "include_if_exists", "ssl"}));
}

TEST(WhatIfSettings, BadValuesNameTheParameter) {
  for (const char* text :
       {"ssl_min_protocol_version = 'TLSv1.4'", "ssl_max_protocol_version = SSLv3",
        "ssl_prefer_server_ciphers = maybe", "pgtlsmon.certificate_key = dsa1024"}) {
    auto s = ParseSettings(text);
    ASSERT_FALSE(s.ok()) << text;
    const std::string name(std::string_view(text).substr(0, std::string_view(text).find(' ')));
    EXPECT_NE(s.status().message().find(name), std::string::npos) << s.status();
  }
  auto range =
      ParseSettings("ssl_min_protocol_version = 'TLSv1.3'; ssl_max_protocol_version = 'TLSv1.2'");
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("cannot be higher"), std::string::npos);
  EXPECT_FALSE(ParseSettings("ssl_ciphers = 'a' junk").ok());
  EXPECT_FALSE(ParseSettings("= 'x'").ok());
}

TEST(WhatIfSettings, BooleansAsPostgresReadsThem) {
  for (const char* on : {"on", "true", "yes", "1", "ON", "t", "y"}) {
    auto s = ParseSettings(std::string("ssl_prefer_server_ciphers = ") + on);
    ASSERT_TRUE(s.ok()) << on;
    EXPECT_TRUE(s->policy.prefer_server_ciphers) << on;
  }
  for (const char* off : {"off", "false", "no", "0", "f", "n"}) {
    auto s = ParseSettings(std::string("ssl_prefer_server_ciphers = ") + off);
    ASSERT_TRUE(s.ok()) << off;
    EXPECT_FALSE(s->policy.prefer_server_ciphers) << off;
  }
  EXPECT_FALSE(ParseSettings("ssl_prefer_server_ciphers = o").ok());
}

TEST(WhatIfSettings, CertificateKey) {
  auto s = ParseSettings("pgtlsmon.certificate_key = 'ec384'");
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->policy.certificate_key);
  EXPECT_EQ(KeySpecName(*s->policy.certificate_key), "ec384");
  EXPECT_EQ(KeySpecName(*ParseKeySpec("RSA4096")), "rsa4096");
  EXPECT_FALSE(ParseKeySpec("ec255"));
}

TEST(WhatIfSettings, PolicyArguments) {
  auto plain = ParsePolicyArgument("ssl_min_protocol_version=TLSv1.3", "what_if");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->policy.name, "what_if");
  EXPECT_EQ(plain->policy.min_version, "TLSv1.3");

  auto named = ParsePolicyArgument("pci=ssl_min_protocol_version=TLSv1.2; ssl_ciphers=HIGH", "x");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->policy.name, "pci");
  EXPECT_EQ(named->policy.ciphers, "HIGH");

  // A pasted parameter is not a policy name.
  auto pasted = ParsePolicyArgument("max_connections=100", "what_if");
  ASSERT_TRUE(pasted.ok()) << pasted.status();
  EXPECT_EQ(pasted->policy.name, "what_if");
  EXPECT_EQ(pasted->ignored, std::vector<std::string>{"max_connections"});

  const std::string path = ::testing::TempDir() + "/whatif_settings_test.conf";
  {
    std::ofstream f(path);
    f << "ssl_min_protocol_version = 'TLSv1.3'\n";
  }
  auto file = ParsePolicyArgument("t13=@" + path, "x");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->policy.name, "t13");
  EXPECT_EQ(file->policy.min_version, "TLSv1.3");
  std::remove(path.c_str());
  auto missing = ParsePolicyArgument("@/nonexistent/pgtlsmon.conf", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  auto bad = ParsePolicyArgument("p=ssl_min_protocol_version=TLSv9", "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("policy p"), std::string::npos);
}

}  // namespace
}  // namespace pgtlsmon::whatif
