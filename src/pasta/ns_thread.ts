/**
 * A thread living in the target network namespace, for the few things that must
 * be done there.
 *
 * Theory of operation: which network namespace a socket, a tap device or an
 * opened /proc/net file belongs to is decided by the namespace of the thread
 * that creates it, and stays with the descriptor. setns(CLONE_NEWNET) switches
 * only the calling thread, and switching back to the initial namespace needs
 * privileges an unprivileged pasta does not have there. So pasta keeps its main
 * thread in its own namespace for good and starts one raw thread (ffi/ns_stub.ts:
 * machine code, no second JavaScript runtime) that joins the target namespace
 * for good and makes the system calls that create descriptors there: socket(),
 * openat(). The main thread waits for each answer: a synchronous round trip of a
 * few microseconds, used at start and for per-connection sockets of the local
 * fast path. A tap device belongs to the namespace /dev/net/tun was opened in,
 * so only that open needs the thread; TUNSETIFF runs here.
 */
import { SysError } from "../ffi/errno.ts";
import { CLONE, IFF, IOCTL, O, SYS } from "../ffi/layout.ts";
import { NS_STUB_DATA_SIZE, SyscallThread } from "../ffi/ns_stub.ts";
import { THREAD_SIGNAL } from "../ffi/thread_stub.ts";
import * as sys from "../ffi/sys.ts";

/** How long to wait for the namespace thread before declaring it stuck (ms). */
const REPLY_TIMEOUT_MS = 10_000;
/** openat(2)'s "relative to the working directory". */
const AT_FDCWD = -100;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The main thread's handle on the namespace thread. */
export class NsThread {
  readonly #thread: SyscallThread;
  #closed = false;

  /**
   * Start the thread and have it join the network namespace open at `netnsFd`.
   * Throws a SysError if it can't (e.g. EPERM without the needed privileges).
   */
  constructor(netnsFd: number) {
    this.#thread = new SyscallThread(THREAD_SIGNAL, REPLY_TIMEOUT_MS);
    const joined = this.#thread.call(SYS.setns, netnsFd, CLONE.NEWNET);
    if (joined < 0) {
      this.close();
      throw new SysError("setns", -joined, "target network namespace");
    }
  }

  /** socket(2) in the target namespace: the fd, or -errno. */
  socket(domain: number, type: number, protocol: number): number {
    if (this.#closed) throw new Error("namespace thread closed");
    return this.#thread.call(SYS.socket, domain, type, protocol);
  }

  /**
   * open(2) of `path` from the target namespace: the fd, or -errno. Per-namespace
   * proc files must be named through /proc/thread-self/net/…: /proc/net follows the
   * process (its main thread), not the calling thread.
   */
  open(path: string, flags: number): number {
    if (this.#closed) throw new Error("namespace thread closed");
    const data = this.#thread.data;
    const { written } = encoder.encodeInto(path, data);
    if (written === undefined || written >= NS_STUB_DATA_SIZE - 1) {
      throw new Error(`name too long: ${path}`);
    }
    data[written] = 0;
    return this.#thread.call(SYS.openat, AT_FDCWD, this.#thread.dataAddress, flags, 0o644);
  }

  /**
   * Create a tap device named `name` (IFF_TAP | IFF_NO_PI | `extraFlags`) in the
   * target namespace: its fd (nonblocking) and final name. Throws on failure.
   */
  openTap(name: string, extraFlags = 0): { fd: number; name: string } {
    const fd = this.open("/dev/net/tun", O.RDWR | O.NONBLOCK | O.CLOEXEC);
    if (fd < 0) throw new SysError("open", -fd, "/dev/net/tun");
    const req = sys.ifreq(name);
    new DataView(req.buffer).setUint16(16, IFF.TAP | IFF.NO_PI | extraFlags, true);
    const r = sys.tryIoctl(fd, BigInt(IOCTL.TUNSETIFF), req);
    if (r < 0) {
      sys.close(fd);
      throw new SysError("TUNSETIFF", -r, `tap device ${name}`);
    }
    // The kernel may have completed a name pattern: the final name.
    const end = req.indexOf(0);
    return { fd, name: decoder.decode(req.subarray(0, end < 0 ? 16 : end)) };
  }

  /** Stop the thread. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#thread.exit();
  }
}
