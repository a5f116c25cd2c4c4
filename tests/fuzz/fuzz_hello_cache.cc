// fuzz_hello_cache: differential. HelloCache (parse once per hello shape) must give exactly
// what ParseClientHello / ParseServerHello give, on every input: if the cache key left out a
// byte the parser reads, two hellos of one shape would parse differently and the cache would
// hand back the first one's fields for the second.
//
// Input: byte 0 (bit 0: ServerHellos, else ClientHellos; bit 1: record version 0x0303, else
// 0x0301), then hello bodies separated by "HELO". One cache serves all of them, so a body can
// hit the entry an earlier one of the same shape left. Each body is also tried with its random
// and session id bytes flipped (same shape, must still agree).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "parser/tls_hello.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using pgtlsmon::parser::ClientHelloInfo;
using pgtlsmon::parser::HelloCache;
using pgtlsmon::parser::ParseResult;
using pgtlsmon::parser::ServerHelloInfo;

void Check(bool ok) {
  if (!ok) std::abort();  // the cache's view and the parser's differ
}

void Compare(HelloCache& cache, bool server, uint16_t record_version,
             std::span<const uint8_t> body) {
  if (server) {
    ServerHelloInfo direct;
    ServerHelloInfo cached;
    const ParseResult a = pgtlsmon::parser::ParseServerHello(body, &direct);
    const ParseResult b = cache.Server(body, &cached);
    Check(a == b);
    if (a == ParseResult::kOk) Check(direct == cached);
  } else {
    ClientHelloInfo direct;
    ClientHelloInfo cached;
    const ParseResult a = pgtlsmon::parser::ParseClientHello(body, record_version, &direct);
    const ParseResult b = cache.Client(body, record_version, &cached);
    Check(a == b);
    if (a == ParseResult::kOk) Check(direct == cached);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const bool server = (input[0] & 1) != 0;
  const uint16_t record_version = (input[0] & 2) != 0 ? 0x0303 : 0x0301;
  const std::string_view rest = pgtlsmon::parser::AsChars(input.subspan(1));
  HelloCache cache;
  size_t at = 0;
  while (at <= rest.size()) {
    size_t end = rest.find("HELO", at);
    if (end == std::string_view::npos) end = rest.size();
    const std::span<const uint8_t> body = input.subspan(1 + at, end - at);
    Compare(cache, server, record_version, body);
    // The same hello with another random and session id: one shape, so likely a cache hit.
    std::vector<uint8_t> other(body.begin(), body.end());
    const size_t n = other.size();
    const size_t id_end = n > 34 ? 35 + size_t{other[34]} : 0;  // after legacy_session_id
    for (size_t i = 2; i < n && i < 34; ++i) other[i] ^= 0x5a;
    for (size_t i = 35; i < n && i < id_end; ++i) other[i] ^= 0xa5;
    Compare(cache, server, record_version, other);
    at = end + 4;
  }
  return 0;
}
