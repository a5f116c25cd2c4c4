// fuzz_certificate: byte 0 odd: the input is a Certificate handshake body
// (ParseCertificateMessage, then the same through a CertificateCache twice); even: one DER
// certificate (DecodeCertificate).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "parser/certificate.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const std::span<const uint8_t> in = input.subspan(1);
  CertificateInfo info;
  if ((input[0] & 1) != 0) {
    (void)ParseCertificateMessage(in, &info);
    std::span<const uint8_t> der;
    if (LeafCertificateDer(in, &der) == ParseResult::kOk) {
      // The leaf is a view into the message.
      const std::less<> before;
      if (before(der.data(), in.data()) ||
          before(std::to_address(in.end()), std::to_address(der.end())))
        __builtin_trap();
    }
    CertificateCache cache(1);
    CertificateInfo a;
    CertificateInfo b;
    const ParseResult ra = cache.DecodeMessage(in, &a);
    const ParseResult rb = cache.DecodeMessage(in, &b);
    if (ra != rb) __builtin_trap();
  } else {
    (void)DecodeCertificate(in, &info);
  }
  return 0;
}
