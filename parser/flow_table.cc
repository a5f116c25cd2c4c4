#include "parser/flow_table.h"

#include <random>

namespace pgtlsmon::parser {
namespace flow_key_internal {
HashSeed NewHashSeed() {
  std::random_device rd;
  HashSeed s{};
  for (uint64_t& k : s.k) k = (uint64_t{rd()} << 32) ^ rd();
  return s;
}
}  // namespace flow_key_internal

std::string_view EvictionReasonName(EvictionReason r) {
  switch (r) {
    case EvictionReason::kTableFull:
      return "table_full";
    case EvictionReason::kIdleTimeout:
      return "idle_timeout";
    case EvictionReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace pgtlsmon::parser
