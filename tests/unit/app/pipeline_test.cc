// tests/unit/app/pipeline_test.cc: app::Pipeline and app::CollectStats on real captures
// (tests/data/pcaps, made with PostgreSQL 15 and real clients): the pipeline counts what it is
// handed, the sharded pipeline (one reader, N worker threads) gives the single pipeline's records
// in the same order with the same counters, idle sweeps included, each worker serving the
// connections ShardOf gives it; ShardOf spreads connections evenly and keeps both directions
// together; and the statistics are the sums of the parts they come from.
#include "app/pipeline.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
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
  std::vector<parser::TcpSegment> connections;            // each record's client -> server
  uint64_t file_packets = 0;
  uint64_t file_bytes = 0;
};

// Every capture through `p` (a Pipeline or a ShardedPipeline), then Finish(). `slow_down`
// stretches the time between packets (1 ms becomes `slow_down` ms).
template <typename P>
Output Replay(P* p, uint64_t slow_down = 1) {
  Output run;
  uint64_t first_ns = 0;
  for (const char* path : kCaptures) {
    auto src = capture::FileSource::Open(path);
    EXPECT_TRUE(src.ok()) << src.status();
    if (!src.ok()) continue;
    capture::RawPacket pkt;
    while (true) {
      auto more = (*src)->Next(&pkt);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      if (first_ns == 0) first_ns = pkt.ts_ns;
      capture::RawPacket slow = pkt;
      slow.ts_ns = first_ns + (pkt.ts_ns - std::min(pkt.ts_ns, first_ns)) * slow_down;
      p->OnPacket(slow);
    }
    run.file_packets += (*src)->stats().records;
    run.file_bytes += (*src)->stats().packet_bytes;
  }
  p->Finish();
  return run;
}

Pipeline::RecordSink Collect(Output* run) {
  return [run](parser::SessionRecord&& r) {
    std::string json;
    exporter::AppendRecordJson(r, &json);
    run->records.emplace_back(r.sequence, std::move(json));
    parser::TcpSegment seg;
    seg.src = r.client.ip, seg.sport = r.client.port;
    seg.dst = r.server.ip, seg.dport = r.server.port;
    run->connections.push_back(seg);
  };
}

TEST(PipelineTest, CountsWhatItIsHandedAndEmitsRecords) {
  Output run;
  Pipeline p(AnyPort(), Collect(&run));
  const Output fed = Replay(&p);
  EXPECT_GT(fed.file_packets, 100u);
  EXPECT_EQ(p.input().packets, fed.file_packets);
  EXPECT_EQ(p.input().bytes, fed.file_bytes);
  EXPECT_GE(run.records.size(), 10u);
  EXPECT_EQ(p.tracker().stats().records, run.records.size());
  EXPECT_EQ(p.tracker().active_flows(), 0u);  // Finish() closed everything
}

std::vector<std::string> Jsons(const Output& run) {
  std::vector<std::string> out;
  for (const auto& [seq, json] : run.records) out.push_back(json);
  return out;
}

// The sum of every tracker's counters, as the metrics export them.
struct Sums {
  uint64_t records = 0, segments = 0, skipped = 0, skipped_bytes = 0;
  std::vector<uint64_t> evictions =
      std::vector<uint64_t>(static_cast<size_t>(parser::EvictionReason::kCount), 0);
  bool operator==(const Sums&) const = default;
};
void Add(const parser::FlowTracker& t, Sums* s) {
  s->records += t.stats().records;
  s->segments += t.stats().segments;
  s->skipped += t.stats().skipped_segments;
  s->skipped_bytes += t.stats().skipped_bytes;
  for (size_t i = 0; i < s->evictions.size(); ++i) s->evictions[i] += t.stats().evictions[i];
}

void ExpectShardedEqualsSingle(const parser::FlowTrackerConfig& cfg, uint64_t slow_down,
                               bool want_idle_evictions) {
  Output whole;
  Pipeline single(cfg, Collect(&whole));
  Replay(&single, slow_down);
  Sums want;
  Add(single.tracker(), &want);
  ASSERT_GE(whole.records.size(), 10u);
  if (want_idle_evictions) {
    ASSERT_GT(want.evictions[static_cast<size_t>(parser::EvictionReason::kIdleTimeout)], 0u);
  }
  for (size_t workers : {1, 2, 3, 4}) {
    SCOPED_TRACE(workers);
    Output parts;
    ShardedPipeline sharded(cfg, workers, Collect(&parts));
    Replay(&sharded, slow_down);
    // Same records, same order (the sink runs on this thread, in first-packet order).
    EXPECT_EQ(Jsons(parts), Jsons(whole));
    EXPECT_EQ(sharded.input().packets, single.input().packets);
    EXPECT_EQ(sharded.input().bytes, single.input().bytes);
    EXPECT_EQ(sharded.input().decode.counts, single.input().decode.counts);
    Sums got;
    for (size_t i = 0; i < sharded.size(); ++i) Add(sharded.tracker(i), &got);
    EXPECT_EQ(got, want);
    // Each worker made the records of exactly the connections ShardOf gives it. Which worker
    // that is changes from run to run (the hash is seeded per process), so how many are busy
    // is not asserted here; ShardOfTest shows the spread on many connections.
    std::vector<uint64_t> per_shard(workers, 0);
    for (const parser::TcpSegment& c : parts.connections) ++per_shard[ShardOf(c, workers)];
    for (size_t i = 0; i < sharded.size(); ++i) {
      EXPECT_EQ(sharded.tracker(i).stats().records, per_shard[i]) << "worker " << i;
    }
  }
}

