#!/usr/bin/env bash
# Builds pgtlsmon and replays the bundled sample capture (real PostgreSQL 15 sessions: TLS 1.0,
# 1.1, 1.2, 1.3 with HelloRetryRequest, and one in clear): the README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target pgtlsmon
./build/pgtlsmon replay --ports any tests/data/pcaps/pg15-tls-versions.pcap
