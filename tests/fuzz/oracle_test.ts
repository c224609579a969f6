/**
 * The tap fuzzer's oracle (tests/fuzz/_oracle.ts) on hand-made frames: it must
 * accept real answers and reject malformed, unsolicited or mismatched ones, or the
 * fuzzer would pass whatever the data path does.
 */
import assert from "node:assert/strict";
import { arpRequest, GUEST4, GUEST_MAC, OUR_MAC, ROUTER4 } from "../protocols/_fixtures.ts";
import { bytes } from "../protocols/_frames.ts";
import { Oracle } from "./_oracle.ts";
import { ETH_P_ARP, ETH_P_IP, ethFrame, ip4Packet, PROTO_TCP, tcpSegment } from "./_wire.ts";

const IP4 = { tos: 0, id: 0, fragField: 0, ttl: 64, options: new Uint8Array(0) };

function arpAnswer(sender: Uint8Array, target: Uint8Array): Uint8Array {
  return ethFrame(
    GUEST_MAC,
    OUR_MAC,
    ETH_P_ARP,
    bytes(0, 1, 8, 0, 6, 4, 0, 2, OUR_MAC, sender, GUEST_MAC, target),
  );
}

function tcp4(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, flags: number) {
  const seg = tcpSegment(src, dst, {
    sport,
    dport,
    seq: 1,
    ack: 2,
    flags,
    window: 100,
    urgent: 0,
    options: new Uint8Array(0),
    payload: new Uint8Array(0),
  });
  return ethFrame(GUEST_MAC, OUR_MAC, ETH_P_IP, ip4Packet(src, dst, PROTO_TCP, seg, IP4));
}

Deno.test("fuzz oracle: an ARP reply must answer the request just handled", () => {
  const o = new Oracle(OUR_MAC, GUEST4);
  o.input(arpRequest(GUEST4, ROUTER4));
  assert.equal(o.output(arpAnswer(ROUTER4, GUEST4)), undefined);
  assert.match(o.output(arpAnswer(ROUTER4, GUEST4)) ?? "", /two answers/);
  o.endInput();
  assert.match(o.output(arpAnswer(ROUTER4, GUEST4)) ?? "", /no ARP request/);
  o.input(arpRequest(GUEST4, GUEST4)); // an announcement
  assert.match(o.output(arpAnswer(GUEST4, GUEST4)) ?? "", /no valid request/);
});

Deno.test("fuzz oracle: TCP only on 4-tuples the guest used, with good checksums", () => {
  const o = new Oracle(OUR_MAC, GUEST4);
  assert.match(o.output(tcp4(ROUTER4, GUEST4, 80, 40000, 0x14)) ?? "", /never used/);
  const bad = tcp4(GUEST4, ROUTER4, 40001, 80, 0x10);
  bad[bad.length - 4]! ^= 1; // the TCP checksum
  o.input(bad);
  assert.match(o.output(tcp4(ROUTER4, GUEST4, 80, 40001, 0x14)) ?? "", /never used/);
  o.input(tcp4(GUEST4, ROUTER4, 40000, 80, 0x10));
  assert.equal(o.output(tcp4(ROUTER4, GUEST4, 80, 40000, 0x14)), undefined);
  const corrupt = tcp4(ROUTER4, GUEST4, 80, 40000, 0x10);
  corrupt[corrupt.length - 1]! ^= 1;
  assert.match(o.output(corrupt) ?? "", /malformed.*TCP checksum/);
  assert.match(o.output(corrupt.subarray(0, 40)) ?? "", /malformed/);
});
