/**
 * Packet capture file for -p/--pcap: every frame exchanged with the guest, in the
 * classic libpcap format that tcpdump, tshark and wireshark read.
 *
 * Theory of operation: the file starts with the 24-byte global header (magic
 * 0xa1b2c3d4 written in host byte order, version 2.4, snapshot length 65535,
 * LINKTYPE_ETHERNET), and each frame follows as a 16-byte record header
 * (seconds and microseconds of the wall clock, captured length, original length;
 * host byte order) and the frame bytes, the first 65535 of them at most.
 *
 * Writing a frame is one writev(2) of two iovecs: the record header, from a
 * buffer allocated at open, and the frame where it lies in the caller's buffer,
 * so nothing is copied. The iovec array is allocated once; per frame only the
 * frame's base address and length change, written as two 32-bit halves, so no
 * BigInt is made. The address of a caller's buffer is looked up once and kept in
 * a small cache keyed by the buffer object (frames come from a few long-lived
 * buffers); those buffers must not move, which holds for any ArrayBuffer-backed
 * array larger than a few dozen bytes, and for `pinnedBuffer`s always.
 *
 * A capture is a debugging aid: a failed write never stops the program. Errors
 * are counted in `errors` and the first one is logged as a warning; a short write
 * is completed so the file stays readable.
 */

import { IOVEC_SIZE, O } from "../ffi/layout.ts";
import * as sys from "../ffi/sys.ts";
import { log } from "../log.ts";

/** Magic number of a classic pcap file with microsecond timestamps. */
export const PCAP_MAGIC = 0xa1b2c3d4;
/** LINKTYPE_ETHERNET: frames start with an Ethernet II header. */
export const LINKTYPE_ETHERNET = 1;
/** Snapshot length: bytes of each frame kept at most. */
export const PCAP_SNAPLEN = 65535;
/** Size of the global header, bytes. */
export const PCAP_GLOBAL_HEADER_SIZE = 24;
/** Size of a record header, bytes. */
export const PCAP_RECORD_HEADER_SIZE = 16;

/** Buffers whose addresses are remembered. */
const ADDRESS_CACHE_SIZE = 4;
const TWO_32 = 4294967296;

/** An open capture file. Made by `openPcap`; the caller closes it. */
export class PcapWriter {
  /** The file's path, for messages. */
  readonly path: string;
  /** Frames written completely. */
  frames = 0;
  /** Frames that could not be written (or only partly). */
  errors = 0;

  #fd: number;
  readonly #record = sys.pinnedBuffer(PCAP_RECORD_HEADER_SIZE);
  readonly #recordView = new DataView(this.#record.buffer);
  readonly #iov = sys.pinnedBuffer(2 * IOVEC_SIZE);
  readonly #iovView = new DataView(this.#iov.buffer);
  readonly #cachedBuffers: (Uint8Array | undefined)[] = new Array(ADDRESS_CACHE_SIZE);
  readonly #cachedAddresses = new Float64Array(ADDRESS_CACHE_SIZE);
  #cacheNext = 0;

  /** Takes ownership of `fd`, whose global header is already written. */
  constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
    sys.setIovec(this.#iovView, 0, sys.addressOf(this.#record), PCAP_RECORD_HEADER_SIZE);
  }

  /** Whether the file is open. */
  get isOpen(): boolean {
    return this.#fd >= 0;
  }

