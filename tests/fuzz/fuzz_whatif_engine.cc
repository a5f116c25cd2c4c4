// fuzz_whatif_engine: the --what-if engine fed any ClientHello: byte 0 odd -> an SSLv2-format
// message, even -> a ClientHello body (the fuzz_client_hello corpus format) wrapped in its
// handshake header; bits 1-2 pick the record version. OpenSSL judges it under two policies.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "tests/fuzz/fuzz_input.h"
#include "whatif/engine.h"

namespace {
pgtlsmon::whatif::Engine& TheEngine() {
  using namespace pgtlsmon::whatif;
  static std::unique_ptr<Engine> e = [] {
    Policy strict = ParseSettings("ssl_min_protocol_version = 'TLSv1.3'")->policy;
    strict.name = "strict";
    Policy legacy =
        ParseSettings("ssl_min_protocol_version='TLSv1'; ssl_ciphers='DEFAULT:@SECLEVEL=0'")
            ->policy;
    legacy.name = "legacy";
    auto made = Engine::Create({legacy, strict}, EngineOptions{2, 256, 16});
    if (!made.ok()) __builtin_trap();
    return std::move(*made);
  }();
  return *e;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty() || input.size() > 70000) return 0;
  parser::SessionRecord r;
  parser::RawClientHello h;
  h.sslv2 = (input[0] & 1) != 0;
  static constexpr uint16_t kRecordVersions[] = {0x0301, 0x0303, 0x0300, 0x0304};
  h.record_version = h.sslv2 ? 0x0002 : kRecordVersions[(input[0] >> 1) & 3];
  const std::span<const uint8_t> body = input.subspan(1);
  if (!h.sslv2) {
    h.message = {1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
                 static_cast<uint8_t>(body.size())};
  }
  h.message.insert(h.message.end(), body.begin(), body.end());
  r.client_hello_raw = h;
  TheEngine().Annotate(&r);
  if (!r.what_if || r.what_if->size() != 2) __builtin_trap();
  for (const parser::WhatIfPrediction& p : *r.what_if) {
    // A success has a version; a failure has none.
    if (p.outcome == parser::Outcome::kTls && p.version == 0) __builtin_trap();
    if (p.outcome == parser::Outcome::kTlsFailed && p.version != 0) __builtin_trap();
  }
  return 0;
}
