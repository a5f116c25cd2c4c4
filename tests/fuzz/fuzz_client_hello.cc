// fuzz_client_hello: ParseClientHello (byte 0 even) or ParseSslv2ClientHello (odd) over the
// rest, then the fingerprints of whatever parsed.
#include <cstddef>
#include <cstdint>
#include <span>

#include "parser/tls_hello.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const std::span<const uint8_t> body = input.subspan(1);
  ClientHelloInfo ch;
  const ParseResult r =
      (input[0] & 1) != 0 ? ParseSslv2ClientHello(body, &ch) : ParseClientHello(body, 0x0301, &ch);
  if (r == ParseResult::kOk) {
    (void)Ja3String(ch);
    (void)Ja3(ch);
    (void)Ja4(ch);
    (void)Ja4Raw(ch);
  }
  return 0;
}
