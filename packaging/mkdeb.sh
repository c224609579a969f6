#!/bin/sh
# Builds OUTDIR/NAME_VERSION_ARCH.deb from the tree that `make pkgs` staged in
# STAGE/root (make install DESTDIR=STAGE/root PREFIX=/usr), adding what a Debian
# binary package carries besides: control, md5sums, changelog.gz, lintian overrides.
# Usage: PKG_NAME=… PKG_VERSION=… PKG_MAINTAINER=… PKG_DENO=… sh mkdeb.sh STAGE OUTDIR
set -eu
stage=$1
out=$2
here=$(dirname "$0")
. "$here/common.sh"

arch=$(dpkg --print-architecture)
root=$stage/deb
rm -rf "$root"
cp -a "$stage/root" "$root"

doc=$root/usr/share/doc/$PKG_NAME
{
  echo "$PKG_NAME ($PKG_VERSION) unstable; urgency=medium"
  echo
  echo "  * Built with make pkgs from the passt-deno sources ($build_kind build)."
  echo
  echo " -- $PKG_MAINTAINER  $(LC_ALL=C date -R -u -d "@$(source_epoch)")"
} | gzip -9n > "$doc/changelog.gz"
if [ "$build_kind" = launcher ]; then elf=usr/lib/passt/deno; else elf=usr/bin/passt; fi
mkdir -p "$root/usr/share/lintian/overrides"
sed "s|@ELF@|$elf|" "$here/deb/lintian-overrides.in" > "$root/usr/share/lintian/overrides/$PKG_NAME"

# Shared-library dependencies of the ELF files (the bundled Deno runtime, or the
# compiled binary), as dpkg-shlibdeps finds them; a plain list when it is missing.
depends="libc6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null; then
  work=$stage/shlibdeps
  mkdir -p "$work/debian"
  printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG_NAME" "$PKG_NAME" \
    > "$work/debian/control"
  args=$(elf_files | sed "s|^|-e$(pwd)/|" | tr '\n' ' ')
  # shellcheck disable=SC2086 # one argument per ELF file
  found=$(cd "$work" && dpkg-shlibdeps -O $args 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  [ -n "$found" ] && depends=$found
fi

size=$(du -sk --apparent-size "$root" | cut -f1)
mkdir -p "$root/DEBIAN"
{
  echo "Package: $PKG_NAME"
  echo "Version: $PKG_VERSION"
  echo "Architecture: $arch"
  echo "Maintainer: $PKG_MAINTAINER"
  echo "Installed-Size: $size"
  echo "Depends: $depends"
  echo "Conflicts: passt"
  echo "Section: net"
  echo "Priority: optional"
  echo "Description: $summary"
  description | sed -e 's/^/ /' -e 's/^ $/ ./'
} > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' |
  LC_ALL=C sort | xargs md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

# xz level 1: 4 s instead of 40 s for the 95 MB Deno runtime at the default level 6,
# for a package 13% bigger; every dpkg reads it.
mkdir -p "$out"
SOURCE_DATE_EPOCH=$(source_epoch) \
  dpkg-deb --build --root-owner-group -Zxz -z1 "$root" "$out/${PKG_NAME}_${PKG_VERSION}_${arch}.deb"
