// tests/testing/openssl_client_hello.h: real ClientHellos from an in-process OpenSSL client
// (what-if engine tests and benchmark).
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <functional>
#include <vector>

#include "parser/events.h"

namespace pgtlsmon::whatif::testing {

// Starts a handshake with a client context that `configure` sets up and returns the first
// ClientHello it writes, as the parser keeps it (handshake message, record version).
inline parser::RawClientHello MakeHello(const std::function<void(SSL_CTX*, SSL*)>& configure) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);
  SSL* s = SSL_new(ctx);
  configure(ctx, s);
  BIO* rb = BIO_new(BIO_s_mem());
  BIO* wb = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rb, -1);
  SSL_set_bio(s, rb, wb);
  SSL_set_connect_state(s);
  (void)SSL_do_handshake(s);
  char* out = nullptr;
  const long n = BIO_get_mem_data(wb, &out);
  const auto* o = reinterpret_cast<const uint8_t*>(out);
  parser::RawClientHello h;
  for (long i = 0; i + 5 <= n;) {
    const size_t len = static_cast<size_t>((o[i + 3] << 8) | o[i + 4]);
    if (h.message.empty()) h.record_version = static_cast<uint16_t>((o[i + 1] << 8) | o[i + 2]);
    h.message.insert(h.message.end(), o + i + 5, o + i + 5 + len);
    i += 5 + static_cast<long>(len);
  }
  SSL_free(s);
  SSL_CTX_free(ctx);
  return h;
}

}  // namespace pgtlsmon::whatif::testing
