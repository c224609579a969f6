/**
 * The data path shared by passt and pasta: everything between "a frame came
 * from the guest" and "a socket became readable", whatever carries the frames.
 *
 * Theory of operation: the caller owns the tap side (pasta's tap device, passt's
 * qemu socket) and registers its descriptor with the loop; it hands every frame
 * it reads to `handleFrame` and provides the output (FrameOutput) the protocols
 * write into. This module builds the rest once: the ingress dispatcher, ICMP
 * echo, TCP and UDP translation over one flow table and one set of address
 * rules, the -t/-u listeners (and pasta's `auto` detector when the caller can
 * open the namespace's /proc files), periodic router advertisements, pcap
 * capture, and the end-of-turn flush: protocol hooks first (ACKs), the tap last.
 *
 * pasta also passes a way to make sockets inside the namespace: then connections
 * to a -t port that come through the host's loopback skip the tap altogether and
 * are spliced to the namespace's loopback (src/protocols/tcp_splice.ts); the
 * rest, from other hosts, still go through TCP translation over the tap.
 */
import type { Config } from "./config/config.ts";
import { discoverHost, formatStartupSummary } from "./netlink/host.ts";
import { type NetworkPlan, planNetwork } from "./config/network.ts";
import { readResolvConf } from "./config/resolv.ts";
import { FORWARD_NONE } from "./config/ports.ts";
import type { DataPathContext, FrameOutput } from "./flow/context.ts";
import { FlowTable } from "./flow/flow.ts";
import { type ForwardProto, PortForwarder } from "./flow/forward.ts";
import { type GuestState, initialGuestState } from "./flow/guest.ts";
import { AddressMap } from "./flow/nat.ts";
import { log } from "./log.ts";
import { EventLoop } from "./loop.ts";
import {
  closeProcNet,
  openProcNet,
  PortAutoDetector,
  type ProcNetFiles,
} from "./flow/autodetect.ts";
import { IcmpEcho } from "./protocols/icmp.ts";
import { ndpRouterAdvertisement } from "./protocols/ndp.ts";
import type { PacketView } from "./protocols/packet.ts";
import { TcpTranslator } from "./protocols/tcp.ts";
import { TcpSplicer } from "./protocols/tcp_splice.ts";
import { UdpTranslator } from "./protocols/udp.ts";
import { UdpSplicer } from "./protocols/udp_splice.ts";
import { Ingress } from "./tap/ingress.ts";
import * as sys from "./ffi/sys.ts";
import { openPcap } from "./tap/pcap.ts";
import type { FrameTap } from "./tap/tap.ts";

/** How often unsolicited router advertisements go out (ms). */
const RA_INTERVAL_MS = 60_000;

/** What the data path needs from the tap side. */
export interface TapSide extends FrameOutput {
  /** Copy a frame built elsewhere into the output queue. */
  send(view: PacketView): void;
  /** Capture every frame crossing the tap side. */
  setCapture(capture: FrameTap | undefined): void;
}

/** Opens a file inside the target namespace (pasta), or undefined (passt). */
export type NamespaceOpen = (path: string, flags: number) => number;

/** socket(2) inside the target namespace (pasta): the descriptor or -errno. */
export type NamespaceSocket = (domain: number, type: number, protocol: number) => number;

/** The running data path. */
export interface DataPath {
  /** The event loop everything is registered with. */
  readonly loop: EventLoop;
  /** Hand one frame from the guest to the services (bound once, no allocation). */
  readonly handleFrame: (frame: PacketView) => void;
  /** The dispatcher (counters). */
  readonly ingress: Ingress;
  /** What we know of the guest: filled in from its frames, or by pasta up front. */
  readonly guest: GuestState;
  /** TCP translation, unless --no-tcp. */
  readonly tcp: TcpTranslator | undefined;
  /** UDP translation, unless --no-udp. */
  readonly udp: UdpTranslator | undefined;
  /** Listeners for -t/-u. */
  readonly inbound: PortForwarder;
  /** The local TCP fast path between namespaces (pasta with TCP), else undefined. */
  readonly tcpSplice: TcpSplicer | undefined;
  /** pasta: the local path for UDP (-u from loopback senders, -U). */
  readonly udpSplice: UdpSplicer | undefined;
  /** Start what sends on its own (router advertisements) once the tap is ready. */
  start(): void;
  /** Close every socket of the data path. */
  close(): void;
}

