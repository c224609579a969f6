/**
 * Process life: signal delivery, going to the background, the PID file.
 *
 * Theory of operation. Deno runs several threads of its own, and a process-wide
 * signal goes to any thread that does not block it. The loop reads SIGTERM,
 * SIGINT, SIGHUP and SIGCHLD from a signalfd, which only works when every thread
 * blocks them. A signal mask is inherited by threads and survives execve, so:
 * - In the foreground, if those signals are not blocked yet, the main thread
 *   blocks them and re-executes the same command line (same PID, as `-f` and a
 *   PID file promise); the new image's threads all start with the mask.
 * - In the background, the process the user started (the "starter") blocks them
 *   and spawns the worker with posix_spawn in a new session: the worker inherits
 *   the mask. The starter waits on a pipe until the worker says it is ready (its
 *   PID file written, its socket or namespace set up), then exits 0; if the worker
 *   dies first, the starter exits with the worker's status. The worker then points
 *   stdin, stdout and stderr at /dev/null, so that whoever started us (Podman,
 *   libvirt) and reads our output to EOF sees EOF.
 * The worker finds the readiness pipe through an environment variable that it
 * removes from its own environment at once.
 *
 * A starter that must stay until the worker ends (pasta COMMAND, whose exit status
 * it passes on; pasta -f joining through another user namespace) does not keep a
 * Deno runtime alive for that: once the worker runs, it replaces itself (same PID,
 * so the PID file and the user's shell still name it) with a waiter, /bin/sh
 * running `WAITER_SCRIPT`, the one external program we ever execute. The worker
 * writes its exit status, as a decimal line, to a pipe whose read end the waiter
 * reads; end-of-file without a status means the worker died (SIGKILL, a crash),
 * and the waiter says so and exits 1. SIGTERM and SIGHUP sent to the waiter are
 * passed on to the worker, which ends (after ending its command, which it passes
 * the signal to) and reports its status; SIGINT is ignored there, as the worker
 * ignores it: Ctrl-C reaches the whole foreground process group, and the command
 * decides.
 */
import { CAP, CLONE, F, MADV, O, SIG, SIG_HOW, WAIT } from "../ffi/layout.ts";
import { spawnProcess, writeIdMaps } from "../ffi/spawn.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import { outsidePid, SANDBOX_CLONE_FLAGS, sandboxEnvironmentEntry } from "./sandbox.ts";

/** The signals the loop handles through its signalfd. */
export const LOOP_SIGNALS: readonly number[] = [SIG.HUP, SIG.INT, SIG.TERM, SIG.CHLD];

/** Environment variable naming the worker's readiness pipe (internal). */
const READY_FD_ENV = "PASST_TS_READY_FD";
const READY_MESSAGE = "ready\n";

/** Environment variable naming the worker's exit status pipe (internal). */
const STATUS_FD_ENV = "PASST_TS_STATUS_FD";

/**
 * The waiter: `$1` is the worker's PID, stdin the read end of the status pipe.
 * A read interrupted by a trapped signal fails (dash, bash --posix) or resumes
 * (bash): either way the loop reads again, and only a read that failed without a
 * signal in between (end-of-file) ends it.
 */
const WAITER_SCRIPT = `w=$1; s=; t=
trap 't=1; kill -TERM "$w" 2>/dev/null' TERM
trap 't=1; kill -HUP "$w" 2>/dev/null' HUP
trap '' INT
i=0
while [ "$i" -lt 1000 ]; do
  if IFS= read -r s; then break; fi
  [ -n "$t" ] || break
  t=; i=$((i + 1))
done
case $s in
''|*[!0-9]*) echo "$0: the worker (PID $w) ended without an exit status" >&2; exit 1;;
esac
exit "$s"`;

/** The program and argument vector that started this process. */
export interface SelfCommand {
  /** Executable to run again (/proc/self/exe: Deno, or the compiled binary). */
  readonly path: string;
  /** Full argument vector, argv[0] included. */
  readonly argv: readonly string[];
}

