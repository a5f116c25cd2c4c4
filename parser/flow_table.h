// parser/flow_table.h: the connection table: canonical keys, their per-process seeded hash,
// and a bounded map that evicts (and counts) the oldest connection when full.
//
// Knows nothing of what it stores: FlowTracker keeps one entry per TCP connection in it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "parser/packet_decoder.h"

namespace pgtlsmon::parser {

// A connection's addresses in a canonical order, so both directions find one entry.
struct FlowKey {
  IpAddress lo_ip;
  IpAddress hi_ip;
  uint16_t lo_port = 0;
  uint16_t hi_port = 0;
};

namespace flow_key_internal {
// Word `i` (0 or 1) of an address's 16 bytes.
inline uint64_t Load64(const std::array<uint8_t, 16>& bytes, size_t i) {
  uint64_t v = 0;
  std::memcpy(&v, std::span(bytes).subspan(i * sizeof v, sizeof v).data(), sizeof v);
  return v;
}
// Byte-wise (big-endian) order of the addresses, compared as two 64-bit words each.
inline bool LessEndpoint(const IpAddress& a, uint16_t ap, const IpAddress& b, uint16_t bp) {
  if (a.is_v6 != b.is_v6) return !a.is_v6;
  const uint64_t a0 = __builtin_bswap64(Load64(a.bytes, 0));
  const uint64_t b0 = __builtin_bswap64(Load64(b.bytes, 0));
  if (a0 != b0) return a0 < b0;
  const uint64_t a1 = __builtin_bswap64(Load64(a.bytes, 1));
  const uint64_t b1 = __builtin_bswap64(Load64(b.bytes, 1));
  if (a1 != b1) return a1 < b1;
  return ap < bp;
}
}  // namespace flow_key_internal

// The key of a segment's connection; `*src_is_lo` (optional) says which end sent it. Inline:
// every packet computes it.
inline FlowKey MakeFlowKey(const TcpSegment& seg, bool* src_is_lo = nullptr) {
  FlowKey k;
  const bool lo = flow_key_internal::LessEndpoint(seg.src, seg.sport, seg.dst, seg.dport);
  if (lo) {
    k.lo_ip = seg.src, k.lo_port = seg.sport, k.hi_ip = seg.dst, k.hi_port = seg.dport;
  } else {
    k.lo_ip = seg.dst, k.lo_port = seg.dport, k.hi_ip = seg.src, k.hi_port = seg.sport;
  }
  if (src_is_lo != nullptr) *src_is_lo = lo;
  return k;
}

namespace flow_key_internal {
inline uint64_t Mum(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
// Secrets drawn once per process (std::random_device) before main: the one global state of
// parser/, a constant once set. Someone who crafts addresses (spoofed SYNs, say) cannot know
// them, so cannot pick keys that land on one hash value and make lookups linear.
struct HashSeed {
  std::array<uint64_t, 5> k;
};
HashSeed NewHashSeed();
inline const HashSeed kHashSeed = NewHashSeed();
}  // namespace flow_key_internal

// The connection table's hash: the addresses as four 64-bit words and the ports, each mixed
// with a per-process secret, folded by three 64x64->128 multiplies (wyhash's "mum"). The key is
// canonical, so the hash is symmetric: both directions of a connection get the same value
// (replay --threads shards by it). Equal keys hash alike within one process only.
inline uint64_t FlowKeyHash(const FlowKey& k) {
  using flow_key_internal::kHashSeed;
  using flow_key_internal::Load64;
  using flow_key_internal::Mum;
  const uint64_t ports = (uint64_t{k.lo_port} << 16) | k.hi_port | (uint64_t{k.lo_ip.is_v6} << 32) |
                         (uint64_t{k.hi_ip.is_v6} << 33);
  const uint64_t h1 =
      Mum(Load64(k.lo_ip.bytes, 0) ^ kHashSeed.k[0], Load64(k.hi_ip.bytes, 0) ^ kHashSeed.k[1]);
  const uint64_t h2 = Mum(Load64(k.lo_ip.bytes, 1) ^ kHashSeed.k[2] ^ ports,
                          Load64(k.hi_ip.bytes, 1) ^ kHashSeed.k[3]);
  return Mum(h1 ^ kHashSeed.k[4], h2 ^ ports);
}

inline bool operator==(const FlowKey& a, const FlowKey& b) {
  using flow_key_internal::Load64;
  const auto& al = a.lo_ip.bytes;
  const auto& ah = a.hi_ip.bytes;
  const auto& bl = b.lo_ip.bytes;
  const auto& bh = b.hi_ip.bytes;
  return ((Load64(al, 0) ^ Load64(bl, 0)) | (Load64(al, 1) ^ Load64(bl, 1)) |
          (Load64(ah, 0) ^ Load64(bh, 0)) | (Load64(ah, 1) ^ Load64(bh, 1))) == 0 &&
         a.lo_port == b.lo_port && a.hi_port == b.hi_port && a.lo_ip.is_v6 == b.lo_ip.is_v6 &&
         a.hi_ip.is_v6 == b.hi_ip.is_v6;
}

template <typename H>
H AbslHashValue(H h, const FlowKey& k) {
  return H::combine(std::move(h), FlowKeyHash(k));
}

struct FlowKeyHasher {
  size_t operator()(const FlowKey& k) const { return static_cast<size_t>(FlowKeyHash(k)); }
};

enum class EvictionReason : uint8_t { kTableFull, kIdleTimeout, kCount };
std::string_view EvictionReasonName(EvictionReason r);
using EvictionCounts = uint64_t[static_cast<size_t>(EvictionReason::kCount)];

// At most `max_entries` values by FlowKey. Inserting into a full table first evicts the oldest
// entry still there (on_evict sees it before it leaves); Evict() removes one for another reason.
// Both count into the EvictionCounts given at construction.
template <typename V>
class FlowTable {
 public:
  FlowTable(size_t max_entries, EvictionCounts* counts) : max_(max_entries), counts_(counts) {}

