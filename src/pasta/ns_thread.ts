/**
 * A thread living in the target network namespace, for the few things that must
 * be done there.
 *
 * Theory of operation: which network namespace a socket, a tap device or an
 * opened /proc/net file belongs to is decided by the namespace of the thread
 * that creates it, and stays with the descriptor. setns(CLONE_NEWNET) switches
 * only the calling thread, and switching back to the initial namespace needs
 * privileges an unprivileged pasta does not have there. So pasta keeps its main
 * thread in its own namespace for good and starts one Deno Worker (an OS thread)
 * that joins the target namespace for good. The main thread asks it, through a
 * SharedArrayBuffer and Atomics.wait/notify, to create descriptors, and waits for
 * the answer: a synchronous round trip of some tens of microseconds, used at
 * start and for per-connection sockets of the local fast path.
 */
import { SysError } from "../ffi/errno.ts";
import {
  NS_BLOCK_SIZE,
  NS_TEXT_OFFSET,
  NS_TEXT_SIZE,
  NsOp,
  NsSlot,
  NsState,
} from "./ns_protocol.ts";

/** How long to wait for the namespace thread before declaring it stuck (ms). */
const REPLY_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The main thread's handle on the namespace thread. */
export class NsThread {
  readonly #worker: Worker;
  readonly #ctl: Int32Array;
  readonly #bytes: Uint8Array;
  #closed = false;

  /**
   * Start the thread and have it join the network namespace open at `netnsFd`.
   * Throws a SysError if it can't (e.g. EPERM without the needed privileges).
   */
  constructor(netnsFd: number) {
    const buffer = new SharedArrayBuffer(NS_BLOCK_SIZE);
    this.#ctl = new Int32Array(buffer, 0, NsSlot.COUNT);
    this.#bytes = new Uint8Array(buffer);
    this.#worker = new Worker(new URL("./ns_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.postMessage({ buffer, netnsFd });
    if (Atomics.wait(this.#ctl, NsSlot.STATE, NsState.IDLE, REPLY_TIMEOUT_MS) === "timed-out") {
      this.#worker.terminate();
      throw new Error("the namespace thread did not start");
    }
    const joined = this.#ctl[NsSlot.RESULT]!;
    if (joined < 0) {
      this.#worker.terminate();
      throw new SysError("setns", -joined, "target network namespace");
    }
  }

  #request(op: number, a0: number, a1: number, a2: number): number {
    if (this.#closed) throw new Error("namespace thread closed");
    const ctl = this.#ctl;
    ctl[NsSlot.OP] = op;
    ctl[NsSlot.A0] = a0;
    ctl[NsSlot.A1] = a1;
    ctl[NsSlot.A2] = a2;
    Atomics.store(ctl, NsSlot.STATE, NsState.REQUEST);
    Atomics.notify(ctl, NsSlot.STATE);
    if (Atomics.wait(ctl, NsSlot.STATE, NsState.REQUEST, REPLY_TIMEOUT_MS) === "timed-out") {
      throw new Error("the namespace thread did not answer");
    }
    return ctl[NsSlot.RESULT]!;
  }

  #putText(text: string): number {
    const bytes = encoder.encode(text);
    if (bytes.length >= NS_TEXT_SIZE) throw new Error(`name too long: ${text}`);
    this.#bytes.set(bytes, NS_TEXT_OFFSET);
    return bytes.length;
  }

  /** socket(2) in the target namespace: the fd, or -errno. */
  socket(domain: number, type: number, protocol: number): number {
    return this.#request(NsOp.SOCKET, domain, type, protocol);
  }

  /**
   * open(2) of `path` from the target namespace: the fd, or -errno. Per-namespace
   * proc files must be named through /proc/thread-self/net/…: /proc/net follows the
   * process (its main thread), not the calling thread.
   */
  open(path: string, flags: number): number {
    return this.#request(NsOp.OPEN, flags, this.#putText(path), 0);
  }

  /**
   * Create a tap device named `name` (IFF_TAP | IFF_NO_PI | `extraFlags`) in the
   * target namespace: its fd (nonblocking) and final name. Throws on failure.
   */
  openTap(name: string, extraFlags = 0): { fd: number; name: string } {
    const fd = this.#request(NsOp.TAP, extraFlags, this.#putText(name), 0);
    if (fd < 0) throw new SysError("TUNSETIFF", -fd, `tap device ${name}`);
    const length = this.#ctl[NsSlot.A1]!;
    const final = decoder.decode(this.#bytes.slice(NS_TEXT_OFFSET, NS_TEXT_OFFSET + length));
    return { fd, name: final };
  }

  /** Stop the thread. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#ctl, NsSlot.STATE, NsState.EXIT);
    Atomics.notify(this.#ctl, NsSlot.STATE);
    this.#worker.terminate();
  }
}
