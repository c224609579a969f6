/**
 * fast-check generators for the tap fuzzer: guest frames of every kind the data
 * path handles, built well-formed (correct lengths and checksums) and then, often,
 * mutated: bytes flipped or set to edge values, header fields (IHL, total and
 * payload lengths, fragment bits, data offsets, option lengths) broken, frames
 * truncated or extended, checksums sometimes recomputed afterwards so that the
 * damage reaches past the checksum tests. Plus purely random frames.
 *
 * A fuzz case is a list of steps: a frame, a reply to a segment the data path
 * sent (so that TCP connections get past the handshake), or a short wait for
 * the sockets.
 */
import fc from "npm:fast-check@3";
import { be16, be32, bytes, naiveChecksum } from "../protocols/_frames.ts";
import { ip4, ip6 } from "../protocols/_fixtures.ts";
import {
  ETH_P_ARP,
  ETH_P_IP,
  ETH_P_IPV6,
  ethFrame,
  EXT_DEST_OPTS,
  EXT_FRAGMENT,
  EXT_HOP_BY_HOP,
  EXT_ROUTING,
  extChain,
  type ExtHeader,
  get16,
  icmpMessage,
  type Ip4Fields,
  ip4Packet,
  ip6Packet,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_TCP,
  PROTO_UDP,
  pseudoHeader,
  type TcpFields,
  tcpSegment,
  udpDatagram,
} from "./_wire.ts";

/** Addresses of the fuzzed data path and of its guest. */
export interface FuzzNet {
  ourMac: Uint8Array;
  guestMac: Uint8Array;
  guest4: Uint8Array;
  gateway4: Uint8Array;
  /** An address beyond the gateway (the sandbox's remote host). */
  remote4: Uint8Array;
  guest6: Uint8Array;
  guestLL6: Uint8Array;
  gateway6: Uint8Array;
  ourLL6: Uint8Array;
  remote6: Uint8Array;
}

/** TCP echo (accepts, sends back what it reads) on the host's loopback. */
export const ECHO_PORT = 7;
/** TCP listener that never accepts: connections stay in its backlog, data piles up. */
export const SINK_PORT = 9;

/** Mutations of a frame: `op` picks what, `pos` and `value` say where and how. */
export interface Mutation {
  op: number;
  pos: number;
  value: number;
}

/** One step of a fuzz case. */
export type Step =
  | { kind: "frame"; base: Uint8Array; mutations: Mutation[]; fixChecksums: boolean }
  | { kind: "reply"; pick: number; reply: ReplySpec; mutations: Mutation[] }
  | { kind: "wait"; ms: number };

/** How to answer a TCP segment the data path sent. */
export interface ReplySpec {
  flags: number;
  /** Added to the sequence number a correct reply would carry. */
  seqDelta: number;
  /** Added to the acknowledgement number a correct reply would carry. */
  ackDelta: number;
  window: number;
  options: Uint8Array;
  payload: Uint8Array;
}

const u8 = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const blob = (maxLength: number) => fc.uint8Array({ maxLength });
const fixed = (length: number) => fc.uint8Array({ minLength: length, maxLength: length });

const SYN = 0x02, ACK = 0x10, FIN = 0x01, RST = 0x04, PSH = 0x08;

