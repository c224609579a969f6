/**
 * pasta: which processes do what, and the worker's life.
 *
 * Theory of operation. The process that serves the namespace (the "worker")
 * must hold CAP_SYS_ADMIN over the target network namespace, so that its
 * namespace thread may setns() into it. Deno cannot change its own user
 * namespace, so when that takes a user namespace the worker is started in it:
 * - Spawning a command (`pasta [CMD…]`): the user's process (the "starter")
 *   clones the worker into a new user namespace, maps the caller to root there,
 *   and waits for it, passing its exit status on. The worker clones the command
 *   into a new network and UTS namespace, held until the namespace is ready (tap,
 *   --config-net), and lives until the command exits, with its status.
 * - Joining (`pasta PID`, `--netns`): when the caller is root in the initial
 *   user namespace, or already in the namespace's owning user namespace (how
 *   Podman runs us), the worker needs no other user namespace. Otherwise the
 *   starter clones the worker with a setns() into the target user namespace
 *   (--userns, or the PID's), done by the single-threaded clone entry.
 *   The worker goes to the background unless -f, and ends when the namespace
 *   goes away (the PID exits, the --netns file is removed) unless
 *   --no-netns-quit.
 * The worker's main thread stays in the initial network namespace for good; the
 * namespace side is reached through the namespace thread.
 */
import type { PastaConfig } from "../config/config.ts";
import type { NetworkPlan } from "../config/network.ts";
import { type DataPath, resolveNetwork, startDataPath, startupSummary } from "../datapath.ts";
import { errnoMessage, SysError } from "../ffi/errno.ts";
import { CLONE, EPOLL, O, SIG, WAIT } from "../ffi/layout.ts";
import { spawnProcess, writeIdMaps } from "../ffi/spawn.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import type { EventLoop } from "../loop.ts";
import {
  announceReady,
  blockLoopSignals,
  ensureLoopSignalsBlocked,
  execWaiter,
  findStartupCode,
  isBackgroundWorker,
  LOOP_SIGNALS,
  openStatusPipe,
  releaseStartupCode,
  runBackgroundStarter,
  selfCommand,
  spawnSandboxedWorker,
  type StatusPipe,
  writePidFile,
} from "../process/process.ts";
import {
  hasPrivateMounts,
  SANDBOX_CLONE_FLAGS,
  sandboxEnvironmentEntry,
} from "../process/sandbox.ts";
import { isolate } from "../process/isolation.ts";
import { NoTapDevice, TapDevice } from "../tap/tap.ts";
import { setUpLoopbackOnly, setUpNamespace } from "./namespace.ts";
import { NsThread } from "./ns_thread.ts";
import { watchNamespace } from "./netns_watch.ts";
import {
  closeProcNet,
  openProcNet,
  PortAutoDetector,
  type ProcNetFiles,
} from "../flow/autodetect.ts";
import { PortForwarder, readEphemeralRange } from "../flow/forward.ts";
import { FORWARD_NONE } from "../config/ports.ts";

/** Environment variable telling a re-executed pasta which worker it is (internal). */
const WORKER_ENV = "PASTA_TS_WORKER";
/** How long connections may drain after the spawned command exited (ms). */
const EXIT_GRACE_MS = 5000;

/** Run pasta with `config`; returns the exit status. */
export function runPasta(config: PastaConfig): number {
  const role = Deno.env.get(WORKER_ENV);
  if (role !== undefined) {
    Deno.env.delete(WORKER_ENV);
    return role === "spawn" ? runSpawnWorker(config) : runJoinWorker(config);
  }
  if (config.target.kind === "spawn") return startSpawnWorker(config);

  const usernsPath = userNamespaceToJoin(config);
  if (usernsPath === undefined) {
    if (!config.foreground && !isBackgroundWorker()) {
      return runBackgroundStarter((env) => spawnSandboxedWorker(env, { pid: false, user: false }));
    }
    ensureLoopSignalsBlocked();
    return runJoinWorker(config);
  }
  return startJoinWorkerInUserns(config, usernsPath);
}

// --- starters -------------------------------------------------------------------------

/** Wait for `pid` (blocking, bounded only by the child) and return its exit status. */
function waitForExit(pid: number): number {
  for (;;) {
    const { pid: reaped, status } = sys.waitpid(pid, 0);
    if (reaped === pid) return sys.exitCodeOf(status);
    if (reaped !== -sys.Errno.EINTR) return 1;
  }
}

