#include "whatif/engine.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <span>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "parser/byte_reader.h"
#include "parser/tls_hello.h"

namespace pgtlsmon::whatif {
namespace {

constexpr size_t kMaxFragment = 16384;
constexpr uint16_t kExtKeyShare = 51;
constexpr uint16_t kExtPreSharedKey = 41;
constexpr uint16_t kExtPadding = 21;

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

// OpenSSL's queued errors as one line, oldest first; clears the queue.
std::string DrainErrors() {
  std::string s;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s.append("; ");
    const char* reason = ERR_reason_error_string(e);
    s.append(reason != nullptr ? reason : buf);
  }
  return s;
}

// The reason of session-record.md for OpenSSL's first queued error (as PostgreSQL logs it).
std::string_view ReasonFor(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return {};
  switch (ERR_GET_REASON(e)) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return "protocol_version";
    case SSL_R_NO_SHARED_CIPHER:
      return "no_shared_cipher";
    case SSL_R_NO_SUITABLE_KEY_SHARE:
      return "no_shared_group";
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:  // the client offers only ones the level forbids
      return "no_signature_algorithm";
    default:
      return {};
  }
}

void Append(std::string* s, std::span<const uint8_t> b) { s->append(b.begin(), b.end()); }

// The ClientHello's shape: its bytes without random, session id and key-share bytes (their
// lengths stay), so that connections of one client kind share an answer.
std::string HelloShape(const parser::RawClientHello& h) {
  const std::span<const uint8_t> m(h.message);
  std::string s;
  s.reserve(m.size() + 3);
  s.push_back(h.sslv2 ? '2' : '3');
  s.push_back(static_cast<char>(h.record_version >> 8));
  s.push_back(static_cast<char>(h.record_version));
  const auto whole = [&] {
    s.resize(3);
    Append(&s, m);
    return s;
  };
  if (h.sslv2) {
    // msg_type, version, cipher_specs_len, session_id_len, challenge_len, specs, id, challenge.
    const size_t specs = parser::PeekU16Be(m, 3).value_or(0);
    if (m.size() < 9 || 9 + specs > m.size()) return whole();
    Append(&s, m.first(9 + specs));
    s.push_back(static_cast<char>(m.size() - 9 - specs));
    return s;
  }
  parser::ByteReader r(m);
  const auto head = r.Bytes(4 + 2);  // handshake header, legacy_version
  if (!head || !r.Skip(32)) return whole();
  const auto sid = r.U8();
  if (!sid || !r.Skip(*sid)) return whole();
  Append(&s, *head);
  s.push_back(static_cast<char>(*sid));
  // cipher_suites and compression_methods as they are, with their lengths.
  const std::span<const uint8_t> lists = r.rest();
  const auto cs = r.U16Be();
  if (!cs || !r.Skip(*cs)) return whole();
  const auto comp = r.U8();
  if (!comp || !r.Skip(*comp)) return whole();
  Append(&s, lists.first(lists.size() - r.remaining()));
  if (r.empty()) return s;
  const auto ext_len = r.U16Be();
  if (!ext_len || *ext_len != r.remaining()) return whole();
  while (r.remaining() >= 4) {
    const auto ext_head = r.Bytes(4);  // type, length
    const uint16_t type = parser::PeekU16Be(*ext_head, 0).value_or(0);
    const auto data = r.Bytes(parser::PeekU16Be(*ext_head, 2).value_or(0));
    if (!data) return whole();
    Append(&s, *ext_head);
    if (type == kExtKeyShare && data->size() >= 2) {
      // Each share: group (2), key length (2), key; keep the group and the length.
      parser::ByteReader shares(data->subspan(2));
      while (shares.remaining() >= 4) {
        const auto share_head = shares.Bytes(4);
        Append(&s, *share_head);
        if (!shares.Skip(parser::PeekU16Be(*share_head, 2).value_or(0))) break;
      }
    } else if (type != kExtPreSharedKey && type != kExtPadding) {
      Append(&s, *data);
    }
  }
  if (!r.empty()) return whole();
  return s;
}

