// parser/events.h: what the parser tells the rest of pgtlsmon.
//
// The one header the exporter sees. A SessionRecord is the in-memory form of one line of
// ../shared/spec/session-record.md; exporter/record_json.cc writes it out.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtlsmon::parser {

// Outcome of a connection, in the order of the spec's rules.
enum class Outcome : uint8_t {
  kUnknown,
  kTls,
  kTlsFailed,
  kIncomplete,
  kGssenc,
  kPlaintext,
  kCancel,
  kSslRefused,
};
std::string_view OutcomeName(Outcome o);

// Closed set of findings; a record carries a bit mask of them.
enum class Finding : uint8_t {
  kLegacyTlsNegotiated,
  kLegacyTlsOfferedOnly,
  kClientAcceptsLegacyTls,
  kWeakCipher,
  kPlaintextSession,
  kSslRefusedByServer,
  kHandshakeFailed,
  kSslInjectionBytes,
  kCertificateExpired,
  kWeakCertificateKey,
  kFailsWhatIf,
  kCount,
};
std::string_view FindingName(Finding f);
constexpr uint32_t FindingBit(Finding f) { return 1u << static_cast<unsigned>(f); }

// An IP address: IPv4 stored in the first 4 bytes with is_v6 false.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v6 = false;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};
std::string FormatIp(const IpAddress& ip);  // dotted quad, or RFC 5952 for IPv6

// The encapsulation a packet arrived in (docs: spec "Tunnels and mirrored traffic").
enum class TunnelType : uint8_t { kNone, kVxlan, kGeneve, kGre, kErspan, kIpip, kCount };
std::string_view TunnelTypeName(TunnelType t);  // "vxlan", ... ("none" for kNone)

// One encapsulation layer's facts: they travel beside the connection key, never inside it.
struct TunnelInfo {
  TunnelType type = TunnelType::kNone;
  bool has_id = false;  // VNI, GRE key or ERSPAN session ID present
  uint32_t id = 0;
  IpAddress outer_src;
  IpAddress outer_dst;

  friend bool operator==(const TunnelInfo&, const TunnelInfo&) = default;
};

struct Endpoint {
  IpAddress ip;
  uint16_t port = 0;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// The PostgreSQL startup phase. A response byte of 0 means "none seen" (JSON null).
struct StartupInfo {
  uint16_t protocol_major = 3;
  uint16_t protocol_minor = 0;
  std::optional<std::string> user;
  std::optional<std::string> database;
  std::optional<std::string> application_name;
};

struct PgInfo {
  bool ssl_request = false;
  char ssl_response = 0;
  bool gssenc_request = false;
  char gssenc_response = 0;
  bool cancel_request = false;
  bool direct_tls = false;
  std::optional<StartupInfo> startup;
};

// Version codes as on the wire; tls_names.h turns them into "TLSv1.2" etc.
struct ClientHelloInfo {
  uint16_t record_version = 0;  // 0x0002 for an SSLv2-format hello
  uint16_t version = 0;         // legacy_version (client_version)
  bool sslv2_format = false;
  // Code lists keep wire order and leave out GREASE values.
  std::vector<uint16_t> supported_versions;
  std::vector<uint16_t> cipher_suites;
  std::vector<uint16_t> extensions;
  std::vector<uint16_t> groups;
  std::vector<uint8_t> ec_point_formats;       // for JA3
  std::vector<uint16_t> signature_algorithms;  // for JA4, wire order
  std::vector<uint32_t> sslv2_cipher_specs;    // SSLv2-format hello only
  std::optional<std::string> sni;              // decoded, invalid UTF-8 bytes -> U+FFFD
  std::vector<std::string> alpn;               // decoded likewise
  std::vector<std::string> alpn_raw;           // the protocol names' raw bytes (JA4 needs them)
  std::string ja3;                             // MD5 hex
  std::string ja4;                             // FoxIO JA4, TCP variant

  friend bool operator==(const ClientHelloInfo&, const ClientHelloInfo&) = default;
};

struct ServerHelloInfo {
  uint16_t version = 0;                      // legacy_version
  std::optional<uint16_t> selected_version;  // supported_versions extension
  uint16_t cipher_suite = 0;
  bool hello_retry_request = false;
  std::optional<std::string> alpn;
  std::vector<uint16_t> extensions;
  std::string ja3s;  // MD5 hex

  friend bool operator==(const ServerHelloInfo&, const ServerHelloInfo&) = default;
};

struct AlertInfo {
  bool from_client = false;
  uint8_t level = 0;  // 1 warning, 2 fatal, other values kept as numbers
  uint8_t description = 0;
};

struct CertificateInfo {
  std::string subject;  // RFC 2253
  std::string issuer;
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;
  std::string key_type;  // RSA, EC, DSA, Ed25519, Ed448 (or OpenSSL's short name)
  int key_bits = 0;
  std::string signature_algorithm;  // OpenSSL long name
};

// The first ClientHello as it came from the client, for --what-if (FlowTrackerConfig::
// keep_client_hello): `message` is the handshake message, its 4-byte header included, and
// `record_version` the version of the record that carried its start; for an SSLv2-format hello
// (`sslv2`) `message` starts at msg_type, as RFC 5246 appendix E.2 counts its length.
struct RawClientHello {
  bool sslv2 = false;
  uint16_t record_version = 0;
  std::vector<uint8_t> message;
};

// One policy's prediction (`--what-if`, session-record.md "What if the server were stricter").
// The parser never fills it: the what-if engine does, before the record is written.
struct WhatIfPrediction {
  std::string_view policy;              // the policy's name (storage owned by the engine)
  Outcome outcome = Outcome::kUnknown;  // kTls, kTlsFailed; kUnknown: not predictable
  uint16_t version = 0;                 // 0: none
  uint16_t cipher_suite = 0;            // valid when version != 0
  std::string_view reason;              // empty, or one of the spec's reasons (static storage)
  std::string_view detail;              // OpenSSL's words for a failure (static storage)
  std::string certificate_key;          // the server key assumed: "rsa2048", "ec256", ...
  bool certificate_assumed = false;     // no certificate of the server known: the default key
};

struct NegotiatedTls {
  uint16_t version = 0;
  uint16_t cipher_suite = 0;
};

// One connection's record.
struct SessionRecord {
  uint64_t ts_us = 0;  // first captured packet, microseconds since the Unix epoch
  Endpoint client;
  Endpoint server;
  PgInfo pg;
  std::optional<ClientHelloInfo> client_hello;
  std::optional<ServerHelloInfo> server_hello;
  std::optional<NegotiatedTls> tls;
  std::vector<AlertInfo> alerts;
  std::optional<CertificateInfo> certificate;
  Outcome outcome = Outcome::kUnknown;
  bool legacy = false;
  uint32_t findings = 0;  // FindingBit() mask
  // With --what-if: one prediction per policy, in the order the policies were given; empty for
  // connections without a usable ClientHello. std::nullopt without --what-if.
  std::optional<std::vector<WhatIfPrediction>> what_if;
  std::optional<RawClientHello> client_hello_raw;  // only with keep_client_hello
  // The outermost encapsulation of the connection's first captured packet (tunnelled only).
  std::optional<TunnelInfo> tunnel;

  // Not in the JSON contract; useful to metrics and tests.
  uint64_t sequence = 0;                  // order of the connection's first packet in the capture
  uint16_t client_hello_max_version = 0;  // newest known version offered, 0 if none
  bool has_finding(Finding f) const { return (findings & FindingBit(f)) != 0; }
};

}  // namespace pgtlsmon::parser
