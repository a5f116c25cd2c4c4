#include "parser/pg_startup.h"

#include <gtest/gtest.h>

#include <vector>

namespace pgtlsmon::parser {
namespace {

std::vector<uint8_t> SslRequest() {
  return {
      0x00, 0x00, 0x00, 0x08,  // length 8
      0x04, 0xd2, 0x16, 0x2f,  // 80877103: SSLRequest
  };
}

std::vector<uint8_t> Startup() {
  std::vector<uint8_t> m = {
      0x00, 0x00, 0x00, 0x00,  // length, patched below
      0x00, 0x03, 0x00, 0x00,  // protocol 3.0
  };
  auto add = [&](const char* s) {
    for (; *s != 0; ++s) m.push_back(static_cast<uint8_t>(*s));
    m.push_back(0);
  };
  add("user");
  add("alice");
  add("database");
  add("shop");
  add("application_name");
  add("psql");
  add("password");  // never reported: not a field of the record
  add("secret");
  m.push_back(0);  // end of parameters
  m[3] = static_cast<uint8_t>(m.size());
  return m;
}

TEST(PgStartup, SslRequest) {
  PgStartupMessage m;
  auto b = SslRequest();
  ASSERT_EQ(ParsePgStartup(b, 10000, &m), ParseResult::kOk);
  EXPECT_EQ(m.kind, PgStartupMessage::Kind::kSslRequest);
  EXPECT_EQ(m.length, 8u);
}

TEST(PgStartup, GssEncRequest) {
  std::vector<uint8_t> b = {0x00, 0x00, 0x00, 0x08,   // length 8
                            0x04, 0xd2, 0x16, 0x30};  // 80877104: GSSENCRequest
  PgStartupMessage m;
  ASSERT_EQ(ParsePgStartup(b, 10000, &m), ParseResult::kOk);
  EXPECT_EQ(m.kind, PgStartupMessage::Kind::kGssEncRequest);
}

TEST(PgStartup, CancelRequestClassicAndLongKey) {
  std::vector<uint8_t> classic = {0x00, 0x00, 0x00, 0x10,   // length 16
                                  0x04, 0xd2, 0x16, 0x2e,   // 80877102: CancelRequest
                                  0x00, 0x00, 0x30, 0x39,   // process id
                                  0x12, 0x34, 0x56, 0x78};  // secret key (4 bytes)
  PgStartupMessage m;
  ASSERT_EQ(ParsePgStartup(classic, 10000, &m), ParseResult::kOk);
  EXPECT_EQ(m.kind, PgStartupMessage::Kind::kCancelRequest);
  EXPECT_EQ(m.length, 16u);
  // Protocol 3.2 (PostgreSQL 18): a 32-byte key.
  std::vector<uint8_t> longkey = {0x00, 0x00, 0x00, 0x2c,   // length 44
                                  0x04, 0xd2, 0x16, 0x2e,   // CancelRequest
                                  0x00, 0x00, 0x30, 0x39};  // process id
  longkey.resize(44, 0xab);                                 // 32-byte key
  ASSERT_EQ(ParsePgStartup(longkey, 10000, &m), ParseResult::kOk);
  EXPECT_EQ(m.length, 44u);
}

TEST(PgStartup, StartupMessageFields) {
  auto b = Startup();
  PgStartupMessage m;
  ASSERT_EQ(ParsePgStartup(b, 10000, &m), ParseResult::kOk);
  ASSERT_TRUE(m.startup.has_value());
  EXPECT_EQ(m.startup->protocol_major, 3);
  EXPECT_EQ(m.startup->protocol_minor, 0);
  EXPECT_EQ(m.startup->user, "alice");
  EXPECT_EQ(m.startup->database, "shop");
  EXPECT_EQ(m.startup->application_name, "psql");
  EXPECT_EQ(m.length, b.size());
}

TEST(PgStartup, AbsentParametersAreNull) {
  std::vector<uint8_t> b = {0x00, 0x00, 0x00, 0x12,                           // length 18
                            0x00, 0x03, 0x00, 0x02,                           // protocol 3.2
                            'u',  's',  'e',  'r',  0, 'b', 'o', 'b', 0, 0};  // end
  PgStartupMessage m;
  ASSERT_EQ(ParsePgStartup(b, 10000, &m), ParseResult::kOk);
  EXPECT_EQ(m.startup->protocol_minor, 2);
  EXPECT_EQ(m.startup->user, "bob");
  EXPECT_FALSE(m.startup->database.has_value());
  EXPECT_FALSE(m.startup->application_name.has_value());
}

TEST(PgStartup, NotPostgres) {
  std::vector<uint8_t> http = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
  PgStartupMessage m;
  EXPECT_EQ(ParsePgStartup(http, 10000, &m), ParseResult::kNotThisProtocol);
}

TEST(PgStartup, OversizedStartupIsMalformed) {
  std::vector<uint8_t> b = {0x00, 0x01, 0x00, 0x00,   // length 65536
                            0x00, 0x03, 0x00, 0x00};  // protocol 3.0
  PgStartupMessage m;
  EXPECT_EQ(ParsePgStartup(b, 10000, &m), ParseResult::kMalformed);
}

// Every strict prefix of a message needs more bytes; none is taken for a message.
TEST(PgStartup, TruncationSweep) {
  for (const auto& f : {SslRequest(), Startup()}) {
    for (size_t n = 0; n < f.size(); ++n) {
      PgStartupMessage m;
      EXPECT_EQ(ParsePgStartup(std::span(f).first(n), 10000, &m), ParseResult::kNeedMore)
          << "prefix " << n;
    }
  }
}

}  // namespace
}  // namespace pgtlsmon::parser
