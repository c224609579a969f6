/**
 * Spawning a command into new or existing namespaces, from a multithreaded
 * process: pasta's way of starting the user's shell (or any command) inside the
 * namespaces it connects.
 *
 * Theory of operation: `spawnProcess` turns its options into a syscall program
 * (see `clone_stub.ts`) and starts it with clone(2) and SIGCHLD as the exit
 * signal, so the child is an ordinary child for waitpid. The child, a single
 * thread that runs no JavaScript and no libc, does in order:
 *
 *   1. close its copies of the parent's pipe ends;
 *   2. prctl(PR_SET_PDEATHSIG) if asked;
 *   3. if `waitForParent`: read one byte from the release pipe, so the parent can
 *      write /proc/PID/{setgroups,uid_map,gid_map} (`writeIdMaps`) first;
 *   4. setns() into each namespace given, in the order given (put the user
 *      namespace first: joining it is what grants the rights to join the others),
 *      then unshare() of the namespaces asked to be made there; sethostname()
 *      if asked (in a new UTS namespace; a failure is ignored);
 *   5. chdir, setsid, dup3 of the stdio descriptors onto 0, 1, 2;
 *   6. close_range(first, ~0, CLOSE_RANGE_CLOEXEC) if asked;
 *   7. reset signal dispositions 1–64 to SIG_DFL (Deno ignores SIGPIPE, and an
 *      ignored disposition survives exec) and set the signal mask (empty by
 *      default: our process runs with SIGTERM, SIGINT, SIGHUP and SIGCHLD
 *      blocked and the child would inherit that);
 *   8. execve.
 * A failed step makes the child write (step index, errno) to a CLOEXEC report
 * pipe and exit 127; `awaitExec()` reads that pipe: end-of-file means the exec
 * happened, 16 bytes name the step and become a `SysError` for that call.
 *
 * Plain copy, not CLONE_VM|CLONE_VFORK: posix_spawn shares the parent's memory
 * and suspends it until exec, which saves copying page tables. We cannot: the
 * kernel refuses setns(CLONE_NEWUSER) to a process that shares its memory with
 * another (it counts as multithreaded), a vforked parent cannot write the ID maps
 * the child waits for (deadlock), and a shared-memory child would write its report
 * into our live block. The copy costs a few milliseconds of page-table copying
 * for a large Deno process, once per spawned command. A side benefit: the child
 * owns a copy-on-write copy of the program block and the stack, so nothing has
 * to stay alive in the parent after clone() returns.
 *
 * Signals: around clone() the calling thread blocks every signal, as glibc's
 * posix_spawn does, so no handler of ours can run in the child before step 7
 * resets dispositions; the previous mask is restored right after.
 *
 * Descriptors: every pipe is created CLOEXEC; the parent closes the child's ends
 * as soon as clone() returns. Stdio sources that are themselves 0, 1 or 2 are
 * first duplicated above 2, so an earlier dup3 cannot overwrite a later source.
 */
import { c } from "./libc.ts";
import {
  CLONE,
  CLOSE_RANGE,
  F,
  KERNEL_SIGACTION_SIZE,
  KERNEL_SIGSET_SIZE,
  O,
  PR,
  SIG,
  SIG_HOW,
  SIGSET_SIZE,
  SYS,
} from "./layout.ts";
import {
  cloneRunner,
  decodeStubReport,
  STEP_IGNORE_FAILURE,
  STEP_NONZERO,
  type StepLabel,
  STUB_REPORT_SIZE,
  SyscallProgram,
} from "./clone_stub.ts";
import {
  close,
  Errno,
  ids,
  lastErrno,
  pipe2,
  read,
  sigset,
  SysError,
  tryOpen,
  waitpid,
  write,
} from "./sys.ts";

