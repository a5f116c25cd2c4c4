// parser/pg_startup.h: the PostgreSQL messages a client may send first
// (protocol docs, "Message Formats": SSLRequest, GSSENCRequest, CancelRequest, StartupMessage).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "parser/byte_reader.h"
#include "parser/events.h"

namespace pgtlsmon::parser {

inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint32_t kCancelRequestCode = 80877102;

struct PgStartupMessage {
  enum class Kind : uint8_t { kSslRequest, kGssEncRequest, kCancelRequest, kStartup };
  Kind kind = Kind::kStartup;
  size_t length = 0;                   // bytes the message takes, including its length word
  std::optional<StartupInfo> startup;  // kStartup only
};

// Parses the message at the front of a client's first bytes.
// kNeedMore: fewer bytes than the message needs. kNotThisProtocol: not a PostgreSQL startup
// message (the connection is something else). kMalformed: a PostgreSQL code with a length
// that cannot be right. Passwords never appear here (they come later, in other messages).
ParseResult ParsePgStartup(std::span<const uint8_t> data, size_t max_length, PgStartupMessage* out);

}  // namespace pgtlsmon::parser