/** How this process was started, read from /proc/self/cmdline. */
export function selfCommand(): SelfCommand {
  const raw = Deno.readFileSync("/proc/self/cmdline");
  const text = new TextDecoder().decode(raw);
  const argv = text.split("\0");
  if (argv.length > 0 && argv[argv.length - 1] === "") argv.pop();
  return { path: "/proc/self/exe", argv };
}

/** Whether every loop signal is blocked in the calling thread. */
export function loopSignalsBlocked(): boolean {
  const mask = sys.currentSigmask();
  return LOOP_SIGNALS.every((s) => sys.sigismember(mask, s));
}

/** Block the loop signals in the calling thread (threads created later inherit it). */
export function blockLoopSignals(): void {
  sys.sigprocmask(SIG_HOW.BLOCK, LOOP_SIGNALS);
}

/**
 * Make sure the loop signals are blocked in every thread: if they are not, block
 * them and execute the same command line again (this call then does not return).
 */
export function ensureLoopSignalsBlocked(): void {
  if (loopSignalsBlocked()) return;
  blockLoopSignals();
  const self = selfCommand();
  sys.execve(self.path, self.argv, sys.environment());
}

/** Whether this process is a background worker started by `runBackgroundStarter`. */
export function isBackgroundWorker(): boolean {
  return Deno.env.get(READY_FD_ENV) !== undefined;
}

/** The worker's readiness pipe descriptor, if this process is a background worker. */
export function readyDescriptor(): number | undefined {
  const fd = Number(Deno.env.get(READY_FD_ENV));
  return Number.isInteger(fd) && fd > 2 ? fd : undefined;
}

/**
 * Starter side of going to the background: start the worker (the same command
 * line, by default with posix_spawn in a new session) with the loop signals
 * blocked, wait until it reports ready, and return the exit status the starter
 * should exit with: 0 once the worker is ready, the worker's own status if it
 * exits before. `spawnWorker` may start it differently (say, in another user
 * namespace): it receives the environment to pass and returns the worker's PID.
 */
export function runBackgroundStarter(spawnWorker?: (env: string[]) => number): number {
  blockLoopSignals();
  const [readEnd, writeEnd] = sys.pipe2(O.CLOEXEC);
  // The worker's copy of the write end must survive exec: a duplicate without CLOEXEC.
  const inherited = sys.fcntl(writeEnd, 0, /* F_DUPFD */ 3);
  let pid: number;
  try {
    const env = sys.environment({ [READY_FD_ENV]: String(inherited) });
    pid = spawnWorker === undefined ? spawnSelfDetached(env) : spawnWorker(env);
  } finally {
    sys.close(inherited);
    sys.close(writeEnd);
  }
  // While waiting, let the user interrupt the starter itself.
  sys.sigprocmask(SIG_HOW.UNBLOCK, [SIG.INT, SIG.TERM, SIG.HUP]);
  const buf = new Uint8Array(READY_MESSAGE.length);
  let got = 0;
  for (let tries = 0; got < buf.length && tries < 1000; tries++) {
    const n = sys.read(readEnd, got === 0 ? buf : buf.subarray(got), buf.length - got);
    if (n === -sys.Errno.EINTR) continue;
    if (n <= 0) break;
    got += n;
  }
  sys.close(readEnd);
  if (got === buf.length && new TextDecoder().decode(buf) === READY_MESSAGE) return 0;
  // The worker went away before it was ready: pass its status on.
  for (let tries = 0; tries < 1000; tries++) {
    const { pid: reaped, status } = sys.waitpid(pid, 0);
    if (reaped === pid) return sys.exitCodeOf(status) || 1;
    if (reaped !== -sys.Errno.EINTR) break;
  }
  return 1;
}

/** Which namespaces `spawnSandboxedWorker` may make beyond SANDBOX_CLONE_FLAGS. */
export interface WorkerNamespaces {
  /** A PID namespace (passt: the worker can't name other processes by PID). */
  readonly pid: boolean;
  /**
   * Without CAP_SYS_ADMIN, a user namespace of its own to make the others in
   * (passt; pasta needs its capabilities over the target network namespace).
   */
  readonly user: boolean;
}

