/**
 * Randomized robustness: mutate valid requests many times (bounded, seeded) and
 * check that every service returns without throwing, and that whatever reply it
 * does build is a well-formed frame with correct checksums.
 */
import assert from "node:assert/strict";
import { arpReply, newArpStats } from "../../src/protocols/arp.ts";
import { dhcpReply, newDhcpStats } from "../../src/protocols/dhcp.ts";
import { dhcpv6Reply, newDhcpv6Stats } from "../../src/protocols/dhcpv6.ts";
import { ndpReply, newNdpStats } from "../../src/protocols/ndp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { assertIpv4UdpChecksums, assertIpv6L4Checksum, be16, prng, replyBytes } from "./_frames.ts";
import {
  arpParams,
  arpRequest,
  CLIENT_DUID,
  dhcpParams,
  dhcpRequest,
  dhcpv6Params,
  dhcpv6Request,
  GUEST4,
  GUEST6,
  GUEST_LL,
  iaNa,
  ndpParams,
  neighborSolicit,
  OUR_LL,
  ROUTER4,
  routerSolicit,
  v6opt,
} from "./_fixtures.ts";

const ROUNDS = 4000;

function mutate(seed: Uint8Array, rnd: () => number, buf: Uint8Array): number {
  buf.set(seed);
  let len = seed.length;
  const edits = 1 + (rnd() % 4);
  for (let i = 0; i < edits; i++) {
    switch (rnd() % 5) {
      case 0: // flip a byte
        buf[rnd() % len] = rnd() & 0xff;
        break;
      case 1: // set a byte to an edge value
        buf[rnd() % len] = [0, 1, 0x7f, 0x80, 0xff][rnd() % 5]!;
        break;
      case 2: // truncate
        len = rnd() % (len + 1);
        if (len === 0) len = 1;
        break;
      case 3: // extend with garbage
        {
          const extra = rnd() % 64;
          for (let j = 0; j < extra && len < buf.length; j++) buf[len++] = rnd() & 0xff;
        }
        break;
      case 4: // mess with a length-looking 16-bit field
        {
          const at = rnd() % Math.max(1, len - 1);
          const v = [0, 1, 7, 8, 255, 256, 0xffff, len, len - 14][rnd() % 9]!;
          buf[at] = (v >> 8) & 0xff;
          buf[at + 1] = v & 0xff;
        }
        break;
    }
  }
  return len;
}

function fuzz(
  name: string,
  seeds: Uint8Array[],
  serve: (pkt: PacketView, out: PacketView) => number,
  check: (reply: Uint8Array) => void,
  seedNo: number,
) {
  Deno.test(`fuzz: ${name} survives ${ROUNDS} mutated requests`, () => {
    const rnd = prng(seedNo);
    const inBuf = new Uint8Array(4096);
    const pkt = new PacketView(inBuf, 0);
    const out = PacketView.alloc(2048);
    let replies = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const seed = seeds[i % seeds.length]!;
      const len = mutate(seed, rnd, inBuf);
      pkt.setWindow(0, len);
      const n = serve(pkt, out);
      assert.ok(n >= 0 && n <= out.capacity);
      if (n > 0) {
        replies++;
        check(replyBytes(out, n));
      }
    }
    assert.ok(replies > 0, "some mutations still get replies");
  });
}

const arpStats = newArpStats();
fuzz(
  "ARP",
  [arpRequest(GUEST4, ROUTER4)],
  (p, o) => arpReply(p, arpParams, o, arpStats),
  (r) => assert.equal(r.length, 42),
  1,
);

const dhcpStats = newDhcpStats();
fuzz(
  "DHCP",
  [
    dhcpRequest(1, [[61, 1, 2, 3, 4, 5, 6, 7], [57, ...be16(1500)]]),
    dhcpRequest(3, [[50, ...GUEST4], [54, ...ROUTER4]]),
    dhcpRequest(8, [], { ciaddr: GUEST4, src: GUEST4 }),
  ],
  (p, o) => dhcpReply(p, dhcpParams, o, dhcpStats),
  assertIpv4UdpChecksums,
  2,
);

const ndpStats = newNdpStats();
fuzz(
  "NDP",
  [neighborSolicit(GUEST_LL, OUR_LL), routerSolicit(GUEST_LL), neighborSolicit(GUEST6, OUR_LL)],
  (p, o) => ndpReply(p, ndpParams, o, ndpStats),
  assertIpv6L4Checksum,
  3,
);

const clientId = v6opt(1, CLIENT_DUID);
const dhcpv6Stats = newDhcpv6Stats();
fuzz(
  "DHCPv6",
  [
    dhcpv6Request(1, 42, clientId, v6opt(8, [0, 0]), iaNa(9, GUEST6)),
    dhcpv6Request(6, 42, clientId, iaNa(9, GUEST6, OUR_LL)),
    dhcpv6Request(11, 42, clientId, v6opt(6, [0, 23, 0, 24])),
  ],
  (p, o) => dhcpv6Reply(p, dhcpv6Params, o, dhcpv6Stats),
  assertIpv6L4Checksum,
  4,
);
