/**
 * Split virtqueues fed hostile rings: each kind of bad content a guest can write
 * (descriptor loop, address outside the regions, length past a region's end,
 * nested or misaligned indirect tables, an available index jump, a head outside
 * the table) is detected and counted, and either skipped (the chain returned as
 * used with 0 bytes) or stops the queue. Then a seeded fuzz writes random rings
 * and descriptors, through the queue alone and through the whole vhost-user
 * back-end both ways, and checks that nothing throws, every segment handed out
 * lies inside its region, and every pop ends.
 */
import assert from "node:assert/strict";
import { AF, SOCK } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import type { PacketView } from "../../src/protocols/packet.ts";
import { OFFERED_FEATURES, RX_QUEUE, TX_QUEUE, VhostUserTap } from "../../src/tap/vhost_user.ts";
import {
  DESC_SIZE,
  GuestMemory,
  POP_BROKEN,
  POP_EMPTY,
  POP_SKIPPED,
  SplitQueue,
  VIRTQ_DESC_F,
} from "../../src/tap/virtqueue.ts";

const NUM = 16;
/** Two regions with a hole between them (guest-physical and front-end addresses). */
const R0_GUEST = 0x1000, R0_USER = 0x10_0000_0000, R0_SIZE = 0x10000;
const R1_GUEST = 0x40000, R1_USER = 0x20_0000_0000, R1_SIZE = 0x8000;
/** Ring offsets in region 0. */
const DESC = 0, AVAIL = 0x1000, USED = 0x2000;

/** A queue of NUM entries over two fresh regions, started and enabled. */
function fixture() {
  const r0 = new Uint8Array(R0_SIZE), r1 = new Uint8Array(R1_SIZE);
  const mem = new GuestMemory();
  mem.add(R0_GUEST, R0_USER, r0);
  mem.add(R1_GUEST, R1_USER, r1);
  const q = new SplitQueue(mem);
  q.num = NUM;
  q.descUser = R0_USER + DESC;
  q.availUser = R0_USER + AVAIL;
  q.usedUser = R0_USER + USED;
  q.enabled = true;
  assert.ok(q.start());
  const d0 = new DataView(r0.buffer);
  const desc = (table: number, i: number, addr: number, len: number, flags: number, next = 0) => {
    const at = table + DESC_SIZE * i;
    d0.setBigUint64(at, BigInt(addr), true);
    d0.setUint32(at + 8, len, true);
    d0.setUint16(at + 12, flags, true);
    d0.setUint16(at + 14, next, true);
  };
  const offer = (head: number) => {
    const idx = d0.getUint16(AVAIL + 2, true);
    d0.setUint16(AVAIL + 4 + 2 * (idx % NUM), head, true);
    d0.setUint16(AVAIL + 2, (idx + 1) & 0xffff, true);
  };
  const used = (i: number): [number, number] => [
    d0.getUint32(USED + 4 + 8 * (i % NUM), true),
    d0.getUint32(USED + 8 + 8 * (i % NUM), true),
  ];
  return { mem, q, r0, r1, d0, desc, offer, used };
}

Deno.test("virtqueue: a good chain across both regions", () => {
  const { q, desc, offer } = fixture();
  desc(DESC, 0, R0_GUEST + 0x8000, 100, VIRTQ_DESC_F.NEXT, 5);
  desc(DESC, 5, R1_GUEST + R1_SIZE - 50, 50, VIRTQ_DESC_F.WRITE);
  offer(0);
  assert.equal(q.pop(), 0);
  assert.equal(q.segmentCount, 2);
  assert.deepEqual([q.segmentRegion[0], q.segmentOffset[0], q.segmentLength[0]], [0, 0x8000, 100]);
  assert.deepEqual([q.segmentRegion[1], q.segmentOffset[1], q.segmentLength[1]], [
    1,
    R1_SIZE - 50,
    50,
  ]);
  assert.equal(q.readableBytes, 100);
  assert.equal(q.writableBytes, 50);
  assert.equal(q.pop(), POP_EMPTY);
});

