// capture/capture_set.cc: see capture_set.h.
#include "capture/capture_set.h"

#include <glob.h>
#include <pcap/pcap.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace pgtlsmon::capture {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMinChunkBytes = size_t{64} << 10;
constexpr uint32_t kFilterSnaplen = 262144;  // libpcap's MAXIMUM_SNAPLEN

// LINKTYPE_ values from files -> libpcap's DLT_ values (they differ only for raw IP).
int LinktypeToDlt(uint32_t linktype) {
  return linktype == kLinkRaw ? DLT_RAW : static_cast<int>(linktype);
}

bool HasGlobChars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

struct CaptureSet::Entry {
  std::string path;
  uint64_t size = 0;
  uint64_t first_ts = UINT64_MAX;    // UINT64_MAX: no packet (left out of the merge)
  bool explicit_name = false;        // named on the command line (not found in a directory)
  std::unique_ptr<FileSource> held;  // standard input: kept open since the scan
  RawPacket held_pkt;                // its first packet (data in held's buffer)
};

struct CaptureSet::Cursor {
  size_t entry = 0;
  std::unique_ptr<FileSource> src;
  RawPacket pkt;
};

struct CaptureSet::Filter {
  std::string expr;
  std::map<uint32_t, std::optional<bpf_program>> programs;  // by link type; nullopt: no compile
  ~Filter() {
    for (auto& [lt, prog] : programs) {
      if (prog) pcap_freecode(&*prog);
    }
  }
};

namespace {

// Compiles `expr` for `dlt`; on failure returns libpcap's message.
absl::StatusOr<bpf_program> Compile(const std::string& expr, int dlt) {
  pcap_t* dead = pcap_open_dead(dlt, static_cast<int>(kFilterSnaplen));
  if (dead == nullptr) return absl::InternalError("pcap_open_dead failed");
  bpf_program prog{};
  const int rc = pcap_compile(dead, &prog, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN);
  std::string err = rc != 0 ? pcap_geterr(dead) : "";
  pcap_close(dead);
  if (rc != 0) return absl::InvalidArgumentError(err);
  return prog;
}

}  // namespace

absl::Status ValidateFilter(const std::string& expr) {
  auto prog = Compile(expr, DLT_EN10MB);
  if (!prog.ok()) return prog.status();
  pcap_freecode(&*prog);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseTimeArg(std::string_view text) {
  const std::string s(text);
  // Epoch seconds with an optional fraction.
  if (!s.empty() && s.find_first_not_of("0123456789.") == std::string::npos &&
      std::count(s.begin(), s.end(), '.') <= 1 && s.front() != '.') {
    const size_t dot = s.find('.');
    uint64_t secs = 0;
    const std::string whole = s.substr(0, dot);
    auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), secs);
    if (ec != std::errc() || p != whole.data() + whole.size() || secs > 18'000'000'000ULL) {
      return absl::InvalidArgumentError(absl::StrCat("'", s, "': epoch seconds out of range"));
    }
    uint64_t frac_ns = 0;
    if (dot != std::string::npos) {
      std::string frac = s.substr(dot + 1);
      if (frac.empty() || frac.size() > 9) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", s, "': 1 to 9 digits expected after the point"));
      }
      frac.resize(9, '0');
      std::from_chars(frac.data(), frac.data() + frac.size(), frac_ns);
    }
    return secs * 1'000'000'000ULL + frac_ns;
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", s, "' is neither RFC 3339 (2026-03-01T00:00:00Z) nor epoch seconds: ", err));
  }
  if (t < absl::UnixEpoch()) {
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is before 1970"));
  }
  return static_cast<uint64_t>(absl::ToUnixNanos(t));
}

CaptureSet::CaptureSet(CaptureSetOptions options) : options_(std::move(options)) {}
CaptureSet::~CaptureSet() = default;

absl::StatusOr<std::unique_ptr<CaptureSet>> CaptureSet::Open(const std::vector<std::string>& inputs,
                                                             const CaptureSetOptions& options) {
  std::unique_ptr<CaptureSet> set(new CaptureSet(options));
  // Overlapping files are all open at once: allow as many descriptors as the hard limit does.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (!options.filter.empty()) {
    if (absl::Status st = ValidateFilter(options.filter); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--filter '", options.filter, "': ", st.message()));
    }
    set->filter_ = std::make_unique<Filter>();
    set->filter_->expr = options.filter;
  }
  for (const std::string& in : inputs) set->AddInput(in);
  // Scan: the first timestamp of each file; files without a packet leave the list.
  std::vector<Entry> scanned;
  for (size_t i = 0; i < set->entries_.size(); ++i) set->Scan(i);
  for (Entry& e : set->entries_) {
    if (e.first_ts != UINT64_MAX) scanned.push_back(std::move(e));
  }
  set->entries_ = std::move(scanned);
  std::stable_sort(set->entries_.begin(), set->entries_.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.first_ts, a.path) < std::tie(b.first_ts, b.path);
  });
  return set;
}

