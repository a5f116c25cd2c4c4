#include "parser/outcome.h"

#include "parser/tls_names.h"

namespace pgtlsmon::parser {
namespace {

Outcome OutcomeOf(const SessionRecord& r, const ConnectionFacts& facts) {
  if (r.client_hello) {
    if (r.tls && !facts.fatal_alert) return Outcome::kTls;
    if (facts.fatal_alert || facts.closed) return Outcome::kTlsFailed;
    return Outcome::kIncomplete;
  }
  if (r.pg.gssenc_response == 'G') return Outcome::kGssenc;
  if (r.pg.startup) return Outcome::kPlaintext;
  if (r.pg.cancel_request) return Outcome::kCancel;
  if (r.pg.ssl_response == 'N' || r.pg.ssl_response == 'E' || r.pg.gssenc_response == 'N' ||
      r.pg.gssenc_response == 'E') {
    return Outcome::kSslRefused;
  }
  return Outcome::kUnknown;
}

}  // namespace

void ApplyOutcomeRules(SessionRecord* rp, std::optional<ServerHelloInfo>* hrr,
                       const ConnectionFacts& facts) {
  SessionRecord& r = *rp;
  if (!r.server_hello && hrr->has_value()) {
    // Only a HelloRetryRequest arrived: report it; nothing was negotiated.
    r.server_hello = std::move(*hrr);
    r.server_hello->hello_retry_request = true;
  }
  r.outcome = OutcomeOf(r, facts);

  // The newest known version the client offered.
  int offered_rank = -1;
  bool offered_old = false;
  if (r.client_hello) {
    const auto& ch = *r.client_hello;
    auto consider = [&](uint16_t v) {
      const int rank = VersionRank(v);
      if (rank < 0) return;
      if (rank > offered_rank) {
        offered_rank = rank;
        r.client_hello_max_version = v;
      }
    };
    if (!ch.supported_versions.empty()) {
      for (uint16_t v : ch.supported_versions) {
        consider(v);
        const int rank = VersionRank(v);
        if (rank >= 0 && rank < kRankTls12) offered_old = true;
      }
    } else {
      consider(ch.version);
    }
  }
  uint32_t fs = r.findings & FindingBit(Finding::kSslInjectionBytes);
  if (r.tls) {
    const int rank = VersionRank(r.tls->version);
    r.legacy = rank >= 0 && rank < kRankTls12;
    if (r.legacy) fs |= FindingBit(Finding::kLegacyTlsNegotiated);
    if (rank >= kRankTls12 && offered_old) fs |= FindingBit(Finding::kClientAcceptsLegacyTls);
    if (IsWeakCipher(r.tls->cipher_suite)) fs |= FindingBit(Finding::kWeakCipher);
  } else if (r.client_hello) {
    r.legacy = offered_rank >= 0 && offered_rank < kRankTls12;
    if (r.legacy) fs |= FindingBit(Finding::kLegacyTlsOfferedOnly);
  }
  if (r.outcome == Outcome::kPlaintext) fs |= FindingBit(Finding::kPlaintextSession);
  if (r.pg.ssl_response == 'N') fs |= FindingBit(Finding::kSslRefusedByServer);
  if (r.outcome == Outcome::kTlsFailed) fs |= FindingBit(Finding::kHandshakeFailed);
  if (r.certificate) {
    const auto now_s = static_cast<int64_t>(r.ts_us / 1000000);
    if (now_s > r.certificate->not_after || now_s < r.certificate->not_before) {
      fs |= FindingBit(Finding::kCertificateExpired);
    }
    const auto& kt = r.certificate->key_type;
    const int bits = r.certificate->key_bits;
    if (((kt == "RSA" || kt == "DSA") && bits < 2048) || (kt == "EC" && bits < 224)) {
      fs |= FindingBit(Finding::kWeakCertificateKey);
    }
  }
  r.findings = fs;
}

}  // namespace pgtlsmon::parser
