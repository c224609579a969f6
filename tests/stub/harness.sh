#!/bin/sh
# Build tests/stub/harness.c against the assembled clone() stub, and
# tests/stub/ns_harness.c against the namespace thread stub, and run them:
# natively for x86_64, and for aarch64 under qemu-aarch64-static.
#
#   tests/stub/harness.sh [x86_64|aarch64]...   (default: both)
#
# Needs: as/objcopy, gcc (x86_64); binutils-aarch64-linux-gnu,
# gcc-aarch64-linux-gnu, qemu-user-static (aarch64). Exits 77 when a tool is
# missing, 1 when a case fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

need() {
	for tool in "$@"; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			echo "harness.sh: $tool not found" >&2
			exit 77
		fi
	done
}

# The stub bytes as a C header (stub_bin, stub_bin_len).
header() { # bin out
	{
		echo "static const unsigned char stub_bin[] = {"
		od -An -v -tx1 "$1" | tr -s ' \n' '\n\n' | grep . | sed 's/^/0x/; s/$/,/'
		echo "};"
		echo "static const unsigned int stub_bin_len = sizeof(stub_bin);"
	} >"$2"
}

status=0
for arch in ${*:-x86_64 aarch64}; do
	for pair in clone_stub:harness ns_stub:ns_harness; do
		stub=${pair%%:*}
		prog=${pair#*:}
		mkdir -p "$tmp/$arch/$stub"
		case $arch in
		x86_64)
			need as objcopy gcc
			as "$root/src/ffi/${stub}_x86_64.s" -o "$tmp/$arch/$stub/stub.o"
			objcopy -O binary -j .text "$tmp/$arch/$stub/stub.o" "$tmp/$arch/$stub/stub.bin"
			cc=gcc
			run=""
			;;
		aarch64)
			need aarch64-linux-gnu-as aarch64-linux-gnu-objcopy aarch64-linux-gnu-gcc qemu-aarch64-static
			aarch64-linux-gnu-as "$root/src/ffi/${stub}_aarch64.s" -o "$tmp/$arch/$stub/stub.o"
			aarch64-linux-gnu-objcopy -O binary -j .text "$tmp/$arch/$stub/stub.o" "$tmp/$arch/$stub/stub.bin"
			cc=aarch64-linux-gnu-gcc
			run=qemu-aarch64-static
			;;
		*)
			echo "harness.sh: unknown architecture $arch" >&2
			exit 2
			;;
		esac
		header "$tmp/$arch/$stub/stub.bin" "$tmp/$arch/$stub/stub.h"
		$cc -static -O1 -Wall -I"$tmp/$arch/$stub" "$here/$prog.c" -o "$tmp/$arch/$stub/$prog"
		echo "== $arch $stub"
		$run "$tmp/$arch/$stub/$prog" || status=1
	done
done
exit $status
