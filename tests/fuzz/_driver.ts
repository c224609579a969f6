/**
 * The tap fuzzer's driver: builds passt's real data path (startDataPath, with the
 * network plan discovered from the machine it runs on) around a checking tap, and
 * feeds it fast-check generated frames (tests/fuzz/_gen.ts) through handleFrame,
 * as the tap reader would, running the event loop between frames.
 *
 * It opens real sockets for what the guest sends, so it must run where traffic
 * cannot leave: tap_fuzz_test.ts and `make fuzz` start it inside the test sandbox
 * (tests/sandbox/), a network namespace whose only link leads to a fake remote.
 * It refuses to run otherwise (no "eth0" with the sandbox's address).
 *
 * Properties, for every fuzz case (a fresh data path each time):
 * - no exception escapes handleFrame, and the loop counts no handler error;
 * - every frame sent to the guest is well-formed and answers something the guest
 *   did (the oracle, tests/fuzz/_oracle.ts); garbage gets no answer;
 * - after close(), no TCP or UDP flow is left, and the process has exactly the
 *   descriptors it had before the case (no socket leaked).
 *
 * Environment: FUZZ_RUNS (cases, default 2000), FUZZ_SEED (default: random;
 * printed), FUZZ_PATH (replay one shrunk case: with the seed fast-check printed),
 * FUZZ_STEPS (most steps per case, default 24). Exit status 0: all passed.
 */
import fc from "npm:fast-check@3";
import { parseCommandLine } from "../../src/config/options.ts";
import { type DataPath, resolveNetwork, startDataPath, type TapSide } from "../../src/datapath.ts";
import { AF, EPOLL, SOCK, SOCKADDR_IN6_SIZE } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import type { EventLoop } from "../../src/loop.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { FRAME_MAX } from "../../src/protocols/ethernet.ts";
import { NET } from "../sandbox/sandbox.ts";
import { ip4, ip6 } from "../protocols/_fixtures.ts";
import {
  caseArbitrary,
  ECHO_PORT,
  fixChecksums,
  type FuzzNet,
  mutate,
  SINK_PORT,
  type Step,
} from "./_gen.ts";
import { Oracle } from "./_oracle.ts";
import {
  ETH_P_IP,
  ETH_P_IPV6,
  ethFrame,
  hex,
  ip4Packet,
  ip6Packet,
  PROTO_TCP,
  tcpSegment,
} from "./_wire.ts";

const env = (name: string) => Deno.env.get(name);
const RUNS = Number(env("FUZZ_RUNS") ?? 2000);
const SEED = env("FUZZ_SEED") !== undefined
  ? Number(env("FUZZ_SEED"))
  : crypto.getRandomValues(new Int32Array(1))[0]!;
const PATH = env("FUZZ_PATH");
const STEPS = Number(env("FUZZ_STEPS") ?? 24);
/**
 * Fail on ICMP echo sockets left open by DataPath.close() (the default, since
 * that leak was fixed); FUZZ_STRICT_ICMP=0 only counts them.
 */
const STRICT_ICMP = env("FUZZ_STRICT_ICMP") !== "0";

// --- where we are --------------------------------------------------------------------------

/** Refuse to open sockets for fuzzed traffic anywhere but in the sandbox. */
function assertSandbox(): void {
  const ifaces = Deno.networkInterfaces();
  const inSandbox = ifaces.some((i) => i.name === NET.hostIfname && i.address === NET.host4);
  const others = ifaces.filter((i) => i.name !== "lo" && i.name !== NET.hostIfname);
  if (!inSandbox || others.length > 0) {
    console.error("tests/fuzz/_driver.ts: not in the test sandbox; run it through make fuzz");
    Deno.exit(2);
  }
}

/** The process's open descriptors and what each one is (readlink of /proc/self/fd/N). */
function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      fds.set(Number(e.name), Deno.readLinkSync(`/proc/self/fd/${e.name}`));
    } catch {
      // The descriptor readDirSync itself used, closed by now.
    }
  }
  return fds;
}

/** Inodes of the ping (ICMP echo) sockets open in this network namespace. */
function pingSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const file of ["/proc/net/icmp", "/proc/net/icmp6"]) {
    const lines = Deno.readTextFileSync(file).trim().split("\n").slice(1);
    for (const line of lines) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined) inodes.add(inode);
    }
  }
  return inodes;
}

/**
 * Descriptors open now that were not open (as the same thing) in `before`. Ping
 * sockets among them are closed and counted in `stats.icmpLeaked`: DataPath.close()
 * does not close the ICMP echo sockets (a known issue; see the report); anything
 * else is returned.
 */
