// tests/unit/parser/tls_record_test.cc: the TLS record layer of one direction.
#include "parser/tls_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "parser/tls_hello.h"

namespace pgtlsmon::parser {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Bytes = std::vector<uint8_t>;

Bytes FromHex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Records every callback as a line of text, so a run can be compared with another.
class RecordingSink : public TlsRecordSink {
 public:
  void OnHandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                          uint16_t record_version) override {
    events.push_back("hs " + std::to_string(type) + " len=" + std::to_string(body.size()) +
                     " rv=" + std::to_string(record_version));
    bodies.emplace_back(body.begin(), body.end());
  }
  void OnSslv2ClientHello(std::span<const uint8_t> message) override {
    events.push_back("sslv2 len=" + std::to_string(message.size()));
    bodies.emplace_back(message.begin(), message.end());
  }
  void OnAlert(uint8_t level, uint8_t description) override {
    events.push_back("alert " + std::to_string(level) + "/" + std::to_string(description));
  }
  void OnChangeCipherSpec() override { events.push_back("ccs"); }
  void OnApplicationData() override { events.push_back("appdata"); }

  std::vector<std::string> events;
  std::vector<Bytes> bodies;
};

// Feeds `stream` in chunks of `chunk` bytes the way a caller does: keep what was not consumed,
// append the next chunk, feed again.
size_t FeedInChunks(TlsRecordParser& parser, const Bytes& stream, size_t chunk, RecordingSink& sink,
                    ParseStats* stats) {
  Bytes buffer;
  size_t consumed_total = 0;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    const size_t n = std::min(chunk, stream.size() - off);
    buffer.insert(buffer.end(), stream.begin() + static_cast<ptrdiff_t>(off),
                  stream.begin() + static_cast<ptrdiff_t>(off + n));
    const size_t used = parser.Feed(buffer, sink, stats);
    EXPECT_LE(used, buffer.size());
    buffer.erase(buffer.begin(), buffer.begin() + static_cast<ptrdiff_t>(used));
    consumed_total += used;
  }
  return consumed_total;
}

// ---------------------------------------------------------------------------------------------
// Fixtures, one field per line.

const Bytes kServerFlight = {
    0x16,              // content type handshake
    0x03, 0x03,        // record version TLS 1.2
    0x00, 0x14,        // record length 20
    0x02,              //   ServerHello
    0x00, 0x00, 0x06,  //   length 6 (a stub body: the record layer does not parse it)
    0x03, 0x03, 0xaa, 0xbb, 0xcc, 0xdd,  //   body
    0x0b,                                //   Certificate
    0x00, 0x00, 0x02,                    //   length 2
    0x00, 0x00,                          //   body
    0x0e,                                //   ServerHelloDone
    0x00, 0x00, 0x00,                    //   length 0
    0x15,                                // content type alert
    0x03, 0x03,                          // record version
    0x00, 0x04,                          // record length 4
    0x01, 0x00,                          //   warning close_notify
    0x02, 0x28,                          //   fatal handshake_failure
    0x14,                                // content type change_cipher_spec
    0x03, 0x03,                          // record version
    0x00, 0x01,                          // record length 1
    0x01,                                //   change_cipher_spec
    0x16,              // content type handshake (encrypted Finished: not reported)
    0x03, 0x03,        // record version
    0x00, 0x03,        // record length 3
    0x14, 0x99, 0x99,  //   ciphertext
    0x15,              // content type alert (encrypted: not reported)
    0x03, 0x03,        // record version
    0x00, 0x03,        // record length 3
    0x77, 0x88, 0x99,  //   ciphertext
    0x17,              // content type application_data
    0x03, 0x03,        // record version
    0x00, 0x02,        // record length 2
    0x55, 0x66,        //   ciphertext
};

const std::vector<std::string> kServerFlightEvents = {
    "hs 2 len=6 rv=771", "hs 11 len=2 rv=771", "hs 14 len=0 rv=771",
    "alert 1/0",         "alert 2/40",         "ccs",
    "appdata",
};

