// parser/tls_record.h: the TLS record layer of one direction of a connection.
//
// Bytes in (the in-order stream of one direction, as TCP reassembly delivers it), callbacks
// out. Handshake messages spread over several records are reassembled here (bounded).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "parser/byte_reader.h"
#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

inline constexpr uint8_t kContentChangeCipherSpec = 20;
inline constexpr uint8_t kContentAlert = 21;
inline constexpr uint8_t kContentHandshake = 22;
inline constexpr uint8_t kContentApplicationData = 23;
inline constexpr uint8_t kHandshakeClientHello = 1;
inline constexpr uint8_t kHandshakeServerHello = 2;
inline constexpr uint8_t kHandshakeCertificate = 11;

class TlsRecordSink {
 public:
  virtual ~TlsRecordSink() = default;
  // A complete handshake message in clear (before this direction's ChangeCipherSpec).
  // `body` excludes the 4-byte header; it is valid only during the call.
  virtual void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                                  uint16_t record_version) = 0;
  // An SSLv2-format ClientHello (RFC 5246 appendix E.2); `message` starts at msg_type.
  virtual void OnSslv2ClientHello(std::span<const uint8_t> message) = 0;
  // An alert in clear (not after this direction's ChangeCipherSpec).
  virtual void OnAlert(uint8_t level, uint8_t description) = 0;
  virtual void OnChangeCipherSpec() = 0;
  virtual void OnApplicationData() = 0;
};

class TlsRecordParser {
 public:
  explicit TlsRecordParser(size_t max_handshake_message = 64 * 1024)
      : max_handshake_message_(max_handshake_message) {}

  // Consumes every complete record at the front of `data` and returns the bytes consumed; the
  // caller keeps the rest and calls again with more. After malformed input (counted in *stats
  // under Stage::kTls) failed() is true and Feed consumes nothing more.
  size_t Feed(std::span<const uint8_t> data, TlsRecordSink& sink, ParseStats* stats);

  bool failed() const { return failed_; }
  bool encrypted() const { return after_ccs_; }  // this direction sent ChangeCipherSpec

 private:
  size_t max_handshake_message_;
  bool failed_ = false;
  bool after_ccs_ = false;
  bool first_record_ = true;
  std::string hs_buf_;  // a handshake message spread over several records
  uint16_t hs_record_version_ = 0;
};

}  // namespace pgtlsmon::parser
