// whatif/settings.h: the planned server settings of `--what-if`, in postgresql.conf syntax.
//
// Pure text handling; whatif/engine.h checks the values OpenSSL judges (cipher strings, groups)
// when it builds the server context.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pgtlsmon::whatif {

// The server's certificate key assumed for predictions (session-record.md: "the certificate
// seen for that server in the capture, RSA when none was seen").
struct KeySpec {
  enum class Type { kRsa, kEc, kEd25519, kEd448 };
  Type type = Type::kRsa;
  int bits = 2048;  // RSA modulus bits; EC field bits (256, 384, 521)
  friend bool operator==(const KeySpec&, const KeySpec&) = default;
};
std::string KeySpecName(const KeySpec& k);  // "rsa2048", "ec256", "ed25519"
// "rsa2048", "rsa4096", "ec256", "ec384", "ec521", "ed25519", "ed448" (case-insensitive).
std::optional<KeySpec> ParseKeySpec(std::string_view text);

// One planned configuration. Unset fields take PostgreSQL 15-17's defaults.
struct Policy {
  std::string name;                                  // "what_if" when not named
  std::string min_version = "TLSv1.2";               // ssl_min_protocol_version; "" = none
  std::string max_version;                           // ssl_max_protocol_version; "" = none
  std::string ciphers = "HIGH:MEDIUM:+3DES:!aNULL";  // ssl_ciphers
  bool prefer_server_ciphers = true;                 // ssl_prefer_server_ciphers
  std::string ecdh_curve = "prime256v1";             // ssl_ecdh_curve
  std::optional<std::string> groups;                 // ssl_groups (PostgreSQL 18)
  std::optional<std::string> tls13_ciphers;          // ssl_tls13_ciphers (PostgreSQL 18)
  std::optional<KeySpec> certificate_key;  // pgtlsmon.certificate_key: overrides what is seen
  std::string source;                      // the settings text as given (for messages)
};

struct ParsedSettings {
  Policy policy;
  std::vector<std::string> ignored;  // other postgresql.conf parameters, in order, once each
};

// Parses postgresql.conf text: `name = value` or `name value`, one per line or separated by
// ';', `#` comments, values quoted with '...' ('' or \' for a quote) or bare words. Parameter
// names are case-insensitive; a later line wins. Errors name the parameter (or the line).
absl::StatusOr<ParsedSettings> ParseSettings(std::string_view text);

// One `--what-if` argument: SETTINGS, @FILE, NAME=SETTINGS or NAME=@FILE. NAME is a policy name
// ([A-Za-z0-9_.-]+, not a parameter understood here) followed by '=' and either '@' or a settings
// text with a parameter of its own. Reads FILE. `default_name` names an unnamed policy.
absl::StatusOr<ParsedSettings> ParsePolicyArgument(std::string_view arg,
                                                   std::string_view default_name);

// Maps "TLSv1".."TLSv1.3" (case-insensitive) to the wire code; 0 for "".
std::optional<uint16_t> ProtocolVersionCode(std::string_view name);

}  // namespace pgtlsmon::whatif
