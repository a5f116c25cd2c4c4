// parser/outcome.h: what a final record says (session-record.md, "Outcome: the first rule
// that applies", `legacy`, "Findings"), from what its connection showed.
#pragma once

#include "parser/events.h"

namespace pgtlsmon::parser {

// Connection facts that are not fields of the record.
struct ConnectionFacts {
  bool fatal_alert = false;  // a fatal alert travelled in clear
  bool closed = false;       // a FIN or RST was seen
};

// Fills r->outcome, r->legacy, r->client_hello_max_version and r->findings (keeping an
// ssl_injection_bytes finding already set). `hrr`: the HelloRetryRequest, reported as the
// ServerHello when no ServerHello followed it.
void ApplyOutcomeRules(SessionRecord* r, std::optional<ServerHelloInfo>* hrr,
                       const ConnectionFacts& facts);

}  // namespace pgtlsmon::parser
