/**
 * A fake vhost-user front-end, as QEMU would be: a socketpair to the back-end,
 * one memfd of guest memory mapped here and passed over, eventfds for kick and
 * call, and helpers to lay out split rings and buffers in that memory.
 *
 * Memory layout (offsets in the region): queue q's descriptor table at
 * q * QUEUE_STRIDE, its available ring 0x4000 on, its used ring 0x8000 on;
 * buffers from BUFFERS_OFFSET.
 */
import { AF, EFD, MFD, SO, SOCK, SOL } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { HEADER_SIZE, VHOST_USER, VHOST_USER_FLAG } from "../../src/tap/vhost_user.ts";

/** Guest-physical address of the region's first byte. */
export const GUEST_BASE = 0x100000;
/** The front-end's (QEMU's) address of the region's first byte. */
export const USER_BASE = 0x7f0000000000;
/** Bytes of guest memory. */
export const MEMORY_SIZE = 1 << 20;
/** Distance between two queues' rings (bytes). */
export const QUEUE_STRIDE = 0x10000;
/** Where buffers start in the region (bytes). */
export const BUFFERS_OFFSET = 0x40000;

/** One message's reply: request, flags and payload. */
export interface Reply {
  request: number;
  flags: number;
  payload: Uint8Array;
}

/** The front-end's side of one connection. */
export class FakeFrontEnd {
  /** Our end of the socketpair, and the back-end's (to `attach`). */
  readonly fd: number;
  readonly backendFd: number;
  readonly memfd: number;
  readonly mapping: sys.SharedMapping;
  readonly mem: Uint8Array;
  readonly data: DataView;
  readonly kick: number[] = [];
  readonly call: number[] = [];

  /** Flags added to every message (NEED_REPLY, to wait for each one's ack). */
  flags = 0;

  /**
   * Over a socketpair whose other end (`backendFd`) goes to a back-end in this
   * process, or over `connected`, a socket already connected to one elsewhere.
   */
  constructor(connected?: number) {
    if (connected === undefined) {
      [this.fd, this.backendFd] = sys.socketpair(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
    } else {
      this.fd = connected;
      this.backendFd = -1;
    }
    this.memfd = sys.memfdCreate("guest", MFD.CLOEXEC);
    sys.ftruncate(this.memfd, MEMORY_SIZE);
    this.mapping = sys.mmapShared(this.memfd, MEMORY_SIZE, "test guest memory");
    this.mem = this.mapping.bytes;
    this.data = new DataView(this.mem.buffer, this.mem.byteOffset, this.mem.byteLength);
    for (let q = 0; q < 2; q++) {
      this.kick.push(sys.eventfd(0, EFD.CLOEXEC | EFD.NONBLOCK));
      this.call.push(sys.eventfd(0, EFD.CLOEXEC | EFD.NONBLOCK));
    }
  }

  /** Closes our descriptors and unmaps (the back-end's end is the back-end's). */
  close(): void {
    for (const fd of [this.fd, this.memfd, ...this.kick, ...this.call]) sys.close(fd);
    sys.munmapShared(this.mapping);
  }

  /** Sends one message: header, payload, descriptors. */
  send(request: number, payload: Uint8Array = new Uint8Array(0), fds: number[] = [], flags = 0) {
    const buf = new Uint8Array(HEADER_SIZE + payload.length);
    const v = new DataView(buf.buffer);
    v.setUint32(0, request, true);
    v.setUint32(4, VHOST_USER_FLAG.VERSION | this.flags | flags, true);
    v.setUint32(8, payload.length, true);
    buf.set(payload, HEADER_SIZE);
    const r = sys.sendWithFds(this.fd, buf, buf.length, fds);
    if (r !== buf.length) throw new Error(`send: ${r}`);
  }

  /** Connects to a back-end listening at `path` (replies wait at most `timeoutMs`). */
  static connect(path: string, timeoutMs = 5000): FakeFrontEnd {
    const fd = sys.socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC, 0);
    const addr = sys.sockaddrUn(path);
    if (sys.connect(fd, addr, addr.length) !== 0) {
      sys.close(fd);
      throw new Error(`cannot connect to ${path}`);
    }
    const tv = new Uint8Array(16);
    const v = new DataView(tv.buffer);
    v.setBigInt64(0, BigInt(Math.floor(timeoutMs / 1000)), true);
    v.setBigInt64(8, BigInt((timeoutMs % 1000) * 1000), true);
    sys.setsockoptBytes(fd, SOL.SOCKET, SO.RCVTIMEO, tv);
    return new FakeFrontEnd(fd);
  }

  /** Sends bytes as they are (a broken message). */
  sendRaw(buf: Uint8Array<ArrayBuffer>): void {
    if (sys.send(this.fd, buf, buf.length, 0) !== buf.length) throw new Error("send");
  }

