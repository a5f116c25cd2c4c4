// app/what_if.h: the --what-if flags of replay and watch, and the engine they build.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "parser/flow_tracker.h"
#include "whatif/engine.h"

namespace CLI {
class App;
}

namespace pgtlsmon::app {

struct WhatIfFlags {
  std::vector<std::string> policies;  // --what-if, repeated
  int security_level = -1;            // --what-if-security-level

  void Add(CLI::App* cmd);
  // nullptr without --what-if. Bad settings are InvalidArgument (exit 2), an unreadable @FILE
  // NotFound (exit 1). Prints one notice naming the postgresql.conf parameters ignored.
  absl::StatusOr<std::shared_ptr<whatif::Engine>> Build(const char* command) const;
  // Build() into *engine, and with a policy keeps each connection's ClientHello in *tracker.
  // 0, or the exit code after printing the error (2 bad usage, 1 an unreadable @FILE).
  int Apply(const char* command, std::shared_ptr<whatif::Engine>* engine,
            parser::FlowTrackerConfig* tracker) const;
};

// (name, settings) of each policy, for the table.
std::vector<std::pair<std::string, std::string>> PolicySummaries(const whatif::Engine& e);

}  // namespace pgtlsmon::app
