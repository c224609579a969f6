/**
 * Typed wrappers over libc: the only API the rest of the program uses for system
 * calls.
 *
 * Theory of operation: two kinds of wrapper, chosen by where they run.
 * - Setup-time calls (socket, bind, epoll_ctl, ioctl…) throw a `SysError` naming
 *   the call and errno when they fail. They may allocate (C strings, small structs).
 * - Data-path calls (read, write, recv, send, splice, the *mmsg calls, accept,
 *   connect, epoll_wait…) return the C result when it is not negative and `-errno`
 *   when it is, so EAGAIN and friends are plain numbers, not exceptions, and
 *   nothing is allocated per call. The caller passes preallocated buffers.
 * In both, errno is read by `lastErrno()` as the very next step after the call.
 *
 * Buffers whose address is stored inside another structure (iovec bases, msghdr
 * pointers) must not move: make them with `pinnedBuffer()`, which gives an
 * off-heap backing store, and take the address once with `addressOf()`.
 */
import { c, sizeT } from "./libc.ts";
import { Errno, lastErrno, SysError } from "./errno.ts";
import {
  AF,
  CAP,
  CLOCK,
  CMSGHDR,
  DIRENT64,
  EPOLL_EVENT_DATA_OFFSET,
  EPOLL_EVENT_SIZE,
  GROUP,
  IFNAMSIZ,
  IFREQ_SIZE,
  IOVEC_SIZE,
  ITIMERSPEC_SIZE,
  MAP,
  MSG,
  MSGHDR,
  O,
  PASSWD,
  POSIX_SPAWN,
  PROT,
  RLIMIT_SIZE,
  SCM,
  SIG_HOW,
  SIGSET_SIZE,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_UN_SIZE,
  SOL,
  SYS,
  TCP_INFO,
  TCP_OPT,
  TIMESPEC_SIZE,
} from "./layout.ts";

export { Errno, errnoMessage, errnoName, lastErrno, SysError } from "./errno.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NUL-terminated copy of `s` (UTF-8), for C string parameters. Setup time only. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A zeroed buffer of `size` bytes whose memory never moves (off-heap backing store). */
export function pinnedBuffer(size: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new ArrayBuffer(size));
}

/** The address of a buffer's first byte, as a 64-bit integer, for embedding in structs. */
export function addressOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** The address of `bytes`' first byte as a number (exact: user addresses are < 2^53). */
export function addressNumber(bytes: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>)));
}

/** Write `value` (below 2^53) as a little-endian 64-bit integer at `offset` of `view`. */
export function putU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % 4294967296, true);
  view.setUint32(offset + 4, Math.floor(value / 4294967296), true);
}

function fail(call: string, detail?: string): never {
  // errno first: nothing may run between the failed call and this read.
  const errno = lastErrno();
  throw new SysError(call, errno, detail);
}

/** Throw a SysError for `call` if `result` is negative; return it otherwise. */
function checked(call: string, result: number, detail?: string): number {
  if (result < 0) fail(call, detail);
  return result;
}

// --- socket addresses ------------------------------------------------------------------

/**
 * Write a sockaddr_in for `addr` (4 bytes, network order) and `port` (host order)
 * into `out`; returns its length (16).
 */
export function encodeSockaddrIn(out: Uint8Array, addr: Uint8Array, port: number): number {
  out.fill(0, 0, SOCKADDR_IN_SIZE);
  out[0] = AF.INET;
  out[1] = 0;
  out[2] = port >>> 8;
  out[3] = port & 0xff;
  for (let i = 0; i < 4; i++) out[4 + i] = addr[i]!;
  return SOCKADDR_IN_SIZE;
}

/**
 * Write a sockaddr_in6 for `addr` (16 bytes, network order), `port` (host order)
 * and interface `scopeId` into `out`; returns its length (28).
 */
export function encodeSockaddrIn6(
  out: Uint8Array,
  addr: Uint8Array,
  port: number,
  scopeId = 0,
): number {
  out.fill(0, 0, SOCKADDR_IN6_SIZE);
  out[0] = AF.INET6;
  out[1] = 0;
  out[2] = port >>> 8;
  out[3] = port & 0xff;
  for (let i = 0; i < 16; i++) out[8 + i] = addr[i]!;
  out[24] = scopeId & 0xff; // sin6_scope_id: host order
  out[25] = (scopeId >>> 8) & 0xff;
  out[26] = (scopeId >>> 16) & 0xff;
  out[27] = scopeId >>> 24;
  return SOCKADDR_IN6_SIZE;
}

const ANY16 = new Uint8Array(16);

/**
 * Write a sockaddr_in (`v6` false) or sockaddr_in6 for the first 4 or 16 bytes
 * of `addr` (undefined: the unspecified address), `port` (host order) and
 * `scopeId` into `out`; returns its length. Allocation-free, for the data path.
 */
export function encodeSockaddr(
  out: Uint8Array,
  addr: Uint8Array | undefined,
  v6: boolean,
  port: number,
  scopeId = 0,
): number {
  return v6
    ? encodeSockaddrIn6(out, addr ?? ANY16, port, scopeId)
    : encodeSockaddrIn(out, addr ?? ANY16, port);
}

/** A sockaddr_un for a filesystem `path` (at most 107 bytes). Setup time only. */
export function sockaddrUn(path: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(path);
  if (bytes.length >= SOCKADDR_UN_SIZE - 2) {
    throw new Error(`UNIX domain socket path too long (${bytes.length} bytes): ${path}`);
  }
  const out = new Uint8Array(SOCKADDR_UN_SIZE);
  out[0] = AF.UNIX;
  out.set(bytes, 2);
  return out;
}

/** The port (host order) of a sockaddr_in or sockaddr_in6 in `buf`. */
export function sockaddrPort(buf: Uint8Array): number {
  return ((buf[2] ?? 0) << 8) | (buf[3] ?? 0);
}

/** The family of the socket address in `buf`. */
export function sockaddrFamily(buf: Uint8Array): number {
  return (buf[0] ?? 0) | ((buf[1] ?? 0) << 8);
}

// --- sockets (setup) ---------------------------------------------------------------------

/** socket(2). Throws on failure. */
export function socket(domain: number, type: number, protocol: number): number {
  return checked("socket", c.socket(domain, type, protocol));
}

/** socket(2) returning the fd or -errno. */
export function trySocket(domain: number, type: number, protocol: number): number {
  const r = c.socket(domain, type, protocol);
  return r < 0 ? -lastErrno() : r;
}

