/**
 * Listening sockets for forwarded ports: -t/-u (host side, both modes) and, with
 * the same code, pasta's -T/-U (namespace side, sockets made by the namespace
 * thread).
 *
 * Theory of operation. A `PortForwarder` turns one TCP and one UDP forwarding
 * table into listening sockets, all at start for static tables, and port by port
 * for pasta's "auto" tables as the detector (src/flow/autodetect.ts) finds ports
 * bound on the other side. Each (port, bind scope) gets:
 * - without a bind address, with both IP versions on: one IPv6 socket with
 *   IPV6_V6ONLY off, which serves IPv4 too ("IPv6 bound ports are also forwarded
 *   for IPv4"); if that fails because the port is partly taken or IPv6 is off,
 *   one IPv4 and one IPv6-only socket, whichever bind;
 * - with a bind address, one socket of that family; with "%IF", SO_BINDTODEVICE;
 *   with --freebind, IP_FREEBIND or IPV6_FREEBIND first, so that an address the host
 *   does not have yet can be bound, and forwarding starts when it appears.
 * TCP sockets set SO_REUSEADDR (so a port in TIME_WAIT can be taken again) and
 * listen; the loop reports them readable and we accept in a bounded batch,
 * passing each connection on with the peer address and the target port (the
 * ":" translation). An IPv4 peer reaching an IPv6 socket arrives as ::ffff:a.b.c.d;
 * we rewrite it in place to a sockaddr_in, so the callbacks only ever see an
 * address of its real family. UDP sockets are bound and handed to the UDP module
 * at the end of start-up, which owns them from then on (see `onUdpSocket`).
 *
 * "all" and exclusion-only specifications (best-effort rules) skip the ephemeral
 * range (/proc/sys/net/ipv4/ip_local_port_range: those ports belong to outgoing
 * connections) and ports that cannot be bound, and fail only when nothing at all
 * could be bound. An explicit port that cannot be bound is a start-up error naming
 * the option, the port and the reason.
 *
 * Descriptors: a listener is one descriptor, and "all" means tens of thousands of
 * them, so before binding we count what is needed, raise RLIMIT_NOFILE's soft
 * limit up to the hard one if short, and stop with a clear message if even that
 * is not enough.
 *
 * Nothing here runs per packet except the accept handler, which allocates
 * nothing: the peer address goes through one preallocated buffer that the callback
 * must copy from if it keeps it.
 */
import { formatIp, isLinkLocal6, isUnspecified6, isV4Mapped6 } from "../addr.ts";
import {
  describePortForwarding,
  PORT_MAX,
  type PortForwarding,
  type PortRule,
} from "../config/ports.ts";
import {
  AF,
  EPOLL,
  IP_OPT,
  IPV6_OPT,
  O,
  RLIMIT,
  SO,
  SOCK,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_STORAGE_SIZE,
  SOL,
} from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import type { EventLoop } from "../loop.ts";
import type { DeadlineQueue } from "../timers.ts";

/** Connections accepted per readiness event of one listener, at most. */
export const ACCEPT_BATCH = 64;
/** listen(2) backlog (the kernel caps it at net.core.somaxconn). */
const LISTEN_BACKLOG = 4096;
/** Descriptors kept free for everything else when budgeting for listeners. */
export const DESCRIPTOR_RESERVE = 512;
/** Largest listener index an epoll reference can carry. */
const LISTENER_MAX = 0xffffff;

/** Transport protocol of a listener. */
export type ForwardProto = "tcp" | "udp";

/** An inclusive range of local ports, e.g. the ephemeral range. */
export interface PortSpan {
  /** First port. */
  readonly first: number;
  /** Last port. */
  readonly last: number;
}

/** The kernel's default ephemeral range, used when the sysctl can't be read. */
export const DEFAULT_EPHEMERAL: PortSpan = { first: 32768, last: 60999 };

/**
 * The ephemeral port range of the namespace `open` opens files in (default: this
 * thread's, through /proc/thread-self). `open` returns a descriptor or -errno.
 */