// One ClientHello message (type 1, 10-byte stub body) spread over three records, the split
// falling inside the 4-byte handshake header.
const Bytes kClientHelloThreeRecords = {
    0x16, 0x03, 0x01,        // handshake, record version TLS 1.0
    0x00, 0x02,              // record length 2
    0x01, 0x00,              //   type ClientHello, first length byte
    0x16, 0x03, 0x03,        // handshake, record version TLS 1.2
    0x00, 0x06,              // record length 6
    0x00, 0x0a,              //   rest of the length (10)
    0x03, 0x03, 0x01, 0x02,  //   body[0..3]
    0x16, 0x03, 0x03,        // handshake
    0x00, 0x0a,              // record length 10
    0x03, 0x04, 0x05, 0x06,  //   body[4..7]
    0x07, 0x08,              //   body[8..9]: the message is complete
    0x0e, 0x00, 0x00, 0x00,  //   ServerHelloDone-like empty message in the same record
};

// The SSLv2-format ClientHello of tls_hello_test.cc behind its 2-byte record header.
const Bytes kSslv2Record = {
    0x80, 0x25,                                      // SSLv2 record header: high bit set, length 37
    0x01,                                            // msg_type client_hello
    0x03, 0x01,                                      // version TLS 1.0
    0x00, 0x0c,                                      // cipher_spec_length 12
    0x00, 0x00,                                      // session_id_length 0
    0x00, 0x10,                                      // challenge_length 16
    0x00, 0x00, 0x2f,                                //   TLS_RSA_WITH_AES_128_CBC_SHA
    0x07, 0x00, 0xc0,                                //   SSL_CK_DES_192_EDE3_CBC_WITH_MD5
    0x00, 0x00, 0x0a,                                //   TLS_RSA_WITH_3DES_EDE_CBC_SHA
    0x00, 0x00, 0xff,                                //   TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,  // challenge[0..7]
    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,  // challenge[8..15]
};

// ---------------------------------------------------------------------------------------------

TEST(TlsRecordTest, ServerFlight) {
  TlsRecordParser parser;
  RecordingSink sink;
  ParseStats stats;
  EXPECT_EQ(parser.Feed(kServerFlight, sink, &stats), kServerFlight.size());
  EXPECT_EQ(sink.events, kServerFlightEvents);
  EXPECT_THAT(sink.bodies[0], ElementsAre(0x03, 0x03, 0xaa, 0xbb, 0xcc, 0xdd));
  EXPECT_FALSE(parser.failed());
  EXPECT_TRUE(parser.encrypted());
  EXPECT_EQ(parser.records(), 6u);
  EXPECT_EQ(stats.Total(), 0u);
}

TEST(TlsRecordTest, EveryChunkSizeGivesTheSameEvents) {
  for (const Bytes* stream : {&kServerFlight, &kClientHelloThreeRecords}) {
    TlsRecordParser whole_parser;
    RecordingSink whole;
    whole_parser.Feed(*stream, whole, nullptr);
    for (size_t chunk = 1; chunk <= stream->size(); ++chunk) {
      TlsRecordParser parser;
      RecordingSink sink;
      ParseStats stats;
      EXPECT_EQ(FeedInChunks(parser, *stream, chunk, sink, &stats), stream->size());
      EXPECT_EQ(sink.events, whole.events) << "chunk " << chunk;
      EXPECT_EQ(sink.bodies, whole.bodies) << "chunk " << chunk;
      EXPECT_EQ(stats.Total(), 0u);
    }
  }
}