/**
 * The starter for `pasta [COMMAND]`: a worker in a new user namespace, then wait.
 * The PID file (-P) holds our PID, the one the user started (the worker's is in
 * a user namespace of its own).
 */
function startSpawnWorker(config: PastaConfig): number {
  blockLoopSignals();
  const self = selfCommand();
  const { euid, egid } = sys.ids();
  const status = openStatusPipe();
  let child;
  try {
    child = spawnProcess({
      path: self.path,
      argv: self.argv,
      env: [
        ...sys.environment({ [WORKER_ENV]: "spawn" }),
        sandboxEnvironmentEntry(),
        status.envEntry,
      ],
      cloneFlags: CLONE.NEWUSER | SANDBOX_CLONE_FLAGS,
      waitForParent: true,
      resetSignalMask: false,
    });
  } catch (e) {
    log.err(`cannot create a user namespace: ${e instanceof Error ? e.message : e}`);
    return 1;
  } finally {
    status.closeWriteEnd();
  }
  try {
    writeIdMaps(child.pid, { uid: euid, gid: egid });
    child.release();
    child.awaitExec();
  } catch (e) {
    log.err(`cannot start in a new user namespace: ${e instanceof Error ? e.message : e}`);
    child.close();
    return 1;
  }
  if (config.pidFile !== undefined) {
    try {
      writePidFile(config.pidFile, sys.getpid());
    } catch (e) {
      log.err(`${config.pidFile}: ${e instanceof Error ? e.message : e}`);
      sys.kill(child.pid, SIG.TERM);
    }
  }
  return waitAsWaiter(child.pid, status);
}

/** Become the waiter for `pid` (process.ts); if /bin/sh can't run, wait here instead. */
function waitAsWaiter(pid: number, status: StatusPipe): number {
  try {
    execWaiter("pasta", pid, status);
  } catch (e) {
    log.warn(`cannot run /bin/sh to wait for the worker: ${e instanceof Error ? e.message : e}`);
    sys.close(status.readEnd);
    return waitForExit(pid);
  }
}

