/**
 * passt: one qemu (or any client of the stream protocol) at a time, over a
 * UNIX domain socket.
 *
 * Theory of operation. After host discovery and the network plan (as pasta),
 * the data path is built around one StreamTap (tap/stream.ts), with no
 * namespace: -t/-u listen on the host and nothing is detected automatically.
 * The client's socket is either accepted on the listening socket (-s PATH, or
 * the first free /tmp/passt_N.socket) or given by -F FD, already connected.
 * One client at a time: while one is connected, a further connection is
 * accepted and closed at once. When the client goes (it closed the
 * connection, or broke the framing with a zero or oversized length), passt
 * waits for the next one, unless -1/--one-off or -F, where it exits 0.
 *
 * The listening socket is bound, and the startup summary and the qemu hint
 * printed, before readiness is announced (and the starter returns, unless
 * -f). The socket file is removed at exit.
 */
import type { PasstConfig } from "./config/config.ts";
import type { NetworkPlan } from "./config/network.ts";
import {
  type DataPath,
  resolveNetwork,
  startDataPath,
  startupSummary,
  type TapSide,
} from "./datapath.ts";
import { EPOLL, O, SIG, SOCK } from "./ffi/layout.ts";
import * as sys from "./ffi/sys.ts";
import { log } from "./log.ts";
import { isolate } from "./process/isolation.ts";
import {
  announceReady,
  findStartupCode,
  LOOP_SIGNALS,
  reapChildren,
  releaseStartupCode,
} from "./process/process.ts";
import {
  openPasstListener,
  type PasstListener,
  qemuHint,
  removePasstListener,
} from "./tap/passt_socket.ts";
import { StreamRead, StreamTap } from "./tap/stream.ts";
import { VhostRead, VhostUserTap } from "./tap/vhost_user.ts";

/** fcntl commands for the -F descriptor's status flags. */
const F_GETFL = 3;
const F_SETFL = 4;

/** Events watched on the client socket (EPOLLOUT is added while output waits). */
const CLIENT_EVENTS = EPOLL.IN | EPOLL.RDHUP;

/** Run passt with `config` (signals already blocked); returns the exit status. */
export function runPasst(config: PasstConfig): number {
  const plan = resolveNetwork(config);
  if (plan === undefined) return 1;

  let listener: PasstListener | undefined;
  if (config.fd === undefined) {
    try {
      listener = openPasstListener(config.socketPath);
    } catch (e) {
      log.err(e instanceof Error ? e.message : String(e));
      return 1;
    }
  } else if (!makeNonblocking(config.fd)) {
    log.err(`--fd: ${config.fd} is not an open descriptor`);
    return 1;
  }

  if (config.vhostUser) return runVhostUser(config, plan, listener);

  let clientKind = -1;
  // Assigned once below; declared first for the callbacks made before it.
  // deno-lint-ignore prefer-const
  let dp: DataPath;
  const tap = new StreamTap((fd, blocked) => {
    dp.loop.modify(fd, clientKind, 0, blocked ? CLIENT_EVENTS | EPOLL.OUT : CLIENT_EVENTS);
  });
  const started = startPasstDataPath(config, plan, tap, listener);
  if (started === undefined) return 1;
  dp = started;
  const loop = dp.loop;
  const handleFrame = dp.handleFrame;

  /** Forget the client; the end of passt unless it waits for the next one. */
  const disconnect = (why: string) => {
    const fd = tap.fd;
    if (fd < 0) return;
    loop.remove(fd);
    tap.detach();
    sys.close(fd);
    // Nobody answers for the guest's connections any more: end them now, so the
    // host's side sees them go and the next guest starts with a clean table.
    clientGone(config, dp, why);
  };

  const attach = (fd: number) => {
    const r = loop.add(fd, clientKind, 0, CLIENT_EVENTS);
    if (r < 0) {
      log.err(`cannot watch the client socket: ${sys.errnoMessage(-r)}`);
      sys.close(fd);
      return;
    }
    tap.attach(fd);
  };

  clientKind = loop.defineKind("passt-client", (_index, events, fd) => {
    if (fd !== tap.fd) return;
    if ((events & EPOLL.OUT) !== 0) tap.resume();
    if ((events & (EPOLL.IN | EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR)) === 0) return;
    const r = tap.readFrames(handleFrame);
    if (r === StreamRead.Closed) disconnect("client closed the connection");
    else if (r === StreamRead.BadLength) {
      log.err(`bad frame length ${tap.badLength} from the client: closing the connection`);
      disconnect("connection closed");
    } else if ((events & (EPOLL.HUP | EPOLL.ERR)) !== 0) {
      disconnect("client connection failed");
    }
  });

  return serveClients(config, plan, dp, listener, {
    connected: () => tap.fd >= 0,
    attach,
    close: () => {
      if (tap.fd >= 0) {
        const fd = tap.fd;
        tap.detach();
        sys.close(fd);
      }
    },
    hint: qemuHint,
  });
}