const ZERO4 = ip4("0.0.0.0");
const BCAST4 = ip4("255.255.255.255");
const ZERO6 = new Uint8Array(16);
const ALL_ROUTERS6 = ip6("ff02::2");
const ALL_NODES6 = ip6("ff02::1");
const DHCPV6_SERVERS = ip6("ff02::1:2");
const BCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** Builders for every kind of frame, over the addresses in `net`. */
export function frameArbitraries(net: FuzzNet) {
  const mac = fc.oneof(
    { weight: 6, arbitrary: fc.constant(net.ourMac) },
    fc.constant(BCAST_MAC),
    fc.constant(Uint8Array.of(0x33, 0x33, 0, 0, 0, 2)),
    fixed(6),
  );
  const srcMac = fc.oneof(
    { weight: 8, arbitrary: fc.constant(net.guestMac) },
    fc.constant(BCAST_MAC),
    fixed(6),
  );
  const dst4 = fc.oneof(
    { weight: 4, arbitrary: fc.constant(net.gateway4) },
    { weight: 2, arbitrary: fc.constant(net.remote4) },
    fc.constantFrom(net.guest4, ZERO4, BCAST4, ip4("224.0.0.1"), ip4("127.0.0.1")),
    fc.constant(Uint8Array.of(net.gateway4[0]!, net.gateway4[1]!, net.gateway4[2]!, 255)),
    fixed(4),
  );
  const src4 = fc.oneof(
    { weight: 8, arbitrary: fc.constant(net.guest4) },
    fc.constantFrom(ZERO4, BCAST4, net.gateway4),
    fixed(4),
  );
  const dst6 = fc.oneof(
    { weight: 4, arbitrary: fc.constant(net.gateway6) },
    { weight: 2, arbitrary: fc.constant(net.remote6) },
    fc.constantFrom(net.ourLL6, net.guest6, ZERO6, ALL_NODES6, ip6("::1"), ip6("::ffff:1.2.3.4")),
    fixed(16),
  );
  const src6 = fc.oneof(
    { weight: 6, arbitrary: fc.constant(net.guest6) },
    { weight: 2, arbitrary: fc.constant(net.guestLL6) },
    fc.constantFrom(ZERO6, ALL_NODES6),
    fixed(16),
  );
  const port = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(ECHO_PORT, SINK_PORT) },
    fc.constantFrom(0, 1, 53, 67, 68, 546, 547, 65535),
    u16,
  );

  const ip4Fields: fc.Arbitrary<Ip4Fields> = fc.record({
    tos: u8,
    id: u16,
    fragField: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(0, 0x4000) },
      fc.constantFrom(0x2000, 0x0001, 0x2001, 0x1fff, 0x8000),
      u16,
    ),
    ttl: fc.oneof({ weight: 4, arbitrary: fc.constant(64) }, fc.constantFrom(0, 1, 255)),
    options: fc.oneof(
      { weight: 8, arbitrary: fc.constant(new Uint8Array(0)) },
      fc.constant(Uint8Array.of(1, 1, 1, 0)), // NOPs, end of list
      fc.constant(Uint8Array.of(7, 7, 4, 0, 0, 0, 0, 0)), // record route
      fc.constant(Uint8Array.of(0x94, 4, 0, 0)), // router alert
      fc.constant(Uint8Array.of(68, 0, 5, 0)), // timestamp with a zero length
      blob(40),
    ),
  });

  /** An IPv4 frame around an L4 payload built for the chosen addresses. */
  const v4 = (proto: number, l4: (src: Uint8Array, dst: Uint8Array) => fc.Arbitrary<Uint8Array>) =>
    fc.tuple(mac, srcMac, src4, dst4, ip4Fields).chain(([d, s, src, dst, f]) =>
      l4(src, dst).map((payload) =>
        ethFrame(d, s, ETH_P_IP, ip4Packet(src, dst, proto, payload, f))
      )
    );

  const extHeader: fc.Arbitrary<ExtHeader> = fc.record({
    type: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT) },
      { weight: 2, arbitrary: fc.constant(EXT_DEST_OPTS) },
      fc.constantFrom(51, 59, 135), // AH, no next header, mobility
    ),
    body: fc.oneof(
      fc.constant(Uint8Array.of(0, 0, 0, 0, 0, 0)), // PadN / a first fragment
      fc.constant(Uint8Array.of(0, 0, 0, 1, 0, 0)), // fragment: MF
      fc.constant(Uint8Array.of(0, 8, 0, 0, 0, 0)), // fragment: offset 1
      blob(30),
    ),
  });
  const extHeaders = fc.oneof(
    { weight: 6, arbitrary: fc.constant([] as ExtHeader[]) },
    fc.array(extHeader, { minLength: 1, maxLength: 4 }),
  );

  /** An IPv6 frame around an L4 payload, with or without extension headers. */
  const v6 = (
    proto: number,
    l4: (src: Uint8Array, dst: Uint8Array) => fc.Arbitrary<Uint8Array>,
    srcs = src6,
    dsts = dst6,
    hopLimit: fc.Arbitrary<number> = fc.constantFrom(64, 255, 1, 0),
  ) =>
    fc.tuple(mac, srcMac, srcs, dsts, extHeaders, hopLimit, fc.nat(0xfffff)).chain(
      ([d, s, src, dst, ext, hl, flow]) =>
        l4(src, dst).map((payload) => {
          const chain = extChain(ext, proto);
          const first = ext.length === 0 ? proto : ext[0]!.type;
          return ethFrame(d, s, ETH_P_IPV6, ip6Packet(src, dst, first, hl, flow, chain, payload));
        }),
    );

  // --- TCP ---------------------------------------------------------------------------

  const tcpOption = fc.oneof(
    u16.map((mss) => bytes(2, 4, be16(mss))),
    u8.map((ws) => bytes(3, 3, ws)),
    fc.constant(bytes(4, 2)),
    fc.tuple(u32, u32).map(([a, b]) => bytes(8, 10, be32(a), be32(b))),
    fc.constant(bytes(1)),
    fc.constant(bytes(0)),
    fc.tuple(u32, u32).map(([a, b]) => bytes(5, 10, be32(a), be32(b))),
    fc.tuple(u8, u8, blob(8)).map(([kind, len, data]) => bytes(kind, len, data)),
    fc.constantFrom(bytes(2, 0), bytes(2, 1), bytes(3, 40), bytes(2)),
  );
  const tcpOptions = fc.oneof(
    { weight: 3, arbitrary: fc.constant(new Uint8Array(0)) },
    fc.array(tcpOption, { maxLength: 8 }).map((o) => bytes(...o).subarray(0, 40)),
  );
  const tcpFlags = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(SYN, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK) },
    fc.constantFrom(SYN | ACK, SYN | FIN, FIN, 0, 0xff),
    u8,
  );
  const payload = fc.oneof(
    { weight: 6, arbitrary: blob(64) },
    fc.nat(1460).map((n) => new Uint8Array(n).fill(0x61)),
  );
  const tcpFields: fc.Arbitrary<TcpFields> = fc.record({
    sport: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 40000, max: 40015 }) }, u16),
    dport: port,
    seq: u32,
    ack: u32,
    flags: tcpFlags,
    window: fc.oneof(fc.constantFrom(0, 1, 65535), u16),
    urgent: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, u16),
    options: tcpOptions,
    payload,
  });
  const tcpL4 = (src: Uint8Array, dst: Uint8Array) => tcpFields.map((f) => tcpSegment(src, dst, f));
  /** A clean SYN to the echo or sink service: the start of a connection to play with. */
  const synL4 = (src: Uint8Array, dst: Uint8Array) =>
    fc.tuple(
      fc.integer({ min: 40000, max: 40015 }),
      fc.constantFrom(ECHO_PORT, SINK_PORT),
      u32,
      tcpOptions,
      fc.constantFrom(0, 1, 65535),
    ).map(([sport, dport, seq, options, window]) =>
      tcpSegment(src, dst, {
        sport,
        dport,
        seq,
        ack: 0,
        flags: SYN,
        window,
        urgent: 0,
        options,
        payload: new Uint8Array(0),
      })
    );
  const toHost = <T>(loopback: T) => fc.constant(loopback);

  // --- UDP, DHCP, DHCPv6 -------------------------------------------------------------

  const tlv8 = fc.tuple(u8, blob(24), fc.option(u8, { freq: 5 })).map(([code, data, badLen]) =>
    bytes(code, badLen ?? data.length, data)
  );
  const dhcpOptions = fc.tuple(
    fc.oneof(fc.integer({ min: 1, max: 8 }), u8),
    fc.array(
      fc.oneof(
        tlv8,
        fc.constant(bytes(61, 7, 1, net.guestMac)),
        fc.constant(bytes(50, 4, net.guest4)),
        fc.constant(bytes(55, 4, 1, 3, 6, 15)),
        fc.constant(bytes(57, 2, be16(576))),
        fc.constant(bytes(52, 1, 3)), // option overload into sname/file
        fc.constant(bytes(0)), // pad
      ),
      { maxLength: 8 },
    ),
    fc.boolean(),
  ).map(([type, opts, end]) => bytes(53, 1, type, ...opts, end ? [255] : []));
  const bootp = fc.tuple(
    fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, u8),
    u32,
    u16,
    fc.oneof(fc.constant(new Uint8Array(4)), fc.constant(net.guest4)),
    blob(64),
    blob(128),
    fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, fc.constant(false)),
    dhcpOptions,
  ).map(([op, xid, flags, ciaddr, sname, file, cookie, opts]) => {
    const b = new Uint8Array(236);
    b.set([op, 1, 6, 0, ...be32(xid), 0, 0, ...be16(flags), ...ciaddr]);
    b.set(net.guestMac, 28);
    b.set(sname.subarray(0, 64), 44);
    b.set(file.subarray(0, 128), 108);
    return bytes(b, cookie ? [99, 130, 83, 99] : [0, 0, 0, 0], opts);
  });
  const tlv16 = fc.tuple(
    fc.oneof(fc.constantFrom(1, 2, 3, 5, 6, 8, 14, 16, 23, 24, 25, 39), u16),
    blob(40),
    fc.option(u16, { freq: 5 }),
  ).map(([code, data, badLen]) => bytes(be16(code), be16(badLen ?? data.length), data));
  const dhcpv6 = fc.tuple(
    fc.oneof(fc.constantFrom(1, 3, 4, 5, 6, 7, 8, 9, 11, 12), u8),
    fc.integer({ min: 0, max: 0xffffff }),
    fc.array(
      fc.oneof(
        tlv16,
        fc.constant(bytes(be16(1), be16(10), be16(3), be16(1), net.guestMac)),
        fc.tuple(u32, blob(30)).map(([iaid, inner]) =>
          bytes(be16(3), be16(12 + inner.length), be32(iaid), be32(0), be32(0), inner)
        ),
      ),
      { maxLength: 6 },
    ),
  ).map(([type, xid, opts]) => bytes(type, xid >> 16, (xid >> 8) & 0xff, xid & 0xff, ...opts));

  const udpPorts = fc.tuple(
    fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 40000, max: 40015 }) }, u16),
    port,
  );
  const udpL4 = (src: Uint8Array, dst: Uint8Array) =>
    fc.tuple(udpPorts, payload, fc.boolean()).map(([[sport, dport], data, zero]) =>
      udpDatagram(src, dst, sport, dport, data, zero && src.length === 4)
    );

  const dhcpFrame = fc.tuple(mac, srcMac, src4, ip4Fields, bootp, fc.boolean()).map(
    ([d, s, src, f, body, toBcast]) => {
      const dst = toBcast ? BCAST4 : net.gateway4;
      const u = udpDatagram(src, dst, 68, 67, body);
      return ethFrame(d, s, ETH_P_IP, ip4Packet(src, dst, PROTO_UDP, u, f));
    },
  );
  const dhcpv6Frame = v6(
    PROTO_UDP,
    (src, dst) => dhcpv6.map((body) => udpDatagram(src, dst, 546, 547, body)),
    fc.oneof({ weight: 4, arbitrary: fc.constant(net.guestLL6) }, src6),
    fc.oneof({ weight: 4, arbitrary: fc.constant(DHCPV6_SERVERS) }, dst6),
  );

  // --- ICMP, ICMPv6, NDP -------------------------------------------------------------

  const echoBody = fc.tuple(u16, u16, blob(64)).map(([id, seq, data]) =>
    bytes(be16(id), be16(seq), data)
  );
  const icmp4L4 = (src: Uint8Array, dst: Uint8Array) =>
    fc.tuple(
      fc.oneof({ weight: 6, arbitrary: fc.constant(8) }, u8),
      fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, u8),
      echoBody,
    ).map(([type, code, body]) => icmpMessage(src, dst, type, code, body));
  const icmp6L4 = (src: Uint8Array, dst: Uint8Array) =>
    fc.tuple(
      fc.oneof({ weight: 6, arbitrary: fc.constant(128) }, u8),
      fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, u8),
      echoBody,
    ).map(([type, code, body]) => icmpMessage(src, dst, type, code, body));

  const ndpOption = fc.oneof(
    fc.constant(bytes(1, 1, net.guestMac)), // source link-layer address
    fc.constant(bytes(2, 1, net.guestMac)),
    fc.constant(bytes(1, 0, net.guestMac)), // length 0: must not loop forever
    fc.tuple(u8, u8, blob(22)).map(([type, len, data]) => {
      const body = new Uint8Array(Math.max(6, data.length + ((8 - ((data.length + 2) % 8)) % 8)));
      body.set(data);
      return bytes(type, len, body);
    }),
  );
  const ndpOptions = fc.array(ndpOption, { maxLength: 4 }).map((o) => bytes(...o));
  const ndpL4 = (src: Uint8Array, dst: Uint8Array) =>
    fc.tuple(
      fc.oneof({ weight: 4, arbitrary: fc.constantFrom(133, 135) }, fc.constantFrom(134, 136, 137)),
      fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, u8),
      fc.oneof(fc.constantFrom(net.ourLL6, net.gateway6, net.guest6), fixed(16)),
      ndpOptions,
    ).map(([type, code, target, opts]) =>
      icmpMessage(
        src,
        dst,
        type,
        code,
        type === 133 ? bytes(0, 0, 0, 0, opts) : bytes(
          0,
          0,
          0,
          0,
          target,
          opts,
        ),
      )
    );
  const ndpFrame = v6(
    PROTO_ICMPV6,
    ndpL4,
    fc.oneof({ weight: 4, arbitrary: fc.constant(net.guestLL6) }, fc.constant(ZERO6), src6),
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(ALL_ROUTERS6, net.ourLL6) },
      fc.constant(
        Uint8Array.of(0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, ...net.ourLL6.slice(13)),
      ),
      dst6,
    ),
    fc.oneof({ weight: 6, arbitrary: fc.constant(255) }, fc.constantFrom(64, 0)),
  );

  // --- ARP and raw Ethernet ----------------------------------------------------------

  const arpFrame = fc.tuple(
    mac,
    srcMac,
    fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, u16),
    fc.oneof({ weight: 6, arbitrary: fc.constant(ETH_P_IP) }, u16),
    fc.oneof({ weight: 6, arbitrary: fc.constant(0x0604) }, u16),
    fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, fc.constantFrom(2, 0, 3), u16),
    src4,
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(net.gateway4) },
      fc.constantFrom(net.guest4, net.remote4),
      fixed(4),
    ),
    blob(20),
  ).map(([d, s, htype, ptype, lens, op, spa, tpa, pad]) =>
    ethFrame(
      d,
      s,
      ETH_P_ARP,
      bytes(be16(htype), be16(ptype), be16(lens), be16(op), s, spa, new Uint8Array(6), tpa, pad),
    )
  );
  const rawFrame = fc.tuple(
    mac,
    srcMac,
    fc.oneof(fc.constantFrom(ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, 0x8100, 0x88cc, 0x0000, 0x05dc), u16),
    blob(120),
  ).map(([d, s, type, rest]) => ethFrame(d, s, type, rest));
  const tinyFrame = blob(60);

  return {
    arp: arpFrame,
    tcp4: v4(PROTO_TCP, tcpL4),
    syn4: fc.tuple(mac, ip4Fields).chain(([d, f]) =>
      synL4(net.guest4, net.gateway4).map((l4) =>
        ethFrame(d, net.guestMac, ETH_P_IP, ip4Packet(net.guest4, net.gateway4, PROTO_TCP, l4, f))
      )
    ),
    syn6: v6(PROTO_TCP, synL4, fc.constant(net.guest6), toHost(net.gateway6)),
    tcp6: v6(PROTO_TCP, tcpL4),
    udp4: v4(PROTO_UDP, udpL4),
    udp6: v6(PROTO_UDP, udpL4),
    dhcp: dhcpFrame,
    dhcpv6: dhcpv6Frame,
    icmp4: v4(PROTO_ICMP, icmp4L4),
    icmp6: v6(PROTO_ICMPV6, icmp6L4),
    ndp: ndpFrame,
    raw: rawFrame,
    tiny: tinyFrame,
    tcpOptions,
    tcpFlags,
    payload,
  };
}