TEST(TlsRecordTest, TruncationSweep) {
  // A prefix consumes only whole records, never fails, and reports a prefix of the events.
  for (const Bytes* stream : {&kServerFlight, &kClientHelloThreeRecords, &kSslv2Record}) {
    TlsRecordParser whole_parser;
    RecordingSink whole;
    whole_parser.Feed(*stream, whole, nullptr);
    for (size_t n = 0; n < stream->size(); ++n) {
      TlsRecordParser parser;
      RecordingSink sink;
      ParseStats stats;
      const size_t used = parser.Feed(std::span(*stream).first(n), sink, &stats);
      EXPECT_LT(used, stream->size());
      EXPECT_LE(used, n);
      EXPECT_FALSE(parser.failed()) << n;
      EXPECT_EQ(stats.Total(), 0u);
      ASSERT_LE(sink.events.size(), whole.events.size());
      for (size_t i = 0; i < sink.events.size(); ++i) EXPECT_EQ(sink.events[i], whole.events[i]);
    }
  }
}

TEST(TlsRecordTest, HandshakeMessageAcrossRecords) {
  TlsRecordParser parser;
  RecordingSink sink;
  EXPECT_EQ(parser.Feed(kClientHelloThreeRecords, sink, nullptr), kClientHelloThreeRecords.size());
  // The record version reported is that of the record where the message began.
  EXPECT_THAT(sink.events, ElementsAre("hs 1 len=10 rv=769", "hs 14 len=0 rv=771"));
  EXPECT_THAT(sink.bodies[0], ElementsAre(3, 3, 1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_EQ(parser.records(), 3u);
}

TEST(TlsRecordTest, HandshakeMessageCap) {
  TlsRecordParser parser(/*max_handshake_message=*/8);
  RecordingSink sink;
  ParseStats stats;
  EXPECT_EQ(parser.Feed(kClientHelloThreeRecords, sink, &stats), 7u);  // the first record
  EXPECT_TRUE(parser.failed());
  EXPECT_EQ(stats.Get(Stage::kTls, Reason::kCapExceeded), 1u);
  EXPECT_THAT(sink.events, IsEmpty());
  // Nothing more is consumed after a failure.
  EXPECT_EQ(parser.Feed(kServerFlight, sink, &stats), 0u);
  EXPECT_THAT(sink.events, IsEmpty());
}

TEST(TlsRecordTest, Sslv2ClientHelloOnFirstRecordOnly) {
  TlsRecordParser parser;
  RecordingSink sink;
  EXPECT_EQ(parser.Feed(kSslv2Record, sink, nullptr), kSslv2Record.size());
  ASSERT_THAT(sink.events, ElementsAre("sslv2 len=37"));
  ClientHelloInfo ch;
  EXPECT_EQ(ParseSslv2ClientHello(sink.bodies[0], &ch), ParseResult::kOk);
  EXPECT_THAT(ch.cipher_suites, ElementsAre(0x002f, 0x000a, 0x00ff));

  // After a TLS record, a byte with the high bit set is not an SSLv2 hello.
  TlsRecordParser later;
  RecordingSink later_sink;
  ParseStats stats;
  const Bytes stream = Concat({kServerFlight, kSslv2Record});
  EXPECT_EQ(later.Feed(stream, later_sink, &stats), kServerFlight.size());
  EXPECT_TRUE(later.failed());
  EXPECT_EQ(stats.Get(Stage::kTls, Reason::kBadRecord), 1u);
}

TEST(TlsRecordTest, HighBitWithoutClientHelloIsMalformed) {
  TlsRecordParser parser;
  RecordingSink sink;
  ParseStats stats;
  const Bytes b = {0x80, 0x03, 0x04, 0x00, 0x02};  // SSLv2 header, msg_type 4
  EXPECT_EQ(parser.Feed(b, sink, &stats), 0u);
  EXPECT_TRUE(parser.failed());
  EXPECT_EQ(stats.Get(Stage::kTls, Reason::kBadRecord), 1u);
}

struct MalformedCase {
  const char* name;
  Bytes stream;
  size_t consumed;
  Reason reason;
};

TEST(TlsRecordTest, MalformedRecords) {
  const std::vector<MalformedCase> cases = {
      {"unknown content type", {0x63, 0x03, 0x01, 0x00, 0x02, 0xaa, 0xbb}, 0, Reason::kBadRecord},
      {"record major version 2", {0x16, 0x02, 0x00, 0x00, 0x01, 0x01}, 0, Reason::kBadRecord},
      {"record longer than 2^14 + 2048", {0x17, 0x03, 0x03, 0x48, 0x01}, 0, Reason::kBadLength},
      {"empty handshake record", {0x16, 0x03, 0x01, 0x00, 0x00}, 0, Reason::kBadRecord},
      {"empty alert record", {0x15, 0x03, 0x03, 0x00, 0x00}, 0, Reason::kBadRecord},
      {"odd alert record", {0x15, 0x03, 0x03, 0x00, 0x03, 0x02, 0x28, 0x01}, 0, Reason::kBadRecord},
      {"empty change_cipher_spec", {0x14, 0x03, 0x03, 0x00, 0x00}, 0, Reason::kBadRecord},
      {"alert inside a fragmented handshake message",
       Concat({{0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00},    // handshake record, 2 header bytes
               {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x32}}),  // alert record
       7, Reason::kBadRecord},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TlsRecordParser parser;
    RecordingSink sink;
    ParseStats stats;
    EXPECT_EQ(parser.Feed(c.stream, sink, &stats), c.consumed);
    EXPECT_TRUE(parser.failed());
    EXPECT_EQ(stats.Get(Stage::kTls, c.reason), 1u);
    EXPECT_EQ(stats.Total(), 1u);
    EXPECT_THAT(sink.events, IsEmpty());
  }
}

TEST(TlsRecordTest, RecordLengthAtTheLimitIsFine) {
  Bytes b = {0x17, 0x03, 0x03, 0x48, 0x00};  // application_data, length 18432
  b.resize(5 + 18432, 0x42);
  TlsRecordParser parser;
  RecordingSink sink;
  EXPECT_EQ(parser.Feed(std::span(b).first(b.size() - 1), sink, nullptr), 0u);  // need more
  EXPECT_FALSE(parser.failed());
  EXPECT_EQ(parser.Feed(b, sink, nullptr), b.size());
  EXPECT_THAT(sink.events, ElementsAre("appdata"));
}

TEST(TlsRecordTest, HeartbeatIsSkipped) {
  const Bytes b = {0x18, 0x03, 0x03, 0x00, 0x01, 0x01};
  TlsRecordParser parser;
  RecordingSink sink;
  EXPECT_EQ(parser.Feed(b, sink, nullptr), b.size());
  EXPECT_FALSE(parser.failed());
  EXPECT_THAT(sink.events, IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// crafted_malformed_tls_records.pcap, client direction after SSLRequest/'S', per session.

TEST(TlsRecordTest, CraftedMalformedCorpusSessions) {
  const std::string hello_tail =
      "0100005903039d533d7fc11d7f9b26ed3041c9790f49a21c84bd7db10d43320122c2150a8c43000008c02fc0"
      "30130100ff010000280000001b00190000166d616c666f726d65642e6578616d706c652e7465737400"
      "2b00050403040303";
  {
    // (1) record length 0xffff: bad_length at once.
    TlsRecordParser parser;
    RecordingSink sink;
    ParseStats stats;
    EXPECT_EQ(parser.Feed(FromHex("160301ffff" + hello_tail), sink, &stats), 0u);
    EXPECT_TRUE(parser.failed());
    EXPECT_EQ(stats.Get(Stage::kTls, Reason::kBadLength), 1u);
  }
  {
    // (2) record length 600, stream ends after 98 bytes: waits, reports nothing.
    TlsRecordParser parser;
    RecordingSink sink;
    ParseStats stats;
    EXPECT_EQ(parser.Feed(FromHex("1603010258" + hello_tail), sink, &stats), 0u);
    EXPECT_FALSE(parser.failed());
    EXPECT_EQ(stats.Total(), 0u);
    EXPECT_THAT(sink.events, IsEmpty());
  }
  {
    // (3) handshake length 0xffff inside a 93-byte record, then the client's alert record:
    // the alert interrupts a fragmented handshake message.
    TlsRecordParser parser;
    RecordingSink sink;
    ParseStats stats;
    const Bytes b = FromHex("160301005d0100ffff" + hello_tail.substr(8) + "15030100020232");
    EXPECT_EQ(parser.Feed(b, sink, &stats), b.size() - 7);
    EXPECT_TRUE(parser.failed());
    EXPECT_EQ(stats.Get(Stage::kTls, Reason::kBadRecord), 1u);
    EXPECT_THAT(sink.events, IsEmpty());
  }
  for (const char* hex : {
           // (4) cipher_suites length 0x7ff0 overrunning the message
           "16030100400100003c0303e7782ae7fe68c7b6b46b5395c6e8a955e50212b64ec78cf6288886a3f1e7ae"
           "8b007ff0c02fc0300100000f0000000b0009000006782e74657374",
           // (5) extensions_length and SNI name length overrunning the message
           "1603010049010000450303fef1f6e06d4959671587d99602001bef8e3d4365b36c198626d4ac52132e"
           "d665000004c02f00ff0100012c0000001400120000c86576696c2e6578616d706c652e7465",
       }) {
    // The record layer delivers the complete message; the hello parser rejects it.
    TlsRecordParser parser;
    RecordingSink sink;
    const Bytes b = FromHex(hex);
    EXPECT_EQ(parser.Feed(b, sink, nullptr), b.size());
    ASSERT_EQ(sink.bodies.size(), 1u);
    ClientHelloInfo ch;
    EXPECT_EQ(ParseClientHello(sink.bodies[0], 0x0301, &ch), ParseResult::kMalformed);
  }
  {
    // (6) an empty handshake record (RFC 5246 6.2.1: MUST NOT be sent), then an unknown content
    // type: malformed at the first one.
    TlsRecordParser parser;
    RecordingSink sink;
    ParseStats stats;
    EXPECT_EQ(parser.Feed(FromHex("16030100006303010002aabb"), sink, &stats), 0u);
    EXPECT_TRUE(parser.failed());
    EXPECT_EQ(stats.Get(Stage::kTls, Reason::kBadRecord), 1u);
  }
}

// ---------------------------------------------------------------------------------------------
// Real multi-record ClientHellos (testdata/tls/corpus_hellos.txt): one message from several
// records, whatever the TCP segmentation.

TEST(TlsRecordTest, RealMultiRecordClientHellos) {
  std::ifstream in(std::string(PGTLS_SOURCE_DIR) +
                   "/tests/unit/parser/testdata/tls/corpus_hellos.txt");
  std::string line;
  int checked = 0;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string capture, port, dir, ja3, ja4, hex;
    ss >> capture >> port >> dir >> ja3 >> ja4 >> hex;
    if (dir != "c" || (capture != "crafted_clienthello_two_records" &&
                       capture != "real_clienthello_multi_record")) {
      continue;
    }
    SCOPED_TRACE(capture + ":" + port);
    const Bytes stream = FromHex(hex);
    for (size_t chunk : {stream.size(), size_t{1}, size_t{7}, size_t{512}}) {
      TlsRecordParser parser;
      RecordingSink sink;
      ParseStats stats;
      EXPECT_EQ(FeedInChunks(parser, stream, chunk, sink, &stats), stream.size());
      EXPECT_GE(parser.records(), 2u);
      ASSERT_EQ(sink.bodies.size(), 1u);
      ClientHelloInfo ch;
      ASSERT_EQ(ParseClientHello(sink.bodies[0], 0x0301, &ch), ParseResult::kOk);
      EXPECT_EQ(ch.ja3, ja3);
      EXPECT_EQ(stats.Total(), 0u);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

}  // namespace
}  // namespace pgtlsmon::parser
