// Tests for capture/byte_reader.h and capture/capture_set.h: decompression by content
// (gzip, zstd, xz; whole, concatenated, cut short), and many capture files read as one
// time-ordered capture (rotated files, overlapping files, directories with other files,
// globs, damage in the middle, --since/--until/--filter selection, bounded open files).
#include "capture/capture_set.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "capture/byte_reader.h"
#include "parser/text.h"
#include "tests/testing/packet_builder.h"

namespace pgtlsmon::capture {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kSec = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'772'323'200ULL * kSec;  // 2026-03-01T00:00:00Z

struct Pkt {
  uint64_t ts_ns;
  Bytes data;
};

void Put32(Bytes& b, uint32_t v) {
  std::array<uint8_t, 4> raw{};
  std::memcpy(raw.data(), &v, raw.size());
  b.insert(b.end(), raw.begin(), raw.end());
}

// A classic pcap (nanosecond magic, host byte order).
Bytes Pcap(uint32_t linktype, const std::vector<Pkt>& pkts) {
  Bytes b;
  Put32(b, 0xa1b23c4d);
  Put32(b, 2 | (4u << 16));
  Put32(b, 0);
  Put32(b, 0);
  Put32(b, 262144);
  Put32(b, linktype);
  for (const Pkt& p : pkts) {
    Put32(b, static_cast<uint32_t>(p.ts_ns / kSec));
    Put32(b, static_cast<uint32_t>(p.ts_ns % kSec));
    Put32(b, static_cast<uint32_t>(p.data.size()));
    Put32(b, static_cast<uint32_t>(p.data.size()));
    b.insert(b.end(), p.data.begin(), p.data.end());
  }
  return b;
}

// An Ethernet/IPv4/TCP frame whose sequence number identifies it.
Bytes Frame(uint32_t id, uint16_t dport = 5432) {
  return testing::TcpFrame{}
      .Ipv4({10, 0, 0, 1}, {10, 0, 0, 2})
      .Ports(40000, dport)
      .Seq(id)
      .Flags(testing::kTcpAck)
      .Payload(10)
      .Build();
}

// The same packet as raw IP (LINKTYPE_RAW): the Ethernet header cut off.
Bytes RawIp(uint32_t id, uint16_t dport = 5432) {
  Bytes f = Frame(id, dport);
  f.erase(f.begin(), f.begin() + 14);
  return f;
}

Bytes Gzip(const Bytes& in) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&zs, in.size()) + 64);
  zs.next_in = const_cast<Bytes::value_type*>(in.data());  // zlib's API is not const
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// With a checksum, as the zstd command writes by default.
Bytes Zstd(const Bytes& in) {
  Bytes out(ZSTD_compressBound(in.size()));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_EQ(ZSTD_isError(n), 0u);
  out.resize(n);
  return out;
}

Bytes Xz(const Bytes& in) {
  Bytes out(lzma_stream_buffer_bound(in.size()));
  size_t pos = 0;
  EXPECT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, in.data(), in.size(), out.data(),
                                    &pos, out.size()),
            LZMA_OK);
  out.resize(pos);
  return out;
}

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "capture_set_test.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(dir_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Write(const std::string& name, const Bytes& bytes) const {
    std::string path = dir_ + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary);
    const std::string_view text = parser::AsChars(bytes);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    return path;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// Everything a ByteReader yields, reading `chunk` bytes at a time.
absl::StatusOr<Bytes> ReadAllBytes(const std::string& path, size_t chunk, Bytes* before_error,
                                   Compression* kind, bool threaded = false) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ByteReaderOptions o;
  o.input_block_bytes = 4096;  // several refills even for small inputs
  o.decompress_in_thread = threaded;
  o.decode_block_bytes = 5000;  // blocks that do not line up with anything
  auto r = OpenByteReader(fd, path, o);
  if (!r.ok()) return r.status();
  *kind = (*r)->compression();
  Bytes out;
  Bytes buf(chunk);
  for (;;) {
    auto n = (*r)->Read(buf.data(), buf.size());
    if (!n.ok()) {
      *before_error = out;
      return n.status();
    }
    if (*n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n));
  }
  return out;
}

Bytes Pseudo(size_t n) {
  Bytes b(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    b[i] =
        static_cast<uint8_t>((i % 7 == 0) ? (x >> 24) : (i & 0x3f));  // compressible, not trivial
  }
  return b;
}

