// app/replay.h: `pgtlsmon replay`, forensic replay of capture files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "parser/flow_tracker.h"
#include "whatif/engine.h"

namespace pgtlsmon::app {

struct ReplayOptions {
  std::vector<std::string> captures;  // files, directories, globs, "-" (capture::CaptureSet)
  std::string format = "table";       // table | jsonl
  std::string output;                 // empty: standard output
  std::string metrics_file;
  parser::FlowTrackerConfig tracker;
  int threads = 0;              // 0: the cores available (sched_getaffinity); 1: no worker threads
  bool progress = true;         // only shown when stderr is a terminal...
  bool force_progress = false;  // ...unless --progress
  std::optional<uint64_t> since_ns;  // --since: packets before it are not read
  std::optional<uint64_t> until_ns;  // --until: packets at or after it are not read
  std::string filter;                // --filter: libpcap expression (validated by the caller)
  size_t max_clients = 1000;
  std::shared_ptr<whatif::Engine> what_if;  // --what-if; null without
};

// Runs the replay; returns the process exit code (0 ok, 1 input or runtime error).
int RunReplay(const ReplayOptions& opts);

}  // namespace pgtlsmon::app
