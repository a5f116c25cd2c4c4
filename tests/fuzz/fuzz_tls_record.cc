// fuzz_tls_record: TlsRecordParser::Feed over arbitrary bytes delivered in chunks; the sink
// hands every handshake message to the hello/certificate parsers, as the flow tracker does.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "parser/certificate.h"
#include "parser/tls_hello.h"
#include "parser/tls_record.h"
#include "tests/fuzz/fuzz_input.h"

namespace {
using namespace pgtlsmon::parser;

class Sink final : public TlsRecordSink {
 public:
  void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                          uint16_t record_version) override {
    if (type == kHandshakeClientHello) {
      ClientHelloInfo ch;
      if (ParseClientHello(body, record_version, &ch) == ParseResult::kOk) {
        (void)Ja3(ch);
        (void)Ja4(ch);
      }
    } else if (type == kHandshakeServerHello) {
      ServerHelloInfo sh;
      if (ParseServerHello(body, &sh) == ParseResult::kOk) (void)Ja3s(sh);
    }
  }
  void OnSslv2ClientHello(std::span<const uint8_t> message) override {
    ClientHelloInfo ch;
    (void)ParseSslv2ClientHello(message, &ch);
  }
  void OnAlert(uint8_t, uint8_t) override {}
  void OnChangeCipherSpec() override {}
  void OnApplicationData() override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.size() < 2) return 0;
  // Byte 0: chunk size for the deliveries (1..256); byte 1: whether CCS ends the cleartext.
  const size_t chunk = size_t{input[0]} + 1;
  TlsRecordParser parser((input[1] & 0x80) != 0 ? 512 : 64 * 1024);
  parser.set_ccs_ends_cleartext((input[1] & 1) != 0);
  Sink sink;
  ParseStats stats;
  // Like the flow tracker's stream buffer: unconsumed bytes stay in front of the next chunk.
  std::vector<uint8_t> pending;
  for (size_t off = 2; off < input.size(); off += chunk) {
    const std::span<const uint8_t> piece = input.subspan(off, std::min(chunk, input.size() - off));
    pending.insert(pending.end(), piece.begin(), piece.end());
    const size_t used = parser.Feed(pending, sink, &stats);
    if (used > pending.size()) __builtin_trap();
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
    if (parser.failed()) break;
  }
  return 0;
}