TEST(ByteReaderTest, EachCompressionWholeConcatenatedAndAnyReadSize) {
  TempDir tmp;
  const Bytes plain = Pseudo(300'000);
  const Bytes half1(plain.begin(), plain.begin() + 100'000);
  const Bytes half2(plain.begin() + 100'000, plain.end());
  const std::vector<std::tuple<std::string, Bytes, Compression>> cases = {
      {"plain", plain, Compression::kNone},
      {"gz", Gzip(plain), Compression::kGzip},
      {"gz2", Concat(Gzip(half1), Gzip(half2)), Compression::kGzip},
      {"gz_trailing_garbage", Concat(Gzip(plain), Bytes{0, 0, 0, 0, 0}), Compression::kGzip},
      {"zst", Zstd(plain), Compression::kZstd},
      {"zst2", Concat(Zstd(half1), Zstd(half2)), Compression::kZstd},
      {"xz", Xz(plain), Compression::kXz},
      {"xz2", Concat(Xz(half1), Xz(half2)), Compression::kXz},
  };
  for (const auto& [name, bytes, kind] : cases) {
    for (size_t chunk : {size_t{1} << 20, size_t{777}, size_t{1}}) {
      for (bool threaded : {false, true}) {
        if (chunk == 1 && bytes.size() > 200'000 && kind != Compression::kNone) continue;
        SCOPED_TRACE(name + " chunk " + std::to_string(chunk) + (threaded ? " threaded" : ""));
        const std::string path = tmp.Write(name, bytes);
        Bytes partial;
        Compression got_kind{};
        auto got = ReadAllBytes(path, chunk, &partial, &got_kind, threaded);
        ASSERT_TRUE(got.ok()) << got.status();
        EXPECT_EQ(got_kind, kind);
        EXPECT_TRUE(*got == plain);
      }
    }
  }
}

// A gzip member can end with fewer than the two bytes that tell whether another member starts
// left in the input buffer; the reader then keeps them and reads more. The first member here is
// stored (random bytes do not compress), so its size steps by one byte: over these 140 sizes it
// ends at every offset around the first 4096-byte input block's end.
TEST(ByteReaderTest, GzipMembersMeetAnywhereInTheInputBlock) {
  TempDir tmp;
  std::mt19937 rng(7);
  const Bytes second = Pseudo(1000);
  for (size_t n = 4000; n < 4140; ++n) {
    Bytes first(n);
    for (uint8_t& b : first) b = static_cast<uint8_t>(rng());
    for (bool threaded : {false, true}) {
      SCOPED_TRACE(std::to_string(n) + (threaded ? " threaded" : ""));
      const std::string path = tmp.Write("members.gz", Concat(Gzip(first), Gzip(second)));
      Bytes partial;
      Compression kind{};
      auto got = ReadAllBytes(path, size_t{1} << 20, &partial, &kind, threaded);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(*got == Concat(first, second));
    }
  }
}

TEST(ByteReaderTest, CutOrCorruptStreamsAreDamageAfterEverythingBeforeIt) {
  TempDir tmp;
  const Bytes plain = Pseudo(2'000'000);
  for (const auto& [name, packed] : std::vector<std::pair<std::string, Bytes>>{
           {"gz", Gzip(plain)}, {"zst", Zstd(plain)}, {"xz", Xz(plain)}}) {
    for (bool threaded : {false, true}) {
      SCOPED_TRACE(name + (threaded ? " threaded" : ""));
      Bytes cut(packed.begin(), packed.begin() + static_cast<ptrdiff_t>(packed.size() * 3 / 4));
      const std::string path = tmp.Write("cut." + name, cut);
      Bytes partial;
      Compression kind{};
      auto got = ReadAllBytes(path, 65536, &partial, &kind, threaded);
      ASSERT_FALSE(got.ok());
      EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
      EXPECT_THAT(std::string(got.status().message()), HasSubstr(path));
      EXPECT_THAT(std::string(got.status().message()), HasSubstr("offset"));
      // A good part of the data came out first, and it is a prefix of the original.
      EXPECT_GT(partial.size(), plain.size() / 4);
      ASSERT_LE(partial.size(), plain.size());
      EXPECT_TRUE(std::equal(partial.begin(), partial.end(), plain.begin()));

      Bytes flipped = packed;
      flipped[flipped.size() / 2] ^= 0x55;
      flipped[flipped.size() / 2 + 1] ^= 0xaa;
      const std::string bad = tmp.Write("bad." + name, flipped);
      auto got2 = ReadAllBytes(bad, 65536, &partial, &kind, threaded);
      ASSERT_FALSE(got2.ok());
      EXPECT_TRUE(absl::IsDataLoss(got2.status())) << got2.status();
    }
  }
}

struct Got {
  std::vector<uint64_t> ts;
  std::vector<uint32_t> linktypes;
  CaptureSetStats stats;
  size_t max_open = 0;
};

Got ReadSet(const std::vector<std::string>& inputs, const CaptureSetOptions& o = {}) {
  Got g;
  auto set = CaptureSet::Open(inputs, o);
  EXPECT_TRUE(set.ok()) << set.status();
  if (!set.ok()) return g;
  RawPacket pkt;
  for (;;) {
    auto more = (*set)->Next(&pkt);
    EXPECT_TRUE(more.ok());
    if (!more.ok() || !*more) break;
    g.ts.push_back(pkt.ts_ns);
    g.linktypes.push_back(pkt.linktype);
  }
  g.stats = (*set)->stats();
  return g;
}

std::vector<Pkt> Range(uint64_t from_s, uint64_t to_s, uint64_t step_ms = 500) {
  std::vector<Pkt> out;
  for (uint64_t t = from_s * 1000; t < to_s * 1000; t += step_ms) {
    out.push_back({kT0 + t * 1'000'000, Frame(static_cast<uint32_t>(t))});
  }
  return out;
}

std::vector<uint64_t> Times(const std::vector<Pkt>& pkts) {
  std::vector<uint64_t> out;
  out.reserve(pkts.size());
  for (const Pkt& p : pkts) out.push_back(p.ts_ns);
  return out;
}

TEST(CaptureSetTest, RotatedFilesAreOneStreamOneFileOpenAtATime) {
  TempDir tmp;
  std::vector<std::string> paths;
  std::vector<uint64_t> want;
  for (uint64_t i = 0; i < 5; ++i) {
    const auto pkts = Range(10 * i, 10 * i + 10);
    const auto t = Times(pkts);
    want.insert(want.end(), t.begin(), t.end());
    // Names sort in another order than time: the content decides.
    paths.push_back(tmp.Write("rot-" + std::to_string(9 - i) + ".pcap", Pcap(1, pkts)));
  }
  const Got g = ReadSet(paths);
  EXPECT_EQ(g.ts, want);
  EXPECT_EQ(g.stats.files_total, 5u);
  EXPECT_EQ(g.stats.files_done, 5u);
  EXPECT_EQ(g.stats.max_open, 1u);
  EXPECT_TRUE(g.stats.errors.empty());
  // Any argument order: the same stream.
  std::reverse(paths.begin(), paths.end());
  EXPECT_EQ(ReadSet(paths).ts, want);
}

TEST(CaptureSetTest, OverlappingFilesAreMergedByTimestampDeterministically) {
  TempDir tmp;
  const auto a = Range(0, 20, 300);
  const auto b = Range(5, 25, 700);
  const auto c = Range(30, 40, 100);
  const std::string pa = tmp.Write("a.pcap", Pcap(1, a));
  const std::string pb = tmp.Write("b.pcap.zst", Zstd(Pcap(1, b)));
  const std::string pc = tmp.Write("c.pcap.xz", Xz(Pcap(1, c)));
  std::vector<uint64_t> want = Times(a);
  for (const auto& v : {Times(b), Times(c)}) want.insert(want.end(), v.begin(), v.end());
  std::stable_sort(want.begin(), want.end());
  const Got g1 = ReadSet({pa, pb, pc});
  EXPECT_EQ(g1.ts, want);
  EXPECT_EQ(g1.stats.max_open, 2u);  // a and b overlap; c follows them
  EXPECT_EQ(ReadSet({pc, pb, pa}).ts, want);
  EXPECT_EQ(ReadSet({pb, pc, pa}).ts, want);
}

TEST(CaptureSetTest, EqualTimestampsComeInFileOrderThenInFileOrder) {
  TempDir tmp;
  // Both files start at kT0; "x" sorts before "y". Each packet's id tells which file it is.
  const std::vector<Pkt> x = {{kT0, Frame(1)}, {kT0 + 5, Frame(2)}};
  const std::vector<Pkt> y = {{kT0, Frame(11)}, {kT0 + 5, Frame(12)}, {kT0 + 5, Frame(13)}};
  const std::string px = tmp.Write("x.pcap", Pcap(1, x));
  const std::string py = tmp.Write("y.pcap", Pcap(1, y));
  for (const auto& order : {std::vector<std::string>{px, py}, std::vector<std::string>{py, px}}) {
    auto set = CaptureSet::Open(order);
    ASSERT_TRUE(set.ok());
    std::vector<uint8_t> ids;
    RawPacket pkt;
    while (*(*set)->Next(&pkt)) ids.push_back(pkt.data[14 + 20 + 7]);  // low byte of the seq
    EXPECT_THAT(ids, ElementsAre(1, 11, 2, 12, 13));
  }
}

TEST(CaptureSetTest, DirectoriesByContentSkippingOtherFilesAndGlobs) {
  TempDir tmp;
  const auto a = Range(0, 10);
  const auto b = Range(10, 20);
  const auto c = Range(20, 30);
  tmp.Write("arch/day1/a.bin", Gzip(Pcap(1, a)));
  tmp.Write("arch/day2/b", Zstd(Pcap(1, b)));
  tmp.Write("arch/day2/c.cap.xz", Xz(Pcap(1, c)));
  tmp.Write("arch/README.txt", {'h', 'e', 'l', 'l', 'o', '\n'});
  tmp.Write("arch/notes.gz", Gzip({'n', 'o', 't', ' ', 'a', ' ', 'p', 'c', 'a', 'p'}));
  tmp.Write("arch/empty", {});
  std::vector<uint64_t> want = Times(a);
  for (const auto& v : {Times(b), Times(c)}) want.insert(want.end(), v.begin(), v.end());

  const Got g = ReadSet({tmp.dir() + "/arch"});
  EXPECT_EQ(g.ts, want);
  EXPECT_EQ(g.stats.files_total, 3u);
  EXPECT_EQ(g.stats.files_skipped, 3u);
  EXPECT_TRUE(g.stats.errors.empty());

  // A glob the shell did not expand; the same file twice is read once.
  const Got gg = ReadSet({tmp.dir() + "/arch/day*", tmp.dir() + "/arch/day2/b"});
  EXPECT_EQ(gg.ts, want);
  EXPECT_EQ(gg.stats.duplicates, 1u);

  // Named explicitly, a file that is not a capture is an error naming it.
  const Got ge = ReadSet({tmp.dir() + "/arch/README.txt", tmp.dir() + "/arch/day1/a.bin"});
  EXPECT_EQ(ge.ts, Times(a));
  ASSERT_EQ(ge.stats.errors.size(), 1u);
  EXPECT_THAT(ge.stats.errors[0], HasSubstr("README.txt"));

  const Got gm = ReadSet({tmp.dir() + "/nothing*.pcap", tmp.dir() + "/missing.pcap"});
  EXPECT_TRUE(gm.ts.empty());
  ASSERT_EQ(gm.stats.errors.size(), 2u);
  EXPECT_THAT(gm.stats.errors[0], HasSubstr("no file matches"));
  EXPECT_THAT(gm.stats.errors[1], HasSubstr("missing.pcap"));
}

TEST(CaptureSetTest, DamagedFileInTheMiddleKeepsWhatCameBeforeAndGoesOn) {
  TempDir tmp;
  const auto a = Range(0, 10);
  const auto b = Range(10, 20);
  const auto c = Range(20, 30);
  Bytes mid = Pcap(1, b);
  const size_t record = 16 + b[0].data.size();
  mid.resize(24 + 7 * record + 20);  // 7 whole records, then a cut one
  const std::string pa = tmp.Write("a.pcap", Pcap(1, a));
  const std::string pb = tmp.Write("b.pcap", mid);
  const std::string pc = tmp.Write("c.pcap.zst", Zstd(Pcap(1, c)));
  std::vector<uint64_t> want = Times(a);
  const std::vector<uint64_t> tb = Times(b);
  want.insert(want.end(), tb.begin(), tb.begin() + 7);
  for (uint64_t t : Times(c)) want.push_back(t);
  const Got g = ReadSet({pc, pb, pa});
  EXPECT_EQ(g.ts, want);
  ASSERT_EQ(g.stats.errors.size(), 1u);
  EXPECT_THAT(g.stats.errors[0], HasSubstr(pb));
  EXPECT_THAT(g.stats.errors[0], HasSubstr("offset " + std::to_string(24 + 7 * record)));
  EXPECT_EQ(g.stats.files_done, 3u);
}

TEST(CaptureSetTest, SinceUntilAndFilterSelectAndCount) {
  TempDir tmp;
  std::vector<Pkt> eth;
  std::vector<Pkt> raw;
  for (uint32_t i = 0; i < 40; ++i) {
    const uint16_t port = i % 2 == 0 ? 5432 : 6432;
    eth.push_back({kT0 + uint64_t{i} * kSec, Frame(i, port)});
    raw.push_back({kT0 + uint64_t{i} * kSec + 1, RawIp(100 + i, port)});
  }
  const std::string pe = tmp.Write("eth.pcap", Pcap(1, eth));
  const std::string pr = tmp.Write("raw.pcap", Pcap(101, raw));
  CaptureSetOptions o;
  o.since_ns = kT0 + 10 * kSec;  // inclusive
  o.until_ns = kT0 + 30 * kSec;  // exclusive
  const Got w = ReadSet({pe, pr}, o);
  EXPECT_EQ(w.ts.size(), 40u);  // 20 seconds of two files
  EXPECT_EQ(w.ts.front(), kT0 + 10 * kSec);
  EXPECT_EQ(w.ts.back(), kT0 + 29 * kSec + 1);
  EXPECT_EQ(w.stats.before_since, 20u);
  EXPECT_EQ(w.stats.after_until, 20u);
  EXPECT_EQ(w.stats.packets, 80u);

  o.filter = "tcp dst port 6432";
  const Got f = ReadSet({pe, pr}, o);
  EXPECT_EQ(f.ts.size(), 20u);  // odd seconds only, both link types
  EXPECT_EQ(f.stats.filtered_out, 20u);
  EXPECT_TRUE(f.stats.errors.empty());
  EXPECT_TRUE(std::count(f.linktypes.begin(), f.linktypes.end(), 101u) == 10);
  for (uint64_t t : f.ts) EXPECT_EQ((t - kT0) / kSec % 2, 1u);

  CaptureSetOptions bad;
  bad.filter = "tcp port";
  EXPECT_FALSE(CaptureSet::Open({pe}, bad).ok());
  EXPECT_FALSE(ValidateFilter("host").ok());
  EXPECT_TRUE(ValidateFilter("host 10.0.0.5 and tcp").ok());

  // A file that starts after --until is not opened at all.
  CaptureSetOptions late;
  late.until_ns = kT0 + 5 * kSec;
  const std::string pl = tmp.Write("late.pcap", Pcap(1, Range(100, 110)));
  const Got l = ReadSet({pe, pl}, late);
  EXPECT_EQ(l.ts.size(), 5u);
  EXPECT_EQ(l.stats.files_after_until, 1u);
}

TEST(CaptureSetTest, ManyFilesStayBounded) {
  TempDir tmp;
  // 300 rotated files: one open at a time. 200 files covering the same second: all open,
  // each with a buffer shrunk to fit the budget.
  std::vector<std::string> rotated;
  std::vector<std::string> overlapping;
  std::vector<uint64_t> want_overlap;
  for (uint32_t i = 0; i < 300; ++i) {
    rotated.push_back(tmp.Write("r/" + std::to_string(i) + ".pcap",
                                Pcap(1, {{kT0 + uint64_t{i} * kSec, Frame(i)},
                                         {kT0 + uint64_t{i} * kSec + 500'000'000, Frame(i)}})));
  }
  for (uint32_t i = 0; i < 200; ++i) {
    const std::vector<Pkt> p = {{kT0 + i, Frame(i)}, {kT0 + 1000 + i, Frame(i)}};
    overlapping.push_back(tmp.Write("o/" + std::to_string(i) + ".pcap", Pcap(1, p)));
    for (const Pkt& x : p) want_overlap.push_back(x.ts_ns);
  }
  std::sort(want_overlap.begin(), want_overlap.end());
  const Got r = ReadSet({tmp.dir() + "/r"});
  EXPECT_EQ(r.ts.size(), 600u);
  EXPECT_TRUE(std::is_sorted(r.ts.begin(), r.ts.end()));
  EXPECT_EQ(r.stats.max_open, 1u);
  const Got o = ReadSet({tmp.dir() + "/o"});
  EXPECT_EQ(o.ts, want_overlap);
  EXPECT_EQ(o.stats.max_open, 200u);
}

TEST(ParseTimeArgTest, Rfc3339AndEpoch) {
  EXPECT_EQ(*ParseTimeArg("2026-03-01T00:00:00Z"), kT0);
  EXPECT_EQ(*ParseTimeArg("2026-03-01T01:00:00+01:00"), kT0);
  EXPECT_EQ(*ParseTimeArg("2026-03-01T00:00:00.25Z"), kT0 + kSec / 4);
  EXPECT_EQ(*ParseTimeArg("1772323200"), kT0);
  EXPECT_EQ(*ParseTimeArg("1772323200.5"), kT0 + kSec / 2);
  EXPECT_EQ(*ParseTimeArg("1772323200.000000001"), kT0 + 1);
  for (const char* bad : {"", "yesterday", "2026-03-01", "2026-13-01T00:00:00Z", "1.2.3", "12.",
                          "-5", "1772323200.0000000001"}) {
    EXPECT_FALSE(ParseTimeArg(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace pgtlsmon::capture
