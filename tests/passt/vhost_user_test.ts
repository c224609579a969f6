/**
 * passt --vhost-user end to end without qemu: a fake front-end (tests/tap/
 * _vhost_frontend.ts) connects to the socket of a passt running in the sandbox,
 * negotiates with every request acknowledged, shares a memfd as guest memory, and
 * exchanges frames through the rings: an ARP request and a DHCP DISCOVER go out on
 * the transmit queue, passt's answers land in the receive buffers. A second
 * front-end is served after the first goes. And --print-capabilities prints the
 * JSON vhost-user back-ends print.
 */
import assert from "node:assert/strict";
import { bytes, dhcpOptions, rd16 } from "../protocols/_frames.ts";
import { arpRequest, dhcpRequest, GUEST_MAC, ip4 } from "../protocols/_fixtures.ts";
import { NET, sandboxUnavailable, sleep, withSandbox } from "../sandbox/sandbox.ts";
import {
  NET_HDR_SIZE,
  RX_QUEUE,
  TX_QUEUE,
  VHOST_USER,
  VHOST_USER_FLAG,
} from "../../src/tap/vhost_user.ts";
import { VIRTQ_DESC_F } from "../../src/tap/virtqueue.ts";
import { BUFFERS_OFFSET, FakeFrontEnd, GUEST_BASE } from "../tap/_vhost_frontend.ts";
import { PASST, passtMissing } from "./_passt.ts";

const missing = passtMissing();
const ignored = sandboxUnavailable() ?? missing;
if (ignored) console.error(`tests/passt/vhost_user_test.ts ignored: ${ignored}`);

const NUM = 256;
const GUEST4 = ip4(NET.host4);
const GATEWAY4 = ip4(NET.gateway4);

Deno.test({
  name: "passt --print-capabilities: the vhost-user back-end JSON",
  ignore: missing !== undefined,
  fn: async () => {
    const out = await new Deno.Command(PASST, { args: ["--print-capabilities"] }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { type: "net" });
  },
});

/** Negotiates as qemu does, every request acknowledged, and sets both queues up. */
function negotiate(fe: FakeFrontEnd): void {
  const acked = () => assert.equal(FakeFrontEnd.u64(fe.reply()), 0n, "request acknowledged");
  fe.send(VHOST_USER.GET_FEATURES);
  const features = FakeFrontEnd.u64(fe.reply());
  fe.send(VHOST_USER.SET_FEATURES, FakeFrontEnd.u64Payload(features));
  fe.send(VHOST_USER.GET_PROTOCOL_FEATURES);
  const pf = FakeFrontEnd.u64(fe.reply());
  fe.send(VHOST_USER.SET_PROTOCOL_FEATURES, FakeFrontEnd.u64Payload(pf));
  fe.flags = VHOST_USER_FLAG.NEED_REPLY;
  fe.send(VHOST_USER.SET_OWNER);
  acked();
  fe.send(VHOST_USER.SET_MEM_TABLE, fe.memTable(), [fe.memfd]);
  acked();
  fe.setUpQueue(RX_QUEUE, NUM, acked);
  fe.setUpQueue(TX_QUEUE, NUM, acked);
}

/** Sends `frame` on the transmit queue as chain `head`, and kicks. */
function transmit(fe: FakeFrontEnd, head: number, frame: Uint8Array): void {
  const at = BUFFERS_OFFSET + head * 0x800;
  fe.mem.fill(0, at, at + NET_HDR_SIZE);
  fe.mem.set(frame, at + NET_HDR_SIZE);
  fe.desc(TX_QUEUE, head, GUEST_BASE + at, NET_HDR_SIZE + frame.length, 0);
  fe.offer(TX_QUEUE, NUM, head);
  fe.kickQueue(TX_QUEUE);
}