/**
 * Start this program again as a worker in new mount, IPC and UTS namespaces
 * (see sandbox.ts), in a new session with stdin on /dev/null: what
 * `runBackgroundStarter` takes as `spawnWorker`. If the namespaces can't be
 * made, the worker starts without them, with a warning.
 */
export function spawnSandboxedWorker(env: string[], extra: WorkerNamespaces): number {
  const self = selfCommand();
  const { euid, egid } = sys.ids();
  const privileged = (sys.capget().effective & (1n << BigInt(CAP.SYS_ADMIN))) !== 0n;
  if (!privileged && !extra.user) {
    // pasta joining, unprivileged, without a user namespace to enter: it can only
    // act on namespaces its user owns, and it can't make namespaces of its own.
    log.debug("no CAP_SYS_ADMIN for new namespaces: the worker keeps the filesystem");
    return spawnSelfDetached(env);
  }
  const flags = SANDBOX_CLONE_FLAGS | (extra.pid ? CLONE.NEWPID : 0) |
    (privileged ? 0 : CLONE.NEWUSER);
  const devNull = sys.open("/dev/null", O.RDONLY | O.CLOEXEC);
  try {
    let child;
    try {
      child = spawnProcess({
        path: self.path,
        argv: self.argv,
        env: [...env, sandboxEnvironmentEntry()],
        cloneFlags: flags,
        waitForParent: !privileged,
        stdio: [devNull, null, null],
        setsid: true,
        resetSignalMask: false,
      });
    } catch (e) {
      log.warn(
        `cannot create namespaces for the worker (${e instanceof Error ? e.message : e}): ` +
          "it keeps access to the filesystem",
      );
      return spawnSelfDetached(env);
    }
    try {
      if (!privileged) {
        writeIdMaps(child.pid, { uid: euid, gid: egid });
        child.release();
      }
      child.awaitExec();
    } catch (e) {
      child.close();
      throw e;
    }
    return child.pid;
  } finally {
    sys.close(devNull);
  }
}

/** posix_spawn this program again in a new session, stdin on /dev/null. */
function spawnSelfDetached(env: string[]): number {
  const devNull = sys.open("/dev/null", O.RDONLY | O.CLOEXEC);
  try {
    const self = selfCommand();
    return sys.posixSpawn(self.path, self.argv, env, { dup2: [[devNull, 0]], setsid: true });
  } finally {
    sys.close(devNull);
  }
}

/** The PID file opened ahead by `openPidFileAhead`: its path and descriptor. */
let pidFileAhead: { path: string; fd: number } | undefined;

/**
 * Open (create) the PID file now, to be written by `writePidFile` later: for a
 * process about to give up the rights to create it (isolation.ts). Throws if it can't.
 */
export function openPidFileAhead(path: string): void {
  if (pidFileAhead !== undefined) return;
  pidFileAhead = { path, fd: sys.open(path, O.WRONLY | O.CREAT | O.CLOEXEC, 0o644) };
}

/** Write `pid` and a newline to `path` (the -P/--pid option). Throws if it can't. */
export function writePidFile(path: string, pid: number): void {
  const ahead = pidFileAhead?.path === path ? pidFileAhead : undefined;
  pidFileAhead = undefined;
  const fd = ahead?.fd ?? sys.open(path, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o644);
  try {
    if (ahead !== undefined) sys.ftruncate(fd, 0);
    const bytes = new TextEncoder().encode(`${pid}\n`);
    if (sys.write(fd, bytes, bytes.length) !== bytes.length) {
      throw new Error(`cannot write PID file ${path}`);
    }
  } finally {
    sys.close(fd);
  }
}

/**
 * Worker side: initialisation is complete. Write the PID file if asked, tell the
 * starter (if there is one) that we are ready, and detach stdio from it.
 */