/** Hot spots of a frame's headers, where mutations hurt most (Ethernet at 0). */
const HOT_SPOTS = [
  12,
  13, // ethertype
  14,
  16,
  17,
  20,
  21,
  23, // IPv4: version/IHL, total length, fragment, protocol
  18,
  19,
  20,
  54, // IPv6: payload length, next header; first extension header
  34,
  35,
  36,
  37,
  38,
  39,
  46,
  47, // L4 after a plain IPv4 header: ports, UDP length, TCP data offset/flags
  54,
  55,
  58,
  59,
  66,
  67, // L4 after a plain IPv6 header
  55,
  62,
  63, // ICMPv6 / extension header length, NDP option bytes
];

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.nat(6),
  pos: fc.nat(),
  value: fc.nat(),
});

/** Every step of a fuzz case. */
export function stepArbitrary(net: FuzzNet): fc.Arbitrary<Step> {
  const f = frameArbitraries(net);
  const base = fc.oneof(
    { weight: 3, arbitrary: f.arp },
    { weight: 8, arbitrary: f.tcp4 },
    { weight: 6, arbitrary: f.tcp6 },
    { weight: 3, arbitrary: f.syn4 },
    { weight: 3, arbitrary: f.syn6 },
    { weight: 4, arbitrary: f.udp4 },
    { weight: 3, arbitrary: f.udp6 },
    { weight: 3, arbitrary: f.dhcp },
    { weight: 3, arbitrary: f.dhcpv6 },
    { weight: 2, arbitrary: f.icmp4 },
    { weight: 2, arbitrary: f.icmp6 },
    { weight: 3, arbitrary: f.ndp },
    { weight: 2, arbitrary: f.raw },
    { weight: 1, arbitrary: f.tiny },
  );
  const mutations = fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as Mutation[]) },
    fc.array(mutation, { minLength: 1, maxLength: 4 }),
  );
  const frame = fc.record({
    kind: fc.constant("frame" as const),
    base,
    mutations,
    fixChecksums: fc.boolean(),
  });
  const reply = fc.record({
    kind: fc.constant("reply" as const),
    pick: fc.nat(7),
    reply: fc.record({
      flags: fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(ACK, PSH | ACK, FIN | ACK) },
        fc.constantFrom(RST, RST | ACK, SYN | ACK, FIN | PSH | ACK),
        f.tcpFlags,
      ),
      seqDelta: fc.oneof(
        { weight: 8, arbitrary: fc.constant(0) },
        fc.constantFrom(1, -1, 1 << 30, -(1 << 30)),
        fc.integer({ min: -70000, max: 70000 }),
      ),
      ackDelta: fc.oneof(
        { weight: 8, arbitrary: fc.constant(0) },
        fc.constantFrom(1, -1, 0x7fffffff),
        fc.integer({ min: -70000, max: 70000 }),
      ),
      window: fc.oneof({ weight: 4, arbitrary: fc.constant(65535) }, fc.constantFrom(0, 1), u16),
      options: fc.oneof({ weight: 6, arbitrary: fc.constant(new Uint8Array(0)) }, f.tcpOptions),
      payload: fc.oneof({ weight: 3, arbitrary: fc.constant(new Uint8Array(0)) }, f.payload),
    }),
    mutations: fc.oneof(
      { weight: 6, arbitrary: fc.constant([] as Mutation[]) },
      fc.array(mutation, { minLength: 1, maxLength: 2 }),
    ),
  });
  const wait = fc.record({
    kind: fc.constant("wait" as const),
    ms: fc.integer({ min: 0, max: 15 }),
  });
  return fc.oneof(
    { weight: 10, arbitrary: frame },
    { weight: 6, arbitrary: reply },
    { weight: 1, arbitrary: wait },
  );
}

