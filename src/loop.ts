/**
 * The event loop: one synchronous epoll_wait loop that drives every handler.
 *
 * Theory of operation: every descriptor is registered with a 64-bit epoll
 * reference that says what it is, so dispatch needs no lookup by fd:
 *   low 32 bits:  kind (8 bits) | index (24 bits)   — which handler, which object
 *   high 32 bits: the descriptor itself
 * Handlers are registered per kind once, at start (`defineKind`). The loop reads
 * up to EVENTS_MAX events from a preallocated buffer, calls each kind's handler
 * with (index, events, fd), and after every turn runs the "end of turn" hooks
 * that flush batched work (frames queued for the tap, for instance).
 *
 * Per-object deadlines (`deadlines`, src/timers.ts) share one timerfd, armed
 * after each turn for the earliest deadline of all queues, so nothing scans
 * objects on a period and an idle loop sleeps until something is due.
 *
 * Time and signals are descriptors too: `addTimer` wraps a timerfd and
 * `addSignals` a signalfd (the signals must already be blocked in every thread;
 * see process.ts), so nothing here uses Deno's own event loop or any await.
 * Handlers must not throw: an exception escaping one is logged and counted, and
 * the loop goes on; the data path reports failures as return values.
 */
import {
  CLOCK,
  EPOLL,
  EPOLL_EVENT_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  SFD,
  SIGNALFD_SIGINFO,
  SIGNALFD_SIGINFO_SIZE,
  TFD,
} from "./ffi/layout.ts";
import * as sys from "./ffi/sys.ts";
import { type DeadlineHandler, DeadlineQueue } from "./timers.ts";

/** How many events one epoll_wait call may return. */
export const EVENTS_MAX = 256;
/** The largest index a reference can carry (24 bits). */
export const INDEX_MAX = 0xffffff;
/** The largest number of kinds (8 bits). */
const KINDS_MAX = 256;
/** Indices into EventLoop's deadline times (EARLIEST at 0: DeadlineQueue.lowerTo writes there). */
const EARLIEST = 0;
const ARMED_AT = 1;

/** A handler for one kind of descriptor: `index` is the caller's object number. */
export type EventHandler = (index: number, events: number, fd: number) => void;

/** Something that happened to a signal descriptor. */
export interface SignalInfo {
  /** Signal number. */
  signo: number;
  /** Sending (or, for SIGCHLD, exiting) process. */
  pid: number;
}

/** Counters a test or a debug log can read. */
export interface LoopStats {
  /** epoll_wait calls that returned. */
  turns: number;
  /** Events dispatched. */
  events: number;
  /** Exceptions thrown by handlers (each also logged). */
  handlerErrors: number;
}

/** One epoll instance and its dispatch table. */
export class EventLoop {
  readonly #epfd: number;
  readonly #events = sys.pinnedBuffer(EVENTS_MAX * EPOLL_EVENT_SIZE);
  readonly #view = new DataView(this.#events.buffer);
  readonly #handlers: (EventHandler | undefined)[] = new Array(KINDS_MAX).fill(undefined);
  readonly #kindNames: string[] = [];
  readonly #endOfTurn: (() => void)[] = [];
  readonly #owned: number[] = [];
  #running = false;
  #exitCode = 0;
  readonly #queues: DeadlineQueue[] = [];
  #deadlineFd = -1;
  /**
   * [EARLIEST]: scratch; [ARMED_AT]: when the deadline timerfd fires (monotonic
   * ms), Infinity when not armed. Doubles in a typed array, not fields or return
   * values, so the check after every turn allocates nothing.
   */
  readonly #deadlineTimes = new Float64Array([Infinity, Infinity]);
  #deadlinesMoved = false;
  readonly #deadlineCount = sys.pinnedBuffer(8);
  #onError: (kind: string, error: unknown) => void = () => {};

  /** Counters for tests and debugging. */
  readonly stats: LoopStats = { turns: 0, events: 0, handlerErrors: 0 };
  /** Events dispatched per kind (index: kind number), for --stats. */
  readonly eventsByKind: Float64Array = new Float64Array(KINDS_MAX);

  /** Name of descriptor kind `kind` as given to `defineKind`. */
  kindName(kind: number): string {
    return this.#kindNames[kind] ?? String(kind);
  }

  /** How many kinds are defined (kind numbers 0 .. kindCount - 1). */
  get kindCount(): number {
    return this.#kindNames.length;
  }

  constructor() {
    this.#epfd = sys.epollCreate(EPOLL.CLOEXEC);
  }