/** Build the data path around `tap`. Throws (with a clear message) on setup failures. */
export function startDataPath(
  config: Config,
  plan: NetworkPlan,
  tap: TapSide,
  nsOpen: NamespaceOpen | undefined,
  nsSocket?: NamespaceSocket,
  nsOwnPort: (proto: ForwardProto, port: number) => boolean = () => false,
): DataPath {
  const loop = new EventLoop();
  if (config.stats > 0) startStats(loop, config.stats);
  loop.onHandlerError((kind, e) => log.err(`${kind} handler: ${e}`));
  const guest = initialGuestState(plan.ip4?.address, plan.ip6?.address);
  const ingress = new Ingress(plan, guest, tap);
  if (config.pcapFile !== undefined) {
    tap.setCapture(openPcap(config.pcapFile));
    log.info(`Saving packet capture to ${config.pcapFile}`);
  }
  const flows = new FlowTable();
  loop.addEndOfTurn(() => flows.endOfTurn());
  const ctx: DataPathContext = {
    config,
    loop,
    tap,
    plan,
    guest,
    flows,
    nat: new AddressMap(plan, guest),
  };
  const echo = config.noIcmp ? undefined : new IcmpEcho(
    loop,
    {
      ourMac: plan.ourMac,
      guest,
      ipv4: plan.ip4 !== undefined,
      ipv6: plan.ip6 !== undefined,
      outboundAddr4: config.ip4.outbound,
      outboundAddr6: config.ip6.outbound,
      outboundIf4: config.ip4.outboundIf,
      outboundIf6: config.ip6.outboundIf,
      mapHostLoopback4: plan.ip4?.mapHostLoopback,
      mapHostLoopback6: plan.ip6?.mapHostLoopback,
      mapGuestAddr4: plan.ip4?.mapGuestAddr,
      mapGuestAddr6: plan.ip6?.mapGuestAddr,
      guestAssigned4: plan.ip4?.address,
      guestAssigned6: plan.ip6?.address,
    },
    tap.send.bind(tap),
    ctx,
  );
  ingress.setEcho(echo);
  const tcp = config.noTcp ? undefined : new TcpTranslator(ctx);
  ingress.setTcp(tcp);
  const udp = config.noUdp ? undefined : new UdpTranslator(ctx);
  ingress.setUdp(udp);

  // -t/-u from the host's loopback: to the namespace's address, or its loopback.
  const hostLoToNsLo = config.mode === "pasta" && config.hostLoToNsLo;
  // --no-splice: they take the tap instead, with the address mapping, as from anywhere.
  const splice = nsSocket !== undefined && !(config.mode === "pasta" && config.noSplice);
  const spliceOnly = config.mode === "pasta" && config.spliceOnly;
  const tcpSplice = tcp === undefined || !splice || nsSocket === undefined
    ? undefined
    : new TcpSplicer(loop, { nsSocket, flows, ...(hostLoToNsLo ? {} : { guest }) });
  const udpSplice = udp === undefined || !splice || nsSocket === undefined
    ? undefined
    : new UdpSplicer(loop, { nsSocket, flows, ...(hostLoToNsLo ? {} : { guest }) });
  if (udpSplice !== undefined) udp?.setLocalPath(udpSplice);
  const inbound = new PortForwarder(loop, {
    tcp: tcp === undefined ? FORWARD_NONE : config.tcpIn,
    udp: udp === undefined ? FORWARD_NONE : config.udpIn,
    ipv4: plan.ip4 !== undefined,
    ipv6: plan.ip6 !== undefined,
    onTcpAccept: (_listener, fd, peer, peerLength, targetPort, v6, targetAddr) => {
      // A rule's target address (":ADDR") is reached through the tap, from any peer.
      if (
        tcpSplice !== undefined && targetAddr === undefined && TcpSplicer.isLocalPeer(peer, v6)
      ) {
        tcpSplice.spliceToNamespace(fd, targetPort, v6);
      } else if (spliceOnly) {
        sys.close(fd); // --splice-only: no tap to take it
      } else {
        tcp?.acceptInbound(fd, peer, peerLength, targetPort, targetAddr);
      }
    },
    onUdpSocket: (fd, targetPort, v6, targetAddr) =>
      udp?.addForwardedSocket(fd, targetPort, v6, targetAddr),
    onUdpSocketRemoved: (fd) => udp?.removeForwardedSocket(fd),
    freebind: config.freebind,
    name: "inbound",
  });
  const autoTcp = tcp !== undefined && config.tcpIn.mode === "auto";
  const autoUdp = udp !== undefined && config.udpIn.mode === "auto";
  let nsFiles: ProcNetFiles | undefined;
  if (nsOpen !== undefined && (autoTcp || autoUdp)) {
    nsFiles = openProcNet(nsOpen);
    new PortAutoDetector({
      files: nsFiles,
      forwarder: inbound,
      tcp: autoTcp,
      udp: autoUdp,
      // Ports our -T/-U listeners hold in the namespace are not mirrored back.
      ownPort: nsOwnPort,
      name: "-t/-u auto",
    }).start(loop);
  }
  // Last: protocols queue frames (ACKs…) in their own end-of-turn hooks first.
  loop.addEndOfTurn(() => tap.flush());

  const ndp = ingress.ndpParams;
  return {
    loop,
    handleFrame: ingress.handle.bind(ingress),
    ingress,
    guest,
    tcp,
    udp,
    inbound,
    tcpSplice,
    udpSplice,
    start() {
      if (ndp === undefined || !ndp.raEnabled) return;
      const sendRa = () => {
        const length = ndpRouterAdvertisement(ndp, tap.next());
        if (length > 0) tap.queue(length);
      };
      sendRa();
      // Periodic by nature (unsolicited advertisements), scans nothing; once a minute.
      loop.addTimer("router-advertisement", RA_INTERVAL_MS, sendRa);
    },
    close() {
      inbound.close();
      tcpSplice?.close();
      udpSplice?.close();
      if (nsFiles !== undefined) closeProcNet(nsFiles);
      tcp?.close();
      udp?.close();
      echo?.close();
      tap.flush();
    },
  };
}

