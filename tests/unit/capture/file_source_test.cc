// Tests for capture/file_source.h (and the libpcap fallback of capture/open_capture.h):
// every capture of the shared corpus is read by FileSource and by libpcap itself and the two
// must agree packet for packet; gzip'ed and damaged files are built in a temporary directory.
#include "capture/file_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "capture/open_capture.h"
#include "capture/pcap_source.h"
#include "parser/text.h"
#include "tests/testing/shared_dir.h"

namespace pgtlsmon::capture {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Packet {
  uint64_t ts_ns = 0;
  uint32_t caplen = 0;
  uint32_t wire_len = 0;
  uint32_t linktype = 0;
  std::vector<uint8_t> data;
};

struct ReadResult {
  std::vector<Packet> packets;
  absl::Status error;  // OK at a clean end
};

ReadResult ReadAll(PacketSource& src) {
  ReadResult out;
  RawPacket pkt;
  for (;;) {
    auto r = src.Next(&pkt);
    if (!r.ok()) {
      out.error = r.status();
      break;
    }
    if (!*r) break;
    out.packets.push_back({pkt.ts_ns, pkt.caplen, pkt.wire_len, pkt.linktype,
                           std::vector<uint8_t>(pkt.data.begin(), pkt.data.end())});
  }
  // Errors are sticky; a clean end stays an end.
  auto again = src.Next(&pkt);
  if (out.error.ok()) {
    EXPECT_TRUE(again.ok() && !*again);
  } else {
    EXPECT_EQ(again.status(), out.error);
  }
  return out;
}

ReadResult ReadFile(const std::string& path, const FileSourceOptions& opts = {}) {
  auto src = FileSource::Open(path, opts);
  if (!src.ok()) return {{}, src.status()};
  return ReadAll(**src);
}

// libpcap's own reading, with nanosecond timestamps.
ReadResult ReadWithLibpcap(const std::string& path, uint32_t* dlt) {
  ReadResult out;
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t* p =
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (p == nullptr) {
    out.error = absl::InvalidArgumentError(errbuf);
    return out;
  }
  *dlt = static_cast<uint32_t>(pcap_datalink(p));
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
    const std::span<const uint8_t> frame(d, h->caplen);
    out.packets.push_back(
        {static_cast<uint64_t>(h->ts.tv_sec) * 1000000000u + static_cast<uint64_t>(h->ts.tv_usec),
         h->caplen, h->len, *dlt, std::vector<uint8_t>(frame.begin(), frame.end())});
  }
  if (rc == PCAP_ERROR) out.error = absl::DataLossError(pcap_geterr(p));
  pcap_close(p);
  return out;
}

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(PGTLS_SHARED_DIR "/corpus")) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".pcap" || ext == ".pcapng")) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<uint8_t> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "file_source_test.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    const std::string_view text = parser::AsChars(bytes);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    return path;
  }
  std::string WriteGzip(const std::string& name, const std::vector<uint8_t>& bytes,
                        int members = 1) const {
    std::string path = dir_ + "/" + name;
    // Each member is an independent gzip stream appended to the file (as `cat a.gz b.gz`).
    const size_t per = bytes.size() / static_cast<size_t>(members) + 1;
    for (int m = 0; m < members; ++m) {
      gzFile gz = gzopen(path.c_str(), m == 0 ? "wb6" : "ab6");
      const size_t from = std::min(bytes.size(), per * static_cast<size_t>(m));
      const size_t to = std::min(bytes.size(), from + per);
      const auto part = std::span<const uint8_t>(bytes).subspan(from, to - from);
      if (!part.empty()) gzwrite(gz, part.data(), static_cast<unsigned>(part.size()));
      gzclose(gz);
    }
    return path;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

void ExpectSamePackets(const std::vector<Packet>& got, const std::vector<Packet>& want,
                       bool compare_linktype = false) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "packet " << i);
    EXPECT_EQ(got[i].ts_ns, want[i].ts_ns);
    EXPECT_EQ(got[i].caplen, want[i].caplen);
    EXPECT_EQ(got[i].wire_len, want[i].wire_len);
    EXPECT_TRUE(got[i].data == want[i].data);
    if (compare_linktype) {
      EXPECT_EQ(got[i].linktype, want[i].linktype);
    }
  }
}

// libpcap reports DLT_ values; files carry LINKTYPE_ values. They differ for raw IP only.
uint32_t DltToLinktype(uint32_t dlt) { return dlt == 12 ? 101 : dlt; }

