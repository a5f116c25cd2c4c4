// parser/certificate.h: the server's leaf certificate from a TLS 1.2-or-older Certificate
// message, decoded with OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "parser/byte_reader.h"
#include "parser/events.h"

namespace pgtlsmon::parser {

// `body` is the Certificate handshake body (TLS <= 1.2: a 3-byte list length, then 3-byte
// length-prefixed DER certificates). Decodes the first one.
ParseResult ParseCertificateMessage(std::span<const uint8_t> body, CertificateInfo* out);

// Decodes one DER certificate. kMalformed when OpenSSL cannot parse it (the caller counts
// Stage::kCertificate / Reason::kBadCertificate); *out is only written on kOk.
ParseResult DecodeCertificate(std::span<const uint8_t> der, CertificateInfo* out);

// The leaf's DER inside a Certificate body, without decoding it. kMalformed as above.
ParseResult LeafCertificateDer(std::span<const uint8_t> body, std::span<const uint8_t>* der);

// A bounded cache of decoded certificates keyed by the SHA-256 of their DER (computed with
// EVP), least recently used evicted first, so a server's certificate is decoded once however
// many connections carry it. Failures are cached too. Not thread-safe; one per flow tracker.
class CertificateCache {
 public:
  explicit CertificateCache(size_t capacity = 256) : capacity_(capacity == 0 ? 1 : capacity) {}

  // As DecodeCertificate, through the cache.
  ParseResult Decode(std::span<const uint8_t> der, CertificateInfo* out);
  // As ParseCertificateMessage, through the cache.
  ParseResult DecodeMessage(std::span<const uint8_t> body, CertificateInfo* out);

  size_t size() const { return lru_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  using Key = std::array<uint8_t, 32>;
  // std::nullopt: the DER did not decode.
  using Entry = std::pair<Key, std::optional<CertificateInfo>>;

  size_t capacity_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::list<Entry> lru_;  // most recently used first
  absl::flat_hash_map<Key, std::list<Entry>::iterator> index_;
};

}  // namespace pgtlsmon::parser
