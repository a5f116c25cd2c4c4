#include "exporter/record_json.h"

#include <array>
#include <chrono>
#include <cstddef>

#include "exporter/text_util.h"
#include "parser/text.h"
#include "parser/tls_names.h"

namespace pgtlsmon::exporter {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

void AppendDigits(uint64_t v, int width, std::string* out) {
  std::array<char, 24> buf{};
  size_t n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int pad = width - static_cast<int>(n); pad > 0; --pad) out->push_back('0');
  while (n > 0) out->push_back(buf[--n]);
}

struct CivilTime {
  int64_t year;
  unsigned month, day, hour, minute, second;
};

// The calendar is std::chrono's (C++20 year_month_day). Its years stop at +-32767, so the date
// is taken within its 400-year Gregorian cycle (146097 days, the calendar's period) and the
// cycles added back: every int64 second count gets its date.
CivilTime ToCivil(int64_t unix_s) {
  using namespace std::chrono;
  constexpr int64_t kCycleDays = 146097;
  constexpr int64_t kCycleYears = 400;
  int64_t day_count = unix_s / 86400;
  int64_t secs = unix_s % 86400;
  if (secs < 0) {
    secs += 86400;
    --day_count;
  }
  int64_t cycles = day_count / kCycleDays;
  int64_t in_cycle = day_count % kCycleDays;
  if (in_cycle < 0) {
    in_cycle += kCycleDays;
    --cycles;
  }
  const year_month_day ymd{sys_days{days{in_cycle}}};
  const hh_mm_ss<seconds> hms{seconds{secs}};
  CivilTime t{};
  t.year = int64_t{static_cast<int>(ymd.year())} + cycles * kCycleYears;
  t.month = static_cast<unsigned>(ymd.month());
  t.day = static_cast<unsigned>(ymd.day());
  t.hour = static_cast<unsigned>(hms.hours().count());
  t.minute = static_cast<unsigned>(hms.minutes().count());
  t.second = static_cast<unsigned>(hms.seconds().count());
  return t;
}

void AppendCivil(const CivilTime& t, std::string* out) {
  if (t.year < 0) {
    out->push_back('-');
    AppendDigits(static_cast<uint64_t>(-t.year), 4, out);
  } else {
    AppendDigits(static_cast<uint64_t>(t.year), 4, out);
  }
  out->push_back('-');
  AppendDigits(t.month, 2, out);
  out->push_back('-');
  AppendDigits(t.day, 2, out);
  out->push_back('T');
  AppendDigits(t.hour, 2, out);
  out->push_back(':');
  AppendDigits(t.minute, 2, out);
  out->push_back(':');
  AppendDigits(t.second, 2, out);
}

// Appends a quoted string whose content is known to need no escaping (names, hex codes).
void AppendPlain(std::string_view s, std::string* out) {
  out->push_back('"');
  out->append(s);
  out->push_back('"');
}

// A code as a quoted "0x..." string of `digits` hex digits.
void AppendHexCode(uint32_t v, int digits, std::string* out) {
  out->append("\"0x");
  parser::AppendHex(v, digits, out);
  out->push_back('"');
}

void AppendCode(uint16_t v, std::string* out) { AppendHexCode(v, 4, out); }

void AppendVersion(uint16_t v, std::string* out) { AppendPlain(parser::VersionName(v), out); }

void AppendBool(bool b, std::string* out) { out->append(b ? "true" : "false"); }

void AppendUint(uint64_t v, std::string* out) { AppendDigits(v, 1, out); }

void AppendInt(int64_t v, std::string* out) {
  if (v < 0) {
    out->push_back('-');
    AppendDigits(static_cast<uint64_t>(0) - static_cast<uint64_t>(v), 1, out);
  } else {
    AppendDigits(static_cast<uint64_t>(v), 1, out);
  }
}

void AppendOptString(const std::optional<std::string>& s, std::string* out) {
  if (s) {
    AppendJsonString(*s, out);
  } else {
    out->append("null");
  }
}

