/**
 * The namespace thread's side (runs inside a Deno Worker). See ns_thread.ts.
 *
 * It joins the target network namespace with setns(CLONE_NEWNET), which affects
 * only this thread, and then serves requests from the main thread: each request
 * creates a descriptor in the target namespace (a socket, an opened file such as
 * /proc/net/tcp, a tap device). Descriptors belong to the process, so the main
 * thread uses them directly; the namespace they live in was fixed at creation.
 */
import { refreshErrnoLocation } from "../ffi/errno.ts";
import { CLONE, IFF, IOCTL, O } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { NS_TEXT_OFFSET, NS_TEXT_SIZE, NsOp, NsSlot, NsState } from "./ns_protocol.ts";

refreshErrnoLocation();

const decoder = new TextDecoder();

function text(bytes: Uint8Array, length: number): string {
  return decoder.decode(
    bytes.slice(NS_TEXT_OFFSET, NS_TEXT_OFFSET + Math.min(length, NS_TEXT_SIZE)),
  );
}

/** Perform one request; returns the result (>= 0) or -errno. */
function perform(ctl: Int32Array, bytes: Uint8Array): number {
  try {
    switch (ctl[NsSlot.OP]) {
      case NsOp.SOCKET: {
        const r = sys.trySocket(ctl[NsSlot.A0]!, ctl[NsSlot.A1]!, ctl[NsSlot.A2]!);
        return r;
      }
      case NsOp.OPEN:
        return sys.tryOpen(text(bytes, ctl[NsSlot.A1]!), ctl[NsSlot.A0]!, 0o644);
      case NsOp.TAP: {
        const fd = sys.open("/dev/net/tun", O.RDWR | O.NONBLOCK | O.CLOEXEC);
        const req = sys.ifreq(text(bytes, ctl[NsSlot.A1]!));
        new DataView(req.buffer).setUint16(16, IFF.TAP | IFF.NO_PI | ctl[NsSlot.A0]!, true);
        try {
          sys.ioctl(fd, IOCTL.TUNSETIFF, req, "TUNSETIFF");
        } catch (e) {
          sys.close(fd);
          throw e;
        }
        // The kernel may have completed a name pattern: hand the final name back.
        const end = req.indexOf(0);
        const name = req.subarray(0, end < 0 ? 16 : end);
        bytes.set(name, NS_TEXT_OFFSET);
        ctl[NsSlot.A1] = name.length;
        return fd;
      }
      default:
        return -sys.Errno.EINVAL;
    }
  } catch (e) {
    return e instanceof sys.SysError ? -e.errno : -sys.Errno.EINVAL;
  }
}

/** What the main thread sends once, at start. */
interface NsStart {
  buffer: SharedArrayBuffer;
  netnsFd: number;
}

globalThis.addEventListener("message", (message: Event) => {
  const event = message as MessageEvent<NsStart>;
  const ctl = new Int32Array(event.data.buffer, 0, NsSlot.COUNT);
  const bytes = new Uint8Array(event.data.buffer);
  let joined = 0;
  try {
    sys.setns(event.data.netnsFd, CLONE.NEWNET, "target network namespace");
  } catch (e) {
    joined = e instanceof sys.SysError ? -e.errno : -sys.Errno.EINVAL;
  }
  ctl[NsSlot.RESULT] = joined;
  Atomics.store(ctl, NsSlot.STATE, NsState.DONE);
  Atomics.notify(ctl, NsSlot.STATE);
  if (joined < 0) return;
  for (;;) {
    Atomics.wait(ctl, NsSlot.STATE, NsState.DONE);
    const state = Atomics.load(ctl, NsSlot.STATE);
    if (state === NsState.EXIT) break;
    if (state !== NsState.REQUEST) continue;
    ctl[NsSlot.RESULT] = perform(ctl, bytes);
    Atomics.store(ctl, NsSlot.STATE, NsState.DONE);
    Atomics.notify(ctl, NsSlot.STATE);
  }
  globalThis.close();
});
