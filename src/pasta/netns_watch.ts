/**
 * Knowing when the namespace pasta serves goes away (unless --no-netns-quit).
 *
 * Theory of operation. The worker may run in an empty root (sandbox.ts), so it
 * can't look paths up while it runs: whatever tells it is set up at start and
 * then only read.
 * - A PID target (`pasta PID`, or a `/proc/PID/ns/net` path): a pidfd of that
 *   process, readable once it has exited.
 * - A namespace file (`--netns PATH|NAME`): an inotify watch on its directory,
 *   which reports the file's removal or renaming by name, and the directory's
 *   own removal or unmounting.
 * Either calls `onGone` with a line for the log, once. The target may have gone
 * while we were setting up, before the watch existed: so once it does, the
 * target is looked up one last time, and if it is gone already the reason is
 * returned instead.
 */
import { IN } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import type { EventLoop } from "../loop.ts";

/** struct inotify_event: wd @0, mask @4, cookie @8, len @12, name @16. */
const INOTIFY_EVENT = { mask: 4, len: 12, name: 16 } as const;
/** The watch was removed (the directory deleted or its file system unmounted). */
const IN_IGNORED = 0x8000;
/** The directory's file system was unmounted. */
const IN_UNMOUNT = 0x2000;

/** The PID a `/proc/PID/ns/...` path names, or undefined. */
export function procPid(path: string): number | undefined {
  const m = path.match(/^\/proc\/(\d+)\/ns\/[a-z_]+$/);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Call `onGone(reason)` from `loop` when the process `pid` exits, or, without a
 * PID, when the file `path` is removed. Returns the reason if that happened
 * already, undefined otherwise. Throws if the watch can't be set up.
 */
export function watchNamespace(
  loop: EventLoop,
  pid: number | undefined,
  path: string,
  onGone: (reason: string) => void,
): string | undefined {
  let told = false;
  const tell = (reason: string) => {
    if (told) return;
    told = true;
    onGone(reason);
  };
  pid ??= procPid(path);
  if (pid !== undefined) {
    const where = `/proc/${pid} is gone`;
    let fd: number;
    try {
      fd = sys.pidfdOpen(pid);
    } catch (e) {
      if (e instanceof sys.SysError && e.errno === sys.Errno.ESRCH) return where;
      throw e;
    }
    loop.addReadable("netns-pid", fd, () => tell(where));
    // An exited process not yet reaped by its parent: its pidfd is readable now.
    return sys.pollReadable(fd) ? where : undefined;
  }
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const name = path.slice(slash + 1);
  const fd = sys.inotifyInit(IN.NONBLOCK | IN.CLOEXEC);
  try {
    sys.inotifyAddWatch(fd, dir, IN.DELETE | IN.MOVED_FROM | IN.DELETE_SELF | IN.MOVE_SELF);
  } catch (e) {
    sys.close(fd);
    throw e;
  }
  const buf = new Uint8Array(4096);
  const view = new DataView(buf.buffer);
  const decoder = new TextDecoder();
  loop.addReadable("netns-file", fd, () => {
    for (let rounds = 0; rounds < 64; rounds++) {
      const n = sys.read(fd, buf, buf.length);
      if (n <= 0) return;
      for (let at = 0; at + INOTIFY_EVENT.name <= n;) {
        const mask = view.getUint32(at + INOTIFY_EVENT.mask, true);
        const len = view.getUint32(at + INOTIFY_EVENT.len, true);
        const raw = buf.subarray(
          at + INOTIFY_EVENT.name,
          Math.min(n, at + INOTIFY_EVENT.name + len),
        );
        const end = raw.indexOf(0);
        const entry = decoder.decode(end < 0 ? raw : raw.subarray(0, end));
        if ((mask & (IN.DELETE | IN.MOVED_FROM)) !== 0 && entry === name) {
          tell(`${path} is gone`);
        } else if ((mask & (IN.DELETE_SELF | IN.MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) !== 0) {
          tell(`${dir} is gone`);
        }
        at += INOTIFY_EVENT.name + len;
      }
    }
  });
  try {
    Deno.statSync(path);
    return undefined;
  } catch {
    return `${path} is gone`;
  }
}