// A response byte of 0 means none seen.
void AppendResponse(char c, std::string* out) {
  if (c == 0) {
    out->append("null");
  } else {
    AppendJsonString(std::string_view(&c, 1), out);
  }
}

void AppendCodeList(const std::vector<uint16_t>& v, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out->append(", ");
    AppendCode(v[i], out);
  }
  out->push_back(']');
}

void AppendVersionList(const std::vector<uint16_t>& v, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out->append(", ");
    AppendVersion(v[i], out);
  }
  out->push_back(']');
}

void AppendStringList(const std::vector<std::string>& v, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out->append(", ");
    AppendJsonString(v[i], out);
  }
  out->push_back(']');
}

void AppendEndpoint(const parser::Endpoint& e, std::string* out) {
  out->append("{\"ip\": ");
  AppendPlain(parser::FormatIp(e.ip), out);
  out->append(", \"port\": ");
  AppendUint(e.port, out);
  out->push_back('}');
}

void AppendPg(const parser::PgInfo& pg, std::string* out) {
  out->append("{\"ssl_request\": ");
  AppendBool(pg.ssl_request, out);
  out->append(", \"ssl_response\": ");
  AppendResponse(pg.ssl_response, out);
  out->append(", \"gssenc_request\": ");
  AppendBool(pg.gssenc_request, out);
  out->append(", \"gssenc_response\": ");
  AppendResponse(pg.gssenc_response, out);
  out->append(", \"cancel_request\": ");
  AppendBool(pg.cancel_request, out);
  out->append(", \"direct_tls\": ");
  AppendBool(pg.direct_tls, out);
  out->append(", \"startup\": ");
  if (!pg.startup) {
    out->append("null}");
    return;
  }
  const parser::StartupInfo& s = *pg.startup;
  out->append(R"({"protocol": ")");
  AppendUint(s.protocol_major, out);
  out->push_back('.');
  AppendUint(s.protocol_minor, out);
  out->append(R"(", "user": )");
  AppendOptString(s.user, out);
  out->append(", \"database\": ");
  AppendOptString(s.database, out);
  out->append(", \"application_name\": ");
  AppendOptString(s.application_name, out);
  out->append("}}");
}

void AppendClientHello(const parser::ClientHelloInfo& ch, std::string* out) {
  out->append("{\"record_version\": ");
  AppendVersion(ch.record_version, out);
  out->append(", \"version\": ");
  AppendVersion(ch.version, out);
  out->append(", \"supported_versions\": ");
  AppendVersionList(ch.supported_versions, out);
  out->append(", \"cipher_suites\": ");
  AppendCodeList(ch.cipher_suites, out);
  out->append(", \"extensions\": ");
  AppendCodeList(ch.extensions, out);
  out->append(", \"groups\": ");
  AppendCodeList(ch.groups, out);
  out->append(", \"sni\": ");
  AppendOptString(ch.sni, out);
  out->append(", \"alpn\": ");
  AppendStringList(ch.alpn, out);
  out->append(", \"ja3\": ");
  // Wireshark computes no JA3 for an SSLv2-format hello: null, as in its records.
  if (ch.ja3.empty()) {
    out->append("null");
  } else {
    AppendJsonString(ch.ja3, out);
  }
  out->append(", \"ja4\": ");
  AppendJsonString(ch.ja4, out);
  if (ch.sslv2_format) {
    out->append(", \"sslv2_cipher_specs\": [");
    for (size_t i = 0; i < ch.sslv2_cipher_specs.size(); ++i) {
      if (i != 0) out->append(", ");
      AppendHexCode(ch.sslv2_cipher_specs[i] & 0xffffffu, 6, out);
    }
    out->push_back(']');
  }
  out->push_back('}');
}