/** socketpair(2): the two connected descriptors. Throws on failure. */
export function socketpair(domain: number, type: number, protocol = 0): [number, number] {
  const fds = new Int32Array(2);
  checked("socketpair", c.socketpair(domain, type, protocol, new Uint8Array(fds.buffer)));
  return [fds[0]!, fds[1]!];
}

/** bind(2) to the socket address `addr` of `len` bytes. Throws on failure. */
export function bind(fd: number, addr: Uint8Array<ArrayBuffer>, len: number, what?: string): void {
  checked("bind", c.bind(fd, addr, len), what);
}

/** bind(2) returning 0 or -errno (for callers that try several ports). */
export function tryBind(fd: number, addr: Uint8Array<ArrayBuffer>, len: number): number {
  return c.bind(fd, addr, len) < 0 ? -lastErrno() : 0;
}

/** listen(2). Throws on failure. */
export function listen(fd: number, backlog: number): void {
  checked("listen", c.listen(fd, backlog));
}

/** getsockname(2) into `out`; returns the address length. Throws on failure. */
export function getsockname(fd: number, out: Uint8Array<ArrayBuffer>): number {
  const len = new Uint32Array([out.length]);
  checked("getsockname", c.getsockname(fd, out, new Uint8Array(len.buffer)));
  return len[0]!;
}

/**
 * getsockname(2) into `out`, with `lenBuf` a 4-byte scratch buffer: the address
 * length, or -errno. Allocates nothing, for descriptors made while the loop runs.
 */
export function tryGetsockname(
  fd: number,
  out: Uint8Array<ArrayBuffer>,
  lenBuf: Uint8Array<ArrayBuffer>,
): number {
  const size = out.length;
  lenBuf[0] = size & 0xff;
  lenBuf[1] = (size >>> 8) & 0xff;
  lenBuf[2] = 0;
  lenBuf[3] = 0;
  if (c.getsockname(fd, out, lenBuf) < 0) return -lastErrno();
  return (lenBuf[0] ?? 0) | ((lenBuf[1] ?? 0) << 8);
}

/** setsockopt(2) with an int value. Throws on failure. */
export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  checked("setsockopt", c.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4));
}

/** setsockopt(2) with an int value, returning 0 or -errno (optional tuning). */
export function trySetsockoptInt(fd: number, level: number, name: number, value: number): number {
  // Called per retransmission (SO_PEEK_OFF): one scratch int, nothing allocated.
  intOptView.setInt32(0, value, true);
  return c.setsockopt(fd, level, name, intOptScratch, 4) < 0 ? -lastErrno() : 0;
}

const intOptScratch = new Uint8Array(4);
const intOptView = new DataView(intOptScratch.buffer);
const intOptLen = new Uint8Array(4);
const intOptLenView = new DataView(intOptLen.buffer);

/**
 * getsockopt(2) of an option whose value is never negative (SO_ERROR, SO_SNDBUF):
 * the value, or -errno on failure. Nothing is allocated (data path).
 */
export function tryGetsockoptInt(fd: number, level: number, name: number): number {
  intOptLenView.setUint32(0, 4, true);
  if (c.getsockopt(fd, level, name, intOptScratch, intOptLen) < 0) return -lastErrno();
  return intOptView.getInt32(0, true);
}

/** setsockopt(2) with a byte value (e.g. SO_BINDTODEVICE's name). Throws on failure. */
export function setsockoptBytes(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array<ArrayBuffer>,
): void {
  checked("setsockopt", c.setsockopt(fd, level, name, value, value.length));
}

/**
 * setsockopt(2) with a byte value, returning 0 or -errno: for descriptors made
 * while the loop runs (a flow's socket), where a failure is counted, not thrown.
 */
export function trySetsockoptBytes(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array<ArrayBuffer>,
): number {
  return c.setsockopt(fd, level, name, value, value.length) < 0 ? -lastErrno() : 0;
}

/** getsockopt(2) for an int value. Throws on failure. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  checked(
    "getsockopt",
    c.getsockopt(fd, level, name, new Uint8Array(v.buffer), new Uint8Array(len.buffer)),
  );
  return v[0]!;
}

/**
 * getsockopt(2) into `value` with `len` a 4-byte buffer holding its size:
 * 0 or -errno, nothing allocated (data path).
 */
export function tryGetsockoptRaw(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array<ArrayBuffer>,
  len: Uint8Array<ArrayBuffer>,
): number {
  return c.getsockopt(fd, level, name, value, len) < 0 ? -lastErrno() : 0;
}

/** shutdown(2), returning 0 or -errno. */
export function shutdown(fd: number, how: number): number {
  return c.shutdown(fd, how) < 0 ? -lastErrno() : 0;
}

// --- sockets (data path: return value or -errno, no allocation) ----------------------------

/** accept4(2) without peer address: new fd or -errno. */
export function accept(fd: number, flags: number): number {
  const r = c.accept4(fd, null, null, flags);
  return r < 0 ? -lastErrno() : r;
}

/**
 * accept4(2) storing the peer address into `addr` and its length into `addrLen`
 * (a 4-byte buffer the caller presets to addr's size): new fd or -errno.
 */
export function acceptFrom(
  fd: number,
  addr: Uint8Array<ArrayBuffer>,
  addrLen: Uint8Array<ArrayBuffer>,
  flags: number,
): number {
  const r = c.accept4(fd, addr, addrLen, flags);
  return r < 0 ? -lastErrno() : r;
}

/** connect(2): 0 or -errno (-EINPROGRESS for a nonblocking socket in progress). */
export function connect(fd: number, addr: Uint8Array<ArrayBuffer>, len: number): number {
  return c.connect(fd, addr, len) < 0 ? -lastErrno() : 0;
}

/** recv(2) of up to `len` bytes into `buf`: byte count or -errno. */
export function recv(fd: number, buf: Uint8Array<ArrayBuffer>, len: number, flags: number): number {
  const r = c.recv(fd, buf, sizeT(len), flags);
  return r < 0 ? -lastErrno() : r;
}

/** send(2) of `len` bytes from `buf`: byte count or -errno. */
export function send(fd: number, buf: Uint8Array<ArrayBuffer>, len: number, flags: number): number {
  const r = c.send(fd, buf, sizeT(len), flags);
  return r < 0 ? -lastErrno() : r;
}

/** recvfrom(2) into `buf`, peer address into `addr`/`addrLen`: byte count or -errno. */
export function recvfrom(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len: number,
  flags: number,
  addr: Uint8Array<ArrayBuffer>,
  addrLen: Uint8Array<ArrayBuffer>,
): number {
  const r = c.recvfrom(fd, buf, sizeT(len), flags, addr, addrLen);
  return r < 0 ? -lastErrno() : r;
}

