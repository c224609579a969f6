import { finish, sum16 } from "../../src/protocols/checksum.ts";

const frame = new Uint8Array(65536).map((_, i) => (i * 7) & 0xff);
const view = new DataView(frame.buffer);

// Reference: the obvious byte-pair loop, to see what the 32-bit word loop buys.
function naive(b: Uint8Array, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

let sink = 0;

for (const len of [64, 1500, 65520]) {
  Deno.bench({
    name: `sum16 ${len} bytes`,
    group: `checksum ${len}`,
    baseline: true,
    fn() {
      sink ^= finish(sum16(view, 0, len));
    },
  });
  Deno.bench({
    name: `naive byte pairs ${len} bytes`,
    group: `checksum ${len}`,
    fn() {
      sink ^= naive(frame, len);
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
