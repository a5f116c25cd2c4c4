#include "parser/pg_startup.h"

#include <string_view>

#include "parser/text.h"

namespace pgtlsmon::parser {
namespace {

constexpr size_t kMaxCancelLength = 8 + 4 + 256;  // protocol 3.2: keys of 4 to 256 bytes
constexpr size_t kMinCancelLength = 16;

// Reads one NUL-terminated string from `r`; nullopt without a terminator.
std::optional<std::span<const uint8_t>> CString(ByteReader& r) {
  const auto rest = r.rest();
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == 0) {
      auto s = r.Bytes(i);
      r.Skip(1);
      return s;
    }
  }
  return std::nullopt;
}

bool Is(std::span<const uint8_t> s, std::string_view name) {
  return s.size() == name.size() &&
         std::equal(s.begin(), s.end(), name.begin(),
                    [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); });
}

}  // namespace

ParseResult ParsePgStartup(std::span<const uint8_t> data, size_t max_length,
                           PgStartupMessage* out) {
  ByteReader r(data);
  const auto length = r.U32Be();
  const auto code = r.U32Be();
  if (!length || !code) return ParseResult::kNeedMore;
  const uint32_t len = *length;
  if ((*code == kSslRequestCode || *code == kGssEncRequestCode) && len == 8) {
    out->kind = *code == kSslRequestCode ? PgStartupMessage::Kind::kSslRequest
                                         : PgStartupMessage::Kind::kGssEncRequest;
    out->length = 8;
    return ParseResult::kOk;
  }
  if (*code == kCancelRequestCode) {
    if (len < kMinCancelLength || len > kMaxCancelLength) return ParseResult::kNotThisProtocol;
    if (data.size() < len) return ParseResult::kNeedMore;
    out->kind = PgStartupMessage::Kind::kCancelRequest;
    out->length = len;
    return ParseResult::kOk;
  }
  const uint32_t major = *code >> 16;
  if (major != 3) return ParseResult::kNotThisProtocol;
  if (len <= 8) return ParseResult::kNotThisProtocol;
  if (len > max_length) return ParseResult::kMalformed;
  if (data.size() < len) return ParseResult::kNeedMore;

  StartupInfo info;
  info.protocol_major = static_cast<uint16_t>(major);
  info.protocol_minor = static_cast<uint16_t>(*code & 0xffff);
  auto params = r.Sub(len - 8);
  if (!params) return ParseResult::kMalformed;
  // name\0value\0 ... \0
  while (params->remaining() > 0) {
    auto name = CString(*params);
    if (!name || name->empty()) break;
    auto value = CString(*params);
    if (!value) break;
    if (Is(*name, "user")) {
      info.user = SanitizeUtf8(*value);
    } else if (Is(*name, "database")) {
      info.database = SanitizeUtf8(*value);
    } else if (Is(*name, "application_name")) {
      info.application_name = SanitizeUtf8(*value);
    }
  }
  out->kind = PgStartupMessage::Kind::kStartup;
  out->length = len;
  out->startup = std::move(info);
  return ParseResult::kOk;
}

}  // namespace pgtlsmon::parser