export function announceReady(pidFile: string | undefined): void {
  if (pidFile !== undefined) writePidFile(pidFile, outsidePid());
  const fdText = Deno.env.get(READY_FD_ENV);
  if (fdText === undefined) return;
  Deno.env.delete(READY_FD_ENV);
  const fd = Number(fdText);
  log.detachFromStderr();
  const plan = detachPlan ?? planStdioDetach(log.debugging);
  detachPlan = undefined;
  for (const fd of plan.fds) sys.dup2(plan.devNull, fd);
  sys.close(plan.devNull);
  if (Number.isInteger(fd) && fd > 2) {
    const msg = new TextEncoder().encode(READY_MESSAGE);
    sys.write(fd, msg, msg.length);
    sys.close(fd);
  }
}

/** What descriptor `fd` refers to ("pipe:[123]", "/dev/pts/0"…), or undefined. */
function descriptorTarget(fd: number): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Descriptors to point at /dev/null once ready, and a /dev/null to point them at. */
interface DetachPlan {
  readonly devNull: number;
  readonly fds: readonly number[];
}
let detachPlan: DetachPlan | undefined;

/**
 * Which descriptors are stdin and stdout (and stderr unless `keepStderr`): 0, 1,
 * 2 and the duplicates Deno holds of them, or whoever reads our output would
 * never see end-of-file. Found through /proc/self/fd.
 */
function planStdioDetach(keepStderr: boolean): DetachPlan {
  const streams = keepStderr ? [0, 1] : [0, 1, 2];
  const targets = new Set(streams.map(descriptorTarget).filter((t) => t !== undefined));
  const devNull = sys.open("/dev/null", O.RDWR | O.CLOEXEC);
  const devNullTarget = descriptorTarget(devNull);
  const fds: number[] = [];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd) || fd === devNull) continue;
    const target = descriptorTarget(fd);
    if (fd <= 2 ? streams.includes(fd) : target !== undefined && targets.has(target)) {
      if (target !== devNullTarget) fds.push(fd);
    }
  }
  return { devNull, fds };
}

/**
 * A background worker about to lose the filesystem (isolation.ts): find what
 * `announceReady` will point at /dev/null, and open /dev/null, while we can.
 */
export function prepareAnnounceReady(): void {
  if (detachPlan !== undefined || Deno.env.get(READY_FD_ENV) === undefined) return;
  detachPlan = planStdioDetach(log.debugging);
  log.prepareSyslog(outsidePid());
}

/**
 * Close descriptors inherited from whoever started us, except `keep`. Deno's
 * runtime opens everything of its own close-on-exec; an inherited descriptor
 * without that flag is someone else's (a pipe of the caller, say) and would be
 * held open for as long as we run.
 */
export function closeInheritedDescriptors(keep: readonly number[]): void {
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    const fd = Number(entry.name);
    if (!Number.isInteger(fd) || fd <= 2 || keep.includes(fd)) continue;
    const flags = sys.tryFcntl(fd, 1 /* F_GETFD */);
    if (flags < 0 || (flags & 1 /* FD_CLOEXEC */) !== 0) continue;
    // The runtime keeps a /dev/null of its own without the flag: harmless, leave it.
    if (descriptorTarget(fd) !== "/dev/null") sys.close(fd);
  }
}

/** Reap every exited child without blocking; calls `onExit` for each. */
export function reapChildren(onExit: (pid: number, exitCode: number) => void): void {
  for (let i = 0; i < 1024; i++) {
    const { pid, status } = sys.waitpid(-1, WAIT.NOHANG);
    if (pid <= 0) return;
    onExit(pid, sys.exitCodeOf(status));
  }
}

/** The status pipe of a worker that a waiter will wait for (`execWaiter`). */
export interface StatusPipe {
  /** The starter's read end (close-on-exec until `execWaiter` makes it the waiter's stdin). */
  readonly readEnd: number;
  /** The environment entry that hands the write end to the worker. */
  readonly envEntry: string;
  /** Closes the starter's copies of the write end: call once the worker has started. */
  closeWriteEnd(): void;
}

/**
 * Starter side: a pipe for the worker's exit status. The worker inherits a copy of
 * the write end (not close-on-exec) and finds it through `envEntry`.
 */