TEST(FileSourceTest, CorpusMatchesLibpcap) {
  PGTLS_SKIP_WITHOUT_SHARED();
  const auto files = CorpusFiles();
  ASSERT_GE(files.size(), 40u);
  size_t pcapng = 0;
  size_t damaged = 0;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    uint32_t dlt = 0;
    const ReadResult want = ReadWithLibpcap(path, &dlt);
    const ReadResult got = ReadFile(path);
    ExpectSamePackets(got.packets, want.packets);
    ASSERT_FALSE(got.packets.empty());
    for (const Packet& p : got.packets) ASSERT_EQ(p.linktype, DltToLinktype(dlt));
    // Where libpcap finds damage (a capture cut short mid-packet), so do we, with an offset.
    EXPECT_EQ(got.error.ok(), want.error.ok()) << got.error << " vs " << want.error;
    if (!got.error.ok()) {
      ++damaged;
      EXPECT_THAT(std::string(got.error.message()), HasSubstr(path));
      EXPECT_THAT(std::string(got.error.message()), HasSubstr("at offset "));
    }
    if (path.ends_with(".pcapng")) ++pcapng;
  }
  EXPECT_GE(pcapng, 5u);
  EXPECT_GE(damaged, 1u);  // suricata-verify's pgsql-5000-query-results.pcap is cut short
}

TEST(FileSourceTest, CorpusWithSmallBufferAndGzip) {
  PGTLS_SKIP_WITHOUT_SHARED();
  TempDir tmp;
  FileSourceOptions small;
  small.read_chunk_bytes = 1;  // raised to the 64 KiB minimum: many records straddle its end
  for (const std::string& path : CorpusFiles()) {
    SCOPED_TRACE(path);
    const ReadResult want = ReadFile(path);
    ExpectSamePackets(ReadFile(path, small).packets, want.packets, true);

    const std::string gz = tmp.WriteGzip(fs::path(path).filename().string() + ".gz", Slurp(path));
    auto src = FileSource::Open(gz, small);
    ASSERT_TRUE(src.ok()) << src.status();
    EXPECT_TRUE((*src)->compressed());
    const ReadResult got = ReadAll(**src);
    ExpectSamePackets(got.packets, want.packets, true);
    EXPECT_EQ(got.error.ok(), want.error.ok()) << got.error;
    EXPECT_EQ((*src)->bytes_read(), (*src)->file_size());
  }
}

TEST(FileSourceTest, GzipMultiMemberAndTruncated) {
  PGTLS_SKIP_WITHOUT_SHARED();
  TempDir tmp;
  const std::string path = PGTLS_SHARED_DIR "/corpus/real_tls13_default.pcap";
  const std::vector<uint8_t> bytes = Slurp(path);
  const ReadResult want = ReadFile(path);
  ExpectSamePackets(ReadFile(tmp.WriteGzip("multi.pcap.gz", bytes, 3)).packets, want.packets);

  // A gzip file cut in half: the packets before the cut, then an error naming the file.
  std::vector<uint8_t> gz = Slurp(tmp.WriteGzip("whole.pcap.gz", bytes));
  gz.resize(gz.size() / 2);
  const std::string cut = tmp.Write("cut.pcap.gz", gz);
  const ReadResult got = ReadFile(cut);
  EXPECT_FALSE(got.error.ok());
  EXPECT_THAT(std::string(got.error.message()), HasSubstr(cut));
  EXPECT_GT(got.packets.size(), 0u);
  ASSERT_LT(got.packets.size(), want.packets.size());
  ExpectSamePackets(
      got.packets,
      std::vector<Packet>(want.packets.begin(),
                          want.packets.begin() + static_cast<std::ptrdiff_t>(got.packets.size())));
}

// ---- Files built byte by byte ----

