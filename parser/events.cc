#include "parser/events.h"

#include <arpa/inet.h>

namespace pgtlsmon::parser {

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kTls:
      return "tls";
    case Outcome::kTlsFailed:
      return "tls_failed";
    case Outcome::kIncomplete:
      return "incomplete";
    case Outcome::kGssenc:
      return "gssenc";
    case Outcome::kPlaintext:
      return "plaintext";
    case Outcome::kCancel:
      return "cancel";
    case Outcome::kSslRefused:
      return "ssl_refused";
  }
  return "unknown";
}

std::string_view FindingName(Finding f) {
  switch (f) {
    case Finding::kLegacyTlsNegotiated:
      return "legacy_tls_negotiated";
    case Finding::kLegacyTlsOfferedOnly:
      return "legacy_tls_offered_only";
    case Finding::kClientAcceptsLegacyTls:
      return "client_accepts_legacy_tls";
    case Finding::kWeakCipher:
      return "weak_cipher";
    case Finding::kPlaintextSession:
      return "plaintext_session";
    case Finding::kSslRefusedByServer:
      return "ssl_refused_by_server";
    case Finding::kHandshakeFailed:
      return "handshake_failed";
    case Finding::kSslInjectionBytes:
      return "ssl_injection_bytes";
    case Finding::kCertificateExpired:
      return "certificate_expired";
    case Finding::kWeakCertificateKey:
      return "weak_certificate_key";
    case Finding::kFailsWhatIf:
      return "fails_what_if";
    case Finding::kCount:
      break;
  }
  return "unknown";
}

std::string FormatIp(const IpAddress& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  // inet_ntop follows RFC 5952 (lower case, longest zero run compressed).
  if (inet_ntop(ip.is_v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "?";
  }
  return buf;
}

std::string_view TunnelTypeName(TunnelType t) {
  switch (t) {
    case TunnelType::kVxlan:
      return "vxlan";
    case TunnelType::kGeneve:
      return "geneve";
    case TunnelType::kGre:
      return "gre";
    case TunnelType::kErspan:
      return "erspan";
    case TunnelType::kIpip:
      return "ipip";
    case TunnelType::kNone:
    case TunnelType::kCount:
      break;
  }
  return "none";
}

}  // namespace pgtlsmon::parser
