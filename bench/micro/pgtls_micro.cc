// bench/micro/pgtls_micro.cc: Google Benchmark micro-benchmarks of replay's per-packet and
// per-connection steps (bench/README.md, "Micro-benchmarks"):
//
//   BM_FlowLookupTombstone/N   one segment of a settled connection (a tombstone) among N:
//                              FlowKey + hash probe + counters, what most packets cost
//   BM_FlowKeyHash             MakeFlowKey + FlowKeyHash alone (the --threads shard choice)
//   BM_TcpStreamInOrder        reassembly: one in-order 1448-byte segment appended + consumed
//   BM_ParseClientHello        a 517-byte OpenSSL-style TLS 1.3 ClientHello, JA3 + JA4 included
//   BM_ParseServerHello        a TLS 1.3 ServerHello, JA3S included
//   BM_TrackerTlsConnection    a whole SSLRequest/'S'/ClientHello/ServerHello connection through
//                              FlowTracker (hellos come from its parse-once cache after the first)
//   BM_AppendRecordJson        one complete TLS record written as a JSON line
//   BM_TableBytesPerConnection heap bytes per tracked connection (counter bytes_per_conn):
//                              settled ones (tombstones), and ones mid-handshake
//   BM_WhatIfDistinctHello/K   --what-if: OpenSSL judging one ClientHello never seen before
//                              (the cost per distinct client kind and policy), for K = 0 a
//                              TLS 1.3 success, 1 a TLS 1.2 ECDHE success, 2 a HelloRetryRequest,
//                              3 a failure (version too low)
//   BM_WhatIfCachedHello       --what-if: Annotate() of a connection whose hello shape is cached
//   BM_FileSourcePcap          FileSource::Next over a 200 000-record classic pcap in tmpfs
//                              (the record walker alone: no decoding), per record
//   BM_FileSourcePcapNg        the same records as pcapng Enhanced Packet Blocks
//
// Run: build-release/bench/pgtls_micro (add --benchmark_filter=Hello to pick).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "capture/file_source.h"
#include "exporter/record_json.h"
#include "parser/flow_tracker.h"
#include "parser/packet_decoder.h"
#include "parser/tcp_stream.h"
#include "parser/tls_hello.h"
#include "tests/testing/openssl_client_hello.h"
#include "whatif/engine.h"