/**
 * Discover the host (interfaces, routes, resolvers) and plan the guest's
 * network from it and `config`; logs and returns undefined on failure.
 */
export function resolveNetwork(config: Config): NetworkPlan | undefined {
  const ifname4 = config.interfaceName ?? config.ip4.outboundIf;
  const ifname6 = config.interfaceName ?? config.ip6.outboundIf;
  try {
    const host = discoverHost({
      ...(ifname4 === undefined ? {} : { ifname4 }),
      ...(ifname6 === undefined ? {} : { ifname6 }),
      ipv4Only: config.ipv4Only,
      ipv6Only: config.ipv6Only,
    });
    return planNetwork(config, host, readResolvConf());
  } catch (e) {
    log.err(e instanceof Error ? e.message : String(e));
    return undefined;
  }
}

/** The startup summary lines (interfaces, ARP/DHCP/NDP assignments). */
export function startupSummary(plan: NetworkPlan, namespaceIf?: string): string[] {
  return formatStartupSummary({
    ...(plan.ip4 === undefined ? {} : { outboundIf4: plan.ip4.hostIfname }),
    ...(plan.ip6 === undefined ? {} : { outboundIf6: plan.ip6.hostIfname }),
    ...(namespaceIf === undefined ? {} : { namespaceIf }),
    arpAddress: plan.ourMac,
    ...(plan.ip4 === undefined || !plan.dhcp ? {} : {
      dhcp: {
        assign: plan.ip4.address,
        prefixLength: plan.ip4.prefixLength,
        ...(plan.ip4.gateway === undefined ? {} : { router: plan.ip4.gateway }),
        dns: plan.ip4.dns,
        search: plan.search,
      },
    }),
    ...(plan.ip6 === undefined ? {} : {
      ndp: {
        assign: plan.ip6.address,
        router: plan.ip6.ourLinkLocal,
        dns: plan.ip6.dns,
        search: plan.search,
      },
    }),
  });
}

/** Lines between two column headers. */
const HEADER_EVERY = 20;

/**
 * --stats DELAY: at the end of a turn with events, if DELAY seconds have passed since
 * the last report, one line on standard error with the running totals of events per
 * descriptor kind (the loop counts them), a line naming the columns every 20 lines.
 * An idle process takes no turns and prints nothing, as the manual says. The text is
 * only built when printed, at most once per DELAY.
 */
function startStats(loop: EventLoop, delaySeconds: number): void {
  let last = -Infinity;
  let lines = 0;
  let printedEvents = 0;
  let columns = 0;
  loop.addEndOfTurn(() => {
    if (loop.stats.events === printedEvents) return; // a timer-less idle turn
    const now = performance.now();
    if (now - last < delaySeconds * 1000) return;
    last = now;
    printedEvents = loop.stats.events;
    const kinds = loop.kindCount;
    let text = "";
    if (lines % HEADER_EVERY === 0 || kinds !== columns) {
      text += "stats:";
      for (let k = 0; k < kinds; k++) text += ` ${loop.kindName(k).replaceAll(" ", "_")}`;
      text += "\n";
      columns = kinds;
    }
    text += "stats:";
    for (let k = 0; k < kinds; k++) text += ` ${loop.eventsByKind[k]}`;
    text += "\n";
    lines++;
    const bytes = new TextEncoder().encode(text);
    sys.write(2, bytes, bytes.length);
  });
}