/** sendto(2) of `len` bytes to the socket address `addr`: byte count or -errno. */
export function sendto(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len: number,
  flags: number,
  addr: Uint8Array<ArrayBuffer>,
  addrLen: number,
): number {
  const r = c.sendto(fd, buf, sizeT(len), flags, addr, addrLen);
  return r < 0 ? -lastErrno() : r;
}

/** recvmsg(2) with a prepared msghdr: byte count or -errno. */
export function recvmsg(fd: number, msghdr: Uint8Array<ArrayBuffer>, flags: number): number {
  const r = c.recvmsg(fd, msghdr, flags);
  return r < 0 ? -lastErrno() : r;
}

/** sendmsg(2) with a prepared msghdr: byte count or -errno. */
export function sendmsg(fd: number, msghdr: Uint8Array<ArrayBuffer>, flags: number): number {
  const r = c.sendmsg(fd, msghdr, flags);
  return r < 0 ? -lastErrno() : r;
}

/** recvmmsg(2) into `count` prepared mmsghdrs, no timeout: messages received or -errno. */
export function recvmmsg(
  fd: number,
  vec: Uint8Array<ArrayBuffer>,
  count: number,
  flags: number,
): number {
  const r = c.recvmmsg(fd, vec, count, flags, null);
  return r < 0 ? -lastErrno() : r;
}

/** sendmmsg(2) of `count` prepared mmsghdrs: messages sent or -errno. */
export function sendmmsg(
  fd: number,
  vec: Uint8Array<ArrayBuffer>,
  count: number,
  flags: number,
): number {
  const r = c.sendmmsg(fd, vec, count, flags);
  return r < 0 ? -lastErrno() : r;
}

/**
 * getsockopt(TCP_INFO) into `out` (at least TCP_INFO.bufferSize bytes), with
 * `lenBuf` a 4-byte scratch buffer: the number of bytes the kernel filled, or -errno.
 */
export function tcpInfo(
  fd: number,
  out: Uint8Array<ArrayBuffer>,
  lenBuf: Uint8Array<ArrayBuffer>,
): number {
  lenBuf[0] = TCP_INFO.bufferSize & 0xff;
  lenBuf[1] = TCP_INFO.bufferSize >>> 8;
  lenBuf[2] = 0;
  lenBuf[3] = 0;
  if (c.getsockopt(fd, SOL.TCP, TCP_OPT.INFO, out, lenBuf) < 0) return -lastErrno();
  return (lenBuf[0] ?? 0) | ((lenBuf[1] ?? 0) << 8);
}

// --- files and pipes --------------------------------------------------------------------

/** read(2) of up to `len` bytes into `buf`: byte count (0 at EOF) or -errno. */
export function read(fd: number, buf: Uint8Array<ArrayBuffer>, len = buf.length): number {
  const r = c.read(fd, buf, sizeT(len));
  return r < 0 ? -lastErrno() : r;
}

/** write(2) of `len` bytes from `buf`: byte count or -errno. */
export function write(fd: number, buf: Uint8Array<ArrayBuffer>, len = buf.length): number {
  const r = c.write(fd, buf, sizeT(len));
  return r < 0 ? -lastErrno() : r;
}

/** readv(2) over `count` prepared iovecs: byte count or -errno. */
export function readv(fd: number, iov: Uint8Array<ArrayBuffer>, count: number): number {
  const r = c.readv(fd, iov, count);
  return r < 0 ? -lastErrno() : r;
}

/** writev(2) over `count` prepared iovecs: byte count or -errno. */
export function writev(fd: number, iov: Uint8Array<ArrayBuffer>, count: number): number {
  const r = c.writev(fd, iov, count);
  return r < 0 ? -lastErrno() : r;
}

/** splice(2) of up to `len` bytes between two descriptors: byte count or -errno. */
export function splice(fdIn: number, fdOut: number, len: number, flags: number): number {
  const r = c.splice(fdIn, null, fdOut, null, sizeT(len), flags);
  return r < 0 ? -lastErrno() : r;
}

/** pipe2(2): [read end, write end]. Throws on failure. */
export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  checked("pipe2", c.pipe2(new Uint8Array(fds.buffer), flags));
  return [fds[0]!, fds[1]!];
}

/**
 * pipe2(2) into `fds` (8 bytes: read end, then write end, host-order int32s): 0 or
 * -errno. Allocates nothing, for pipes made while the loop runs.
 */
export function tryPipe2(fds: Uint8Array<ArrayBuffer>, flags: number): number {
  return c.pipe2(fds, flags) < 0 ? -lastErrno() : 0;
}

/** fcntl(2) with an integer argument. Throws on failure. */
export function fcntl(fd: number, cmd: number, arg = 0): number {
  return checked("fcntl", c.fcntl(fd, cmd, BigInt(arg)));
}

/** fcntl(2) with an integer argument, returning the result or -errno. */
export function tryFcntl(fd: number, cmd: number, arg = 0): number {
  const r = c.fcntl(fd, cmd, BigInt(arg));
  return r < 0 ? -lastErrno() : r;
}

/** close(2). Errors other than EBADF are not actionable and are ignored; EBADF throws. */
export function close(fd: number): void {
  if (c.close(fd) < 0) {
    const errno = lastErrno();
    if (errno === 9) throw new SysError("close", errno, String(fd));
  }
}

/** open(2). Throws on failure, naming the path. */
export function open(path: string, flags: number, mode = 0o644): number {
  return checked("open", c.open(cString(path), flags, mode), path);
}

/** open(2) returning the fd or -errno. */
export function tryOpen(path: string, flags: number, mode = 0o644): number {
  const r = c.open(cString(path), flags, mode);
  return r < 0 ? -lastErrno() : r;
}

/** dup2(2). Throws on failure. */
export function dup2(oldFd: number, newFd: number): void {
  checked("dup2", c.dup2(oldFd, newFd));
}

/** ftruncate(2). Throws on failure. */
export function ftruncate(fd: number, length: number): void {
  checked("ftruncate", c.ftruncate(fd, BigInt(length)));
}

/** lseek(2). Throws on failure. */
export function lseek(fd: number, offset: number, whence: number): number {
  const r = Number(c.lseek(fd, BigInt(offset), whence));
  return checked("lseek", r);
}

/** pread(2): byte count or -errno. */
export function pread(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len: number,
  offset: number,
): number {
  const r = c.pread(fd, buf, sizeT(len), BigInt(offset));
  return r < 0 ? -lastErrno() : r;
}