/** A fuzz case: a short series of steps on one data path. */
export function caseArbitrary(net: FuzzNet, maxSteps = 24): fc.Arbitrary<Step[]> {
  return fc.array(stepArbitrary(net), { minLength: 1, maxLength: maxSteps });
}

/** `frame` with `mutations` applied (a new array). */
export function mutate(frame: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let f: Uint8Array = Uint8Array.from(frame);
  for (const m of mutations) {
    const len = f.length;
    switch (m.op) {
      case 0: // a random byte
        if (len > 0) f[m.pos % len] = m.value & 0xff;
        break;
      case 1: // an edge value
        if (len > 0) f[m.pos % len] = [0, 1, 0x7f, 0x80, 0xff][m.value % 5]!;
        break;
      case 2: // truncate
        f = f.slice(0, m.pos % (len + 1));
        break;
      case 3: // extend with garbage
        f = bytes(f, Array.from({ length: m.value % 48 }, (_, i) => (m.pos * 31 + i * 7) & 0xff));
        break;
      case 4: // a length-looking 16-bit value somewhere
      case 5: // ... or at a header hot spot
        {
          const at = m.op === 5 ? HOT_SPOTS[m.pos % HOT_SPOTS.length]! : m.pos % Math.max(1, len);
          const v = [
            0,
            1,
            4,
            5,
            8,
            20,
            0x0f,
            0x4f,
            0xff,
            0x100,
            0xffff,
            len,
            len - 14,
            len - 34,
            len - 54,
          ][
            m.value % 15
          ]!;
          if (at + 1 < len) {
            f[at] = (v >> 8) & 0xff;
            f[at + 1] = v & 0xff;
          }
        }
        break;
      case 6: // a single byte at a hot spot
        {
          const at = HOT_SPOTS[m.pos % HOT_SPOTS.length]!;
          if (at < len) f[at] = m.value & 0xff;
        }
        break;
    }
  }
  return f;
}

