/**
 * The data path allocates nothing per frame (issue #15, item 7): a million
 * frames from the guest through translation, with the event loop turning as it
 * does in pasta, and V8's heap measured around every chunk of 10 000 frames.
 * Twice: TCP segments of an established connection (each answered with an ACK
 * built from the socket's state: clock reads, socket options, frame building),
 * then the same with every other frame a UDP datagram sent on through a flow's
 * socket (clock reads, flow lookup, sendmsg). The measurement (_alloc_probe.ts)
 * runs in a process of its own, as pasta's data path does: in the test runner's
 * process, code other tests ran before shapes what the JIT makes of the same
 * functions.
 *
 * No garbage collection is forced: collections would hide allocations rather
 * than show them. Instead the heap in use is read before and after each chunk;
 * a chunk during which the collector ran (the heap shrank) says nothing and is
 * left out, and the median of the rest is judged, after 50 000 frames of
 * warm-up. The smallest V8 object is 16 bytes: anything allocated per frame,
 * even one boxed number, grows the heap by 80 KB a chunk or more (160 KB on the
 * TCP path); the bound is 40 KB (4 bytes a frame), which leaves room for
 * bookkeeping once per loop turn (625 turns a chunk; measured: 200 bytes a
 * chunk on the TCP path, 0 to 20 KB with UDP, from one process start to the
 * next). Adding one `new Uint8Array(8)` per frame on either path fails it.
 *
 * What made the figures vary between runs before: a uint32 sequence number of
 * 2^31 or more is no Smi, and passing one to a call V8 did not inline boxed it
 * (the random ISN decided), and so did a checksum sum returned from sum16.
 */
import assert from "node:assert/strict";

const PROBE = new URL("./_alloc_probe.ts", import.meta.url).pathname;
/** The heap may grow this much over a chunk of 10 000 frames (bytes). */
const CHUNK_GROWTH_MAX = 40 << 10;

async function probe(udpToo: boolean) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", PROBE],
    env: { ALLOC_UDP: udpToo ? "1" : "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe failed: ${stderr}`);
  const m = JSON.parse(new TextDecoder().decode(out.stdout));
  console.error(
    `${udpToo ? "TCP + UDP" : "TCP"}: ${m.frames} frames; heap growth per 10 000-frame chunk: ` +
      `median ${m.median} bytes, max ${m.max} (${m.cleanChunks} of ${m.chunks} chunks without a collection)`,
  );
  assert.ok(m.cleanChunks >= m.chunks / 2, "the collector ran during most chunks");
  assert.ok(m.median <= CHUNK_GROWTH_MAX, `heap grows ${m.median} bytes per 10 000 frames`);
}

Deno.test("data path: a million segments through TCP translation allocate nothing", async () => {
  await probe(false);
});

Deno.test("data path: a million frames, half of them UDP datagrams, allocate nothing", async () => {
  await probe(true);
});
