# Shared by mkdeb.sh and mkrpm.sh (sourced, with $stage set): what the staged tree
# $stage/root holds and how the package metadata describes it.
#
# Sets build_kind ("launcher" or "compiled"), deno_version and summary; description
# prints the long description as plain text, paragraphs separated by empty lines.

: "${PKG_NAME:?}" "${PKG_VERSION:?}" "${PKG_MAINTAINER:?}" "${PKG_DENO:?}"

if [ -e "$stage/root/usr/lib/passt/deno" ]; then
  build_kind=launcher
  deno_version=$("$stage/root/usr/lib/passt/deno" --version | sed -n '1s/^deno \([^ ]*\).*/\1/p')
else
  build_kind=compiled
  deno_version=$("$PKG_DENO" --version | sed -n '1s/^deno \([^ ]*\).*/\1/p')
fi

summary="user-mode networking for VMs and namespaces (TypeScript on Deno)"

description() {
  cat <<TEXT
passt connects a QEMU virtual machine, and pasta a Linux network namespace, to
the host's network without privileges: the guest's Ethernet frames become
ordinary TCP, UDP and ICMP echo sockets on the host, with no NAT and no TCP
stack of their own. Built-in ARP, DHCP, NDP and DHCPv6 responders hand out the
host's own addresses and routes.

This is a reimplementation of passt and pasta in TypeScript. It installs
/usr/bin/passt and /usr/bin/pasta, as the passt package does, so the two
packages conflict.
TEXT
  echo
  if [ "$build_kind" = launcher ]; then
    cat <<TEXT
This is the launcher build: /usr/bin/passt is a shell script that runs the
TypeScript sources in /usr/lib/passt with the Deno $deno_version runtime
shipped in the same directory (/usr/lib/passt/deno).
TEXT
  else
    cat <<TEXT
This is the compiled build: /usr/bin/passt is one self-contained executable
made with deno compile (Deno $deno_version). It needs no Deno installation,
only the C library and the other system libraries it is linked against.
TEXT
  fi
}

# The ELF files of the staged tree, one path a line.
elf_files() {
  find "$stage/root" -type f | while read -r f; do
    [ "$(head -c 4 "$f" | tr -d '\177')" = ELF ] && printf '%s\n' "$f"
  done
  return 0
}

# The date of the packaged source: SOURCE_DATE_EPOCH, else the last commit, else now.
source_epoch() {
  epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || true)}
  echo "${epoch:-$(date +%s)}"
}
