/**
 * The measurement behind alloc_test.ts, in a process of its own (as pasta's data
 * path runs): a million TCP segments through translation (with ALLOC_UDP=1, half
 * of them UDP datagrams instead), the heap in use read around each chunk of
 * 10 000. Prints one JSON object; alloc_test.ts judges.
 */
import assert from "node:assert/strict";
import type { FrameOutput } from "../../src/flow/context.ts";
import { AF, SOCK } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { ETH_HLEN } from "../../src/protocols/ethernet.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { TcpTranslator } from "../../src/protocols/tcp.ts";
import { UdpTranslator } from "../../src/protocols/udp.ts";
import { FRAME_MAX } from "../../src/protocols/ethernet.ts";
import { GUEST_MAC, OUR_MAC } from "./_fixtures.ts";
import { be16, be32, bytes, eth, ipv4, naiveChecksum, udp4 } from "./_frames.ts";
import { GATEWAY4, HOST4, udpContext } from "./_udp_context.ts";

/** Frames measured (after the warm-up). */
export const FRAMES = 1_000_000;
/** Frames per measured chunk. */
export const CHUNK = 10_000;
/** ALLOC_UDP=1: every other frame a UDP datagram. */
const UDP_TOO = Deno.env.get("ALLOC_UDP") === "1";
const WARMUP = 50_000;
/** Frames handed over per loop turn. */
const PER_TURN = 16;

const SLOTS = 64;
const SLOT_SIZE = 4 + FRAME_MAX;

/** A FrameOutput over a preallocated arena that keeps nothing: counts, and the last frame's place. */
class NullTap implements FrameOutput {
  readonly arena = new Uint8Array(new ArrayBuffer(SLOTS * SLOT_SIZE));
  readonly #address = sys.addressNumber(this.arena);
  readonly #view = new PacketView(this.arena, 0);
  #queued = 0;
  /** Frames queued. */
  count = 0;
  /** Where the last queued frame starts in `arena`. */
  lastStart = 0;

