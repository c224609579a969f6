#!/bin/sh
# Builds the tiny Linux guest the passt guest test boots: Debian's kernel
# (linux-image-amd64) and an initramfs of a static busybox, the virtio-net
# modules and init.sh. Cached in OUT (default build/guest): a second run with the
# same inputs does nothing. Prints "ok OUT" on success; otherwise "unavailable:
# REASON" on stdout and exits 2, for the test to report as the reason it is ignored.
#
# Usage: tests/passt/guest/build.sh [OUT]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$root/build/guest}
unavailable() { echo "unavailable: $*"; exit 2; }

command -v dpkg-deb >/dev/null || unavailable "dpkg-deb is not installed"

# The cache key: the inputs' contents (init script, this script) and the kernel version.
key=$(cat "$here/init.sh" "$here/build.sh" "$here/dhcp6c.c" | sha256sum | cut -c1-16)
if [ -f "$out/key" ] && [ "$(cat "$out/key")" = "$key" ] && [ -f "$out/vmlinuz" ] &&
  [ -f "$out/initramfs.gz" ]; then
  echo "ok $out"
  exit 0
fi
mkdir -p "$out/debs"
cd "$out/debs"

# The versioned kernel package that linux-image-amd64 depends on, and a static busybox.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1; }
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || unavailable "apt-cache knows no linux-image-amd64 (no Debian package lists)"
ls ./"$pkg"_*.deb >/dev/null 2>&1 || apt-get download -qq "$pkg" >/dev/null 2>&1 ||
  unavailable "apt-get download $pkg failed"
ls ./busybox-static_*.deb >/dev/null 2>&1 || apt-get download -qq busybox-static >/dev/null 2>&1 ||
  unavailable "apt-get download busybox-static failed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x ./"$pkg"_*.deb "$work/kernel"
dpkg-deb -x ./busybox-static_*.deb "$work/busybox"
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* | head -n 1)
config=$(ls "$work"/kernel/boot/config-* | head -n 1)
moddir=$(ls -d "$work"/kernel/lib/modules/* | head -n 1)

# virtio-net built in needs no module; as modules, virtio_pci and virtio_net with
# their dependencies (read from each module's "depends=" field), in load order.
grep -q '^CONFIG_VIRTIO_NET=[ym]$' "$config" || unavailable "$pkg has no virtio_net"
rd="$work/initramfs"
mkdir -p "$rd/bin" "$rd/lib/modules" "$rd/etc" "$rd/proc" "$rd/sys" "$rd/dev" "$rd/tmp"
order=""
add_module() {
  case " $order " in *" $1 "*) return 0 ;; esac
  f=$(find "$moddir" -name "$1.ko*" | head -n 1)
  [ -n "$f" ] || return 0 # built in (=y): nothing to load
  case "$f" in
  *.xz) xz -dc "$f" >"$rd/lib/modules/$1.ko" ;;
  *.zst) zstd -qdc "$f" >"$rd/lib/modules/$1.ko" ;;
  *) cp "$f" "$rd/lib/modules/$1.ko" ;;
  esac
  for d in $(grep -ao 'depends=[A-Za-z0-9_,-]*' "$rd/lib/modules/$1.ko" | head -n 1 |
    sed 's/^depends=//; s/,/ /g'); do
    add_module "$d"
  done
  order="$order $1"
}
add_module virtio_pci
add_module virtio_net
echo $order >"$rd/lib/modules/order"
cp "$work/busybox/bin/busybox" "$rd/bin/busybox"
ln -s busybox "$rd/bin/sh"
cp "$here/init.sh" "$rd/init"
# busybox has no DHCPv6 client: a tiny static one (dhcp6c.c).
command -v gcc >/dev/null 2>&1 || unavailable "gcc is not installed (needed for the guest's dhcp6c)"
gcc -static -O2 -o "$rd/bin/dhcp6c" "$here/dhcp6c.c" 2>"$work/gcc.log" ||
  unavailable "building the guest's dhcp6c failed: $(head -c 300 "$work/gcc.log")"
chmod 755 "$rd/init"
bb="$work/busybox/bin/busybox"
(cd "$rd" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$out/initramfs.gz.tmp"
cp "$vmlinuz" "$out/vmlinuz.tmp"
mv "$out/initramfs.gz.tmp" "$out/initramfs.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$pkg" >"$out/kernel-package"
echo "$key" >"$out/key"
echo "ok $out"
