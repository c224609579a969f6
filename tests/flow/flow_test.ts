/**
 * The flow table against a plain Map under a long randomized sequence of
 * inserts, lookups and removals (a fixed seed, printed; FLOW_TEST_SEED
 * replays one), and the table's eviction policy when it is full.
 */
import assert from "node:assert/strict";
import { FLOW_MAX, type FlowEvictor, FlowTable, FlowType } from "../../src/flow/flow.ts";
import { prng } from "../protocols/_frames.ts";

const TYPES = [FlowType.TCP, FlowType.UDP, FlowType.ICMP, FlowType.ICMPV6];

interface Key {
  type: number;
  guest: Uint8Array;
  guestPort: number;
  remote: Uint8Array;
  remotePort: number;
}

const keyString = (k: Key) =>
  `${k.type}|${k.guest.join(".")}|${k.guestPort}|${k.remote.join(".")}|${k.remotePort}`;

Deno.test("flow table: agrees with a Map through random inserts and removals", () => {
  const seed = Number(Deno.env.get("FLOW_TEST_SEED") ?? 0x15f10e);
  console.log(`flow table test seed: ${seed} (FLOW_TEST_SEED=${seed} replays it)`);
  const rand = prng(seed);
  const table = new FlowTable();
  const model = new Map<string, { index: number; key: Key }>();
  // A small address and port space, so keys collide in every field but one and
  // the same key comes back after removal.
  const guests4 = [[10, 0, 0, 1], [10, 0, 0, 2]].map((a) => new Uint8Array(a));
  const remotes4 = [[192, 0, 2, 1], [203, 0, 113, 9], [10, 0, 0, 1]].map((a) => new Uint8Array(a));
  const guests6 = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)];
  const remotes6 = [new Uint8Array(16).fill(3), new Uint8Array(16).fill(1)];
  const randomKey = (): Key => {
    const v6 = rand() % 2 === 0;
    const gs = v6 ? guests6 : guests4;
    const rs = v6 ? remotes6 : remotes4;
    return {
      type: TYPES[rand() % TYPES.length]!,
      guest: gs[rand() % gs.length]!,
      guestPort: rand() % 64,
      remote: rs[rand() % rs.length]!,
      remotePort: rand() % 8,
    };
  };
  // The key inside a larger buffer at an odd offset, as in a frame.
  const frame = new Uint8Array(64);
  const lookup = (k: Key) => {
    frame.set(k.guest, 3);
    frame.set(k.remote, 3 + k.guest.length);
    return table.lookup(
      k.type,
      frame,
      3,
      k.guestPort,
      frame,
      3 + k.guest.length,
      k.remotePort,
      k.guest.length,
    );
  };
  const STEPS = 200_000;
  for (let step = 0; step < STEPS; step++) {
    const k = randomKey();
    const s = keyString(k);
    const found = lookup(k);
    const expected = model.get(s);
    assert.equal(found, expected?.index ?? -1, `step ${step}: lookup of ${s} (seed ${seed})`);
    // Grow towards a third of the capacity, then hover there.
    const insert = model.size < FLOW_MAX / 3 ? rand() % 3 !== 0 : rand() % 2 === 0;
    if (insert && expected === undefined) {
      const index = table.alloc(k.type);
      assert.ok(index >= 0, `step ${step}: alloc`);
      table.setKey(index, k.guest, 0, k.guestPort, k.remote, 0, k.remotePort, k.guest.length);
      model.set(s, { index, key: k });
    } else if (!insert && model.size > 0) {
      // Remove a random live flow (not necessarily this key).
      const victim = expected ?? [...model.values()][rand() % model.size]!;
      table.free(victim.index);
      model.delete(keyString(victim.key));
    }
    if (step % 20_000 === 0) {
      assert.equal(table.count, model.size, `step ${step}: count`);
      for (const { index, key } of model.values()) {
        assert.equal(lookup(key), index, `step ${step}: every live key is found`);
        assert.equal(table.type[index], key.type);
      }
    }
  }
  for (const { index, key } of model.values()) assert.equal(lookup(key), index);
  for (const { index } of model.values()) table.free(index);
  assert.equal(table.count, 0);
});

