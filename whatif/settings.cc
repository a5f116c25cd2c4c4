#include "whatif/settings.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "parser/text.h"

namespace pgtlsmon::whatif {
namespace {

constexpr std::string_view kUnderstood[] = {
    "ssl_min_protocol_version",  "ssl_max_protocol_version", "ssl_ciphers",
    "ssl_prefer_server_ciphers", "ssl_ecdh_curve",           "ssl_groups",
    "ssl_tls13_ciphers",         "pgtlsmon.certificate_key",
};

std::string Lower(std::string_view v) {
  std::string s(v);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool Understood(std::string_view name) {
  for (std::string_view n : kUnderstood) {
    if (n == name) return true;
  }
  return false;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '$' ||
         c == '-';
}
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// PostgreSQL's parse_bool: on/off, true/false, yes/no, 1/0 and unique prefixes.
std::optional<bool> ParseBool(std::string_view v) {
  const std::string s = Lower(v);
  if (s.empty()) return std::nullopt;
  const auto prefix_of = [&](std::string_view word) { return word.substr(0, s.size()) == s; };
  if (s == "1") return true;
  if (s == "0") return false;
  if (prefix_of("true") || prefix_of("yes")) return true;
  if (prefix_of("false") || (s.size() >= 1 && prefix_of("no"))) return false;
  if (s.size() >= 2 && prefix_of("on")) return true;
  if (s.size() >= 2 && prefix_of("off")) return false;
  return std::nullopt;
}

// A cursor over the settings text.
class Lexer {
 public:
  explicit Lexer(std::string_view text) : t_(text) {}

  // Skips blanks and comments; stops at a statement end ('\n' or ';') without consuming it.
  void SkipBlanks() {
    while (i_ < t_.size()) {
      if (IsSpace(t_[i_])) {
        ++i_;
      } else if (t_[i_] == '#') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }
  bool AtEnd() const { return i_ >= t_.size(); }
  bool AtStatementEnd() const { return AtEnd() || t_[i_] == '\n' || t_[i_] == ';'; }
  void SkipStatementEnds() {
    while (true) {
      SkipBlanks();
      if (AtEnd() || (t_[i_] != '\n' && t_[i_] != ';')) return;
      if (t_[i_] == '\n') ++line_;
      ++i_;
    }
  }
  std::string_view Name() {
    const size_t start = i_;
    while (i_ < t_.size() && IsNameChar(t_[i_])) ++i_;
    return t_.substr(start, i_ - start);
  }
  bool Consume(char c) {
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  // A quoted or bare value; false with *err set when a quote is not closed.
  bool Value(std::string* out, std::string* err) {
    out->clear();
    if (Consume('\'')) {
      while (true) {
        if (AtEnd() || t_[i_] == '\n') {
          *err = "unterminated quoted string";
          return false;
        }
        const char c = t_[i_++];
        if (c == '\'') {
          if (Consume('\'')) {
            out->push_back('\'');
            continue;
          }
          return true;
        }
        if (c == '\\' && i_ < t_.size()) {
          const char e = t_[i_++];
          switch (e) {
            case 'b':
              out->push_back('\b');
              break;
            case 'f':
              out->push_back('\f');
              break;
            case 'n':
              out->push_back('\n');
              break;
            case 'r':
              out->push_back('\r');
              break;
            case 't':
              out->push_back('\t');
              break;
            default:
              out->push_back(e);
              break;
          }
          continue;
        }
        out->push_back(c);
      }
    }
    const size_t start = i_;
    while (i_ < t_.size() && !IsSpace(t_[i_]) && t_[i_] != '#' && t_[i_] != '\n' && t_[i_] != ';') {
      ++i_;
    }
    out->assign(t_.substr(start, i_ - start));
    return true;
  }
  int line() const { return line_; }

 private:
  std::string_view t_;
  size_t i_ = 0;
  int line_ = 1;
};

absl::Status Apply(std::string_view name, const std::string& value, Policy* p) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid value for parameter \"",
                                                   std::string(name), "\": \"", value, "\"",
                                                   std::string(why)));
  };
  if (name == "ssl_min_protocol_version" || name == "ssl_max_protocol_version") {
    if (!ProtocolVersionCode(value)) {
      return bad(" (expected TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 or '')");
    }
    (name == "ssl_min_protocol_version" ? p->min_version : p->max_version) = value;
  } else if (name == "ssl_ciphers") {
    p->ciphers = value;
  } else if (name == "ssl_prefer_server_ciphers") {
    const auto b = ParseBool(value);
    if (!b) return bad(" (expected on or off)");
    p->prefer_server_ciphers = *b;
  } else if (name == "ssl_ecdh_curve") {
    p->ecdh_curve = value;
  } else if (name == "ssl_groups") {
    p->groups = value;
  } else if (name == "ssl_tls13_ciphers") {
    p->tls13_ciphers = value;
  } else if (name == "pgtlsmon.certificate_key") {
    const auto k = ParseKeySpec(value);
    if (!k)
      return bad(" (expected rsa2048, rsa3072, rsa4096, ec256, ec384, ec521, ed25519, ed448)");
    p->certificate_key = *k;
  }
  return absl::OkStatus();
}

}  // namespace