/** fallocate(2): 0 or -errno. */
export function fallocate(fd: number, mode: number, offset: number, len: number): number {
  return c.fallocate(fd, mode, BigInt(offset), BigInt(len)) < 0 ? -lastErrno() : 0;
}

/** unlink(2): 0 or -errno. */
export function unlink(path: string): number {
  return c.unlink(cString(path)) < 0 ? -lastErrno() : 0;
}

/** ioctl(2) with a pointer argument. Throws on failure. */
export function ioctl(
  fd: number,
  request: number,
  arg: Uint8Array<ArrayBuffer>,
  what?: string,
): number {
  return checked("ioctl", c.ioctl(fd, BigInt(request), arg), what);
}

/**
 * ioctl(2) with a pointer argument: the result or -errno (data path; pass the
 * request as a BigInt made once, so nothing is allocated per call).
 */
export function tryIoctl(fd: number, request: bigint, arg: Uint8Array<ArrayBuffer>): number {
  const r = c.ioctl(fd, request, arg);
  return r < 0 ? -lastErrno() : r;
}

/** ioctl(2) with an integer argument: the result or -errno (optional settings). */
export function tryIoctlInt(fd: number, request: number, arg: number): number {
  const r = c.ioctl_int(fd, BigInt(request), BigInt(arg));
  return r < 0 ? -lastErrno() : r;
}

/** ioctl(2) with an integer argument. Throws on failure. */
export function ioctlInt(fd: number, request: number, arg: number, what?: string): number {
  return checked("ioctl", c.ioctl_int(fd, BigInt(request), BigInt(arg)), what);
}

/** An ifreq with `name` filled in (for TUNSETIFF, SIOCGIFINDEX…). */
export function ifreq(name: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(name);
  if (bytes.length >= IFNAMSIZ) throw new Error(`interface name too long: ${name}`);
  const out = new Uint8Array(IFREQ_SIZE);
  out.set(bytes);
  return out;
}

/** The interface index of `name`, or 0 if there is no such interface. */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(cString(name));
}

/** The name of interface `index`, or undefined. */
export function ifIndexToName(index: number): string | undefined {
  const buf = new Uint8Array(IFNAMSIZ);
  if (c.if_indextoname(index, buf) === null) return undefined;
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? IFNAMSIZ : end));
}

// --- event loop ---------------------------------------------------------------------------

/** epoll_create1(2). Throws on failure. */
export function epollCreate(flags: number): number {
  return checked("epoll_create1", c.epoll_create1(flags));
}

const epollEventScratch = new Uint8Array(EPOLL_EVENT_SIZE);
const epollEventView = new DataView(epollEventScratch.buffer);

/**
 * epoll_ctl(2) with `events` and a 64-bit `data` reference given as two 32-bit
 * halves (low, high). Returns 0 or -errno: callers decide what a failure means.
 */
export function epollCtl(
  epfd: number,
  op: number,
  fd: number,
  events: number,
  dataLow: number,
  dataHigh: number,
): number {
  epollEventView.setUint32(0, events >>> 0, true);
  epollEventView.setUint32(EPOLL_EVENT_DATA_OFFSET, dataLow >>> 0, true);
  epollEventView.setUint32(EPOLL_EVENT_DATA_OFFSET + 4, dataHigh >>> 0, true);
  return c.epoll_ctl(epfd, op, fd, epollEventScratch) < 0 ? -lastErrno() : 0;
}

/** epoll_wait(2) into `events` (room for `max`): ready count or -errno. */
export function epollWait(
  epfd: number,
  events: Uint8Array<ArrayBuffer>,
  max: number,
  timeoutMs: number,
): number {
  const r = c.epoll_wait(epfd, events, max, timeoutMs);
  return r < 0 ? -lastErrno() : r;
}

/** timerfd_create(2). Throws on failure. */
export function timerfdCreate(clock: number, flags: number): number {
  return checked("timerfd_create", c.timerfd_create(clock, flags));
}

const itimerspecScratch = new Uint8Array(ITIMERSPEC_SIZE);
const itimerspecView = new DataView(itimerspecScratch.buffer);

/**
 * Arm (or, with both zero, disarm) a timerfd: first expiry after `valueMs`, then
 * every `intervalMs` (0: once). Throws on failure.
 */
export function timerfdSet(fd: number, valueMs: number, intervalMs: number): void {
  checked("timerfd_settime", tryTimerfdSet(fd, valueMs, intervalMs));
}

/**
 * timerfdSet without the throw, for the data path: 0 or -errno. A `valueMs`
 * above 0 but under one nanosecond still arms the timer (1 ns), since an
 * all-zero value would disarm it. Nothing is allocated.
 */
export function tryTimerfdSet(fd: number, valueMs: number, intervalMs: number): number {
  putTimespecMs(0, intervalMs);
  putTimespecMs(TIMESPEC_SIZE, valueMs);
  if (
    valueMs > 0 && itimerspecView.getUint32(TIMESPEC_SIZE, true) === 0 &&
    itimerspecView.getUint32(TIMESPEC_SIZE + 8, true) === 0
  ) {
    itimerspecView.setUint32(TIMESPEC_SIZE + 8, 1, true);
  }
  return c.timerfd_settime(fd, 0, itimerspecScratch, null) < 0 ? -lastErrno() : 0;
}

/** A timespec of `ms` (≥ 0, below 2^32 s) at `offset` of the itimerspec scratch, as 32-bit halves. */
function putTimespecMs(offset: number, ms: number): void {
  const seconds = Math.floor(ms / 1000);
  itimerspecView.setUint32(offset, seconds, true);
  itimerspecView.setUint32(offset + 4, 0, true);
  itimerspecView.setUint32(offset + 8, Math.floor((ms - seconds * 1000) * 1_000_000), true);
  itimerspecView.setUint32(offset + 12, 0, true);
}

/** A sigset_t (glibc size) with the given signals set. */
export function sigset(signals: readonly number[]): Uint8Array<ArrayBuffer> {
  const set = new Uint8Array(SIGSET_SIZE);
  for (const s of signals) set[(s - 1) >> 3]! |= 1 << ((s - 1) & 7);
  return set;
}

/** Whether `signal` is a member of the sigset_t `set`. */
export function sigismember(set: Uint8Array, signal: number): boolean {
  return ((set[(signal - 1) >> 3] ?? 0) & (1 << ((signal - 1) & 7))) !== 0;
}

