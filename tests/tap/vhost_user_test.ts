/**
 * The vhost-user back-end against a fake front-end (socketpair, memfd, eventfds;
 * no QEMU): feature negotiation and replies, the memory table really mapped and
 * shared, frames from the guest read out of transmit chains (one segment, header
 * and frame apart, indirect), frames towards the guest written into receive
 * chains (one buffer, merged buffers, none available), notifications both ways,
 * and the reset.
 */
import assert from "node:assert/strict";
import type { PacketView } from "../../src/protocols/packet.ts";
import {
  FEATURE,
  NET_HDR_SIZE,
  OFFERED_FEATURES,
  PROTOCOL_FEATURE,
  RX_QUEUE,
  TX_QUEUE,
  VHOST_USER,
  VHOST_USER_FLAG,
  VhostRead,
  VhostUserTap,
} from "../../src/tap/vhost_user.ts";
import { VIRTQ_DESC_F } from "../../src/tap/virtqueue.ts";
import { BUFFERS_OFFSET, FakeFrontEnd, GUEST_BASE } from "./_vhost_frontend.ts";

const NUM = 64;

/** A back-end, its front-end, and the frames the back-end handed on. */
function pair() {
  const frames: Uint8Array[] = [];
  const kicks: [number, number][] = [];
  const tap = new VhostUserTap((f: PacketView) => {
    frames.push(f.bytes.slice(f.start, f.start + f.length));
  }, { kickChanged: (q, fd) => kicks.push([q, fd]) });
  const fe = new FakeFrontEnd();
  tap.attach(fe.backendFd);
  const handle = () => assert.equal(tap.handleMessage(), VhostRead.Ok);
  return { tap, fe, frames, kicks, handle };
}

/** Negotiates as QEMU does and sets both queues up. */
function negotiated() {
  const p = pair();
  const { fe, handle } = p;
  fe.send(VHOST_USER.GET_FEATURES);
  handle();
  const features = FakeFrontEnd.u64(fe.reply());
  fe.send(VHOST_USER.SET_FEATURES, FakeFrontEnd.u64Payload(features));
  handle();
  fe.send(VHOST_USER.GET_PROTOCOL_FEATURES);
  handle();
  const pf = FakeFrontEnd.u64(fe.reply());
  fe.send(VHOST_USER.SET_PROTOCOL_FEATURES, FakeFrontEnd.u64Payload(pf));
  handle();
  fe.send(VHOST_USER.SET_OWNER);
  handle();
  fe.send(VHOST_USER.SET_MEM_TABLE, fe.memTable(), [fe.memfd]);
  handle();
  fe.setUpQueue(RX_QUEUE, NUM, handle);
  fe.setUpQueue(TX_QUEUE, NUM, handle);
  return p;
}

function done(p: ReturnType<typeof pair>) {
  p.tap.detach();
  p.fe.close();
}

/** A recognisable Ethernet frame of `length` bytes. */
function frame(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (i * 7 + seed) & 0xff;
  f[12] = 0x08;
  f[13] = 0x00;
  return f;
}

Deno.test("vhost-user: features, protocol features and acknowledged requests", () => {
  const p = pair();
  const { fe, tap, handle } = p;
  try {
    fe.send(VHOST_USER.GET_FEATURES);
    handle();
    const r = fe.reply();
    assert.equal(r.request, VHOST_USER.GET_FEATURES);
    assert.equal(r.flags, VHOST_USER_FLAG.VERSION | VHOST_USER_FLAG.REPLY);
    const f = FakeFrontEnd.u64(r);
    for (const bit of [FEATURE.VERSION_1, FEATURE.NET_MRG_RXBUF, FEATURE.PROTOCOL_FEATURES]) {
      assert.notEqual(f & (1n << BigInt(bit)), 0n, `feature bit ${bit}`);
    }
    fe.send(VHOST_USER.GET_PROTOCOL_FEATURES);
    handle();
    const pf = FakeFrontEnd.u64(fe.reply());
    assert.notEqual(pf & (1n << BigInt(PROTOCOL_FEATURE.REPLY_ACK)), 0n);
    fe.send(VHOST_USER.SET_FEATURES, FakeFrontEnd.u64Payload(OFFERED_FEATURES));
    handle();
    assert.equal(fe.replyWaiting(), false, "no reply without NEED_REPLY");
    assert.equal(tap.features, OFFERED_FEATURES);
    assert.equal(tap.headerSize, NET_HDR_SIZE);
    fe.send(VHOST_USER.SET_PROTOCOL_FEATURES, FakeFrontEnd.u64Payload(pf));
    handle();
    // With REPLY_ACK: success is 0, an unknown request is not.
    fe.send(VHOST_USER.SET_OWNER, undefined, [], VHOST_USER_FLAG.NEED_REPLY);
    handle();
    assert.equal(FakeFrontEnd.u64(fe.reply()), 0n);
    fe.send(99, undefined, [], VHOST_USER_FLAG.NEED_REPLY);
    handle();
    assert.notEqual(FakeFrontEnd.u64(fe.reply()), 0n);
    assert.equal(tap.stats.unknownRequests, 1);
    // A ring size that is not a power of two is refused.
    fe.send(VHOST_USER.SET_VRING_NUM, FakeFrontEnd.state(0, 100), [], VHOST_USER_FLAG.NEED_REPLY);
    handle();
    assert.notEqual(FakeFrontEnd.u64(fe.reply()), 0n);
    // Queue 2 does not exist.
    fe.send(VHOST_USER.SET_VRING_NUM, FakeFrontEnd.state(2, 64), [], VHOST_USER_FLAG.NEED_REPLY);
    handle();
    assert.notEqual(FakeFrontEnd.u64(fe.reply()), 0n);
    // GET_VRING_BASE gives the base set.
    fe.send(VHOST_USER.SET_VRING_BASE, FakeFrontEnd.state(1, 77));
    handle();
    fe.send(VHOST_USER.GET_VRING_BASE, FakeFrontEnd.state(1, 0));
    handle();
    const base = fe.reply();
    assert.deepEqual([...base.payload], [...FakeFrontEnd.state(1, 77)]);
  } finally {
    done(p);
  }
});