Deno.test("virtqueue: bad chains are skipped, counted and given back", () => {
  const { q, desc, offer, used } = fixture();
  // A loop: 1 → 2 → 1.
  desc(DESC, 1, R0_GUEST + 0x8000, 10, VIRTQ_DESC_F.NEXT, 2);
  desc(DESC, 2, R0_GUEST + 0x8000, 10, VIRTQ_DESC_F.NEXT, 1);
  // An address in the hole between the regions.
  desc(DESC, 3, R0_GUEST + R0_SIZE + 0x100, 10, 0);
  // A length running past the end of region 1.
  desc(DESC, 4, R1_GUEST + R1_SIZE - 10, 11, 0);
  // An address above 2^53.
  desc(DESC, 6, 2 ** 60, 10, 0);
  // A next index outside the table.
  desc(DESC, 7, R0_GUEST + 0x8000, 10, VIRTQ_DESC_F.NEXT, NUM);
  // An indirect table of a length not a multiple of 16.
  desc(DESC, 8, R0_GUEST + 0x9000, 24, VIRTQ_DESC_F.INDIRECT);
  // An indirect table inside an indirect table.
  desc(DESC, 9, R0_GUEST + 0xa000, 16, VIRTQ_DESC_F.INDIRECT);
  desc(0xa000, 0, R0_GUEST + 0x9000, 16, VIRTQ_DESC_F.INDIRECT);
  // A loop inside an indirect table: 0 → 1 → 0.
  desc(DESC, 10, R0_GUEST + 0xb000, 32, VIRTQ_DESC_F.INDIRECT);
  desc(0xb000, 0, R0_GUEST + 0x8000, 10, VIRTQ_DESC_F.NEXT, 1);
  desc(0xb000, 1, R0_GUEST + 0x8000, 10, VIRTQ_DESC_F.NEXT, 0);
  // An indirect table outside the regions.
  desc(DESC, 11, R1_GUEST + R1_SIZE - 16, 32, VIRTQ_DESC_F.INDIRECT);
  const heads = [1, 3, 4, 6, 7, 8, 9, 10, 11];
  for (const h of heads) offer(h);
  for (const h of heads) assert.equal(q.pop(), POP_SKIPPED, `chain ${h}`);
  assert.equal(q.pop(), POP_EMPTY);
  assert.equal(q.stats.descriptorLoops, 2);
  assert.equal(q.stats.badAddresses, 4);
  assert.equal(q.stats.badIndirect, 3);
  // Every chain went back, with 0 bytes written.
  assert.equal(q.usedIndex, heads.length);
  heads.forEach((h, i) => assert.deepEqual(used(i), [h, 0]));
  assert.equal(q.broken, false);
});

Deno.test("virtqueue: an index jump or a head outside the table stops the queue", () => {
  for (const kind of ["jump", "head"]) {
    const { q, d0, desc, offer } = fixture();
    desc(DESC, 0, R0_GUEST + 0x8000, 10, 0);
    if (kind === "jump") {
      offer(0);
      d0.setUint16(AVAIL + 2, NUM + 5, true);
    } else {
      offer(NUM + 3);
    }
    assert.equal(q.pop(), POP_BROKEN);
    assert.equal(q.broken, true);
    assert.equal(kind === "jump" ? q.stats.indexJumps : q.stats.badHeads, 1);
    // Even a good ring afterwards is not read: the queue is over.
    d0.setUint16(AVAIL + 2, 1, true);
    assert.equal(q.pop(), POP_BROKEN);
  }
});

Deno.test("virtqueue: rings outside the regions do not start", () => {
  const { q } = fixture();
  q.usedUser = R0_USER + R0_SIZE - 8; // 6 + 8 * NUM bytes do not fit
  assert.equal(q.start(), false);
  assert.equal(q.pop(), POP_BROKEN);
  q.usedUser = R0_USER + USED;
  q.num = 12; // not a power of two
  assert.equal(q.start(), false);
});

