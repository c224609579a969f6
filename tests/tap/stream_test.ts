/**
 * The qemu stream framing of passt's tap side (src/tap/stream.ts), over a
 * socketpair: frames split across reads and many per read, bad lengths, and
 * output that the socket takes only in part (the framing never breaks).
 */
import assert from "node:assert/strict";
import { AF, SOCK } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import type { PacketView } from "../../src/protocols/packet.ts";
import { StreamRead, StreamTap } from "../../src/tap/stream.ts";

/** A tap on one end of a socketpair; the other end is the test's "qemu". */
function pair(): { tap: StreamTap; peer: number; blockedCalls: boolean[]; close(): void } {
  const [ours, peer] = sys.socketpair(AF.UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC);
  const blockedCalls: boolean[] = [];
  const tap = new StreamTap((_fd, blocked) => blockedCalls.push(blocked));
  tap.attach(ours);
  return {
    tap,
    peer,
    blockedCalls,
    close() {
      tap.detach();
      sys.close(ours);
      sys.close(peer);
    },
  };
}

/** A frame of `length` bytes: its number in the first two bytes, then a pattern. */
function frame(n: number, length: number): Uint8Array {
  const f = new Uint8Array(length);
  f[0] = n >> 8;
  f[1] = n & 0xff;
  for (let i = 2; i < length; i++) f[i] = (n + i) & 0xff;
  return f;
}

function prefixed(f: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + f.length);
  new DataView(out.buffer).setUint32(0, f.length);
  out.set(f, 4);
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  const copy = new Uint8Array(bytes);
  assert.equal(sys.write(fd, copy, copy.length), copy.length);
}

/** Frames handed to the ingress, copied out. */
function collector(): { frames: Uint8Array[]; ingress: (v: PacketView) => void } {
  const frames: Uint8Array[] = [];
  return {
    frames,
    ingress: (v) => frames.push(v.bytes.slice(v.start, v.start + v.length)),
  };
}

Deno.test("many frames in one read are each handed on, in order", () => {
  const p = pair();
  try {
    const sent = [frame(1, 60), frame(2, 1514), frame(3, 65535 + 14), frame(4, 42)];
    const c = collector();
    for (const f of sent) writeAll(p.peer, prefixed(f));
    assert.equal(p.tap.readFrames(c.ingress), StreamRead.Ok);
    assert.deepEqual(c.frames, sent);
    assert.equal(p.tap.stats.framesIn, 4);
  } finally {
    p.close();
  }
});

Deno.test("frames split across reads at every offset come out whole", () => {
  const p = pair();
  try {
    const sent = [frame(1, 60), frame(2, 300), frame(3, 61)];
    const stream = new Uint8Array(sent.reduce((n, f) => n + 4 + f.length, 0));
    let at = 0;
    for (const f of sent) {
      stream.set(prefixed(f), at);
      at += 4 + f.length;
    }
    const c = collector();
    // One byte, then two, then three…: every boundary falls somewhere inside a piece.
    for (let offset = 0, size = 1; offset < stream.length; offset += size, size++) {
      writeAll(p.peer, stream.subarray(offset, Math.min(stream.length, offset + size)));
      assert.equal(p.tap.readFrames(c.ingress), StreamRead.Ok);
    }
    assert.deepEqual(c.frames, sent);
  } finally {
    p.close();
  }
});

Deno.test("a zero or oversized length breaks the stream; EOF closes it", () => {
  for (const length of [0, 65535 + 15, 0xffffffff]) {
    const p = pair();
    try {
      const c = collector();
      writeAll(p.peer, prefixed(frame(1, 60)));
      const bad = new Uint8Array(8);
      new DataView(bad.buffer).setUint32(0, length);
      writeAll(p.peer, bad);
      assert.equal(p.tap.readFrames(c.ingress), StreamRead.BadLength, `length ${length}`);
      assert.equal(p.tap.badLength, length);
      assert.equal(c.frames.length, 1, "the good frame before it was handed on");
    } finally {
      p.close();
    }
  }
  const p = pair();
  try {
    sys.shutdown(p.peer, 1 /* SHUT_WR */);
    assert.equal(p.tap.readFrames(() => {}), StreamRead.Closed);
  } finally {
    p.close();
  }
});