  /** The epoll descriptor (for tests). */
  get fd(): number {
    return this.#epfd;
  }

  /** Report exceptions escaping handlers through `report` (the logger, normally). */
  onHandlerError(report: (kind: string, error: unknown) => void): void {
    this.#onError = report;
  }

  /** Register the handler for a new kind of descriptor; returns the kind number. */
  defineKind(name: string, handler: EventHandler): number {
    const kind = this.#kindNames.length;
    if (kind >= KINDS_MAX) throw new Error("too many descriptor kinds");
    this.#kindNames.push(name);
    this.#handlers[kind] = handler;
    return kind;
  }

  /** Run `hook` after every turn of the loop (batch flushes). */
  addEndOfTurn(hook: () => void): void {
    this.#endOfTurn.push(hook);
  }

  /**
   * Watch `fd` for `events` (EPOLL.* bits), dispatching to `kind` with `index`.
   * Returns 0 or -errno (e.g. -EEXIST, -ENOMEM): the caller decides.
   */
  add(fd: number, kind: number, index: number, events: number): number {
    return sys.epollCtl(this.#epfd, EPOLL.CTL_ADD, fd, events, refLow(kind, index), fd);
  }

  /** Change the events or the reference of a watched descriptor. Returns 0 or -errno. */
  modify(fd: number, kind: number, index: number, events: number): number {
    return sys.epollCtl(this.#epfd, EPOLL.CTL_MOD, fd, events, refLow(kind, index), fd);
  }

  /** Stop watching `fd` (closing it does that too). Returns 0 or -errno. */
  remove(fd: number): number {
    return sys.epollCtl(this.#epfd, EPOLL.CTL_DEL, fd, 0, 0, 0);
  }

  /**
   * A periodic timer every `intervalMs` (first expiry after the same delay) that
   * calls `tick(expirations)`. Returns the timerfd, owned by the loop.
   */
  addTimer(name: string, intervalMs: number, tick: (expirations: number) => void): number {
    const fd = sys.timerfdCreate(CLOCK.MONOTONIC, TFD.NONBLOCK | TFD.CLOEXEC);
    this.#owned.push(fd);
    const count = sys.pinnedBuffer(8);
    const countView = new DataView(count.buffer);
    const kind = this.defineKind(`timer:${name}`, () => {
      if (sys.read(fd, count, 8) === 8) tick(countView.getUint32(0, true));
    });
    sys.timerfdSet(fd, intervalMs, intervalMs);
    this.#mustAdd(fd, kind, 0, EPOLL.IN);
    return fd;
  }

  /**
   * A queue of per-object deadlines for objects 0..`capacity`-1 (flow numbers):
   * `onExpire(id, nowMs)` runs when an object's deadline passes. All queues share
   * one timerfd, armed for the earliest deadline after every turn.
   */
  deadlines(name: string, capacity: number, onExpire: DeadlineHandler): DeadlineQueue {
    if (this.#deadlineFd < 0) {
      const fd = sys.timerfdCreate(CLOCK.MONOTONIC, TFD.NONBLOCK | TFD.CLOEXEC);
      this.#owned.push(fd);
      this.#deadlineFd = fd;
      this.#mustAdd(fd, this.defineKind("deadlines", this.#onDeadlines), 0, EPOLL.IN);
    }
    const queue = new DeadlineQueue(name, capacity, onExpire);
    queue.onEarlier(this.#markDeadlinesMoved);
    this.#queues.push(queue);
    return queue;
  }

  readonly #markDeadlinesMoved = (): void => {
    this.#deadlinesMoved = true;
  };

  readonly #onDeadlines = (): void => {
    sys.read(this.#deadlineFd, this.#deadlineCount, 8);
    this.#deadlineTimes[ARMED_AT] = Infinity;
    this.#deadlinesMoved = true;
    const now = sys.monotonicMs();
    for (const queue of this.#queues) queue.expire(now);
  };

  /** After a turn: arm the timerfd for the earliest deadline if that moved earlier. */
  #armDeadlines(): void {
    this.#deadlinesMoved = false;
    const times = this.#deadlineTimes;
    times[EARLIEST] = Infinity;
    for (const queue of this.#queues) queue.lowerTo(times);
    const earliest = times[EARLIEST]!;
    // A later or no deadline leaves the timer as it is: one wake-up for nothing,
    // then it is armed right, rather than a system call per pushed-back deadline.
    if (earliest >= times[ARMED_AT]!) return;
    const r = sys.tryTimerfdSet(this.#deadlineFd, Math.max(earliest - sys.monotonicMs(), 0.001), 0);
    if (r < 0) throw new sys.SysError("timerfd_settime", -r);
    times[ARMED_AT] = earliest;
  }

  /**
   * Deliver `signals` through a signalfd to `onSignal`. The signals must be
   * blocked in every thread of the process beforehand, or the kernel may act on
   * them elsewhere. Returns the signalfd, owned by the loop.
   */
  addSignals(signals: readonly number[], onSignal: (info: SignalInfo) => void): number {
    const fd = sys.signalfd(signals, SFD.NONBLOCK | SFD.CLOEXEC);
    this.#owned.push(fd);
    const buf = sys.pinnedBuffer(SIGNALFD_SIGINFO_SIZE);
    const view = new DataView(buf.buffer);
    const info: SignalInfo = { signo: 0, pid: 0 };
    const kind = this.defineKind("signal", () => {
      // Several signals may be pending: drain them, bounded by the kinds that exist.
      for (let i = 0; i < 64; i++) {
        if (sys.read(fd, buf, SIGNALFD_SIGINFO_SIZE) !== SIGNALFD_SIGINFO_SIZE) return;
        info.signo = view.getUint32(SIGNALFD_SIGINFO.signo, true);
        info.pid = view.getUint32(SIGNALFD_SIGINFO.pid, true);
        onSignal(info);
      }
    });
    this.#mustAdd(fd, kind, 0, EPOLL.IN);
    return fd;
  }

  /**
   * Watch `fd`, which the loop now owns (closed with it), for EPOLLIN under a
   * kind of its own: `onReady` runs when it is readable. For one-off descriptors
   * (a pidfd, an inotify instance), not for flows.
   */
  addReadable(name: string, fd: number, onReady: () => void): void {
    this.#owned.push(fd);
    this.#mustAdd(fd, this.defineKind(name, onReady), 0, EPOLL.IN);
  }

  #mustAdd(fd: number, kind: number, index: number, events: number): void {
    const r = this.add(fd, kind, index, events);
    if (r < 0) throw new sys.SysError("epoll_ctl", -r);
  }

  /** Ask `run` to return `exitCode` once the current turn is over. */
  stop(exitCode = 0): void {
    this.#exitCode = exitCode;
    this.#running = false;
  }

  /** Whether the loop is running. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Wait for and dispatch events until `stop` is called; returns its exit code.
   * `timeoutMs` bounds each wait (-1: forever), `maxTurns` the number of turns
   * (tests use both to bound a run).
   */
  run(timeoutMs = -1, maxTurns = Infinity): number {
    this.#running = true;
    const view = this.#view;
    const handlers = this.#handlers;
    if (this.#deadlinesMoved) this.#armDeadlines();
    for (let turn = 0; this.#running && turn < maxTurns; turn++) {
      const n = sys.epollWait(this.#epfd, this.#events, EVENTS_MAX, timeoutMs);
      if (n < 0) {
        if (n === -sys.Errno.EINTR) continue;
        throw new sys.SysError("epoll_wait", -n);
      }
      this.stats.turns++;
      for (let i = 0; i < n; i++) {
        const base = i * EPOLL_EVENT_SIZE;
        const events = view.getUint32(base, true);
        const low = view.getUint32(base + EPOLL_EVENT_DATA_OFFSET, true);
        const fd = view.getInt32(base + EPOLL_EVENT_DATA_OFFSET + 4, true);
        const kind = low >>> 24;
        const handler = handlers[kind];
        this.stats.events++;
        this.eventsByKind[kind]!++;
        if (handler === undefined) continue;
        try {
          handler(low & INDEX_MAX, events, fd);
        } catch (e) {
          this.stats.handlerErrors++;
          this.#onError(this.#kindNames[kind] ?? String(kind), e);
        }
      }
      for (const hook of this.#endOfTurn) {
        try {
          hook();
        } catch (e) {
          this.stats.handlerErrors++;
          this.#onError("end-of-turn", e);
        }
      }
      if (this.#deadlinesMoved) this.#armDeadlines();
    }
    this.#running = false;
    return this.#exitCode;
  }

  /** Close the epoll descriptor and the timer/signal descriptors the loop made. */
  close(): void {
    for (const fd of this.#owned) sys.close(fd);
    this.#owned.length = 0;
    sys.close(this.#epfd);
  }
}

function refLow(kind: number, index: number): number {
  if (index < 0 || index > INDEX_MAX) throw new RangeError(`epoll reference index ${index}`);
  return ((kind << 24) | index) >>> 0;
}