  V* Find(const FlowKey& key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }

  // `key` must not be in the table. on_evict(const FlowKey&, V&) is called for an evicted entry.
  template <typename OnEvict>
  V& Insert(const FlowKey& key, OnEvict&& on_evict) {
    if (map_.size() >= max_) {
      while (!creation_order_.empty()) {
        auto [old_key, gen] = creation_order_.front();
        creation_order_.pop_front();
        auto it = map_.find(old_key);
        if (it != map_.end() && it->second.generation == gen) {
          Evict(old_key, EvictionReason::kTableFull, on_evict);
          break;
        }
      }
    }
    Slot& s = map_[key];
    static_cast<V&>(s) = V();
    s.generation = next_generation_++;
    creation_order_.emplace_back(key, s.generation);
    if (creation_order_.size() > 2 * map_.size() + 1024) {
      // Drop stale positions (connections already gone) so the queue stays bounded.
      std::erase_if(creation_order_, [this](const auto& p) {
        auto it = map_.find(p.first);
        return it == map_.end() || it->second.generation != p.second;
      });
    }
    return s;
  }

  // Counted removal: on_evict(key, value), then the entry leaves. Nothing if `key` is absent.
  template <typename OnEvict>
  void Evict(const FlowKey& key, EvictionReason why, OnEvict&& on_evict) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    ++(*counts_)[static_cast<size_t>(why)];
    on_evict(key, static_cast<V&>(it->second));
    map_.erase(it);
  }

  // Uncounted removal (the connection is over, or replaced by a new one on its addresses).
  void Erase(const FlowKey& key) { map_.erase(key); }

  // fn(const FlowKey&, V&) for every entry, in no particular order; fn must not insert or erase.
  template <typename Fn>
  void ForEach(Fn&& fn) {
    for (auto& [key, slot] : map_) fn(key, static_cast<V&>(slot));
  }

  size_t size() const { return map_.size(); }
  void Clear() {
    map_.clear();
    creation_order_.clear();
  }

 private:
  // Derived, not a member: the generation can then live in V's tail padding (Itanium ABI).
  struct Slot : V {
    uint32_t generation = 0;  // tells a reused key from the entry a creation_order_ slot names
  };
  size_t max_;
  EvictionCounts* counts_;
  absl::flat_hash_map<FlowKey, Slot, FlowKeyHasher> map_;
  // Creation order, for evicting the oldest connection when the table is full.
  std::deque<std::pair<FlowKey, uint32_t>> creation_order_;
  uint32_t next_generation_ = 1;
};

}  // namespace pgtlsmon::parser