/** A namespace to join with setns(2). */
export interface NamespaceToJoin {
  /** An open descriptor of the namespace (e.g. /proc/PID/ns/net); the caller owns it. */
  readonly fd: number;
  /** The CLONE_NEW* flag of its type, or 0 to accept any type. */
  readonly nstype: number;
}

/** What to start and how; see the module comment for the order of the steps. */
export interface SpawnOptions {
  /** Executable to run, passed to execve(2) as is: no PATH search. */
  readonly path: string;
  /** Argument vector, argv[0] included. */
  readonly argv: readonly string[];
  /** Environment, as "NAME=value" strings. */
  readonly env: readonly string[];
  /**
   * CLONE_NEW* flags: namespaces the child is created in (0 or absent: none).
   * Flags that share state with the parent (CLONE_VM, CLONE_FILES…) are refused.
   */
  readonly cloneFlags?: number;
  /** Existing namespaces to join, in this order (user namespace first). */
  readonly setns?: readonly NamespaceToJoin[];
  /**
   * CLONE_NEW* flags for unshare(2) after joining `setns`: new namespaces owned
   * by the user namespace just joined (clone flags would make them in ours).
   */
  readonly unshareFlags?: number;
  /** Hold the child until `release()`: time to write its ID maps. Default false. */
  readonly waitForParent?: boolean;
  /**
   * Descriptors to install as the child's stdin, stdout, stderr (dup3 onto 0, 1,
   * 2); null keeps the inherited one. The caller keeps ownership of these fds.
   */
  readonly stdio?: readonly [number | null, number | null, number | null];
  /** Start a new session (setsid) before exec. Default false. */
  readonly setsid?: boolean;
  /** Directory to change to before exec (after joining namespaces). */
  readonly chdir?: string;
  /**
   * sethostname(2) in the child, once in its namespaces (give it a new UTS
   * namespace): at most 64 bytes; a failure is ignored, as only cosmetic.
   */
  readonly hostname?: string;
  /** Exec with an empty signal mask (true, the default) or with the caller's mask. */
  readonly resetSignalMask?: boolean;
  /** Reset the dispositions of signals 1–64 to SIG_DFL before exec. Default true. */
  readonly resetSignalDispositions?: boolean;
  /** Mark every descriptor ≥ this number close-on-exec (close_range, Linux 5.11). */
  readonly closeFrom?: number;
  /**
   * Signal the child gets when the thread that spawned it exits
   * (PR_SET_PDEATHSIG). Meant for the main thread: a worker's exit triggers it too.
   */
  readonly parentDeathSignal?: number;
}

/** The clone flags `spawnProcess` accepts: new namespaces only. */
const NAMESPACE_FLAGS = CLONE.NEWNS | CLONE.NEWCGROUP | CLONE.NEWUTS | CLONE.NEWIPC |
  CLONE.NEWUSER | CLONE.NEWPID | CLONE.NEWNET;

/** HOST_NAME_MAX (<limits.h>): the longest host name, in bytes. */
const HOST_NAME_MAX = 64;

const NAMESPACE_NAMES: ReadonlyArray<readonly [number, string]> = [
  [CLONE.NEWUSER, "user"],
  [CLONE.NEWNET, "net"],
  [CLONE.NEWUTS, "uts"],
  [CLONE.NEWNS, "mount"],
  [CLONE.NEWPID, "pid"],
  [CLONE.NEWIPC, "ipc"],
  [CLONE.NEWCGROUP, "cgroup"],
];

function namespaceName(nstype: number): string {
  return NAMESPACE_NAMES.find(([flag]) => flag === nstype)?.[1] ?? "any";
}

/**
 * A child started by `spawnProcess`. The parent owns its two pipe ends until
 * `release()` and `awaitExec()` (or `close()`) have run; reaping the child with
 * waitpid after a successful exec is the caller's job.
 */
export class SpawnedChild {
  /** The child's process ID, in the caller's PID namespace. */
  readonly pid: number;
  #reportFd: number;
  #releaseFd: number;
  readonly #labels: readonly StepLabel[];
  #failure: Error | undefined;

