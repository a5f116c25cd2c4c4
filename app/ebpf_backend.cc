#include "app/live_backend.h"

namespace pgtlsmon::app {

// TEMPORARY until capture/bpf_source lands (issue 4).
absl::StatusOr<std::unique_ptr<LiveBackend>> OpenEbpf(const WatchOptions&) {
  return absl::UnavailableError("eBPF back end not built");
}

}  // namespace pgtlsmon::app
