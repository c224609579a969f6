/**
 * How the TCP translator ends connections nobody serves any more, in process: a
 * guest connection to the host's loopback (through the gateway mapping of the
 * UDP tests' context) that carries nothing for longer than the idle timeout
 * (2 h by default; 300 ms here), and connections whose guest went away
 * (`resetAll`, passt's client leaving), are reset on both sides, and the flow
 * table is empty again.
 */
import assert from "node:assert/strict";
import { TcpTranslator } from "../../src/protocols/tcp.ts";
import { ETH_HLEN } from "../../src/protocols/ethernet.ts";
import { be16, be32, bytes, eth, ipv4, naiveChecksum, rd16, rd32, view } from "./_frames.ts";
import { GUEST_MAC, OUR_MAC } from "./_fixtures.ts";
import { GATEWAY4, HOST4, udpContext } from "./_udp_context.ts";

const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

/** A TCP segment over IPv4 from the guest, checksums right. */
function segment(sport: number, dport: number, seq: number, ack: number, flags: number) {
  const tcp = bytes(
    be16(sport),
    be16(dport),
    be32(seq),
    be32(ack),
    0x50,
    flags,
    be16(65535),
    0,
    0,
    0,
    0,
  );
  const pseudo = bytes(HOST4, GATEWAY4, 0, 6, be16(tcp.length));
  const c = naiveChecksum(bytes(pseudo, tcp));
  tcp[16] = c >> 8;
  tcp[17] = c & 0xff;
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(HOST4, GATEWAY4, 6, tcp));
}

const flagsOf = (f: Uint8Array) => f[ETH_HLEN + 20 + 13]!;

/**
 * A translator with one established guest connection to a listener on the
 * host's loopback; `accepted` is the host side's end (settles once awaited).
 */
function established(idleTimeoutMs?: number) {
  const ctx = udpContext();
  const tcp = new TcpTranslator(ctx, idleTimeoutMs === undefined ? {} : { idleTimeoutMs });
  const frames: Uint8Array[] = [];
  ctx.tap.onFrame = (f) => frames.push(f);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const feed = (frame: Uint8Array) => {
    const ihl = (frame[ETH_HLEN]! & 0x0f) * 4;
    tcp.fromTap4(view(frame), ETH_HLEN, ihl, rd16(frame, ETH_HLEN + 2) - ihl);
  };
  const until = (what: string, done: () => boolean, ms = 3000) => {
    const deadline = Date.now() + ms;
    while (!done()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      ctx.loop.run(20, 1);
    }
  };
  feed(segment(40000, port, 1000, 0, SYN));
  until("the SYN-ACK", () => frames.some((f) => flagsOf(f) === (SYN | ACK)));
  const synAck = frames.find((f) => flagsOf(f) === (SYN | ACK))!;
  feed(segment(40000, port, 1001, rd32(synAck, ETH_HLEN + 20 + 4) + 1, ACK));
  ctx.loop.run(20, 1);
  assert.equal(tcp.flowCount, 1);
  return { ctx, tcp, frames, listener, accepted, until };
}

/** The host side sees the connection end: accept fails (reset first), or a read ends. */
async function assertHostSideEnded(accepted: Promise<Deno.Conn>): Promise<void> {
  const conn = await accepted.catch((e) => e as Error);
  if (conn instanceof Error) {
    assert.match(conn.name, /NotConnected|ConnectionReset|ConnectionAborted/, String(conn));
    return;
  }
  const n = await conn.read(new Uint8Array(16)).catch(() => null);
  assert.equal(n, null, "the host side still open");
  conn.close();
}

Deno.test("tcp: a connection idle past its timeout is reset both ways, no flow left", async () => {
  const { ctx, tcp, frames, listener, accepted, until } = established(300);
  try {
    const before = frames.length;
    until("the reset", () => frames.slice(before).some((f) => (flagsOf(f) & RST) !== 0), 5000);
    ctx.loop.run(0, 1); // the end of the turn releases the flow
    assert.equal(tcp.flowCount, 0, "flow left after the idle timeout");
    await assertHostSideEnded(accepted);
  } finally {
    listener.close();
    tcp.close();
  }
});

Deno.test("tcp: resetAll (the guest went away) ends every connection, no flow left", async () => {
  const { tcp, listener, accepted } = established();
  try {
    assert.equal(tcp.resetAll(), 1);
    assert.equal(tcp.flowCount, 0);
    await assertHostSideEnded(accepted);
  } finally {
    listener.close();
    tcp.close();
  }
});

Deno.test("tcp: a stray segment gets its RST without a flow, even from a full table", () => {
  const ctx = udpContext();
  const tcp = new TcpTranslator(ctx);
  const frames: Uint8Array[] = [];
  ctx.tap.onFrame = (f) => frames.push(f);
  const taken: number[] = [];
  for (;;) {
    const index = ctx.flows.alloc(6);
    if (index < 0) break;
    taken.push(index);
  }
  const before = ctx.flows.count;
  try {
    // An ACK for nothing: RST with its acknowledgement number as sequence.
    const stray = segment(41000, 9, 5000, 0x12345678, ACK);
    tcp.fromTap4(view(stray), ETH_HLEN, 20, 20);
    // A FIN without ACK: RST|ACK acknowledging the sequence number plus the FIN.
    const fin = segment(41001, 9, 7000, 0, 0x01);
    tcp.fromTap4(view(fin), ETH_HLEN, 20, 20);
    ctx.tap.flush();
    assert.equal(frames.length, 2, "one RST per stray segment");
    const [rst, rstAck] = frames as [Uint8Array, Uint8Array];
    const l4 = ETH_HLEN + 20;
    assert.deepEqual(rst.subarray(ETH_HLEN + 12, ETH_HLEN + 16), GATEWAY4, "from where it went");
    assert.deepEqual(rst.subarray(ETH_HLEN + 16, ETH_HLEN + 20), HOST4, "to the guest");
    assert.equal(rd16(rst, l4), 9);
    assert.equal(rd16(rst, l4 + 2), 41000);
    assert.equal(flagsOf(rst), RST);
    assert.equal(rd32(rst, l4 + 4), 0x12345678);
    assert.equal(flagsOf(rstAck), RST | ACK);
    assert.equal(rd32(rstAck, l4 + 4), 0);
    assert.equal(rd32(rstAck, l4 + 8), 7001);
    for (const f of frames) {
      const pseudo = bytes(GATEWAY4, HOST4, 0, 6, be16(20));
      assert.equal(naiveChecksum(bytes(pseudo, f.subarray(l4, l4 + 20))), 0, "TCP checksum");
    }
    assert.equal(ctx.flows.count, before, "no flow borrowed");
  } finally {
    for (const index of taken) ctx.flows.free(index);
    tcp.close();
    ctx.loop.close();
  }
});