std::string KeySpecName(const KeySpec& k) {
  switch (k.type) {
    case KeySpec::Type::kRsa:
      return absl::StrCat("rsa", k.bits);
    case KeySpec::Type::kEc:
      return absl::StrCat("ec", k.bits);
    case KeySpec::Type::kEd25519:
      return "ed25519";
    case KeySpec::Type::kEd448:
      return "ed448";
  }
  return "?";
}

std::optional<KeySpec> ParseKeySpec(std::string_view text) {
  const std::string s = Lower(text);
  if (s == "ed25519") return KeySpec{KeySpec::Type::kEd25519, 256};
  if (s == "ed448") return KeySpec{KeySpec::Type::kEd448, 456};
  int bits = 0;
  if (absl::StartsWith(s, "rsa") && absl::SimpleAtoi(s.substr(3), &bits) && bits >= 1024 &&
      bits <= 16384) {
    return KeySpec{KeySpec::Type::kRsa, bits};
  }
  if (absl::StartsWith(s, "ec") && absl::SimpleAtoi(s.substr(2), &bits) &&
      (bits == 256 || bits == 384 || bits == 521)) {
    return KeySpec{KeySpec::Type::kEc, bits};
  }
  return std::nullopt;
}

std::optional<uint16_t> ProtocolVersionCode(std::string_view name) {
  const std::string s = Lower(name);
  if (s.empty()) return 0;
  if (s == "tlsv1") return 0x0301;
  if (s == "tlsv1.1") return 0x0302;
  if (s == "tlsv1.2") return 0x0303;
  if (s == "tlsv1.3") return 0x0304;
  return std::nullopt;
}

absl::StatusOr<ParsedSettings> ParseSettings(std::string_view text) {
  ParsedSettings out;
  out.policy.source = std::string(text);
  std::set<std::string> ignored_seen;
  Lexer lx(text);
  std::string value;
  std::string err;
  while (true) {
    lx.SkipStatementEnds();
    if (lx.AtEnd()) break;
    const std::string name = Lower(lx.Name());
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("syntax error on line ", lx.line(), ": expected a parameter name"));
    }
    lx.SkipBlanks();
    lx.Consume('=');
    lx.SkipBlanks();
    if (!lx.Value(&value, &err)) {
      return absl::InvalidArgumentError(absl::StrCat("parameter \"", name, "\": ", err));
    }
    lx.SkipBlanks();
    if (!lx.AtStatementEnd()) {
      return absl::InvalidArgumentError(absl::StrCat("syntax error on line ", lx.line(),
                                                     " after parameter \"", name,
                                                     "\" (quote a value that contains spaces)"));
    }
    if (!Understood(name)) {
      if (ignored_seen.insert(name).second) out.ignored.push_back(name);
      continue;
    }
    if (auto st = Apply(name, value, &out.policy); !st.ok()) return st;
  }
  const auto min = ProtocolVersionCode(out.policy.min_version).value_or(0);
  const auto max = ProtocolVersionCode(out.policy.max_version).value_or(0);
  if (min != 0 && max != 0 && min > max) {
    return absl::InvalidArgumentError(
        R"("ssl_min_protocol_version" cannot be higher than "ssl_max_protocol_version")");
  }
  return out;
}

absl::StatusOr<ParsedSettings> ParsePolicyArgument(std::string_view arg,
                                                   std::string_view default_name) {
  std::string name(default_name);
  std::string_view rest = arg;
  // NAME=... when NAME is not a parameter and what follows is @FILE or settings of its own.
  if (const size_t eq = arg.find('='); eq != std::string_view::npos && eq > 0) {
    const std::string_view head = arg.substr(0, eq);
    const std::string_view tail = arg.substr(eq + 1);
    bool plain = true;
    for (char c : head) plain &= IsNameChar(c) && c != '$';
    const bool settings_follow =
        !tail.empty() &&
        (tail[0] == '@' || tail.find_first_of("= \t\n;") != std::string_view::npos);
    if (plain && !Understood(Lower(head)) && settings_follow &&
        std::ranges::find(head, '_') == head.end()) {
      name = std::string(head);
      rest = tail;
    }
  }
  std::string text;
  if (!rest.empty() && rest[0] == '@') {
    const std::string path(rest.substr(1));
    std::ifstream f(path, std::ios::binary);
    if (!f) {
      return absl::NotFoundError(
          absl::StrCat("cannot read ", path, ": ", parser::ErrnoText(errno)));
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  } else {
    text = std::string(rest);
  }
  auto parsed = ParseSettings(text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("policy ", name, ": ", parsed.status().message()));
  }
  parsed->policy.name = name;
  return parsed;
}

}  // namespace pgtlsmon::whatif
