#include "exporter/table_report.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "exporter/record_json.h"
#include "exporter/text_util.h"
#include "parser/tls_names.h"

namespace pgtlsmon::exporter {
namespace {

constexpr size_t kLineWidth = 120;
constexpr uint32_t kNoVersion = 0x10000;

// Column widths: TIME CLIENT SERVER OUTCOME VERSION LEG, then the cipher (at most 38 wide in
// its short form); the other details follow on indented lines.
constexpr size_t kTimeW = 19;
constexpr size_t kClientW = 15;
constexpr size_t kServerW = 21;
constexpr size_t kOutcomeW = 11;
constexpr size_t kVersionW = 7;
constexpr size_t kLegacyW = 3;
constexpr size_t kContinuationCol = kTimeW + 1;  // details lines start under CLIENT

constexpr size_t kSummaryClientW = 39;  // the longest IPv6 address

// Display width of UTF-8 text, counting code points (good enough for a table).
size_t Width(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

// Cuts (terminal-safe) text to `width` code points, the last three being "...".
std::string FitWidth(const std::string& s, size_t width) {
  std::string out;
  size_t n = 0;
  for (const char c : s) {
    const bool starts_char = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts_char && ++n > width - 3) break;
    out.push_back(c);
  }
  out.append("...");
  return out;
}

void Cell(std::string* line, std::string_view text, size_t width) {
  line->append(text);
  const size_t w = Width(text);
  if (w < width) line->append(width - w, ' ');
  line->push_back(' ');
}

void RightCell(std::string* line, std::string_view text, size_t width) {
  const size_t w = Width(text);
  if (w < width) line->append(width - w, ' ');
  line->append(text);
  line->push_back(' ');
}

// "2022-12-08 17:22:54" (UTC; the JSON output carries the microseconds).
std::string TimeText(uint64_t ts_us) {
  std::string t;
  AppendRfc3339Seconds(static_cast<int64_t>(ts_us / 1000000), &t);
  std::replace(t.begin(), t.end(), 'T', ' ');
  if (!t.empty() && t.back() == 'Z') t.pop_back();
  return t;
}

// The IANA name without its "TLS_" prefix and "_WITH", so that it fits the details column.
std::string ShortCipher(uint16_t suite) {
  const std::string_view name = parser::CipherName(suite);
  if (name.empty()) return parser::HexCode(suite);
  std::string s(name);
  if (absl::StartsWith(s, "TLS_")) s.erase(0, 4);
  return absl::StrReplaceAll(s, {{"_WITH_", "_"}});
}

std::vector<std::string> DetailTokens(const parser::SessionRecord& r) {
  std::vector<std::string> tokens;
  if (r.client_hello && r.client_hello->sni) {
    tokens.push_back(absl::StrCat("sni=", TerminalSafe(*r.client_hello->sni, 80)));
  }
  if (r.pg.startup) {
    const parser::StartupInfo& s = *r.pg.startup;
    if (s.user) tokens.push_back(absl::StrCat("user=", TerminalSafe(*s.user, 40)));
    if (s.database) tokens.push_back(absl::StrCat("db=", TerminalSafe(*s.database, 40)));
  }
  for (const parser::AlertInfo& a : r.alerts) {
    if (a.level == 2) {
      tokens.push_back(absl::StrCat("alert=", parser::AlertName(a.description)));
      break;
    }
  }
  for (unsigned i = 0; i < static_cast<unsigned>(parser::Finding::kCount); ++i) {
    const auto f = static_cast<parser::Finding>(i);
    if (r.has_finding(f)) tokens.push_back(absl::StrCat("!", std::string(parser::FindingName(f))));
  }
  return tokens;
}

std::string OfferedVersionText(const parser::SessionRecord& r) {
  if (r.tls) return parser::VersionName(r.tls->version);
  if (r.client_hello_max_version != 0) {
    return absl::StrCat(parser::VersionName(r.client_hello_max_version), " (offered)");
  }
  return "none";
}

std::string Join(const std::set<std::string>& items, size_t max_width) {
  std::string s;
  for (const std::string& item : items) {
    if (!s.empty()) s.append(", ");
    s.append(item);
  }
  return TerminalSafe(s, max_width);
}

}  // namespace

TableReport::TableReport(FILE* out) : TableReport(out, Options()) {}
TableReport::TableReport(FILE* out, Options options)
    : file_(out), options_(std::move(options)), what_if_(options_.what_if_policies.size()) {}
TableReport::TableReport(std::string* out) : TableReport(out, Options()) {}
TableReport::TableReport(std::string* out, Options options)
    : string_(out), options_(std::move(options)), what_if_(options_.what_if_policies.size()) {}

void TableReport::Write(std::string_view s) {
  if (string_ != nullptr) {
    string_->append(s);
  } else if (file_ != nullptr) {
    fwrite(s.data(), 1, s.size(), file_);
  }
}

std::string TableReport::Header() {
  std::string line;
  Cell(&line, "TIME (UTC)", kTimeW);
  Cell(&line, "CLIENT", kClientW);
  Cell(&line, "SERVER", kServerW);
  Cell(&line, "OUTCOME", kOutcomeW);
  Cell(&line, "VERSION", kVersionW);
  Cell(&line, "LEG", kLegacyW);
  line.append("CIPHER\n");
  line.append(kContinuationCol, ' ');
  line.append("sni=SNI user=USER db=DATABASE alert=FIRST_FATAL_ALERT !FINDING ...\n");
  return line;
}

std::string TableReport::FormatRow(const parser::SessionRecord& r) {
  std::string line;
  Cell(&line, TimeText(r.ts_us), kTimeW);
  Cell(&line, parser::FormatIp(r.client.ip), kClientW);
  Cell(&line, FormatEndpoint(r.server), kServerW);
  Cell(&line, parser::OutcomeName(r.outcome), kOutcomeW);
  Cell(&line, r.tls ? parser::VersionName(r.tls->version) : std::string("-"), kVersionW);
  Cell(&line, r.legacy ? "yes" : "-", kLegacyW);
  if (r.tls) line.append(ShortCipher(r.tls->cipher_suite));

  // SNI, user, alert and findings go on continuation lines under the CLIENT column, wrapped
  // at token boundaries.
  size_t col = kLineWidth;  // forces a new line before the first token
  for (std::string& token : DetailTokens(r)) {
    if (Width(token) > kLineWidth - kContinuationCol) {
      token = FitWidth(token, kLineWidth - kContinuationCol);
    }
    const size_t w = Width(token);
    if (col + 1 + w > kLineWidth) {
      while (!line.empty() && line.back() == ' ') line.pop_back();
      line.push_back('\n');
      line.append(kContinuationCol, ' ');
      line.append(token);
      col = kContinuationCol + w;
    } else {
      line.push_back(' ');
      line.append(token);
      col += 1 + w;
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  line.push_back('\n');
  return line;
}

void TableReport::AddClient(std::map<std::string, ClientSummary>* m, uint64_t* overflow, size_t cap,
                            const std::string& client, std::string detail) {
  auto it = m->find(client);
  if (it == m->end()) {
    if (m->size() >= cap) {
      ++*overflow;
      return;
    }
    it = m->emplace(client, ClientSummary()).first;
  }
  ++it->second.sessions;
  if (!detail.empty() && it->second.details.size() < 32)
    it->second.details.insert(std::move(detail));
}

void TableReport::OnRecord(const parser::SessionRecord& r) {
  if (!header_written_) {
    Write(Header());
    header_written_ = true;
  }
  Write(FormatRow(r));

  ++total_;
  ++by_outcome_[r.outcome];
  ++by_version_[r.tls ? r.tls->version : kNoVersion];
  const std::string client = parser::FormatIp(r.client.ip);
  if (r.legacy) {
    AddClient(&legacy_clients_, &legacy_overflow_, options_.max_summary_clients, client,
              OfferedVersionText(r));
  }
  if (r.outcome == parser::Outcome::kPlaintext) {
    std::string user;
    if (r.pg.startup && r.pg.startup->user) user = TerminalSafe(*r.pg.startup->user, 40);
    AddClient(&plaintext_clients_, &plaintext_overflow_, options_.max_summary_clients, client,
              std::move(user));
  }
  if (r.what_if) CountWhatIf(r);
}

namespace {
std::string HandshakeText(uint16_t version, uint16_t suite) {
  return absl::StrCat(parser::VersionName(version), " ", ShortCipher(suite));
}
}  // namespace

void TableReport::CountWhatIf(const parser::SessionRecord& r) {
  if (!r.client_hello) return;  // nothing to predict from
  const std::string client = parser::FormatIp(r.client.ip);
  std::string who;
  if (r.pg.startup) {
    const parser::StartupInfo& st = *r.pg.startup;
    if (st.application_name && !st.application_name->empty()) {
      who = TerminalSafe(*st.application_name, 30);
    }
    if (st.user) absl::StrAppend(&who, who.empty() ? "" : " ", "user=", TerminalSafe(*st.user, 30));
  }
  for (size_t i = 0; i < what_if_.size(); ++i) {
    WhatIfSummary& w = what_if_[i];
    ++w.sessions;
    if (i >= r.what_if->size() || (*r.what_if)[i].outcome == parser::Outcome::kUnknown) {
      ++w.unpredictable;
      continue;
    }
    const parser::WhatIfPrediction& p = (*r.what_if)[i];
    (p.certificate_assumed ? w.keys_assumed : w.keys_seen).insert(p.certificate_key);
    const std::string now = r.tls ? HandshakeText(r.tls->version, r.tls->cipher_suite)
                                  : std::string(parser::OutcomeName(r.outcome));
    const bool fails = p.outcome == parser::Outcome::kTlsFailed;
    const bool changes =
        !fails && (!r.tls || r.tls->version != p.version || r.tls->cipher_suite != p.cipher_suite);
    auto it = w.clients.find(client);
    if (it == w.clients.end()) {
      if (w.clients.size() >= options_.max_summary_clients) {
        ++w.overflow_sessions;
        w.failing += fails ? 1 : 0;
        w.changing += changes ? 1 : 0;
        continue;
      }
      it = w.clients.emplace(client, WhatIfClient()).first;
    }
    WhatIfClient& c = it->second;
    ++c.sessions;
    if (!who.empty() && c.who.size() < 8) c.who.insert(who);
    if (fails) {
      ++c.failing;
      ++w.failing;
      if (c.failures.size() < 8) {
        const std::string_view why = !p.reason.empty() ? p.reason : p.detail;
        c.failures.insert(absl::StrCat(std::string(why.empty() ? "refused" : why), " (now ",
                                       r.tls ? parser::VersionName(r.tls->version) : now, ")"));
      }
    } else if (changes) {
      ++c.changing;
      ++w.changing;
      if (c.changes.size() < 8) {
        c.changes.insert(absl::StrCat(now, " -> ", HandshakeText(p.version, p.cipher_suite)));
      }
    }
  }
}

void TableReport::FinishWhatIf(std::string* s) const {
  for (size_t i = 0; i < what_if_.size(); ++i) {
    const WhatIfSummary& w = what_if_[i];
    const auto& [name, settings] = options_.what_if_policies[i];
    s->append(absl::StrCat("\nWhat if: policy ", TerminalSafe(name, 60),
                           "\n  Settings: ", TerminalSafe(settings, kLineWidth - 12), "\n"));
    std::string assumed = absl::StrCat("  Assumed: OpenSSL security level ",
                                       options_.what_if_security_level, "; server key ");
    if (!w.keys_seen.empty()) {
      absl::StrAppend(&assumed, Join(w.keys_seen, 40), " (seen in the capture)");
      if (!w.keys_assumed.empty()) {
        absl::StrAppend(&assumed, "; ", Join(w.keys_assumed, 40), " before one was seen");
      }
    } else if (!w.keys_assumed.empty()) {
      absl::StrAppend(&assumed, Join(w.keys_assumed, 40),
                      " assumed (none seen; set pgtlsmon.certificate_key)");
    }
    if (w.keys_seen.empty() && w.keys_assumed.empty()) assumed.append("none needed");
    s->append(assumed + "\n");
    uint64_t breaking = 0;
    uint64_t changing = 0;
    for (const auto& [client, c] : w.clients) {
      breaking += c.failing != 0 ? 1 : 0;
      changing += c.failing == 0 && c.changing != 0 ? 1 : 0;
    }
    std::string verdict = absl::StrCat(
        "  Verdict: ", breaking, " of ", w.clients.size(), w.overflow_sessions != 0 ? "+" : "",
        " clients would break (", w.failing, " of ", w.sessions, " sessions); ", changing,
        " more would negotiate another version or cipher");
    if (w.unpredictable != 0) {
      absl::StrAppend(&verdict, "; ", w.unpredictable,
                      " sessions not predictable (incomplete hello)");
    }
    s->append(verdict + "\n");
    const auto list = [&](std::string_view title, bool failing) {
      std::vector<const std::pair<const std::string, WhatIfClient>*> rows;
      for (const auto& e : w.clients) {
        if (failing ? e.second.failing != 0 : (e.second.failing == 0 && e.second.changing != 0)) {
          rows.push_back(&e);
        }
      }
      if (rows.empty()) return;
      std::stable_sort(rows.begin(), rows.end(), [&](const auto* a, const auto* b) {
        return failing ? a->second.failing > b->second.failing
                       : a->second.changing > b->second.changing;
      });
      s->append(absl::StrCat("  ", std::string(title), "\n"));
      std::string head = "    ";
      Cell(&head, "CLIENT", kSummaryClientW);
      RightCell(&head, "SESSIONS", 8);
      head.append("APPLICATION / USER");
      s->append(head + "\n");
      s->append(failing ? "      why it would fail (what it negotiates now)\n"
                        : "      now -> predicted\n");
      const size_t who_w = kLineWidth - (4 + kSummaryClientW + 1 + 8 + 1);
      for (const auto* e : rows) {
        const WhatIfClient& c = e->second;
        std::string line = "    ";
        Cell(&line, e->first, kSummaryClientW);
        RightCell(&line, absl::StrCat(failing ? c.failing : c.changing, "/", c.sessions), 8);
        line.append(c.who.empty() ? std::string("-") : Join(c.who, who_w));
        while (!line.empty() && line.back() == ' ') line.pop_back();
        s->append(line + "\n");
        for (const std::string& item : failing ? c.failures : c.changes) {
          s->append(absl::StrCat("      ", TerminalSafe(item, kLineWidth - 6), "\n"));
        }
      }
    };
    list("Would fail:", true);
    list("Would change:", false);
    if (w.overflow_sessions != 0) {
      s->append(absl::StrCat("  ... and ", w.overflow_sessions,
                             " more sessions from clients not listed\n"));
    }
  }
}

void TableReport::Finish() {
  std::string s;
  if (!header_written_) s.append("No sessions.\n");
  s.append(absl::StrCat("\nSESSIONS: ", total_, "\n"));

  s.append("\nBy outcome\n");
  for (const auto& [outcome, n] : by_outcome_) {
    std::string line = "  ";
    Cell(&line, parser::OutcomeName(outcome), 14);
    RightCell(&line, absl::StrCat(n), 10);
    line.back() = '\n';
    s.append(line);
  }

  s.append("\nBy negotiated version\n");
  std::vector<std::pair<uint32_t, uint64_t>> versions(by_version_.begin(), by_version_.end());
  std::stable_sort(versions.begin(), versions.end(), [](const auto& a, const auto& b) {
    auto rank = [](uint32_t v) {
      return v == kNoVersion ? -2 : parser::VersionRank(static_cast<uint16_t>(v));
    };
    return rank(a.first) > rank(b.first);  // newest first, unknown codes, then none
  });
  for (const auto& [v, n] : versions) {
    std::string line = "  ";
    Cell(&line,
         v == kNoVersion ? std::string("none") : parser::VersionName(static_cast<uint16_t>(v)), 14);
    RightCell(&line, absl::StrCat(n), 10);
    line.back() = '\n';
    s.append(line);
  }

  const auto client_table = [&](std::string_view title, std::string_view detail_title,
                                const std::map<std::string, ClientSummary>& m, uint64_t overflow) {
    s.append(
        absl::StrCat("\n", std::string(title), " (", m.size(), overflow != 0 ? "+" : "", ")\n"));
    if (m.empty()) {
      s.append("  none\n");
      return;
    }
    std::string head = "  ";
    Cell(&head, "CLIENT", kSummaryClientW);
    RightCell(&head, "SESSIONS", 8);
    head.append(detail_title);
    head.push_back('\n');
    s.append(head);
    // Most sessions first.
    std::vector<const std::pair<const std::string, ClientSummary>*> rows;
    rows.reserve(m.size());
    for (const auto& e : m) rows.push_back(&e);
    std::stable_sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
      return a->second.sessions > b->second.sessions;
    });
    const size_t detail_w = kLineWidth - (2 + kSummaryClientW + 1 + 8 + 1);
    for (const auto* e : rows) {
      std::string line = "  ";
      Cell(&line, e->first, kSummaryClientW);
      RightCell(&line, absl::StrCat(e->second.sessions), 8);
      line.append(Join(e->second.details, detail_w));
      while (!line.empty() && line.back() == ' ') line.pop_back();
      line.push_back('\n');
      s.append(line);
    }
    if (overflow != 0) {
      s.append(absl::StrCat("  ... and ", overflow, " more sessions from clients not listed\n"));
    }
  };
  client_table("Legacy clients (TLS older than TLSv1.2)", "VERSIONS", legacy_clients_,
               legacy_overflow_);
  client_table("Plaintext clients (StartupMessage in clear)", "USERS", plaintext_clients_,
               plaintext_overflow_);
  FinishWhatIf(&s);
  Write(s);
  if (file_ != nullptr) fflush(file_);
}

}  // namespace pgtlsmon::exporter
