#!/bin/sh
# Reassemble the machine-code stubs (the clone() entry, the per-thread signal
# handler) and compare them with the bytes embedded in src/ffi/STUB.ts (between
# the "// <ARCH>" and "// </ARCH>" marker lines).
#
#   tests/stub/regen.sh           check: exit 0 if both match, 1 if not
#   tests/stub/regen.sh --write   rewrite the embedded bytes from the sources
#
# Needs GNU as/objcopy for x86_64 and binutils-aarch64-linux-gnu; exits 77
# (the automake "skipped" code) when an assembler is missing.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for tool in as objcopy aarch64-linux-gnu-as aarch64-linux-gnu-objcopy; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "regen.sh: $tool not found (apt-get install binutils binutils-aarch64-linux-gnu)" >&2
		exit 77
	fi
done


# The bytes as TypeScript array elements, 12 per line, as deno fmt leaves them.
literal() {
	od -An -v -tx1 "$1" | tr -s ' \n' '\n\n' | grep . |
		awk '{ printf "%s0x%s,", (NR % 12 == 1 ? "  " : " "), $1; if (NR % 12 == 0) print "" }
		     END { if (NR % 12 != 0) print "" }'
}

# The embedded bytes for one architecture ($1) in a file ($2), one hex byte per line.
embedded() {
	awk -v arch="$1" '$0 ~ "// </" arch ">" { on = 0 } on { print } $0 ~ "// <" arch ">" { on = 1 }' "$2" |
		grep -o '0x[0-9a-fA-F][0-9a-fA-F]' | tr 'A-F' 'a-f'
}

status=0
for stub in clone_stub thread_stub ns_stub; do
	ts="$root/src/ffi/$stub.ts"
	as "$root/src/ffi/${stub}_x86_64.s" -o "$tmp/x86_64.o"
	objcopy -O binary -j .text "$tmp/x86_64.o" "$tmp/x86_64.bin"
	aarch64-linux-gnu-as "$root/src/ffi/${stub}_aarch64.s" -o "$tmp/aarch64.o"
	aarch64-linux-gnu-objcopy -O binary -j .text "$tmp/aarch64.o" "$tmp/aarch64.bin"

	if [ "${1:-}" = "--write" ]; then
		for arch in x86_64 aarch64; do
			literal "$tmp/$arch.bin" >"$tmp/$arch.lit"
			awk -v arch="$arch" -v lit="$tmp/$arch.lit" '
				$0 ~ "// </" arch ">" { while ((getline l < lit) > 0) print l; on = 0 }
				!on { print }
				$0 ~ "// <" arch ">" { on = 1 }' "$ts" >"$tmp/out.ts"
			cp "$tmp/out.ts" "$ts"
		done
		echo "regen.sh: rewrote the embedded stubs in $ts"
		continue
	fi

	for arch in x86_64 aarch64; do
		literal "$tmp/$arch.bin" | grep -o '0x[0-9a-f][0-9a-f]' >"$tmp/$arch.want"
		embedded "$arch" "$ts" >"$tmp/$arch.have"
		if [ ! -s "$tmp/$arch.have" ]; then
			echo "regen.sh: no embedded $arch bytes found in $ts" >&2
			status=1
		elif ! cmp -s "$tmp/$arch.want" "$tmp/$arch.have"; then
			echo "regen.sh: $arch $stub in $ts differs from its source; run tests/stub/regen.sh --write" >&2
			status=1
		else
			echo "regen.sh: $arch $stub matches ($(wc -l <"$tmp/$arch.want") bytes)"
		fi
	done
done
exit $status