function leakedFds(before: Map<number, string>): string[] {
  const pings = pingSocketInodes();
  const leaked: string[] = [];
  for (const [fd, link] of openFds()) {
    if (before.get(fd) === link) continue;
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode !== undefined && pings.has(inode) && !STRICT_ICMP) {
      sys.close(fd);
      stats.icmpLeaked++;
      continue;
    }
    leaked.push(
      `${fd} -> ${link}${inode !== undefined && pings.has(inode) ? " (ping socket)" : ""}`,
    );
  }
  return leaked;
}

const stats = { icmpLeaked: 0 };

// --- the checking tap ----------------------------------------------------------------------

const SLOTS = 32;
const SLOT_SIZE = 4 + FRAME_MAX;

/** A TapSide whose frames go to the oracle instead of a device. */
class CheckingTap implements TapSide {
  readonly #arena = sys.pinnedBuffer(SLOTS * SLOT_SIZE);
  readonly #address = Number(sys.addressOf(this.#arena));
  readonly #view = new PacketView(this.#arena, 0);
  #queued = 0;
  /** Problems seen, in order. */
  readonly problems: string[] = [];
  /** Frames sent. */
  frames = 0;

  constructor(readonly oracle: Oracle) {}

  next(): PacketView {
    if (this.#queued === SLOTS) this.flush();
    this.#view.setWindow(this.#queued * SLOT_SIZE + 4, 0);
    return this.#view;
  }

  queue(length: number): void {
    if (length <= 0 || length > FRAME_MAX) {
      this.problems.push(`queue(${length}): not a frame length`);
      return;
    }
    const start = this.#queued * SLOT_SIZE + 4;
    this.#queued++;
    this.frames++;
    const frame = this.#arena.slice(start, start + length);
    const why = this.oracle.output(frame);
    if (why !== undefined) this.problems.push(`${why}: ${hex(frame)}`);
  }

  send(view: PacketView): void {
    const out = this.next();
    const length = view.length;
    if (length <= 0 || length > FRAME_MAX) {
      this.problems.push(`send() of a ${length}-byte frame`);
      return;
    }
    out.putFrom(0, view, 0, length);
    if (!out.overflow) this.queue(length);
  }

  setCapture(): void {}

  flush(): void {
    this.#queued = 0;
  }

  room(): number {
    return SLOTS - this.#queued;
  }

  slotAddress(j: number, offset: number): number {
    return this.#address + (this.#queued + j) * SLOT_SIZE + 4 + offset;
  }
  /** No offloads: every frame carries complete checksums. */
  readonly checksumOffload = false;
  readonly segmentOffload = false;
  queueOffloaded(length: number, _segmentSize: number): void {
    this.queue(length);
  }
}

// --- services on the host's loopback: TCP and UDP echo, a TCP sink --------------------------

const LOOPBACK4 = ip4("127.0.0.1");
const LOOPBACK6 = ip6("::1");

/** Echo and sink sockets on 127.0.0.1 and ::1, served by each case's loop. */
class HostServices {
  readonly tcpEcho: number[] = [];
  readonly udpEcho: number[] = [];
  readonly sinks: number[] = [];
  readonly #conns = new Set<number>();
  readonly #buf = sys.pinnedBuffer(65536);
  readonly #sa = sys.pinnedBuffer(SOCKADDR_IN6_SIZE);
  readonly #saLen = sys.pinnedBuffer(4);

