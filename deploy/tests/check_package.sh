#!/usr/bin/env bash
# The Debian package, built and used the way a user does (CTest deploy_package, ~1-4 min):
#   1. `cpack -G DEB` in the build directory -> package/pgtlsmon_<version>_<arch>.deb;
#      control fields, Depends from dpkg-shlibdeps, conffiles, files; `lintian --pedantic`
#      must report no error and no warning (deploy/debian/lintian-overrides explains the rest);
#   2. a clean Debian 12 tree (mmdebstrap --variant=apt, deploy/tests/rootfs.sh, cached in
#      BUILD/deploy-cache) gets `apt-get install ./pgtlsmon_*.deb` in a chroot, which pulls the
#      Depends from the archive; there `pgtlsmon --version` and a replay of
#      tests/data/pcaps/pg15-tls-versions.pcap run, and the records are checked against the
#      capture's truths (tests/e2e/check_replay.py --actual); the pgtlsmon user exists;
#   3. a reinstall keeps an edited conffile; `apt-get remove` keeps the conffiles and the user; `apt-get purge --autoremove` (after
#      faking what the service would have written in /var/log and /var/lib) leaves the tree
#      as it was before the install: same files, same /etc contents, no pgtlsmon user or group.
#   check_package.sh BUILD_DIR       exit 0 ok, 1 failure, 77 tools missing or not root
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: check_package.sh BUILD_DIR}" && pwd)
. "$here/rootfs.sh"
py=${PYTHON:-/usr/bin/python3}

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (chroot, mmdebstrap)"; exit 77; }
for t in cpack dpkg-deb lintian mmdebstrap unshare chroot; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
if grep -q '^PGTLS_SANITIZE:STRING=.\+' "$build/CMakeCache.txt"; then
  echo "SKIP: sanitizer build (the package is made from the release build)"; exit 77
fi

fail=0
check() { # check "message" command...
  local msg=$1; shift
  if "$@"; then echo "ok   $msg"; else echo "FAIL $msg"; fail=1; fi
}

tmp=$(mktemp -d /tmp/p16pkg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- 1. build and inspect the package ---
t0=$SECONDS
rm -f "$build"/package/pgtlsmon_*.deb
(cd "$build" && cpack -G DEB) >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; echo "FAIL: cpack"; exit 1; }
deb=$(ls "$build"/package/pgtlsmon_*.deb)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
echo "package: $deb, $(stat -c %s "$deb") bytes, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB ($((SECONDS - t0)) s)"
check "file name pgtlsmon_${version}_$(dpkg --print-architecture).deb" \
  test "$(basename "$deb")" = "pgtlsmon_${version}_$(dpkg --print-architecture).deb"
check "Version $version" test "$(dpkg-deb -f "$deb" Version)" = "$version"
check "changelog names version $version" \
  grep -q "^pgtlsmon ($version) " "$src/deploy/debian/changelog"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
# Every library pgtlsmon links must be covered: one Depends entry per NEEDED soname's package.
dpkg-deb -x "$deb" "$tmp/x"
missing=""
for so in $(objdump -p "$tmp/x/usr/bin/pgtlsmon" | awk '/NEEDED/ {print $2}'); do
  pkg=$(dpkg -S "*/$so" 2>/dev/null | grep -v -- '-dev' | head -1 | cut -d: -f1)
  case ", $depends" in *", $pkg "*|*", $pkg,"*) ;; *) missing="$missing $so($pkg)";; esac
done
check "Depends covers every NEEDED library${missing:+ (missing:$missing)}" test -z "$missing"
check "Depends has adduser (postinst)" grep -qw adduser <<<"$depends"
check "conffiles" diff <(dpkg-deb --ctrl-tarfile "$deb" | tar xO ./conffiles) \
  "$src/deploy/debian/conffiles"
for f in usr/bin/pgtlsmon usr/lib/systemd/system/pgtlsmon.service etc/default/pgtlsmon \
    etc/logrotate.d/pgtlsmon usr/share/man/man1/pgtlsmon.1.gz usr/share/doc/pgtlsmon/copyright \
    usr/share/doc/pgtlsmon/changelog.gz usr/share/doc/pgtlsmon/DEPLOY.md \
    usr/share/pgtlsmon/prometheus/pgtlsmon-alerts.yml \
    usr/share/pgtlsmon/prometheus/pgtlsmon-recording.yml usr/share/pgtlsmon/grafana/pgtlsmon.json; do
  check "ships /$f" test -s "$tmp/x/$f"
done
check "unit runs /usr/bin/pgtlsmon" \
  grep -q '^ExecStart=/usr/bin/pgtlsmon watch \$PGTLSMON_ARGS \$PGTLSMON_WEB_CONFIG$' "$tmp/x/usr/lib/systemd/system/pgtlsmon.service"
check "man page documents watch and replay flags" \
  sh -c "zcat '$tmp/x/usr/share/man/man1/pgtlsmon.1.gz' | grep -q -- 'session\\\\-log' && zcat '$tmp/x/usr/share/man/man1/pgtlsmon.1.gz' | grep -q -- 'metrics\\\\-file'"
check "binary stripped" sh -c "! objdump -h '$tmp/x/usr/bin/pgtlsmon' | grep -q debug_info"
t1=$SECONDS
lintian --pedantic --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1
lrc=$?
check "lintian --pedantic: no error or warning ($((SECONDS - t1)) s)" test "$lrc" = 0
sed 's/^/  lintian: /' "$tmp/lintian.log"