  /** Reads one reply (blocking). */
  reply(): Reply {
    const head = new Uint8Array(HEADER_SIZE);
    if (sys.recv(this.fd, head, HEADER_SIZE, 0x100 /* WAITALL */) !== HEADER_SIZE) {
      throw new Error("no reply header");
    }
    const v = new DataView(head.buffer);
    const size = v.getUint32(8, true);
    const payload = new Uint8Array(size);
    if (size > 0 && sys.recv(this.fd, payload, size, 0x100) !== size) {
      throw new Error("short reply");
    }
    return { request: v.getUint32(0, true), flags: v.getUint32(4, true), payload };
  }

  /** True if the back-end's end has a reply waiting. */
  replyWaiting(): boolean {
    return sys.pollReadable(this.fd);
  }

  /** The u64 payload of a reply. */
  static u64(r: Reply): bigint {
    return new DataView(r.payload.buffer).getBigUint64(0, true);
  }

  /** A u64 payload. */
  static u64Payload(value: bigint): Uint8Array {
    const p = new Uint8Array(8);
    new DataView(p.buffer).setBigUint64(0, value, true);
    return p;
  }

  /** A vring state payload (index, num). */
  static state(index: number, num: number): Uint8Array {
    const p = new Uint8Array(8);
    const v = new DataView(p.buffer);
    v.setUint32(0, index, true);
    v.setUint32(4, num, true);
    return p;
  }

  /** The SET_MEM_TABLE payload for our one region (its fd goes along). */
  memTable(): Uint8Array {
    const p = new Uint8Array(8 + 32);
    const v = new DataView(p.buffer);
    v.setUint32(0, 1, true);
    v.setBigUint64(8, BigInt(GUEST_BASE), true);
    v.setBigUint64(16, BigInt(MEMORY_SIZE), true);
    v.setBigUint64(24, BigInt(USER_BASE), true);
    v.setBigUint64(32, 0n, true);
    return p;
  }

  /** The SET_VRING_ADDR payload for queue `q`'s rings in our layout. */
  static vringAddr(q: number): Uint8Array {
    const p = new Uint8Array(40);
    const v = new DataView(p.buffer);
    const base = USER_BASE + q * QUEUE_STRIDE;
    v.setUint32(0, q, true);
    v.setBigUint64(8, BigInt(base), true);
    v.setBigUint64(16, BigInt(base + 0x8000), true);
    v.setBigUint64(24, BigInt(base + 0x4000), true);
    return p;
  }

  /** Sets queue `q` up as QEMU does: num, base, addr, call, kick, enable. */
  setUpQueue(q: number, num: number, handle: () => void): void {
    const steps: [number, Uint8Array, number[]][] = [
      [VHOST_USER.SET_VRING_NUM, FakeFrontEnd.state(q, num), []],
      [VHOST_USER.SET_VRING_BASE, FakeFrontEnd.state(q, 0), []],
      [VHOST_USER.SET_VRING_ADDR, FakeFrontEnd.vringAddr(q), []],
      [VHOST_USER.SET_VRING_CALL, FakeFrontEnd.u64Payload(BigInt(q)), [this.call[q] ?? -1]],
      [VHOST_USER.SET_VRING_KICK, FakeFrontEnd.u64Payload(BigInt(q)), [this.kick[q] ?? -1]],
      [VHOST_USER.SET_VRING_ENABLE, FakeFrontEnd.state(q, 1), []],
    ];
    for (const [request, payload, fds] of steps) {
      this.send(request, payload, fds);
      handle();
    }
  }

  /** Signals queue `q`'s kick eventfd, as the guest's notification would. */
  kickQueue(q: number): void {
    const one = new Uint8Array(8);
    one[0] = 1;
    sys.write(this.kick[q] ?? -1, one, 8);
  }

  /** Writes descriptor `i` of queue `q` (a guest-physical address). */
  desc(q: number, i: number, address: number, length: number, flags: number, next = 0): void {
    const at = q * QUEUE_STRIDE + 16 * i;
    this.data.setBigUint64(at, BigInt(address), true);
    this.data.setUint32(at + 8, length, true);
    this.data.setUint16(at + 12, flags, true);
    this.data.setUint16(at + 14, next, true);
  }

  /** Makes chain `head` available on queue `q` (ring size `num`). */
  offer(q: number, num: number, head: number): void {
    const at = q * QUEUE_STRIDE + 0x4000;
    const idx = this.data.getUint16(at + 2, true);
    this.data.setUint16(at + 4 + 2 * (idx % num), head, true);
    this.data.setUint16(at + 2, (idx + 1) & 0xffff, true);
  }

  /** The used ring's index of queue `q`. */
  usedIndex(q: number): number {
    return this.data.getUint16(q * QUEUE_STRIDE + 0x8000 + 2, true);
  }

  /** Used element `i` of queue `q`: [id, len]. */
  used(q: number, num: number, i: number): [number, number] {
    const at = q * QUEUE_STRIDE + 0x8000 + 4 + 8 * (i % num);
    return [this.data.getUint32(at, true), this.data.getUint32(at + 4, true)];
  }

  /** Reads (and clears) an eventfd's counter: 0 if it was not signalled. */
  static drain(fd: number): number {
    const b = new Uint8Array(8);
    const r = sys.read(fd, b, 8);
    return r === 8 ? Number(new DataView(b.buffer).getBigUint64(0, true)) : 0;
  }
}
