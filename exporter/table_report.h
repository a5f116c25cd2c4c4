// exporter/table_report.h: the replay's default output, a table a person reads.
//
// One row per session as records arrive (streamed, so a long capture shows progress), then a
// summary: sessions by outcome and by negotiated version, the legacy clients and the plaintext
// clients. Lines fit in 120 columns: a row is one line of columns (time, client IP, server,
// outcome, version, legacy, cipher), then indented lines for SNI, user and database, the first
// fatal alert and the findings (each prefixed "!") when there are any.
// Strings from the wire (SNI, user names) are made terminal-safe. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "parser/events.h"

namespace pgtlsmon::exporter {

class TableReport {
 public:
  struct Options {
    size_t max_summary_clients = 10000;  // legacy/plaintext clients listed; the rest counted
    // With --what-if: each policy's name and settings, in order, and the OpenSSL security level
    // assumed; the summary then ends with a "What if" section per policy.
    std::vector<std::pair<std::string, std::string>> what_if_policies;
    int what_if_security_level = -1;
  };

  // Writes to `out` (not owned; must outlive this object).
  explicit TableReport(FILE* out);
  TableReport(FILE* out, Options options);
  // Appends to `*out` (not owned).
  explicit TableReport(std::string* out);
  TableReport(std::string* out, Options options);

  // Writes the header before the first row, then `r`'s row; updates the summary.
  void OnRecord(const parser::SessionRecord& r);
  // Writes the summary. Call once, after the last record.
  void Finish();

  // One session as a row (with wrapped continuation lines), each line ending '\n'.
  static std::string FormatRow(const parser::SessionRecord& r);
  static std::string Header();

 private:
  struct ClientSummary {
    uint64_t sessions = 0;
    std::set<std::string> details;  // versions (legacy) or user names (plaintext)
  };

  // One client's sessions under one what-if policy.
  struct WhatIfClient {
    uint64_t sessions = 0;
    uint64_t failing = 0;
    uint64_t changing = 0;
    std::set<std::string> who;       // application_name / user where known
    std::set<std::string> failures;  // "protocol_version (now TLSv1.1)"
    std::set<std::string> changes;   // "TLSv1.2 ECDHE_RSA_... -> TLSv1.3 AES_256_GCM_SHA384"
  };
  struct WhatIfSummary {
    std::map<std::string, WhatIfClient> clients;
    uint64_t overflow_sessions = 0;
    uint64_t sessions = 0;
    uint64_t failing = 0;
    uint64_t changing = 0;
    uint64_t unpredictable = 0;
    std::set<std::string> keys_seen;     // certificate keys learnt from the capture
    std::set<std::string> keys_assumed;  // default keys used where none was seen
  };

  void Write(std::string_view s);
  void CountWhatIf(const parser::SessionRecord& r);
  void FinishWhatIf(std::string* s) const;
  static void AddClient(std::map<std::string, ClientSummary>* m, uint64_t* overflow, size_t cap,
                        const std::string& client, std::string detail);

  FILE* file_ = nullptr;
  std::string* string_ = nullptr;
  Options options_;
  bool header_written_ = false;
  uint64_t total_ = 0;
  std::map<parser::Outcome, uint64_t> by_outcome_;
  std::map<uint32_t, uint64_t> by_version_;  // version code; kNoVersion for none
  std::map<std::string, ClientSummary> legacy_clients_;
  std::map<std::string, ClientSummary> plaintext_clients_;
  uint64_t legacy_overflow_ = 0;  // sessions from clients past the cap
  uint64_t plaintext_overflow_ = 0;
  std::vector<WhatIfSummary> what_if_;  // one per policy
};

}  // namespace pgtlsmon::exporter