  next(): PacketView {
    if (this.#queued === SLOTS) this.flush();
    this.#view.setWindow(this.#queued * SLOT_SIZE + 4, 0);
    return this.#view;
  }

  queue(_length: number): void {
    this.lastStart = this.#queued * SLOT_SIZE + 4;
    this.#queued++;
    this.count++;
  }

  flush(): void {
    this.#queued = 0;
  }

  room(): number {
    return SLOTS - this.#queued;
  }

  slotAddress(j: number, offset: number): number {
    return this.#address + (this.#queued + j) * SLOT_SIZE + 4 + offset;
  }
  /** No offloads: every frame carries complete checksums. */
  readonly checksumOffload = false;
  readonly segmentOffload = false;
  queueOffloaded(length: number, _segmentSize: number): void {
    this.queue(length);
  }
}

const SYN = 0x02;
const ACK = 0x10;

/** A TCP segment over IPv4 from the guest to the gateway (the host's loopback). */
function tcpSegment(
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Uint8Array,
) {
  const tcp = bytes(be16(sport), be16(dport), be32(seq), be32(ack), 0x50, flags, be16(65535), [
    0,
    0,
    0,
    0,
  ], payload);
  const pseudo = bytes(HOST4, GATEWAY4, 0, 6, be16(tcp.length));
  const c = naiveChecksum(bytes(pseudo, tcp));
  tcp[16] = c >> 8;
  tcp[17] = c & 0xff;
  return eth(OUR_MAC, GUEST_MAC, 0x0800, ipv4(HOST4, GATEWAY4, 6, tcp));
}

/** A frame in a buffer of its own, viewed once: handing it over again allocates nothing. */
function framed(frame: Uint8Array): PacketView {
  const buf = new Uint8Array(new ArrayBuffer(frame.length + 64));
  buf.set(frame);
  return new PacketView(buf, frame.length);
}

/** A UDP socket bound to a free port on 127.0.0.1 that nobody reads: its port and descriptor. */
function udpSink(): { fd: number; port: number } {
  const fd = sys.trySocket(AF.INET, SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0);
  assert.ok(fd >= 0, "socket");
  const addr = sys.pinnedBuffer(16);
  const len = sys.encodeSockaddrIn(addr, new Uint8Array([127, 0, 0, 1]), 0);
  assert.equal(sys.tryBind(fd, addr, len), 0, "bind");
  assert.ok(sys.getsockname(fd, addr) > 0, "getsockname");
  return { fd, port: sys.sockaddrPort(addr) };
}

async function main(): Promise<void> {
  const ctx = { ...udpContext(), tap: new NullTap() };
  ctx.loop.addEndOfTurn(() => ctx.tap.flush());
  const tcp = new TcpTranslator(ctx);
  const udp = new UdpTranslator(ctx);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted = listener.accept();
  const sink = udpSink();
  try {
    // The connection: SYN, our SYN-ACK (its sequence number read from the arena), ACK.
    const syn = framed(tcpSegment(40000, port, 1000, 0, SYN, new Uint8Array(0)));
    const feedTcp = (pkt: PacketView) =>
      tcp.fromTap4(pkt, ETH_HLEN, 20, pkt.length - ETH_HLEN - 20);
    feedTcp(syn);
    let ourSeq = -1;
    for (let i = 0; i < 200 && ourSeq < 0; i++) {
      ctx.loop.run(10, 1);
      const f = ctx.tap.lastStart;
      const a = ctx.tap.arena;
      if (ctx.tap.count > 0 && (a[f + ETH_HLEN + 20 + 13]! & (SYN | ACK)) === (SYN | ACK)) {
        ourSeq = ((a[f + 38]! << 24) | (a[f + 39]! << 16) | (a[f + 40]! << 8) | a[f + 41]!) >>> 0;
      }
    }
    assert.ok(ourSeq >= 0, "no SYN-ACK");
    feedTcp(framed(tcpSegment(40000, port, 1001, (ourSeq + 1) >>> 0, ACK, new Uint8Array(0))));
    ctx.loop.run(0, 1);
    assert.equal(tcp.flowCount, 1);
    // Data the guest sends again (already taken): each is answered with an ACK.
    const again = framed(
      tcpSegment(40000, port, 1001 - 10, (ourSeq + 1) >>> 0, ACK, new Uint8Array(10)),
    );
    const datagram = framed(
      eth(OUR_MAC, GUEST_MAC, 0x0800, udp4(HOST4, GATEWAY4, 40001, sink.port, new Uint8Array(32))),
    );
    const udpLength = datagram.length - ETH_HLEN - 20;

    let handed = 0;
    const run = (frames: number) => {
      for (let i = 0; i < frames; i++) {
        if (UDP_TOO && (i & 1) === 1) udp.fromTap4(datagram, ETH_HLEN, 20, udpLength);
        else feedTcp(again);
        if (i % PER_TURN === PER_TURN - 1) ctx.loop.run(0, 1);
      }
      handed += frames;
    };
    run(WARMUP);
    const segmentsOut = tcp.stats.segmentsOut;
    const growth: number[] = [];
    for (let done = 0; done < FRAMES; done += CHUNK) {
      const before = Deno.memoryUsage().heapUsed;
      run(CHUNK);
      const after = Deno.memoryUsage().heapUsed;
      if (after >= before) growth.push(after - before);
    }
    // The frames did what they should: ACKs went out, datagrams left, nothing dropped.
    assert.ok(tcp.stats.segmentsOut - segmentsOut >= FRAMES / 2 / PER_TURN, "ACKs to the guest");
    if (UDP_TOO) assert.ok(udp.stats.fromGuest >= FRAMES / 2, "datagrams sent on");
    assert.equal(tcp.flowCount, 1);
    assert.equal(tcp.stats.sysErrors, 0);
    growth.sort((a, b) => a - b);
    console.log(JSON.stringify({
      frames: handed,
      chunks: FRAMES / CHUNK,
      cleanChunks: growth.length,
      median: growth[growth.length >> 1] ?? null,
      max: growth.at(-1) ?? null,
    }));
  } finally {
    sys.close(sink.fd);
    tcp.close();
    udp.close();
    listener.close();
    await accepted.then((c) => c.close()).catch(() => {});
    ctx.loop.close();
  }
}

await main();
