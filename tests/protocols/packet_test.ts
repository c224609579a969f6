import assert from "node:assert/strict";
import { PacketView, ServiceStats } from "../../src/protocols/packet.ts";

Deno.test("PacketView reads are network order and bounded by the frame length", () => {
  const buf = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const p = new PacketView(buf, 6);
  assert.equal(p.u8(0), 1);
  assert.equal(p.u16(0), 0x0102);
  assert.equal(p.u32(2), 0x03040506);
  assert.equal(p.u8(6), -1, "byte past length (but inside buffer) is out of range");
  assert.equal(p.u16(5), -1);
  assert.equal(p.u32(3), -1);
  assert.equal(p.u8(-1), -1);
  assert.equal(p.u16(NaN), -1);
  assert.equal(p.has(0, 6), true);
  assert.equal(p.has(1, 6), false);
  assert.equal(p.has(-1, 1), false);
  assert.equal(p.has(0, -1), false);
});

Deno.test("PacketView u32 returns unsigned values", () => {
  const p = new PacketView(new Uint8Array([0xff, 0xff, 0xff, 0xfe]));
  assert.equal(p.u32(0), 0xfffffffe);
});

Deno.test("PacketView window selects one frame inside a larger buffer", () => {
  const buf = new Uint8Array(16).map((_, i) => i);
  const p = new PacketView(buf);
  assert.equal(p.setWindow(4, 4), true);
  assert.equal(p.u8(0), 4);
  assert.equal(p.u8(3), 7);
  assert.equal(p.u8(4), -1);
  assert.equal(p.capacity, 12);
  assert.equal(p.setWindow(10, 10), false, "window past buffer rejected");
  assert.equal(p.length, 0);
  assert.equal(p.u8(0), -1);
});

Deno.test("PacketView writes are bounded by capacity and set overflow instead of throwing", () => {
  const p = new PacketView(new Uint8Array(8), 0);
  p.put16(0, 0xabcd);
  p.put32(4, 0xdeadbeef);
  assert.equal(p.overflow, false);
  assert.deepEqual([...p.bytes], [0xab, 0xcd, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
  p.put32(6, 1);
  assert.equal(p.overflow, true);
  assert.deepEqual([...p.bytes.subarray(6)], [0xbe, 0xef], "nothing written on overflow");
  p.clearOverflow();
  p.putBytes(7, new Uint8Array(2));
  assert.equal(p.overflow, true);
  p.clearOverflow();
  p.fill(-1, 2);
  assert.equal(p.overflow, true);
});

Deno.test("PacketView copy helpers check both ranges", () => {
  const src = new PacketView(new Uint8Array([1, 2, 3, 4]), 3);
  const dst = new PacketView(new Uint8Array(4), 0);
  dst.putFrom(0, src, 1, 2);
  assert.deepEqual([...dst.bytes], [2, 3, 0, 0]);
  dst.putFrom(0, src, 2, 2);
  assert.equal(dst.overflow, true, "source range past source length");
  const out = new Uint8Array(2);
  assert.equal(src.copyOut(0, 2, out), true);
  assert.deepEqual([...out], [1, 2]);
  assert.equal(src.copyOut(2, 2, out), false);
  assert.equal(src.equals(0, new Uint8Array([1, 2, 3])), true);
  assert.equal(src.equals(0, new Uint8Array([1, 2, 3, 4])), false);
  assert.equal(src.isZero(0, 1), false);
});

Deno.test("PacketView move is overlap-safe", () => {
  const p = new PacketView(new Uint8Array([1, 2, 3, 4, 5, 0, 0]));
  p.move(2, 0, 5);
  assert.deepEqual([...p.bytes], [1, 2, 1, 2, 3, 4, 5]);
});

Deno.test("ServiceStats counts drops by reason and replies", () => {
  const s = new ServiceStats(["a", "b"] as const);
  assert.equal(s.drop("a"), 0);
  s.drop("a");
  s.drop("b");
  assert.equal(s.reply("x", 42), 42);
  assert.deepEqual(s.dropped, { a: 2, b: 1 });
  assert.equal(s.totalDropped(), 3);
  assert.equal(s.lastDrop, "b");
  assert.equal(s.lastReply, "x");
  assert.equal(s.replies, 1);
});