/** Offers `count` receive buffers of 2 KiB. */
function offerReceiveBuffers(fe: FakeFrontEnd, count: number): void {
  for (let i = 0; i < count; i++) {
    fe.desc(
      RX_QUEUE,
      i,
      GUEST_BASE + BUFFERS_OFFSET + 0x40000 + i * 0x800,
      0x800,
      VIRTQ_DESC_F.WRITE,
    );
    fe.offer(RX_QUEUE, NUM, i);
  }
}

/** The frames passt put in the receive queue from used element `from` on, waiting for `count`. */
async function received(fe: FakeFrontEnd, from: number, count: number): Promise<Uint8Array[]> {
  for (let waited = 0; waited < 5000 && fe.usedIndex(RX_QUEUE) - from < count; waited += 10) {
    await sleep(10);
  }
  const frames: Uint8Array[] = [];
  for (let i = from; i < fe.usedIndex(RX_QUEUE); i++) {
    const [id, len] = fe.used(RX_QUEUE, NUM, i);
    const at = BUFFERS_OFFSET + 0x40000 + id * 0x800;
    assert.equal(fe.data.getUint16(at + 10, true), 1, "num_buffers");
    frames.push(fe.mem.slice(at + NET_HDR_SIZE, at + len));
  }
  return frames;
}

/** A front-end passt accepted (its GET_FEATURES answered), negotiated. */
async function connectServed(socket: string): Promise<FakeFrontEnd> {
  for (let attempt = 0;; attempt++) {
    const fe = FakeFrontEnd.connect(socket);
    try {
      fe.send(VHOST_USER.GET_FEATURES);
      fe.reply();
    } catch (e) {
      fe.close();
      if (attempt === 50) throw e;
      await sleep(100);
      continue;
    }
    negotiate(fe);
    return fe;
  }
}

function isArpReply(f: Uint8Array): boolean {
  return rd16(f, 12) === 0x0806 && rd16(f, 20) === 2 &&
    bytes(f.subarray(28, 32)).join() === GATEWAY4.join() &&
    bytes(f.subarray(32, 38)).join() === GUEST_MAC.join();
}

function isOffer(f: Uint8Array): boolean {
  if (rd16(f, 12) !== 0x0800 || f[23] !== 17 || rd16(f, 34) !== 67) return false;
  const bootp = f.subarray(42);
  return dhcpOptions(bootp).get(53)?.[0] === 2 && bootp.subarray(16, 20).join() === GUEST4.join();
}

Deno.test({
  name: "passt --vhost-user: a front-end's rings carry ARP and DHCP both ways; the next one too",
  ignore: ignored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const socket = `${sb.dir}/vu.socket`;
      const passt = await sb.spawn([PASST, "-f", "--vhost-user", "-s", socket], {
        timeoutMs: 60_000,
      });
      try {
        assert.ok(
          await sb.waitFor(async () => (await sb.run(["test", "-S", socket])).code === 0, 15_000),
          "passt binds its socket",
        );
        for (const run of ["first", "second"]) {
          // passt refuses a connection while it still serves the previous one.
          const fe = await connectServed(socket);
          try {
            offerReceiveBuffers(fe, 16);
            const used0 = fe.usedIndex(RX_QUEUE);
            transmit(fe, 0, arpRequest(GUEST4, GATEWAY4));
            const arp = await received(fe, used0, 1);
            assert.ok(arp.some(isArpReply), `${run}: ARP reply in the receive queue`);
            assert.equal(fe.usedIndex(TX_QUEUE), 1, `${run}: the transmit chain came back`);
            const used1 = fe.usedIndex(RX_QUEUE);
            transmit(fe, 1, dhcpRequest(1, [], { xid: 0x1234abcd }));
            const offer = await received(fe, used1, 1);
            assert.ok(offer.some(isOffer), `${run}: DHCP OFFER in the receive queue`);
          } finally {
            fe.close();
          }
        }
        assert.ok(await passt.alive(), "passt waits for the next front-end");
      } finally {
        await passt.kill();
      }
      const r = await passt.result;
      assert.equal(r.stderr.match(/accepted a connection/g)?.length, 2, r.stderr);
    }),
});
