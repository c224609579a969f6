/**
 * ICMP/ICMPv6 echo forwarding. The end-to-end case runs _icmp_probe.ts inside a
 * throwaway user+network namespace (`unshare -rn`) where only `lo` exists, so no
 * echo request can reach the host's network; it is skipped where unprivileged
 * namespaces are not available. Malformed input needs no socket and runs here.
 */

import assert from "node:assert/strict";
import { EventLoop } from "../../src/loop.ts";
import { IcmpEcho, type IcmpParams } from "../../src/protocols/icmp.ts";
import {
  assertIpv6L4Checksum,
  be16,
  bytes,
  eth,
  ipv4,
  ipv6,
  naiveChecksum,
  rd16,
  view,
} from "./_frames.ts";
import { GUEST_MAC, ip4, ip6, OUR_MAC } from "./_fixtures.ts";

const PROBE = new URL("./_icmp_probe.ts", import.meta.url).pathname;

function canUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["-rn", "true"] }).outputSync().success;
  } catch {
    return false;
  }
}

function unhex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

// Must match the probe's requests: seq → [version, address pinged, identifier, payload].
const EXPECTED: Record<number, [4 | 6, string, number, string]> = {
  1: [4, "127.0.0.1", 0x1234, "hello 127.0.0.1"],
  2: [4, "192.0.2.1", 0x1234, "hello gateway"],
  3: [4, "192.0.2.2", 0x2222, "hello mapped guest"],
  4: [4, "127.0.0.1", 0x1234, "again"],
  5: [6, "::1", 0x4321, "hello ::1, odd"],
  6: [6, "fe80::1", 0x4321, "hello fe80::1"],
  7: [6, "2001:db8::2", 0x6666, "hello mapped guest6"],
};

Deno.test({
  name: "echo requests reach the namespace's loopback and the replies reach the guest",
  ignore: !canUnshare(),
  async fn() {
    const setup = [
      "ip link set lo up",
      // Only our own group is mapped in the namespace: allow exactly that one.
      'g=$(id -g); echo "$g $g" > /proc/sys/net/ipv4/ping_group_range',
      "ip addr add 198.51.100.7/32 dev lo",
      "ip -6 addr add 2001:db8:1::7/128 dev lo nodad",
      'exec timeout 30 "$DENO" run -A --quiet "$PROBE"',
    ].join(" && ");
    const out = await new Deno.Command("unshare", {
      args: ["-rn", "sh", "-ec", setup],
      env: { DENO: Deno.execPath(), PROBE },
    }).output();
    assert.ok(out.success, `probe failed: ${new TextDecoder().decode(out.stderr)}`);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));

    for (const [label, ok] of Object.entries(r.sent)) assert.ok(ok, `${label} sent`);
    assert.equal(r.frames.length, 7, "one reply per request, no more");
    const seen = new Set<number>();
    for (const h of r.frames as string[]) {
      const f = unhex(h);
      assert.deepEqual(f.subarray(0, 6), GUEST_MAC, "to the guest's MAC");
      assert.deepEqual(f.subarray(6, 12), OUR_MAC, "from our MAC");
      const v6 = rd16(f, 12) === 0x86dd;
      let icmp: Uint8Array;
      if (!v6) {
        assert.equal(rd16(f, 12), 0x0800);
        assert.equal(naiveChecksum(f.subarray(14, 34)), 0, "IPv4 header checksum");
        assert.equal(rd16(f, 16), f.length - 14, "IPv4 total length");
        assert.equal(f[23], 1, "protocol ICMP");
        icmp = f.subarray(34);
        assert.equal(naiveChecksum(icmp), 0, "ICMP checksum");
        assert.equal(icmp[0], 0, "echo reply");
      } else {
        assert.equal(f[20], 58, "next header ICMPv6");
        assertIpv6L4Checksum(f);
        icmp = f.subarray(54);
        assert.equal(icmp[0], 129, "echo reply");
      }
      assert.equal(icmp[1], 0, "code");
      const seq = rd16(icmp, 6);
      const want = EXPECTED[seq];
      assert.ok(want !== undefined, `unexpected sequence ${seq}`);
      assert.ok(!seen.has(seq), `duplicate reply ${seq}`);
      seen.add(seq);
      const [version, from, id, payload] = want;
      assert.equal(v6 ? 6 : 4, version, `seq ${seq}: IP version`);
      if (v6) {
        assert.deepEqual(f.subarray(22, 38), ip6(from), `seq ${seq}: from the address pinged`);
        assert.deepEqual(f.subarray(38, 54), ip6(r.guest6), `seq ${seq}: to the guest`);
      } else {
        assert.deepEqual(f.subarray(26, 30), ip4(from), `seq ${seq}: from the address pinged`);
        assert.deepEqual(f.subarray(30, 34), ip4(r.guest4), `seq ${seq}: to the guest`);
      }
      assert.equal(rd16(icmp, 4), id, `seq ${seq}: the guest's identifier`);
      assert.equal(text(icmp.subarray(8)), payload, `seq ${seq}: payload`);
    }

    assert.equal(r.stats.requests, 7);
    assert.equal(r.stats.replies, 7);
    assert.equal(r.stats.flowsOpened, 6, "the repeated request reused its flow");
    // Loopback and gateway flows share identifier and target: one got another id.
    assert.equal(r.stats.idRemapped, 2);
    for (const [reason, n] of Object.entries(r.stats.dropped)) assert.equal(n, 0, reason);

    assert.equal(r.flowsBeforeExpiry, 6);
    assert.equal(r.flowsAfterHalfTimeout, 6, "30 s idle: still open");
    assert.equal(r.flowsAfterTimeout, 0, "60 s idle: expired");
    assert.equal(r.socketsAfterExpiry, r.socketsBefore, "expired sockets closed");
    assert.equal(r.socketsAfterClose, r.socketsBefore, "close() closes every socket");

    assert.deepEqual(r.full, { first: true, second: false, fullCount: 1, smallFlows: 1 });
  },
});

