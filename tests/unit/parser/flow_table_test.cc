#include "parser/flow_table.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace pgtlsmon::parser {
namespace {

TcpSegment Seg(uint8_t a, uint16_t sport, uint8_t b, uint16_t dport) {
  TcpSegment s;
  s.src.bytes[0] = 10, s.src.bytes[3] = a;
  s.dst.bytes[0] = 10, s.dst.bytes[3] = b;
  s.sport = sport;
  s.dport = dport;
  return s;
}

FlowKey Key(uint16_t port) { return MakeFlowKey(Seg(1, port, 2, 5432)); }

TEST(FlowKey, BothDirectionsShareOneKeyAndHash) {
  bool a_lo = false;
  bool b_lo = false;
  const FlowKey a = MakeFlowKey(Seg(1, 40000, 2, 5432), &a_lo);
  const FlowKey b = MakeFlowKey(Seg(2, 5432, 1, 40000), &b_lo);
  EXPECT_TRUE(a == b);
  EXPECT_EQ(FlowKeyHash(a), FlowKeyHash(b));
  EXPECT_NE(a_lo, b_lo);  // one of the two ends sent each
  EXPECT_TRUE(a_lo);      // 10.0.0.1 sorts first
  EXPECT_FALSE(Key(40000) == Key(40001));
}

// The hash of a fixed key, as this process computes it.
std::string HashOfFixedKey() { return std::to_string(FlowKeyHash(Key(40000))); }

// The environment is read from /proc rather than with std::getenv, which is not thread-safe.
bool StartedWithPrintFlag() {
  std::ifstream env("/proc/self/environ", std::ios::binary);
  std::string var;
  while (std::getline(env, var, '\0')) {
    if (absl::StartsWith(var, "PGTLS_PRINT_FLOW_HASH=")) return true;
  }
  return false;
}

// Run again by SeededPerProcess as a child process: print the hash and exit before any test.
// (kHashSeed, defined in a header included above, is initialised before this.)
const bool kIsChild = [] {
  if (!StartedWithPrintFlag()) return false;
  std::printf("hash=%s\n", HashOfFixedKey().c_str());
  std::fflush(stdout);
  std::_Exit(0);
}();

// This test binary run again, as a new process, printing its hash of the same key.
std::string ChildHash() {
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  const std::string cmd = "PGTLS_PRINT_FLOW_HASH=1 '" + self + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  pclose(p);
  const auto at = out.find("hash=");
  return at == std::string::npos ? out : out.substr(at + 5, out.find('\n', at) - at - 5);
}

// Crafted addresses cannot aim at one hash value: the same key hashes differently in each
// process (a 64-bit secret drawn at start-up), yet alike within one.
TEST(FlowKeyHash, SeededPerProcess) {
  ASSERT_FALSE(kIsChild);
  const std::string mine = HashOfFixedKey();
  EXPECT_EQ(mine, HashOfFixedKey());
  const std::string a = ChildHash();
  const std::string b = ChildHash();
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.find_first_not_of("0123456789"), std::string::npos) << a;
  EXPECT_NE(a, b);
  EXPECT_NE(a, mine);
}

// Keys that differ in one address word only still spread over the hash's low bits (the
// table's bucket index).
TEST(FlowKeyHash, SpreadsNeighbouringKeys) {
  std::set<uint64_t> low;
  for (uint16_t p = 0; p < 4096; ++p) low.insert(FlowKeyHash(Key(p)) & 0xffff);
  EXPECT_GT(low.size(), 3900u);
}

struct Value {
  int id = 0;
};

TEST(FlowTable, FindInsertErase) {
  EvictionCounts counts = {};
  FlowTable<Value> t(8, &counts);
  EXPECT_EQ(t.Find(Key(1)), nullptr);
  t.Insert(Key(1), [](const FlowKey&, Value&) { FAIL(); }).id = 1;
  ASSERT_NE(t.Find(Key(1)), nullptr);
  EXPECT_EQ(t.Find(Key(1))->id, 1);
  EXPECT_EQ(t.size(), 1u);
  t.Erase(Key(1));
  EXPECT_EQ(t.Find(Key(1)), nullptr);
  EXPECT_EQ(counts[0] + counts[1], 0u);  // an erase is not an eviction
}

TEST(FlowTable, FullTableEvictsTheOldestStillThereAndCounts) {
  EvictionCounts counts = {};
  FlowTable<Value> t(3, &counts);
  std::vector<int> evicted;
  auto on_evict = [&evicted](const FlowKey&, Value& v) { evicted.push_back(v.id); };
  for (int i = 1; i <= 3; ++i) t.Insert(Key(static_cast<uint16_t>(i)), on_evict).id = i;
  t.Erase(Key(1));                    // gone already: not the one to evict
  t.Insert(Key(4), on_evict).id = 4;  // room left: nothing evicted
  EXPECT_TRUE(evicted.empty());
  t.Insert(Key(5), on_evict).id = 5;
  t.Insert(Key(1), on_evict).id = 6;  // the same key again is a new entry
  EXPECT_EQ(evicted, (std::vector<int>{2, 3}));
  EXPECT_EQ(counts[static_cast<size_t>(EvictionReason::kTableFull)], 2u);
  EXPECT_EQ(t.size(), 3u);
  t.Insert(Key(7), on_evict).id = 7;
  EXPECT_EQ(evicted.back(), 4);
}

TEST(FlowTable, EvictCountsByReason) {
  EvictionCounts counts = {};
  FlowTable<Value> t(8, &counts);
  t.Insert(Key(1), [](const FlowKey&, Value&) {}).id = 1;
  int seen = 0;
  t.Evict(Key(1), EvictionReason::kIdleTimeout, [&seen](const FlowKey&, Value& v) { seen = v.id; });
  t.Evict(Key(2), EvictionReason::kIdleTimeout, [](const FlowKey&, Value&) { FAIL(); });
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(counts[static_cast<size_t>(EvictionReason::kIdleTimeout)], 1u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(EvictionReasonName(EvictionReason::kIdleTimeout), "idle_timeout");
}

// Many connections come and go on a table that never fills: the creation-order queue that
// finds the oldest stays bounded (stale positions are dropped).
TEST(FlowTable, ChurnKeepsTheTableBounded) {
  EvictionCounts counts = {};
  FlowTable<Value> t(4, &counts);
  for (int i = 0; i < 100000; ++i) {
    const FlowKey k = Key(static_cast<uint16_t>(i));
    t.Insert(k, [](const FlowKey&, Value&) {});
    t.Erase(k);
  }
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(counts[0], 0u);
}

}  // namespace
}  // namespace pgtlsmon::parser