export function readEphemeralRange(
  open: (path: string, flags: number) => number = sys.tryOpen,
): PortSpan {
  const fd = open("/proc/sys/net/ipv4/ip_local_port_range", O.RDONLY | O.CLOEXEC);
  if (fd < 0) return DEFAULT_EPHEMERAL;
  try {
    const buf = new Uint8Array(64);
    const n = sys.read(fd, buf);
    if (n <= 0) return DEFAULT_EPHEMERAL;
    const [first, last] = new TextDecoder().decode(buf.subarray(0, n)).trim().split(/\s+/)
      .map(Number);
    if (first === undefined || last === undefined || !(first > 0 && last >= first)) {
      return DEFAULT_EPHEMERAL;
    }
    return { first, last };
  } finally {
    sys.close(fd);
  }
}

/** A start-up failure to bind a forwarded port, or to bind any at all. */
export class PortBindError extends Error {
  /** The option the port came from, e.g. "-t". */
  readonly option: string;
  /** The port (0 when the failure is not about one port). */
  readonly port: number;
  /** The errno of the failure (0 when there was none, e.g. a descriptor shortage). */
  readonly errno: number;

  /** Builds the error; `message` is the one line printed to the user. */
  constructor(message: string, option: string, port: number, errno: number) {
    super(message);
    this.name = "PortBindError";
    this.option = option;
    this.port = port;
    this.errno = errno;
  }
}

/** What a `PortForwarder` forwards and where its sockets and connections go. */
export interface PortForwarderOptions {
  /** TCP table (-t, or -T on the namespace side). */
  readonly tcp: PortForwarding;
  /** UDP table (-u, or -U on the namespace side). */
  readonly udp: PortForwarding;
  /** IPv4 is enabled. */
  readonly ipv4: boolean;
  /** IPv6 is enabled. */
  readonly ipv6: boolean;
  /**
   * A connection was accepted on listener `listenIndex`: `connFd` (nonblocking,
   * close-on-exec) now belongs to the callee. `peer` holds the peer's sockaddr_in or
   * sockaddr_in6 (`peerLen` bytes, an IPv4-mapped peer already turned into a
   * sockaddr_in); it is reused for the next connection, so copy what you keep.
   * `targetPort` is the port to connect to on the other side; `v6` the peer's family;
   * `targetAddr` the address to reach there (a rule's ":ADDR"), or undefined for the
   * guest's or namespace's own.
   */
  readonly onTcpAccept: (
    listenIndex: number,
    connFd: number,
    peer: Uint8Array<ArrayBuffer>,
    peerLen: number,
    targetPort: number,
    v6: boolean,
    targetAddr: Uint8Array | undefined,
  ) => void;
  /**
   * A bound UDP socket for a forwarded port, given once start-up can no longer fail
   * (or when an "auto" port appears): the callee reads it from now on and gives it
   * up through `onUdpSocketRemoved`. `v6` is its family; an IPv6 socket bound
   * without an address also receives IPv4 datagrams, from ::ffff:a.b.c.d sources.
   * `targetAddr` as for `onTcpAccept`.
   */
  readonly onUdpSocket: (
    fd: number,
    targetPort: number,
    v6: boolean,
    targetAddr: Uint8Array | undefined,
  ) => void;
  /**
   * A UDP socket given by `onUdpSocket` is withdrawn (its "auto" port went away, or
   * `close()` was called): the callee stops using `fd` and closes it. Without this
   * callback the forwarder closes it itself.
   */
  readonly onUdpSocketRemoved?: (fd: number) => void;
  /**
   * socket(2) in the namespace the listeners belong to: the descriptor or -errno.
   * Default: this thread's (the init namespace). pasta's -T/-U pass the namespace
   * thread's `socket`.
   */
  readonly socket?: (domain: number, type: number, protocol: number) => number;
  /**
   * Bind ports given without an address (and "auto" ports) to 127.0.0.1 and ::1
   * instead of any address: pasta's -T/-U listeners, which only forward local
   * traffic of the namespace (see tcp_splice.ts). Default false.
   */
  readonly bindLoopback?: boolean;
  /**
   * --freebind: set IP_FREEBIND / IPV6_FREEBIND on listeners bound to an address, so
   * that it need not be configured on the host (yet). Default false.
   */
  readonly freebind?: boolean;
  /** Option names for messages; default "-t" and "-u". */
  readonly tcpOption?: string;
  /** See `tcpOption`. */
  readonly udpOption?: string;
  /**
   * Ports that best-effort rules ("all", exclusion-only specs) leave alone; default:
   * `readEphemeralRange()` of this thread's namespace.
   */
  readonly ephemeral?: PortSpan;
  /** Name for the loop's descriptor kind and for messages; default "forward". */
  readonly name?: string;
}

