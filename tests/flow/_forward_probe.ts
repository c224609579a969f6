/**
 * Runs inside a throwaway user+network namespace (`unshare -rn`) built by
 * forward_test.ts, never on the host's own network: only `lo` (and, for some
 * cases, a tap device nobody reads) exists there. Each case opens forwarded-port
 * listeners with PortForwarder, plays clients against them and prints one JSON
 * object with what it saw.
 *
 * Usage: _forward_probe.ts CASE   (translate, bind, exclude, all, budget, emfile, busy, udp,
 *                                  auto)
 */

import { formatIp, parseIp } from "../../src/addr.ts";
import {
  FORWARD_AUTO,
  FORWARD_NONE,
  type PortForwarding,
  PortTableBuilder,
} from "../../src/config/ports.ts";
import { AF, IPV6_OPT, MSG, O, RLIMIT, SOCK, SOL } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { PortForwarder, type PortForwarderOptions } from "../../src/flow/forward.ts";
import { EventLoop } from "../../src/loop.ts";
import { closeProcNet, openProcNet, PortAutoDetector } from "../../src/flow/autodetect.ts";
import { NsThread } from "../../src/pasta/ns_thread.ts";

type Json = Record<string, unknown>;

function table(spec: string, mode: "passt" | "pasta" = "passt"): PortForwarding {
  const b = new PortTableBuilder("--tcp-ports", mode, true);
  for (const s of spec.split(" ")) b.add(s);
  return b.build(FORWARD_NONE);
}

interface Accepted {
  index: number;
  peer: string;
  peerPort: number;
  family: number;
  peerLen: number;
  target: number;
  v6: boolean;
}

function peerText(sa: Uint8Array): string {
  return sys.sockaddrFamily(sa) === AF.INET
    ? formatIp(sa.subarray(4, 8))
    : formatIp(sa.subarray(8, 24));
}

/** A PortForwarder recording accepts and UDP sockets. */
function forwarder(
  loop: EventLoop,
  opts: Partial<PortForwarderOptions>,
): { fwd: PortForwarder; accepted: Accepted[]; udp: number[][]; removed: number[] } {
  const accepted: Accepted[] = [];
  const udp: number[][] = [];
  const removed: number[] = [];
  const fwd = new PortForwarder(loop, {
    tcp: FORWARD_NONE,
    udp: FORWARD_NONE,
    ipv4: true,
    ipv6: true,
    onTcpAccept(index, fd, peer, peerLen, target, v6) {
      accepted.push({
        index,
        peer: peerText(peer),
        peerPort: sys.sockaddrPort(peer),
        family: sys.sockaddrFamily(peer),
        peerLen,
        target,
        v6,
      });
      sys.close(fd);
    },
    onUdpSocket(fd, target, v6) {
      udp.push([fd, target, v6 ? 6 : 4]);
    },
    onUdpSocketRemoved(fd) {
      removed.push(fd);
      sys.close(fd);
    },
    ...opts,
  });
  return { fwd, accepted, udp, removed };
}

function sockaddr(addr: string, port: number): { sa: Uint8Array<ArrayBuffer>; len: number } {
  const a = parseIp(addr)!;
  const sa = new Uint8Array(28);
  const len = a.length === 4
    ? sys.encodeSockaddrIn(sa, a, port)
    : sys.encodeSockaddrIn6(sa, a, port);
  return { sa, len };
}

/** Nonblocking connect from a fresh socket (made by `socket`): [fd, local port, result]. */
function connect(
  addr: string,
  port: number,
  socket: (d: number, t: number, p: number) => number = sys.trySocket,
): { fd: number; localPort: number; result: number } {
  const { sa, len } = sockaddr(addr, port);
  const fd = socket(len === 16 ? AF.INET : AF.INET6, SOCK.STREAM | SOCK.NONBLOCK, 0);
  if (fd < 0) throw new sys.SysError("socket", -fd);
  const result = sys.connect(fd, sa, len);
  const local = new Uint8Array(28);
  sys.getsockname(fd, local);
  return { fd, localPort: sys.sockaddrPort(local), result };
}

/** A plain listener, as some other program would have: fd. */
function plainListen(
  addr: string,
  port: number,
  tcp = true,
  socket: (d: number, t: number, p: number) => number = sys.trySocket,
): number {
  const { sa, len } = sockaddr(addr, port);
  const fd = socket(len === 16 ? AF.INET : AF.INET6, tcp ? SOCK.STREAM : SOCK.DGRAM, 0);
  if (fd < 0) throw new sys.SysError("socket", -fd);
  if (len === 28) sys.setsockoptInt(fd, SOL.IPV6, IPV6_OPT.V6ONLY, 0);
  sys.bind(fd, sa, len, `${addr} ${port}`);
  if (tcp) sys.listen(fd, 16);
  return fd;
}

