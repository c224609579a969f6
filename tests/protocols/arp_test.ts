import assert from "node:assert/strict";
import { arpReply, newArpStats } from "../../src/protocols/arp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { replyBytes, view } from "./_frames.ts";
import { arpParams, arpRequest, GUEST4, GUEST_MAC, ip4, OUR_MAC, ROUTER4 } from "./_fixtures.ts";

Deno.test("ARP: request for the gateway is answered with our MAC", () => {
  const out = PacketView.alloc(128);
  const stats = newArpStats();
  const n = arpReply(view(arpRequest(GUEST4, ROUTER4)), arpParams, out, stats);
  assert.equal(n, 42);
  assert.equal(out.length, 42);
  const r = replyBytes(out, n);
  assert.deepEqual(r.subarray(0, 6), GUEST_MAC, "Ethernet destination: requester");
  assert.deepEqual(r.subarray(6, 12), OUR_MAC, "Ethernet source: us");
  assert.deepEqual([...r.subarray(12, 22)], [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
  assert.deepEqual(r.subarray(22, 28), OUR_MAC, "sender hardware address");
  assert.deepEqual(r.subarray(28, 32), ROUTER4, "sender protocol address: the one asked for");
  assert.deepEqual(r.subarray(32, 38), GUEST_MAC, "target hardware address");
  assert.deepEqual(r.subarray(38, 42), GUEST4, "target protocol address");
  assert.equal(stats.replies, 1);
});

Deno.test("ARP: any other address is answered too, probes from 0.0.0.0 included", () => {
  const out = PacketView.alloc(128);
  assert.equal(arpReply(view(arpRequest(GUEST4, ip4("192.168.1.77"))), arpParams, out), 42);
  assert.equal(arpReply(view(arpRequest(ip4("0.0.0.0"), ip4("10.0.0.1"))), arpParams, out), 42);
  assert.deepEqual(replyBytes(out, 42).subarray(38, 42), ip4("0.0.0.0"));
});

Deno.test("ARP: guest's own address and gratuitous announcements are ignored", () => {
  const out = PacketView.alloc(128);
  const stats = newArpStats();
  assert.equal(arpReply(view(arpRequest(ip4("0.0.0.0"), GUEST4)), arpParams, out, stats), 0);
  assert.equal(stats.dropped.guestAddress, 1, "address conflict probe for the guest's address");
  assert.equal(arpReply(view(arpRequest(ROUTER4, ROUTER4)), arpParams, out, stats), 0);
  assert.equal(stats.dropped.announcement, 1);
  assert.equal(arpReply(view(arpRequest(GUEST4, GUEST4)), arpParams, out, stats), 0);
  assert.equal(out.length, 0);
});

Deno.test("ARP: malformed and non-request frames get no reply", () => {
  const out = PacketView.alloc(128);
  const stats = newArpStats();
  const good = arpRequest(GUEST4, ROUTER4);
  for (let len = 0; len < good.length; len++) {
    assert.equal(arpReply(view(good.subarray(0, len)), arpParams, out, stats), 0);
  }
  assert.equal(stats.dropped.truncated, good.length);
  assert.equal(arpReply(view(arpRequest(GUEST4, ROUTER4, 2)), arpParams, out, stats), 0);
  assert.equal(stats.dropped.notRequest, 1);
  const badHw = Uint8Array.from(good);
  badHw[15] = 6; // hardware type 6 (IEEE 802)
  assert.equal(arpReply(view(badHw), arpParams, out, stats), 0);
  const badPlen = Uint8Array.from(good);
  badPlen[19] = 16;
  assert.equal(arpReply(view(badPlen), arpParams, out, stats), 0);
  assert.equal(stats.dropped.unsupported, 2);
  const mcastSender = Uint8Array.from(good);
  mcastSender[22] = 0x01;
  assert.equal(arpReply(view(mcastSender), arpParams, out, stats), 0);
  assert.equal(stats.dropped.badSender, 1);
  const notArp = Uint8Array.from(good);
  notArp[13] = 0x00;
  assert.equal(arpReply(view(notArp), arpParams, out, stats), 0);
  assert.equal(stats.dropped.notArp, 1);
});

Deno.test("ARP: output buffer too small means no reply, no exception", () => {
  const out = PacketView.alloc(41);
  const stats = newArpStats();
  assert.equal(arpReply(view(arpRequest(GUEST4, ROUTER4)), arpParams, out, stats), 0);
  assert.equal(stats.dropped.noRoom, 1);
});
