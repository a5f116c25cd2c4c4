#!/usr/bin/env bash
# --what-if predicts the server's OpenSSL, not the monitor's: an OPENSSL_CONF with a
# system_default section (security level 0, TLS 1.3 only, other groups) must not change one
# prediction on the bundled sample.
#   openssl_conf_test.sh PGTLSMON CAPTURE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 cap=$2
run() {
  "$bin" replay --ports any --format jsonl "$cap" \
    --what-if "legacy=ssl_min_protocol_version = 'TLSv1'" \
    --what-if "t12=ssl_min_protocol_version = 'TLSv1.1'; ssl_ciphers = 'ECDHE+AESGCM'"
}
plain=$(OPENSSL_CONF=/dev/null run)
hostile=$(OPENSSL_CONF="$here/hostile-openssl.cnf" run)
if ! grep -q '"reason": "no_signature_algorithm"' <<<"$plain"; then
  echo "FAIL: expected TLS 1.0/1.1 clients to fail at security level 2"; exit 1
fi
if [ "$plain" != "$hostile" ]; then
  echo "FAIL: OPENSSL_CONF changed the predictions"
  diff <(echo "$plain") <(echo "$hostile") | head -20
  exit 1
fi
echo "ok: $(grep -c . <<<"$plain") records, same predictions with and without the hostile OPENSSL_CONF"
