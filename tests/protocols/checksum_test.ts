import assert from "node:assert/strict";
import {
  finish,
  fold16,
  ipv4HeaderChecksum,
  l4ChecksumV4,
  l4ChecksumV6,
  sum16,
  udpNonZero,
} from "../../src/protocols/checksum.ts";
import { bytes, naiveChecksum, prng } from "./_frames.ts";

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

Deno.test("sum16 matches the RFC 1071 §3 example", () => {
  const data = new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(fold16(sum16(dv(data), 0, data.length)), 0xddf2);
  assert.equal(finish(sum16(dv(data), 0, data.length)), 0x220d);
});

Deno.test("IPv4 header checksum of a known header", () => {
  // Classic example header, checksum 0xb861.
  const h = new Uint8Array([
    0x45,
    0x00,
    0x00,
    0x73,
    0x00,
    0x00,
    0x40,
    0x00,
    0x40,
    0x11,
    0x00,
    0x00,
    0xc0,
    0xa8,
    0x00,
    0x01,
    0xc0,
    0xa8,
    0x00,
    0xc7,
  ]);
  assert.equal(ipv4HeaderChecksum(dv(h), 0, 20), 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  assert.equal(ipv4HeaderChecksum(dv(h), 0, 20), 0, "verifies to zero");
});

Deno.test("sum16 agrees with a naive implementation at every length and alignment", () => {
  const rnd = prng(7);
  const buf = new Uint8Array(2100);
  for (let i = 0; i < buf.length; i++) buf[i] = rnd() & 0xff;
  for (let off = 0; off < 4; off++) {
    for (let len = 0; len < 2096; len += 1 + (len >> 4)) {
      const got = finish(sum16(dv(buf), off, len));
      assert.equal(got, naiveChecksum(buf.subarray(off, off + len)), `off ${off} len ${len}`);
    }
  }
});

Deno.test("sum16 is exact over large buffers (periodic folding)", () => {
  const buf = new Uint8Array(3 << 20).fill(0xff);
  assert.equal(finish(sum16(dv(buf), 0, buf.length)), 0);
  buf[5] = 0;
  assert.equal(finish(sum16(dv(buf), 0, buf.length)), naiveChecksum(buf));
});

Deno.test("pseudo-header checksums for UDP over IPv4 and IPv6", () => {
  const payload = bytes(0x12, 0x34, 0x00, 0x35, 0x00, 0x0b, 0, 0, 0x61, 0x62, 0x63);
  const ip4 = bytes(new Array(12).fill(0), 10, 0, 0, 1, 10, 0, 0, 2, payload);
  const c4 = l4ChecksumV4(dv(ip4), 0, 20, payload.length, 17);
  const naive4 = naiveChecksum(bytes(10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 11, payload));
  assert.equal(c4, naive4);

  const src = new Uint8Array(16).fill(0xfe, 0, 1).fill(0x80, 1, 2).fill(1, 15);
  const dst = new Uint8Array(16).fill(0xff, 0, 1).fill(2, 1, 2).fill(2, 15);
  const ip6 = bytes(new Array(8).fill(0), src, dst, payload);
  const c6 = l4ChecksumV6(dv(ip6), 0, 40, payload.length, 17);
  const naive6 = naiveChecksum(bytes(src, dst, 0, 0, 0, 11, 0, 0, 0, 17, payload));
  assert.equal(c6, naive6);
  assert.equal(udpNonZero(0), 0xffff);
  assert.equal(udpNonZero(5), 5);
});