const GUEST4 = ip4("192.0.2.100");
const GUEST6 = ip6("2001:db8::100");

function params(over: Partial<IcmpParams> = {}): IcmpParams {
  return {
    ourMac: OUR_MAC,
    guest: {
      mac: GUEST_MAC,
      addr4: GUEST4,
      addr6: GUEST6,
      addr6LinkLocal: ip6("fe80::2"),
      seen: true,
    },
    ipv4: true,
    ipv6: true,
    ...over,
  };
}

/** ICMP message with a correct checksum (unless `badSum`). */
function icmp4(type: number, code: number, rest: number[], badSum = false): Uint8Array {
  const m = bytes(type, code, 0, 0, rest);
  const c = naiveChecksum(m) ^ (badSum ? 0x5555 : 0);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

function frame4(icmp: Uint8Array): Uint8Array {
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(GUEST4, ip4("127.0.0.1"), 1, icmp));
}

function frame6(type: number, code: number, rest: number[], badSum = false): Uint8Array {
  const f = eth(
    OUR_MAC,
    GUEST_MAC,
    0x86dd,
    ipv6(GUEST6, ip6("::1"), 58, 64, bytes(type, code, 0, 0, rest), 2),
  );
  if (badSum) f[56]! ^= 0x55;
  return f;
}

const ECHO_BODY = [...be16(0x99), ...be16(1), 1, 2, 3, 4];