# --- 2. install into a clean Debian 12 tree ---
tar=$(clean_tree "$build/deploy-cache") || { echo "FAIL: mmdebstrap"; exit 1; }
root=$tmp/root
mkdir "$root" && tar -C "$root" -xf "$tar" || { echo "FAIL: unpacking $tar"; exit 1; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
snapshot() { # every path with type, mode, owner; checksums of /etc; minus dpkg/apt bookkeeping
  # and /run (a tmpfs on a booted system; adduser leaves its lock file there)
  (cd "$1" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./sys -o -path ./tmp -o -path ./run \
      -o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache -o -path ./var/log/apt \
      -o -path ./var/log/dpkg.log -o -path ./var/log/alternatives.log -o -path ./etc/ld.so.cache \
      -o -path './etc/*-' \) -prune -o -printf '%p %y %m %u:%g\n' | sort
   find etc -xdev -type f ! -name '*-' ! -name ld.so.cache -print0 | sort -z | xargs -0 sha256sum)
}
snapshot "$root" >"$tmp/before"
cp "$deb" "$root/tmp/" && cp "$src/tests/data/pcaps/pg15-tls-versions.pcap" "$root/tmp/"
t2=$SECONDS
in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "/tmp/$(basename "$deb")" >"$tmp/apt.log" 2>&1
arc=$?
check "apt-get install ./$(basename "$deb") in a clean bookworm chroot ($((SECONDS - t2)) s)" test "$arc" = 0
[ "$arc" = 0 ] || { tail -30 "$tmp/apt.log"; exit 1; }
grep -E '^(Need to get|After this operation)' "$tmp/apt.log" | sed 's/^/  apt: /'
out=$(in_root "$root" pgtlsmon --version 2>&1)
check "pgtlsmon --version in the chroot: '$out'" test "$out" = "pgtlsmon $version"
check "pgtlsmon user and group" in_root "$root" sh -c \
  'getent passwd pgtlsmon | grep -q ":/usr/sbin/nologin$" && getent group pgtlsmon >/dev/null'
check "status: installed, conffiles registered" in_root "$root" sh -c \
  'dpkg-query -W -f="\${Status}\n\${Conffiles}\n" pgtlsmon | grep -q "^install ok installed" &&
   dpkg-query -W -f="\${Conffiles}\n" pgtlsmon | grep -q /etc/default/pgtlsmon'
ports=$("$py" -c 'import json,sys; print(",".join(sorted({str(json.loads(l)["server"]["port"]) for l in open(sys.argv[1]) if l.strip()})))' \
  "$src/tests/data/pcaps/pg15-tls-versions.pgstat.jsonl")
in_root "$root" pgtlsmon replay --format jsonl --ports "$ports" -o /tmp/records.jsonl \
  /tmp/pg15-tls-versions.pcap >"$tmp/replay.log" 2>&1
check "replay in the chroot" test $? = 0
check "replay records match the capture's truths ($(wc -l <"$root/tmp/records.jsonl" 2>/dev/null) sessions)" \
  "$py" "$src/tests/e2e/check_replay.py" --actual "$root/tmp/records.jsonl" \
  "$src/tests/data/pcaps/pg15-tls-versions.pcap"

# --- 3. reinstall over an edited conffile, remove, then purge ---
echo "PGTLSMON_ARGS=\"--interface lo\"  # edited" >>"$root/etc/default/pgtlsmon"
in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
  "/tmp/$(basename "$deb")" >"$tmp/apt.log" 2>&1
check "apt-get install --reinstall (postinst with the user already there)" test $? = 0
check "reinstall: the edited /etc/default/pgtlsmon is kept" grep -q edited "$root/etc/default/pgtlsmon"
check "reinstall: one pgtlsmon user" test "$(grep -c '^pgtlsmon:' "$root/etc/passwd")" = 1
in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q pgtlsmon >"$tmp/apt.log" 2>&1
check "apt-get remove" test $? = 0
check "remove: binary gone" test ! -e "$root/usr/bin/pgtlsmon"
check "remove: edited conffile and user kept" sh -c \
  "grep -q edited '$root/etc/default/pgtlsmon' && grep -q '^pgtlsmon:' '$root/etc/passwd'"
# What pgtlsmon.service writes (LogsDirectory=, StateDirectory= with DynamicUser=).
mkdir -p "$root/var/log/private/pgtlsmon" "$root/var/lib/private/pgtlsmon"
ln -s private/pgtlsmon "$root/var/log/pgtlsmon" && ln -s private/pgtlsmon "$root/var/lib/pgtlsmon"
echo '{}' >"$root/var/log/private/pgtlsmon/sessions.jsonl"
in_root "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove pgtlsmon \
  >"$tmp/apt.log" 2>&1
check "apt-get purge --autoremove" test $? = 0
check "purge: not known to dpkg" in_root "$root" sh -c '! dpkg-query -W pgtlsmon 2>/dev/null'
check "purge: no pgtlsmon user or group" sh -c \
  "! grep -q '^pgtlsmon:' '$root/etc/passwd' '$root/etc/group' '$root/etc/shadow' '$root/etc/gshadow'"
rmdir "$root/var/log/private" "$root/var/lib/private" 2>/dev/null # created above, not by us
snapshot "$root" >"$tmp/after"
if diff "$tmp/before" "$tmp/after" >"$tmp/diff"; then
  echo "ok   purge: the tree is as before the install ($(wc -l <"$tmp/before") entries compared)"
else
  echo "FAIL purge left changes behind:"; sed 's/^/  /' "$tmp/diff" | head -40; fail=1
fi
echo "total $SECONDS s"
[ "$fail" = 0 ] && echo OK
exit "$fail"
