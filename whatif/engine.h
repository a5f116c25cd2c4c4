// whatif/engine.h: `--what-if`, predicting each connection's handshake under planned settings.
//
// The prediction is asked of OpenSSL, not re-implemented: for each policy a server SSL_CTX is
// configured the way PostgreSQL's be_tls_init() configures its own (be-secure-openssl.c, in that
// order), with a throwaway certificate of the key type seen for the server; the captured
// ClientHello is fed to an SSL object over memory BIOs and the first record OpenSSL writes
// (ServerHello, HelloRetryRequest or alert) is the answer. Facts this follows, measured against
// real servers: ../shared/notes/what-if-openssl.md.
//
// OpenSSL runs in a library context of its own, with every setting the server's openssl.cnf
// could change set explicitly, so the monitor's own OPENSSL_CONF does not leak in. Answers are
// cached per ClientHello shape (all but random, session id and key-share bytes) and certificate
// key, so a client kind costs once. Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parser/events.h"
#include "whatif/settings.h"

namespace pgtlsmon::whatif {

struct EngineOptions {
  int security_level = -1;           // -1: the default of the OpenSSL pgtlsmon runs with
  size_t max_cache_entries = 65536;  // distinct (hello shape, certificate) answers kept
  size_t max_servers = 65536;        // servers whose certificate key is remembered
};

struct EngineStats {
  uint64_t predictions = 0;    // records annotated (each with every policy)
  uint64_t unpredictable = 0;  // records with a ClientHello that OpenSSL could not judge
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;  // distinct shapes asked of OpenSSL
  uint64_t cache_full = 0;    // answers not kept because the cache was full
};

class Engine {
 public:
  // Builds one server context per policy; an invalid policy (unknown curve, a cipher string
  // matching nothing, min > max) is an InvalidArgument error naming the policy and parameter,
  // quoting OpenSSL. security_level outside 0..5 is an error too.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(std::vector<Policy> policies,
                                                        EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Sets r->what_if (one prediction per policy; empty when r has no usable ClientHello) and
  // the fails_what_if finding when the first policy's outcome is tls_failed. Learns the
  // server's certificate key from r->certificate first.
  void Annotate(parser::SessionRecord* r);

  // Predicts one ClientHello under policy `index` with a certificate of `key`.
  parser::WhatIfPrediction Predict(size_t index, const parser::RawClientHello& hello,
                                   const KeySpec& key);

  const std::vector<Policy>& policies() const;
  int security_level() const;
  EngineStats stats() const;
  // The key assumed for servers whose certificate has not been seen, and whether any record so
  // far was predicted with it.
  static KeySpec DefaultKey() { return KeySpec{}; }

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The key type a certificate record describes, if OpenSSL can make one like it.
std::optional<KeySpec> KeySpecOf(const parser::CertificateInfo& cert);

// OpenSSL's build default security level (no configuration file applied: this and
// Engine::Create keep openssl.cnf from being loaded when they run before any other OpenSSL use).
int DefaultSecurityLevel();

}  // namespace pgtlsmon::whatif
