// fuzz_web_request: what of the HTTP endpoint's input handling is ours (libmicrohttpd parses
// the requests): the Accept and Accept-Encoding negotiation, --listen parsing and the
// --web.config.file parser (YAML, strict keys, TLS settings mapped to a GnuTLS priority
// string). The first byte picks the function.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "exporter/exposition.h"
#include "exporter/http.h"
#include "exporter/web_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::exporter;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  const std::string_view in = pgtlsmon::parser::AsChars(input.subspan(1));
  switch (input[0] % 4) {
    case 0: {
      // Relative file names resolve under a directory that does not exist: no file is read.
      auto c = ParseWebConfig(in, "/nonexistent-pgtlsmon-fuzz");
      if (c.ok() && c->tls) __builtin_trap();  // a TLS config needs a readable certificate
      if (c.ok() && c->rate_limit_interval_s < 0) __builtin_trap();
      break;
    }
    case 1:
      (void)WantsOpenMetrics(in);
      break;
    case 2:
      (void)AcceptsGzip(in);
      break;
    default:
      (void)HttpServer::CheckListenAddress(std::string(in));
      break;
  }
  return 0;
}
