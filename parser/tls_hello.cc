// parser/tls_hello.cc: ClientHello / ServerHello bodies (RFC 5246 7.4.1, RFC 8446 4.1) and the
// JA3, JA3S and JA4 fingerprints computed from them.
#include "parser/tls_hello.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include "parser/text.h"
#include "parser/tls_names.h"

namespace pgtlsmon::parser {
namespace {

constexpr auto kBad = ParseResult::kMalformed;

constexpr uint16_t kExtServerName = 0x0000;
constexpr uint16_t kExtSupportedGroups = 0x000a;
constexpr uint16_t kExtEcPointFormats = 0x000b;
constexpr uint16_t kExtSignatureAlgorithms = 0x000d;
constexpr uint16_t kExtAlpn = 0x0010;
constexpr uint16_t kExtSupportedVersions = 0x002b;

constexpr uint8_t kSniHostName = 0;
constexpr size_t kMaxSniBytes = 255;   // STYLE.md 4.1: names that outlive the packet are capped
constexpr size_t kMaxAlpnBytes = 255;  // one protocol name is at most 255 bytes on the wire

std::string AsString(std::span<const uint8_t> b) {
  std::string s;
  s.reserve(b.size());
  for (uint8_t c : b) s.push_back(static_cast<char>(c));
  return s;
}

// A list of 16-bit codes behind a length prefix of `prefix_bytes` (1 or 2); GREASE dropped.
ParseResult ReadU16List(ByteReader r, size_t prefix_bytes, std::vector<uint16_t>* out) {
  std::optional<size_t> len;
  if (prefix_bytes == 1) {
    if (auto v = r.U8()) len = *v;
  } else if (auto v = r.U16Be()) {
    len = *v;
  }
  if (!len || *len % 2 != 0) return kBad;
  auto list = r.Sub(*len);
  if (!list || !r.empty()) return kBad;
  while (!list->empty()) {
    auto v = list->U16Be();
    if (!v) return kBad;
    if (!IsGrease(*v)) out->push_back(*v);
  }
  return ParseResult::kOk;
}

// RFC 6066 3: ServerName server_name_list<1..2^16-1>; the first host_name is reported.
ParseResult ParseSni(ByteReader r, std::optional<std::string>* sni) {
  if (r.empty()) return ParseResult::kOk;  // an empty extension carries no name
  auto list_len = r.U16Be();
  auto list = list_len ? r.Sub(*list_len) : std::nullopt;
  if (!list || !r.empty()) return kBad;
  while (!list->empty()) {
    auto type = list->U8();
    auto len = list->U16Be();
    auto name = (type && len) ? list->Bytes(*len) : std::nullopt;
    if (!name) return kBad;
    if (*type == kSniHostName && !sni->has_value()) {
      *sni = SanitizeUtf8(name->first(std::min(name->size(), kMaxSniBytes)));
    }
  }
  return ParseResult::kOk;
}

// RFC 7301 3.1: ProtocolNameList protocol_name_list<2..2^16-1>.
ParseResult ParseAlpnList(ByteReader r, std::vector<std::string>* names,
                          std::vector<std::string>* raw) {
  auto list_len = r.U16Be();
  auto list = list_len ? r.Sub(*list_len) : std::nullopt;
  if (!list || !r.empty()) return kBad;
  while (!list->empty()) {
    auto len = list->U8();
    auto name = len ? list->Bytes(*len) : std::nullopt;
    if (!name) return kBad;
    const auto capped = name->first(std::min(name->size(), kMaxAlpnBytes));
    names->push_back(SanitizeUtf8(capped));
    raw->push_back(AsString(capped));
  }
  return ParseResult::kOk;
}

ParseResult ParseEcPointFormats(ByteReader body, ClientHelloInfo* out) {
  auto len = body.U8();
  auto list = len ? body.Bytes(*len) : std::nullopt;
  if (!list || !body.empty()) return kBad;
  out->ec_point_formats.insert(out->ec_point_formats.end(), list->begin(), list->end());
  return ParseResult::kOk;
}

// RFC 8446 4.2.1: the ServerHello's supported_versions holds the one selected version.
ParseResult ParseSelectedVersion(ByteReader body, ServerHelloInfo* out) {
  auto v = body.U16Be();
  if (!v || !body.empty()) return kBad;
  out->selected_version = *v;
  return ParseResult::kOk;
}

// RFC 7301 3.1: the server's list holds exactly one name.
ParseResult ParseSelectedAlpn(ByteReader body, ServerHelloInfo* out) {
  std::vector<std::string> names;
  std::vector<std::string> raw;
  if (ParseAlpnList(body, &names, &raw) != ParseResult::kOk || names.size() != 1) return kBad;
  out->alpn = std::move(names.front());
  return ParseResult::kOk;
}

// The one list of the extensions whose contents the parsed hellos depend on. The parsers call
// the listed function for each; the cache key (a hello's shape, below) holds the bytes of
// exactly these, and only the length of the others. A new extension is added here, once.
template <typename Info>
struct ExtensionParser {
  uint16_t type;
  ParseResult (*parse)(ByteReader body, Info* out);
};
constexpr ExtensionParser<ClientHelloInfo> kClientExtensions[] = {
    {kExtServerName, [](ByteReader b, ClientHelloInfo* o) { return ParseSni(b, &o->sni); }},
    {kExtSupportedGroups,
     [](ByteReader b, ClientHelloInfo* o) { return ReadU16List(b, 2, &o->groups); }},
    {kExtEcPointFormats, ParseEcPointFormats},
    {kExtSignatureAlgorithms,
     [](ByteReader b, ClientHelloInfo* o) { return ReadU16List(b, 2, &o->signature_algorithms); }},
    {kExtAlpn,
     [](ByteReader b, ClientHelloInfo* o) { return ParseAlpnList(b, &o->alpn, &o->alpn_raw); }},
    {kExtSupportedVersions,
     [](ByteReader b, ClientHelloInfo* o) { return ReadU16List(b, 1, &o->supported_versions); }},
};
constexpr ExtensionParser<ServerHelloInfo> kServerExtensions[] = {
    {kExtSupportedVersions, ParseSelectedVersion},
    {kExtAlpn, ParseSelectedAlpn},
};

template <typename Info, size_t N>
const ExtensionParser<Info>* FindExtension(const ExtensionParser<Info> (&list)[N], uint16_t type) {
  for (const auto& e : list) {
    if (e.type == type) return &e;
  }
  return nullptr;
}

// Parses one extension of a hello if it is in `list` (others are only listed by type).
template <typename Info, size_t N>
bool ParseExtension(const ExtensionParser<Info> (&list)[N], uint16_t type, ByteReader body,
                    Info* out) {
  const auto* e = FindExtension(list, type);
  return e == nullptr || e->parse(body, out) == ParseResult::kOk;
}

std::string HexDigest(std::string_view data, const EVP_MD* md) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  if (md == nullptr ||
      EVP_Digest(data.data(), data.size(), digest.data(), &len, md, nullptr) != 1) {
    return {};
  }
  std::string out;
  out.reserve(size_t{len} * 2);
  AppendHexBytes(std::span<const uint8_t>(digest.data(), len), &out);
  return out;
}

template <typename T>
void AppendDecimalList(const std::vector<T>& v, std::string* out) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out->push_back('-');
    out->append(std::to_string(v[i]));
  }
}