Deno.test("vhost-user: a header of the wrong version or an oversized payload ends it", () => {
  for (const [version, size] of [[2, 8], [1, 100000]]) {
    const p = pair();
    try {
      const buf = new Uint8Array(12 + 8);
      const v = new DataView(buf.buffer);
      v.setUint32(0, VHOST_USER.SET_FEATURES, true);
      v.setUint32(4, version ?? 0, true);
      v.setUint32(8, size ?? 0, true);
      p.fe.sendRaw(buf);
      assert.equal(p.tap.handleMessage(), VhostRead.Bad);
    } finally {
      done(p);
    }
  }
});

Deno.test("vhost-user: frames from the guest, in one, two and indirect segments", () => {
  const p = negotiated();
  const { fe, tap, frames, kicks } = p;
  try {
    assert.deepEqual(kicks.map(([q]) => q), [RX_QUEUE, TX_QUEUE]);
    const b = BUFFERS_OFFSET;
    const f1 = frame(60, 1), f2 = frame(1514, 2), f3 = frame(3000, 3);
    // 1: header and frame in one descriptor.
    fe.mem.fill(0xee, b, b + NET_HDR_SIZE);
    fe.mem.set(f1, b + NET_HDR_SIZE);
    fe.desc(TX_QUEUE, 0, GUEST_BASE + b, NET_HDR_SIZE + f1.length, 0);
    fe.offer(TX_QUEUE, NUM, 0);
    // 2: header, then the frame in the next descriptor.
    fe.mem.set(f2, b + 0x1000);
    fe.desc(TX_QUEUE, 1, GUEST_BASE + b + 0x800, NET_HDR_SIZE, VIRTQ_DESC_F.NEXT, 2);
    fe.desc(TX_QUEUE, 2, GUEST_BASE + b + 0x1000, f2.length, 0);
    fe.offer(TX_QUEUE, NUM, 1);
    // 3: an indirect table of three segments, the header split across the first two.
    const table = b + 0x3000, data = b + 0x4000;
    fe.mem.set(f3.subarray(0, 1000), data + 8);
    fe.mem.set(f3.subarray(1000), data + 0x1000);
    const ind = (i: number, addr: number, len: number, flags: number, next: number) => {
      fe.data.setBigUint64(table + 16 * i, BigInt(addr), true);
      fe.data.setUint32(table + 16 * i + 8, len, true);
      fe.data.setUint16(table + 16 * i + 12, flags, true);
      fe.data.setUint16(table + 16 * i + 14, next, true);
    };
    ind(0, GUEST_BASE + data - 4, 4, VIRTQ_DESC_F.NEXT, 1);
    ind(1, GUEST_BASE + data, 8 + 1000, VIRTQ_DESC_F.NEXT, 2);
    ind(2, GUEST_BASE + data + 0x1000, 2000, 0, 0);
    fe.desc(TX_QUEUE, 3, GUEST_BASE + table, 48, VIRTQ_DESC_F.INDIRECT);
    fe.offer(TX_QUEUE, NUM, 3);

    FakeFrontEnd.drain(fe.call[TX_QUEUE] ?? -1);
    tap.kicked(TX_QUEUE);
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0], f1);
    assert.deepEqual(frames[1], f2);
    assert.deepEqual(frames[2], f3);
    assert.equal(fe.usedIndex(TX_QUEUE), 3);
    assert.deepEqual([0, 1, 2].map((i) => fe.used(TX_QUEUE, NUM, i)[0]), [0, 1, 3]);
    assert.equal(FakeFrontEnd.drain(fe.call[TX_QUEUE] ?? -1), 1, "guest notified once");
    assert.equal(tap.stats.framesIn, 3);
  } finally {
    done(p);
  }
});

