#!/usr/bin/env bash
# Assembles the root filesystem of a shell-less image around one dynamic
# glibc binary, from the machine it runs on (a build host or a builder stage):
#
#   deploy/rootfs.sh NAME BINARY OUT
#
# OUT gets /usr/local/bin/NAME (debug info stripped), every shared object the
# binary links at the path the dynamic loader looks it up by, the NSS modules
# glibc dlopen()s for getaddrinfo() (files, dns) with an /etc/nsswitch.conf —
# without them no service name (postgres, the socket proxy) ever resolves —
# /etc/passwd and /etc/group (root, and galaxy = 65532), a sticky /tmp, and
# Debian's CA bundle for SMTP TLS. Nothing else: no shell, no package manager.
set -euo pipefail
NAME="${1:?usage: rootfs.sh NAME BINARY OUT}"
BIN="${2:?usage: rootfs.sh NAME BINARY OUT}"
OUT="${3:?usage: rootfs.sh NAME BINARY OUT}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
NONROOT=65532

fail() { printf 'rootfs.sh: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || fail "$BIN is not an executable"
[ -s "$CA_BUNDLE" ] || fail "$CA_BUNDLE missing: install Debian's ca-certificates"
for tool in ldd strip ldconfig; do
  command -v "$tool" >/dev/null || fail "$tool is required"
done

# copy_with_libs FILE: every shared object ldd lists for FILE, into OUT.
copy_with_libs() {
  local lib
  for lib in $(ldd "$1" | awk '/=> \//{print $3} /^[[:space:]]+\//{print $1}'); do
    mkdir -p "$OUT$(dirname "$lib")"
    cp -L "$lib" "$OUT$lib"
  done
}

mkdir -p "$OUT/usr/local/bin" "$OUT/etc/ssl/certs" "$OUT/tmp"
chmod 1777 "$OUT/tmp"
strip --strip-debug -o "$OUT/usr/local/bin/$NAME" "$BIN"
copy_with_libs "$BIN"
for module in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
  # awk reads all of ldconfig's output: an early `exit` would end ldconfig
  # with SIGPIPE, which pipefail turns into a silent failure of this script.
  path="$(ldconfig -p | awk -v m="$module" '$1 == m && /x86-64/ && !found {print $NF; found = 1}')"
  [ -n "$path" ] || fail "$module is not installed"
  mkdir -p "$OUT$(dirname "$path")"
  cp -L "$path" "$OUT$path"
  copy_with_libs "$path"
done
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$OUT/etc/nsswitch.conf"
printf 'root:x:0:0:root:/nonexistent:/nonexistent\ngalaxy:x:%s:%s:galaxy:/nonexistent:/nonexistent\n' \
  "$NONROOT" "$NONROOT" >"$OUT/etc/passwd"
printf 'root:x:0:\ngalaxy:x:%s:\n' "$NONROOT" >"$OUT/etc/group"
cp -L "$CA_BUNDLE" "$OUT/etc/ssl/certs/ca-certificates.crt"