const PROTO_TCP = 0;
const PROTO_UDP = 1;

/** The first rule of `table` covering `port` (no allocation: the detector asks each scan). */
function ruleFor(table: PortForwarding, port: number): PortRule | undefined {
  for (const rule of table.rules) if (port >= rule.first && port <= rule.last) return rule;
  return undefined;
}

/** One port's planned binding, before any socket exists. */
interface Planned {
  readonly proto: number;
  readonly port: number;
  readonly target: number;
  readonly rule: PortRule;
}

/** Listening sockets for one pair of forwarding tables; see the file comment. */
export class PortForwarder {
  readonly #loop: EventLoop;
  readonly #kind: number;
  readonly #opts: PortForwarderOptions;
  readonly #socket: (domain: number, type: number, protocol: number) => number;
  readonly #tcpOption: string;
  readonly #udpOption: string;

  // Listener table, indexed by the epoll reference's index. fd -1: free slot.
  readonly #fd: number[] = [];
  readonly #proto: number[] = [];
  readonly #port: number[] = [];
  readonly #target: number[] = [];
  readonly #targetAddr: (Uint8Array | undefined)[] = [];
  /** The target address of the rule being bound, recorded by `#listen` (setup only). */
  #pendingTargetAddr: Uint8Array | undefined;
  readonly #v6: boolean[] = [];
  /** UDP listeners given to `onUdpSocket` (withdrawn through `onUdpSocketRemoved`). */
  readonly #handedOff: boolean[] = [];
  readonly #free: number[] = [];
  #open = 0;
  /** Listeners per local port: [tcp, udp], for `isBound`. */
  readonly #perPort = [new Uint16Array(PORT_MAX + 1), new Uint16Array(PORT_MAX + 1)];
  /** Listener indices + 1 of "auto" ports, two per port (IPv4/IPv6 fallback): [tcp, udp]. */
  readonly #autoSlots = [
    new Int32Array((PORT_MAX + 1) * 2),
    new Int32Array((PORT_MAX + 1) * 2),
  ];
  /** Bit p set: "auto" port p is bound; [tcp, udp]. */
  readonly #autoMaps = [new Uint8Array((PORT_MAX + 1) / 8), new Uint8Array((PORT_MAX + 1) / 8)];
  #closed = false;

  // Scratch, reused: the bind address and the accepted peer.
  readonly #sockaddr = new Uint8Array(SOCKADDR_STORAGE_SIZE);
  readonly #peer = sys.pinnedBuffer(SOCKADDR_STORAGE_SIZE);
  readonly #peerLen = sys.pinnedBuffer(4);
  readonly #peerLenView = new DataView(this.#peerLen.buffer);
  readonly #ifnames = new Map<string, Uint8Array<ArrayBuffer>>();

  /** Accept errors other than EAGAIN, counted (EMFILE, ECONNABORTED…). */
  acceptErrors = 0;
  /** Times accepting paused because descriptors ran out. */
  acceptPauses = 0;
  /** Listeners whose readiness is ignored until descriptors are back, and the retry timer. */
  readonly #paused: number[] = [];
  #lastPauseLog = -Infinity;
  /**
   * The retry, a deadline in the loop's shared queue (one object: this forwarder),
   * set only while accepting is paused. Needs no descriptor of its own: when it
   * is needed, there are none to make one with.
   */
  readonly #resumeTimer: DeadlineQueue;

  /**
   * Open every listener of the static tables ("auto" tables start empty). Throws a
   * `PortBindError` naming the option when an explicit port can't be bound, when no
   * port of an "all" or exclusion-only spec could be, or when descriptors would run
   * out; nothing stays open then.
   */
  constructor(loop: EventLoop, opts: PortForwarderOptions) {
    this.#loop = loop;
    this.#opts = opts;
    this.#socket = opts.socket ?? sys.trySocket;
    this.#tcpOption = opts.tcpOption ?? "-t";
    this.#udpOption = opts.udpOption ?? "-u";
    this.#kind = loop.defineKind(`listen:${opts.name ?? "forward"}`, (index) => {
      this.#accept(index);
    });
    this.#resumeTimer = loop.deadlines("accept-retry", 1, () => this.#resume());
    try {
      this.#bindStatic(opts.ephemeral ?? readEphemeralRange());
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Open listening sockets: TCP and UDP together. */
  listenerCount(): number {
    return this.#open;
  }

  /** Whether any listener of ours is bound to local `port` for `proto`. */
  isBound(proto: ForwardProto, port: number): boolean {
    return (this.#perPort[proto === "tcp" ? PROTO_TCP : PROTO_UDP]![port] ?? 0) > 0;
  }

  /**
   * Whether the "auto" table of `proto` takes `port` at all: any port, unless the
   * table was given ports with "auto" ("8000-8010,auto").
   */
  autoAllows(proto: ForwardProto, port: number): boolean {
    const table = proto === "tcp" ? this.#opts.tcp : this.#opts.udp;
    return table.mode !== "auto" || table.rules.length === 0 ||
      ruleFor(table, port) !== undefined;
  }

  /** Whether `port` is currently forwarded by the "auto" machinery for `proto`. */
  isAutoBound(proto: ForwardProto, port: number): boolean {
    return (this.#autoSlots[proto === "tcp" ? PROTO_TCP : PROTO_UDP]![port * 2] ?? 0) > 0;
  }

  /** The "auto" ports bound for `proto`: bit p (byte p >> 3, bit p & 7) = port p. Read-only. */
  autoPortMap(proto: ForwardProto): Uint8Array {
    return this.#autoMaps[proto === "tcp" ? PROTO_TCP : PROTO_UDP]!;
  }

  /** The descriptor of listener `index`, or -1 (for tests and diagnostics). */
  listenerFd(index: number): number {
    return this.#fd[index] ?? -1;
  }

  /**
   * Start forwarding `port` for `proto` (an "auto" port: any address, same target
   * port). Returns 0, or -errno if no socket could be bound. A UDP socket goes to
   * `onUdpSocket` right away.
   */
  bindAuto(proto: ForwardProto, port: number): number {
    const p = proto === "tcp" ? PROTO_TCP : PROTO_UDP;
    const slots = this.#autoSlots[p]!;
    if (slots[port * 2]! > 0) return 0;
    const made: number[] = [];
    // "8000-8010,auto", "::1/auto": the rule covering the port says how, if any.
    const table = p === PROTO_TCP ? this.#opts.tcp : this.#opts.udp;
    const rule = table.mode === "auto" ? ruleFor(table, port) : undefined;
    if (table.mode === "auto" && table.rules.length > 0 && rule === undefined) {
      return -sys.Errno.EPERM;
    }
    this.#pendingTargetAddr = rule?.targetAddr;
    const r = rule === undefined
      ? this.#bindScope(p, port, port, undefined, undefined, made)
      : this.#bindScope(
        p,
        port,
        rule.targetFirst + (port - rule.first),
        rule.bindAddr,
        rule.bindIfname,
        made,
      );
    this.#pendingTargetAddr = undefined;
    if (made.length === 0) return r < 0 ? r : -sys.Errno.EINVAL;
    slots[port * 2] = made[0]! + 1;
    slots[port * 2 + 1] = made.length > 1 ? made[1]! + 1 : 0;
    this.#autoMaps[p]![port >>> 3]! |= 1 << (port & 7);
    if (p === PROTO_UDP) { for (const index of made) this.#handOff(index); }
    return 0;
  }

  /** Stop forwarding the "auto" `port` for `proto` (no-op if it isn't). */
  unbindAuto(proto: ForwardProto, port: number): void {
    const p = proto === "tcp" ? PROTO_TCP : PROTO_UDP;
    const slots = this.#autoSlots[p]!;
    this.#autoMaps[p]![port >>> 3]! &= ~(1 << (port & 7));
    for (let k = 0; k < 2; k++) {
      const index = slots[port * 2 + k]! - 1;
      slots[port * 2 + k] = 0;
      if (index >= 0) this.#release(index);
    }
  }

  /** Close every listener (UDP ones through `onUdpSocketRemoved`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let i = 0; i < this.#fd.length; i++) if (this.#fd[i]! >= 0) this.#release(i);
    for (const slots of this.#autoSlots) slots.fill(0);
    for (const map of this.#autoMaps) map.fill(0);
  }

  // --- start-up ---------------------------------------------------------------------------

  #bindStatic(ephemeral: PortSpan): void {
    const plans: Planned[] = [];
    const tables = [this.#opts.tcp, this.#opts.udp];
    const bestEffortTable = [false, false];
    const ephemeralSkipped = [0, 0];
    for (let p = PROTO_TCP; p <= PROTO_UDP; p++) {
      // An "auto" table's rules only restrict what the detector may bind.
      if (tables[p]!.mode === "auto") continue;
      for (const rule of tables[p]!.rules) {
        if (rule.bestEffort) bestEffortTable[p] = true;
        for (let port = rule.first; port <= rule.last; port++) {
          if (rule.bestEffort && port >= ephemeral.first && port <= ephemeral.last) {
            ephemeralSkipped[p]!++;
            continue;
          }
          plans.push({ proto: p, port, target: rule.targetFirst + (port - rule.first), rule });
        }
      }
    }
    if (plans.length > 0) this.#ensureDescriptors(plans);

    const bestEffortBound = [0, 0];
    const lastBestEffortError = [0, 0];
    const made: number[] = [];
    for (const plan of plans) {
      made.length = 0;
      this.#pendingTargetAddr = plan.rule.targetAddr;
      const r = this.#bindScope(
        plan.proto,
        plan.port,
        plan.target,
        plan.rule.bindAddr,
        plan.rule.bindIfname,
        made,
      );
      if (r === -sys.Errno.EMFILE || r === -sys.Errno.ENFILE) {
        throw new PortBindError(
          `${this.#optionOf(plan.proto)}: ran out of file descriptors after ${this.#open} ` +
            `listening sockets, at port ${plan.port}: raise the open file limit (ulimit -n)`,
          this.#optionOf(plan.proto),
          plan.port,
          -r,
        );
      }
      if (plan.rule.bestEffort) {
        if (made.length > 0) bestEffortBound[plan.proto]!++;
        else lastBestEffortError[plan.proto] = -r;
      } else if (made.length === 0) {
        throw this.#bindError(plan, -r);
      }
    }
    for (let p = PROTO_TCP; p <= PROTO_UDP; p++) {
      if (bestEffortTable[p] && bestEffortBound[p] === 0) {
        const option = this.#optionOf(p);
        const errno = lastBestEffortError[p]!;
        const why = errno > 0
          ? ` (last error: ${sys.errnoMessage(errno)} (${sys.errnoName(errno)}))`
          : ephemeralSkipped[p]! > 0
          ? ` (ports ${ephemeral.first}-${ephemeral.last} are ephemeral, see ` +
            `net.ipv4.ip_local_port_range)`
          : "";
        throw new PortBindError(
          `${option} ${describePortForwarding(tables[p]!)}: no port could be forwarded${why}`,
          option,
          0,
          errno,
        );
      }
    }
    if (log.debugging) {
      log.debug(
        `${this.#opts.name ?? "forward"}: ${this.#open} listening sockets ` +
          `(${bestEffortBound[0]} TCP and ${bestEffortBound[1]} UDP best-effort ports)`,
      );
    }
    // Only now, with nothing left to fail, do UDP sockets change hands.
    for (let i = 0; i < this.#fd.length; i++) {
      if (this.#fd[i]! >= 0 && this.#proto[i] === PROTO_UDP) this.#handOff(i);
    }
  }

  #handOff(index: number): void {
    this.#handedOff[index] = true;
    this.#opts.onUdpSocket(
      this.#fd[index]!,
      this.#target[index]!,
      this.#v6[index]!,
      this.#targetAddr[index],
    );
  }

  #optionOf(proto: number): string {
    return proto === PROTO_TCP ? this.#tcpOption : this.#udpOption;
  }

  #bindError(plan: Planned, errno: number): PortBindError {
    const option = this.#optionOf(plan.proto);
    let scope = "";
    if (plan.rule.bindAddr !== undefined) scope += formatIp(plan.rule.bindAddr);
    if (plan.rule.bindIfname !== undefined) scope += `%${plan.rule.bindIfname}`;
    let message = `Failed to bind ${plan.proto === PROTO_TCP ? "TCP" : "UDP"} port ` +
      `${plan.port}${scope.length > 0 ? ` on ${scope}` : ""} for ${option}: ` +
      `${sys.errnoMessage(errno)} (${sys.errnoName(errno)})`;
    if (errno === sys.Errno.EACCES) {
      message += `: binding ports below net.ipv4.ip_unprivileged_port_start ` +
        `(${unprivilegedPortStart()}) needs privileges, e.g. ` +
        `sysctl -w net.ipv4.ip_unprivileged_port_start=${plan.port}`;
    }
    return new PortBindError(message, option, plan.port, errno);
  }

  /** Make sure `plans` fit in the descriptor limit, raising the soft limit if needed. */
  #ensureDescriptors(plans: readonly Planned[]): void {
    const needed = plans.length + DESCRIPTOR_RESERVE + openDescriptors();
    let [soft, hard] = sys.getrlimit(RLIMIT.NOFILE);
    if (soft >= needed) return;
    if (hard > soft) {
      try {
        sys.setrlimit(RLIMIT.NOFILE, hard, hard);
        soft = hard;
      } catch (e) {
        log.debug(`setrlimit(RLIMIT_NOFILE): ${e}`);
      }
    }
    if (soft >= needed) return;
    const tables = [this.#opts.tcp, this.#opts.udp];
    const named = plans.map((plan) =>
      this.#optionOf(plan.proto) + (tables[plan.proto]!.mode === "all" ? " all" : "")
    );
    const options = [...new Set(named)].join(", ");
    throw new PortBindError(
      `${options}: forwarding needs ${plans.length} listening sockets, plus ` +
        `${needed - plans.length} other descriptors, but the open file limit is ` +
        `${soft}: raise the hard limit (ulimit -Hn) or forward fewer ports`,
      options,
      0,
      0,
    );
  }

  // --- sockets --------------------------------------------------------------------------

  /**
   * Bind `port` in one scope, appending the listener indices made to `made`.
   * Returns 0, or the -errno of the (first) failure when nothing could be bound.
   */
  #bindScope(
    proto: number,
    port: number,
    target: number,
    addr: Uint8Array | undefined,
    ifname: string | undefined,
    made: number[],
  ): number {
    const { ipv4, ipv6 } = this.#opts;
    if (addr !== undefined) {
      if (addr.length === 4) {
        if (!ipv4) return -sys.Errno.EAFNOSUPPORT;
        return this.#listen(proto, AF.INET, addr, ifname, port, target, true, made);
      }
      if (!ipv6) return -sys.Errno.EAFNOSUPPORT;
      // "::" stands for any address: like no address, it also serves IPv4 if on.
      const v6only = isUnspecified6(addr) ? !ipv4 : !isV4Mapped6(addr);
      return this.#listen(proto, AF.INET6, addr, ifname, port, target, v6only, made);
    }
    if (this.#opts.bindLoopback === true) {
      const r4 = ipv4
        ? this.#listen(proto, AF.INET, LOOPBACK4, ifname, port, target, true, made)
        : -sys.Errno.EAFNOSUPPORT;
      const r6 = ipv6
        ? this.#listen(proto, AF.INET6, LOOPBACK6, ifname, port, target, true, made)
        : -sys.Errno.EAFNOSUPPORT;
      if (made.length > 0) return 0;
      return r4 < 0 && r4 !== -sys.Errno.EAFNOSUPPORT ? r4 : r6;
    }
    if (ipv4 && ipv6) {
      const dual = this.#listen(proto, AF.INET6, undefined, ifname, port, target, false, made);
      if (dual === 0) return 0;
      // Partly taken (only one family in use elsewhere) or no IPv6: per family.
      if (
        dual !== -sys.Errno.EADDRINUSE && dual !== -sys.Errno.EAFNOSUPPORT &&
        dual !== -sys.Errno.EADDRNOTAVAIL
      ) return dual;
      const r4 = this.#listen(proto, AF.INET, undefined, ifname, port, target, true, made);
      const r6 = this.#listen(proto, AF.INET6, undefined, ifname, port, target, true, made);
      if (made.length > 0) return 0;
      return r4 < 0 ? r4 : r6;
    }
    if (ipv4) return this.#listen(proto, AF.INET, undefined, ifname, port, target, true, made);
    if (ipv6) return this.#listen(proto, AF.INET6, undefined, ifname, port, target, true, made);
    return -sys.Errno.EAFNOSUPPORT;
  }

  /** One listening socket; on success its index is appended to `made`. 0 or -errno. */
  #listen(
    proto: number,
    family: number,
    addr: Uint8Array | undefined,
    ifname: string | undefined,
    port: number,
    target: number,
    v6only: boolean,
    made: number[],
  ): number {
    const type = (proto === PROTO_TCP ? SOCK.STREAM : SOCK.DGRAM) | SOCK.NONBLOCK | SOCK.CLOEXEC;
    const fd = this.#socket(family, type, 0);
    if (fd < 0) return fd;
    const r = this.#prepare(fd, proto, family, addr, ifname, port, v6only);
    if (r < 0) {
      sys.close(fd);
      return r;
    }
    const index = this.#free.length > 0 ? this.#free.pop()! : this.#fd.length;
    if (index > LISTENER_MAX) {
      sys.close(fd);
      return -sys.Errno.ENOSPC;
    }
    if (proto === PROTO_TCP) {
      const added = this.#loop.add(fd, this.#kind, index, EPOLL.IN);
      if (added < 0) {
        sys.close(fd);
        if (index !== this.#fd.length) this.#free.push(index);
        return added;
      }
    }
    this.#fd[index] = fd;
    this.#proto[index] = proto;
    this.#port[index] = port;
    this.#target[index] = target;
    this.#targetAddr[index] = this.#pendingTargetAddr;
    this.#v6[index] = family === AF.INET6;
    this.#handedOff[index] = false;
    this.#perPort[proto]![port]!++;
    this.#open++;
    made.push(index);
    return 0;
  }

  /** Options, bind and (TCP) listen on a fresh socket: 0 or -errno. */
  #prepare(
    fd: number,
    proto: number,
    family: number,
    addr: Uint8Array | undefined,
    ifname: string | undefined,
    port: number,
    v6only: boolean,
  ): number {
    let r = 0;
    if (proto === PROTO_TCP) r = sys.trySetsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
    if (r === 0 && family === AF.INET6) {
      r = sys.trySetsockoptInt(fd, SOL.IPV6, IPV6_OPT.V6ONLY, v6only ? 1 : 0);
    }
    if (r === 0 && ifname !== undefined) {
      r = sys.trySetsockoptBytes(fd, SOL.SOCKET, SO.BINDTODEVICE, this.#ifname(ifname));
    }
    if (r === 0 && addr !== undefined && this.#opts.freebind === true) {
      r = family === AF.INET
        ? sys.trySetsockoptInt(fd, SOL.IP, IP_OPT.FREEBIND, 1)
        : sys.trySetsockoptInt(fd, SOL.IPV6, IPV6_OPT.FREEBIND, 1);
    }
    if (r < 0) return r;
    // A forwarded UDP port takes bursts while we may be descheduled: a receive
    // buffer as large as the system allows (net.core.rmem_max caps the request;
    // failure only leaves the default).
    if (proto !== PROTO_TCP) sys.trySetsockoptInt(fd, SOL.SOCKET, SO.RCVBUF, UDP_RCVBUF);
    const sa = this.#sockaddr;
    let len: number;
    if (family === AF.INET) {
      len = sys.encodeSockaddrIn(sa, addr ?? ANY4, port);
    } else {
      const a = addr ?? ANY6;
      const scope = ifname !== undefined && isLinkLocal6(a) ? sys.ifNameToIndex(ifname) : 0;
      len = sys.encodeSockaddrIn6(sa, a, port, scope);
    }
    r = sys.tryBind(fd, sa, len);
    if (r < 0 || proto !== PROTO_TCP) return r;
    try {
      sys.listen(fd, LISTEN_BACKLOG);
    } catch (e) {
      return e instanceof sys.SysError ? -e.errno : -sys.Errno.EINVAL;
    }
    return 0;
  }

  #ifname(name: string): Uint8Array<ArrayBuffer> {
    let c = this.#ifnames.get(name);
    if (c === undefined) {
      c = sys.cString(name);
      this.#ifnames.set(name, c);
    }
    return c;
  }

  /** Close listener `index` (a UDP one through `onUdpSocketRemoved`) and free its slot. */
  #release(index: number): void {
    const fd = this.#fd[index]!;
    if (fd < 0) return;
    const proto = this.#proto[index]!;
    this.#fd[index] = -1;
    this.#perPort[proto]![this.#port[index]!]!--;
    this.#open--;
    this.#free.push(index);
    const handedOff = this.#handedOff[index] === true;
    this.#handedOff[index] = false;
    if (handedOff && this.#opts.onUdpSocketRemoved !== undefined) {
      this.#opts.onUdpSocketRemoved(fd);
    } else {
      sys.close(fd);
    }
  }

  // --- data path ------------------------------------------------------------------------

  /**
   * Out of descriptors (or memory): the pending connection can't be taken, and a
   * level-triggered listener would wake us again at once, forever. Stop watching
   * it; the connections wait in its backlog (or time out there, as the kernel
   * decides) until a timer gives it another try.
   */
  #pause(index: number, fd: number, errno: number): void {
    if (this.#loop.modify(fd, this.#kind, index, 0) < 0) return;
    if (this.#paused.length === 0) {
      this.acceptPauses++;
      const now = sys.monotonicMs();
      if (now - this.#lastPauseLog >= PAUSE_LOG_INTERVAL_MS) {
        this.#lastPauseLog = now;
        log.warn(
          `${this.#opts.name ?? "forward"}: accept: ${sys.errnoName(errno)}: new connections ` +
            `wait until descriptors are free`,
        );
      }
      this.#resumeTimer.set(0, now + ACCEPT_RETRY_MS);
    }
    this.#paused.push(index);
  }

  /** Watch the paused listeners again: a backlog still waiting makes them readable. */
  #resume(): void {
    const paused = this.#paused.splice(0);
    for (const index of paused) {
      const fd = this.#fd[index] ?? -1;
      if (fd >= 0) this.#loop.modify(fd, this.#kind, index, EPOLL.IN);
    }
  }

  /** A listener is readable: accept up to ACCEPT_BATCH connections. */
  #accept(index: number): void {
    const fd = this.#fd[index] ?? -1;
    if (fd < 0) return;
    const peer = this.#peer;
    const target = this.#target[index]!;
    for (let i = 0; i < ACCEPT_BATCH; i++) {
      this.#peerLenView.setUint32(0, SOCKADDR_STORAGE_SIZE, true);
      const conn = sys.acceptFrom(fd, peer, this.#peerLen, SOCK.NONBLOCK | SOCK.CLOEXEC);
      if (conn < 0) {
        if (conn === -sys.Errno.EAGAIN || conn === -sys.Errno.EINTR) return;
        this.acceptErrors++;
        if (
          conn === -sys.Errno.EMFILE || conn === -sys.Errno.ENFILE ||
          conn === -sys.Errno.ENOBUFS || conn === -sys.Errno.ENOMEM
        ) {
          this.#pause(index, fd, -conn);
        }
        return;
      }
      let len = this.#peerLenView.getUint32(0, true);
      let v6 = sys.sockaddrFamily(peer) === AF.INET6;
      if (v6 && isV4Mapped6(peer, 8)) {
        unmapSockaddr(peer);
        len = SOCKADDR_IN_SIZE;
        v6 = false;
      }
      this.#opts.onTcpAccept(index, conn, peer, len, target, v6, this.#targetAddr[index]);
    }
  }
}