std::string JoinHex4(const std::vector<uint16_t>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendHex(v[i], 4, &out);
  }
  return out;
}

// FoxIO: the first 12 hex characters of the SHA-256, or twelve zeros for an empty list.
std::string Hash12(std::string_view s) {
  if (s.empty()) return "000000000000";
  return Sha256Hex(s).substr(0, 12);
}

std::string_view Ja4Version(uint16_t v) {
  switch (v) {
    case 0x0304:
      return "13";
    case 0x0303:
      return "12";
    case 0x0302:
      return "11";
    case 0x0301:
      return "10";
    case 0x0300:
      return "s3";
    case 0x0002:
      return "s2";
    case 0x0100:
      return "s1";
    default:
      return "00";
  }
}

// First or last character of the first ALPN value as FoxIO's tool reads it: the value's text,
// a non-ASCII character counting as '9'.
char AlpnChar(const std::string& decoded, bool last) {
  if (decoded.empty()) return '0';
  if (!last) {
    const auto c = static_cast<unsigned char>(decoded.front());
    return c < 0x80 ? static_cast<char>(c) : '9';
  }
  // Walk back to the start of the last UTF-8 character.
  size_t i = decoded.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(decoded[i]) & 0xc0) == 0x80) --i;
  if (i == 0) return '0';  // a single character: FoxIO's tool has no "last" one
  const auto c = static_cast<unsigned char>(decoded[i]);
  return c < 0x80 ? static_cast<char>(c) : '9';
}

