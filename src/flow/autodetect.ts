/**
 * pasta's "auto" port forwarding: follow the ports bound on the other side.
 *
 * Theory of operation. For `-t auto`/`-u auto` the ports to listen on in the init
 * namespace are those bound inside the target namespace; for `-T auto`/`-U auto`
 * the reverse. The kernel lists a namespace's sockets in /proc/net/{tcp,tcp6,udp,
 * udp6}, as seen from a thread in that namespace: so the files are opened once, at
 * start, by the right thread (the namespace thread for the target namespace, as
 * /proc/thread-self/net/…), and the descriptors keep pointing at that namespace.
 * Every tick (a second) we pread each file from offset 0 in fixed-size chunks into
 * one preallocated buffer and run a byte-level state machine over it: no strings,
 * no per-line allocation. Wanted ports go into a 65536-bit map per protocol:
 * - TCP: sockets in LISTEN state (st 0A);
 * - UDP: unconnected bound sockets (st 07, port not 0), and also every TCP
 *   listening port, since services such as DNS listen on both and a UDP socket
 *   may be opened only once the first datagram is expected.
 * Ports that we bound ourselves on the scanned side (the listeners of the other
 * direction's forwarder) are left out, or the two directions would mirror each
 * other's sockets forever. The map is then compared with what the forwarder has
 * bound: new ports are bound, vanished ones closed, at most BIND_BUDGET changes
 * per tick (the rest follows on the next ones). A port that could not be bound is
 * not retried until RETRY_TICKS ticks later. If a file could not be read to its end
 * (too large, a read error) nothing is unbound on that tick: absence was not proven.
 *
 * This tick stays periodic, unlike the flows' timers (per-flow deadlines,
 * src/timers.ts): it reads files, not flows, and the kernel offers no event for
 * "a socket started listening in that namespace". It runs only with `auto`
 * forwarding, once a second, as upstream does.
 */
import type { EventLoop } from "../loop.ts";
import { O } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";
import type { ForwardProto, PortForwarder } from "./forward.ts";

/** How often the files are scanned (ms), as the man page says. */
export const SCAN_INTERVAL_MS = 1000;
/** Bytes read per pread. */
const CHUNK_SIZE = 64 * 1024;
/** Largest file read per tick (bytes): about 100k sockets; the rest is not seen. */
const FILE_MAX = 16 * 1024 * 1024;
/** Most binds + unbinds per protocol per tick. */
export const BIND_BUDGET = 256;
/** Ticks before a port that failed to bind is tried again. */
const RETRY_TICKS = 10;
/** Bytes in a map of every port. */
const MAP_BYTES = 65536 / 8;

/** /proc/net socket states we look for. */
const TCP_LISTEN = 0x0a;
const UDP_UNCONNECTED = 0x07;

/** Descriptors of the four /proc/net files of one namespace; -1 where absent. */
export interface ProcNetFiles {
  /** /proc/net/tcp. */
  tcp4: number;
  /** /proc/net/tcp6. */
  tcp6: number;
  /** /proc/net/udp. */
  udp4: number;
  /** /proc/net/udp6. */
  udp6: number;
}

/**
 * Open the /proc/net files of the namespace that `open` works in: `NsThread.open`
 * for the target namespace, or `sys.tryOpen` (the default) for this thread's. A
 * missing file (no IPv6) is -1. The caller owns the descriptors (`closeProcNet`).
 */
export function openProcNet(
  open: (path: string, flags: number) => number = sys.tryOpen,
): ProcNetFiles {
  const one = (name: string) => {
    const fd = open(`/proc/thread-self/net/${name}`, O.RDONLY | O.CLOEXEC);
    return fd < 0 ? -1 : fd;
  };
  return { tcp4: one("tcp"), tcp6: one("tcp6"), udp4: one("udp"), udp6: one("udp6") };
}

/** Close what `openProcNet` opened. */
export function closeProcNet(files: ProcNetFiles): void {
  for (const fd of [files.tcp4, files.tcp6, files.udp4, files.udp6]) if (fd >= 0) sys.close(fd);
  files.tcp4 =
    files.tcp6 =
    files.udp4 =
    files.udp6 =
      -1;
}

/**
 * Reads /proc/net/{tcp,udp}[6]-format files into port maps. One instance per
 * detector: it owns the read buffer.
 */
export class ProcNetScanner {
  readonly #buf = sys.pinnedBuffer(CHUNK_SIZE);

  /**
   * Set the bit of every local port in `map` (MAP_BYTES, bit p = port p) whose
   * socket is in `state` (hex "st" column). Returns true if the file was read to
   * its end.
   */
  scan(fd: number, state: number, map: Uint8Array): boolean {
    const buf = this.#buf;
    let offset = 0;
    // Parser state across chunks: the line number, the column (space-separated
    // token) we are in, and the hex values of the local port and the state.
    let line = 0;
    let column = 0;
    let inToken = false;
    let port = 0;
    let st = 0;
    while (offset < FILE_MAX) {
      const n = sys.pread(fd, buf, CHUNK_SIZE, offset);
      if (n < 0) return false;
      if (n === 0) return true;
      offset += n;
      for (let i = 0; i < n; i++) {
        const b = buf[i]!;
        if (b === 0x0a) {
          // The first line holds the column titles.
          if (line > 0 && column >= 3 && st === state && port !== 0) {
            map[port >>> 3]! |= 1 << (port & 7);
          }
          line++;
          column = 0;
          inToken = false;
          port = 0;
          st = 0;
        } else if (b === 0x20) {
          if (inToken) column++;
          inToken = false;
        } else {
          inToken = true;
          if (line === 0) continue;
          // Column 1 is "ADDRESS:PORT": the port is the hex after the colon.
          if (column === 1) port = b === 0x3a ? 0 : ((port << 4) | hexValue(b)) & 0xffff;
          else if (column === 3) st = ((st << 4) | hexValue(b)) & 0xff;
        }
      }
    }
    return false;
  }
}