namespace pgtlsmon::parser {
namespace {

using Bytes = std::vector<uint8_t>;

void U8(Bytes* b, unsigned v) { b->push_back(static_cast<uint8_t>(v)); }
void U16(Bytes* b, unsigned v) {
  U8(b, v >> 8);
  U8(b, v & 0xff);
}
void U24(Bytes* b, size_t v) {
  U8(b, static_cast<unsigned>(v >> 16));
  U16(b, static_cast<unsigned>(v & 0xffff));
}
void Append(Bytes* b, const Bytes& x) { b->insert(b->end(), x.begin(), x.end()); }
void Ext(Bytes* b, unsigned type, const Bytes& body) {
  U16(b, type);
  U16(b, static_cast<unsigned>(body.size()));
  Append(b, body);
}
Bytes U16List(const std::vector<unsigned>& v, bool u8_len = false) {
  Bytes b;
  if (u8_len) {
    U8(&b, static_cast<unsigned>(v.size() * 2));
  } else {
    U16(&b, static_cast<unsigned>(v.size() * 2));
  }
  for (unsigned x : v) U16(&b, x);
  return b;
}

// Like OpenSSL 3's (psql, libpq) TLS 1.3 ClientHello: 31 suites, SNI, ALPN "postgresql",
// x25519 key share, padded to 512 bytes.
Bytes ClientHelloBody(uint8_t random_seed) {
  Bytes b;
  U16(&b, 0x0303);
  for (int i = 0; i < 32; ++i) U8(&b, static_cast<unsigned>(random_seed + i));  // random
  U8(&b, 32);
  for (int i = 0; i < 32; ++i) U8(&b, static_cast<unsigned>(0x40 + i));  // session id
  Append(&b, U16List({0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8,
                      0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023,
                      0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033,
                      0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff}));
  U8(&b, 1);
  U8(&b, 0);  // compression: null
  Bytes exts;
  Bytes sni;
  const std::string host = "db.example.com";
  U16(&sni, static_cast<unsigned>(host.size() + 3));
  U8(&sni, 0);
  U16(&sni, static_cast<unsigned>(host.size()));
  sni.insert(sni.end(), host.begin(), host.end());
  Ext(&exts, 0x0000, sni);
  Ext(&exts, 0x000b, {0x03, 0x00, 0x01, 0x02});
  Ext(&exts, 0x000a, U16List({0x001d, 0x0017, 0x001e, 0x0019, 0x0018}));
  Ext(&exts, 0x0023, {});
  Bytes alpn = {0x00, 0x0b, 0x0a};
  for (char c : std::string("postgresql")) alpn.push_back(static_cast<uint8_t>(c));
  Ext(&exts, 0x0010, alpn);
  Ext(&exts, 0x0016, {});
  Ext(&exts, 0x0017, {});
  Ext(&exts, 0x000d,
      U16List({0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805,
               0x0806, 0x0401, 0x0501, 0x0601}));
  Ext(&exts, 0x002b, U16List({0x0304, 0x0303}, true));
  Ext(&exts, 0x002d, {0x01, 0x01});
  Bytes ks;
  U16(&ks, 36);
  U16(&ks, 0x001d);
  U16(&ks, 32);
  for (int i = 0; i < 32; ++i) U8(&ks, static_cast<unsigned>(random_seed * 7 + i));
  Ext(&exts, 0x0033, ks);
  const size_t so_far = b.size() + 2 + exts.size() + 4;
  Ext(&exts, 0x0015, Bytes(so_far < 508 ? 508 - so_far : 0, 0));  // padding
  U16(&b, static_cast<unsigned>(exts.size()));
  Append(&b, exts);
  return b;
}

Bytes ServerHelloBody() {
  Bytes b;
  U16(&b, 0x0303);
  for (int i = 0; i < 32; ++i) U8(&b, static_cast<unsigned>(0x90 + i));
  U8(&b, 32);
  for (int i = 0; i < 32; ++i) U8(&b, static_cast<unsigned>(0x40 + i));
  U16(&b, 0x1302);
  U8(&b, 0);
  Bytes exts;
  Ext(&exts, 0x002b, {0x03, 0x04});
  Bytes ks;
  U16(&ks, 0x001d);
  U16(&ks, 32);
  for (int i = 0; i < 32; ++i) U8(&ks, static_cast<unsigned>(i));
  Ext(&exts, 0x0033, ks);
  U16(&b, static_cast<unsigned>(exts.size()));
  Append(&b, exts);
  return b;
}

Bytes Record(uint8_t type, const Bytes& handshake_body, uint8_t hs_type) {
  Bytes h;
  U8(&h, hs_type);
  U24(&h, handshake_body.size());
  Append(&h, handshake_body);
  Bytes r;
  U8(&r, type);
  U16(&r, 0x0301);
  U16(&r, static_cast<unsigned>(h.size()));
  Append(&r, h);
  return r;
}

IpAddress V4(uint32_t a) {
  IpAddress ip;
  ip.bytes[0] = static_cast<uint8_t>(a >> 24);
  ip.bytes[1] = static_cast<uint8_t>(a >> 16);
  ip.bytes[2] = static_cast<uint8_t>(a >> 8);
  ip.bytes[3] = static_cast<uint8_t>(a);
  return ip;
}

TcpSegment Segment(uint32_t client, uint16_t cport, bool from_client, uint8_t flags, uint32_t seq,
                   std::span<const uint8_t> payload) {
  TcpSegment s;
  s.src = from_client ? V4(client) : V4(0x0a000001);
  s.dst = from_client ? V4(0x0a000001) : V4(client);
  s.sport = from_client ? cport : 5432;
  s.dport = from_client ? 5432 : cport;
  s.seq = seq;
  s.flags = flags;
  s.payload = payload;
  s.payload_wire_len = static_cast<uint32_t>(payload.size());
  return s;
}

const Bytes kStartup = {0, 0, 0, 17, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'b', 'o', 'b', 0};

void BM_FlowLookupTombstone(benchmark::State& state) {
  const auto flows = static_cast<uint32_t>(state.range(0));
  uint64_t records = 0;
  FlowTracker tracker({}, [&records](SessionRecord&&) { ++records; });
  // Plaintext sessions: the StartupMessage settles each one, leaving a tombstone.
  for (uint32_t i = 0; i < flows; ++i) {
    tracker.OnSegment(Segment(0xc0a80000 + i, static_cast<uint16_t>(40000 + (i % 20000)), true,
                              kTcpSyn, 1000, {}),
                      1);
    tracker.OnSegment(Segment(0xc0a80000 + i, static_cast<uint16_t>(40000 + (i % 20000)), true,
                              kTcpAck | kTcpPsh, 1001, kStartup),
                      2);
  }
  const Bytes bulk(1448, 0x17);
  std::vector<TcpSegment> segs;
  for (uint32_t i = 0; i < flows; ++i) {
    segs.push_back(Segment(0xc0a80000 + i, static_cast<uint16_t>(40000 + (i % 20000)), (i & 1) != 0,
                           kTcpAck, 5000, bulk));
  }
  size_t i = 0;
  for (auto _ : state) {
    tracker.OnSegment(segs[i], 3);
    if (++i == segs.size()) i = 0;
  }
  benchmark::DoNotOptimize(records);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_FlowLookupTombstone)->Arg(64)->Arg(4096)->Arg(65536);

void BM_FlowKeyHash(benchmark::State& state) {
  const TcpSegment seg = Segment(0xc0a80101, 40000, true, kTcpAck, 1, {});
  for (auto _ : state) {
    benchmark::DoNotOptimize(FlowKeyHash(MakeFlowKey(seg)));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_FlowKeyHash);

void BM_TcpStreamInOrder(benchmark::State& state) {
  const Bytes seg(1448, 0x16);
  ParseStats stats;
  TcpStream stream(16 * 1024 + 5);
  stream.SetInitialSequence(1);
  uint32_t seq = 1;
  for (auto _ : state) {
    stream.AddSegment(seq, seg, static_cast<uint32_t>(seg.size()), &stats);
    seq += static_cast<uint32_t>(seg.size());
    stream.Consume(stream.data().size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * seg.size()));
}
BENCHMARK(BM_TcpStreamInOrder);

void BM_ParseClientHello(benchmark::State& state) {
  const Bytes body = ClientHelloBody(1);
  for (auto _ : state) {
    ClientHelloInfo ch;
    benchmark::DoNotOptimize(ParseClientHello(body, 0x0301, &ch));
    benchmark::DoNotOptimize(ch.ja4.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_ParseClientHello);

void BM_ParseServerHello(benchmark::State& state) {
  const Bytes body = ServerHelloBody();
  for (auto _ : state) {
    ServerHelloInfo sh;
    benchmark::DoNotOptimize(ParseServerHello(body, &sh));
    benchmark::DoNotOptimize(sh.ja3s.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ParseServerHello);

void BM_TrackerTlsConnection(benchmark::State& state) {
  uint64_t records = 0;
  FlowTracker tracker({}, [&records](SessionRecord&&) { ++records; });
  const Bytes ssl_request = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};
  const Bytes yes = {'S'};
  std::vector<Bytes> hellos;
  hellos.reserve(16);
  for (int i = 0; i < 16; ++i)
    hellos.push_back(Record(22, ClientHelloBody(static_cast<uint8_t>(i)), 1));
  const Bytes server_hello = Record(22, ServerHelloBody(), 2);
  uint32_t n = 0;
  uint64_t ts = 1;
  for (auto _ : state) {
    const uint32_t client = 0xc0a80000 + n;
    const auto port = static_cast<uint16_t>(1024 + n % 60000);
    const Bytes& ch = hellos[n % hellos.size()];
    ++n;
    ++ts;
    tracker.OnSegment(Segment(client, port, true, kTcpSyn, 100, {}), ts);
    tracker.OnSegment(Segment(client, port, false, kTcpSyn | kTcpAck, 900, {}), ts);
    tracker.OnSegment(Segment(client, port, true, kTcpAck | kTcpPsh, 101, ssl_request), ts);
    tracker.OnSegment(Segment(client, port, false, kTcpAck | kTcpPsh, 901, yes), ts);
    tracker.OnSegment(Segment(client, port, true, kTcpAck | kTcpPsh, 109, ch), ts);
    tracker.OnSegment(Segment(client, port, false, kTcpAck | kTcpPsh, 902, server_hello), ts);
  }
  benchmark::DoNotOptimize(records);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_TrackerTlsConnection);

void BM_AppendRecordJson(benchmark::State& state) {
  SessionRecord rec;
  FlowTracker tracker({}, [&rec](SessionRecord&& r) { rec = std::move(r); });
  const Bytes ssl_request = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};
  const Bytes yes = {'S'};
  const Bytes ch = Record(22, ClientHelloBody(1), 1);
  const Bytes sh = Record(22, ServerHelloBody(), 2);
  tracker.OnSegment(Segment(0xc0a80101, 40000, true, kTcpSyn, 100, {}), 1);
  tracker.OnSegment(Segment(0xc0a80101, 40000, true, kTcpAck | kTcpPsh, 101, ssl_request), 1);
  tracker.OnSegment(Segment(0xc0a80101, 40000, false, kTcpAck | kTcpPsh, 901, yes), 1);
  tracker.OnSegment(Segment(0xc0a80101, 40000, true, kTcpAck | kTcpPsh, 109, ch), 1);
  tracker.OnSegment(Segment(0xc0a80101, 40000, false, kTcpAck | kTcpPsh, 902, sh), 1);
  tracker.Finish();
  if (!rec.client_hello || !rec.tls) {
    state.SkipWithError("the connection did not produce a TLS record");
    return;
  }
  std::string out;
  for (auto _ : state) {
    out.clear();
    exporter::AppendRecordJson(rec, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}
BENCHMARK(BM_AppendRecordJson);

// malloc'ed bytes in use, the big (mmap'ed) blocks such as the hash table's array included.
size_t HeapBytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Heap growth (mallinfo2) per connection: N plaintext connections settled to tombstones
// (arg 0), or N connections left after their SSLRequest was answered (arg 1: a live Flow with
// its reassembly buffers), over N = 100000.
void BM_TableBytesPerConnection(benchmark::State& state) {
  const bool live = state.range(0) == 1;
  constexpr uint32_t kConns = 100000;
  const Bytes ssl_request = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};
  const Bytes yes = {'S'};
  double per_conn = 0;
  for (auto _ : state) {
    const size_t before = HeapBytes();
    {
      FlowTracker tracker({}, [](SessionRecord&&) {});
      for (uint32_t i = 0; i < kConns; ++i) {
        const uint32_t client = 0xc0a80000 + i;
        const auto port = static_cast<uint16_t>(1024 + i % 60000);
        tracker.OnSegment(Segment(client, port, true, kTcpSyn, 100, {}), 1);
        if (live) {
          tracker.OnSegment(Segment(client, port, true, kTcpAck | kTcpPsh, 101, ssl_request), 1);
          tracker.OnSegment(Segment(client, port, false, kTcpAck | kTcpPsh, 901, yes), 1);
        } else {
          tracker.OnSegment(Segment(client, port, true, kTcpAck | kTcpPsh, 101, kStartup), 1);
        }
      }
      per_conn = static_cast<double>(HeapBytes() - before) / kConns;
      benchmark::DoNotOptimize(tracker.active_flows());
    }
  }
  state.counters["bytes_per_conn"] = per_conn;
}
BENCHMARK(BM_TableBytesPerConnection)->Arg(0)->Arg(1)->Iterations(1)->Unit(benchmark::kMillisecond);

parser::RawClientHello WhatIfHello(int kind) {
  return whatif::testing::MakeHello([kind](SSL_CTX*, SSL* s) {
    switch (kind) {
      case 1:
        SSL_set_max_proto_version(s, TLS1_2_VERSION);
        break;
      case 2:
        SSL_set1_groups_list(s, "X25519:P-256");  // share for X25519 only
        break;
      case 3:
        SSL_set_max_proto_version(s, TLS1_1_VERSION);
        SSL_set_cipher_list(s, "DEFAULT:@SECLEVEL=0");
        break;
      default:
        SSL_set1_groups_list(s, "P-256");
        break;
    }
  });
}

std::unique_ptr<whatif::Engine> WhatIfEngine() {
  auto e = whatif::Engine::Create({whatif::ParseSettings("")->policy});
  return e.ok() ? std::move(*e) : nullptr;
}

void BM_WhatIfDistinctHello(benchmark::State& state) {
  auto engine = WhatIfEngine();
  const parser::RawClientHello hello = WhatIfHello(static_cast<int>(state.range(0)));
  const whatif::KeySpec key;
  parser::Outcome outcome = parser::Outcome::kUnknown;
  for (auto _ : state) {
    // Predict() bypasses the cache: every iteration is a hello OpenSSL has not seen.
    outcome = engine->Predict(0, hello, key).outcome;
    benchmark::DoNotOptimize(outcome);
  }
  state.SetLabel(std::string(parser::OutcomeName(outcome)));
}
BENCHMARK(BM_WhatIfDistinctHello)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

void BM_WhatIfCachedHello(benchmark::State& state) {
  auto engine = WhatIfEngine();
  parser::SessionRecord r;
  r.client_hello_raw = WhatIfHello(0);
  engine->Annotate(&r);
  for (auto _ : state) {
    r.what_if.reset();
    engine->Annotate(&r);
    benchmark::DoNotOptimize(r.what_if);
  }
  const whatif::EngineStats st = engine->stats();
  state.counters["hit_ratio"] =
      static_cast<double>(st.cache_hits) / static_cast<double>(st.cache_hits + st.cache_misses);
}
BENCHMARK(BM_WhatIfCachedHello);

// A capture file of `records` 200-byte packets in /dev/shm (tmpfs: no disk in the figure),
// written once per format and removed at exit.
class CaptureFile {
 public:
  CaptureFile(bool pcapng, int records)
      : path_(std::string("/dev/shm/pgtls_micro_") + (pcapng ? "ng" : "pcap") + ".tmp") {
    Bytes b;
    auto le32 = [&b](uint32_t v) {
      for (int i = 0; i < 4; ++i) U8(&b, (v >> (8 * i)) & 0xff);
    };
    auto le16 = [&b](unsigned v) {
      U8(&b, v & 0xff);
      U8(&b, v >> 8);
    };
    const Bytes payload(200, 0x5a);
    if (pcapng) {
      le32(0x0a0d0d0a), le32(28), le32(0x1a2b3c4d), le16(1), le16(0);
      le32(0xffffffff), le32(0xffffffff), le32(28);
      le32(1), le32(20), le16(1), le16(0), le32(65535), le32(20);
    } else {
      le32(0xa1b2c3d4), le16(2), le16(4), le32(0), le32(0), le32(65535), le32(1);
    }
    for (int i = 0; i < records; ++i) {
      const auto ts = static_cast<uint32_t>(i);
      if (pcapng) {
        le32(6), le32(32 + 200), le32(0), le32(0), le32(ts), le32(200), le32(200);
        Append(&b, payload);
        le32(32 + 200);
      } else {
        le32(ts), le32(0), le32(200), le32(200);
        Append(&b, payload);
      }
    }
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (f == nullptr || std::fwrite(b.data(), 1, b.size(), f) != b.size() || std::fclose(f) != 0) {
      error_ = "cannot write " + path_;
    }
  }
  ~CaptureFile() { std::remove(path_.c_str()); }
  CaptureFile(const CaptureFile&) = delete;
  CaptureFile& operator=(const CaptureFile&) = delete;
  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }  // empty when the file was written

 private:
  std::string path_;
  std::string error_;
};

void ReadAll(benchmark::State& state, const CaptureFile& file) {
  if (!file.error().empty()) {
    state.SkipWithError(file.error().c_str());
    return;
  }
  int64_t records = 0;
  for (auto _ : state) {
    auto src = capture::FileSource::Open(file.path());
    if (!src.ok()) {
      state.SkipWithError(std::string(src.status().message()).c_str());
      return;
    }
    capture::RawPacket pkt;
    uint64_t bytes = 0;
    for (;;) {
      auto more = (*src)->Next(&pkt);
      if (!more.ok() || !*more) break;
      bytes += pkt.caplen;
      ++records;
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(records);
}

constexpr int kFileRecords = 200000;

void BM_FileSourcePcap(benchmark::State& state) {
  static const CaptureFile file(false, kFileRecords);
  ReadAll(state, file);
}
BENCHMARK(BM_FileSourcePcap)->Unit(benchmark::kMillisecond);

void BM_FileSourcePcapNg(benchmark::State& state) {
  static const CaptureFile file(true, kFileRecords);
  ReadAll(state, file);
}
BENCHMARK(BM_FileSourcePcapNg)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pgtlsmon::parser

BENCHMARK_MAIN();