Deno.test("flow table: an IPv4 key is found by IPv4 lookups of its protocol only", () => {
  const table = new FlowTable();
  const index = table.alloc(FlowType.UDP);
  table.setKey(
    index,
    new Uint8Array([10, 0, 0, 1]),
    0,
    1000,
    new Uint8Array([192, 0, 2, 1]),
    0,
    53,
    4,
  );
  const mapped = (a: number[]) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a]);
  assert.equal(
    table.lookup(FlowType.UDP, mapped([10, 0, 0, 1]), 0, 1000, mapped([192, 0, 2, 1]), 0, 53, 16),
    -1,
    "a v6 lookup is not a v4 flow",
  );
  assert.equal(
    table.lookup(
      FlowType.UDP,
      new Uint8Array([10, 0, 0, 1]),
      0,
      1000,
      new Uint8Array([192, 0, 2, 1]),
      0,
      53,
      4,
    ),
    index,
  );
  assert.equal(
    table.lookup(
      FlowType.TCP,
      new Uint8Array([10, 0, 0, 1]),
      0,
      1000,
      new Uint8Array([192, 0, 2, 1]),
      0,
      53,
      4,
    ),
    -1,
    "another protocol",
  );
});

Deno.test("flow table: ISN hashes differ by 4-tuple and are stable for one", () => {
  const table = new FlowTable();
  const a = table.alloc(FlowType.TCP);
  const b = table.alloc(FlowType.TCP);
  const g = new Uint8Array([10, 0, 0, 1]);
  const r = new Uint8Array([192, 0, 2, 1]);
  table.setKey(a, g, 0, 40000, r, 0, 80, 4);
  table.setKey(b, g, 0, 40001, r, 0, 80, 4);
  assert.equal(table.isnHash(a), table.isnHash(a));
  assert.notEqual(table.isnHash(a), table.isnHash(b));
});

Deno.test("flow table: a full table evicts the idlest evictable flows, never the others", () => {
  const table = new FlowTable();
  const idle = new Float64Array(FLOW_MAX).fill(-1);
  const evicted: number[] = [];
  const evictor: FlowEvictor = {
    idleFor: (i) => idle[i]!,
    evict: (i) => {
      evicted.push(i);
      table.free(i);
    },
  };
  table.evictable(FlowType.UDP, evictor);
  // 100 UDP flows, the rest TCP (never evicted).
  const udp: number[] = [];
  for (let i = 0; i < 100; i++) udp.push(table.alloc(FlowType.UDP));
  while (table.alloc(FlowType.TCP) >= 0) { /* fill */ }
  assert.equal(table.count, FLOW_MAX);
  // Nothing idle: refused, and no second scan until a free or the turn's end.
  assert.equal(table.alloc(FlowType.TCP), -1);
  idle[udp[7]!] = 5000;
  idle[udp[8]!] = 5000;
  idle[udp[9]!] = 100;
  assert.equal(table.alloc(FlowType.TCP), -1, "same turn: no new scan");
  table.endOfTurn();
  const got = table.alloc(FlowType.ICMP);
  assert.ok(got === udp[7] || got === udp[8]);
  assert.deepEqual(evicted.sort((x, y) => x - y), [udp[7]!, udp[8]!].sort((x, y) => x - y));
  assert.equal(table.evicted, 2);
  assert.equal(table.type[udp[9]!], FlowType.UDP, "less idle: stays");
  // The other freed number serves the next allocation without evicting more.
  assert.ok(table.alloc(FlowType.ICMP) >= 0);
  assert.equal(evicted.length, 2);
});

Deno.test("flow table: a share holds a kind to its part; past it, its idlest flows go", () => {
  const table = new FlowTable();
  const idle = new Float64Array(FLOW_MAX).fill(-1);
  const evictor: FlowEvictor = { idleFor: (i) => idle[i]!, evict: (i) => table.free(i) };
  table.evictable(FlowType.ICMP, evictor);
  table.share([FlowType.ICMP, FlowType.ICMPV6], 3);
  const echo = [
    table.alloc(FlowType.ICMP),
    table.alloc(FlowType.ICMPV6),
    table.alloc(FlowType.ICMP),
  ];
  assert.ok(echo.every((i) => i >= 0));
  assert.equal(table.alloc(FlowType.ICMPV6), -1, "the share is full, nothing idle");
  assert.ok(table.alloc(FlowType.TCP) >= 0, "other kinds still get flows");
  idle[echo[2]!] = 7000;
  table.endOfTurn();
  assert.equal(table.alloc(FlowType.ICMPV6), echo[2], "the idle one made room");
  assert.equal(table.type[echo[0]!], FlowType.ICMP);
  assert.equal(table.alloc(FlowType.ICMP), -1);
  table.free(echo[0]!);
  assert.ok(table.alloc(FlowType.ICMP) >= 0, "a freed number is usable at once");
});