struct Ja4Parts {
  std::string head;       // "t13d1516h2"
  std::string ciphers;    // sorted, comma-joined hex
  std::string exts_sigs;  // sorted extensions (no SNI/ALPN) [+ "_" + signature algorithms]
};

Ja4Parts MakeJa4Parts(const ClientHelloInfo& ch) {
  const auto has_ext = [&ch](uint16_t t) {
    return std::find(ch.extensions.begin(), ch.extensions.end(), t) != ch.extensions.end();
  };
  uint16_t version = ch.version;
  if (has_ext(kExtSupportedVersions) && !ch.supported_versions.empty()) {
    version = *std::max_element(ch.supported_versions.begin(), ch.supported_versions.end());
  }
  const std::string alpn = ch.alpn.empty() ? std::string() : ch.alpn.front();
  std::array<char, 8> counts{};
  std::snprintf(counts.data(), counts.size(), "%02zu%02zu",
                std::min<size_t>(ch.cipher_suites.size(), 99),
                std::min<size_t>(ch.extensions.size(), 99));

  Ja4Parts p;
  p.head.push_back('t');
  p.head.append(Ja4Version(version));
  p.head.push_back(has_ext(kExtServerName) ? 'd' : 'i');
  p.head.append(counts.data());
  p.head.push_back(AlpnChar(alpn, false));
  p.head.push_back(AlpnChar(alpn, true));

  std::vector<uint16_t> ciphers = ch.cipher_suites;
  std::sort(ciphers.begin(), ciphers.end());
  p.ciphers = JoinHex4(ciphers);

  std::vector<uint16_t> exts;
  for (uint16_t e : ch.extensions) {
    if (e != kExtServerName && e != kExtAlpn) exts.push_back(e);
  }
  std::sort(exts.begin(), exts.end());
  p.exts_sigs = JoinHex4(exts);
  if (!ch.signature_algorithms.empty()) {
    p.exts_sigs.push_back('_');
    p.exts_sigs.append(JoinHex4(ch.signature_algorithms));
  }
  return p;
}

void Fingerprint(ClientHelloInfo* out) {
  out->ja3 = out->sslv2_format ? std::string() : Ja3(*out);
  out->ja4 = Ja4(*out);
}

// The extensions block that ends a hello, if there is one: fn(type, body) for each extension
// in wire order. False when the framing is broken or fn returns false.
template <typename Fn>
bool ForEachExtension(ByteReader& r, Fn&& fn) {
  if (r.empty()) return true;  // extensions are optional (SSLv3, old TLS clients)
  auto ext_len = r.U16Be();
  auto exts = ext_len ? r.Sub(*ext_len) : std::nullopt;
  if (!exts || !r.empty()) return false;
  while (!exts->empty()) {
    auto type = exts->U16Be();
    auto len = exts->U16Be();
    auto ext = (type && len) ? exts->Sub(*len) : std::nullopt;
    if (!ext || !fn(*type, *ext)) return false;
  }
  return true;
}

