#include "app/what_if.h"

#include <set>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fmt/core.h"

namespace pgtlsmon::app {

void WhatIfFlags::Add(CLI::App* cmd) {
  cmd->add_option("--what-if", policies,
                  "predict each connection's handshake under planned postgresql.conf settings: "
                  "SETTINGS (\"ssl_min_protocol_version = 'TLSv1.2'; ssl_ciphers = "
                  "'HIGH:!aNULL'\"), @FILE, or NAME=SETTINGS / NAME=@FILE to compare several "
                  "policies (repeat the flag; the first fills what_if)");
  cmd->add_option("--what-if-security-level", security_level,
                  "OpenSSL security level of the server assumed by --what-if (default: the "
                  "build default of the OpenSSL pgtlsmon runs with)")
      ->check(CLI::Range(0, 5));
}

absl::StatusOr<std::shared_ptr<whatif::Engine>> WhatIfFlags::Build(const char* command) const {
  if (policies.empty()) return std::shared_ptr<whatif::Engine>();
  std::vector<whatif::Policy> parsed;
  std::vector<std::string> ignored;
  std::set<std::string> names;
  for (size_t i = 0; i < policies.size(); ++i) {
    auto p = whatif::ParsePolicyArgument(
        policies[i], policies.size() == 1 ? "what_if" : absl::StrCat("policy", i + 1));
    if (!p.ok()) {
      return absl::Status(p.status().code(), absl::StrCat("--what-if: ", p.status().message()));
    }
    if (!names.insert(p->policy.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--what-if: policy name ", p->policy.name, " given twice"));
    }
    for (std::string& n : p->ignored) {
      if (std::find(ignored.begin(), ignored.end(), n) == ignored.end()) ignored.push_back(n);
    }
    parsed.push_back(std::move(p->policy));
  }
  if (!ignored.empty()) {
    fmt::print(stderr, "pgtlsmon {}: --what-if ignores parameters that do not change TLS: {}\n",
               command, absl::StrJoin(ignored, ", "));
  }
  whatif::EngineOptions o;
  o.security_level = security_level;
  auto e = whatif::Engine::Create(std::move(parsed), o);
  if (!e.ok()) {
    return absl::Status(e.status().code(), absl::StrCat("--what-if: ", e.status().message()));
  }
  return std::shared_ptr<whatif::Engine>(std::move(*e));
}

int WhatIfFlags::Apply(const char* command, std::shared_ptr<whatif::Engine>* engine,
                       parser::FlowTrackerConfig* tracker) const {
  auto built = Build(command);
  if (!built.ok()) {
    fmt::print(stderr, "pgtlsmon {}: {}\n", command, std::string(built.status().message()));
    return absl::IsNotFound(built.status()) ? 1 : 2;
  }
  *engine = std::move(*built);
  tracker->keep_client_hello = *engine != nullptr;
  return 0;
}

std::vector<std::pair<std::string, std::string>> PolicySummaries(const whatif::Engine& e) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const whatif::Policy& p : e.policies()) {
    std::vector<std::string> parts;
    if (p.min_version.empty()) {
      parts.emplace_back("no minimum version");
    } else {
      parts.push_back(absl::StrCat("min ", p.min_version));
    }
    if (!p.max_version.empty()) parts.push_back(absl::StrCat("max ", p.max_version));
    parts.push_back(absl::StrCat("ciphers '", p.ciphers, "'"));
    parts.emplace_back(p.prefer_server_ciphers ? "server order" : "client order");
    parts.push_back(p.groups ? absl::StrCat("groups ", *p.groups)
                             : absl::StrCat("curve ", p.ecdh_curve));
    if (p.tls13_ciphers) parts.push_back(absl::StrCat("TLS 1.3 suites '", *p.tls13_ciphers, "'"));
    if (p.certificate_key) {
      parts.push_back(absl::StrCat("certificate ", whatif::KeySpecName(*p.certificate_key)));
    }
    out.emplace_back(p.name, absl::StrJoin(parts, ", "));
  }
  return out;
}

}  // namespace pgtlsmon::app