Deno.test("malformed and non-echo messages are dropped, counted, and open no socket", () => {
  const loop = new EventLoop();
  const sent: unknown[] = [];
  const icmp = new IcmpEcho(loop, params(), (f) => sent.push(f));
  try {
    const v4 = (frame: Uint8Array, payloadLength = frame.length - 34) =>
      icmp.fromTap4(view(frame), 14, 20, payloadLength);
    const v6 = (frame: Uint8Array, payloadLength = frame.length - 54) =>
      icmp.fromTap6(view(frame), 14, 40, payloadLength);

    // Truncated: shorter than an echo header, or claiming more than the frame holds.
    assert.equal(v4(frame4(icmp4(8, 0, [0, 1]))), false);
    assert.equal(v4(frame4(icmp4(8, 0, ECHO_BODY)), 200), false);
    assert.equal(v6(frame6(128, 0, [0, 1])), false);
    assert.equal(v6(frame6(128, 0, ECHO_BODY), 500), false);
    assert.equal(icmp.fromTap4(view(frame4(icmp4(8, 0, ECHO_BODY))), 14, 16, 12), false);
    assert.equal(icmp.stats.dropped.truncated, 5);

    // Bad checksums.
    assert.equal(v4(frame4(icmp4(8, 0, ECHO_BODY, true))), false);
    assert.equal(v6(frame6(128, 0, ECHO_BODY, true)), false);
    assert.equal(icmp.stats.dropped.checksum, 2);

    // Not echo requests: echo reply, unreachable, timestamp; ICMPv6 reply, NS, unreachable.
    for (const type of [0, 3, 13]) assert.equal(v4(frame4(icmp4(type, 0, ECHO_BODY))), false);
    for (const type of [129, 135, 1]) assert.equal(v6(frame6(type, 0, ECHO_BODY)), false);
    assert.equal(icmp.stats.dropped.type, 6);

    // Echo requests with a non-zero code.
    assert.equal(v4(frame4(icmp4(8, 1, ECHO_BODY))), false);
    assert.equal(v6(frame6(128, 3, ECHO_BODY)), false);
    assert.equal(icmp.stats.dropped.code, 2);

    // A fragment (more-fragments flag set; header checksum fixed up).
    const frag = frame4(icmp4(8, 0, ECHO_BODY));
    frag[20] = 0x20;
    frag[24] = 0;
    frag[25] = 0;
    const c = naiveChecksum(frag.subarray(14, 34));
    frag[24] = c >> 8;
    frag[25] = c & 0xff;
    assert.equal(v4(frag), false);
    assert.equal(icmp.stats.dropped.fragment, 1);

    assert.equal(icmp.flowCount, 0);
    assert.equal(icmp.stats.flowsOpened, 0, "no socket opened");
    assert.equal(icmp.stats.requests, 0);
    assert.equal(sent.length, 0);
  } finally {
    icmp.close();
    loop.close();
  }
});

Deno.test("a disabled IP version is dropped without a socket", () => {
  const loop = new EventLoop();
  const icmp = new IcmpEcho(loop, params({ ipv4: false, ipv6: false }), () => {});
  try {
    const f4 = frame4(icmp4(8, 0, ECHO_BODY));
    const f6 = frame6(128, 0, ECHO_BODY);
    assert.equal(icmp.fromTap4(view(f4), 14, 20, f4.length - 34), false);
    assert.equal(icmp.fromTap6(view(f6), 14, 40, f6.length - 54), false);
    assert.equal(icmp.stats.dropped.disabled, 2);
    assert.equal(icmp.stats.flowsOpened, 0);
  } finally {
    icmp.close();
    loop.close();
  }
});

Deno.test("an unmapped link-local IPv6 destination without an outbound interface is dropped", () => {
  const loop = new EventLoop();
  const icmp = new IcmpEcho(loop, params(), () => {});
  try {
    const f = eth(
      OUR_MAC,
      GUEST_MAC,
      0x86dd,
      ipv6(GUEST6, ip6("fe80::99"), 58, 64, bytes(128, 0, 0, 0, ECHO_BODY), 2),
    );
    assert.equal(icmp.fromTap6(view(f), 14, 40, f.length - 54), false);
    assert.equal(icmp.stats.dropped.unreachable, 1);
    assert.equal(icmp.flowCount, 0);
  } finally {
    icmp.close();
    loop.close();
  }
});
