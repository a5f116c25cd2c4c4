// parser/tls_record.cc: the TLS record layer of one direction (RFC 5246 6.2, RFC 8446 5.1),
// plus the SSLv2-format ClientHello of RFC 5246 appendix E.2.
#include "parser/tls_record.h"

#include <algorithm>
#include <cassert>
#include <cstddef>

namespace pgtlsmon::parser {
namespace {

constexpr size_t kRecordHeader = 5;
constexpr size_t kHandshakeHeader = 4;
constexpr size_t kSslv2Header = 2;

void Count(ParseStats* stats, Reason reason) {
  if (stats != nullptr) stats->Add(Stage::kTls, reason);
}

bool KnownContentType(uint8_t t) {
  return t == kContentChangeCipherSpec || t == kContentAlert || t == kContentHandshake ||
         t == kContentApplicationData || t == kContentHeartbeat;
}

}  // namespace

size_t TlsRecordParser::Feed(std::span<const uint8_t> data, TlsRecordSink& sink,
                             ParseStats* stats) {
  size_t consumed = 0;
  while (!failed_) {
    ByteReader r(data.subspan(consumed));
    if (r.empty()) break;

    // An SSLv2-format ClientHello can only open the stream: a 2-byte header with the high bit
    // set (no padding), then msg_type 1.
    if (first_record_ && (r.rest()[0] & 0x80) != 0) {
      if (r.remaining() < kSslv2Header + 1) break;  // need more
      if (r.rest()[2] != kHandshakeClientHello) {
        Count(stats, Reason::kBadRecord);
        failed_ = true;
        break;
      }
      auto hdr = r.U16Be();
      assert(hdr.has_value());
      const size_t len = *hdr & 0x7fffu;
      auto message = r.Bytes(len);
      if (!message) break;  // need more
      first_record_ = false;
      ++records_;
      consumed += kSslv2Header + len;
      sink.OnSslv2ClientHello(*message);
      continue;
    }

    auto type = r.U8();
    auto version = r.U16Be();
    auto length = r.U16Be();
    if (!type || !version || !length) break;  // the header is incomplete: need more
    if (!KnownContentType(*type) || (*version >> 8) != 3) {
      Count(stats, Reason::kBadRecord);
      failed_ = true;
      break;
    }
    if (*length > kMaxTlsRecordLength) {
      Count(stats, Reason::kBadLength);
      failed_ = true;
      break;
    }
    auto body = r.Bytes(*length);
    if (!body) break;  // the record is incomplete: need more
    first_record_ = false;
    if (!OnRecord(*type, *version, *body, sink, stats)) {
      failed_ = true;
      break;
    }
    ++records_;
    consumed += kRecordHeader + *length;
  }
  return consumed;
}

bool TlsRecordParser::OnRecord(uint8_t type, uint16_t version, std::span<const uint8_t> body,
                               TlsRecordSink& sink, ParseStats* stats) {
  // Handshake messages must not be interleaved with other record types (RFC 5246 6.2.1,
  // RFC 8446 5.1).
  if (type != kContentHandshake && !hs_buf_.empty() && !after_ccs_) {
    Count(stats, Reason::kBadRecord);
    return false;
  }
  switch (type) {
    case kContentChangeCipherSpec:
      if (body.empty()) {
        Count(stats, Reason::kBadRecord);
        return false;
      }
      after_ccs_ = ccs_ends_cleartext_;  // TLS 1.3 dummies change nothing (RFC 8446 D.4)
      hs_buf_.clear();
      sink.OnChangeCipherSpec();
      return true;
    case kContentAlert: {
      if (after_ccs_) return true;  // encrypted: not reported
      if (body.empty() || body.size() % 2 != 0) {
        Count(stats, Reason::kBadRecord);
        return false;
      }
      ByteReader r(body);
      while (!r.empty()) {
        auto level = r.U8();
        auto description = r.U8();
        if (!level || !description) {
          Count(stats, Reason::kBadRecord);
          return false;
        }
        sink.OnAlert(*level, *description);
      }
      return true;
    }
    case kContentHandshake:
      if (after_ccs_) return true;  // encrypted (Finished, TLS 1.2 renegotiation)
      return OnHandshakeRecord(version, body, sink, stats);
    case kContentApplicationData:
      sink.OnApplicationData();
      return true;
    default:  // heartbeat
      return true;
  }
}

bool TlsRecordParser::OnHandshakeRecord(uint16_t version, std::span<const uint8_t> body,
                                        TlsRecordSink& sink, ParseStats* stats) {
  if (body.empty()) {
    Count(stats, Reason::kBadRecord);
    return false;
  }
  // Messages wholly inside this record are delivered straight from it; only a message that
  // continues into the next record is copied into hs_buf_.
  std::span<const uint8_t> pending = body;
  if (!hs_buf_.empty()) {
    size_t take = 0;
    if (hs_buf_.size() < kHandshakeHeader) {
      take = std::min(body.size(), kHandshakeHeader - hs_buf_.size());
      hs_buf_.insert(hs_buf_.end(), body.begin(), body.begin() + static_cast<ptrdiff_t>(take));
      if (hs_buf_.size() < kHandshakeHeader) return true;  // the record ended in the header
    }
    auto hdr = PeekU32Be(hs_buf_, 0);
    assert(hdr.has_value());
    const size_t total = kHandshakeHeader + (*hdr & 0xffffffu);
    if (total - kHandshakeHeader > max_handshake_message_) {
      Count(stats, Reason::kCapExceeded);
      return false;
    }
    const size_t more = std::min(body.size() - take, total - hs_buf_.size());
    const auto from = body.begin() + static_cast<ptrdiff_t>(take);
    hs_buf_.insert(hs_buf_.end(), from, from + static_cast<ptrdiff_t>(more));
    take += more;
    if (hs_buf_.size() < total) return true;  // continues in the next record
    const std::span<const uint8_t> msg(hs_buf_);
    sink.OnHandshakeMessage(msg[0], msg.subspan(kHandshakeHeader), hs_record_version_);
    hs_buf_.clear();
    pending = body.subspan(take);
  }

  ByteReader r(pending);
  while (!r.empty()) {
    const std::span<const uint8_t> rest = r.rest();
    if (r.remaining() >= kHandshakeHeader) {
      auto type = r.U8();
      auto len = r.U24Be();
      assert(type && len);
      if (*len > max_handshake_message_) {
        Count(stats, Reason::kCapExceeded);
        return false;
      }
      if (auto msg = r.Bytes(*len)) {
        sink.OnHandshakeMessage(*type, *msg, version);
        continue;
      }
    }
    // The message continues in the next record.
    hs_buf_.assign(rest.begin(), rest.end());
    hs_record_version_ = version;
    break;
  }
  return true;
}

}  // namespace pgtlsmon::parser
