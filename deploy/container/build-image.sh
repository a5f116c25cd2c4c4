#!/usr/bin/env bash
# Builds the pgtlsmon container image from the Debian package, without a registry:
#   deploy/container/build-image.sh [--tag REF] [--print-ref] PGTLSMON_DEB
#
#   1. mmdebstrap --variant=extract unpacks only the package's shared-library Depends and their
#      own dependencies (libc6, libssl3, libpcap0.8, ...) from the Debian 12 archive: no shell,
#      no dpkg, no apt in the image;
#   2. the .deb's files go on top (the binary; docs, man pages and systemd/logrotate files are
#      dropped, copyright files kept); /etc/passwd and /etc/group name root and pgtlsmon
#      (uid/gid 9433); /usr/bin/pgtlsmon gets the file capabilities bpf/README.md names
#      (cap_net_raw,cap_bpf,cap_perfmon+ep), effective only when the runtime grants them;
#   3. buildah commits it as an OCI image, user 9433:9433, entrypoint pgtlsmon, OCI
#      annotations and labels (org.opencontainers.image.*).
# Default REF: ghcr.io/pgtlsmon/pgtlsmon:<version> (deploy/kubernetes/daemonset.yaml uses it).
# Publish with `podman push REF` or `podman save REF | ...` on a machine that has a registry.
# Needs root, mmdebstrap, buildah, dpkg-deb, setcap (libcap2-bin); the mirror is the one
# deploy/tests/rootfs.sh finds (or $PGTLS_DEBIAN_MIRROR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/rootfs.sh"

repo=ghcr.io/pgtlsmon/pgtlsmon
tag="" print=0
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2;;
    --print-ref) print=1; shift;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    -*) echo "build-image.sh: unknown option $1" >&2; exit 2;;
    *) break;;
  esac
done
[ $# = 1 ] || { echo "usage: build-image.sh [--tag REF] [--print-ref] PGTLSMON_DEB" >&2; exit 2; }
deb=$1
[ -f "$deb" ] || { echo "build-image.sh: $deb: no such file" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
ref=${tag:-$repo:$version}
if [ "$print" = 1 ]; then echo "$ref"; exit 0; fi

# The library packages: Depends minus adduser (only the package's postinst needs it).
libs=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' \
       | grep -v -x -e adduser -e '' | paste -sd, -)
echo "build-image: $ref from $(basename "$deb") on bookworm: $libs" >&2

ctr=$(buildah from --quiet scratch)
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root=$(buildah mount "$ctr")
mmdebstrap --quiet --variant=extract --include="$libs" bookworm "$root" \
  "deb $(debian_mirror) bookworm main" >&2
dpkg-deb -x "$deb" "$root"
# Only what runs: the binary and libraries, plus every package's copyright file.
rm -rf "$root"/usr/share/man "$root"/usr/share/lintian "$root"/usr/share/pgtlsmon \
       "$root"/usr/lib/systemd "$root"/etc/logrotate.d "$root"/etc/default "$root"/usr/share/info \
       "$root"/usr/share/locale "$root"/usr/share/bug "$root"/usr/share/lintian
find "$root"/usr/share/doc -type f ! -name copyright -delete
find "$root"/usr/share/doc -depth -type d -empty -delete
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
cat >"$root/etc/passwd" <<'PW'
root:x:0:0:root:/root:/usr/sbin/nologin
pgtlsmon:x:9433:9433:pgtlsmon:/nonexistent:/usr/sbin/nologin
PW
cat >"$root/etc/group" <<'GR'
root:x:0:
pgtlsmon:x:9433:
GR
ldconfig -r "$root"
setcap cap_net_raw,cap_bpf,cap_perfmon+ep "$root/usr/bin/pgtlsmon"
buildah unmount "$ctr" >/dev/null

created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
meta=(
  "org.opencontainers.image.title=pgtlsmon"
  "org.opencontainers.image.description=Passive TLS monitor for PostgreSQL (Prometheus /metrics, session records)"
  "org.opencontainers.image.version=$version"
  "org.opencontainers.image.created=$created"
  "org.opencontainers.image.source=https://github.com/pgtlsmon/pgtlsmon"
  "org.opencontainers.image.url=https://github.com/pgtlsmon/pgtlsmon/blob/main/deploy/README.md"
  "org.opencontainers.image.vendor=pgtlsmon"
  "org.opencontainers.image.base.name=debian:bookworm (mmdebstrap --variant=extract)"
)
args=()
for m in "${meta[@]}"; do args+=(--annotation "$m" --label "$m"); done
buildah config "${args[@]}" --user 9433:9433 --port 9433/tcp --workingdir / \
  --env PATH=/usr/bin --entrypoint '["/usr/bin/pgtlsmon"]' \
  --cmd '["watch", "--interface", "eth0", "--listen", "127.0.0.1:9433"]' \
  --os linux --arch "$(dpkg --print-architecture)" "$ctr"
buildah commit --quiet --format oci --rm "$ctr" "$ref" >/dev/null
trap - EXIT
echo "$ref"
