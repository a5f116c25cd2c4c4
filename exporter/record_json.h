// exporter/record_json.h: a SessionRecord as one JSON line (../shared/spec/session-record.md).
//
// Hand-written for speed: it runs once per connection at replay speed and allocates nothing
// beyond growing `out` (and the short-string names from tls_names.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "parser/events.h"

namespace pgtlsmon::exporter {

// Appends `r` to `out` as one JSON object followed by '\n', keys in the spec's order.
// Strings are escaped per RFC 8259 (control characters as \u00XX); any byte that is not part of
// valid UTF-8 becomes U+FFFD, so the line is always valid JSON whatever the record holds.
void AppendRecordJson(const parser::SessionRecord& r, std::string* out);

// Building blocks, exposed for the table report and tests.

// Appends `s` as a quoted JSON string.
void AppendJsonString(std::string_view s, std::string* out);
// RFC 3339 UTC with microseconds: "2022-12-08T17:22:54.352851Z".
void AppendRfc3339Micros(uint64_t unix_us, std::string* out);
// RFC 3339 UTC with seconds: "2023-08-22T00:00:00Z" (negative times are before 1970).
void AppendRfc3339Seconds(int64_t unix_s, std::string* out);

}  // namespace pgtlsmon::exporter
