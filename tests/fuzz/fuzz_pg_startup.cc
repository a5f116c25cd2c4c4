// fuzz_pg_startup: ParsePgStartup over arbitrary bytes, with the first byte choosing the cap.
#include <cstddef>
#include <cstdint>
#include <span>

#include "parser/pg_startup.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::parser;
  const std::span<const uint8_t> input = pgtlsmon::fuzz::Input(data, size);
  if (input.empty()) return 0;
  // Caps from tiny to PostgreSQL's own 10000, so both the cap and the body checks are reached.
  const size_t max_length = (input[0] & 0x80) != 0 ? 10000 : 8 + size_t{input[0]};
  const std::span<const uint8_t> in = input.subspan(1);
  PgStartupMessage msg;
  if (ParsePgStartup(in, max_length, &msg) == ParseResult::kOk) {
    // The cap bounds a StartupMessage; a CancelRequest has its own (at most 268 bytes).
    if (msg.length > in.size()) __builtin_trap();
    if (msg.kind == PgStartupMessage::Kind::kStartup && msg.length > max_length) __builtin_trap();
  }
  return 0;
}