/** The inode of a namespace file, or undefined. */
function nsInode(path: string): number | undefined {
  try {
    return Deno.statSync(path).ino ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The user namespace the worker must join to act on the target network
 * namespace, or undefined when it can act from where it is.
 */
function userNamespaceToJoin(config: PastaConfig): string | undefined {
  if (config.netnsOnly) return undefined;
  const target = config.target;
  const path = config.userns ?? (target.kind === "pid" ? `/proc/${target.pid}/ns/user` : undefined);
  if (path === undefined) return undefined;
  const ours = nsInode("/proc/self/ns/user");
  if (ours !== undefined && ours === nsInode(path)) return undefined;
  // Root in the initial user namespace has every capability over the others.
  if (sys.ids().euid === 0 && ours === nsInode("/proc/1/ns/user")) return undefined;
  return path;
}

/** Start the join worker inside the user namespace at `usernsPath`. */
function startJoinWorkerInUserns(config: PastaConfig, usernsPath: string): number {
  let usernsFd: number;
  try {
    usernsFd = sys.open(usernsPath, O.RDONLY | O.CLOEXEC);
  } catch (e) {
    log.err(`--userns: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  const status = config.foreground ? openStatusPipe() : undefined;
  const spawnIn = (env: string[]): number => {
    const self = selfCommand();
    const child = spawnProcess({
      path: self.path,
      argv: self.argv,
      env: [
        ...env,
        `${WORKER_ENV}=join`,
        sandboxEnvironmentEntry(),
        ...(status === undefined ? [] : [status.envEntry]),
      ],
      setns: [{ fd: usernsFd, nstype: CLONE.NEWUSER }],
      unshareFlags: SANDBOX_CLONE_FLAGS,
      setsid: !config.foreground,
      resetSignalMask: false,
    });
    child.awaitExec();
    return child.pid;
  };
  try {
    if (status === undefined) return runBackgroundStarter(spawnIn);
    blockLoopSignals();
    let pid;
    try {
      pid = spawnIn(sys.environment());
    } finally {
      status.closeWriteEnd();
    }
    sys.close(usernsFd);
    usernsFd = -1;
    return waitAsWaiter(pid, status);
  } catch (e) {
    log.err(`cannot join the user namespace ${usernsPath}: ${e instanceof Error ? e.message : e}`);
    if (status !== undefined) sys.close(status.readEnd);
    return 1;
  } finally {
    if (usernsFd >= 0) sys.close(usernsFd);
  }
}

// --- workers ----------------------------------------------------------------------------

/** Everything the worker sets up before its loop runs. */
interface Worker {
  loop: EventLoop;
  ns: NsThread;
  /** The tap device; undefined with --splice-only. */
  tap: TapDevice | undefined;
  dp: DataPath;
  /** -T/-U: listeners inside the namespace, spliced to the host's loopback. */
  outbound: PortForwarder;
  /** The host's /proc/net files, open for -T/-U auto. */
  hostFiles: ProcNetFiles | undefined;
}

/** Set up the namespace side and the data path around the tap device. */
function startWorker(config: PastaConfig, plan: NetworkPlan, netnsPath: string): Worker {
  let netnsFd: number;
  try {
    netnsFd = sys.open(netnsPath, O.RDONLY | O.CLOEXEC);
  } catch (e) {
    // Worded as the C pasta words it: tools show this line to their users.
    const why = e instanceof SysError ? `${errnoMessage(e.errno)} (${e.code})` : String(e);
    throw new Error(`Couldn't open network namespace ${netnsPath}: ${why}`);
  }
  let ns: NsThread;
  try {
    ns = new NsThread(netnsFd);
  } catch (e) {
    if (e instanceof SysError && e.errno === sys.Errno.EPERM && config.userns === undefined) {
      // The namespace belongs to a user namespace we are not in, nor privileged over.
      throw new Error(
        `${e.message}: ${netnsPath} belongs to another user namespace; ` +
          "name that one with --userns (or give the PID of a process in both)",
      );
    }
    throw e;
  } finally {
    sys.close(netnsFd);
  }
  if (config.spliceOnly) setUpLoopbackOnly(ns);
  const nsTap = config.spliceOnly ? undefined : setUpNamespace(ns, config, plan);
  const tap = nsTap === undefined
    ? undefined
    : new TapDevice(nsTap.fd, nsTap.vnetHeader, nsTap.offloads);
  // -t/-u auto must not mirror the ports -T/-U bind in the namespace: late-bound.
  const nsListeners: { forwarder?: PortForwarder } = {};
  const dp = startDataPath(
    config,
    plan,
    tap ?? new NoTapDevice(),
    (path, flags) => ns.open(path, flags),
    (domain, type, protocol) => ns.socket(domain, type, protocol),
    (proto, port) => nsListeners.forwarder?.isBound(proto, port) ?? false,
  );
  // Known before the namespace says anything: where inbound flows go.
  if (nsTap?.mac !== undefined) dp.guest.mac.set(nsTap.mac);
  if (nsTap?.linkLocal6 !== undefined) dp.guest.addr6LinkLocal.set(nsTap.linkLocal6);
  const { outbound, hostFiles } = startOutbound(config, plan, ns, dp);
  nsListeners.forwarder = outbound;
  const handleFrame = dp.handleFrame;
  const loop = dp.loop;
  if (tap !== undefined) {
    const tapKind = loop.defineKind("tap", () => {
      if (!tap.readFrames(handleFrame)) {
        log.err("the tap device went away");
        loop.stop(1);
      }
    });
    const r = loop.add(tap.fd, tapKind, 0, EPOLL.IN);
    if (r < 0) throw new sys.SysError("epoll_ctl", -r, "tap");
    dp.start();
    for (const line of startupSummary(plan, nsTap?.ifname)) log.info(line);
  } else {
    log.info("--splice-only: no tap device, only loopback traffic is forwarded");
  }
  return { loop, ns, tap, dp, outbound, hostFiles };
}

/**
 * -T/-U: listeners on the namespace's loopback whose connections and datagrams
 * are spliced to the host's loopback, and for `auto` the detector following the
 * host's bound ports (ports our own -t/-u listeners hold on the host excluded).
 */
function startOutbound(
  config: PastaConfig,
  plan: NetworkPlan,
  ns: NsThread,
  dp: DataPath,
): { outbound: PortForwarder; hostFiles: ProcNetFiles | undefined } {
  const splice = dp.tcpSplice;
  const udpSplice = dp.udpSplice;
  const outbound = new PortForwarder(dp.loop, {
    tcp: splice === undefined ? FORWARD_NONE : config.tcpOut,
    udp: udpSplice === undefined ? FORWARD_NONE : config.udpOut,
    ipv4: plan.ip4 !== undefined,
    ipv6: plan.ip6 !== undefined,
    bindLoopback: true,
    socket: (domain, type, protocol) => ns.socket(domain, type, protocol),
    ephemeral: readEphemeralRange((path, flags) => ns.open(path, flags)),
    onTcpAccept: (_listener, fd, _peer, _peerLength, targetPort, v6) => {
      if (splice !== undefined) splice.spliceToHost(fd, targetPort, v6);
      else sys.close(fd);
    },
    onUdpSocket: (fd, targetPort, v6) => {
      if (udpSplice !== undefined) udpSplice.addNamespaceSocket(fd, targetPort, v6);
      else sys.close(fd);
    },
    onUdpSocketRemoved: (fd) => {
      if (udpSplice !== undefined) udpSplice.removeNamespaceSocket(fd);
      else sys.close(fd);
    },
    tcpOption: "-T",
    udpOption: "-U",
    name: "outbound",
  });
  const autoTcp = splice !== undefined && config.tcpOut.mode === "auto";
  const autoUdp = udpSplice !== undefined && config.udpOut.mode === "auto";
  let hostFiles: ProcNetFiles | undefined;
  if (autoTcp || autoUdp) {
    hostFiles = openProcNet();
    new PortAutoDetector({
      files: hostFiles,
      forwarder: outbound,
      tcp: autoTcp,
      udp: autoUdp,
      // Ports our -t/-u listeners hold on the host are not mirrored back.
      ownPort: (proto, port) => dp.inbound.isBound(proto, port),
      name: "-T/-U auto",
    }).start(dp.loop);
  }
  return { outbound, hostFiles };
}

function stopWorker(w: Worker): void {
  w.outbound.close();
  if (w.hostFiles !== undefined) closeProcNet(w.hostFiles);
  w.dp.close();
  w.loop.close();
  w.ns.close();
  if (w.tap !== undefined) sys.close(w.tap.fd);
}

/** The command to run: COMMAND as given (resolved on PATH), or the user's shell. */
function commandLine(config: PastaConfig): { path: string; argv: string[] } | undefined {
  const target = config.target;
  const argv = target.kind === "spawn" && target.command.length > 0
    ? [...target.command]
    : [Deno.env.get("SHELL") ?? "/bin/sh"];
  const name = argv[0]!;
  if (name.includes("/")) return { path: name, argv };
  for (const dir of (Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const path = `${dir || "."}/${name}`;
    try {
      const st = Deno.statSync(path);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return { path, argv };
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Prefix of the host name the spawned command's UTS namespace gets. */
const HOSTNAME_PREFIX = "pasta-";

/** This machine's host name, or "" if it can't be read. */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** The worker that spawned a command in a new network namespace: lives as long as it. */
function runSpawnWorker(config: PastaConfig): number {
  const network = resolveNetwork(config);
  if (network === undefined) return 1;
  const command = commandLine(config);
  if (command === undefined) {
    log.err(
      `${config.target.kind === "spawn" ? config.target.command[0] : "shell"}: command not found`,
    );
    return 127;
  }
  let child;
  try {
    child = spawnProcess({
      path: command.path,
      argv: command.argv,
      env: sys.environment(),
      // A copy of our mount namespace, made now, keeps the filesystem for the
      // command when ours is emptied.
      cloneFlags: CLONE.NEWNET | CLONE.NEWUTS | (hasPrivateMounts() ? CLONE.NEWNS : 0),
      // As the C pasta: a shell prompt inside tells the namespace from the host.
      hostname: `${HOSTNAME_PREFIX}${hostName()}`,
      waitForParent: true,
    });
  } catch (e) {
    log.err(`cannot create a network namespace: ${e instanceof Error ? e.message : e}`);
    return 1;
  }
  let worker: Worker;
  try {
    worker = startWorker(config, network, `/proc/${child.pid}/ns/net`);
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    child.close();
    return 1;
  }
  const commandPid = child.pid;
  let exitStatus = -1;
  let exitedAt = 0;
  // When the command is gone, connections it left may still carry data the
  // namespace's kernel has yet to send (a client that wrote and exited): let
  // them finish, for a bounded time, before we go. The command's exit comes as
  // SIGCHLD through the loop's signalfd; this timer is armed only after it, so
  // nothing wakes up on a period while the command runs.
  const graceTimer = worker.loop.addTimer("command-exit", 100, () => {
    if (exitStatus < 0) return;
    const open = (worker.dp.tcp?.flowCount ?? 0) + (worker.dp.tcpSplice?.flowCount ?? 0);
    if (open === 0 || sys.monotonicMs() - exitedAt > EXIT_GRACE_MS) worker.loop.stop(exitStatus);
  });
  sys.timerfdSet(graceTimer, 0, 0);
  worker.loop.addSignals(LOOP_SIGNALS, (info) => {
    if (info.signo === SIG.CHLD) {
      for (let i = 0; i < 64; i++) {
        const { pid, status } = sys.waitpid(-1, WAIT.NOHANG);
        if (pid <= 0) break;
        if (pid === commandPid) {
          exitStatus = sys.exitCodeOf(status);
          exitedAt = sys.monotonicMs();
          const open = (worker.dp.tcp?.flowCount ?? 0) + (worker.dp.tcpSplice?.flowCount ?? 0);
          if (open === 0) worker.loop.stop(exitStatus);
          else sys.timerfdSet(graceTimer, 100, 100);
        }
      }
    } else if (info.signo === SIG.TERM || info.signo === SIG.HUP) {
      // Ending us would strand the command without a network: end it first.
      sys.kill(commandPid, info.signo);
    }
    // SIGINT comes from the terminal, to the command as well: the command decides.
  });
  try {
    // The starter, the PID the user knows, writes the PID file (-P): not us.
    findStartupCode();
    isolate({ ...config, pidFile: undefined });
    child.release();
    child.awaitExec();
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    stopWorker(worker);
    return 127;
  }
  releaseStartupCode();
  const status = worker.loop.run();
  stopWorker(worker);
  return status;
}

/** The worker attached to an existing namespace (PID or --netns). */
function runJoinWorker(config: PastaConfig): number {
  const target = config.target;
  const netnsPath = target.kind === "pid"
    ? `/proc/${target.pid}/ns/net`
    : target.kind === "netns"
    ? target.path
    : undefined;
  if (netnsPath === undefined) return 1;
  const network = resolveNetwork(config);
  if (network === undefined) return 1;
  let worker: Worker;
  try {
    worker = startWorker(config, network, netnsPath);
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    return 1;
  }
  worker.loop.addSignals(LOOP_SIGNALS, (info) => {
    if (info.signo === SIG.CHLD) {
      for (let i = 0; i < 64 && sys.waitpid(-1, WAIT.NOHANG).pid > 0; i++);
    } else if (info.signo !== SIG.HUP) {
      log.info(`terminating on signal ${info.signo}`);
      worker.loop.stop(0);
    } else if (config.foreground) {
      // The terminal went away (-f): end as the C pasta does, by the signal's
      // status. In the background we have no terminal, and a stray HUP is ignored.
      log.info("terminating on SIGHUP");
      worker.loop.stop(128 + SIG.HUP);
    }
  });
  if (!config.noNetnsQuit) {
    try {
      const pid = target.kind === "pid" ? target.pid : undefined;
      const gone = watchNamespace(worker.loop, pid, netnsPath, (why) => {
        log.info(`${why}: terminating`);
        worker.loop.stop(0);
      });
      if (gone !== undefined) {
        log.info(`${gone}: terminating`);
        stopWorker(worker);
        return 0;
      }
    } catch (e) {
      log.err(`cannot watch the target namespace: ${e instanceof Error ? e.message : e}`);
      stopWorker(worker);
      return 1;
    }
  }
  try {
    findStartupCode();
    isolate(config);
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    stopWorker(worker);
    return 1;
  }
  try {
    announceReady(config.pidFile);
  } catch (e) {
    log.err(`--pid: ${e instanceof Error ? e.message : e}`);
    stopWorker(worker);
    return 1;
  }
  releaseStartupCode();
  const status = worker.loop.run();
  stopWorker(worker);
  return status;
}