  /** Internal: made by `spawnProcess`. */
  constructor(pid: number, reportFd: number, releaseFd: number, labels: readonly StepLabel[]) {
    this.pid = pid;
    this.#reportFd = reportFd;
    this.#releaseFd = releaseFd;
    this.#labels = labels;
  }

  /** Whether the child is still held, waiting for `release()`. */
  get waiting(): boolean {
    return this.#releaseFd >= 0;
  }

  /**
   * Let a child started with `waitForParent` go on (after `writeIdMaps`, say).
   * A child that already died is not an error here: `awaitExec()` reports why.
   */
  release(): void {
    if (this.#releaseFd < 0) throw new Error("release(): the child is not waiting");
    const fd = this.#releaseFd;
    this.#releaseFd = -1;
    const r = write(fd, new Uint8Array(1), 1);
    close(fd);
    if (r < 0 && r !== -Errno.EPIPE) throw new SysError("write", -r, "spawn release pipe");
  }

  /**
   * Block until the child has exec'd (returns) or failed (throws). The failure is
   * a SysError whose `call` names the failed step ("setns", "chdir", "execve"…)
   * and whose message says what it acted on; by then the child has been reaped.
   * Calling it again repeats the outcome.
   */
  awaitExec(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#reportFd < 0) return;
    if (this.#releaseFd >= 0) {
      throw new Error("awaitExec() before release(): the child is still waiting for its parent");
    }
    const report = new Uint8Array(STUB_REPORT_SIZE);
    let n: number;
    do n = read(this.#reportFd, report, STUB_REPORT_SIZE); while (n === -Errno.EINTR);
    close(this.#reportFd);
    this.#reportFd = -1;
    if (n === 0) return;

    this.#failure = this.#describe(n, report);
    while (waitpid(this.pid, 0).pid === -Errno.EINTR); // it exits right after reporting
    throw this.#failure;
  }

  /** Close the parent's pipe ends without waiting (a held child then exits 127). */
  close(): void {
    if (this.#releaseFd >= 0) close(this.#releaseFd);
    if (this.#reportFd >= 0) close(this.#reportFd);
    this.#releaseFd = -1;
    this.#reportFd = -1;
  }

  #describe(n: number, report: Uint8Array): Error {
    if (n < 0) return new SysError("read", -n, "spawn report pipe");
    if (n !== STUB_REPORT_SIZE) return new Error(`spawn: short failure report (${n} bytes)`);
    const { step, errno } = decodeStubReport(report);
    const label = this.#labels[step] ?? { call: `step ${step}` };
    const where = label.detail === undefined ? label.call : `${label.call}(${label.detail})`;
    if (errno === 0) return new Error(`${where}: unexpected end of file`);
    return new SysError(label.call, errno, label.detail);
  }
}

/** All signals, for blocking around clone(). */
const ALL_SIGNALS = sigset(Array.from({ length: 64 }, (_, i) => i + 1));

/**
 * Start `options.path` in a child process as described by `options` (see the
 * module comment). Returns at once with the child's pid; call `release()` if
 * `waitForParent` was set, then `awaitExec()` to learn whether the exec
 * happened. Throws a SysError if the child cannot be created at all (pipe2,
 * fcntl, clone).
 */
export function spawnProcess(options: SpawnOptions): SpawnedChild {
  const cloneFlags = options.cloneFlags ?? 0;
  if (((cloneFlags | (options.unshareFlags ?? 0)) & ~NAMESPACE_FLAGS) !== 0) {
    throw new Error(
      `spawnProcess: clone flags 0x${cloneFlags.toString(16)} are not all CLONE_NEW*`,
    );
  }

  const parentEnds: number[] = []; // ours after clone; the child closes its copies
  const childEnds: number[] = []; // the child's; we close them after clone
  try {
    const [reportRead, reportWrite] = pipe2(O.CLOEXEC);
    parentEnds.push(reportRead);
    childEnds.push(reportWrite);
    let releaseWrite = -1;
    let releaseRead = -1;
    if (options.waitForParent === true) {
      [releaseRead, releaseWrite] = pipe2(O.CLOEXEC);
      parentEnds.push(releaseWrite);
      childEnds.push(releaseRead);
    }
    const stdio = (options.stdio ?? [null, null, null]).map((fd, target) => {
      if (fd === null || fd === target || fd > 2) return fd;
      const copy = c.fcntl(fd, F.DUPFD_CLOEXEC, 3n);
      if (copy < 0) throw new SysError("fcntl", lastErrno(), `F_DUPFD_CLOEXEC of stdio fd ${fd}`);
      childEnds.push(copy);
      return copy;
    });

    const program = buildProgram(options, parentEnds, releaseRead, stdio);
    const block = program.build(reportWrite);
    const labels = Array.from({ length: program.length }, (_, i) => program.label(i)!);

    const oldMask = new Uint8Array(SIGSET_SIZE);
    const r = c.pthread_sigmask(SIG_HOW.BLOCK, ALL_SIGNALS, oldMask);
    if (r !== 0) throw new SysError("pthread_sigmask", r);
    let pid: number;
    try {
      pid = cloneRunner(block, cloneFlags | SIG.CHLD);
    } finally {
      c.pthread_sigmask(SIG_HOW.SETMASK, oldMask, null);
    }
    for (const fd of childEnds) close(fd);
    return new SpawnedChild(pid, reportRead, releaseWrite, labels);
  } catch (e) {
    for (const fd of [...parentEnds, ...childEnds]) close(fd);
    throw e;
  }
}

/** The syscall program for `options`; the signal mask step reads the caller's mask. */
function buildProgram(
  options: SpawnOptions,
  parentEnds: readonly number[],
  releaseRead: number,
  stdio: readonly (number | null)[],
): SyscallProgram {
  const p = new SyscallProgram();

  for (const fd of parentEnds) {
    p.step({ call: "close", detail: `parent's pipe end ${fd}` }, SYS.close, [fd]);
  }

  if (options.parentDeathSignal !== undefined) {
    p.step({ call: "prctl", detail: "PR_SET_PDEATHSIG" }, SYS.prctl, [
      PR.SET_PDEATHSIG,
      options.parentDeathSignal,
    ]);
  }

  if (releaseRead >= 0) {
    p.step(
      { call: "read", detail: "wait for the parent's release" },
      SYS.read,
      [releaseRead, p.bytes(8), 1],
      STEP_NONZERO,
    );
  }

  for (const ns of options.setns ?? []) {
    const detail = `${namespaceName(ns.nstype)} namespace, fd ${ns.fd}`;
    p.step({ call: "setns", detail }, SYS.setns, [ns.fd, ns.nstype]);
  }

  const unshareFlags = options.unshareFlags ?? 0;
  if (unshareFlags !== 0) {
    const names = NAMESPACE_NAMES.filter(([flag]) => (unshareFlags & flag) !== 0);
    const detail = `new ${names.map(([, name]) => name).join(", ")} namespaces`;
    p.step({ call: "unshare", detail }, SYS.unshare, [unshareFlags]);
  }

  if (options.hostname !== undefined) {
    const name = new TextEncoder().encode(options.hostname).subarray(0, HOST_NAME_MAX);
    p.step(
      { call: "sethostname", detail: options.hostname },
      SYS.sethostname,
      [p.copy(name), name.length],
      STEP_IGNORE_FAILURE,
    );
  }

  if (options.chdir !== undefined) {
    p.step({ call: "chdir", detail: options.chdir }, SYS.chdir, [p.string(options.chdir)]);
  }

  if (options.setsid === true) p.step({ call: "setsid" }, SYS.setsid, []);

  stdio.forEach((fd, target) => {
    if (fd === null) return;
    if (fd === target) {
      // dup3 refuses equal descriptors; make sure the inherited one survives exec.
      p.step({ call: "fcntl", detail: `F_SETFD of fd ${fd}` }, SYS.fcntl, [fd, F.SETFD, 0]);
    } else {
      p.step({ call: "dup3", detail: `${fd} onto ${target}` }, SYS.dup3, [fd, target, 0]);
    }
  });

  if (options.closeFrom !== undefined) {
    p.step({ call: "close_range", detail: `from ${options.closeFrom}` }, SYS.close_range, [
      options.closeFrom,
      0xffffffff,
      CLOSE_RANGE.CLOEXEC,
    ]);
  }

  if (options.resetSignalDispositions ?? true) {
    const defaultAction = p.bytes(KERNEL_SIGACTION_SIZE); // zeros: SIG_DFL, no flags
    // Every signal, real-time ones too: an ignored one (whoever started us may have
    // ignored signal 32 or more) would stay ignored across exec.
    for (let signal = 1; signal <= 64; signal++) {
      if (signal === SIG.KILL || signal === SIG.STOP) continue;
      p.step(
        { call: "rt_sigaction", detail: `signal ${signal}` },
        SYS.rt_sigaction,
        [signal, defaultAction, 0, KERNEL_SIGSET_SIZE],
        STEP_IGNORE_FAILURE,
      );
    }
  }

  // Empty by default; otherwise the mask we have now, before spawnProcess blocks
  // every signal around clone().
  const mask = new Uint8Array(SIGSET_SIZE);
  if (options.resetSignalMask === false) {
    const r = c.pthread_sigmask(SIG_HOW.BLOCK, new Uint8Array(SIGSET_SIZE), mask);
    if (r !== 0) throw new SysError("pthread_sigmask", r);
  }
  p.step({ call: "rt_sigprocmask", detail: "SIG_SETMASK" }, SYS.rt_sigprocmask, [
    SIG_HOW.SETMASK,
    p.copy(mask.subarray(0, KERNEL_SIGSET_SIZE)),
    0,
    KERNEL_SIGSET_SIZE,
  ]);

  const argv = p.pointerArray(options.argv.map((arg) => p.string(arg)));
  const envp = p.pointerArray(options.env.map((entry) => p.string(entry)));
  p.step({ call: "execve", detail: options.path }, SYS.execve, [
    p.string(options.path),
    argv,
    envp,
  ]);
  return p;
}

/**
 * Map the caller to root in the new user namespace of child `pid`: write
 * "deny" to /proc/PID/setgroups (absent before Linux 3.19: skipped), then
 * "0 UID 1" to uid_map and "0 GID 1" to gid_map. `ids` defaults to our
 * effective uid and gid, the only mapping an unprivileged caller may write.
 * Throws a SysError naming the file on failure.
 */
export function writeIdMaps(
  pid: number,
  idsToMap: { readonly uid: number; readonly gid: number } = {
    uid: ids().euid,
    gid: ids().egid,
  },
): void {
  writeProcFile(`/proc/${pid}/setgroups`, "deny", true);
  writeProcFile(`/proc/${pid}/uid_map`, `0 ${idsToMap.uid} 1\n`, false);
  writeProcFile(`/proc/${pid}/gid_map`, `0 ${idsToMap.gid} 1\n`, false);
}

/** Write `text` to a /proc file in a single write(2), as those files require. */
function writeProcFile(path: string, text: string, mayBeAbsent: boolean): void {
  const fd = tryOpen(path, O.WRONLY | O.CLOEXEC, 0);
  if (fd < 0) {
    if (mayBeAbsent && fd === -Errno.ENOENT) return;
    throw new SysError("open", -fd, path);
  }
  const bytes = new TextEncoder().encode(text);
  const n = write(fd, bytes, bytes.length);
  close(fd);
  if (n < 0) throw new SysError("write", -n, path);
}