/**
 * Recompute the IPv4 header checksum and the transport checksum of `f` in place,
 * as far as its (possibly broken) headers allow: mutated frames then reach past
 * the checksum tests.
 */
export function fixChecksums(f: Uint8Array): void {
  if (f.length < 14) return;
  const type = get16(f, 12);
  let l4 = -1, end = -1, proto = -1;
  let src: Uint8Array, dst: Uint8Array;
  if (type === ETH_P_IP && f.length >= 34) {
    const ihl = (f[14]! & 0x0f) * 4;
    if (ihl < 20 || 14 + ihl > f.length) return;
    f[24] = f[25] = 0;
    const c = naiveChecksum(f.subarray(14, 14 + ihl));
    f[24] = c >> 8;
    f[25] = c & 0xff;
    l4 = 14 + ihl;
    end = Math.min(f.length, 14 + get16(f, 16));
    proto = f[23]!;
    src = f.subarray(26, 30);
    dst = f.subarray(30, 34);
  } else if (type === ETH_P_IPV6 && f.length >= 54) {
    l4 = 54;
    end = Math.min(f.length, 54 + get16(f, 18));
    proto = f[20]!;
    src = f.subarray(22, 38);
    dst = f.subarray(38, 54);
  } else {
    return;
  }
  if (end <= l4) return;
  const at = proto === PROTO_TCP ? 16 : proto === PROTO_UDP ? 6 : proto === PROTO_ICMP ||
      proto === PROTO_ICMPV6
    ? 2
    : -1;
  if (at < 0 || l4 + at + 2 > end) return;
  const seg = f.subarray(l4, end);
  seg[at] = seg[at + 1] = 0;
  const pseudo = proto === PROTO_ICMP ? undefined : pseudoHeader(src, dst, proto, seg.length);
  const c = naiveChecksum(pseudo === undefined ? seg : bytes(pseudo, seg));
  seg[at] = c >> 8;
  seg[at + 1] = c & 0xff;
}
