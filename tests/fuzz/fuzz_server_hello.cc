// fuzz_server_hello: ParseServerHello over arbitrary bytes, then JA3S.
#include <cstddef>
#include <cstdint>
#include <span>

#include "parser/tls_hello.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  ServerHelloInfo sh;
  if (ParseServerHello(pgtlsmon::fuzz::Input(data, size), &sh) == ParseResult::kOk) {
    (void)Ja3sString(sh);
    (void)Ja3s(sh);
  }
  return 0;
}
