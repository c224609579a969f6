/**
 * The data path allocates nothing per frame (issue #15, item 7): a million
 * frames from the guest through TCP translation (segments of an established
 * connection, each answered with an ACK built from the socket's state) and UDP
 * translation (datagrams sent on to a socket on the host's loopback), with the
 * event loop turning as it does in pasta, and V8's heap measured around every
 * chunk of 10 000 frames. The measurement (_alloc_probe.ts) runs in a process of
 * its own, as pasta's data path does: in the test runner's process, code other
 * tests ran before shapes what the JIT makes of the same functions.
 *
 * No garbage collection is forced: collections would hide allocations rather
 * than show them. Instead the heap in use is read before and after each chunk;
 * a chunk during which the collector ran (the heap shrank) says nothing and is
 * left out. Anything allocated per frame, even one BigInt or one small array,
 * grows the heap by 160 KB or more a chunk; the bound is 16 KB (under two bytes
 * a frame), which leaves room for the loop's rare bookkeeping.
 */
import assert from "node:assert/strict";

const PROBE = new URL("./_alloc_probe.ts", import.meta.url).pathname;
/** The heap may grow this much over a chunk of 10 000 frames (bytes). */
const CHUNK_GROWTH_MAX = 16 << 10;

Deno.test("data path: a million frames through TCP and UDP translation allocate nothing", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", PROBE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe failed: ${stderr}`);
  const m = JSON.parse(new TextDecoder().decode(out.stdout));
  console.error(
    `${m.frames} frames; heap growth per 10 000-frame chunk: median ${m.median} bytes, ` +
      `max ${m.max} (${m.cleanChunks} of ${m.chunks} chunks without a collection)`,
  );
  assert.ok(m.cleanChunks >= m.chunks / 2, "the collector ran during most chunks");
  assert.ok(m.median <= CHUNK_GROWTH_MAX, `heap grows ${m.median} bytes per 10 000 frames`);
});