export function openStatusPipe(): StatusPipe {
  const [readEnd, writeEnd] = sys.pipe2(O.CLOEXEC);
  const inherited = sys.fcntl(writeEnd, 0, /* F_DUPFD */ 3);
  sys.close(writeEnd);
  let open = true;
  return {
    readEnd,
    envEntry: `${STATUS_FD_ENV}=${inherited}`,
    closeWriteEnd: () => {
      if (open) sys.close(inherited);
      open = false;
    },
  };
}

/**
 * Starter side, once the worker runs: become the waiter (see the module comment),
 * keeping our PID. `program` names us in its messages. Throws only if /bin/sh
 * can't be executed, and the caller then waits for the worker itself.
 */
export function execWaiter(program: string, workerPid: number, pipe: StatusPipe): never {
  pipe.closeWriteEnd();
  // dup2 clears close-on-exec on the copy; the waiter never needs our stdin.
  sys.dup2(pipe.readEnd, 0);
  sys.close(pipe.readEnd);
  // Signals the waiter traps must reach it: the mask survives execve.
  sys.sigprocmask(SIG_HOW.UNBLOCK, LOOP_SIGNALS);
  sys.execve("/bin/sh", ["sh", "-c", WAITER_SCRIPT, program, String(workerPid)], [
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
  ]);
}

/** The worker's status pipe, taken from the environment by `takeStatusDescriptor`. */
let statusFd: number | undefined;

/**
 * Worker side, first thing: take the status pipe from the environment (so that
 * nothing we start inherits it) and mark it close-on-exec. Returns its descriptor
 * (to keep open), or undefined if no waiter waits for us.
 */
export function takeStatusDescriptor(): number | undefined {
  const text = Deno.env.get(STATUS_FD_ENV);
  if (text === undefined) return statusFd;
  Deno.env.delete(STATUS_FD_ENV);
  const fd = Number(text);
  if (!Number.isInteger(fd) || fd <= 2 || sys.tryFcntl(fd, F.SETFD, F.FD_CLOEXEC) < 0) {
    return undefined;
  }
  statusFd = fd;
  return fd;
}

/** Worker side, at the end: tell the waiter our exit status (0–255). */
export function reportExitStatus(status: number): void {
  const fd = statusFd;
  if (fd === undefined) return;
  statusFd = undefined;
  const bytes = new TextEncoder().encode(`${status & 0xff}\n`);
  sys.write(fd, bytes, bytes.length);
  sys.close(fd);
}

/** The runtime executable's code mappings: [start address, length in bytes]. */
let codeRanges: [number, number][] = [];

/**
 * Find the Deno runtime's code (the executable's r-x mappings) in /proc/self/maps,
 * for `releaseStartupCode`: call while /proc is reachable (before isolation.ts
 * empties the root).
 */
export function findStartupCode(): void {
  let exe: string;
  let maps: string;
  try {
    exe = Deno.realPathSync("/proc/self/exe");
    maps = Deno.readTextFileSync("/proc/self/maps");
  } catch {
    return;
  }
  codeRanges = [];
  for (const line of maps.split("\n")) {
    // "start-end perms offset dev inode path"
    const fields = line.split(/\s+/);
    if (fields[1] !== "r-xp" || fields[5] !== exe) continue;
    const [start, end] = fields[0]!.split("-").map((h) => parseInt(h, 16));
    if (start === undefined || end === undefined || end <= start) continue;
    codeRanges.push([start, end - start]);
  }
}

/**
 * Once set up, before the loop: drop the runtime's code pages from our page tables
 * (MADV_DONTNEED on its never written, file-backed code). Start-up touches some
 * 20 MiB of it that the loop never runs again; the pages stay in the page cache,
 * and the few the loop needs come back on first use (a minor fault each), so
 * resident memory is the loop's working set, not the start-up's. Read-only data
 * is left alone: it holds relocated, privately written pages, which
 * MADV_DONTNEED would lose.
 */
export function releaseStartupCode(): void {
  for (const [start, length] of codeRanges) {
    const r = sys.madvise(start, length, MADV.DONTNEED);
    if (r < 0) log.debug(`madvise(MADV_DONTNEED) of the runtime's code: errno ${-r}`);
  }
  codeRanges = [];
}
