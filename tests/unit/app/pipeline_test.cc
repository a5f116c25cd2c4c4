// tests/unit/app/pipeline_test.cc: app::Pipeline and app::CollectStats on real captures
// (tests/data/pcaps, made with PostgreSQL 15 and real clients): the pipeline counts what it is
// handed, sharding splits the connections without losing or duplicating a record, and the
// statistics are the sums of the parts they come from.
#include "app/pipeline.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "capture/file_source.h"
#include "exporter/record_json.h"
#include "gtest/gtest.h"

namespace pgtlsmon::app {
namespace {

const char* const kCaptures[] = {
    PGTLS_SOURCE_DIR "/tests/data/pcaps/pg15-tls-versions.pcap",
    PGTLS_SOURCE_DIR "/tests/data/pcaps/pg15-refused-and-failed.pcap",
    PGTLS_SOURCE_DIR "/tests/data/pcaps/pg15-direct-tls.pcap",
};

parser::FlowTrackerConfig AnyPort() {
  parser::FlowTrackerConfig cfg;
  cfg.any_port = true;
  return cfg;
}

struct Output {
  std::vector<std::pair<uint64_t, std::string>> records;  // (sequence, JSON)
  uint64_t file_packets = 0;
  uint64_t file_bytes = 0;
};

// Every capture through `pipelines` (each sees every packet, with its index).
Output Replay(const std::vector<Pipeline*>& pipelines) {
  Output run;
  uint64_t index = 0;
  for (const char* path : kCaptures) {
    auto src = capture::FileSource::Open(path);
    EXPECT_TRUE(src.ok()) << src.status();
    if (!src.ok()) continue;
    capture::RawPacket pkt;
    while (true) {
      auto more = (*src)->Next(&pkt);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      for (Pipeline* p : pipelines) p->OnPacket(pkt, index);
      ++index;
    }
    run.file_packets += (*src)->stats().records;
    run.file_bytes += (*src)->stats().packet_bytes;
  }
  for (Pipeline* p : pipelines) p->Finish();
  return run;
}

Pipeline::RecordSink Collect(Output* run) {
  return [run](parser::SessionRecord&& r) {
    std::string json;
    exporter::AppendRecordJson(r, &json);
    run->records.emplace_back(r.sequence, std::move(json));
  };
}

TEST(PipelineTest, CountsWhatItIsHandedAndEmitsRecords) {
  Output run;
  Pipeline p(AnyPort(), Collect(&run));
  const Output fed = Replay({&p});
  EXPECT_GT(fed.file_packets, 100u);
  EXPECT_EQ(p.input().packets, fed.file_packets);
  EXPECT_EQ(p.input().bytes, fed.file_bytes);
  EXPECT_GE(run.records.size(), 10u);
  EXPECT_EQ(p.tracker().stats().records, run.records.size());
  EXPECT_EQ(p.tracker().active_flows(), 0u);  // Finish() closed everything
}

TEST(PipelineTest, ShardsSplitTheConnectionsWithoutLossOrDuplicates) {
  Output whole;
  Pipeline single(AnyPort(), Collect(&whole));
  Replay({&single});

  Output parts[3];
  std::vector<std::unique_ptr<Pipeline>> shards;
  for (uint64_t i = 0; i < 3; ++i) {
    shards.push_back(std::make_unique<Pipeline>(AnyPort(), Collect(&parts[i])));
    shards.back()->SetShard(i, 3);
  }
  Replay({shards[0].get(), shards[1].get(), shards[2].get()});

  std::vector<std::pair<uint64_t, std::string>> merged;
  size_t non_empty = 0;
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(shards[i]->input().packets, single.input().packets);  // every shard reads all
    non_empty += parts[i].records.empty() ? 0 : 1;
    merged.insert(merged.end(), parts[i].records.begin(), parts[i].records.end());
  }
  EXPECT_GE(non_empty, 2u);  // the records really were split
  std::sort(merged.begin(), merged.end());
  std::vector<std::pair<uint64_t, std::string>> want = whole.records;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(merged, want);
}

TEST(CollectStatsTest, IsTheSumOfItsParts) {
  // A connection table of 2 flows: the captures overflow it, so evictions are counted.
  parser::FlowTrackerConfig cfg = AnyPort();
  cfg.max_flows = 2;
  Output a;
  Output b;
  Pipeline p0(cfg, Collect(&a));
  Pipeline p1(cfg, Collect(&b));
  p0.SetShard(0, 2);
  p1.SetShard(1, 2);
  Replay({&p0, &p1});

  capture::LiveStats source;
  source.source = "ebpf:eth0";
  source.skipped_packets = 7;
  source.skipped_bytes = 700;
  source.drops = {{"ring_full", 3}, {"cap_reached", 4}};
  const parser::FlowTracker* trackers[] = {&p0.tracker(), &p1.tracker()};
  const exporter::PipelineStats ps = CollectStats(source, p0.input(), trackers, 5);

  ASSERT_EQ(ps.sources.size(), 1u);
  const exporter::CaptureSourceStats& cs = ps.sources[0];
  EXPECT_EQ(cs.source, "ebpf:eth0");
  EXPECT_EQ(cs.packets, p0.input().packets);
  EXPECT_EQ(cs.bytes, p0.input().bytes);
  EXPECT_EQ(cs.skipped_packets,
            7 + p0.tracker().stats().skipped_segments + p1.tracker().stats().skipped_segments);
  EXPECT_EQ(cs.skipped_bytes,
            700 + p0.tracker().stats().skipped_bytes + p1.tracker().stats().skipped_bytes);
  EXPECT_EQ(cs.drops, source.drops);
  EXPECT_EQ(ps.session_log_errors, std::optional<uint64_t>(5));
  EXPECT_EQ(ps.flows_active, p0.tracker().active_flows() + p1.tracker().active_flows());

  std::map<std::string, uint64_t> evictions(ps.evictions.begin(), ps.evictions.end());
  EXPECT_EQ(evictions.size(), static_cast<size_t>(parser::EvictionReason::kCount));
  uint64_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
    const auto reason = static_cast<parser::EvictionReason>(i);
    EXPECT_EQ(evictions[std::string(parser::EvictionReasonName(reason))],
              p0.tracker().stats().evictions[i] + p1.tracker().stats().evictions[i]);
    total += evictions[std::string(parser::EvictionReasonName(reason))];
  }
  EXPECT_GT(total, 0u);

  // The decode counts are one reader's, the parse counts every tracker's.
  for (size_t st = 0; st < static_cast<size_t>(parser::Stage::kCount); ++st) {
    for (size_t re = 0; re < static_cast<size_t>(parser::Reason::kCount); ++re) {
      EXPECT_EQ(ps.parse.counts[st][re], p0.input().decode.counts[st][re] +
                                             p0.tracker().parse_stats().counts[st][re] +
                                             p1.tracker().parse_stats().counts[st][re]);
    }
  }
  // Without a session log there is no error count to export.
  EXPECT_FALSE(CollectStats(source, p0.input(), trackers).session_log_errors.has_value());
}

}  // namespace
}  // namespace pgtlsmon::app
