#include "exporter/exposition.h"

#include <gtest/gtest.h>

#include <limits>

#include "exporter/stats_snapshot.h"
#include "prometheus/metric_family.h"

namespace pgtlsmon::exporter {
namespace {

TEST(Exposition, Negotiation) {
  // Prometheus 2.x.
  EXPECT_TRUE(WantsOpenMetrics(
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
      "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
  EXPECT_TRUE(WantsOpenMetrics("application/openmetrics-text"));
  EXPECT_FALSE(WantsOpenMetrics("text/plain;version=0.0.4"));
  EXPECT_FALSE(WantsOpenMetrics("*/*"));
  EXPECT_FALSE(WantsOpenMetrics(""));
  EXPECT_FALSE(WantsOpenMetrics("application/openmetrics-text;version=2.0.0"));
  EXPECT_FALSE(WantsOpenMetrics("application/openmetrics-text;q=0.2,text/plain;q=0.9"));
  EXPECT_FALSE(WantsOpenMetrics("application/openmetrics-text;q=0"));
  EXPECT_FALSE(WantsOpenMetrics("application/openmetrics-text;q=nonsense"));

  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("gzipx"));
}

TEST(Exposition, OpenMetricsText) {
  std::vector<prometheus::MetricFamily> f(3);
  f[0].name = "a_total";
  f[0].help = "line\nbreak \\ here";
  f[0].type = prometheus::MetricType::Counter;
  f[0].metric.resize(1);
  f[0].metric[0].label = {{"k", "v\"q\\\n"}};
  f[0].metric[0].counter.value = 3;
  f[1].name = "g";
  f[1].type = prometheus::MetricType::Gauge;
  f[1].metric.resize(2);
  f[1].metric[0].gauge.value = 0.5;
  f[1].metric[1].label = {{"x", "1"}};
  f[1].metric[1].gauge.value = std::numeric_limits<double>::infinity();
  f[2].name = "h";
  f[2].type = prometheus::MetricType::Histogram;
  f[2].metric.resize(1);
  f[2].metric[0].histogram.sample_count = 4;
  f[2].metric[0].histogram.sample_sum = 2.5;
  f[2].metric[0].histogram.bucket = {{1, 0.1}, {3, 1}};
  EXPECT_EQ(SerializeOpenMetrics(f),
            "# HELP a line\\nbreak \\\\ here\n"
            "# TYPE a counter\n"
            "a_total{k=\"v\\\"q\\\\\\n\"} 3\n"
            "# HELP g \n# TYPE g gauge\n"
            "g 0.5\n"
            "g{x=\"1\"} +Inf\n"
            "# HELP h \n# TYPE h histogram\n"
            "h_bucket{le=\"0.1\"} 1\n"
            "h_bucket{le=\"1\"} 3\n"
            "h_bucket{le=\"+Inf\"} 4\n"
            "h_sum 2.5\n"
            "h_count 4\n"
            "# EOF\n");
  EXPECT_EQ(SerializeOpenMetrics({}), "# EOF\n");
}

TEST(Exposition, GzipRoundTripSize) {
  const std::string text(100000, 'x');
  auto gz = Gzip(text);
  ASSERT_TRUE(gz.ok());
  EXPECT_LT(gz->size(), 2000u);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[1]), 0x8b);
}

// A scrape gets a snapshot taken after it asked: what the capture thread had counted before
// the scrape is in it.
TEST(StatsSnapshot, FreshIsNewerThanTheRequest) {
  StatsSnapshot snap;
  std::atomic<uint64_t> packets{0};
  std::atomic<bool> stop{false};
  std::thread capture([&] {
    while (!stop) {
      packets.fetch_add(1);
      snap.Changed();  // a session counted with each packet
      if (snap.requested()) {
        const uint64_t t = snap.ticket();
        PipelineStats s;
        s.flows_active = packets.load();
        snap.Publish(std::move(s), t);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  for (int i = 0; i < 50; ++i) {
    const uint64_t before = packets.load();
    const PipelineStats s = snap.Fresh(std::chrono::milliseconds(2000));
    EXPECT_GE(s.flows_active, before);
    ASSERT_TRUE(s.stale_scrapes.has_value());
    EXPECT_EQ(*s.stale_scrapes, 0u);
  }
  stop = true;
  capture.join();
  // Nothing counted since the last snapshot: no wait.
  const auto t0 = std::chrono::steady_clock::now();
  snap.Fresh(std::chrono::milliseconds(5000));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  // A session counted and nobody answers: the newest snapshot after the wait, counted stale.
  snap.Changed();
  const PipelineStats s = snap.Fresh(std::chrono::milliseconds(20));
  EXPECT_EQ(*s.stale_scrapes, 1u);
}

}  // namespace
}  // namespace pgtlsmon::exporter