  constructor() {
    for (const v6 of [false, true]) {
      this.tcpEcho.push(this.#listen(SOCK.STREAM, v6, ECHO_PORT, 64));
      this.udpEcho.push(this.#listen(SOCK.DGRAM, v6, ECHO_PORT, 0));
      this.sinks.push(this.#listen(SOCK.STREAM, v6, SINK_PORT, 16));
    }
  }

  #listen(type: number, v6: boolean, port: number, backlog: number): number {
    const fd = sys.socket(v6 ? AF.INET6 : AF.INET, type | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
    const len = sys.encodeSockaddr(this.#sa, v6 ? LOOPBACK6 : LOOPBACK4, v6, port);
    sys.bind(fd, this.#sa, len);
    if (type === SOCK.STREAM) sys.listen(fd, backlog);
    return fd;
  }

  /** Serve the echo sockets from `loop`. */
  attach(loop: EventLoop): void {
    const conn = loop.defineKind("fuzz-echo-conn", (_i, _events, fd) => {
      const n = sys.read(fd, this.#buf, this.#buf.length);
      if (n > 0) sys.write(fd, this.#buf, n);
      else if (n !== -sys.Errno.EAGAIN) this.#drop(loop, fd);
    });
    const accept = loop.defineKind("fuzz-echo-listen", (_i, _events, fd) => {
      const c = sys.accept(fd, SOCK.NONBLOCK | SOCK.CLOEXEC);
      if (c < 0) return;
      this.#conns.add(c);
      loop.add(c, conn, 0, EPOLL.IN | EPOLL.RDHUP);
    });
    const udp = loop.defineKind("fuzz-echo-udp", (_i, _events, fd) => {
      new DataView(this.#saLen.buffer).setUint32(0, SOCKADDR_IN6_SIZE, true);
      const n = sys.recvfrom(fd, this.#buf, this.#buf.length, 0, this.#sa, this.#saLen);
      if (n >= 0) {
        const len = new DataView(this.#saLen.buffer).getUint32(0, true);
        sys.sendto(fd, this.#buf, n, 0, this.#sa, len);
      }
    });
    for (const fd of this.tcpEcho) loop.add(fd, accept, 0, EPOLL.IN);
    for (const fd of this.udpEcho) loop.add(fd, udp, 0, EPOLL.IN);
  }

  #drop(loop: EventLoop, fd: number): void {
    loop.remove(fd);
    sys.close(fd);
    this.#conns.delete(fd);
  }

  /** End of a case: close accepted connections, empty the sinks' backlogs, drain UDP. */
  reset(loop: EventLoop): void {
    for (const fd of this.#conns) this.#drop(loop, fd);
    for (const fd of this.sinks) {
      for (let c = sys.accept(fd, SOCK.CLOEXEC); c >= 0; c = sys.accept(fd, SOCK.CLOEXEC)) {
        sys.close(c);
      }
    }
    for (const fd of this.udpEcho) {
      while (sys.recv(fd, this.#buf, this.#buf.length, 0x40 /* MSG_DONTWAIT */) >= 0) {
        // Left over from the case just ended.
      }
    }
  }
}

// --- one case --------------------------------------------------------------------------------

const inBuffer = sys.pinnedBuffer(FRAME_MAX);
const inView = new PacketView(inBuffer, 0);

/** An answer to a segment the data path sent, shaped by `step`. */
function replyFrame(net: FuzzNet, oracle: Oracle, step: Extract<Step, { kind: "reply" }>) {
  const recent = oracle.recent;
  if (recent.length === 0) return undefined;
  const s = recent[recent.length - 1 - (step.pick % recent.length)]!;
  const r = step.reply;
  const seg = tcpSegment(s.guest, s.remote, {
    sport: s.guestPort,
    dport: s.remotePort,
    seq: (s.ack + r.seqDelta) >>> 0,
    ack: (s.seq + s.length + r.ackDelta) >>> 0,
    flags: r.flags,
    window: r.window,
    urgent: 0,
    options: r.options,
    payload: r.payload,
  });
  const v6 = s.guest.length === 16;
  const packet = v6
    ? ip6Packet(s.guest, s.remote, PROTO_TCP, 64, 0, new Uint8Array(0), seg)
    : ip4Packet(s.guest, s.remote, PROTO_TCP, seg, {
      tos: 0,
      id: 0,
      fragField: 0x4000,
      ttl: 64,
      options: new Uint8Array(0),
    });
  const frame = mutate(
    ethFrame(net.ourMac, net.guestMac, v6 ? ETH_P_IPV6 : ETH_P_IP, packet),
    step.mutations,
  );
  if (step.mutations.length > 0) fixChecksums(frame);
  return frame;
}

interface Context {
  net: FuzzNet;
  config: Parameters<typeof startDataPath>[0];
  plan: Parameters<typeof startDataPath>[1];
  services: HostServices;
  oracle: Oracle;
}

/** Run one case on a fresh data path; throws (with the frames fed, in hex) on failure. */
function runCase(ctx: Context, steps: readonly Step[]): void {
  const { net, oracle, services } = ctx;
  oracle.reset();
  const fdsBefore = openFds();
  const tap = new CheckingTap(oracle);
  const dp: DataPath = startDataPath(ctx.config, ctx.plan, tap, undefined);
  const loop = dp.loop;
  const handlerErrors: string[] = [];
  loop.onHandlerError((kind, e) => handlerErrors.push(`${kind}: ${(e as Error)?.stack ?? e}`));
  services.attach(loop);
  const fed: string[] = [];
  const fail = (why: string): never => {
    throw new Error(`${why}\nframes fed (hex), in order:\n${fed.join("\n")}`);
  };
  try {
    for (const step of steps) {
      if (step.kind === "wait") {
        loop.run(step.ms, 1);
        loop.run(0, 2);
        fed.push(`(wait ${step.ms} ms)`);
      } else {
        let frame: Uint8Array | undefined;
        if (step.kind === "frame") {
          frame = mutate(step.base, step.mutations);
          if (step.fixChecksums) fixChecksums(frame);
        } else {
          frame = replyFrame(net, oracle, step);
        }
        if (frame === undefined || frame.length > FRAME_MAX) continue;
        fed.push(hex(frame));
        oracle.input(frame);
        inBuffer.set(frame);
        inView.setWindow(0, frame.length);
        try {
          dp.handleFrame(inView);
        } catch (e) {
          fail(`handleFrame threw: ${(e as Error)?.stack ?? e}`);
        }
        oracle.endInput();
        loop.run(0, 2);
      }
      if (tap.problems.length > 0) fail(tap.problems.join("\n"));
      if (handlerErrors.length > 0 || loop.stats.handlerErrors > 0) {
        fail(`loop handler error: ${handlerErrors.join("\n")}`);
      }
    }
  } finally {
    services.reset(loop);
    dp.close();
    loop.close();
  }
  if (tap.problems.length > 0) fail(tap.problems.join("\n"));
  const tcpLeft = dp.tcp?.flowCount ?? 0;
  const udpLeft = dp.udp?.flowCount ?? 0;
  if (tcpLeft !== 0 || udpLeft !== 0) {
    fail(`after close(): ${tcpLeft} TCP, ${udpLeft} UDP flows left`);
  }
  const leaked = leakedFds(fdsBefore);
  if (leaked.length > 0) fail(`descriptors left open after close():\n${leaked.join("\n")}`);
}

// --- main --------------------------------------------------------------------------------------

function main(): number {
  assertSandbox();
  const parsed = parseCommandLine("passt", ["-q"]);
  if (parsed.action !== "run") throw new Error("passt's command line did not parse");
  const config = parsed.config;
  const plan = resolveNetwork(config);
  if (plan === undefined || plan.ip4 === undefined || plan.ip6 === undefined) {
    throw new Error("no IPv4 and IPv6 network plan in the sandbox");
  }
  const guestMac = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
  const net: FuzzNet = {
    ourMac: plan.ourMac,
    guestMac,
    guest4: plan.ip4.address,
    gateway4: plan.ip4.gateway ?? ip4(NET.gateway4),
    remote4: ip4(NET.remote4),
    guest6: plan.ip6.address,
    guestLL6: ip6("fe80::5054:ff:fe12:3456"),
    gateway6: plan.ip6.gateway ?? ip6(NET.gateway6),
    ourLL6: plan.ip6.ourLinkLocal,
    remote6: ip6(NET.remote6),
  };
  const oracle = new Oracle(plan.ourMac, plan.ip4.address);
  const ctx: Context = { net, config, plan, services: new HostServices(), oracle };
  // Warm up (lazily opened runtime descriptors), then check.
  runCase(ctx, []);

  const started = performance.now();
  let cases = 0;
  let frames = 0;
  console.log(`tap fuzz: ${RUNS} cases, FUZZ_SEED=${SEED}${PATH ? ` FUZZ_PATH=${PATH}` : ""}`);
  const property = fc.property(
    caseArbitrary(net, STEPS),
    (steps) => {
      cases++;
      frames += steps.length;
      runCase(ctx, steps);
    },
  );
  const result = fc.check(property, {
    numRuns: RUNS,
    seed: SEED,
    ...(PATH === undefined ? {} : { path: PATH }),
    endOnFailure: false,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const sent = [...oracle.sent].sort().map(([k, v]) => `${k} ${v}`).join(", ");
  console.log(`tap fuzz: ${cases} cases (with shrinking), ${frames} steps in ${seconds} s`);
  console.log(`tap fuzz: frames sent to the guest: ${sent}`);
  if (stats.icmpLeaked > 0) {
    console.log(
      `tap fuzz: DataPath.close() left ${stats.icmpLeaked} ICMP echo sockets open ` +
        "(counted only, as FUZZ_STRICT_ICMP=0 asks)",
    );
  }
  if (result.failed) {
    console.error(fc.defaultReportMessage(result));
    console.error(`replay: FUZZ_SEED=${result.seed} FUZZ_PATH=${result.counterexamplePath}`);
    return 1;
  }
  return 0;
}

Deno.exit(main());
