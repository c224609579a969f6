/**
 * The address translation (src/flow/nat.ts) in both directions, for each of
 * TCP, UDP and ICMP echo: what the guest's destination becomes on the host, and
 * what a host-side source becomes for the guest. The plan is the UDP tests'
 * (guest = host address 198.51.100.7 / 2001:db8:1::7, gateway = host loopback,
 * --dns-forward 198.51.100.53 / 2001:db8:1::53 → 127.0.0.53 / ::1).
 */
import assert from "node:assert/strict";
import { DNS_PORT, DNS_TLS_PORT, OutboundKind } from "../../src/flow/nat.ts";
import { ip4, ip6 } from "../protocols/_fixtures.ts";
import {
  DNS_FWD4,
  DNS_FWD6,
  GATEWAY4,
  GATEWAY6,
  GUEST_LL6,
  HOST4,
  HOST6,
  RESOLVER4,
  RESOLVER6,
  udpContext,
} from "../protocols/_udp_context.ts";

/** How each protocol calls the translation: TCP and UDP with their port, echo with 0. */
const PROTOCOLS = [
  { name: "TCP", tcp: true, port: (p: number) => p },
  { name: "UDP", tcp: false, port: (p: number) => p },
  { name: "ICMP", tcp: false, port: (_p: number) => 0 },
] as const;

const { nat, loop } = udpContext();
globalThis.addEventListener("unload", () => loop.close());

function outbound(dst: Uint8Array, port: number, tcp: boolean): [number, Uint8Array] {
  // The destination inside a frame-like buffer, at an offset.
  const frame = new Uint8Array(64);
  frame.set(dst, 5);
  const out = new Uint8Array(dst.length);
  return [nat.outbound(frame, 5, dst.length, port, tcp, out), out];
}

for (const proto of PROTOCOLS) {
  Deno.test(`nat: ${proto.name} outbound, IPv4 and IPv6`, () => {
    for (const [gw, lo] of [[GATEWAY4, ip4("127.0.0.1")], [GATEWAY6, ip6("::1")]] as const) {
      assert.deepEqual(
        outbound(gw, proto.port(80), proto.tcp),
        [OutboundKind.HOST_LOOPBACK, lo],
        "the gateway stands for the host's loopback",
      );
    }
    for (const remote of [ip4("203.0.113.1"), ip6("2001:db8:2::1")]) {
      assert.deepEqual(outbound(remote, proto.port(80), proto.tcp), [OutboundKind.DIRECT, remote]);
    }
    for (const [fwd, resolver] of [[DNS_FWD4, RESOLVER4], [DNS_FWD6, RESOLVER6]] as const) {
      const dns = outbound(fwd, proto.port(DNS_PORT), proto.tcp);
      const tls = outbound(fwd, proto.port(DNS_TLS_PORT), proto.tcp);
      if (proto.name === "ICMP") {
        // Echo has no port: the --dns-forward address is pinged as it is.
        assert.deepEqual(dns, [OutboundKind.DIRECT, fwd]);
      } else {
        assert.deepEqual(dns, [OutboundKind.DNS, resolver], "DNS to the resolver");
        assert.deepEqual(
          tls,
          proto.tcp ? [OutboundKind.DNS, resolver] : [OutboundKind.DIRECT, fwd],
          "DNS over TLS: TCP only",
        );
      }
    }
  });

  Deno.test(`nat: ${proto.name} inbound: sources the guest can't reach are mapped`, () => {
    const inbound = (src: Uint8Array) => {
      const frame = new Uint8Array(40);
      frame.set(src, 7);
      const out = new Uint8Array(src.length);
      return nat.inboundSource(frame, 7, src.length, out) ? out : undefined;
    };
    // A reply to what the translation sent out maps back to what the guest used.
    const [, lo4] = outbound(GATEWAY4, proto.port(80), proto.tcp);
    assert.deepEqual(inbound(lo4), GATEWAY4, "loopback comes from the gateway");
    const [, lo6] = outbound(GATEWAY6, proto.port(80), proto.tcp);
    assert.deepEqual(inbound(lo6), GATEWAY6);
    assert.deepEqual(inbound(ip4("127.0.0.5")), GATEWAY4, "any 127/8");
    assert.deepEqual(inbound(HOST4), GATEWAY4, "the host's own address (the guest's too)");
    assert.deepEqual(inbound(HOST6), GATEWAY6);
    for (const other of [ip4("203.0.113.1"), ip6("2001:db8:2::1")]) {
      assert.deepEqual(inbound(other), other, "anything else as it is");
    }
    const to4 = new Uint8Array(4);
    nat.guestDestination(4, false, to4);
    assert.deepEqual(to4, HOST4);
    const to6 = new Uint8Array(16);
    nat.guestDestination(16, false, to6);
    assert.deepEqual(to6, HOST6);
    nat.guestDestination(16, true, to6);
    assert.deepEqual(to6, GUEST_LL6, "link-local source: to the guest's link-local address");
  });
}
