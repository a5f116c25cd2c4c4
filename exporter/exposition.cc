#include "exporter/exposition.h"

#include <zlib.h>

#include <cmath>
#include <cstdlib>

#include "fmt/format.h"
#include "prometheus/metric_family.h"

namespace pgtlsmon::exporter {
namespace {

// (absl's string helpers take absl::string_view, which Debian's abseil does not alias to
// std::string_view; these few are written out.)
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t i = s.find(sep);
    out.push_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

// A q-value (RFC 9110: 0, 1, 0.5, at most three decimals); -1 when malformed.
double QValue(std::string_view v) {
  if (v.empty() || (v[0] != '0' && v[0] != '1')) return -1;
  double q = v[0] - '0';
  if (v.size() == 1) return q;
  if (v[1] != '.' || v.size() > 5) return -1;
  double scale = 0.1;
  for (char c : v.substr(2)) {
    if (c < '0' || c > '9') return -1;
    q += (c - '0') * scale;
    scale /= 10;
  }
  return q > 1 ? -1 : q;
}

// One element of an Accept or Accept-Encoding list: the token and its q (1 when absent, 0 for
// a malformed q, as a client that wrote garbage did not ask for it).
struct Ranked {
  std::string_view token;
  std::vector<std::pair<std::string_view, std::string_view>> params;
  double q = 1;
};

std::vector<Ranked> ParseList(std::string_view header) {
  std::vector<Ranked> out;
  for (std::string_view item : Split(header, ',')) {
    std::vector<std::string_view> parts = Split(item, ';');
    Ranked r;
    r.token = Trim(parts[0]);
    if (r.token.empty()) continue;
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string_view p = Trim(parts[i]);
      const size_t eq = p.find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view k = Trim(p.substr(0, eq));
      std::string_view v = Trim(p.substr(eq + 1));
      if (EqualsIgnoreCase(k, "q")) {
        const double q = QValue(v);
        r.q = q < 0 ? 0 : q;
      } else {
        r.params.emplace_back(k, v);
      }
    }
    out.push_back(r);
  }
  return out;
}

void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

void AppendValue(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", v);
  }
}

void AppendSample(std::string* out, std::string_view name, std::string_view suffix,
                  const std::vector<prometheus::ClientMetric::Label>& labels,
                  std::string_view extra_name, std::string_view extra_value, double value) {
  out->append(name);
  out->append(suffix);
  if (!labels.empty() || !extra_name.empty()) {
    out->push_back('{');
    bool first = true;
    const auto label = [&](std::string_view n, std::string_view v) {
      if (!first) out->push_back(',');
      first = false;
      out->append(n);
      out->append("=\"");
      AppendEscaped(out, v, true);
      out->push_back('"');
    };
    for (const auto& l : labels) label(l.name, l.value);
    if (!extra_name.empty()) label(extra_name, extra_value);
    out->push_back('}');
  }
  out->push_back(' ');
  AppendValue(out, value);
  out->push_back('\n');
}

}  // namespace

bool WantsOpenMetrics(std::string_view accept) {
  double om = -1;
  double text = -1;
  for (const Ranked& r : ParseList(accept)) {
    if (EqualsIgnoreCase(r.token, "application/openmetrics-text")) {
      bool version_ok = true;
      for (const auto& [k, v] : r.params) {
        if (EqualsIgnoreCase(k, "version")) version_ok = v == "1.0.0";
      }
      if (version_ok) om = std::max(om, r.q);
    } else if (EqualsIgnoreCase(r.token, "text/plain") || r.token == "*/*" ||
               EqualsIgnoreCase(r.token, "text/*")) {
      text = std::max(text, r.q);
    }
  }
  return om > 0 && om >= text;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  for (const Ranked& r : ParseList(accept_encoding)) {
    if ((EqualsIgnoreCase(r.token, "gzip") || r.token == "*") && r.q > 0) return true;
  }
  return false;
}

std::string SerializeOpenMetrics(const std::vector<prometheus::MetricFamily>& families) {
  using prometheus::MetricType;
  std::string out;
  for (const auto& f : families) {
    std::string_view name = f.name;
    std::string_view type = "unknown";
    switch (f.type) {
      case MetricType::Counter:
        type = "counter";
        if (name.size() > 6 && name.substr(name.size() - 6) == "_total") name.remove_suffix(6);
        break;
      case MetricType::Gauge:
        type = "gauge";
        break;
      case MetricType::Summary:
        type = "summary";
        break;
      case MetricType::Histogram:
        type = "histogram";
        break;
      case MetricType::Untyped:
        break;
    }
    out.append("# HELP ");
    out.append(name);
    out.push_back(' ');
    AppendEscaped(&out, f.help, false);
    out.append("\n# TYPE ");
    out.append(name);
    out.push_back(' ');
    out.append(type);
    out.push_back('\n');
    for (const auto& m : f.metric) {
      switch (f.type) {
        case MetricType::Counter:
          AppendSample(&out, name, "_total", m.label, "", "", m.counter.value);
          break;
        case MetricType::Gauge:
          AppendSample(&out, name, "", m.label, "", "", m.gauge.value);
          break;
        case MetricType::Untyped:
          AppendSample(&out, name, "", m.label, "", "", m.untyped.value);
          break;
        case MetricType::Summary:
          for (const auto& q : m.summary.quantile) {
            AppendSample(&out, name, "", m.label, "quantile", fmt::format("{}", q.quantile),
                         q.value);
          }
          AppendSample(&out, name, "_sum", m.label, "", "", m.summary.sample_sum);
          AppendSample(&out, name, "_count", m.label, "", "",
                       static_cast<double>(m.summary.sample_count));
          break;
        case MetricType::Histogram: {
          bool inf = false;
          for (const auto& b : m.histogram.bucket) {
            std::string le;
            AppendValue(&le, b.upper_bound);
            inf = inf || std::isinf(b.upper_bound);
            AppendSample(&out, name, "_bucket", m.label, "le", le,
                         static_cast<double>(b.cumulative_count));
          }
          if (!inf) {
            AppendSample(&out, name, "_bucket", m.label, "le", "+Inf",
                         static_cast<double>(m.histogram.sample_count));
          }
          AppendSample(&out, name, "_sum", m.label, "", "", m.histogram.sample_sum);
          AppendSample(&out, name, "_count", m.label, "", "",
                       static_cast<double>(m.histogram.sample_count));
          break;
        }
      }
    }
  }
  out.append("# EOF\n");
  return out;
}

absl::StatusOr<std::string> Gzip(std::string_view data) {
  z_stream zs{};
  // Level 1: metrics text compresses ~8x even so, and a scrape storm stays cheap.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::ResourceExhaustedError("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): zlib's buffers are non-const Bytef
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError("gzip: deflate did not finish");
  return out;
}

}  // namespace pgtlsmon::exporter