void CaptureSet::AddInput(const std::string& input) {
  if (input == "-") {
    AddFile(input, true);
    return;
  }
  std::error_code ec;
  const fs::file_status st = fs::status(input, ec);
  if (ec && HasGlobChars(input)) {
    glob_t g{};
    // NOLINTNEXTLINE(concurrency-mt-unsafe): one thread reads a CaptureSet
    const int rc = glob(input.c_str(), GLOB_NOSORT, nullptr, &g);
    if (rc == 0) {
      std::vector<std::string> matches(g.gl_pathv, g.gl_pathv + g.gl_pathc);
      globfree(&g);
      std::sort(matches.begin(), matches.end());
      for (const std::string& m : matches) {
        if (fs::is_directory(m, ec)) {
          AddDirectory(m);
        } else {
          AddFile(m, true);
        }
      }
      return;
    }
    globfree(&g);
    stats_.errors.push_back(absl::StrCat(input, ": no file matches"));
    return;
  }
  if (!ec && fs::is_directory(st)) {
    AddDirectory(input);
    return;
  }
  AddFile(input, true);  // a missing file fails when it is opened, naming the cause
}

void CaptureSet::AddDirectory(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) files.push_back(it->path().string());
  }
  if (ec) stats_.errors.push_back(absl::StrCat(dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) AddFile(f, false);
}

void CaptureSet::AddFile(const std::string& path, bool explicit_name) {
  if (path != "-") {
    std::error_code ec;
    const fs::path canon = fs::weakly_canonical(path, ec);
    const std::string key = ec ? path : canon.string();
    if (auto it = seen_.find(key); it != seen_.end()) {
      ++stats_.duplicates;
      // Named explicitly after being found in a directory: what is not a capture is an error.
      entries_[it->second].explicit_name |= explicit_name;
      return;
    }
    seen_.emplace(key, entries_.size());
  }
  Entry e;
  e.path = path;
  e.explicit_name = explicit_name;
  entries_.push_back(std::move(e));
}

void CaptureSet::Scan(size_t i) {
  Entry& e = entries_[i];
  const bool explicit_name = e.explicit_name;
  FileSourceOptions fo = options_.file;
  fo.read_chunk_bytes = kMinChunkBytes;
  fo.input_block_bytes = std::min(fo.input_block_bytes, kMinChunkBytes);
  auto src = FileSource::Open(e.path, fo);
  if (!src.ok()) {
    if (!explicit_name && absl::IsInvalidArgument(src.status())) {
      ++stats_.files_skipped;  // not a capture: a README, an index, ...
      return;
    }
    stats_.errors.emplace_back(src.status().message());
    return;
  }
  ++stats_.files_total;
  e.size = (*src)->file_size();
  stats_.bytes_total += e.size;
  RawPacket pkt;
  auto more = (*src)->Next(&pkt);
  if (!more.ok() || !*more) {
    if (!more.ok()) {
      stats_.errors.emplace_back(more.status().message());
    } else {
      ++stats_.files_empty;
    }
    ++stats_.files_done;
    closed_bytes_ += e.size != 0 ? e.size : (*src)->bytes_read();
    return;
  }
  e.first_ts = pkt.ts_ns;
  if (e.path == "-") {  // standard input cannot be read twice: keep it open
    e.held = std::move(*src);
    e.held_pkt = pkt;
  }
}

void CaptureSet::OpenEntry(size_t i) {
  Entry& e = entries_[i];
  auto c = std::make_unique<Cursor>();
  c->entry = i;
  if (e.held) {
    c->src = std::move(e.held);
    c->pkt = e.held_pkt;
  } else {
    if (options_.until_ns && e.first_ts >= *options_.until_ns) {
      // Its first packet is already after --until: not read at all.
      ++stats_.files_after_until;
      ++stats_.files_done;
      closed_bytes_ += e.size;
      return;
    }
    FileSourceOptions fo = options_.file;
    const size_t share = options_.buffer_budget_bytes / (open_.size() + 1);
    fo.read_chunk_bytes = std::clamp(share, kMinChunkBytes, options_.file.read_chunk_bytes);
    fo.input_block_bytes =
        std::clamp(share / 4, kMinChunkBytes / 4, options_.file.input_block_bytes);
    fo.decompress_in_thread = open_.size() < options_.decode_threads;
    auto src = FileSource::Open(e.path, fo);
    if (!src.ok()) {
      stats_.errors.emplace_back(src.status().message());
      ++stats_.files_done;
      closed_bytes_ += e.size;
      return;
    }
    c->src = std::move(*src);
    auto more = c->src->Next(&c->pkt);
    if (!more.ok() || !*more) {
      if (!more.ok()) stats_.errors.emplace_back(more.status().message());
      Close(c.get());
      return;
    }
  }
  Cursor* raw = c.get();
  open_.push_back(std::move(c));
  stats_.max_open = std::max(stats_.max_open, open_.size());
  Push(raw);
}