// A hello's "shape": the bytes its parsed form (ClientHelloInfo / ServerHelloInfo, fingerprints
// included) depends on, leaving out what changes from one connection of the same client to the
// next (random, session id, key shares, PSK identities, padding contents). Walks the framing
// exactly as ParseClientHello/ParseServerHello do and gives up (false: parse without the
// cache) wherever they could fail on framing, so two bodies with one shape parse alike.
void PutU16(std::string* k, uint16_t v) {
  k->push_back(static_cast<char>(v >> 8));
  k->push_back(static_cast<char>(v & 0xff));
}
void PutBytes(std::string* k, std::span<const uint8_t> b) { k->append(AsChars(b)); }
// Each extension's type and length; the contents only of those the parser reads (`list`).
template <typename Info, size_t N>
bool PutExtensionShapes(ByteReader& r, const ExtensionParser<Info> (&list)[N], std::string* k) {
  k->push_back(r.empty() ? 0 : 1);
  return ForEachExtension(r, [&](uint16_t type, ByteReader ext) {
    PutU16(k, type);
    PutU16(k, static_cast<uint16_t>(ext.remaining()));
    if (FindExtension(list, type) != nullptr) PutBytes(k, ext.rest());
    return true;
  });
}
bool ClientHelloShape(std::span<const uint8_t> body, uint16_t record_version, std::string* k) {
  k->clear();
  k->push_back('C');
  PutU16(k, record_version);
  ByteReader r(body);
  auto version = r.U16Be();
  if (!version || !r.Skip(32)) return false;
  PutU16(k, *version);
  auto sid_len = r.U8();
  if (!sid_len || *sid_len > 32 || !r.Skip(*sid_len)) return false;
  auto cs_len = r.U16Be();
  auto suites = cs_len ? r.Sub(*cs_len) : std::nullopt;
  if (!suites) return false;
  PutU16(k, *cs_len);
  PutBytes(k, suites->rest());
  auto comp_len = r.U8();
  if (!comp_len || *comp_len == 0 || !r.Skip(*comp_len)) return false;
  k->push_back(static_cast<char>(*comp_len));
  return PutExtensionShapes(r, kClientExtensions, k);
}
bool ServerHelloShape(std::span<const uint8_t> body, std::string* k) {
  k->clear();
  k->push_back('S');
  ByteReader r(body);
  auto version = r.U16Be();
  auto random = r.Bytes(32);
  if (!version || !random) return false;
  PutU16(k, *version);
  k->push_back(std::equal(random->begin(), random->end(), kHelloRetryRequestRandom.begin(),
                          kHelloRetryRequestRandom.end())
                   ? 1
                   : 0);
  auto sid_len = r.U8();
  if (!sid_len || *sid_len > 32 || !r.Skip(*sid_len)) return false;
  auto suite = r.U16Be();
  auto compression = r.U8();
  if (!suite || !compression) return false;
  PutU16(k, *suite);
  k->push_back(static_cast<char>(*compression));
  return PutExtensionShapes(r, kServerExtensions, k);
}

}  // namespace

std::string Md5Hex(std::string_view data) { return HexDigest(data, EVP_md5()); }
std::string Sha256Hex(std::string_view data) { return HexDigest(data, EVP_sha256()); }

std::string Ja3String(const ClientHelloInfo& ch) {
  std::string s = std::to_string(ch.version);
  s.push_back(',');
  AppendDecimalList(ch.cipher_suites, &s);
  s.push_back(',');
  AppendDecimalList(ch.extensions, &s);
  s.push_back(',');
  AppendDecimalList(ch.groups, &s);
  s.push_back(',');
  AppendDecimalList(ch.ec_point_formats, &s);
  return s;
}

std::string Ja3(const ClientHelloInfo& ch) { return Md5Hex(Ja3String(ch)); }

std::string Ja3sString(const ServerHelloInfo& sh) {
  std::string s = std::to_string(sh.version);
  s.push_back(',');
  s.append(std::to_string(sh.cipher_suite));
  s.push_back(',');
  AppendDecimalList(sh.extensions, &s);
  return s;
}

std::string Ja3s(const ServerHelloInfo& sh) { return Md5Hex(Ja3sString(sh)); }

std::string Ja4(const ClientHelloInfo& ch) {
  const Ja4Parts p = MakeJa4Parts(ch);
  return p.head + "_" + Hash12(p.ciphers) + "_" + Hash12(p.exts_sigs);
}

std::string Ja4Raw(const ClientHelloInfo& ch) {
  const Ja4Parts p = MakeJa4Parts(ch);
  return p.head + "_" + p.ciphers + "_" + p.exts_sigs;
}

ParseResult ParseClientHello(std::span<const uint8_t> body, uint16_t record_version,
                             ClientHelloInfo* out) {
  ClientHelloInfo ch;
  ch.record_version = record_version;
  ByteReader r(body);
  auto version = r.U16Be();
  if (!version || !r.Skip(32)) return kBad;  // legacy_version, random
  ch.version = *version;

  auto sid_len = r.U8();
  if (!sid_len || *sid_len > 32 || !r.Skip(*sid_len)) return kBad;

  auto cs_len = r.U16Be();
  auto suites = cs_len ? r.Sub(*cs_len) : std::nullopt;
  if (!suites || *cs_len % 2 != 0) return kBad;
  while (!suites->empty()) {
    auto s = suites->U16Be();
    if (!s) return kBad;
    if (!IsGrease(*s)) ch.cipher_suites.push_back(*s);
  }

  auto comp_len = r.U8();
  if (!comp_len || *comp_len == 0 || !r.Skip(*comp_len)) return kBad;

  const bool extensions_ok = ForEachExtension(r, [&ch](uint16_t type, ByteReader ext) {
    if (IsGrease(type)) return true;
    ch.extensions.push_back(type);
    return ParseExtension(kClientExtensions, type, ext, &ch);
  });
  if (!extensions_ok) return kBad;
  Fingerprint(&ch);
  *out = std::move(ch);
  return ParseResult::kOk;
}