// The records a client would have sent for `h`.
std::vector<uint8_t> Records(const parser::RawClientHello& h) {
  std::vector<uint8_t> out;
  const std::span<const uint8_t> m(h.message);
  if (h.sslv2) {
    if (m.size() > 0x7fff) return out;
    out.push_back(static_cast<uint8_t>(0x80 | (m.size() >> 8)));
    out.push_back(static_cast<uint8_t>(m.size()));
    out.insert(out.end(), m.begin(), m.end());
    return out;
  }
  for (size_t off = 0; off < m.size(); off += kMaxFragment) {
    const std::span<const uint8_t> fragment =
        m.subspan(off, std::min(kMaxFragment, m.size() - off));
    out.push_back(22);
    out.push_back(static_cast<uint8_t>(h.record_version >> 8));
    out.push_back(static_cast<uint8_t>(h.record_version));
    out.push_back(static_cast<uint8_t>(fragment.size() >> 8));
    out.push_back(static_cast<uint8_t>(fragment.size()));
    out.insert(out.end(), fragment.begin(), fragment.end());
  }
  return out;
}

// Reads the ServerHello's version and suite from the first record OpenSSL wrote.
bool ReadServerHello(std::span<const uint8_t> rec, parser::WhatIfPrediction* p) {
  // Handshake header (4), then the body the parser reads (tls_hello.h). A HelloRetryRequest is
  // a success too: the client retries with the shared group, under the HRR's version and suite.
  parser::ByteReader r(rec);
  const auto type = r.U8();
  const auto length = r.U24Be();
  if (!type || !length || *type != 2) return false;
  parser::ServerHelloInfo sh;
  if (parser::ParseServerHello(r.rest().first(std::min<size_t>(r.remaining(), *length)), &sh) !=
      parser::ParseResult::kOk) {
    return false;
  }
  p->outcome = parser::Outcome::kTls;
  p->version = sh.selected_version.value_or(sh.version);
  p->cipher_suite = sh.cipher_suite;
  return true;
}

}  // namespace

namespace {
void KeepOpensslConfOut() {
  // An openssl.cnf `system_default` section applies to every SSL_CTX of the process, whatever
  // its library context (MinProtocol, CipherString with @SECLEVEL, Groups...): the monitor's
  // configuration is not the server's. Effective when this runs before anything else loads
  // the configuration (pgtlsmon builds the engine right after parsing its flags); the contexts
  // also set every such setting explicitly.
  OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
}

}  // namespace

int DefaultSecurityLevel() {
  KeepOpensslConfOut();
  OSSL_LIB_CTX* lib = OSSL_LIB_CTX_new();
  int level = 1;
  if (SSL_CTX* c = SSL_CTX_new_ex(lib, nullptr, TLS_server_method())) {
    level = SSL_CTX_get_security_level(c);
    SSL_CTX_free(c);
  }
  OSSL_LIB_CTX_free(lib);
  return level;
}

std::optional<KeySpec> KeySpecOf(const parser::CertificateInfo& cert) {
  if (cert.key_type == "RSA" && cert.key_bits >= 512) {
    return KeySpec{KeySpec::Type::kRsa, cert.key_bits};
  }
  if (cert.key_type == "EC" &&
      (cert.key_bits == 256 || cert.key_bits == 384 || cert.key_bits == 521)) {
    return KeySpec{KeySpec::Type::kEc, cert.key_bits};
  }
  if (cert.key_type == "Ed25519") return KeySpec{KeySpec::Type::kEd25519, 256};
  if (cert.key_type == "Ed448") return KeySpec{KeySpec::Type::kEd448, 456};
  return std::nullopt;
}

struct Engine::Impl {
  OSSL_LIB_CTX* lib = nullptr;
  std::vector<Policy> policies;
  int level = 2;
  EngineOptions options;

  struct Identity {
    PkeyPtr key;
    X509Ptr cert;
  };
  std::map<std::string, Identity> identities;                 // by KeySpecName
  std::map<std::pair<size_t, std::string>, CtxPtr> contexts;  // by (policy, key name)
  std::map<std::pair<size_t, std::string>, std::string> context_errors;
  absl::flat_hash_map<std::string, KeySpec> server_keys;  // by server address bytes
  absl::flat_hash_map<std::string, parser::WhatIfPrediction> cache;
  mutable std::mutex mu;
  EngineStats stats;

  ~Impl() {
    contexts.clear();
    identities.clear();
    OSSL_LIB_CTX_free(lib);
  }