struct Bytes {
  std::vector<uint8_t> b;
  bool big_endian = false;
  Bytes& U8(uint32_t v) {
    b.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Bytes& U16(uint32_t v) { return big_endian ? U8(v >> 8).U8(v) : U8(v).U8(v >> 8); }
  Bytes& U32(uint32_t v) {
    return big_endian ? U16(v >> 16).U16(v & 0xffff) : U16(v & 0xffff).U16(v >> 16);
  }
  Bytes& Data(size_t n, uint8_t fill) {
    b.insert(b.end(), n, fill);
    return *this;
  }
  Bytes& Pad4() {
    while (b.size() % 4 != 0) b.push_back(0);
    return *this;
  }
  size_t size() const { return b.size(); }
};

// A classic pcap file header.
Bytes PcapHeader(uint32_t magic = 0xa1b2c3d4, bool big_endian = false, uint32_t snaplen = 65535,
                 uint32_t linktype = 1) {
  Bytes f;
  f.big_endian = big_endian;
  f.U32(magic);     // magic: micro- or nanosecond timestamps
  f.U16(2);         // version major
  f.U16(4);         // version minor
  f.U32(0);         // thiszone
  f.U32(0);         // sigfigs
  f.U32(snaplen);   // snaplen
  f.U32(linktype);  // link type
  return f;
}

// A pcap record header and `caplen` bytes of `fill`.
void PcapRecord(Bytes& f, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
                uint8_t fill) {
  f.U32(sec);     // ts seconds
  f.U32(frac);    // ts micro/nanoseconds
  f.U32(caplen);  // captured length
  f.U32(len);     // original length
  f.Data(caplen, fill);
}

TEST(FileSourceTest, PcapByteOrdersAndResolutions) {
  TempDir tmp;
  for (bool be : {false, true}) {
    for (uint32_t magic : {0xa1b2c3d4u, 0xa1b23c4du}) {
      Bytes f = PcapHeader(magic, be, 65535, 113);
      PcapRecord(f, 1700000000, 123456, 60, 60, 0xaa);
      PcapRecord(f, 1700000001, 999999, 10, 1514, 0xbb);
      const ReadResult r = ReadFile(tmp.Write("o.pcap", f.b));
      ASSERT_TRUE(r.error.ok()) << r.error;
      ASSERT_EQ(r.packets.size(), 2u);
      const uint64_t mul = magic == 0xa1b2c3d4u ? 1000 : 1;
      EXPECT_EQ(r.packets[0].ts_ns, 1700000000ull * 1000000000ull + 123456 * mul);
      EXPECT_EQ(r.packets[1].ts_ns, 1700000001ull * 1000000000ull + 999999 * mul);
      EXPECT_EQ(r.packets[1].caplen, 10u);
      EXPECT_EQ(r.packets[1].wire_len, 1514u);
      EXPECT_EQ(r.packets[0].linktype, 113u);
      EXPECT_EQ(r.packets[1].data, std::vector<uint8_t>(10, 0xbb));
    }
  }
}

TEST(FileSourceTest, ModifiedPcapRecordHeaders) {
  TempDir tmp;
  Bytes f = PcapHeader(0xa1b2cd34);  // Kuznetzov's patched libpcap: 24-byte record headers
  for (uint8_t i = 1; i <= 2; ++i) {
    f.U32(100 + i);  // ts seconds
    f.U32(5);        // ts microseconds
    f.U32(30);       // captured length
    f.U32(30);       // original length
    f.U32(2);        // ifindex
    f.U16(0x0800);   // protocol
    f.U8(0);         // packet type
    f.U8(0);         // padding
    f.Data(30, i);
  }
  const ReadResult r = ReadFile(tmp.Write("kuz.pcap", f.b));
  ASSERT_TRUE(r.error.ok()) << r.error;
  ASSERT_EQ(r.packets.size(), 2u);
  EXPECT_EQ(r.packets[1].ts_ns, 102000005000u);
  EXPECT_EQ(r.packets[1].data, std::vector<uint8_t>(30, 2));
}

TEST(FileSourceTest, BadMagicAndShortFiles) {
  TempDir tmp;
  const std::string bad = tmp.Write("bad.pcap", {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'});
  auto src = FileSource::Open(bad);
  ASSERT_FALSE(src.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(src.status()));
  EXPECT_THAT(std::string(src.status().message()), HasSubstr(bad));
  EXPECT_THAT(std::string(src.status().message()), HasSubstr("at offset 0"));
  // The combined opener asks libpcap, which does not know the file either: FileSource's error.
  auto any = OpenCaptureFile(bad);
  ASSERT_FALSE(any.ok());
  EXPECT_THAT(std::string(any.status().message()), HasSubstr("at offset 0"));

  EXPECT_FALSE(FileSource::Open(tmp.Write("empty.pcap", {})).ok());
  Bytes h = PcapHeader();
  h.b.resize(20);
  auto short_header = FileSource::Open(tmp.Write("short.pcap", h.b));
  ASSERT_FALSE(short_header.ok());
  EXPECT_THAT(std::string(short_header.status().message()), HasSubstr("truncated"));
  EXPECT_FALSE(FileSource::Open(tmp.dir() + "/does-not-exist.pcap").ok());
}

TEST(FileSourceTest, TruncatedRecordGivesPacketsThenError) {
  TempDir tmp;
  Bytes f = PcapHeader();
  PcapRecord(f, 1, 0, 100, 100, 1);
  PcapRecord(f, 2, 0, 100, 100, 2);
  const size_t third = f.size();  // 24 + 2 * 116 = 256
  PcapRecord(f, 3, 0, 100, 100, 3);
  for (size_t cut : {third + 8, third + 16, third + 60}) {  // in the header, in the data
    std::vector<uint8_t> bytes = f.b;
    bytes.resize(cut);
    const std::string path = tmp.Write("trunc.pcap", bytes);
    const ReadResult r = ReadFile(path);
    EXPECT_EQ(r.packets.size(), 2u);
    ASSERT_FALSE(r.error.ok());
    EXPECT_TRUE(absl::IsDataLoss(r.error));
    EXPECT_THAT(std::string(r.error.message()), HasSubstr(path));
    EXPECT_THAT(std::string(r.error.message()), HasSubstr("truncated"));
    EXPECT_THAT(std::string(r.error.message()), HasSubstr("at offset 256"));
  }
}

TEST(FileSourceTest, AbsurdCaplenIsAnErrorNotAnAllocation) {
  TempDir tmp;
  Bytes f = PcapHeader();
  PcapRecord(f, 1, 0, 60, 60, 1);
  f.U32(2).U32(0).U32(0xfffffff0).U32(0xfffffff0);  // a header claiming 4 GB
  f.Data(100, 0);
  const ReadResult r = ReadFile(tmp.Write("huge.pcap", f.b));
  EXPECT_EQ(r.packets.size(), 1u);
  ASSERT_FALSE(r.error.ok());
  EXPECT_THAT(std::string(r.error.message()), HasSubstr("at offset 100"));
  EXPECT_THAT(std::string(r.error.message()), HasSubstr("4294967280"));

  // Above the file's snaplen, though below the maximum.
  Bytes g = PcapHeader(0xa1b2c3d4, false, 96);
  PcapRecord(g, 1, 0, 96, 1514, 1);
  PcapRecord(g, 1, 0, 200, 1514, 1);
  const ReadResult s = ReadFile(tmp.Write("snap.pcap", g.b));
  EXPECT_EQ(s.packets.size(), 1u);
  EXPECT_THAT(std::string(s.error.message()), HasSubstr("snaplen 96"));
  EXPECT_THAT(std::string(s.error.message()), HasSubstr("at offset 136"));
  FileSourceOptions lenient;
  lenient.strict_snaplen = false;
  const ReadResult l = ReadFile(tmp.dir() + "/snap.pcap", lenient);
  EXPECT_TRUE(l.error.ok()) << l.error;
  EXPECT_EQ(l.packets.size(), 2u);
}

TEST(FileSourceTest, ZeroLengthCaplenOverLenAndBackwardsTime) {
  TempDir tmp;
  Bytes f = PcapHeader();
  PcapRecord(f, 10, 0, 0, 0, 0);   // a zero-length packet
  PcapRecord(f, 9, 0, 50, 40, 7);  // caplen > len, and time goes backwards
  PcapRecord(f, 11, 0, 20, 20, 8);
  auto src = FileSource::Open(tmp.Write("odd.pcap", f.b));
  ASSERT_TRUE(src.ok());
  const ReadResult r = ReadAll(**src);
  ASSERT_TRUE(r.error.ok()) << r.error;
  ASSERT_EQ(r.packets.size(), 3u);
  EXPECT_EQ(r.packets[0].caplen, 0u);
  EXPECT_TRUE(r.packets[0].data.empty());
  EXPECT_EQ(r.packets[1].caplen, 50u);
  EXPECT_EQ(r.packets[1].wire_len, 50u);  // raised to caplen
  EXPECT_EQ(r.packets[1].ts_ns, 9000000000u);
  const FileSourceStats& st = (*src)->stats();
  EXPECT_EQ(st.records, 3u);
  EXPECT_EQ(st.packet_bytes, 70u);
  EXPECT_EQ(st.caplen_over_len, 1u);
  EXPECT_EQ(st.ts_backwards, 1u);
}

TEST(FileSourceTest, PacketBiggerThanTheBufferGrowsIt) {
  TempDir tmp;
  Bytes f = PcapHeader(0xa1b2c3d4, false, 262144);
  PcapRecord(f, 1, 0, 1000, 1000, 1);
  PcapRecord(f, 2, 0, 200000, 200000, 2);  // three times the 64 KiB buffer
  PcapRecord(f, 3, 0, 1000, 1000, 3);
  FileSourceOptions opts;
  opts.read_chunk_bytes = size_t{64} * 1024;
  const ReadResult r = ReadFile(tmp.Write("big.pcap", f.b), opts);
  ASSERT_TRUE(r.error.ok()) << r.error;
  ASSERT_EQ(r.packets.size(), 3u);
  EXPECT_EQ(r.packets[1].data, std::vector<uint8_t>(200000, 2));
  EXPECT_EQ(r.packets[2].data, std::vector<uint8_t>(1000, 3));
}

// ---- pcapng ----

void Shb(Bytes& f) {
  f.U32(0x0a0d0d0a);  // block type: section header
  f.U32(28);          // block total length
  f.U32(0x1a2b3c4d);  // byte-order magic
  f.U16(1);           // major version
  f.U16(0);           // minor version
  f.U32(0xffffffff);  // section length: unknown (64 bits)
  f.U32(0xffffffff);
  f.U32(28);  // block total length
}

void Idb(Bytes& f, uint16_t linktype, uint32_t snaplen, int tsresol = -1) {
  const uint32_t len = tsresol >= 0 ? 20 + 8 + 4 : 20;
  f.U32(1);         // block type: interface description
  f.U32(len);       // block total length
  f.U16(linktype);  // link type
  f.U16(0);         // reserved
  f.U32(snaplen);   // snaplen
  if (tsresol >= 0) {
    f.U16(9);                                                // option if_tsresol
    f.U16(1);                                                // option length
    f.U8(static_cast<uint32_t>(tsresol)).U8(0).U8(0).U8(0);  // value, padding
    f.U16(0);                                                // opt_endofopt
    f.U16(0);
  }
  f.U32(len);  // block total length
}

void Epb(Bytes& f, uint32_t if_id, uint64_t ts, uint32_t caplen, uint32_t len, uint8_t fill) {
  const uint32_t total = 32 + ((caplen + 3) & ~3u);
  f.U32(6);                                // block type: enhanced packet
  f.U32(total);                            // block total length
  f.U32(if_id);                            // interface id
  f.U32(static_cast<uint32_t>(ts >> 32));  // timestamp (high)
  f.U32(static_cast<uint32_t>(ts));        // timestamp (low)
  f.U32(caplen);                           // captured length
  f.U32(len);                              // original length
  f.Data(caplen, fill).Pad4();             // packet data, padded to 32 bits
  f.U32(total);                            // block total length
}

void Spb(Bytes& f, uint32_t len, uint8_t fill) {
  const uint32_t total = 16 + ((len + 3) & ~3u);
  f.U32(3);                  // block type: simple packet
  f.U32(total);              // block total length
  f.U32(len);                // original length
  f.Data(len, fill).Pad4();  // packet data
  f.U32(total);              // block total length
}

void UnknownBlock(Bytes& f) {
  f.U32(0x00000bad);  // a block type nobody defined
  f.U32(20);          // block total length
  f.U32(1).U32(2);    // body
  f.U32(20);          // block total length
}

TEST(FileSourceTest, PcapngSectionsInterfacesAndBlocks) {
  TempDir tmp;
  Bytes le;
  Shb(le);
  Idb(le, 1, 0);                 // interface 0: Ethernet, microseconds (default)
  Idb(le, 113, 0, 9);            // interface 1: SLL, nanoseconds
  Idb(le, 101, 128, 0x80 | 10);  // interface 2: raw IP, 2^-10 s, snaplen 128
  Epb(le, 0, 1700000000123456ull, 60, 60, 1);
  UnknownBlock(le);
  Epb(le, 1, 1700000000123456789ull, 61, 61, 2);
  Epb(le, 2, uint64_t{1700000000} * 1024 + 512, 62, 1500, 3);
  Spb(le, 70, 4);
  // A second section, big-endian, with its own interfaces.
  Bytes be;
  be.big_endian = true;
  Shb(be);
  Idb(be, 228, 0, 3);  // IPv4, milliseconds
  Epb(be, 0, 1700000000999ull, 40, 40, 5);
  le.b.insert(le.b.end(), be.b.begin(), be.b.end());

  const std::string path = tmp.Write("multi.pcapng", le.b);
  auto src = FileSource::Open(path);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ((*src)->format(), FileFormat::kPcapNg);
  const ReadResult r = ReadAll(**src);
  ASSERT_TRUE(r.error.ok()) << r.error;
  ASSERT_EQ(r.packets.size(), 5u);
  EXPECT_EQ(r.packets[0].ts_ns, 1700000000123456000ull);
  EXPECT_EQ(r.packets[0].linktype, 1u);
  EXPECT_EQ(r.packets[1].ts_ns, 1700000000123456789ull);
  EXPECT_EQ(r.packets[1].linktype, 113u);
  EXPECT_EQ(r.packets[2].ts_ns, 1700000000500000000ull);
  EXPECT_EQ(r.packets[2].linktype, 101u);
  EXPECT_EQ(r.packets[2].wire_len, 1500u);
  EXPECT_EQ(r.packets[3].ts_ns, 0u);  // SPB: no timestamp, interface 0
  EXPECT_EQ(r.packets[3].caplen, 70u);
  EXPECT_EQ(r.packets[3].linktype, 1u);
  EXPECT_EQ(r.packets[3].data, std::vector<uint8_t>(70, 4));
  EXPECT_EQ(r.packets[4].ts_ns, 1700000000999000000ull);
  EXPECT_EQ(r.packets[4].linktype, 228u);
  EXPECT_EQ(r.packets[4].data, std::vector<uint8_t>(40, 5));
  EXPECT_EQ((*src)->stats().skipped_blocks, 1u);
  EXPECT_EQ((*src)->stats().sections, 2u);
  EXPECT_EQ((*src)->stats().ts_backwards, 0u);

  // gzip'ed, read through a small buffer: the same packets.
  FileSourceOptions small;
  small.read_chunk_bytes = 1;
  ExpectSamePackets(ReadFile(tmp.WriteGzip("multi.pcapng.gz", le.b), small).packets, r.packets,
                    true);
}

TEST(FileSourceTest, PcapngDamage) {
  TempDir tmp;
  Bytes good;
  Shb(good);
  Idb(good, 1, 0);
  Epb(good, 0, 1, 60, 60, 1);
  const size_t second = good.size();  // 28 + 20 + 92 = 140
  ASSERT_EQ(second, 140u);

  struct Case {
    const char* name;
    std::vector<uint8_t> tail;
    const char* message;
  };
  auto block = [](uint32_t type, uint32_t len, uint32_t trailer, size_t body) {
    Bytes b;
    b.U32(type).U32(len).Data(body, 0).U32(trailer);
    return b.b;
  };
  Bytes epb_bad_if;
  Epb(epb_bad_if, 3, 1, 60, 60, 1);
  Bytes epb_truncated;
  Epb(epb_truncated, 0, 1, 60, 60, 1);
  epb_truncated.b.resize(50);
  Bytes epb_overrun;  // caplen larger than the block
  epb_overrun.U32(6).U32(40).U32(0).U32(0).U32(0).U32(200).U32(200).U32(0).U32(0).U32(40);
  const std::vector<Case> cases = {
      {"length not a multiple of 4", block(6, 30, 30, 18), "bad block length 30"},
      {"length below 12", block(6, 8, 8, 0), "bad block length 8"},
      {"length of 4 GB", block(6, 0xfffffffc, 0xfffffffc, 16), "block length 4294967292"},
      {"trailer mismatch", block(0xbad, 20, 24, 8), "trailer"},
      {"unknown interface", epb_bad_if.b, "interface 3"},
      {"truncated block", epb_truncated.b, "truncated block"},
      {"caplen overruns block", epb_overrun.b, "overruns"},
      {"truncated block header", {6, 0, 0, 0, 92}, "truncated block header"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> bytes = good.b;
    bytes.insert(bytes.end(), c.tail.begin(), c.tail.end());
    const std::string path = tmp.Write("damaged.pcapng", bytes);
    const ReadResult r = ReadFile(path);
    EXPECT_EQ(r.packets.size(), 1u);
    ASSERT_FALSE(r.error.ok());
    EXPECT_THAT(std::string(r.error.message()), HasSubstr(path));
    EXPECT_THAT(std::string(r.error.message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(r.error.message()), HasSubstr("at offset 140"));
  }

  Bytes bad_bom;
  bad_bom.U32(0x0a0d0d0a).U32(28).U32(0x12345678).U16(1).U16(0).U32(0).U32(0).U32(28);
  const ReadResult r = ReadFile(tmp.Write("bom.pcapng", bad_bom.b));
  EXPECT_THAT(std::string(r.error.message()), HasSubstr("byte-order magic"));
}

// Random damage to real files (fixed seed): never a crash or an out-of-bounds read (run under
// ASan), always the clean end or an error naming the file.
TEST(FileSourceTest, MutatedFilesNeverCrash) {
  PGTLS_SKIP_WITHOUT_SHARED();
  TempDir tmp;
  std::mt19937 rng(1234);
  for (const char* name :
       {"/corpus/real_tls13_default.pcap", "/corpus/third_party/ja4/tls-sni.pcapng",
        "/corpus/third_party/ja4/tls12.pcap"}) {
    const std::vector<uint8_t> orig = Slurp(std::string(PGTLS_SHARED_DIR) + name);
    for (int round = 0; round < 200; ++round) {
      std::vector<uint8_t> bytes = orig;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips; ++i) {
        // Leave the first 4 bytes (the magic) alone half of the time.
        const size_t lo = (rng() % 2 == 0) ? 4 : 0;
        bytes[lo + rng() % (bytes.size() - lo)] = static_cast<uint8_t>(rng());
      }
      if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
      const std::string path = tmp.Write("mutated", bytes);
      FileSourceOptions opts;
      opts.max_block_bytes = 1 << 20;
      const ReadResult r = ReadFile(path, opts);
      if (!r.error.ok()) {
        EXPECT_THAT(std::string(r.error.message()), HasSubstr(path));
      }
      for (const Packet& p : r.packets) EXPECT_LE(p.caplen, p.wire_len);
    }
  }
}

TEST(FileSourceTest, ProgressCounters) {
  PGTLS_SKIP_WITHOUT_SHARED();
  const std::string path = PGTLS_SHARED_DIR "/corpus/real_copy_tls12_bulk.pcap";
  FileSourceOptions opts;
  opts.read_chunk_bytes = size_t{64} * 1024;
  auto src = FileSource::Open(path, opts);
  ASSERT_TRUE(src.ok());
  const uint64_t size = (*src)->file_size();
  EXPECT_EQ(size, fs::file_size(path));
  RawPacket pkt;
  auto r = (*src)->Next(&pkt);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_LT((*src)->bytes_read(), size);  // read in chunks, not all at once
  while (true) {
    r = (*src)->Next(&pkt);
    ASSERT_TRUE(r.ok());
    if (!*r) break;
  }
  EXPECT_EQ((*src)->bytes_read(), size);
  EXPECT_EQ((*src)->linktype(), 1u);
}

TEST(OpenCaptureFileTest, UsesTheFastReaderAndLibpcapAgrees) {
  PGTLS_SKIP_WITHOUT_SHARED();
  const std::string path = PGTLS_SHARED_DIR "/corpus/third_party/ja4/tls-sni.pcapng";
  auto fast = OpenCaptureFile(path);
  ASSERT_TRUE(fast.ok()) << fast.status();
  EXPECT_NE(dynamic_cast<FileSource*>(fast->get()), nullptr);
  auto slow = PcapSource::OpenOffline(path);
  ASSERT_TRUE(slow.ok()) << slow.status();
  EXPECT_FALSE((*slow)->live());
  const ReadResult a = ReadAll(**fast);
  const ReadResult b = ReadAll(**slow);
  EXPECT_TRUE((*slow)->at_end());
  ExpectSamePackets(a.packets, b.packets);
  // A filter applied by libpcap: only TCP.
  auto filtered = PcapSource::OpenOffline(path, "tcp");
  ASSERT_TRUE(filtered.ok());
  EXPECT_LE(ReadAll(**filtered).packets.size(), a.packets.size());
  EXPECT_FALSE(PcapSource::OpenOffline(path, "tcp port nonsense").ok());
}

}  // namespace
}  // namespace pgtlsmon::capture
