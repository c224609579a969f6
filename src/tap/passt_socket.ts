/**
 * passt's listening UNIX domain socket: where qemu connects.
 *
 * Theory of operation: with `-s PATH` we bind exactly there (replacing a stale
 * socket file nobody accepts on); otherwise we probe /tmp/passt_1.socket …
 * /tmp/passt_64.socket and take the first one that nothing accepts connections
 * on. "Free" is decided by trying to connect: a refused connection means a stale
 * file from an earlier run, which we remove and reuse.
 */
import { AF, SOCK } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";

/** How many default socket paths are probed. */
export const SOCKET_PROBE_MAX = 64;

/** The default socket path number `n` (1-based). */
export function defaultSocketPath(n: number): string {
  return `/tmp/passt_${n}.socket`;
}

/** A bound, listening socket and its path. */
export interface PasstListener {
  /** The listening descriptor (nonblocking). */
  readonly fd: number;
  /** Filesystem path it is bound to. */
  readonly path: string;
}

/** Whether something accepts connections on the UNIX socket at `path`. */
function inUse(path: string): boolean {
  const probe = sys.socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0);
  try {
    const addr = sys.sockaddrUn(path);
    return sys.connect(probe, addr, addr.length) === 0;
  } finally {
    sys.close(probe);
  }
}

function bindAt(path: string): PasstListener | number {
  if (inUse(path)) return -sys.Errno.EADDRINUSE;
  const fd = sys.socket(AF.UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  const addr = sys.sockaddrUn(path);
  sys.unlink(path); // a stale file: nothing accepted on it
  const r = sys.tryBind(fd, addr, addr.length);
  if (r < 0) {
    sys.close(fd);
    return r;
  }
  sys.listen(fd, 1);
  return { fd, path };
}

/**
 * Bind the socket qemu connects to: at `path` if given, else at the first free
 * default path. Throws an Error with a clear message if none can be bound.
 */
export function openPasstListener(path: string | undefined): PasstListener {
  if (path !== undefined) {
    const r = bindAt(path);
    if (typeof r === "number") {
      throw new Error(`cannot bind UNIX domain socket at ${path}: ${sys.errnoMessage(-r)}`);
    }
    return r;
  }
  for (let n = 1; n <= SOCKET_PROBE_MAX; n++) {
    const r = bindAt(defaultSocketPath(n));
    if (typeof r !== "number") return r;
  }
  throw new Error(
    `no free UNIX domain socket path between ${defaultSocketPath(1)} and ` +
      `${defaultSocketPath(SOCKET_PROBE_MAX)}`,
  );
}

/** The lines telling the user how to connect qemu to `path`. */
export function qemuHint(path: string): string[] {
  return [
    `UNIX domain socket bound at ${path}`,
    "You can now start qemu (>= 7.2, with virtio-net), for example:",
    `    qemu-system-$(uname -m) ... -device virtio-net-pci,netdev=s ` +
    `-netdev stream,id=s,server=off,addr.type=unix,addr.path=${path}`,
  ];
}

/** Remove the socket file (at exit). */
export function removePasstListener(listener: PasstListener): void {
  sys.close(listener.fd);
  sys.unlink(listener.path);
}