ParseResult ParseSslv2ClientHello(std::span<const uint8_t> message, ClientHelloInfo* out) {
  // RFC 5246 E.2: msg_type, version, cipher_spec_length, session_id_length, challenge_length,
  // cipher_specs[cipher_spec_length], session_id, challenge.
  ClientHelloInfo ch;
  ch.record_version = 0x0002;
  ch.sslv2_format = true;
  ByteReader r(message);
  auto type = r.U8();
  auto version = r.U16Be();
  auto cs_len = r.U16Be();
  auto sid_len = r.U16Be();
  auto chal_len = r.U16Be();
  if (!type || !version || !cs_len || !sid_len || !chal_len) return kBad;
  if (*type != 1 || *cs_len == 0 || *cs_len % 3 != 0) return kBad;
  if (*sid_len != 0 && *sid_len != 16) return kBad;
  if (*chal_len < 16 || *chal_len > 32) return kBad;
  auto specs = r.Sub(*cs_len);
  if (!specs || !r.Skip(*sid_len) || !r.Skip(*chal_len) || !r.empty()) return kBad;
  ch.version = *version;
  while (!specs->empty()) {
    auto spec = specs->U24Be();
    if (!spec) return kBad;
    ch.sslv2_cipher_specs.push_back(*spec);
    if ((*spec >> 16) == 0) {
      const auto suite = static_cast<uint16_t>(*spec & 0xffff);
      if (!IsGrease(suite)) ch.cipher_suites.push_back(suite);
    }
  }
  Fingerprint(&ch);
  *out = std::move(ch);
  return ParseResult::kOk;
}

ParseResult ParseServerHello(std::span<const uint8_t> body, ServerHelloInfo* out) {
  ServerHelloInfo sh;
  ByteReader r(body);
  auto version = r.U16Be();
  auto random = r.Bytes(32);
  if (!version || !random) return kBad;
  sh.version = *version;
  sh.hello_retry_request =
      std::equal(random->begin(), random->end(), kHelloRetryRequestRandom.begin(),
                 kHelloRetryRequestRandom.end());
  auto sid_len = r.U8();
  if (!sid_len || *sid_len > 32 || !r.Skip(*sid_len)) return kBad;
  auto suite = r.U16Be();
  auto compression = r.U8();
  if (!suite || !compression) return kBad;
  sh.cipher_suite = *suite;

  const bool extensions_ok = ForEachExtension(r, [&sh](uint16_t type, ByteReader ext) {
    if (IsGrease(type)) return true;
    sh.extensions.push_back(type);
    return ParseExtension(kServerExtensions, type, ext, &sh);
  });
  if (!extensions_ok) return kBad;
  sh.ja3s = Ja3s(sh);
  *out = std::move(sh);
  return ParseResult::kOk;
}

ParseResult HelloCache::Client(std::span<const uint8_t> body, uint16_t record_version,
                               ClientHelloInfo* out) {
  if (!ClientHelloShape(body, record_version, &key_)) {
    return ParseClientHello(body, record_version, out);
  }
  if (auto it = clients_.find(key_); it != clients_.end()) {
    *out = it->second;
    return ParseResult::kOk;
  }
  const ParseResult res = ParseClientHello(body, record_version, out);
  if (res == ParseResult::kOk) {
    if (clients_.size() >= kMaxEntries) clients_.clear();
    clients_.emplace(key_, *out);
  }
  return res;
}

ParseResult HelloCache::Server(std::span<const uint8_t> body, ServerHelloInfo* out) {
  if (!ServerHelloShape(body, &key_)) return ParseServerHello(body, out);
  if (auto it = servers_.find(key_); it != servers_.end()) {
    *out = it->second;
    return ParseResult::kOk;
  }
  const ParseResult res = ParseServerHello(body, out);
  if (res == ParseResult::kOk) {
    if (servers_.size() >= kMaxEntries) servers_.clear();
    servers_.emplace(key_, *out);
  }
  return res;
}

}  // namespace pgtlsmon::parser
