/**
 * Deadlines: per-object timers driven by one timerfd, without scanning.
 *
 * Theory of operation. A protocol that needs timers (retransmission, handshake
 * and idle limits for TCP flows, say) asks the loop for a `DeadlineQueue` sized
 * for its objects (flow numbers) and sets, for each object, the monotonic time
 * (ms, `sys.monotonicMs`) at which it wants to be called. The queue is a binary
 * min-heap over typed arrays, with each object's position kept beside it, so
 * setting, moving or clearing a deadline is O(log n) and allocates nothing, and
 * the earliest deadline is always at the top. The loop keeps one timerfd armed
 * for the earliest deadline of all its queues; when it fires, every object whose
 * deadline has passed is taken off its queue and handed to the queue's handler,
 * which does what is due and sets the next deadline, if any.
 *
 * Deadlines may be set early and lazily: a handler that finds nothing due (the
 * connection was active since) just sets the real next deadline. That keeps the
 * hot path cheap: traffic that only pushes a deadline later (an ACK, new data)
 * need not touch the queue at all; only what brings one earlier does. And an
 * idle program has no timer armed before the first real deadline: it does not
 * wake up to find that nothing happened.
 */

/** What a queue calls for each object whose deadline has passed; `nowMs` is the monotonic time. */
export type DeadlineHandler = (id: number, nowMs: number) => void;

/** A min-heap of deadlines (monotonic ms) keyed by object numbers 0..capacity-1. */
export class DeadlineQueue {
  /** Object numbers in heap order. */
  readonly #heap: Int32Array;
  /** Each object's index in #heap, or -1 when it has no deadline. */
  readonly #pos: Int32Array;
  /** Each object's deadline (ms); meaningful while #pos ≥ 0. */
  readonly #at: Float64Array;
  #size = 0;
  /** Called when the earliest deadline moves earlier (the loop re-arms its timer). */
  #onEarlier: () => void = () => {};
  /** Called for each expired object. */
  readonly handler: DeadlineHandler;
  /** For logs. */
  readonly name: string;

  /** A queue for objects 0..`capacity`-1 calling `handler` when their deadline passes. */
  constructor(name: string, capacity: number, handler: DeadlineHandler) {
    this.name = name;
    this.handler = handler;
    this.#heap = new Int32Array(capacity);
    this.#pos = new Int32Array(capacity).fill(-1);
    this.#at = new Float64Array(capacity);
  }

  /** Set what to call when the earliest deadline moves earlier (the loop does). */
  onEarlier(notify: () => void): void {
    this.#onEarlier = notify;
  }

  /** How many objects have a deadline. */
  get size(): number {
    return this.#size;
  }

  /** The earliest deadline (ms), or Infinity when there is none. */
  get earliest(): number {
    return this.#size === 0 ? Infinity : this.#at[this.#heap[0]!]!;
  }

  /**
   * Lower `out[0]` to the earliest deadline (ms) if that is earlier. Through a
   * typed array rather than a return value: a double returned from a call V8
   * did not inline is boxed on the heap, and the loop asks after every turn.
   */
  lowerTo(out: Float64Array): void {
    if (this.#size === 0) return;
    const at = this.#at[this.#heap[0]!]!;
    if (at < out[0]!) out[0] = at;
  }

  /** The deadline of `id` (ms), or Infinity when it has none. */
  deadline(id: number): number {
    return this.#pos[id]! < 0 ? Infinity : this.#at[id]!;
  }

  /** Set (or move) the deadline of `id` to `atMs`; Infinity clears it. */
  set(id: number, atMs: number): void {
    if (atMs === Infinity) return this.clear(id);
    const before = this.earliest;
    const pos = this.#pos[id]!;
    if (pos < 0) {
      const at = this.#size++;
      this.#heap[at] = id;
      this.#pos[id] = at;
      this.#at[id] = atMs;
      this.#up(at);
    } else {
      const old = this.#at[id]!;
      this.#at[id] = atMs;
      if (atMs < old) this.#up(pos);
      else this.#down(pos);
    }
    if (atMs < before) this.#onEarlier();
  }

  /** Set the deadline of `id` to `atMs` unless it already has an earlier one. */
  setEarlier(id: number, atMs: number): void {
    if (atMs < this.deadline(id)) this.set(id, atMs);
  }

  /** Clear the deadline of `id`, if it has one. */
  clear(id: number): void {
    const pos = this.#pos[id]!;
    if (pos < 0) return;
    this.#pos[id] = -1;
    const last = --this.#size;
    if (pos === last) return;
    const moved = this.#heap[last]!;
    this.#heap[pos] = moved;
    this.#pos[moved] = pos;
    this.#up(pos);
    this.#down(this.#pos[moved]!);
  }

  /**
   * Hand every object whose deadline is at or before `nowMs` to the handler,
   * each at most once per call (a handler that sets a deadline in the past is
   * called again on the next run, not in a loop). Returns how many.
   */
  expire(nowMs: number): number {
    let n = 0;
    for (let budget = this.#size; budget > 0 && this.#size > 0; budget--) {
      const id = this.#heap[0]!;
      if (this.#at[id]! > nowMs) break;
      this.clear(id);
      this.handler(id, nowMs);
      n++;
    }
    return n;
  }

  #up(i: number): void {
    const heap = this.#heap;
    const id = heap[i]!;
    const at = this.#at[id]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (this.#at[p]! <= at) break;
      heap[i] = p;
      this.#pos[p] = i;
      i = parent;
    }
    heap[i] = id;
    this.#pos[id] = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const size = this.#size;
    const id = heap[i]!;
    const at = this.#at[id]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && this.#at[heap[right]!]! < this.#at[heap[child]!]!) child = right;
      const c = heap[child]!;
      if (this.#at[c]! >= at) break;
      heap[i] = c;
      this.#pos[c] = i;
      i = child;
    }
    heap[i] = id;
    this.#pos[id] = i;
  }
}