  // A throwaway self-signed certificate with a key like `k`.
  Identity* GetIdentity(const KeySpec& k, std::string* err) {
    const std::string name = KeySpecName(k);
    if (auto it = identities.find(name); it != identities.end()) return &it->second;
    Identity id;
    switch (k.type) {
      case KeySpec::Type::kRsa:
        id.key.reset(EVP_PKEY_Q_keygen(lib, nullptr, "RSA", static_cast<size_t>(k.bits)));
        break;
      case KeySpec::Type::kEc:
        id.key.reset(EVP_PKEY_Q_keygen(lib, nullptr, "EC",
                                       k.bits == 384   ? "secp384r1"
                                       : k.bits == 521 ? "secp521r1"
                                                       : "prime256v1"));
        break;
      case KeySpec::Type::kEd25519:
        id.key.reset(EVP_PKEY_Q_keygen(lib, nullptr, "ED25519"));
        break;
      case KeySpec::Type::kEd448:
        id.key.reset(EVP_PKEY_Q_keygen(lib, nullptr, "ED448"));
        break;
    }
    if (!id.key) {
      *err = absl::StrCat("cannot make a ", name, " key: ", DrainErrors());
      return nullptr;
    }
    id.cert.reset(X509_new_ex(lib, nullptr));
    X509* x = id.cert.get();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_NAME* n = X509_get_subject_name(x);
    static constexpr unsigned char kCommonName[] = "pgtlsmon what-if";
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, kCommonName, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, id.key.get());
    const bool ed = k.type == KeySpec::Type::kEd25519 || k.type == KeySpec::Type::kEd448;
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    const bool signed_ok = EVP_DigestSignInit_ex(md, nullptr, ed ? nullptr : "SHA256", lib, nullptr,
                                                 id.key.get(), nullptr) == 1 &&
                           X509_sign_ctx(x, md) > 0;
    EVP_MD_CTX_free(md);
    if (!signed_ok) {
      *err = absl::StrCat("cannot sign a ", name, " certificate: ", DrainErrors());
      return nullptr;
    }
    return &identities.emplace(name, std::move(id)).first->second;
  }

  // The server context of policy `pi` with a `k` certificate, configured as be_tls_init() does.
  SSL_CTX* GetContext(size_t pi, const KeySpec& k, std::string* err) {
    const auto key = std::make_pair(pi, KeySpecName(k));
    if (auto it = contexts.find(key); it != contexts.end()) return it->second.get();
    if (auto it = context_errors.find(key); it != context_errors.end()) {
      *err = it->second;
      return nullptr;
    }
    ERR_clear_error();
    CtxPtr ctx = Build(policies[pi], k, err);
    ERR_clear_error();
    if (!ctx) {
      context_errors.emplace(key, *err);
      return nullptr;
    }
    return contexts.emplace(key, std::move(ctx)).first->second.get();
  }

  CtxPtr Build(const Policy& p, const KeySpec& k, std::string* err) {
    Identity* id = GetIdentity(k, err);
    if (id == nullptr) return nullptr;
    CtxPtr ctx(SSL_CTX_new_ex(lib, nullptr, TLS_server_method()));
    if (!ctx) {
      *err = absl::StrCat("could not create SSL context: ", DrainErrors());
      return nullptr;
    }
    SSL_CTX* c = ctx.get();
    // What an openssl.cnf system_default section may have changed, back to OpenSSL 3's
    // defaults: options, version bounds, TLS 1.3 suites; then the assumed security level.
    SSL_CTX_clear_options(c, SSL_CTX_get_options(c));
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
    SSL_CTX_set_min_proto_version(c, 0);
    SSL_CTX_set_max_proto_version(c, 0);
    SSL_CTX_set_ciphersuites(c, OSSL_default_ciphersuites());
    SSL_CTX_set_security_level(c, level);

    // be_tls_init(), in its order.
    SSL_CTX_set_mode(c, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate(c, id->cert.get()) != 1) {
      *err =
          absl::StrCat("could not load server certificate (", KeySpecName(k), "): ", DrainErrors());
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey(c, id->key.get()) != 1 || SSL_CTX_check_private_key(c) != 1) {
      *err = absl::StrCat("could not load private key (", KeySpecName(k), "): ", DrainErrors());
      return nullptr;
    }
    const uint16_t min = ProtocolVersionCode(p.min_version).value_or(0);
    const uint16_t max = ProtocolVersionCode(p.max_version).value_or(0);
    if (min != 0 && SSL_CTX_set_min_proto_version(c, min) != 1) {
      *err = "ssl_min_protocol_version: could not set minimum SSL protocol version";
      return nullptr;
    }
    if (max != 0 && SSL_CTX_set_max_proto_version(c, max) != 1) {
      *err = "ssl_max_protocol_version: could not set maximum SSL protocol version";
      return nullptr;
    }
    if (min != 0 && max != 0 && min > max) {
      *err = R"("ssl_min_protocol_version" cannot be higher than "ssl_max_protocol_version")";
      return nullptr;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    // initialize_dh(): PostgreSQL's built-in 2048-bit group (RFC 3526 group 14).
    if (!SetDh(c)) {
      *err = absl::StrCat("DH: could not set DH parameters: ", DrainErrors());
      return nullptr;
    }
    // initialize_ecdh(): one named curve, which becomes the only group for TLS 1.2 and 1.3;
    // PostgreSQL 18's ssl_groups sets a list instead.
    if (p.groups) {
      if (SSL_CTX_set1_groups_list(c, p.groups->c_str()) != 1) {
        *err = absl::StrCat("ssl_groups: could not set group names \"", *p.groups,
                            "\": ", DrainErrors());
        return nullptr;
      }
    } else {
      const int nid = OBJ_sn2nid(p.ecdh_curve.c_str());
      if (nid == NID_undef) {
        *err = absl::StrCat("ssl_ecdh_curve: ECDH: unrecognized curve name: ", p.ecdh_curve);
        return nullptr;
      }
      EC_GROUP* g = EC_GROUP_new_by_curve_name_ex(lib, nullptr, nid);
      if (g == nullptr) {
        *err = absl::StrCat("ssl_ecdh_curve: ECDH: could not create key for ", p.ecdh_curve);
        return nullptr;
      }
      EC_GROUP_free(g);
      // PostgreSQL does not check SSL_CTX_set_tmp_ecdh()'s result; neither do we.
      int groups[1] = {nid};
      (void)SSL_CTX_set1_groups(c, groups, 1);
      ERR_clear_error();
    }
    if (SSL_CTX_set_cipher_list(c, p.ciphers.c_str()) != 1) {
      *err = absl::StrCat("ssl_ciphers: could not set the cipher list \"", p.ciphers,
                          "\" (no valid ciphers available): ", DrainErrors());
      return nullptr;
    }
    if (p.tls13_ciphers && !p.tls13_ciphers->empty() &&
        SSL_CTX_set_ciphersuites(c, p.tls13_ciphers->c_str()) != 1) {
      *err = absl::StrCat("ssl_tls13_ciphers: could not set the cipher suites \"", *p.tls13_ciphers,
                          "\": ", DrainErrors());
      return nullptr;
    }
    if (p.prefer_server_ciphers) SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    return ctx;
  }

  bool SetDh(SSL_CTX* c) {
    EVP_PKEY_CTX* pc = EVP_PKEY_CTX_new_from_name(lib, "DH", nullptr);
    if (pc == nullptr) return false;
    char group[] = "modp_2048";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY* dh = nullptr;
    const bool ok = EVP_PKEY_fromdata_init(pc) == 1 &&
                    EVP_PKEY_fromdata(pc, &dh, EVP_PKEY_KEY_PARAMETERS, params) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok) return false;
    if (SSL_CTX_set0_tmp_dh_pkey(c, dh) != 1) {
      EVP_PKEY_free(dh);
      return false;
    }
    return true;
  }

  parser::WhatIfPrediction Ask(SSL_CTX* ctx, const parser::RawClientHello& h) {
    parser::WhatIfPrediction p;
    const std::vector<uint8_t> in = Records(h);
    if (in.empty()) return p;
    ERR_clear_error();
    SSL* s = SSL_new(ctx);
    BIO* rb = BIO_new(BIO_s_mem());
    BIO* wb = BIO_new(BIO_s_mem());
    if (s == nullptr || rb == nullptr || wb == nullptr) {
      SSL_free(s);
      BIO_free(rb);
      BIO_free(wb);
      ERR_clear_error();
      return p;
    }
    BIO_set_mem_eof_return(rb, -1);  // no more input yet: "want read", not end of stream
    BIO_write(rb, in.data(), static_cast<int>(in.size()));
    SSL_set_bio(s, rb, wb);
    SSL_set_accept_state(s);
    (void)SSL_do_handshake(s);
    const unsigned long first_error = ERR_peek_error();
    // What OpenSSL answered: its first record (a handshake or an alert) is enough.
    std::vector<uint8_t> answer(BIO_ctrl_pending(wb));
    size_t n = 0;
    if (!answer.empty() && BIO_read_ex(wb, answer.data(), answer.size(), &n) == 1) {
      answer.resize(n);
    } else {
      answer.clear();
    }
    const std::span<const uint8_t> o(answer);
    if (o.size() >= 5 && o[0] == 22) {
      const size_t len = std::min<size_t>(parser::PeekU16Be(o, 3).value_or(0), o.size() - 5);
      if (!ReadServerHello(o.subspan(5, len), &p)) p.detail = "unreadable answer";
    } else if (o.size() >= 7 && o[0] == 21) {
      p.outcome = parser::Outcome::kTlsFailed;
      p.reason = ReasonFor(first_error);
      const char* r = first_error != 0 ? ERR_reason_error_string(first_error) : nullptr;
      p.detail = r != nullptr ? r : SSL_alert_desc_string_long(o[6]);
    } else if (first_error != 0) {
      p.outcome = parser::Outcome::kTlsFailed;
      p.reason = ReasonFor(first_error);
      const char* r = ERR_reason_error_string(first_error);
      p.detail = r != nullptr ? r : "";
    }
    SSL_free(s);
    ERR_clear_error();
    return p;
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(std::vector<Policy> policies,
                                                       EngineOptions options) {
  if (policies.empty()) return absl::InvalidArgumentError("no policy given");
  KeepOpensslConfOut();
  auto impl = std::make_unique<Impl>();
  impl->level = options.security_level < 0 ? DefaultSecurityLevel() : options.security_level;
  if (impl->level > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("security level ", impl->level, " is not one of 0..5"));
  }
  impl->options = options;
  impl->lib = OSSL_LIB_CTX_new();
  if (impl->lib == nullptr) return absl::InternalError("cannot create an OpenSSL library context");
  impl->policies = std::move(policies);
  for (size_t i = 0; i < impl->policies.size(); ++i) {
    std::string err;
    const KeySpec k = impl->policies[i].certificate_key.value_or(DefaultKey());
    if (impl->GetContext(i, k, &err) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("policy ", impl->policies[i].name, ": ", err));
    }
  }
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const std::vector<Policy>& Engine::policies() const { return impl_->policies; }
int Engine::security_level() const { return impl_->level; }
EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->stats;
}

