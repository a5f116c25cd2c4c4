// fuzz_certificate: byte 0 odd: the input is a Certificate handshake body
// (ParseCertificateMessage, then the same through a CertificateCache twice); even: one DER
// certificate (DecodeCertificate).
#include <cstddef>
#include <cstdint>
#include <span>

#include "parser/certificate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  if (size < 1) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  CertificateInfo info;
  if (data[0] & 1) {
    (void)ParseCertificateMessage(in, &info);
    std::span<const uint8_t> der;
    if (LeafCertificateDer(in, &der) == ParseResult::kOk) {
      if (der.data() < in.data() || der.data() + der.size() > in.data() + in.size())
        __builtin_trap();
    }
    CertificateCache cache(1);
    CertificateInfo a, b;
    const ParseResult ra = cache.DecodeMessage(in, &a);
    const ParseResult rb = cache.DecodeMessage(in, &b);
    if (ra != rb) __builtin_trap();
  } else {
    (void)DecodeCertificate(in, &info);
  }
  return 0;
}
