# Sourced by check_package.sh and check_image.sh (bash): a clean Debian 12 tree from the
# package archive this machine reaches, cached per build directory, and a chroot runner.
#
#   debian_mirror            the bookworm mirror: $PGTLS_DEBIAN_MIRROR, else the first
#                            deb.debian.org-style URI in /etc/apt/sources.list{,.d/*}
#   clean_tree CACHE_DIR     prints the path of a tarball of `mmdebstrap --variant=apt bookworm`
#                            (package lists kept, so `apt-get install` works without update);
#                            made once per CACHE_DIR (~3 min), reused while younger than a week
#   in_root ROOT CMD...      runs CMD chrooted into ROOT with /proc and /dev mounted in a
#                            private mount namespace (nothing to unmount afterwards)

debian_mirror() {
  if [ -n "${PGTLS_DEBIAN_MIRROR:-}" ]; then echo "$PGTLS_DEBIAN_MIRROR"; return; fi
  local u
  u=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | awk '
      /^deb / && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }
      /^URIs:/ { uri = $2 } /^Suites:/ && $0 ~ /bookworm( |$)/ && uri != "" && uri !~ /security/ { print uri; exit }')
  echo "${u:-http://deb.debian.org/debian}"
}

clean_tree() {
  local cache=$1 tar=$1/bookworm-apt.tar
  mkdir -p "$cache"
  if [ -f "$tar" ] && [ -n "$(find "$tar" -mtime -7)" ]; then echo "$tar"; return 0; fi
  local mirror
  mirror=$(debian_mirror)
  echo "rootfs: mmdebstrap --variant=apt bookworm from $mirror (cached in $cache)" >&2
  # The lock keeps two concurrent tests of one build directory from making it twice.
  (
    flock 9
    if [ -f "$tar" ] && [ -n "$(find "$tar" -mtime -7)" ]; then exit 0; fi
    mmdebstrap --quiet --variant=apt --format=tar --skip=cleanup/apt/lists bookworm "$tar.tmp" \
      "deb $mirror bookworm main" >&2 && mv "$tar.tmp" "$tar"
  ) 9>"$cache/.lock" || return 1
  echo "$tar"
}

in_root() {
  local root=$1; shift
  unshare --mount --propagation private -- sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" || exit 1
    exec chroot "$root" "$@"' sh "$root" "$@"
}