/** Run the loop until `done()` or `ms` elapsed; returns the time taken (ms). */
function runUntil(loop: EventLoop, done: () => boolean, ms: number): number {
  const start = performance.now();
  while (!done() && performance.now() - start < ms) loop.run(50, 1);
  return performance.now() - start;
}

function errorOf(f: () => unknown): Json | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    const err = e as Error & { option?: string; port?: number; errno?: number };
    return { name: err.name, message: err.message, option: err.option, port: err.port };
  }
}

const cases: Record<string, () => Json> = {
  translate() {
    const loop = new EventLoop();
    const { fwd, accepted } = forwarder(loop, { tcp: table("2222:22") });
    const fd = fwd.listenerFd(0);
    const name = new Uint8Array(28);
    sys.getsockname(fd, name);
    const info = {
      listeners: fwd.listenerCount(),
      family: sys.sockaddrFamily(name),
      port: sys.sockaddrPort(name),
      v6only: sys.getsockoptInt(fd, SOL.IPV6, IPV6_OPT.V6ONLY),
      bound2222: fwd.isBound("tcp", 2222),
      bound22: fwd.isBound("tcp", 22),
    };
    const c4 = connect("127.0.0.1", 2222);
    runUntil(loop, () => accepted.length >= 1, 2000);
    const c6 = connect("::1", 2222);
    runUntil(loop, () => accepted.length >= 2, 2000);
    sys.close(c4.fd);
    sys.close(c6.fd);
    fwd.close();
    const after = fwd.listenerCount();
    loop.close();
    return { ...info, accepted, client4Port: c4.localPort, client6Port: c6.localPort, after };
  },

  bind() {
    // A tap device nobody reads gives a second interface. Local connections are
    // matched against the interface of the address they are made to.
    const loop = new EventLoop();
    const { fwd, accepted } = forwarder(loop, {
      tcp: table("%lo/2223 %tap0/2224 10.0.0.1/2225 [::1]/2226 [::]/2227"),
    });
    const tries: Json = {};
    for (
      const [label, addr, port] of [
        ["lo", "127.0.0.1", 2223],
        ["lo-other", "10.0.0.1", 2223],
        ["tap0", "10.0.0.1", 2224],
        ["tap0-other", "127.0.0.1", 2224],
        ["addr-match", "10.0.0.1", 2225],
        ["addr-other", "127.0.0.1", 2225],
        ["v6-addr", "::1", 2226],
        ["v6-addr-v4", "127.0.0.1", 2226],
        ["v6-any-v4", "127.0.0.1", 2227],
      ] as const
    ) {
      const before = accepted.length;
      const c = connect(addr, port);
      runUntil(loop, () => accepted.length > before, 300);
      tries[label] = accepted.length > before ? accepted[accepted.length - 1]!.target : -1;
      sys.close(c.fd);
    }
    const listeners = fwd.listenerCount();
    fwd.close();
    loop.close();
    return { listeners, tries };
  },

  exclude() {
    const loop = new EventLoop();
    const { fwd } = forwarder(loop, { tcp: table("2000-2010,~2003-2005") });
    const bound: number[] = [];
    for (let p = 1990; p <= 2020; p++) if (fwd.isBound("tcp", p)) bound.push(p);
    const listeners = fwd.listenerCount();
    fwd.close();
    loop.close();
    return { bound, listeners };
  },

  all() {
    // The shell set ip_local_port_range to 3000-60999; the soft limit starts low.
    sys.setrlimit(RLIMIT.NOFILE, 1024, sys.getrlimit(RLIMIT.NOFILE)[1]);
    const loop = new EventLoop();
    const busy = plainListen("::", 80);
    const busy4 = plainListen("0.0.0.0", 81);
    const softBefore = sys.getrlimit(RLIMIT.NOFILE)[0];
    const { fwd } = forwarder(loop, { tcp: table("all") });
    const result = {
      softBefore,
      softAfter: sys.getrlimit(RLIMIT.NOFILE)[0],
      listeners: fwd.listenerCount(),
      bound1: fwd.isBound("tcp", 1),
      bound79: fwd.isBound("tcp", 79),
      bound80: fwd.isBound("tcp", 80),
      bound81: fwd.isBound("tcp", 81),
      bound2999: fwd.isBound("tcp", 2999),
      bound3000: fwd.isBound("tcp", 3000),
      bound49151: fwd.isBound("tcp", 49151),
      exclusionOnly: 0,
    };
    fwd.close();
    const ex = forwarder(loop, { tcp: table("~1-2899") });
    result.exclusionOnly = ex.fwd.listenerCount();
    ex.fwd.close();
    sys.close(busy);
    sys.close(busy4);
    loop.close();
    return result;
  },

  budget() {
    // The shell set ip_local_port_range to 3000-60999.
    sys.setrlimit(RLIMIT.NOFILE, 1024, 1024);
    const loop = new EventLoop();
    const allError = errorOf(() => forwarder(loop, { tcp: table("all") }));
    // Nothing bindable: every port of the exclusion-only spec is ephemeral.
    const noneError = errorOf(() => forwarder(loop, { tcp: table("~1-2999") }));
    loop.close();
    return { allError, noneError };
  },

  emfile() {
    // Descriptors run out with connections waiting: accepting pauses instead of
    // spinning, and resumes once descriptors are free.
    const loop = new EventLoop();
    const { fwd, accepted } = forwarder(loop, { tcp: table("2600"), name: "inbound" });
    const clients = [0, 1, 2].map(() => connect("127.0.0.1", 2600).fd);
    const fillers: number[] = [];
    for (let i = 0; i < 100_000; i++) {
      const fd = sys.tryOpen("/dev/null", O.RDONLY | O.CLOEXEC);
      if (fd < 0) break;
      fillers.push(fd);
    }
    const turnsBefore = loop.stats.turns;
    runUntil(loop, () => false, 500);
    const turnsStarved = loop.stats.turns - turnsBefore;
    const acceptedStarved = accepted.length;
    for (const fd of fillers.splice(0, 16)) sys.close(fd);
    const resumeMs = runUntil(loop, () => accepted.length === 3, 3000);
    for (const fd of [...fillers, ...clients]) sys.close(fd);
    const r = {
      fillers: fillers.length + 16,
      turnsStarved,
      acceptedStarved,
      pauses: fwd.acceptPauses,
      accepted: accepted.length,
      resumeMs,
    };
    fwd.close();
    loop.close();
    return r;
  },

  busy() {
    const loop = new EventLoop();
    const busy = plainListen("::", 2300);
    const explicit = errorOf(() => forwarder(loop, { tcp: table("2299-2301") }));
    const udpBusy = plainListen("::", 2400, false);
    const udp = errorOf(() => forwarder(loop, { udp: table("2400"), udpOption: "-u" }));
    const bad = errorOf(() => forwarder(loop, { tcp: table("%nosuchif0/2500") }));
    // After a failure nothing stays open: the same ports can be taken again.
    const again = forwarder(loop, { tcp: table("2299,2301") });
    const listeners = again.fwd.listenerCount();
    again.fwd.close();
    sys.close(busy);
    sys.close(udpBusy);
    loop.close();
    return { explicit, udp, bad, listeners };
  },

  udp() {
    const loop = new EventLoop();
    const { fwd, udp, removed } = forwarder(loop, { udp: table("5000-5002:6000-6002") });
    const ports = udp.map(([fd]) => {
      const name = new Uint8Array(28);
      sys.getsockname(fd!, name);
      return sys.sockaddrPort(name);
    });
    // A datagram to 127.0.0.1:5001 arrives on the (dual-stack) socket for 5001.
    const client = sys.socket(AF.INET, SOCK.DGRAM, 0);
    const { sa, len } = sockaddr("127.0.0.1", 5001);
    const msg = new TextEncoder().encode("ping");
    sys.sendto(client, msg, msg.length, 0, sa, len);
    const target = udp.find(([fd]) => {
      const name = new Uint8Array(28);
      sys.getsockname(fd!, name);
      return sys.sockaddrPort(name) === 5001;
    })!;
    const buf = new Uint8Array(64);
    const from = new Uint8Array(28);
    const fromLen = new Uint8Array(new Uint32Array([28]).buffer);
    const n = sys.recvfrom(target[0]!, buf, 64, MSG.DONTWAIT, from, fromLen);
    const listeners = fwd.listenerCount();
    fwd.close();
    sys.close(client);
    loop.close();
    return {
      sockets: udp.map(([, t, v]) => [t, v]),
      ports,
      received: n,
      from: peerText(from),
      listeners,
      removed: removed.length,
      after: fwd.listenerCount(),
    };
  },

  auto() {
    // A second namespace, child of this one, for the "target" side.
    const child = new Deno.Command("unshare", {
      args: ["-n", "sh", "-c", "ip link set lo up && exec sleep 60"],
    }).spawn();
    const ours = Deno.statSync("/proc/self/ns/net").ino;
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      try {
        const theirs = Deno.statSync(`/proc/${child.pid}/ns/net`).ino;
        const comm = Deno.readTextFileSync(`/proc/${child.pid}/comm`).trim();
        if (theirs !== ours && comm === "sleep") break;
      } catch {
        // not yet
      }
    }
    const netnsFd = sys.open(`/proc/${child.pid}/ns/net`, O.RDONLY | O.CLOEXEC);
    const ns = new NsThread(netnsFd);
    sys.close(netnsFd);
    const nsSocket = ns.socket.bind(ns);
    const loop = new EventLoop();

    // -t auto / -u auto: host side (here), following the namespace.
    const host = forwarder(loop, { tcp: FORWARD_AUTO, udp: FORWARD_AUTO, name: "host" });
    // -T auto: namespace side, following this side.
    const inNs = forwarder(loop, {
      tcp: FORWARD_AUTO,
      udp: FORWARD_NONE,
      socket: nsSocket,
      tcpOption: "-T",
      name: "ns",
    });
    const extraOwn = new Set([7003]);
    const nsFiles = openProcNet((path, flags) => ns.open(path, flags));
    const hostFiles = openProcNet();
    const inbound = new PortAutoDetector({
      files: nsFiles,
      forwarder: host.fwd,
      tcp: true,
      udp: true,
      ownPort: (proto, port) => inNs.fwd.isBound(proto, port) || extraOwn.has(port),
      name: "-t/-u auto",
    });
    const outbound = new PortAutoDetector({
      files: hostFiles,
      forwarder: inNs.fwd,
      tcp: true,
      udp: false,
      ownPort: (proto, port) => host.fwd.isBound(proto, port),
      name: "-T auto",
    });

    const initial = host.fwd.listenerCount();
    // Programs in the namespace: TCP 7001, UDP 7002, TCP 7003 (ours, by extraOwn).
    const app = plainListen("0.0.0.0", 7001, true, nsSocket);
    const appUdp = plainListen("0.0.0.0", 7002, false, nsSocket);
    const appOwn = plainListen("0.0.0.0", 7003, true, nsSocket);
    // A program on this side: TCP 7010, for -T auto.
    const hostApp = plainListen("0.0.0.0", 7010);
    inbound.start(loop);
    outbound.start(loop);
    const appearMs = runUntil(
      loop,
      () => host.fwd.isBound("tcp", 7001) && host.fwd.isBound("udp", 7002),
      2500,
    );
    runUntil(loop, () => inNs.fwd.isBound("tcp", 7010), 2500);
    const seen = {
      tcp7001: host.fwd.isBound("tcp", 7001),
      udp7001: host.fwd.isBound("udp", 7001),
      udp7002: host.fwd.isBound("udp", 7002),
      tcp7003: host.fwd.isBound("tcp", 7003),
      tcp7010host: host.fwd.isBound("tcp", 7010),
      tcp7010ns: inNs.fwd.isBound("tcp", 7010),
      tcp7001ns: inNs.fwd.isBound("tcp", 7001),
      udpSockets: host.udp.map(([, t, v]) => [t, v]),
    };

    // A client on this side reaches the host-side listener for 7001…
    const c = connect("127.0.0.1", 7001);
    runUntil(loop, () => host.accepted.length > 0, 1000);
    // …and one in the namespace the namespace-side listener for 7010.
    const cNs = connect("127.0.0.1", 7010, nsSocket);
    runUntil(loop, () => inNs.accepted.length > 0, 1000);
    sys.close(c.fd);
    sys.close(cNs.fd);

    // The program in the namespace closes its sockets: the forwarding goes away.
    sys.close(app);
    sys.close(appUdp);
    const goneMs = runUntil(
      loop,
      () => !host.fwd.isBound("tcp", 7001) && !host.fwd.isBound("udp", 7002),
      2500,
    );
    const gone = {
      tcp7001: host.fwd.isBound("tcp", 7001),
      udp7001: host.fwd.isBound("udp", 7001),
      udp7002: host.fwd.isBound("udp", 7002),
      removedUdp: host.removed.length,
    };
    const stats = { inbound: inbound.stats, outbound: outbound.stats };
    host.fwd.close();
    inNs.fwd.close();
    closeProcNet(nsFiles);
    closeProcNet(hostFiles);
    sys.close(appOwn);
    sys.close(hostApp);
    loop.close();
    ns.close();
    sys.kill(child.pid, 15);
    return {
      initial,
      appearMs,
      seen,
      accepted: host.accepted,
      acceptedNs: inNs.accepted,
      goneMs,
      gone,
      stats,
      listenersAfter: host.fwd.listenerCount(),
    };
  },
};

const name = Deno.args[0] ?? "";
const run = cases[name];
if (run === undefined) {
  console.error(`unknown case ${name}`);
  Deno.exit(2);
}
console.log(JSON.stringify(run()));
// The auto case's namespace thread and child must not keep us alive.
Deno.exit(0);