function hexValue(b: number): number {
  if (b <= 0x39) return b - 0x30;
  return (b | 0x20) - 0x57;
}

/** What a `PortAutoDetector` watches and drives. */
export interface AutoDetectOptions {
  /** The /proc/net files of the side to watch (the detector does not close them). */
  readonly files: ProcNetFiles;
  /** The forwarder whose "auto" ports follow what is found. */
  readonly forwarder: PortForwarder;
  /** Follow TCP listening ports (the TCP table is "auto"). */
  readonly tcp: boolean;
  /** Follow UDP bound ports (the UDP table is "auto"). */
  readonly udp: boolean;
  /**
   * Whether `port` is bound by us on the watched side (the other direction's
   * listeners): such ports are never mirrored back.
   */
  readonly ownPort: (proto: ForwardProto, port: number) => boolean;
  /** Name for messages, e.g. "-t/-u auto". */
  readonly name?: string;
}

/** Counters for tests and debugging. */
export interface AutoDetectStats {
  /** Ticks run. */
  ticks: number;
  /** Ports bound. */
  bound: number;
  /** Ports unbound. */
  unbound: number;
  /** Binds that failed (to be retried later). */
  bindFailures: number;
  /** Scans that could not read a file to its end. */
  incompleteScans: number;
}

/** Keeps a forwarder's "auto" ports in line with the ports bound on the watched side. */
export class PortAutoDetector {
  readonly #opts: AutoDetectOptions;
  readonly #scanner = new ProcNetScanner();
  readonly #tcpListen = new Uint8Array(MAP_BYTES);
  readonly #udpWanted = new Uint8Array(MAP_BYTES);
  /** Per port: the tick at which a failed bind may be retried (0: no failure). */
  readonly #retryAt = [new Uint32Array(65536), new Uint32Array(65536)];
  /** Counters. */
  readonly stats: AutoDetectStats = {
    ticks: 0,
    bound: 0,
    unbound: 0,
    bindFailures: 0,
    incompleteScans: 0,
  };

  /** Set up; nothing is read until the first `tick`. */
  constructor(opts: AutoDetectOptions) {
    this.#opts = opts;
  }

  /** Scan now, then every SCAN_INTERVAL_MS from the loop. Returns the timer fd (loop-owned). */
  start(loop: EventLoop, intervalMs = SCAN_INTERVAL_MS): number {
    this.tick();
    return loop.addTimer(`port-scan:${this.#opts.name ?? "auto"}`, intervalMs, () => this.tick());
  }

  /** Read the files once and bind/unbind what changed (bounded by BIND_BUDGET). */
  tick(): void {
    const { files, tcp, udp } = this.#opts;
    this.stats.ticks++;
    const tcpMap = this.#tcpListen;
    tcpMap.fill(0);
    let tcpComplete = true;
    const scanner = this.#scanner;
    for (const fd of [files.tcp4, files.tcp6]) {
      if (fd >= 0 && !scanner.scan(fd, TCP_LISTEN, tcpMap)) tcpComplete = false;
    }
    if (tcp) this.#apply("tcp", tcpMap, tcpComplete);
    if (udp) {
      const udpMap = this.#udpWanted;
      udpMap.set(tcpMap);
      let udpComplete = tcpComplete;
      for (const fd of [files.udp4, files.udp6]) {
        if (fd >= 0 && !scanner.scan(fd, UDP_UNCONNECTED, udpMap)) udpComplete = false;
      }
      this.#apply("udp", udpMap, udpComplete);
    }
  }

  #apply(proto: ForwardProto, wanted: Uint8Array, complete: boolean): void {
    if (!complete) this.stats.incompleteScans++;
    const { forwarder, ownPort } = this.#opts;
    const retryAt = this.#retryAt[proto === "tcp" ? 0 : 1]!;
    const tick = this.stats.ticks;
    const have = forwarder.autoPortMap(proto);
    let budget = BIND_BUDGET;
    for (let byte = 0; byte < MAP_BYTES && budget > 0; byte++) {
      // Most bytes are zero on both sides: skip eight ports at a time.
      if ((wanted[byte]! | have[byte]!) === 0) continue;
      for (let bit = 0; bit < 8 && budget > 0; bit++) {
        const port = byte * 8 + bit;
        if (port === 0) continue;
        const want = (wanted[byte]! & (1 << bit)) !== 0 && !ownPort(proto, port) &&
          (proto === "tcp" || !ownPort("tcp", port)) && forwarder.autoAllows(proto, port);
        if (want === ((have[byte]! & (1 << bit)) !== 0)) continue;
        budget--;
        if (!want) {
          if (!complete) continue;
          forwarder.unbindAuto(proto, port);
          this.stats.unbound++;
          if (log.debugging) log.debug(`${this.#name}: ${proto} port ${port} released`);
          continue;
        }
        if (retryAt[port]! > tick) continue;
        const r = forwarder.bindAuto(proto, port);
        if (r < 0) {
          retryAt[port] = tick + RETRY_TICKS;
          this.stats.bindFailures++;
          if (log.debugging) {
            log.debug(`${this.#name}: ${proto} port ${port}: ${sys.errnoMessage(-r)}`);
          }
        } else {
          this.stats.bound++;
          if (log.debugging) log.debug(`${this.#name}: ${proto} port ${port} forwarded`);
        }
      }
    }
  }

  get #name(): string {
    return this.#opts.name ?? "auto";
  }
}
