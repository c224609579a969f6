#!/bin/sh
# Builds OUTDIR/NAME-VERSION-1.ARCH.rpm from the tree that `make pkgs` staged in
# STAGE/root, with rpmbuild: the spec written here copies that tree as it is. rpm's
# post-install processing (stripping, recompressing, build-id links, debuginfo) is
# off: the files are final, and stripping a `deno compile` binary would break it.
# Usage: PKG_NAME=… PKG_VERSION=… PKG_MAINTAINER=… PKG_DENO=… sh mkrpm.sh STAGE OUTDIR
set -eu
stage=$1
out=$2
here=$(dirname "$0")
. "$here/common.sh"

top=$(pwd)/$stage/rpm
tree=$(pwd)/$stage/root
rm -rf "$top"
mkdir -p "$top/SPECS" "$top/BUILD" "$out"
spec=$top/SPECS/$PKG_NAME.spec
{
  echo "Name: $PKG_NAME"
  echo "Version: $PKG_VERSION"
  echo "Release: 1"
  echo "Summary: $summary"
  echo "License: GPL-2.0-or-later AND MIT"
  echo "Packager: $PKG_MAINTAINER"
  echo "Conflicts: passt"
  echo "AutoProv: no"
  echo "%global debug_package %{nil}"
  echo "%global __os_install_post %{nil}"
  echo "%global _build_id_links none"
  echo
  echo "%description"
  description
  echo
  echo "%install"
  echo "cp -a '$tree/.' %{buildroot}/"
  echo
  echo "%files"
  # Every file and link, and the directories that belong to this package only.
  (cd "$tree" && find . -mindepth 1 ! -type d | sed 's|^\.||' | LC_ALL=C sort)
  (cd "$tree" && find ./usr/lib/passt "./usr/share/doc/$PKG_NAME" -type d 2>/dev/null |
    sed 's|^\.|%dir |' | LC_ALL=C sort)
  echo
  echo "%changelog"
  echo "* $(LC_ALL=C date -u -d "@$(source_epoch)" '+%a %b %d %Y') $PKG_MAINTAINER - $PKG_VERSION-1"
  echo "- Built with make pkgs from the passt-deno sources ($build_kind build)."
} > "$spec"

# Payload: xz level 1, fast and readable by every rpm of the last fifteen years. Build
# time, host and file times come from the sources, so a rebuild gives the same package.
SOURCE_DATE_EPOCH=$(source_epoch) rpmbuild -bb --quiet --target "$(uname -m)" \
  --define "_topdir $top" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  --define "_buildhost reproducible" \
  --define "_binary_payload w1.xzdio" \
  --define "_rpmdir $(cd "$out" && pwd)" \
  --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
  "$spec"