void AppendServerHello(const parser::ServerHelloInfo& sh, std::string* out) {
  out->append("{\"version\": ");
  AppendVersion(sh.version, out);
  out->append(", \"selected_version\": ");
  if (sh.selected_version) {
    AppendVersion(*sh.selected_version, out);
  } else {
    out->append("null");
  }
  out->append(", \"cipher_suite\": ");
  AppendCode(sh.cipher_suite, out);
  out->append(", \"hello_retry_request\": ");
  AppendBool(sh.hello_retry_request, out);
  out->append(", \"alpn\": ");
  AppendOptString(sh.alpn, out);
  out->append(", \"ja3s\": ");
  AppendJsonString(sh.ja3s, out);
  out->push_back('}');
}

void AppendTls(const parser::NegotiatedTls& tls, std::string* out) {
  out->append("{\"version\": ");
  AppendVersion(tls.version, out);
  out->append(", \"cipher_suite\": ");
  AppendCode(tls.cipher_suite, out);
  out->append(", \"cipher\": ");
  // Unassigned suites keep their hex code, as unknown versions do.
  const std::string_view name = parser::CipherName(tls.cipher_suite);
  if (name.empty()) {
    AppendCode(tls.cipher_suite, out);
  } else {
    AppendJsonString(name, out);
  }
  out->push_back('}');
}

void AppendAlerts(const std::vector<parser::AlertInfo>& alerts, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < alerts.size(); ++i) {
    const parser::AlertInfo& a = alerts[i];
    if (i != 0) out->append(", ");
    out->append("{\"from\": ");
    out->append(a.from_client ? "\"client\"" : "\"server\"");
    out->append(", \"level\": ");
    const std::string_view level = parser::AlertLevelName(a.level);
    if (level.empty()) {  // neither warning nor fatal: its number, as text like descriptions
      out->push_back('"');
      AppendUint(a.level, out);
      out->push_back('"');
    } else {
      AppendPlain(level, out);
    }
    out->append(", \"description\": ");
    AppendJsonString(parser::AlertName(a.description), out);
    out->push_back('}');
  }
  out->push_back(']');
}

void AppendCertificate(const parser::CertificateInfo& c, std::string* out) {
  out->append("{\"subject\": ");
  AppendJsonString(c.subject, out);
  out->append(", \"issuer\": ");
  AppendJsonString(c.issuer, out);
  out->append(R"(, "not_before": ")");
  AppendRfc3339Seconds(c.not_before, out);
  out->append(R"(", "not_after": ")");
  AppendRfc3339Seconds(c.not_after, out);
  out->append(R"(", "key_type": )");
  AppendJsonString(c.key_type, out);
  out->append(", \"key_bits\": ");
  AppendInt(c.key_bits, out);
  out->append(", \"signature_algorithm\": ");
  AppendJsonString(c.signature_algorithm, out);
  out->push_back('}');
}

// session-record.md "What if": a prediction OpenSSL could not make (an incomplete hello) is
// null, like a connection without a ClientHello.
void AppendWhatIf(const parser::WhatIfPrediction* p, std::string* out) {
  if (p == nullptr || p->outcome == parser::Outcome::kUnknown) {
    out->append("null");
    return;
  }
  out->append("{\"outcome\": ");
  AppendPlain(parser::OutcomeName(p->outcome), out);
  out->append(", \"version\": ");
  if (p->version != 0) {
    AppendVersion(p->version, out);
  } else {
    out->append("null");
  }
  out->append(", \"cipher_suite\": ");
  if (p->version != 0) {
    AppendCode(p->cipher_suite, out);
  } else {
    out->append("null");
  }
  out->append(", \"reason\": ");
  if (!p->reason.empty()) {
    AppendPlain(p->reason, out);
  } else {
    out->append("null");
  }
  out->push_back('}');
}

void AppendFindings(uint32_t findings, std::string* out) {
  out->push_back('[');
  bool first = true;
  for (unsigned i = 0; i < static_cast<unsigned>(parser::Finding::kCount); ++i) {
    const auto f = static_cast<parser::Finding>(i);
    if ((findings & parser::FindingBit(f)) == 0) continue;
    if (!first) out->append(", ");
    first = false;
    AppendPlain(parser::FindingName(f), out);
  }
  out->push_back(']');
}

