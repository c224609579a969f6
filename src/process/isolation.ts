/**
 * Self-isolation: once set-up is done, give up what the loop never needs.
 *
 * Theory of operation. Everything that needs privileges (the listening socket,
 * the tap device, the namespace thread's setns(), --config-net, low ports
 * bound at start, files opened) happens before the loop runs. `isolate()` is
 * called right before readiness is announced and, in this order:
 * 0. Filesystem: files that must be written or handed over later (the PID
 *    file, passt's socket) are opened or chowned while their paths resolve;
 *    then, in a mount namespace made for us (sandbox.ts), the root becomes an
 *    empty read-only tmpfs. The thread list is read through a descriptor of
 *    /proc/self/task opened before that.
 * 1. Capabilities: every capability but CAP_NET_BIND_SERVICE (kept only if it
 *    was permitted, for ports bound later) leaves the bounding, effective,
 *    permitted and inheritable sets. Those sets belong to each thread, and Deno
 *    runs threads of its own, so the calls run on every thread through a
 *    signal handler (ffi/thread_stub.ts), and every thread's state is read back
 *    from /proc/self/task until all of them show it. The bounding set needs
 *    CAP_SETPCAP: without it (an unprivileged start) it stays as it was.
 * 2. Identity: real root in the initial user namespace (uid_map is the whole
 *    identity map) becomes the --runas user, or `nobody`: supplementary groups
 *    dropped, then setresgid, then setresuid. glibc applies those to every
 *    thread; the kernel clears the permitted and effective sets as the IDs
 *    leave 0. Root in any other user namespace (the pasta worker, a container)
 *    stays root there: its capabilities only reach namespaces it owns, and step
 *    1 already took them. The PID file, written once we are ready, is opened
 *    before the switch; passt's socket file is given to the new user, who
 *    removes it at exit.
 * 3. PR_SET_DUMPABLE 0 (no core dumps, no ptrace by the user), PR_SET_NO_NEW_PRIVS,
 *    then a seccomp filter, synchronised to all threads (TSYNC, which also
 *    copies no_new_privs to them), that fails with EPERM a list of system calls
 *    the running program never makes: program execution, tracing other
 *    processes, mounts, modules, kexec, keys, BPF, perf, clocks, raw I/O ports,
 *    file handles, chroot. System calls of another ABI (i386, x32) fail too.
 *    Unlike upstream's allow-list, this is a deny-list: the Deno runtime's own
 *    system calls cannot be enumerated and vary between releases.
 * --runas names are resolved from /etc/passwd and /etc/group at start
 * (`checkRunAs`), so a bad one ends the program before anything is opened.
 */
import type { Config, RunAs } from "../config/config.ts";
import { type DataRef, SyscallProgram } from "../ffi/clone_stub.ts";
import {
  ARCH,
  AUDIT_ARCH,
  CAP,
  O,
  PR,
  SECCOMP,
  SECCOMP_DATA,
  SOCK_FPROG,
  SYS,
  X32_SYSCALL_BIT,
} from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { THREAD_SIGNAL, ThreadProgram } from "../ffi/thread_stub.ts";
import { log } from "../log.ts";
import { openPidFileAhead, prepareAnnounceReady } from "./process.ts";
import { enterEmptyRoot, hasPrivateMounts } from "./sandbox.ts";

/** A numeric user and group to run as. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
}

/** The user root switches to without --runas, and its ids if /etc/passwd lacks it. */
const DEFAULT_USER = "nobody";
const NOBODY_ID = 65534;

/** How long every thread has to show the new capability sets (ms). */
const THREAD_SYNC_MS = 2000;
/** A thread signalled this long ago without effect is signalled again (ms). */
const THREAD_RESIGNAL_MS = 200;

/** Capabilities above this number do not exist yet: PR_CAPBSET_DROP says EINVAL. */
const CAP_MAX = 63;

// --- the user and group databases -----------------------------------------------------

/** The fields of `/etc/passwd`-style `text` whose first field is `name`, or undefined. */
function databaseEntry(text: string, name: string): string[] | undefined {
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields[0] === name && fields.length >= 3) return fields;
  }
  return undefined;
}

/** The first entry of `text` whose third field is the id `id`, or undefined. */
function databaseEntryById(text: string, id: number): string[] | undefined {
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 4 && fields[2] === String(id)) return fields;
  }
  return undefined;
}