  /**
   * Appends the frame of `length` bytes at `offset` of `bytes` (a buffer that does
   * not move, see above), stamped with the current wall-clock time. Never throws;
   * does nothing once closed.
   */
  writeFrame(bytes: Uint8Array, offset: number, length: number): void {
    if (this.#fd < 0) return;
    if (!(offset >= 0 && length >= 0 && offset + length <= bytes.length)) {
      this.#fail("frame outside its buffer");
      return;
    }
    const caplen = length < PCAP_SNAPLEN ? length : PCAP_SNAPLEN;
    const us = sys.realtimeUs();
    const seconds = Math.floor(us / 1_000_000);
    const rv = this.#recordView;
    rv.setUint32(0, seconds % TWO_32, true);
    rv.setUint32(4, us - seconds * 1_000_000, true);
    rv.setUint32(8, caplen, true);
    rv.setUint32(12, length, true);

    const base = this.#addressOf(bytes) + offset;
    const iv = this.#iovView;
    iv.setUint32(IOVEC_SIZE, base % TWO_32, true);
    iv.setUint32(IOVEC_SIZE + 4, Math.floor(base / TWO_32), true);
    sys.setIovecLength(iv, 1, caplen);

    const total = PCAP_RECORD_HEADER_SIZE + caplen;
    let n = sys.writev(this.#fd, this.#iov, 2);
    if (n === -sys.Errno.EINTR) n = sys.writev(this.#fd, this.#iov, 2);
    if (n === total) {
      this.frames++;
      return;
    }
    if (n < 0) {
      this.#fail(sys.errnoMessage(-n));
      return;
    }
    this.#completeShortWrite(n, bytes, offset, caplen);
  }

  /** Closes the file; later frames are ignored. */
  close(): void {
    if (this.#fd < 0) return;
    sys.close(this.#fd);
    this.#fd = -1;
  }

  /** The address of `bytes`' first byte, from the cache when possible. */
  #addressOf(bytes: Uint8Array): number {
    const buffers = this.#cachedBuffers;
    for (let i = 0; i < ADDRESS_CACHE_SIZE; i++) {
      if (buffers[i] === bytes) return this.#cachedAddresses[i]!;
    }
    const address = Number(sys.addressOf(bytes as Uint8Array<ArrayBuffer>));
    const slot = this.#cacheNext;
    this.#cacheNext = (slot + 1) % ADDRESS_CACHE_SIZE;
    buffers[slot] = bytes;
    this.#cachedAddresses[slot] = address;
    return address;
  }

  /**
   * The kernel took only `written` bytes of the record: write the rest so that the
   * records after it stay aligned. Rare (full disk, signals), so it may allocate.
   */
  #completeShortWrite(written: number, bytes: Uint8Array, offset: number, caplen: number): void {
    const rest = new Uint8Array(PCAP_RECORD_HEADER_SIZE + caplen);
    rest.set(this.#record);
    rest.set(bytes.subarray(offset, offset + caplen), PCAP_RECORD_HEADER_SIZE);
    let done = written;
    for (let tries = 0; done < rest.length && tries < 16; tries++) {
      const n = sys.write(this.#fd, rest.subarray(done), rest.length - done);
      if (n === -sys.Errno.EINTR) continue;
      if (n <= 0) break;
      done += n;
    }
    if (done === rest.length) this.frames++;
    else this.#fail("short write");
  }

  #fail(reason: string): void {
    this.errors++;
    if (this.errors === 1) {
      log.warn(`pcap ${this.path}: ${reason}; further capture errors are only counted`);
    }
  }
}

/**
 * Creates (or truncates) the capture file at `path` with mode 0600 and writes its
 * global header. Throws, naming the path, if that fails: a configuration error.
 */
export function openPcap(path: string): PcapWriter {
  const fd = sys.open(path, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o600);
  const header = new Uint8Array(PCAP_GLOBAL_HEADER_SIZE);
  const v = new DataView(header.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true); // version 2.4
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // timestamps in UTC
  v.setUint32(12, 0, true); // accuracy: unknown
  v.setUint32(16, PCAP_SNAPLEN, true);
  v.setUint32(20, LINKTYPE_ETHERNET, true);
  const n = sys.write(fd, header, header.length);
  if (n !== header.length) {
    sys.close(fd);
    const why = n < 0 ? sys.errnoMessage(-n) : "short write";
    throw new Error(`cannot write packet capture file ${path}: ${why}`);
  }
  return new PcapWriter(path, fd);
}