parser::WhatIfPrediction Engine::Predict(size_t index, const parser::RawClientHello& hello,
                                         const KeySpec& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string err;
  SSL_CTX* ctx = impl_->GetContext(index, key, &err);
  if (ctx == nullptr) return {};
  return impl_->Ask(ctx, hello);
}

namespace {
std::string ServerKey(const parser::Endpoint& e) {
  const auto ip = std::span(e.ip.bytes).first(e.ip.is_v6 ? 16 : 4);
  std::string s(ip.begin(), ip.end());
  s.push_back(static_cast<char>(e.port >> 8));
  s.push_back(static_cast<char>(e.port));
  return s;
}
}  // namespace

void Engine::Annotate(parser::SessionRecord* r) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  const std::string server = ServerKey(r->server);
  if (r->certificate) {
    if (auto k = KeySpecOf(*r->certificate)) {
      if (m.server_keys.size() < m.options.max_servers || m.server_keys.contains(server)) {
        m.server_keys[server] = *k;
      }
    }
  }
  r->what_if.emplace();
  if (!r->client_hello_raw) return;
  ++m.stats.predictions;
  std::optional<KeySpec> seen;
  if (auto it = m.server_keys.find(server); it != m.server_keys.end()) seen = it->second;
  const std::string shape = HelloShape(*r->client_hello_raw);
  bool unknown = false;
  for (size_t i = 0; i < m.policies.size(); ++i) {
    const KeySpec k = m.policies[i].certificate_key.value_or(seen.value_or(DefaultKey()));
    const bool assumed = !m.policies[i].certificate_key && !seen;
    std::string key = absl::StrCat(i, "/", KeySpecName(k), "/");
    key.append(shape);
    parser::WhatIfPrediction p;
    if (auto it = m.cache.find(key); it != m.cache.end()) {
      ++m.stats.cache_hits;
      p = it->second;
    } else {
      ++m.stats.cache_misses;
      std::string err;
      if (SSL_CTX* ctx = m.GetContext(i, k, &err)) {
        p = m.Ask(ctx, *r->client_hello_raw);
      } else {
        p.detail = "no server context";
      }
      if (m.cache.size() < m.options.max_cache_entries) {
        m.cache.emplace(std::move(key), p);
      } else {
        ++m.stats.cache_full;
      }
    }
    p.policy = m.policies[i].name;
    p.certificate_assumed = assumed;
    p.certificate_key = KeySpecName(k);
    unknown |= p.outcome == parser::Outcome::kUnknown;
    r->what_if->push_back(p);
  }
  if (unknown) ++m.stats.unpredictable;
  if (!r->what_if->empty() && r->what_if->front().outcome == parser::Outcome::kTlsFailed) {
    r->findings |= parser::FindingBit(parser::Finding::kFailsWhatIf);
  }
}

}  // namespace pgtlsmon::whatif
