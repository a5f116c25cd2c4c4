// tests/testing/tls_bytes.h: PostgreSQL startup messages and TLS records as bytes, for tests
// that drive the parser with a built packet sequence.
//
// Bytes are appended with push_back/resize rather than vector::insert of short ranges: GCC 12
// at -O3 reports -Warray-bounds false positives on the latter (GCC bug 107852).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace pgtlsmon::testing {

using Bytes = std::vector<uint8_t>;

inline void Put(Bytes* b, std::initializer_list<uint8_t> v) {
  for (uint8_t x : v) b->push_back(x);
}
inline void Put(Bytes* b, const Bytes& v) {
  for (uint8_t x : v) b->push_back(x);
}
inline void PutU16(Bytes* b, size_t v) {
  Put(b, {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
}
inline void PutU24(Bytes* b, size_t v) {
  Put(b, {static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
}

inline const Bytes kSslRequest = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};
inline const Bytes kGssRequest = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x30};

inline Bytes StartupMessage(const std::string& user) {
  Bytes m = {0, 0, 0, 0, 0x00, 0x03, 0x00, 0x00};
  for (const char* s : {"user", user.c_str()}) {
    for (; *s != 0; ++s) m.push_back(static_cast<uint8_t>(*s));
    m.push_back(0);
  }
  m.push_back(0);
  m[3] = static_cast<uint8_t>(m.size());
  return m;
}

inline Bytes Record(uint8_t type, uint16_t version, const Bytes& body) {
  Bytes r;
  r.push_back(type);
  PutU16(&r, version);
  PutU16(&r, body.size());
  Put(&r, body);
  return r;
}

inline Bytes Handshake(uint8_t type, const Bytes& body) {
  Bytes h;
  h.push_back(type);
  PutU24(&h, body.size());
  Put(&h, body);
  return h;
}

// A minimal ClientHello record: one suite, no session id, null compression, and the given
// extensions block (none when empty).
inline Bytes ClientHello(uint16_t version, uint16_t suite, const Bytes& extensions = {}) {
  Bytes b(2 + 32, 0x11);  // version, then the random
  b.reserve(b.size() + 16 + extensions.size());
  b[0] = static_cast<uint8_t>(version >> 8);
  b[1] = static_cast<uint8_t>(version);
  b.push_back(0);  // session id
  PutU16(&b, 2);
  PutU16(&b, suite);
  Put(&b, {0x01, 0x00});  // compression: null
  if (!extensions.empty()) {
    PutU16(&b, extensions.size());
    Put(&b, extensions);
  }
  return Record(22, 0x0301, Handshake(1, b));
}

// A ServerHello record; `selected` (non-zero) adds a supported_versions extension (TLS 1.3).
inline Bytes ServerHello(uint16_t version, uint16_t suite, uint16_t selected = 0) {
  Bytes b(2 + 32, 0x22);  // version, then the random
  b.reserve(b.size() + 16);
  b[0] = static_cast<uint8_t>(version >> 8);
  b[1] = static_cast<uint8_t>(version);
  b.push_back(0);
  PutU16(&b, suite);
  b.push_back(0);
  if (selected != 0) {
    PutU16(&b, 6);
    Put(&b, {0x00, 0x2b, 0x00, 0x02});
    PutU16(&b, selected);
  }
  return Record(22, version, Handshake(2, b));
}

inline Bytes Alert(uint8_t level, uint8_t desc) { return Record(21, 0x0303, {level, desc}); }
inline Bytes Ccs() { return Record(20, 0x0303, {1}); }
inline Bytes ApplicationData(size_t n) { return Record(23, 0x0303, Bytes(n, 0xee)); }

}  // namespace pgtlsmon::testing