function readDatabase(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/**
 * The numeric identity `runAs` names, with `passwd` and `group` the contents of
 * /etc/passwd and /etc/group. A UID alone takes its primary group from passwd
 * (or the same number if it has no entry); a login alone, its primary group.
 * Throws an Error naming what could not be found.
 */
export function resolveRunAs(runAs: RunAs, passwd: string, group: string): Identity {
  let uid: number;
  let primary: number | undefined;
  if (typeof runAs.user === "number") {
    uid = runAs.user;
    const entry = databaseEntryById(passwd, uid);
    primary = entry === undefined ? uid : Number(entry[3]);
  } else {
    const entry = databaseEntry(passwd, runAs.user);
    if (entry === undefined || entry.length < 4) {
      throw new Error(`Invalid user for --runas: ${runAs.user} (no such user)`);
    }
    uid = Number(entry[2]);
    primary = Number(entry[3]);
  }
  let gid: number;
  if (runAs.group === undefined) {
    gid = primary;
  } else if (typeof runAs.group === "number") {
    gid = runAs.group;
  } else {
    const entry = databaseEntry(group, runAs.group);
    if (entry === undefined) {
      throw new Error(`Invalid group for --runas: ${runAs.group} (no such group)`);
    }
    gid = Number(entry[2]);
  }
  if (!isId(uid) || !isId(gid)) throw new Error("Invalid --runas entry in the user database");
  return { uid, gid };
}

function isId(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 0xffffffff;
}

/** The identity real root switches to: --runas, or `nobody`. Throws if it can't be found. */
export function targetIdentity(runAs: RunAs | undefined): Identity {
  const passwd = readDatabase("/etc/passwd");
  const group = readDatabase("/etc/group");
  if (runAs !== undefined) return resolveRunAs(runAs, passwd, group);
  try {
    return resolveRunAs({ user: DEFAULT_USER, group: undefined }, passwd, group);
  } catch {
    return { uid: NOBODY_ID, gid: NOBODY_ID };
  }
}

/**
 * Check --runas at start: a message for the user (exit status 1) when it names
 * a user or group that does not exist, undefined otherwise.
 */
export function checkRunAs(config: Config): string | undefined {
  if (config.runAs === undefined) return undefined;
  try {
    targetIdentity(config.runAs);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** Whether /proc/self/uid_map is the initial user namespace's whole identity map. */
export function inInitialUserNamespace(): boolean {
  try {
    const fields = Deno.readTextFileSync("/proc/self/uid_map").trim().split(/\s+/);
    return fields.length === 3 && fields[0] === "0" && fields[1] === "0" &&
      fields[2] === "4294967295";
  } catch {
    return false;
  }
}

/** Whether this process is root in the initial user namespace: the one that changes user. */
export function isRealRoot(): boolean {
  const { uid, euid } = sys.ids();
  return (uid === 0 || euid === 0) && inInitialUserNamespace();
}

// --- per-thread state ----------------------------------------------------------------

/** What /proc/self/task/TID/status says about one thread's credentials. */
export interface ThreadCredentials {
  /** The thread's ID as /proc shows it (the PID namespace /proc was mounted in). */
  readonly tid: number;
  /** The thread's ID in our own PID namespace (NSpid's last field): what tgkill takes. */
  readonly ownTid: number;
  /** Real, effective, saved and filesystem UIDs. */
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  readonly inheritable: bigint;
  readonly permitted: bigint;
  readonly effective: bigint;
  readonly bounding: bigint;
  readonly noNewPrivs: boolean;
  /** Seccomp mode: 0 none, 1 strict, 2 filter. */
  readonly seccomp: number;
}

/** Parse the credential lines of a /proc/PID/status text. */
export function parseStatus(tid: number, text: string): ThreadCredentials {
  const field = (name: string) => {
    const m = text.match(new RegExp(`^${name}:\\s*(.*)$`, "m"));
    return m?.[1]?.trim() ?? "";
  };
  const ids = (name: string) => field(name).split(/\s+/).map(Number);
  const mask = (name: string) => BigInt(`0x${field(name) || "0"}`);
  const nsTids = ids("NSpid").filter((n) => Number.isInteger(n) && n > 0);
  return {
    tid,
    ownTid: nsTids[nsTids.length - 1] ?? tid,
    uids: ids("Uid"),
    gids: ids("Gid"),
    inheritable: mask("CapInh"),
    permitted: mask("CapPrm"),
    effective: mask("CapEff"),
    bounding: mask("CapBnd"),
    noNewPrivs: field("NoNewPrivs") === "1",
    seccomp: Number(field("Seccomp") || "0"),
  };
}

/**
 * /proc/self/task, open for the length of `isolate`: the thread list stays
 * readable through it once the root is empty.
 */
let taskDirectory = -1;
const directoryBuffer = new Uint8Array(8192);

/** The credentials of every thread of this process (threads that just left are skipped). */
function threadCredentials(): ThreadCredentials[] {
  const out: ThreadCredentials[] = [];
  for (const name of sys.directoryNames(taskDirectory, directoryBuffer)) {
    const tid = Number(name);
    const text = sys.readTextAt(taskDirectory, `${name}/status`);
    if (Number.isInteger(tid) && text !== undefined) out.push(parseStatus(tid, text));
  }
  return out;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * Make every thread satisfy `done`, running `program` on those that don't
 * (again if it had no effect after a while), for at most THREAD_SYNC_MS.
 * Throws, naming a thread, if some never do.
 */
function onEveryThread(
  program: SyscallProgram,
  done: (t: ThreadCredentials) => boolean,
  what: string,
): void {
  let runner: ThreadProgram | undefined;
  const signalled = new Map<number, number>();
  const start = sys.monotonicMs();
  try {
    for (;;) {
      const pending = threadCredentials().filter((t) => !done(t));
      if (pending.length === 0) return;
      const now = sys.monotonicMs();
      if (now - start > THREAD_SYNC_MS) {
        throw new Error(`${what}: thread ${pending[0]!.tid} did not follow`);
      }
      runner ??= new ThreadProgram(program, THREAD_SIGNAL);
      for (const t of pending) {
        const last = signalled.get(t.tid);
        if (last !== undefined && now - last < THREAD_RESIGNAL_MS) continue;
        signalled.set(t.tid, now);
        runner.runOn(t.ownTid);
      }
      sleepMs(1);
    }
  } finally {
    runner?.close();
  }
}

// --- capabilities ----------------------------------------------------------------------

const bit = (cap: number) => 1n << BigInt(cap);

/**
 * A program for one thread: drop every capability outside `keepBounding` from
 * the bounding set (failures ignored: EINVAL for numbers not allocated, EPERM
 * without CAP_SETPCAP), then set effective and permitted to `keep` and
 * inheritable to nothing.
 */
function capabilityProgram(keepBounding: bigint, keep: bigint): SyscallProgram {
  const p = new SyscallProgram();
  for (let cap = 0; cap <= CAP_MAX; cap++) {
    if ((keepBounding & bit(cap)) !== 0n) continue;
    p.step({ call: "prctl", detail: "PR_CAPBSET_DROP" }, SYS.prctl, [PR.CAPBSET_DROP, cap]);
  }
  const header = new Uint8Array(CAP.HEADER_SIZE);
  new DataView(header.buffer).setUint32(0, CAP.VERSION_3, true);
  const data = new Uint8Array(CAP.DATA_SIZE);
  const view = new DataView(data.buffer);
  const put = (offset: number, mask: bigint) => {
    view.setUint32(offset, Number(mask & 0xffffffffn), true);
    view.setUint32(offset + 12, Number((mask >> 32n) & 0xffffffffn), true);
  };
  put(0, keep); // effective
  put(4, keep); // permitted
  put(8, 0n); // inheritable
  const headerRef: DataRef = p.copy(header);
  const dataRef: DataRef = p.copy(data);
  p.step({ call: "capset" }, SYS.capset, [headerRef, dataRef]);
  return p;
}

/**
 * Leave `keep` (masked by what is permitted now) in every thread's effective
 * and permitted sets, nothing in the inheritable set, and `keepBounding` in the
 * bounding set when we may change it. Returns the bounding set now expected.
 */
function dropCapabilities(keep: bigint, keepBounding: bigint): bigint {
  const now = sys.capget();
  const kept = keep & now.permitted;
  const mayClamp = (now.effective & bit(CAP.SETPCAP)) !== 0n;
  const bounding = threadCredentials()[0]?.bounding ?? 0n;
  const wantBounding = mayClamp ? bounding & keepBounding : bounding;
  onEveryThread(
    capabilityProgram(keepBounding, kept),
    (t) =>
      t.effective === kept && t.permitted === kept && t.inheritable === 0n &&
      (t.bounding & ~wantBounding) === 0n,
    "dropping capabilities",
  );
  return wantBounding;
}

// --- user and groups -------------------------------------------------------------------

/** Give the files `handOver` to `to` (before switching to it, while the paths resolve). */
function handFilesOver(to: Identity, handOver: readonly string[]): void {
  for (const path of handOver) {
    try {
      sys.chown(path, to.uid, to.gid);
    } catch (e) {
      log.debug(`cannot hand ${path} over to UID ${to.uid}: ${e instanceof Error ? e.message : e}`);
    }
  }
}

/** Become `to` in every thread. */
function switchUser(to: Identity): void {
  sys.setgroups([]);
  sys.setresgid(to.gid, to.gid, to.gid);
  sys.setresuid(to.uid, to.uid, to.uid);
  // glibc switches the threads it knows; a raw thread (pasta's namespace thread,
  // ffi/ns_stub.ts) makes the same calls through the per-thread signal.
  const program = new SyscallProgram();
  program.step({ call: "setgroups" }, SYS.setgroups, [0, 0]);
  program.step({ call: "setresgid" }, SYS.setresgid, [to.gid, to.gid, to.gid]);
  program.step({ call: "setresuid" }, SYS.setresuid, [to.uid, to.uid, to.uid]);
  onEveryThread(
    program,
    (t) => t.uids.every((id) => id === to.uid) && t.gids.every((id) => id === to.gid),
    "changing user",
  );
}

// --- seccomp -----------------------------------------------------------------------------

/** System calls the running program never makes (names; per-architecture numbers below). */
export const DENIED_SYSCALLS = [
  "execve",
  "execveat",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "mount",
  "umount2",
  "pivot_root",
  "open_tree",
  "move_mount",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "swapon",
  "swapoff",
  "reboot",
  "init_module",
  "finit_module",
  "delete_module",
  "kexec_load",
  "kexec_file_load",
  "keyctl",
  "add_key",
  "request_key",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "acct",
  "quotactl",
  "quotactl_fd",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "iopl",
  "ioperm",
  "open_by_handle_at",
  "name_to_handle_at",
  "chroot",
] as const;

type DeniedSyscall = typeof DENIED_SYSCALLS[number];

/** System call numbers (linux/unistd.h); absent: the architecture has no such call. */
export const SYSCALL_NUMBERS: Readonly<
  Record<"x86_64" | "aarch64", Partial<Record<DeniedSyscall, number>>>
> = {
  x86_64: {
    execve: 59,
    execveat: 322,
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    mount: 165,
    umount2: 166,
    pivot_root: 155,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    swapon: 167,
    swapoff: 168,
    reboot: 169,
    init_module: 175,
    finit_module: 313,
    delete_module: 176,
    kexec_load: 246,
    kexec_file_load: 320,
    keyctl: 250,
    add_key: 248,
    request_key: 249,
    bpf: 321,
    perf_event_open: 298,
    userfaultfd: 323,
    acct: 163,
    quotactl: 179,
    quotactl_fd: 443,
    settimeofday: 164,
    clock_settime: 227,
    clock_adjtime: 305,
    adjtimex: 159,
    iopl: 172,
    ioperm: 173,
    open_by_handle_at: 304,
    name_to_handle_at: 303,
    chroot: 161,
  },
  aarch64: {
    execve: 221,
    execveat: 281,
    ptrace: 117,
    process_vm_readv: 270,
    process_vm_writev: 271,
    mount: 40,
    umount2: 39,
    pivot_root: 41,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    swapon: 224,
    swapoff: 225,
    reboot: 142,
    init_module: 105,
    finit_module: 273,
    delete_module: 106,
    kexec_load: 104,
    kexec_file_load: 294,
    keyctl: 219,
    add_key: 217,
    request_key: 218,
    bpf: 280,
    perf_event_open: 241,
    userfaultfd: 282,
    acct: 89,
    quotactl: 60,
    quotactl_fd: 443,
    settimeofday: 170,
    clock_settime: 112,
    clock_adjtime: 266,
    adjtimex: 171,
    open_by_handle_at: 265,
    name_to_handle_at: 264,
    chroot: 51,
  },
};

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGE_K = 0x35;
const BPF_RET_K = 0x06;
/** errno the denied calls fail with. */
const EPERM = 1;

/**
 * The classic BPF program (struct sock_filter array, host order): system calls
 * of `arch` (an AUDIT_ARCH_* value) whose number is in `denied`, any call of
 * another ABI and, with `x32Bit`, any x32 call fail with EPERM; the rest are allowed.
 */
export function denyFilter(arch: number, denied: readonly number[], x32Bit?: number): Uint8Array {
  const insns: [number, number, number, number][] = [];
  // Jump targets are patched once the length is known: -1 stands for "deny".
  insns.push([BPF_LD_W_ABS, 0, 0, SECCOMP_DATA.arch]);
  insns.push([BPF_JEQ_K, 0, -1, arch]);
  insns.push([BPF_LD_W_ABS, 0, 0, SECCOMP_DATA.nr]);
  if (x32Bit !== undefined) insns.push([BPF_JGE_K, -1, 0, x32Bit]);
  for (const nr of denied) insns.push([BPF_JEQ_K, -1, 0, nr]);
  insns.push([BPF_RET_K, 0, 0, SECCOMP.RET_ALLOW]);
  insns.push([BPF_RET_K, 0, 0, SECCOMP.RET_ERRNO | EPERM]);
  const deny = insns.length - 1;
  const out = new Uint8Array(insns.length * SOCK_FPROG.insnSize);
  const view = new DataView(out.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    const to = (j: number) => (j === -1 ? deny - (i + 1) : j);
    const at = i * SOCK_FPROG.insnSize;
    view.setUint16(at, code, true);
    view.setUint8(at + 2, to(jt));
    view.setUint8(at + 3, to(jf));
    view.setUint32(at + 4, k >>> 0, true);
  });
  return out;
}

/** Install the deny filter on every thread (TSYNC). Needs no_new_privs or CAP_SYS_ADMIN. */
function installSeccomp(): void {
  const numbers = SYSCALL_NUMBERS[ARCH === "x86_64" ? "x86_64" : "aarch64"];
  const denied = DENIED_SYSCALLS.map((name) => numbers[name]).filter((n) => n !== undefined);
  const program = denyFilter(AUDIT_ARCH, denied, ARCH === "x86_64" ? X32_SYSCALL_BIT : undefined);
  const pinned = sys.pinnedBuffer(program.length);
  pinned.set(program);
  const fprog = sys.pinnedBuffer(SOCK_FPROG.size);
  const view = new DataView(fprog.buffer);
  view.setUint16(SOCK_FPROG.len, program.length / SOCK_FPROG.insnSize, true);
  view.setBigUint64(SOCK_FPROG.filter, sys.addressOf(pinned), true);
  sys.seccompSetFilter(SECCOMP.FILTER_FLAG_TSYNC, fprog);
}

// --- all together ------------------------------------------------------------------------

/** What `isolate` needs to know beyond the configuration. */
export interface IsolateOptions {
  /** Files to give to the new user before switching (removed by it later). */
  readonly handOver?: readonly string[];
}

/**
 * Drop capabilities, switch user if started as real root, forbid the system
 * calls the loop never makes. Call once set-up is complete, before readiness.
 * Throws (an Error with a message for the user) if a step fails.
 */
export function isolate(config: Config, options: IsolateOptions = {}): void {
  taskDirectory = sys.open("/proc/self/task", O.RDONLY | O.DIRECTORY | O.CLOEXEC);
  try {
    isolateSteps(config, options);
  } finally {
    sys.close(taskDirectory);
    taskDirectory = -1;
  }
}

function isolateSteps(config: Config, options: IsolateOptions): void {
  const switching = isRealRoot();
  const identity = switching ? targetIdentity(config.runAs) : undefined;
  // Written once we are ready, maybe as another user, maybe in an empty root:
  // opened while we still may.
  if (config.pidFile !== undefined && (identity !== undefined || hasPrivateMounts())) {
    openPidFileAhead(config.pidFile);
  }
  if (identity !== undefined) handFilesOver(identity, options.handOver ?? []);
  if (hasPrivateMounts()) prepareAnnounceReady();
  enterEmptyRoot(config.chrootFallback);
  const keep = bit(CAP.NET_BIND_SERVICE);
  // The user switch itself needs CAP_SETUID, CAP_SETGID and CAP_CHOWN in every thread.
  const keepNow = identity === undefined
    ? keep
    : keep | bit(CAP.SETUID) | bit(CAP.SETGID) | bit(CAP.CHOWN);
  const bounding = dropCapabilities(keepNow, keep);
  if (identity !== undefined) {
    switchUser(identity);
    const change = `UID ${identity.uid}, GID ${identity.gid}`;
    if (config.runAs === undefined) {
      log.warn(`Don't run as root: changed to ${DEFAULT_USER} (${change})`);
    } else log.info(`changed to ${change} (--runas)`);
  } else if (config.runAs !== undefined) {
    log.debug("--runas: not root in the initial user namespace, user unchanged");
  }
  // After a switch away from root, nothing is left but the bounding set.
  const kept = identity === undefined ? keep & sys.capget().permitted : 0n;
  onEveryThread(
    capabilityProgram(keep, kept),
    (t) =>
      t.effective === kept && t.permitted === kept && t.inheritable === 0n &&
      (t.bounding & ~bounding) === 0n,
    "dropping capabilities",
  );
  sys.prctl(PR.SET_DUMPABLE, 0);
  sys.prctl(PR.SET_NO_NEW_PRIVS, 1);
  installSeccomp();
  log.debug("capabilities dropped, seccomp filter installed");
}