/** Receive buffer asked for forwarded UDP ports (bytes; the kernel caps it at rmem_max). */
const UDP_RCVBUF = 4 << 20;

/** How long accepting pauses when descriptors or memory ran out (ms). */
const ACCEPT_RETRY_MS = 100;
/** At most one warning about it per this interval (ms). */
const PAUSE_LOG_INTERVAL_MS = 10_000;

const ANY4 = new Uint8Array(4);
const ANY6 = new Uint8Array(16);
const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/**
 * Rewrite, in place, a sockaddr_in6 holding ::ffff:a.b.c.d into the sockaddr_in
 * for a.b.c.d (same port). No allocation.
 */
export function unmapSockaddr(sa: Uint8Array): void {
  // The IPv4 address is sockaddr_in6's bytes 20..23; sockaddr_in wants it at 4..7.
  const a = sa[20]!, b = sa[21]!, c = sa[22]!, d = sa[23]!;
  sa[0] = AF.INET;
  sa[1] = 0;
  sa[4] = a;
  sa[5] = b;
  sa[6] = c;
  sa[7] = d;
  sa.fill(0, 8, SOCKADDR_IN6_SIZE);
}

/** Descriptors this process has open now (setup time: lists /proc/self/fd). */
function openDescriptors(): number {
  let n = 0;
  try {
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
  } catch {
    return 64;
  }
  return n;
}

function unprivilegedPortStart(): string {
  try {
    return Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start").trim();
  } catch {
    return "1024";
  }
}