/** The client side of one passt: the connection to qemu, whatever it speaks. */
interface ClientSide {
  /** A client is connected. */
  connected(): boolean;
  /** Serve the connected socket `fd` (taken over). */
  attach(fd: number): void;
  /** Close the client's connection, if any (at exit). */
  close(): void;
  /** How to start qemu against the socket at `path`, as log lines. */
  hint(path: string): string[];
}

/**
 * What both kinds of passt do once their data path is made: accept clients on the
 * listener, handle signals, isolate, announce readiness and run the loop.
 */
/** The data path around `tap`; undefined (said, the listener removed) if it fails. */
function startPasstDataPath(
  config: PasstConfig,
  plan: NetworkPlan,
  tap: TapSide,
  listener: PasstListener | undefined,
): DataPath | undefined {
  try {
    return startDataPath(config, plan, tap, undefined);
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    if (listener !== undefined) removePasstListener(listener);
    return undefined;
  }
}

/**
 * The client went (`why`): nobody answers for the guest's connections any more,
 * so they end now (the host's side sees them go and the next guest starts with
 * a clean table); then passt exits (-1) or waits for the next client.
 */
function clientGone(config: PasstConfig, dp: DataPath, why: string): void {
  const tcp = dp.tcp?.resetAll() ?? 0;
  const udp = dp.udp?.closeFlows() ?? 0;
  if (tcp + udp > 0) log.info(`${why}: ${tcp} TCP connections reset, ${udp} UDP flows closed`);
  if (config.oneOff) {
    log.info(`${why}: exiting (one-off)`);
    dp.loop.stop(0);
  } else {
    log.info(`${why}: waiting for the next client`);
  }
}

function serveClients(
  config: PasstConfig,
  plan: NetworkPlan,
  dp: DataPath,
  listener: PasstListener | undefined,
  client: ClientSide,
): number {
  const loop = dp.loop;
  if (listener !== undefined) {
    const listenKind = loop.defineKind("passt-listen", (_index, _events, fd) => {
      const accepted = sys.accept(fd, SOCK.CLOEXEC | SOCK.NONBLOCK);
      if (accepted < 0) return;
      if (client.connected()) {
        log.warn("a client is already connected: refusing another connection");
        sys.close(accepted);
        return;
      }
      log.info("accepted a connection from the client");
      client.attach(accepted);
    });
    const r = loop.add(listener.fd, listenKind, 0, EPOLL.IN);
    if (r < 0) throw new sys.SysError("epoll_ctl", -r, "listening socket");
  }

  loop.addSignals(LOOP_SIGNALS, (info) => {
    if (info.signo === SIG.CHLD) {
      reapChildren(() => {});
    } else if (info.signo === SIG.HUP) {
      log.debug("SIGHUP ignored");
    } else {
      log.info(`terminating on signal ${info.signo}`);
      loop.stop(0);
    }
  });

  dp.start();
  for (const line of startupSummary(plan)) log.info(line);
  if (listener !== undefined) { for (const line of client.hint(listener.path)) log.info(line); }
  if (config.fd !== undefined) client.attach(config.fd);

  const stop = () => {
    dp.close();
    client.close();
    if (listener !== undefined) removePasstListener(listener);
    loop.close();
  };
  try {
    findStartupCode();
    isolate(config, { handOver: listener === undefined ? [] : [listener.path] });
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    stop();
    return 1;
  }
  try {
    announceReady(config.pidFile);
  } catch (e) {
    log.err(`--pid: ${e instanceof Error ? e.message : e}`);
    stop();
    return 1;
  }
  releaseStartupCode();
  const status = loop.run();
  stop();
  return status;
}

