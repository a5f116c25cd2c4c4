#!/usr/bin/env bash
# Installs every Debian package pgtlsmon needs to build, test and benchmark.
# Idempotent: does nothing when everything is already there. Needs root.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ clang llvm pkg-config ccache
  # the design card's core libraries
  libpcap-dev libbpf-dev bpftool libssl-dev prometheus-cpp-dev libabsl-dev
  libgtest-dev libgmock-dev
  # earned their place (README.md, "Dependencies")
  libcli11-dev libfmt-dev zlib1g-dev libzstd-dev liblzma-dev zstd xz-utils libcap-ng-dev nlohmann-json3-dev libbenchmark-dev libclang-rt-14-dev
  libmicrohttpd-dev libgnutls28-dev libyaml-cpp-dev libcrypt-dev
  # real peers for the tests and the benchmark
  tshark tcpdump postgresql-15 postgresql-client-15 prometheus iproute2 ethtool
  libndpi-bin python3 python3-yaml hyperfine systemd curl openssl prometheus-node-exporter
  # bench/run.py --profile (perf record of replay --threads 1 and 2)
  linux-perf
  # wraps corpus captures in tunnels for the decapsulation tests (tests/integration)
  python3-scapy
  # the monitor host's drop rule for mirrored UDP, tested live (tests/e2e/tunnel_live.py)
  nftables
  # the Debian package and the container image (deploy/tests: deploy_package, deploy_image)
  dpkg-dev lintian help2man mmdebstrap podman buildah runc libcap2-bin python3-jsonschema
  # --what-if's reality test (tests/e2e/what_if_reality.py): more real client stacks
  gnutls-bin default-jdk-headless libpostgresql-jdbc-java golang-go golang-github-lib-pq-dev
  python3-asyncpg
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a PostgreSQL cluster, a Prometheus server and node_exporter (:9100) on install;
# the tests run their own on other ports, so the package defaults are left alone.