TEST(ShardedPipelineTest, SameRecordsInTheSameOrderAndSameCounters) {
  ExpectShardedEqualsSingle(AnyPort(), 1, false);
}

TEST(ShardedPipelineTest, IdleSweepsHappenAsInOneTracker) {
  // Time stretched 2000 times (1 ms between packets becomes 2 s; a sweep every 5 s) and a 10 s
  // idle timeout: some connections are dropped between their packets, by sweeps that other
  // shards' packets trigger in a single tracker.
  parser::FlowTrackerConfig cfg = AnyPort();
  cfg.idle_timeout_us = 10ull * 1000 * 1000;
  ExpectShardedEqualsSingle(cfg, 2000, true);
}

TEST(ShardOfTest, BothDirectionsAgreeAndConnectionsSpreadEvenly) {
  // 40000 connections from 10.0.x.y:port to one server: every shard gets close to its share
  // (the hash is seeded per process; a share off by more than 10% has odds far below 1e-9).
  for (uint64_t shards : {2u, 3u, 4u, 7u}) {
    SCOPED_TRACE(shards);
    std::vector<uint64_t> count(shards, 0);
    constexpr int kConnections = 40000;
    for (int i = 0; i < kConnections; ++i) {
      parser::TcpSegment seg;
      seg.src.bytes = {10, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
      seg.sport = static_cast<uint16_t>(40000 + i % 7);
      seg.dst.bytes = {10, 1, 0, 1};
      seg.dport = 5432;
      const uint64_t s = ShardOf(seg, shards);
      ASSERT_LT(s, shards);
      parser::TcpSegment back = seg;
      std::swap(back.src, back.dst);
      std::swap(back.sport, back.dport);
      ASSERT_EQ(ShardOf(back, shards), s);
      ++count[s];
    }
    const double share = static_cast<double>(kConnections) / static_cast<double>(shards);
    for (uint64_t n : count) {
      EXPECT_GT(static_cast<double>(n), share * 0.9);
      EXPECT_LT(static_cast<double>(n), share * 1.1);
    }
  }
}

TEST(CollectStatsTest, IsTheSumOfItsParts) {
  // A connection table of 2 flows: the captures overflow it, so evictions are counted.
  parser::FlowTrackerConfig cfg = AnyPort();
  cfg.max_flows = 2;
  Output a;
  ShardedPipeline sharded(cfg, 2, Collect(&a));
  Replay(&sharded);
  const parser::FlowTracker& t0 = sharded.tracker(0);
  const parser::FlowTracker& t1 = sharded.tracker(1);
  const InputCounters& in = sharded.input();

  capture::LiveStats source;
  source.source = "ebpf:eth0";
  source.skipped_packets = 7;
  source.skipped_bytes = 700;
  source.drops = {{"ring_full", 3}, {"cap_reached", 4}};
  const parser::FlowTracker* trackers[] = {&t0, &t1};
  const exporter::PipelineStats ps = CollectStats(source, in, trackers, 5);

  ASSERT_EQ(ps.sources.size(), 1u);
  const exporter::CaptureSourceStats& cs = ps.sources[0];
  EXPECT_EQ(cs.source, "ebpf:eth0");
  EXPECT_EQ(cs.packets, in.packets);
  EXPECT_EQ(cs.bytes, in.bytes);
  EXPECT_EQ(cs.skipped_packets, 7 + t0.stats().skipped_segments + t1.stats().skipped_segments);
  EXPECT_EQ(cs.skipped_bytes, 700 + t0.stats().skipped_bytes + t1.stats().skipped_bytes);
  EXPECT_EQ(cs.drops, source.drops);
  EXPECT_EQ(ps.session_log_errors, std::optional<uint64_t>(5));
  EXPECT_EQ(ps.flows_active, t0.active_flows() + t1.active_flows());

  std::map<std::string, uint64_t> evictions(ps.evictions.begin(), ps.evictions.end());
  EXPECT_EQ(evictions.size(), static_cast<size_t>(parser::EvictionReason::kCount));
  uint64_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(parser::EvictionReason::kCount); ++i) {
    const auto reason = static_cast<parser::EvictionReason>(i);
    EXPECT_EQ(evictions[std::string(parser::EvictionReasonName(reason))],
              t0.stats().evictions[i] + t1.stats().evictions[i]);
    total += evictions[std::string(parser::EvictionReasonName(reason))];
  }
  EXPECT_GT(total, 0u);

  // The decode counts are one reader's, the parse counts every tracker's.
  for (size_t st = 0; st < static_cast<size_t>(parser::Stage::kCount); ++st) {
    for (size_t re = 0; re < static_cast<size_t>(parser::Reason::kCount); ++re) {
      EXPECT_EQ(ps.parse.counts[st][re], in.decode.counts[st][re] +
                                             t0.parse_stats().counts[st][re] +
                                             t1.parse_stats().counts[st][re]);
    }
  }
  // Without a session log there is no error count to export.
  EXPECT_FALSE(CollectStats(source, in, trackers).session_log_errors.has_value());
}

}  // namespace
}  // namespace pgtlsmon::app