/** A small deterministic generator (xorshift32). */
function prng(seed: number) {
  let s = seed | 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

/** An address: mostly inside a region, sometimes near an edge, in the hole or absurd. */
function address(rand: (n: number) => number): number {
  switch (rand(6)) {
    case 0:
      return R0_GUEST + rand(R0_SIZE);
    case 1:
      return R1_GUEST + rand(R1_SIZE);
    case 2:
      return R1_GUEST + R1_SIZE - rand(64);
    case 3:
      return R0_GUEST + 0x8000 + rand(0x100);
    case 4:
      return rand(0x100000);
    default:
      return rand(2) === 0 ? 2 ** 52 + rand(1000) : R0_GUEST - rand(16);
  }
}

Deno.test("virtqueue: random rings never throw, never leave a region, always end", () => {
  const rand = prng(0x5eed);
  let skipped = 0, good = 0, broken = 0;
  for (let round = 0; round < 400; round++) {
    const { q, mem, d0, desc } = fixture();
    // Random descriptors, some pointing at indirect tables we also fill at random.
    for (let i = 0; i < NUM; i++) {
      const flags = rand(8);
      desc(
        DESC,
        i,
        address(rand),
        rand(4) === 0 ? rand(0x20000) : rand(2048),
        flags,
        rand(NUM + 2),
      );
    }
    for (let t = 0; t < 4; t++) {
      for (let i = 0; i < 8; i++) {
        desc(0x8000 + 0x100 * t, i, address(rand), rand(3000), rand(8), rand(10));
      }
    }
    const availIdx = rand(4) === 0 ? rand(0x10000) : rand(NUM + 1);
    d0.setUint16(AVAIL + 2, availIdx, true);
    for (let i = 0; i < NUM; i++) d0.setUint16(AVAIL + 4 + 2 * i, rand(NUM + 1), true);
    q.lastAvail = rand(8) === 0 ? rand(0x10000) : 0;
    for (let pops = 0;; pops++) {
      assert.ok(pops <= NUM, "a pop per available entry at most");
      const r = q.pop();
      if (r === POP_EMPTY) break;
      if (r === POP_BROKEN) {
        broken++;
        break;
      }
      if (r === POP_SKIPPED) {
        skipped++;
        continue;
      }
      good++;
      for (let s = 0; s < q.segmentCount; s++) {
        const region = mem.bytes[q.segmentRegion[s] ?? -1];
        assert.ok(region !== undefined);
        const end = (q.segmentOffset[s] ?? 0) + (q.segmentLength[s] ?? 0);
        assert.ok(end <= region.length, "segment inside its region");
      }
      q.push(r, 0);
    }
  }
  // The generator reaches every outcome.
  assert.ok(good > 0 && skipped > 0 && broken > 0, `${good} ${skipped} ${broken}`);
});

Deno.test("virtqueue: random rings through the vhost-user back-end, both ways", () => {
  const rand = prng(0xbad5eed);
  const [a, b] = sys.socketpair(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
  let framesIn = 0;
  try {
    for (let round = 0; round < 200; round++) {
      const tap = new VhostUserTap((f: PacketView) => {
        assert.ok(f.length >= 14 && f.start + f.length <= f.bytes.length);
        framesIn++;
      }, { kickChanged() {} });
      tap.fd = b; // never read: the queues are driven directly
      tap.features = OFFERED_FEATURES;
      const { mem, d0, desc } = fixture();
      const r0 = mem.bytes[0], r1 = mem.bytes[1];
      assert.ok(r0 !== undefined && r1 !== undefined);
      tap.memory.add(R0_GUEST, R0_USER, r0);
      tap.memory.add(R1_GUEST, R1_USER, r1);
      // Both queues share the rings (what a hostile guest could do too).
      for (const q of [tap.queues[RX_QUEUE], tap.queues[TX_QUEUE]]) {
        q.num = NUM;
        q.descUser = R0_USER + DESC;
        q.availUser = R0_USER + AVAIL;
        q.usedUser = R0_USER + USED;
        q.enabled = true;
        assert.ok(q.start());
      }
      for (let i = 0; i < NUM; i++) {
        desc(DESC, i, address(rand), rand(3000), rand(8), rand(NUM + 1));
      }
      d0.setUint16(AVAIL + 2, rand(NUM * 2), true);
      for (let i = 0; i < NUM; i++) d0.setUint16(AVAIL + 4 + 2 * i, rand(NUM + 1), true);
      tap.drainTx();
      tap.queues[RX_QUEUE].lastAvail = 0;
      tap.queues[RX_QUEUE].broken = false;
      for (let f = 0; f < 4; f++) {
        const out = tap.next();
        const length = 14 + rand(4000);
        out.putBytes(0, new Uint8Array(length).fill(f + 1));
        tap.queue(length);
      }
      tap.flush();
      const s = tap.stats;
      assert.equal(s.framesOut + s.dropsOut, 4, "every frame delivered or dropped");
      tap.fd = -1;
    }
  } finally {
    sys.close(a);
    sys.close(b);
  }
  assert.ok(framesIn > 0, "some random chains carried frames");
});
