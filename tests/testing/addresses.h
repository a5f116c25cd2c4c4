// tests/testing/addresses.h: parser::IpAddress from text, for tests that build records.
#pragma once

#include <arpa/inet.h>

#include "gtest/gtest.h"
#include "parser/events.h"

namespace pgtlsmon::testing {

inline parser::IpAddress V4(const char* s) {
  parser::IpAddress ip;
  EXPECT_EQ(inet_pton(AF_INET, s, ip.bytes.data()), 1) << s;
  return ip;
}

inline parser::IpAddress V6(const char* s) {
  parser::IpAddress ip;
  ip.is_v6 = true;
  EXPECT_EQ(inet_pton(AF_INET6, s, ip.bytes.data()), 1) << s;
  return ip;
}

}  // namespace pgtlsmon::testing
