// exporter/exposition.h: what a scrape gets back, as the scraper asked for it. Content
// negotiation (Accept: OpenMetrics or the Prometheus text format; Accept-Encoding: gzip), the
// OpenMetrics 1.0 text serializer (prometheus-cpp 1.0 has only the 0.0.4 text format) and gzip.
// Pure functions of their inputs: fuzzed by tests/fuzz/fuzz_web_request.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
struct MetricFamily;
}  // namespace prometheus

namespace pgtlsmon::exporter {

inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

// True when an Accept header ranks application/openmetrics-text (version 1.0.0, or no version)
// above the Prometheus text format, as Prometheus 2.x sends it.
bool WantsOpenMetrics(std::string_view accept);

// True when an Accept-Encoding header accepts gzip (q > 0; "*" counts).
bool AcceptsGzip(std::string_view accept_encoding);

// OpenMetrics 1.0 text format, ending with "# EOF". Counter families named *_total are
// announced without the suffix, as the format requires.
std::string SerializeOpenMetrics(const std::vector<prometheus::MetricFamily>& families);

// A gzip stream (RFC 1952) of `data`.
absl::StatusOr<std::string> Gzip(std::string_view data);

}  // namespace pgtlsmon::exporter