Deno.test("one writev per flush: prefix and frame of every queued slot", () => {
  const p = pair();
  try {
    const sent = [frame(1, 60), frame(2, 1514), frame(3, 90)];
    for (const f of sent) {
      const out = p.tap.next();
      out.putBytes(0, f);
      p.tap.queue(f.length);
    }
    assert.equal(p.tap.room(), 128 - 3);
    p.tap.flush();
    assert.equal(p.tap.room(), 128);
    const buf = new Uint8Array(1 << 16);
    const n = sys.read(p.peer, buf, buf.length);
    assert.deepEqual(buf.subarray(0, n), new Uint8Array(sent.flatMap((f) => [...prefixed(f)])));
    assert.equal(p.tap.stats.framesOut, 3);
    assert.deepEqual(p.blockedCalls, []);
  } finally {
    p.close();
  }
});

Deno.test("a partial write keeps the rest; the framing survives a stuck reader", () => {
  const p = pair();
  try {
    const FRAME = 60_000;
    let numbered = 0;
    const queueFrames = (count: number) => {
      for (let i = 0; i < count; i++) {
        const out = p.tap.next();
        out.putBytes(0, frame(++numbered, FRAME));
        p.tap.queue(FRAME);
      }
    };
    queueFrames(128);
    p.tap.flush();
    assert.equal(p.tap.blocked, true, "a socketpair does not take 7.5 MiB at once");
    assert.deepEqual(p.blockedCalls, [true]);
    assert.equal(p.tap.room(), 128, "the arena is free again");
    assert.ok(p.tap.stats.partialWrites >= 1);
    // More frames while stuck: they wait behind the remainder, or are dropped whole.
    queueFrames(128);
    p.tap.flush();
    queueFrames(128);
    p.tap.flush();

    // The reader drains the stream; the tap resumes on every "EPOLLOUT".
    const received: number[] = [];
    const buf = new Uint8Array(1 << 20);
    let stream = new Uint8Array(0);
    for (let turn = 0; turn < 10_000; turn++) {
      const n = sys.read(p.peer, buf, buf.length);
      if (n > 0) {
        const next = new Uint8Array(stream.length + n);
        next.set(stream);
        next.set(buf.subarray(0, n), stream.length);
        stream = next;
      }
      let at = 0;
      while (stream.length - at >= 4) {
        const length = new DataView(stream.buffer, at).getUint32(0);
        assert.equal(length, FRAME, `frame ${received.length}: length prefix intact`);
        if (stream.length - at - 4 < length) break;
        const f = stream.subarray(at + 4, at + 4 + length);
        const number = (f[0]! << 8) | f[1]!;
        assert.deepEqual(f, frame(number, FRAME), `frame ${number} intact`);
        received.push(number);
        at += 4 + length;
      }
      stream = stream.slice(at);
      if (p.tap.blocked) p.tap.resume();
      else if (n < 0 && stream.length === 0) break;
    }
    assert.equal(p.tap.blocked, false);
    assert.equal(p.blockedCalls.at(-1), false, "EPOLLOUT no longer wanted");
    const stats = p.tap.stats;
    assert.equal(received.length, stats.framesOut, "every frame counted out arrived");
    assert.equal(stats.framesOut + stats.dropsOut, 3 * 128, "every frame sent or counted dropped");
    assert.ok(received.length >= 128, `all of the first batch at least (${received.length})`);
    for (let i = 1; i < received.length; i++) {
      assert.ok(received[i]! > received[i - 1]!, "in order, none twice");
    }
    assert.deepEqual(received.slice(0, 128), Array.from({ length: 128 }, (_, i) => i + 1));
  } finally {
    p.close();
  }
});
