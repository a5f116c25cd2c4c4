// parser/tls_record.h: the TLS record layer of one direction of a connection.
//
// Bytes in (the in-order stream of one direction, as TCP reassembly delivers it), callbacks
// out. Handshake messages spread over several records are reassembled here (bounded).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "parser/byte_reader.h"
#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

inline constexpr uint8_t kContentChangeCipherSpec = 20;
inline constexpr uint8_t kContentAlert = 21;
inline constexpr uint8_t kContentHandshake = 22;
inline constexpr uint8_t kContentApplicationData = 23;
inline constexpr uint8_t kContentHeartbeat = 24;  // RFC 6520: skipped, never reported
inline constexpr uint8_t kHandshakeClientHello = 1;
inline constexpr uint8_t kHandshakeServerHello = 2;
inline constexpr uint8_t kHandshakeCertificate = 11;
// RFC 5246 6.2.3: a TLSCiphertext fragment is at most 2^14 + 2048 bytes; longer is bad_length.
inline constexpr size_t kMaxTlsRecordLength = 16384 + 2048;

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
  explicit TlsRecordParser(size_t max_handshake_message = size_t{64} * 1024)
      : max_handshake_message_(max_handshake_message) {}

  // Consumes every complete record at the front of `data` and returns the bytes consumed; the
  // caller keeps the rest and calls again with more. After malformed input (counted in *stats
  // under Stage::kTls) failed() is true and Feed consumes nothing more.
  // `data` (and every span handed to the sink) is valid only during the call. `stats` may be
  // null. Malformed: an unknown content type or a record-layer major version other than 3
  // (bad_record), a record longer than kMaxTlsRecordLength (bad_length), an empty handshake,
  // alert or ChangeCipherSpec record (RFC 5246 6.2.1, RFC 8446 5.1: MUST NOT be sent), an alert
  // record of odd length, another content type in the middle of a fragmented handshake message
  // (bad_record), a handshake message longer than max_handshake_message (cap_exceeded).
  size_t Feed(std::span<const uint8_t> data, TlsRecordSink& sink, ParseStats* stats);

  bool failed() const { return failed_; }
  // Whether this direction's ChangeCipherSpec ends the cleartext (TLS 1.2 and older). In
  // TLS 1.3 the CCS is a middlebox-compatibility dummy (RFC 8446 D.4): after a
  // HelloRetryRequest the real ServerHello and the second ClientHello still travel in clear.
  void set_ccs_ends_cleartext(bool v) { ccs_ends_cleartext_ = v; }
  bool encrypted() const { return after_ccs_; }  // this direction sent ChangeCipherSpec
  uint64_t records() const { return records_; }  // complete records consumed so far

 private:
  size_t max_handshake_message_;
  bool failed_ = false;
  bool after_ccs_ = false;
  bool ccs_ends_cleartext_ = true;
  bool first_record_ = true;
  std::vector<uint8_t> hs_buf_;  // a handshake message spread over several records
  uint16_t hs_record_version_ = 0;
  uint64_t records_ = 0;

  // Handles one complete record; false when it is malformed (already counted).
  bool OnRecord(uint8_t type, uint16_t version, std::span<const uint8_t> body, TlsRecordSink& sink,
                ParseStats* stats);
  bool OnHandshakeRecord(uint16_t version, std::span<const uint8_t> body, TlsRecordSink& sink,
                         ParseStats* stats);
};

}  // namespace pgtlsmon::parser
