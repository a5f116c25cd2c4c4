// app/replay.h: `pgtlsmon replay`, forensic replay of capture files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parser/flow_tracker.h"
#include "whatif/engine.h"

namespace pgtlsmon::app {

struct ReplayOptions {
  std::vector<std::string> captures;
  std::string format = "table";  // table | jsonl
  std::string output;            // empty: standard output
  std::string metrics_file;
  parser::FlowTrackerConfig tracker;
  int threads = 0;  // 0: the cores available (sched_getaffinity); 1: no worker threads
  bool progress = true;  // only shown when stderr is a terminal
  size_t max_clients = 1000;
  std::shared_ptr<whatif::Engine> what_if;  // --what-if; null without
};

// Runs the replay; returns the process exit code (0 ok, 1 input or runtime error).
int RunReplay(const ReplayOptions& opts);

}  // namespace pgtlsmon::app
