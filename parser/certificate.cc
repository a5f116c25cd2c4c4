// parser/certificate.cc: the server's leaf certificate (RFC 5246 7.4.2), decoded with OpenSSL.
#include "parser/certificate.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <array>
#include <chrono>
#include <climits>
#include <ctime>
#include <memory>

namespace pgtlsmon::parser {
namespace {

constexpr auto kBad = ParseResult::kMalformed;

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};

// RFC 2253 text of a name (OpenSSL's XN_FLAG_RFC2253: most specific RDN first, escaped).
std::string NameText(const X509_NAME* name) {
  if (name == nullptr) return {};
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return {};
  return {data, static_cast<size_t>(len)};
}

// The time in UTC, whatever the process time zone: the date through std::chrono's calendar.
std::optional<int64_t> UnixSeconds(const ASN1_TIME* t) {
  using namespace std::chrono;
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  const sys_days date{year{tm.tm_year + 1900} / month{static_cast<unsigned>(tm.tm_mon + 1)} /
                      day{static_cast<unsigned>(tm.tm_mday)}};
  const sys_seconds time = date + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
  return static_cast<int64_t>(time.time_since_epoch().count());
}

std::string KeyType(const EVP_PKEY* key) {
  const int id = EVP_PKEY_get_base_id(key);
  switch (id) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_RSA_PSS:
      return "RSA-PSS";
    case EVP_PKEY_EC:
      return "EC";
    case EVP_PKEY_DSA:
      return "DSA";
    case EVP_PKEY_ED25519:
      return "Ed25519";
    case EVP_PKEY_ED448:
      return "Ed448";
    default:
      break;
  }
  const char* sn = id != NID_undef ? OBJ_nid2sn(id) : nullptr;
  if (sn != nullptr) return sn;
  const char* type_name = EVP_PKEY_get0_type_name(key);
  return type_name != nullptr ? type_name : "unknown";
}

std::string SignatureAlgorithm(const X509* x) {
  const int nid = X509_get_signature_nid(x);
  if (nid != NID_undef) {
    if (const char* ln = OBJ_nid2ln(nid)) return ln;
  }
  // An algorithm OpenSSL has no name for: its dotted OID.
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(nullptr, &alg, x);
  const ASN1_OBJECT* obj = nullptr;
  if (alg != nullptr) X509_ALGOR_get0(&obj, nullptr, nullptr, alg);
  if (obj == nullptr) return {};
  std::array<char, 128> buf{};
  const int n = OBJ_obj2txt(buf.data(), static_cast<int>(buf.size()), obj, 1);
  return n > 0 ? std::string(buf.data()) : std::string();
}

}  // namespace

ParseResult LeafCertificateDer(std::span<const uint8_t> body, std::span<const uint8_t>* der) {
  // opaque ASN.1Cert<1..2^24-1>; ASN.1Cert certificate_list<0..2^24-1>;
  ByteReader r(body);
  auto list_len = r.U24Be();
  auto list = list_len ? r.Sub(*list_len) : std::nullopt;
  if (!list || !r.empty() || list->empty()) return kBad;  // a server must send its chain
  auto cert_len = list->U24Be();
  auto cert = cert_len ? list->Bytes(*cert_len) : std::nullopt;
  if (!cert || cert->empty()) return kBad;
  // The rest of the chain must be well framed too.
  while (!list->empty()) {
    auto len = list->U24Be();
    if (!len || !list->Skip(*len)) return kBad;
  }
  *der = *cert;
  return ParseResult::kOk;
}

ParseResult ParseCertificateMessage(std::span<const uint8_t> body, CertificateInfo* out) {
  std::span<const uint8_t> der;
  if (LeafCertificateDer(body, &der) != ParseResult::kOk) return kBad;
  return DecodeCertificate(der, out);
}

ParseResult DecodeCertificate(std::span<const uint8_t> der, CertificateInfo* out) {
  if (der.empty() || der.size() > static_cast<size_t>(LONG_MAX)) return kBad;
  const unsigned char* p = der.data();
  std::unique_ptr<X509, X509Deleter> x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) return kBad;
  if (p != der.data() + der.size()) return kBad;  // bytes after the certificate

  CertificateInfo info;
  info.subject = NameText(X509_get_subject_name(x.get()));
  info.issuer = NameText(X509_get_issuer_name(x.get()));
  auto not_before = UnixSeconds(X509_get0_notBefore(x.get()));
  auto not_after = UnixSeconds(X509_get0_notAfter(x.get()));
  if (!not_before || !not_after) return kBad;
  info.not_before = *not_before;
  info.not_after = *not_after;
  if (const EVP_PKEY* key = X509_get0_pubkey(x.get())) {
    info.key_type = KeyType(key);
    info.key_bits = EVP_PKEY_get_bits(key);
  } else {
    return kBad;  // a public key OpenSSL cannot decode
  }
  info.signature_algorithm = SignatureAlgorithm(x.get());
  *out = std::move(info);
  return ParseResult::kOk;
}

ParseResult CertificateCache::Decode(std::span<const uint8_t> der, CertificateInfo* out) {
  Key key{};
  unsigned int key_len = 0;
  if (EVP_Digest(der.data(), der.size(), key.data(), &key_len, EVP_sha256(), nullptr) != 1 ||
      key_len != key.size()) {
    return DecodeCertificate(der, out);  // no digest, no caching
  }
  if (auto it = index_.find(key); it != index_.end()) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    const auto& cached = it->second->second;
    if (!cached) return kBad;
    *out = *cached;
    return ParseResult::kOk;
  }
  ++misses_;
  CertificateInfo info;
  std::optional<CertificateInfo> entry;
  if (DecodeCertificate(der, &info) == ParseResult::kOk) entry = info;
  if (lru_.size() >= capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, entry);
  index_[key] = lru_.begin();
  if (!entry) return kBad;
  *out = std::move(info);
  return ParseResult::kOk;
}

ParseResult CertificateCache::DecodeMessage(std::span<const uint8_t> body, CertificateInfo* out) {
  std::span<const uint8_t> der;
  if (LeafCertificateDer(body, &der) != ParseResult::kOk) return kBad;
  return Decode(der, out);
}

}  // namespace pgtlsmon::parser