/**
 * passt --vhost-user: the client speaks vhost-user (tap/vhost_user.ts). Its
 * control socket, and each queue's kick eventfd, are watched in the loop; frames
 * from the guest go to the ingress on a kick, frames towards it are written into
 * its receive queue at the end of each loop turn, like the stream's output.
 */
function runVhostUser(
  config: PasstConfig,
  plan: NetworkPlan,
  listener: PasstListener | undefined,
): number {
  // Assigned once below; declared first for the callbacks made before it.
  // deno-lint-ignore prefer-const
  let dp: DataPath;
  let controlKind = -1;
  let kickKind = -1;
  const tap = new VhostUserTap((frame) => dp.handleFrame(frame), {
    kickChanged: (queue, fd, old) => {
      if (old >= 0) dp.loop.remove(old);
      if (fd >= 0 && dp.loop.add(fd, kickKind, queue, EPOLL.IN) < 0) {
        log.warn(`cannot watch the kick descriptor of queue ${queue}`);
      }
    },
  });
  const started = startPasstDataPath(config, plan, tap, listener);
  if (started === undefined) return 1;
  dp = started;
  const loop = dp.loop;

  const disconnect = (why: string) => {
    const fd = tap.fd;
    if (fd < 0) return;
    loop.remove(fd);
    tap.detach();
    clientGone(config, dp, why);
  };

  controlKind = loop.defineKind("vhost-user", (_index, events, fd) => {
    if (fd !== tap.fd) return;
    if ((events & EPOLL.IN) !== 0) {
      const r = tap.handleMessage();
      if (r === VhostRead.Closed) return disconnect("client closed the connection");
      if (r === VhostRead.Bad) {
        log.err("vhost-user: malformed message from the front-end: closing the connection");
        return disconnect("connection closed");
      }
      return;
    }
    if ((events & (EPOLL.RDHUP | EPOLL.HUP | EPOLL.ERR)) !== 0) disconnect("client went away");
  });
  kickKind = loop.defineKind("vhost-kick", (queue) => tap.kicked(queue));

  return serveClients(config, plan, dp, listener, {
    connected: () => tap.fd >= 0,
    attach: (fd) => {
      if (loop.add(fd, controlKind, 0, CLIENT_EVENTS) < 0) {
        log.err("cannot watch the vhost-user socket");
        sys.close(fd);
        return;
      }
      tap.attach(fd);
    },
    close: () => tap.detach(),
    hint: vhostUserHint,
  });
}

/** How to start qemu against a vhost-user socket at `path`. */
function vhostUserHint(path: string): string[] {
  return [
    `UNIX domain socket bound at ${path} (vhost-user)`,
    "You can now start qemu (>= 7.2), for example:",
    "    qemu-system-$(uname -m) ... -m 4G " +
    "-object memory-backend-memfd,id=memfd0,share=on,size=4G " +
    "-numa node,memdev=memfd0 " +
    `-chardev socket,id=chr0,path=${path} ` +
    "-netdev vhost-user,id=netdev0,chardev=chr0 -device virtio-net,netdev=netdev0",
  ];
}

/** Set O_NONBLOCK on `fd`; false if it is not an open descriptor. */
function makeNonblocking(fd: number): boolean {
  const flags = sys.tryFcntl(fd, F_GETFL);
  if (flags < 0) return false;
  return sys.tryFcntl(fd, F_SETFL, flags | O.NONBLOCK) >= 0;
}