// `, "tunnel": {...}` on tunnelled connections only (the field is absent on bare ones).
void AppendTunnel(const std::optional<parser::TunnelInfo>& t, std::string* out) {
  if (!t) return;
  out->append(R"(, "tunnel": {"type": )");
  AppendPlain(parser::TunnelTypeName(t->type), out);
  out->append(", \"id\": ");
  if (t->has_id) {
    AppendUint(t->id, out);
  } else {
    out->append("null");
  }
  out->append(", \"outer_src\": ");
  AppendPlain(parser::FormatIp(t->outer_src), out);
  out->append(", \"outer_dst\": ");
  AppendPlain(parser::FormatIp(t->outer_dst), out);
  out->push_back('}');
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);  // 0: not valid UTF-8
      if (len != 0) {
        i += len;
        continue;
      }
    }
    out->append(s.substr(run, i - run));
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          parser::AppendHex(c, 2, out);
        } else {
          out->append(kReplacement);  // a byte outside valid UTF-8
        }
    }
    ++i;
    run = i;
  }
  out->append(s.substr(run));
  out->push_back('"');
}

void AppendRfc3339Micros(uint64_t unix_us, std::string* out) {
  AppendCivil(ToCivil(static_cast<int64_t>(unix_us / 1000000)), out);
  out->push_back('.');
  AppendDigits(unix_us % 1000000, 6, out);
  out->push_back('Z');
}

void AppendRfc3339Seconds(int64_t unix_s, std::string* out) {
  AppendCivil(ToCivil(unix_s), out);
  out->push_back('Z');
}

void AppendRecordJson(const parser::SessionRecord& r, std::string* out) {
  out->append(R"({"ts": ")");
  AppendRfc3339Micros(r.ts_us, out);
  out->append(R"(", "client": )");
  AppendEndpoint(r.client, out);
  out->append(", \"server\": ");
  AppendEndpoint(r.server, out);
  out->append(", \"pg\": ");
  AppendPg(r.pg, out);
  out->append(", \"client_hello\": ");
  if (r.client_hello) {
    AppendClientHello(*r.client_hello, out);
  } else {
    out->append("null");
  }
  out->append(", \"server_hello\": ");
  if (r.server_hello) {
    AppendServerHello(*r.server_hello, out);
  } else {
    out->append("null");
  }
  out->append(", \"tls\": ");
  if (r.tls) {
    AppendTls(*r.tls, out);
  } else {
    out->append("null");
  }
  out->append(", \"alerts\": ");
  AppendAlerts(r.alerts, out);
  out->append(", \"certificate\": ");
  if (r.certificate) {
    AppendCertificate(*r.certificate, out);
  } else {
    out->append("null");
  }
  out->append(", \"outcome\": ");
  AppendPlain(parser::OutcomeName(r.outcome), out);
  out->append(", \"legacy\": ");
  AppendBool(r.legacy, out);
  if (r.what_if) {
    // The first policy fills what_if; with several, what_if_policies has each by name.
    out->append(", \"what_if\": ");
    AppendWhatIf(r.what_if->empty() ? nullptr : &r.what_if->front(), out);
    if (r.what_if->size() > 1) {
      out->append(", \"what_if_policies\": {");
      for (size_t i = 0; i < r.what_if->size(); ++i) {
        if (i != 0) out->append(", ");
        AppendJsonString((*r.what_if)[i].policy, out);
        out->append(": ");
        AppendWhatIf(&(*r.what_if)[i], out);
      }
      out->push_back('}');
    }
  }
  out->append(", \"findings\": ");
  AppendFindings(r.findings, out);
  AppendTunnel(r.tunnel, out);
  out->append("}\n");
}

}  // namespace pgtlsmon::exporter