Deno.test("vhost-user: frames towards the guest, one buffer, merged buffers, no buffers", () => {
  const p = negotiated();
  const { fe, tap } = p;
  try {
    const b = BUFFERS_OFFSET + 0x20000;
    // Nothing offered yet: the frame is dropped, counted.
    const out0 = tap.next();
    out0.putBytes(0, frame(100, 9));
    tap.queue(100);
    tap.flush();
    assert.equal(tap.stats.dropsOut, 1);
    assert.equal(tap.stats.noRxBuffers, 1);
    // Four 256-byte buffers, each its own chain.
    for (let i = 0; i < 4; i++) {
      fe.desc(RX_QUEUE, i, GUEST_BASE + b + 0x400 * i, 256, VIRTQ_DESC_F.WRITE);
      fe.offer(RX_QUEUE, NUM, i);
    }
    FakeFrontEnd.drain(fe.call[RX_QUEUE] ?? -1);
    const small = frame(200, 4), large = frame(600, 5);
    let out = tap.next();
    out.putBytes(0, small);
    tap.queue(small.length);
    out = tap.next();
    out.putBytes(0, large);
    tap.queue(large.length);
    tap.flush();
    assert.equal(tap.stats.framesOut, 2);
    assert.equal(fe.usedIndex(RX_QUEUE), 4, "1 + 3 buffers");
    assert.deepEqual(fe.used(RX_QUEUE, NUM, 0), [0, NET_HDR_SIZE + 200]);
    assert.deepEqual(fe.used(RX_QUEUE, NUM, 1), [1, 256]);
    assert.deepEqual(fe.used(RX_QUEUE, NUM, 2), [2, 256]);
    assert.deepEqual(fe.used(RX_QUEUE, NUM, 3), [3, NET_HDR_SIZE + 600 - 512]);
    // Headers: num_buffers 1 and 3, the rest zero.
    assert.equal(fe.data.getUint16(b + 10, true), 1);
    assert.equal(fe.data.getUint16(b + 0x400 + 10, true), 3);
    assert.deepEqual(fe.mem.slice(b, b + 10), new Uint8Array(10));
    assert.deepEqual(fe.mem.slice(b + NET_HDR_SIZE, b + NET_HDR_SIZE + 200), small);
    const merged = new Uint8Array(600);
    merged.set(fe.mem.subarray(b + 0x400 + NET_HDR_SIZE, b + 0x400 + 256), 0);
    merged.set(fe.mem.subarray(b + 0x800, b + 0x800 + 256), 256 - NET_HDR_SIZE);
    merged.set(fe.mem.subarray(b + 0xc00, b + 0xc00 + 600 - 512 + NET_HDR_SIZE), 512 - 12);
    assert.deepEqual(merged, large);
    assert.equal(FakeFrontEnd.drain(fe.call[RX_QUEUE] ?? -1), 1);
    // One buffer left for a frame needing two: the frame waits, the buffer stays offered.
    fe.desc(RX_QUEUE, 4, GUEST_BASE + b + 0x1000, 256, VIRTQ_DESC_F.WRITE);
    fe.offer(RX_QUEUE, NUM, 4);
    out = tap.next();
    out.putBytes(0, large);
    tap.queue(large.length);
    tap.flush();
    assert.equal(fe.usedIndex(RX_QUEUE), 4);
    assert.equal(tap.stats.dropsOut, 2);
    out = tap.next();
    out.putBytes(0, small);
    tap.queue(small.length);
    tap.flush();
    assert.equal(fe.usedIndex(RX_QUEUE), 5, "the buffer left was still there");
    assert.deepEqual(fe.used(RX_QUEUE, NUM, 4), [4, NET_HDR_SIZE + 200]);
  } finally {
    done(p);
  }
});

Deno.test("vhost-user: GET_VRING_BASE stops a queue, RESET_OWNER forgets everything", () => {
  const p = negotiated();
  const { fe, tap, frames, handle, kicks } = p;
  try {
    const b = BUFFERS_OFFSET;
    fe.mem.set(frame(60, 1), b + NET_HDR_SIZE);
    fe.desc(TX_QUEUE, 0, GUEST_BASE + b, NET_HDR_SIZE + 60, 0);
    fe.offer(TX_QUEUE, NUM, 0);
    tap.drainTx();
    fe.send(VHOST_USER.GET_VRING_BASE, FakeFrontEnd.state(TX_QUEUE, 0));
    handle();
    assert.deepEqual([...fe.reply().payload], [...FakeFrontEnd.state(TX_QUEUE, 1)]);
    assert.deepEqual(kicks.at(-1), [TX_QUEUE, -1]);
    fe.offer(TX_QUEUE, NUM, 0);
    tap.drainTx();
    assert.equal(frames.length, 1, "a stopped queue is not read");
    fe.send(VHOST_USER.RESET_OWNER);
    handle();
    assert.equal(tap.memory.count, 0);
    assert.equal(tap.features, 0n);
    assert.equal(tap.queues[RX_QUEUE].kickFd, -1);
  } finally {
    done(p);
  }
});
