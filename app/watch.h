// app/watch.h: `pgtlsmon watch`, live monitoring with a Prometheus endpoint.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "parser/flow_tracker.h"
#include "whatif/engine.h"

namespace CLI {
class App;
}

namespace pgtlsmon::app {

struct WatchOptions {
  std::string interface;
  std::string capture = "auto";  // auto | ebpf | pcap
  // The eBPF attach point: socket (filter on an AF_PACKET ring, the default; bpf/README.md
  // says why) | tc (clsact classifier + BPF ring buffer, one interface, not "any").
  std::string ebpf_attach = "socket";
  std::string listen = "127.0.0.1:9433";
  // exporter-toolkit web configuration (TLS, basic auth, headers); empty: plain HTTP. SIGHUP
  // reloads it.
  std::string web_config_file;
  std::string session_log;
  int buffer_mib = 32;  // libpcap kernel buffer / eBPF ring size
  size_t max_clients = 1000;
  double stats_interval_s = 1.0;
  parser::FlowTrackerConfig tracker;
  std::shared_ptr<whatif::Engine> what_if;  // --what-if; null without
};

void AddWatchFlags(CLI::App* cmd, WatchOptions* opts);

// Runs until SIGTERM/SIGINT; returns the process exit code.
int RunWatch(WatchOptions opts);

}  // namespace pgtlsmon::app
