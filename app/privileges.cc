// app/privileges.cc: see privileges.h. The capability sets go through libcap-ng; only
// PR_SET_NO_NEW_PRIVS, which is no capability operation, is a direct prctl.
#include "app/privileges.h"

#include <cap-ng.h>
#include <linux/capability.h>
#include <sys/prctl.h>

#include <cerrno>

#include "fmt/core.h"

namespace pgtlsmon::app {
namespace {

absl::Status Err(const char* what, int rc) {
  return absl::ErrnoToStatus(errno,
                             fmt::format("dropping capabilities: {} (libcap-ng {})", what, rc));
}

}  // namespace

absl::Status DropCapabilities(const std::vector<int>& keep) {
  for (int c : keep) {
    if (c < 0 || c >= 64) {
      return absl::InvalidArgumentError(fmt::format("dropping capabilities: bad capability {}", c));
    }
  }
  if (int rc = capng_get_caps_process(); rc != 0) return Err("reading the process's sets", rc);
  // What each kept capability is now: only permitted ones stay, and inheritable only if it was.
  std::vector<int> keep_permitted;
  std::vector<int> keep_inheritable;
  for (int c : keep) {
    if (capng_have_capability(CAPNG_PERMITTED, static_cast<unsigned>(c)) == 0) continue;
    keep_permitted.push_back(c);
    if (capng_have_capability(CAPNG_INHERITABLE, static_cast<unsigned>(c)) != 0) {
      keep_inheritable.push_back(c);
    }
  }

  // The bounding set first: dropping from it needs CAP_SETPCAP in the effective set, which the
  // next step may take away. Without CAP_SETPCAP the bounding set stays as it is (harmless
  // once the permitted set is empty).
  if (capng_have_capability(CAPNG_PERMITTED, CAP_SETPCAP) != 0) {
    if (int rc = capng_update(CAPNG_ADD, CAPNG_EFFECTIVE, CAP_SETPCAP); rc != 0) {
      return Err("raising CAP_SETPCAP", rc);
    }
    if (int rc = capng_apply(CAPNG_SELECT_CAPS); rc != 0) return Err("raising CAP_SETPCAP", rc);
    capng_clear(CAPNG_SELECT_BOUNDS);
    for (int c : keep) capng_update(CAPNG_ADD, CAPNG_BOUNDING_SET, static_cast<unsigned>(c));
    if (int rc = capng_apply(CAPNG_SELECT_BOUNDS); rc != 0) return Err("the bounding set", rc);
  }

  // Effective, permitted, inheritable and ambient (ambient capabilities would survive an
  // execve): only what is kept.
  capng_clear(CAPNG_SELECT_CAPS);
  capng_clear(CAPNG_SELECT_AMBIENT);
  for (int c : keep_permitted) {
    capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED),
                 static_cast<unsigned>(c));
  }
  for (int c : keep_inheritable) {
    capng_update(CAPNG_ADD, CAPNG_INHERITABLE, static_cast<unsigned>(c));
  }
  if (int rc = capng_apply(CAPNG_SELECT_CAPS); rc != 0) return Err("capset", rc);
  if (int rc = capng_apply(CAPNG_SELECT_AMBIENT); rc != 0) return Err("the ambient set", rc);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::ErrnoToStatus(errno, "dropping capabilities: PR_SET_NO_NEW_PRIVS");
  }
  return absl::OkStatus();
}

}  // namespace pgtlsmon::app
