/**
 * The deadline queue (src/timers.ts) against a plain Map under a random
 * sequence of sets, moves, clears and expiries (the seed is printed, and
 * TIMERS_SEED replays one), and the loop's one timerfd firing for the earliest
 * deadline of several queues, in order, without a periodic tick.
 */
import assert from "node:assert/strict";
import { DeadlineQueue } from "../src/timers.ts";
import { EventLoop } from "../src/loop.ts";
import * as sys from "../src/ffi/sys.ts";

/** xorshift32: a small deterministic generator for replayable sequences. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

Deno.test("timers: the deadline queue agrees with a Map under random operations", () => {
  const seed = Number(Deno.env.get("TIMERS_SEED") ?? (Date.now() % 1_000_000_007));
  console.error(`timers_test seed: ${seed} (TIMERS_SEED=${seed} replays it)`);
  const random = rng(seed);
  const capacity = 257;
  const model = new Map<number, number>();
  const fired: number[] = [];
  const queue = new DeadlineQueue("test", capacity, (id) => fired.push(id));
  let now = 0;
  for (let step = 0; step < 50_000; step++) {
    const id = Math.floor(random() * capacity);
    const r = random();
    if (r < 0.45) {
      const at = now + Math.floor(random() * 1000);
      queue.set(id, at);
      model.set(id, at);
    } else if (r < 0.6) {
      const at = now + Math.floor(random() * 1000);
      queue.setEarlier(id, at);
      if (at < (model.get(id) ?? Infinity)) model.set(id, at);
    } else if (r < 0.8) {
      queue.clear(id);
      model.delete(id);
    } else {
      now += Math.floor(random() * 200);
      fired.length = 0;
      const n = queue.expire(now);
      const due = [...model].filter(([, at]) => at <= now);
      assert.equal(n, due.length, `step ${step}, seed ${seed}`);
      // In deadline order (ties in any order).
      const order = fired.map((f) => model.get(f)!);
      assert.deepEqual(order, [...order].sort((a, b) => a - b), `step ${step}, seed ${seed}`);
      assert.deepEqual(
        [...fired].sort((a, b) => a - b),
        due.map(([i]) => i).sort((a, b) => a - b),
        `step ${step}, seed ${seed}`,
      );
      for (const f of fired) model.delete(f);
    }
    assert.equal(queue.size, model.size, `step ${step}, seed ${seed}`);
    const earliest = model.size === 0 ? Infinity : Math.min(...model.values());
    assert.equal(queue.earliest, earliest, `step ${step}, seed ${seed}`);
    assert.equal(queue.deadline(id), model.get(id) ?? Infinity, `step ${step}, seed ${seed}`);
  }
});

Deno.test("timers: a handler setting a past deadline runs once per expiry, not in a loop", () => {
  let calls = 0;
  const queue = new DeadlineQueue("test", 4, (id, now) => {
    calls++;
    queue.set(id, now - 1);
  });
  queue.set(2, 5);
  assert.equal(queue.expire(10), 1);
  assert.equal(calls, 1);
  assert.equal(queue.deadline(2), 9);
});

Deno.test("timers: the loop's timerfd fires each queue's deadlines in order, then sleeps", () => {
  const loop = new EventLoop();
  try {
    const fired: string[] = [];
    const start = sys.monotonicMs();
    const a = loop.deadlines("a", 8, (id) => fired.push(`a${id}`));
    const b = loop.deadlines("b", 8, (id) => fired.push(`b${id}`));
    a.set(1, start + 60);
    b.set(3, start + 20);
    a.set(5, start + 40);
    const deadline = Date.now() + 3000;
    while (fired.length < 3 && Date.now() < deadline) loop.run(200, 1);
    assert.deepEqual(fired, ["b3", "a5", "a1"]);
    assert.ok(sys.monotonicMs() - start >= 60, "fired before the last deadline");
    // Nothing due: the loop waits out its whole timeout with no event.
    const turns = loop.stats.events;
    loop.run(100, 1);
    loop.run(100, 1);
    assert.ok(loop.stats.events - turns <= 1, "woke up with no deadline set");
  } finally {
    loop.close();
  }
});