/** pthread_sigmask(3) for the calling thread; returns the previous mask. Throws on failure. */
export function sigprocmask(how: number, signals: readonly number[]): Uint8Array<ArrayBuffer> {
  const old = new Uint8Array(SIGSET_SIZE);
  const r = c.pthread_sigmask(how, sigset(signals), old);
  if (r !== 0) throw new SysError("pthread_sigmask", r);
  return old;
}

/** The calling thread's current signal mask. */
export function currentSigmask(): Uint8Array<ArrayBuffer> {
  return sigprocmask(SIG_HOW.BLOCK, []);
}

/** signalfd(2) for `signals` (they must be blocked in every thread). Throws on failure. */
export function signalfd(signals: readonly number[], flags: number): number {
  return checked("signalfd", c.signalfd(-1, sigset(signals), flags));
}

/** eventfd(2). Throws on failure. */
export function eventfd(initial: number, flags: number): number {
  return checked("eventfd", c.eventfd(initial, flags));
}

/** inotify_init1(2). Throws on failure. */
export function inotifyInit(flags: number): number {
  return checked("inotify_init1", c.inotify_init1(flags));
}

/** inotify_add_watch(2): watch descriptor. Throws on failure. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return checked("inotify_add_watch", c.inotify_add_watch(fd, cString(path), mask), path);
}

const timespecScratch = new Uint8Array(TIMESPEC_SIZE);
const timespecView = new DataView(timespecScratch.buffer);

/**
 * The monotonic clock in milliseconds (fractional). Read through 32-bit halves,
 * so no BigInt is made: called on every socket event.
 */
export function monotonicMs(): number {
  c.clock_gettime(CLOCK.MONOTONIC, timespecScratch);
  const seconds = timespecView.getInt32(4, true) * 4294967296 + timespecView.getUint32(0, true);
  return seconds * 1000 + timespecView.getUint32(8, true) / 1_000_000;
}

const realtimeScratch = new Uint8Array(TIMESPEC_SIZE);
const realtimeView = new DataView(realtimeScratch.buffer);

/**
 * The realtime (wall) clock in whole microseconds since the Unix epoch, for
 * timestamps written to files (pcap). Read through 32-bit halves, so no BigInt is
 * made; exact for any date before the year 2255 (2^53 µs).
 */
export function realtimeUs(): number {
  c.clock_gettime(CLOCK.REALTIME, realtimeScratch);
  const seconds = realtimeView.getInt32(4, true) * 4294967296 + realtimeView.getUint32(0, true);
  return seconds * 1_000_000 + Math.floor(realtimeView.getUint32(8, true) / 1000);
}

// --- processes, namespaces, credentials ---------------------------------------------

/** getpid(2). */
export function getpid(): number {
  return c.getpid();
}

/** Real and effective user and group IDs. */
export function ids(): { uid: number; euid: number; gid: number; egid: number } {
  return { uid: c.getuid(), euid: c.geteuid(), gid: c.getgid(), egid: c.getegid() };
}

/** setns(2) for the calling thread. Throws on failure. */
export function setns(fd: number, nstype: number, what?: string): void {
  checked("setns", c.setns(fd, nstype), what);
}

/** unshare(2). Throws on failure. */
export function unshare(flags: number): void {
  checked("unshare", c.unshare(flags));
}

const waitStatus = new Int32Array(1);
const waitStatusBytes = new Uint8Array(waitStatus.buffer);

/**
 * waitpid(2): `{ pid, status }` where pid is the reaped child (0 with WNOHANG if
 * none is ready) or -errno; status is the raw wait status.
 */
export function waitpid(pid: number, options: number): { pid: number; status: number } {
  const r = c.waitpid(pid, waitStatusBytes, options);
  if (r < 0) return { pid: -lastErrno(), status: 0 };
  return { pid: r, status: waitStatus[0]! };
}

/** The exit code a shell would report for a raw wait status (128+signal when killed). */
export function exitCodeOf(status: number): number {
  const signal = status & 0x7f;
  return signal === 0 ? (status >> 8) & 0xff : 128 + signal;
}

/** kill(2): 0 or -errno. */
export function kill(pid: number, signal: number): number {
  return c.kill(pid, signal) < 0 ? -lastErrno() : 0;
}

/** prctl(2). Throws on failure. */
export function prctl(option: number, a2 = 0, a3 = 0, a4 = 0, a5 = 0): number {
  return checked("prctl", c.prctl(option, BigInt(a2), BigInt(a3), BigInt(a4), BigInt(a5)));
}

/** setsid(2): the new session ID, or -errno. */
export function setsid(): number {
  const r = c.setsid();
  return r < 0 ? -lastErrno() : r;
}