// std::push_heap/pop_heap build a max-heap: ordering by "a after b" puts the earliest packet
// (ties: the file earlier in the reading order) on top.
bool CaptureSet::Later(const Cursor* a, const Cursor* b) {
  return std::tie(a->pkt.ts_ns, a->entry) > std::tie(b->pkt.ts_ns, b->entry);
}

void CaptureSet::Push(Cursor* c) {
  heap_.push_back(c);
  std::push_heap(heap_.begin(), heap_.end(), &CaptureSet::Later);
}

void CaptureSet::Close(Cursor* c) {
  const FileSourceStats& fs = c->src->stats();
  stats_.caplen_over_len += fs.caplen_over_len;
  stats_.ts_backwards += fs.ts_backwards;
  const Entry& e = entries_[c->entry];
  closed_bytes_ += e.size != 0 ? e.size : c->src->bytes_read();
  ++stats_.files_done;
  c->src.reset();
  auto it = std::find_if(open_.begin(), open_.end(),
                         [c](const std::unique_ptr<Cursor>& p) { return p.get() == c; });
  if (it != open_.end()) open_.erase(it);
}

void CaptureSet::Advance(Cursor* c) {
  auto more = c->src->Next(&c->pkt);
  if (more.ok() && *more) {
    Push(c);
    return;
  }
  if (!more.ok()) stats_.errors.emplace_back(more.status().message());
  Close(c);
}

bool CaptureSet::Selected(const RawPacket& pkt, const Cursor& c) {
  if (options_.since_ns && pkt.ts_ns < *options_.since_ns) {
    ++stats_.before_since;
    return false;
  }
  if (options_.until_ns && pkt.ts_ns >= *options_.until_ns) {
    ++stats_.after_until;
    return false;
  }
  if (!filter_) return true;
  auto [it, inserted] = filter_->programs.try_emplace(pkt.linktype);
  if (inserted) {
    auto prog = Compile(filter_->expr, LinktypeToDlt(pkt.linktype));
    if (prog.ok()) {
      it->second = *prog;
    } else {
      stats_.errors.push_back(absl::StrCat("--filter '", filter_->expr,
                                           "' does not compile for link type ", pkt.linktype, " (",
                                           entries_[c.entry].path, "): ", prog.status().message(),
                                           "; its packets are counted as not matching"));
    }
  }
  if (!it->second) {
    ++stats_.filtered_out;
    return false;
  }
  pcap_pkthdr hdr{};
  hdr.ts.tv_sec = static_cast<time_t>(pkt.ts_ns / 1'000'000'000ULL);
  hdr.ts.tv_usec = static_cast<suseconds_t>((pkt.ts_ns % 1'000'000'000ULL) / 1000);
  hdr.caplen = pkt.caplen;
  hdr.len = pkt.wire_len;
  if (pcap_offline_filter(&*it->second, &hdr, pkt.data.data()) == 0) {
    ++stats_.filtered_out;
    return false;
  }
  return true;
}

absl::StatusOr<bool> CaptureSet::Next(RawPacket* pkt) {
  if (last_ != nullptr) {
    Cursor* c = last_;
    last_ = nullptr;
    Advance(c);
  }
  for (;;) {
    // Open every file whose first packet is due before (or with) the earliest pending one.
    while (next_entry_ < entries_.size() &&
           (heap_.empty() || entries_[next_entry_].first_ts <= heap_.front()->pkt.ts_ns)) {
      OpenEntry(next_entry_++);
    }
    if (heap_.empty()) return false;
    std::pop_heap(heap_.begin(), heap_.end(), &CaptureSet::Later);
    Cursor* c = heap_.back();
    heap_.pop_back();
    ++stats_.packets;
    if (!Selected(c->pkt, *c)) {
      Advance(c);
      continue;
    }
    *pkt = c->pkt;
    last_ = c;
    return true;
  }
}

uint64_t CaptureSet::bytes_done() const {
  uint64_t b = closed_bytes_;
  for (const auto& c : open_) b += c->src->bytes_read();
  return b;
}

std::vector<std::string> CaptureSet::paths() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.path);
  return out;
}

}  // namespace pgtlsmon::capture
