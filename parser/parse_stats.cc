#include "parser/parse_stats.h"

namespace pgtlsmon::parser {

std::string_view StageName(Stage s) {
  switch (s) {
    case Stage::kLink:
      return "link";
    case Stage::kIp:
      return "ip";
    case Stage::kTunnel:
      return "tunnel";
    case Stage::kTcp:
      return "tcp";
    case Stage::kPostgres:
      return "postgres";
    case Stage::kTls:
      return "tls";
    case Stage::kCertificate:
      return "certificate";
    case Stage::kCount:
      break;
  }
  return "unknown";
}

std::string_view ReasonName(Reason r) {
  switch (r) {
    case Reason::kTruncated:
      return "truncated";
    case Reason::kBadLength:
      return "bad_length";
    case Reason::kBadHeader:
      return "bad_header";
    case Reason::kUnsupportedLink:
      return "unsupported_link";
    case Reason::kIpFragment:
      return "ip_fragment";
    case Reason::kUnexpectedSslReply:
      return "unexpected_ssl_reply";
    case Reason::kCapExceeded:
      return "cap_exceeded";
    case Reason::kHole:
      return "hole";
    case Reason::kBadRecord:
      return "bad_record";
    case Reason::kBadHandshake:
      return "bad_handshake";
    case Reason::kBadCertificate:
      return "bad_certificate";
    case Reason::kUnsupportedProtocol:
      return "unsupported_protocol";
    case Reason::kTooDeep:
      return "too_deep";
    case Reason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace pgtlsmon::parser