/** Capability sets of the calling thread, as 64-bit masks (bit n = capability n). */
export interface Capabilities {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

/** capget(2) for the calling thread. Throws on failure. */
export function capget(): Capabilities {
  const header = new Uint8Array(CAP.HEADER_SIZE);
  new DataView(header.buffer).setUint32(0, CAP.VERSION_3, true);
  const data = new Uint8Array(CAP.DATA_SIZE);
  checked("capget", c.capget(header, data));
  const v = new DataView(data.buffer);
  const pair = (offset: number) =>
    BigInt(v.getUint32(offset, true)) | (BigInt(v.getUint32(offset + 12, true)) << 32n);
  return { effective: pair(0), permitted: pair(4), inheritable: pair(8) };
}

/** capset(2) for the calling thread. Throws on failure. */
export function capset(caps: Capabilities): void {
  const header = new Uint8Array(CAP.HEADER_SIZE);
  new DataView(header.buffer).setUint32(0, CAP.VERSION_3, true);
  const data = new Uint8Array(CAP.DATA_SIZE);
  const v = new DataView(data.buffer);
  const put = (offset: number, mask: bigint) => {
    v.setUint32(offset, Number(mask & 0xffffffffn), true);
    v.setUint32(offset + 12, Number((mask >> 32n) & 0xffffffffn), true);
  };
  put(0, caps.effective);
  put(4, caps.permitted);
  put(8, caps.inheritable);
  checked("capset", c.capset(header, data));
}

/** setresuid(2). Throws on failure. */
export function setresuid(r: number, e: number, s: number): void {
  checked("setresuid", c.setresuid(r, e, s));
}

/** setresgid(2). Throws on failure. */
export function setresgid(r: number, e: number, s: number): void {
  checked("setresgid", c.setresgid(r, e, s));
}

/** setgroups(2) with the given list (empty: drop all supplementary groups). Throws on failure. */
export function setgroups(groups: readonly number[]): void {
  const list = new Uint32Array(groups);
  checked("setgroups", c.setgroups(sizeT(groups.length), new Uint8Array(list.buffer)));
}

/** getrlimit(2): [soft, hard] (Infinity for RLIM_INFINITY). Throws on failure. */
export function getrlimit(resource: number): [number, number] {
  const buf = new BigUint64Array(2);
  checked("getrlimit", c.getrlimit(resource, new Uint8Array(buf.buffer)));
  const toNumber = (v: bigint) => (v === 0xffffffffffffffffn ? Infinity : Number(v));
  return [toNumber(buf[0]!), toNumber(buf[1]!)];
}

/** setrlimit(2) (Infinity for RLIM_INFINITY). Throws on failure. */
export function setrlimit(resource: number, soft: number, hard: number): void {
  const buf = new Uint8Array(RLIMIT_SIZE);
  const v = new DataView(buf.buffer);
  const toBig = (n: number) => (n === Infinity ? 0xffffffffffffffffn : BigInt(n));
  v.setBigUint64(0, toBig(soft), true);
  v.setBigUint64(8, toBig(hard), true);
  checked("setrlimit", c.setrlimit(resource, buf));
}

/** chown(2). Throws on failure. */
export function chown(path: string, uid: number, gid: number): void {
  checked("chown", c.chown(cString(path), uid, gid), path);
}

/** tgkill(2): send `signal` to thread `tid` of this process: 0 or -errno. */
export function tgkill(tid: number, signal: number): number {
  return c.tgkill(c.getpid(), tid, signal) < 0 ? -lastErrno() : 0;
}

/**
 * sigaction(2) with a prepared struct sigaction (`SIGACTION` layout); the previous
 * one is stored into `old`. Throws on failure.
 */
export function sigaction(
  signal: number,
  act: Uint8Array<ArrayBuffer>,
  old: Uint8Array<ArrayBuffer>,
): void {
  checked("sigaction", c.sigaction(signal, act, old), `signal ${signal}`);
}

/**
 * seccomp(2) SECCOMP_SET_MODE_FILTER with `flags` and a prepared struct sock_fprog.
 * Throws on failure; with SECCOMP_FILTER_FLAG_TSYNC a positive result is the
 * thread that could not be synchronised (reported as ESRCH for that thread).
 */
export function seccompSetFilter(flags: number, fprog: Uint8Array<ArrayBuffer>): void {
  const r = Number(c.syscall_seccomp(BigInt(SYS.seccomp), 1n, BigInt(flags), fprog));
  if (r < 0) fail("seccomp");
  if (r > 0) throw new SysError("seccomp", Errno.ESRCH, `thread ${r} cannot be synchronised`);
}

// --- mounts and directories (the empty root of isolation.ts) ---------------------------

const noString = new Uint8Array(1);

/**
 * mount(2); `source`, `fstype` and `data` may be undefined (NULL is passed as an
 * empty string where the kernel ignores them). Throws on failure.
 */
export function mount(
  source: string | undefined,
  target: string,
  fstype: string | undefined,
  flags: number,
  data?: string,
): void {
  const r = c.mount(
    source === undefined ? noString : cString(source),
    cString(target),
    fstype === undefined ? noString : cString(fstype),
    BigInt(flags),
    data === undefined ? null : cString(data),
  );
  checked("mount", r, target);
}

/** umount2(2). Throws on failure. */
export function umount2(target: string, flags: number): void {
  checked("umount2", c.umount2(cString(target), flags), target);
}

/** pivot_root(2) (no libc wrapper: a raw system call). Throws on failure. */
export function pivotRoot(newRoot: string, putOld: string): void {
  const r = Number(c.syscall_pivot_root(BigInt(SYS.pivot_root), cString(newRoot), cString(putOld)));
  if (r < 0) fail("pivot_root", newRoot);
}

/** chroot(2). Throws on failure. */
export function chroot(path: string): void {
  checked("chroot", c.chroot(cString(path)), path);
}

/** chdir(2). Throws on failure. */
export function chdir(path: string): void {
  checked("chdir", c.chdir(cString(path)), path);
}

/** openat(2) relative to the directory `dirFd`: the fd, or -errno. */
export function tryOpenAt(dirFd: number, path: string, flags: number, mode = 0): number {
  const r = c.openat(dirFd, cString(path), flags, mode);
  return r < 0 ? -lastErrno() : r;
}

/** unlinkat(2) of `name` in the directory `dirFd`: 0 or -errno. */
export function unlinkAt(dirFd: number, name: string, flags = 0): number {
  return c.unlinkat(dirFd, cString(name), flags) < 0 ? -lastErrno() : 0;
}

/**
 * The names in the directory open at `dirFd` ("." and ".." left out), read with
 * getdents64(2) from its start. Throws on failure.
 */
export function directoryNames(dirFd: number, buf = new Uint8Array(8192)): string[] {
  if (Number(c.lseek(dirFd, 0n, 0)) < 0) fail("lseek", "directory");
  const names: string[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let rounds = 0; rounds < 1 << 16; rounds++) {
    const n = Number(c.getdents64(dirFd, buf, BigInt(buf.length)));
    if (n < 0) fail("getdents64");
    if (n === 0) break;
    for (let at = 0; at + DIRENT64.name < n;) {
      const reclen = view.getUint16(at + DIRENT64.reclen, true);
      if (reclen === 0) break;
      let end = at + DIRENT64.name;
      while (end < at + reclen && buf[end] !== 0) end++;
      const name = decoder.decode(buf.subarray(at + DIRENT64.name, end));
      if (name !== "." && name !== "..") names.push(name);
      at += reclen;
    }
  }
  return names;
}

/** The whole content of the file `path` under `dirFd`, as text, or undefined if unreadable. */
export function readTextAt(
  dirFd: number,
  path: string,
  buf = new Uint8Array(4096),
): string | undefined {
  const fd = tryOpenAt(dirFd, path, O.RDONLY | O.CLOEXEC);
  if (fd < 0) return undefined;
  try {
    let text = "";
    for (let rounds = 0; rounds < 1024; rounds++) {
      const n = read(fd, buf, buf.length);
      if (n <= 0) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    close(fd);
  }
}

const pollFd = new Uint8Array(8);
const pollView = new DataView(pollFd.buffer);

/** Whether `fd` is readable right now: poll(2) with no wait (struct pollfd: fd, events, revents). */
export function pollReadable(fd: number): boolean {
  pollView.setInt32(0, fd, true);
  pollView.setInt16(4, 1, /* POLLIN */ true);
  pollView.setInt16(6, 0, true);
  const r = c.poll(pollFd, 1n, 0);
  return r > 0 && (pollView.getInt16(6, true) & 1) !== 0;
}

/** pidfd_open(2): a descriptor that becomes readable when `pid` exits. Throws on failure. */
export function pidfdOpen(pid: number): number {
  const r = Number(c.syscall_pidfd_open(BigInt(SYS.pidfd_open), BigInt(pid), 0n));
  if (r < 0) fail("pidfd_open", `PID ${pid}`);
  return r;
}

/** A user's uid and primary gid from the password database, or undefined. */
export function lookupUser(name: string): { uid: number; gid: number } | undefined {
  const p = c.getpwnam(cString(name));
  if (p === null) return undefined;
  const view = new Deno.UnsafePointerView(p);
  return { uid: view.getUint32(PASSWD.uid), gid: view.getUint32(PASSWD.gid) };
}

/** A group's gid from the group database, or undefined. */
export function lookupGroup(name: string): number | undefined {
  const p = c.getgrnam(cString(name));
  if (p === null) return undefined;
  return new Deno.UnsafePointerView(p).getUint32(GROUP.gid);
}

/** Terminate the process immediately with `status`, without running any cleanup. */
export function exitNow(status: number): never {
  c._exit(status);
  throw new Error("unreachable");
}

// --- iovec helpers --------------------------------------------------------------------------

/** Fill iovec `index` of the iovec array `iov` with a base address and a length (bytes). Setup time. */
export function setIovec(iov: DataView, index: number, base: bigint, length: number): void {
  iov.setBigUint64(index * IOVEC_SIZE, base, true);
  setIovecLength(iov, index, length);
}

/**
 * Fill iovec `index` with an address given as a number (user-space addresses
 * fit in 53 bits) and a length: no allocation, for the data path.
 */
export function setIovecAt(iov: DataView, index: number, address: number, length: number): void {
  const off = index * IOVEC_SIZE;
  iov.setUint32(off, address % 0x100000000, true);
  iov.setUint32(off + 4, Math.floor(address / 0x100000000), true);
  iov.setUint32(off + 8, length, true);
  iov.setUint32(off + 12, 0, true);
}

/** Change only the length (bytes, < 2^32) of iovec `index`: no allocation, for the data path. */
export function setIovecLength(iov: DataView, index: number, length: number): void {
  iov.setUint32(index * IOVEC_SIZE + 8, length, true);
  iov.setUint32(index * IOVEC_SIZE + 12, 0, true);
}

// --- program execution --------------------------------------------------------------------

/**
 * A NULL-terminated `char *[]` for `strings`. The returned `keep` array holds the
 * strings themselves: keep it alive until the call that uses `array` returns.
 */
export function cStringArray(
  strings: readonly string[],
): { array: Uint8Array<ArrayBuffer>; keep: Uint8Array<ArrayBuffer>[] } {
  const keep = strings.map((s) => {
    const bytes = encoder.encode(s);
    const out = pinnedBuffer(bytes.length + 1);
    out.set(bytes);
    return out;
  });
  const array = pinnedBuffer((strings.length + 1) * 8);
  const view = new DataView(array.buffer);
  keep.forEach((buf, i) => view.setBigUint64(i * 8, addressOf(buf), true));
  return { array, keep };
}

/** The environment as `NAME=value` strings, optionally with changes (undefined removes). */
export function environment(changes: Record<string, string | undefined> = {}): string[] {
  const env = Deno.env.toObject();
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return Object.entries(env).map(([name, value]) => `${name}=${value}`);
}

/**
 * execve(2): replace the process image. Returns only on failure, by throwing.
 * The calling thread's signal mask carries over to the new image.
 */
export function execve(path: string, argv: readonly string[], env: readonly string[]): never {
  const args = cStringArray(argv);
  const envp = cStringArray(env);
  c.execve(cString(path), args.array, envp.array);
  fail("execve", path);
}

/** What `posixSpawn` should arrange in the child before it runs the program. */
export interface SpawnActions {
  /** dup2(from, to) pairs, in order. */
  readonly dup2?: readonly (readonly [number, number])[];
  /** Start a new session (setsid), detaching from the terminal. */
  readonly setsid?: boolean;
}

/**
 * posix_spawn(3): start `path` with `argv` and `env` in a new process. The child
 * inherits the calling thread's signal mask. Returns the child's PID; throws on
 * failure (including a failed exec in the child, which glibc reports).
 */
export function posixSpawn(
  path: string,
  argv: readonly string[],
  env: readonly string[],
  actions: SpawnActions = {},
): number {
  const fileActions = pinnedBuffer(POSIX_SPAWN.FILE_ACTIONS_SIZE);
  const attr = pinnedBuffer(POSIX_SPAWN.ATTR_SIZE);
  const pid = new Int32Array(1);
  let r = c.posix_spawn_file_actions_init(fileActions);
  if (r !== 0) throw new SysError("posix_spawn_file_actions_init", r);
  try {
    r = c.posix_spawnattr_init(attr);
    if (r !== 0) throw new SysError("posix_spawnattr_init", r);
    try {
      for (const [from, to] of actions.dup2 ?? []) {
        r = c.posix_spawn_file_actions_adddup2(fileActions, from, to);
        if (r !== 0) throw new SysError("posix_spawn_file_actions_adddup2", r);
      }
      if (actions.setsid === true) {
        r = c.posix_spawnattr_setflags(attr, POSIX_SPAWN.SETSID);
        if (r !== 0) throw new SysError("posix_spawnattr_setflags", r);
      }
      const args = cStringArray(argv);
      const envp = cStringArray(env);
      r = c.posix_spawn(
        new Uint8Array(pid.buffer),
        cString(path),
        fileActions,
        attr,
        args.array,
        envp.array,
      );
      if (r !== 0) throw new SysError("posix_spawn", r, path);
    } finally {
      c.posix_spawnattr_destroy(attr);
    }
  } finally {
    c.posix_spawn_file_actions_destroy(fileActions);
  }
  return pid[0]!;
}

/**
 * madvise(2) of `length` bytes at address `start` (a number: user addresses are
 * below 2^53). Returns 0 or -errno.
 */
export function madvise(start: number, length: number, advice: number): number {
  const r = c.madvise(Deno.UnsafePointer.create(BigInt(start)), sizeT(length), advice);
  return r < 0 ? -lastErrno() : r;
}

// --- shared memory and descriptor passing (vhost-user) --------------------------------

/** A mapping made by `mmapShared`: its address and the bytes over it. */
export interface SharedMapping {
  /** Address of the first byte (below 2^53). */
  readonly address: number;
  /** Length in bytes. */
  readonly length: number;
  /** The mapped bytes; unusable after `munmapShared`. */
  readonly bytes: Uint8Array<ArrayBuffer>;
}

/**
 * mmap(2) `length` bytes of `fd` from file offset 0, shared, readable and writable.
 * Throws on failure (setup time: a vhost-user memory table).
 */
export function mmapShared(fd: number, length: number, what?: string): SharedMapping {
  const r = c.mmap_addr(null, sizeT(length), PROT.READ | PROT.WRITE, MAP.SHARED, fd, 0n);
  const address = typeof r === "bigint" ? Number(BigInt.asIntN(64, r)) : r;
  if (address === -1 || address < 0) fail("mmap", what);
  const pointer = Deno.UnsafePointer.create(BigInt(address));
  if (pointer === null) throw new SysError("mmap", Errno.EINVAL, what);
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(pointer, length));
  return { address, length, bytes };
}

/**
 * munmap(2) a mapping made by `mmapShared`. Every view over its bytes must be
 * dropped first: touching them afterwards faults. Returns 0 or -errno.
 */
export function munmapShared(mapping: SharedMapping): number {
  const r = c.munmap_addr(sizeT(mapping.address), sizeT(mapping.length));
  return r < 0 ? -lastErrno() : r;
}

/**
 * memcpy(3) of `length` bytes from address `source` to `destination` (numbers,
 * below 2^53; the ranges must not overlap). Nothing is checked here: the caller
 * has checked both ranges against the memory they belong to. Allocation-free.
 */
export function copyMemory(destination: number, source: number, length: number): void {
  c.memcpy_addr(sizeT(destination), sizeT(source), sizeT(length));
}

/** memfd_create(2). Throws on failure. */
export function memfdCreate(name: string, flags: number): number {
  return checked("memfd_create", c.memfd_create(cString(name), flags));
}

/** The most descriptors one `recvWithFds`/`sendWithFds` message carries. */
export const FDS_PER_MESSAGE_MAX = 8;
const FDS_CONTROL_SIZE = CMSGHDR.data + FDS_PER_MESSAGE_MAX * 4;
const fdsMsghdr = pinnedBuffer(MSGHDR.size);
const fdsIov = pinnedBuffer(IOVEC_SIZE);
const fdsControl = pinnedBuffer(FDS_CONTROL_SIZE);

function prepareFdsMsghdr(buf: Uint8Array<ArrayBuffer>, len: number, controlLen: number): void {
  const m = new DataView(fdsMsghdr.buffer);
  const iov = new DataView(fdsIov.buffer);
  fdsMsghdr.fill(0);
  setIovec(iov, 0, addressOf(buf), len);
  m.setBigUint64(MSGHDR.iov, addressOf(fdsIov), true);
  m.setBigUint64(MSGHDR.iovlen, 1n, true);
  m.setBigUint64(MSGHDR.control, addressOf(fdsControl), true);
  m.setBigUint64(MSGHDR.controllen, BigInt(controlLen), true);
}

/**
 * recvmsg(2) up to `len` bytes into `buf`, with any SCM_RIGHTS descriptors (close-
 * on-exec) stored in `fds` (the rest of it set to -1). Returns the byte count, or
 * -errno; -EMSGSIZE if the control data was cut (the descriptors that did arrive
 * are closed). Control path: it may allocate.
 */
export function recvWithFds(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len: number,
  fds: Int32Array,
): number {
  fds.fill(-1);
  fdsControl.fill(0);
  prepareFdsMsghdr(buf, len, FDS_CONTROL_SIZE);
  const r = c.recvmsg(fd, fdsMsghdr, MSG.CMSG_CLOEXEC);
  if (r < 0) return -lastErrno();
  const m = new DataView(fdsMsghdr.buffer);
  const controlLen = Number(m.getBigUint64(MSGHDR.controllen, true));
  const ctl = new DataView(fdsControl.buffer);
  let n = 0;
  if (controlLen >= CMSGHDR.data) {
    const cmsgLen = Number(ctl.getBigUint64(CMSGHDR.len, true));
    if (
      ctl.getInt32(CMSGHDR.level, true) === SOL.SOCKET &&
      ctl.getInt32(CMSGHDR.type, true) === SCM.RIGHTS && cmsgLen <= FDS_CONTROL_SIZE
    ) {
      const count = Math.floor((cmsgLen - CMSGHDR.data) / 4);
      for (; n < count && n < fds.length; n++) {
        fds[n] = ctl.getInt32(CMSGHDR.data + 4 * n, true);
      }
      for (let i = n; i < count; i++) c.close(ctl.getInt32(CMSGHDR.data + 4 * i, true));
    }
  }
  if ((m.getInt32(MSGHDR.flags, true) & MSG.CTRUNC) !== 0) {
    for (let i = 0; i < n; i++) c.close(fds[i] ?? -1);
    fds.fill(-1);
    return -Errno.EMSGSIZE;
  }
  return r;
}

/**
 * sendmsg(2) `len` bytes of `buf` with `fds` (at most FDS_PER_MESSAGE_MAX) as
 * SCM_RIGHTS. Returns the byte count or -errno. Control path (and tests).
 */
export function sendWithFds(
  fd: number,
  buf: Uint8Array<ArrayBuffer>,
  len: number,
  fds: readonly number[],
): number {
  if (fds.length > FDS_PER_MESSAGE_MAX) return -Errno.EINVAL;
  fdsControl.fill(0);
  const dataLen = fds.length * 4;
  const space = fds.length === 0 ? 0 : CMSGHDR.data + ((dataLen + 7) & ~7);
  prepareFdsMsghdr(buf, len, space);
  if (fds.length === 0) {
    new DataView(fdsMsghdr.buffer).setBigUint64(MSGHDR.control, 0n, true);
  } else {
    const ctl = new DataView(fdsControl.buffer);
    ctl.setBigUint64(CMSGHDR.len, BigInt(CMSGHDR.data + dataLen), true);
    ctl.setInt32(CMSGHDR.level, SOL.SOCKET, true);
    ctl.setInt32(CMSGHDR.type, SCM.RIGHTS, true);
    fds.forEach((d, i) => ctl.setInt32(CMSGHDR.data + 4 * i, d, true));
  }
  const r = c.sendmsg(fd, fdsMsghdr, MSG.NOSIGNAL);
  return r < 0 ? -lastErrno() : r;
}
