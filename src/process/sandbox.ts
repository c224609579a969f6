/**
 * The worker's own namespaces and its empty filesystem.
 *
 * Theory of operation. Once set up, the worker needs no file by path: every
 * descriptor it will use is open. So it gives up the filesystem: it runs in a
 * mount namespace of its own (and its own IPC and UTS namespaces; passt also in
 * a PID namespace of its own, so it can't name other processes by PID), and
 * right before the capabilities go (isolation.ts) it pivots into an empty,
 * read-only tmpfs and detaches the old root. pivot_root(2) fails (EINVAL) where the
 * root is itself rootfs (initramfs, some tmpfs roots); with --chroot-fallback we then
 * chroot(2) into the empty tmpfs instead: the old root stays mounted underneath, out
 * of reach once the capabilities are gone, and the seccomp filter denies chroot.
 *
 * A process can't enter a new mount namespace by itself once it has threads
 * (unshare(CLONE_NEWNS) implies unsharing the filesystem context, shared by
 * Deno's threads: EINVAL). The namespaces are therefore made by whoever creates
 * the worker, with clone(2) or, after a setns() into a user namespace, with an
 * unshare() run by the single-threaded clone entry (ffi/spawn.ts):
 * - pasta COMMAND: the worker is cloned into its new user namespace with them;
 *   the command it starts gets its own copy of the mount namespace (made before
 *   the pivot), so it keeps the whole filesystem.
 * - pasta PID / --netns: cloned with them (or with the user namespace to join).
 * - passt: cloned with them and a PID namespace, in a user namespace of its own
 *   when it lacks CAP_SYS_ADMIN.
 * In the foreground (-f) the process the user started is the worker, so none of
 * this happens there: it keeps the filesystem, capabilities and seccomp still apply.
 *
 * The pivot only ever happens in a mount namespace made for it: the starter puts
 * its own mount namespace's inode in the worker's environment, and the worker
 * pivots only if its namespace is a different one. A worker started any other
 * way (or run by hand) never touches the mounts of the namespace it shares.
 */
import { CLONE, MNT, MS } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";

/** The namespaces a worker is created in, besides a user namespace when needed. */
export const SANDBOX_CLONE_FLAGS = CLONE.NEWNS | CLONE.NEWIPC | CLONE.NEWUTS;

/** Environment variable: the starter's mount namespace inode (internal). */
const MOUNT_NS_ENV = "PASST_TS_STARTER_MNT_NS";

/** Where the empty tmpfs is mounted before the pivot: the first that exists. */
const PIVOT_DIRECTORIES = ["/tmp", "/proc"];

/** The inode of one of our namespace files, or undefined. */
function namespaceInode(kind: string): number | undefined {
  try {
    return Deno.statSync(`/proc/self/ns/${kind}`).ino ?? undefined;
  } catch {
    return undefined;
  }
}

/** The environment entry a starter gives a worker it creates with SANDBOX_CLONE_FLAGS. */
export function sandboxEnvironmentEntry(): string {
  return `${MOUNT_NS_ENV}=${namespaceInode("mnt") ?? 0}`;
}

/** Whether `claimSandbox` found a mount namespace made for this process. */
let privateMounts = false;
/** Our PID as the starter's PID namespace sees it (differs from getpid() in a new one). */
let pidSeenOutside: number | undefined;

/**
 * Worker side, first thing: learn whether the starter made a mount namespace for
 * us, and drop the marker so that nothing we start inherits it. Also records the
 * PID the outside world knows us by, while /proc can still tell.
 */
export function claimSandbox(): void {
  const marker = Deno.env.get(MOUNT_NS_ENV);
  if (marker === undefined) return;
  Deno.env.delete(MOUNT_NS_ENV);
  const ours = namespaceInode("mnt");
  privateMounts = ours !== undefined && Number(marker) !== 0 && Number(marker) !== ours;
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const pids = status.match(/^NSpid:\s*(\d+)/m);
    if (pids !== null) pidSeenOutside = Number(pids[1]);
  } catch {
    // no /proc: getpid() it is
  }
}

/** Whether this process runs in a mount namespace made for it (it will drop the filesystem). */
export function hasPrivateMounts(): boolean {
  return privateMounts;
}

/** Our PID as the process that started us sees it: for the PID file. */
export function outsidePid(): number {
  return pidSeenOutside ?? sys.getpid();
}

/**
 * Replace the root with an empty read-only tmpfs, if this process has a mount
 * namespace of its own (else nothing happens). Needs CAP_SYS_ADMIN over that
 * namespace: call before capabilities are dropped. Throws if a step fails; a failed
 * pivot_root(2) only with `chrootFallback` false (--chroot-fallback).
 */
export function enterEmptyRoot(chrootFallback = false): boolean {
  if (!privateMounts) {
    log.debug("no mount namespace of our own: the filesystem stays reachable");
    return false;
  }
  // Nothing we do here may propagate back to the namespace we were copied from.
  sys.mount(undefined, "/", undefined, MS.REC | MS.PRIVATE);
  const at = PIVOT_DIRECTORIES.find((dir) => {
    try {
      return Deno.statSync(dir).isDirectory;
    } catch {
      return false;
    }
  });
  if (at === undefined) throw new Error(`no directory to mount an empty root on`);
  sys.mount(
    "passt-empty",
    at,
    "tmpfs",
    MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
    "nr_inodes=2,mode=0555",
  );
  sys.chdir(at);
  // The old root is stacked on top of the new one, then detached from it.
  let pivoted = true;
  try {
    sys.pivotRoot(".", ".");
  } catch (e) {
    if (!chrootFallback || !(e instanceof sys.SysError)) throw e;
    log.info(`${e.message}: --chroot-fallback, so chroot() instead`);
    sys.chroot(".");
    pivoted = false;
  }
  if (pivoted) sys.umount2(".", MNT.DETACH);
  sys.chdir("/");
  log.debug("running in an empty read-only root");
  return true;
}
