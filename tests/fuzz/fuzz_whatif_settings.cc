// fuzz_whatif_settings: the --what-if settings parser (postgresql.conf syntax) over any text.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "tests/fuzz/fuzz_input.h"
#include "whatif/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtlsmon::whatif;
  const std::string_view text = pgtlsmon::parser::AsChars(pgtlsmon::fuzz::Input(data, size));
  auto s = ParseSettings(text);
  if (s.ok()) {
    // What parsed is a policy PostgreSQL could load as far as versions go.
    const auto min = ProtocolVersionCode(s->policy.min_version);
    const auto max = ProtocolVersionCode(s->policy.max_version);
    if (!min || !max) __builtin_trap();
    if (*min != 0 && *max != 0 && *min > *max) __builtin_trap();
  }
  (void)ParsePolicyArgument(text.substr(0, text.find('@')), "what_if");
  return 0;
}
