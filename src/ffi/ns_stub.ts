/**
 * A raw thread that makes system calls on request: pasta's namespace thread.
 *
 * Theory of operation: which network namespace a socket, a tap device or an
 * opened /proc file belongs to is decided by the thread that creates it, and
 * setns(CLONE_NEWNET) moves only the calling thread. pasta needs one thread
 * that lives in the target namespace for good and creates descriptors there on
 * request. A Deno Worker could do it, but costs a whole second V8 isolate
 * (about 8 MiB of private memory and tens of milliseconds to start) for a
 * handful of system calls. This is the thread instead: a ~130-byte machine-code
 * loop (sources beside this file: `ns_stub_x86_64.s`, `ns_stub_aarch64.s`)
 * started with clone(3) as a thread of our process (CLONE_VM, CLONE_THREAD…),
 * which runs no JavaScript, no libc and touches no stack or TLS.
 *
 * Protocol, through one request block the thread gets as its argument:
 *
 *     +0   u32  state: 0 idle, 1 request, 2 done, 3 exit
 *     +8   u64  system call number, +16..+56 six arguments
 *     +64  i64  result (-errno on failure)
 *     +72  u64  the signal mask the thread sets at start
 *     +128      data area (paths, struct ifreq) that arguments point into
 *
 * `call()` fills the record, sets state 1, wakes the thread with
 * futex(FUTEX_WAKE) and sleeps in futex(FUTEX_WAIT) until the state is 2: a
 * synchronous round trip of a few microseconds. The thread blocks every signal
 * except `openSignal` (the per-thread capability calls of isolation.ts, whose
 * handler is machine code too): any other handler would run Rust or JavaScript
 * on a thread that has neither.
 *
 * The code page, the 64 KiB stack (used only by that signal handler and by
 * glibc's clone to pass fn and arg) and the block are mapped once per thread;
 * `exit()` ends the thread and leaves them mapped (a few pages, once).
 *
 * The embedded bytes must match the assembly sources: `tests/stub/regen.sh`
 * reassembles them and compares (`--write` updates this file).
 */
import { c, sizeT } from "./libc.ts";
import { lastErrno, SysError } from "./errno.ts";
import { ARCH, CLONE, MAP, PROT, SYS } from "./layout.ts";

/** Machine code assembled from `src/ffi/ns_stub_x86_64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_X86_64 = new Uint8Array([
  // <x86_64>
  0x48, 0x89, 0xfb, 0xb8, 0x0e, 0x00, 0x00, 0x00, 0xbf, 0x02, 0x00, 0x00,
  0x00, 0x48, 0x8d, 0x73, 0x48, 0x31, 0xd2, 0x41, 0xba, 0x08, 0x00, 0x00,
  0x00, 0x0f, 0x05, 0x8b, 0x13, 0x83, 0xfa, 0x01, 0x74, 0x19, 0x83, 0xfa,
  0x03, 0x74, 0x52, 0xb8, 0xca, 0x00, 0x00, 0x00, 0x48, 0x89, 0xdf, 0xbe,
  0x80, 0x00, 0x00, 0x00, 0x45, 0x31, 0xd2, 0x0f, 0x05, 0xeb, 0xe0, 0x48,
  0x8b, 0x43, 0x08, 0x48, 0x8b, 0x7b, 0x10, 0x48, 0x8b, 0x73, 0x18, 0x48,
  0x8b, 0x53, 0x20, 0x4c, 0x8b, 0x53, 0x28, 0x4c, 0x8b, 0x43, 0x30, 0x4c,
  0x8b, 0x4b, 0x38, 0x0f, 0x05, 0x48, 0x89, 0x43, 0x40, 0xc7, 0x03, 0x02,
  0x00, 0x00, 0x00, 0xb8, 0xca, 0x00, 0x00, 0x00, 0x48, 0x89, 0xdf, 0xbe,
  0x81, 0x00, 0x00, 0x00, 0xba, 0x01, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb,
  0xa2, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05, 0x0f, 0x0b,
  // </x86_64>
]);

/** Machine code assembled from `src/ffi/ns_stub_aarch64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_AARCH64 = new Uint8Array([
  // <aarch64>
  0xf3, 0x03, 0x00, 0xaa, 0xe8, 0x10, 0x80, 0xd2, 0x40, 0x00, 0x80, 0xd2,
  0x61, 0x22, 0x01, 0x91, 0x02, 0x00, 0x80, 0xd2, 0x03, 0x01, 0x80, 0xd2,
  0x01, 0x00, 0x00, 0xd4, 0x62, 0xfe, 0xdf, 0x88, 0x5f, 0x04, 0x00, 0x71,
  0x20, 0x01, 0x00, 0x54, 0x5f, 0x0c, 0x00, 0x71, 0xa0, 0x02, 0x00, 0x54,
  0x48, 0x0c, 0x80, 0xd2, 0xe0, 0x03, 0x13, 0xaa, 0x01, 0x10, 0x80, 0xd2,
  0x03, 0x00, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0xf6, 0xff, 0xff, 0x17,
  0x68, 0x06, 0x40, 0xf9, 0x60, 0x06, 0x41, 0xa9, 0x62, 0x0e, 0x42, 0xa9,
  0x64, 0x16, 0x43, 0xa9, 0x01, 0x00, 0x00, 0xd4, 0x60, 0x22, 0x00, 0xf9,
  0x41, 0x00, 0x80, 0x52, 0x61, 0xfe, 0x9f, 0x88, 0x48, 0x0c, 0x80, 0xd2,
  0xe0, 0x03, 0x13, 0xaa, 0x21, 0x10, 0x80, 0xd2, 0x22, 0x00, 0x80, 0xd2,
  0x01, 0x00, 0x00, 0xd4, 0xe8, 0xff, 0xff, 0x17, 0xa8, 0x0b, 0x80, 0xd2,
  0x00, 0x00, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x20, 0xd4,
  // </aarch64>
]);

const CODE: Uint8Array = ARCH === "x86_64" ? CODE_X86_64 : CODE_AARCH64;

const STATE = { IDLE: 0, REQUEST: 1, DONE: 2, EXIT: 3 } as const;
const OFFSET = { nr: 8, args: 16, result: 64, mask: 72 } as const;
/** Byte offset of the data area in the block. */
export const NS_STUB_DATA_OFFSET = 128;
/** Size of the whole block in bytes (one page). */
const BLOCK_SIZE = 4096;
/** Size of the data area in bytes. */
export const NS_STUB_DATA_SIZE = BLOCK_SIZE - NS_STUB_DATA_OFFSET;
const STACK_SIZE = 64 * 1024;
/** futex(2): the call and its operations, as the 64-bit arguments syscall(3) takes. */
const FUTEX = sizeT(SYS.futex);
const WAIT = sizeT(128); // FUTEX_WAIT_PRIVATE
const WAKE = sizeT(129); // FUTEX_WAKE_PRIVATE
/** The thread shares everything a pthread shares. */
const THREAD_FLAGS = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD |
  CLONE.SYSVSEM;

function mapAnonymous(size: number, what: string): Deno.PointerObject {
  const p = c.mmap(null, BigInt(size), PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0n);
  // MAP_FAILED is (void *)-1.
  if (p === null || BigInt(Deno.UnsafePointer.value(p)) === 0xffffffffffffffffn) {
    throw new SysError("mmap", lastErrno(), what);
  }
  return p;
}

let entry: Deno.PointerObject | undefined;

/** The loop's entry point: mapped, filled and made read+execute on first use, kept. */
function stubEntry(): Deno.PointerObject {
  if (entry !== undefined) return entry;
  const code = mapAnonymous(CODE.length, "namespace thread code");
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(code, CODE.length)).set(CODE);
  if (c.mprotect(code, BigInt(CODE.length), PROT.READ | PROT.EXEC) < 0) {
    throw new SysError("mprotect", lastErrno(), "namespace thread code");
  }
  entry = code;
  return entry;
}

/** One raw system-call thread (see the module comment). */
export class SyscallThread {
  /** The request block (4 KiB, never moves). */
  readonly block: Uint8Array<ArrayBuffer>;
  /** The data area of the block: where path and struct arguments go. */
  readonly data: Uint8Array<ArrayBuffer>;
  /** The data area's address, for arguments that point into it. */
  readonly dataAddress: bigint;
  readonly #state: Int32Array<ArrayBuffer>;
  readonly #view: DataView<ArrayBuffer>;
  readonly #timeout: Uint8Array<ArrayBuffer>;
  readonly #timeoutMs: number;
  #alive = true;

  /**
   * Start the thread. It blocks every signal but `openSignal`; a request not
   * answered within `timeoutMs` makes `call` throw.
   */
  constructor(openSignal: number, timeoutMs: number) {
    const blockPointer = mapAnonymous(BLOCK_SIZE, "namespace thread block");
    const stack = mapAnonymous(STACK_SIZE, "namespace thread stack");
    const buffer = Deno.UnsafePointerView.getArrayBuffer(blockPointer, BLOCK_SIZE);
    this.block = new Uint8Array(buffer);
    this.data = new Uint8Array(buffer, NS_STUB_DATA_OFFSET);
    this.dataAddress = BigInt(Deno.UnsafePointer.value(blockPointer)) +
      BigInt(NS_STUB_DATA_OFFSET);
    this.#state = new Int32Array(buffer, 0, 1);
    this.#view = new DataView(buffer);
    this.#timeoutMs = timeoutMs;
    // struct timespec for FUTEX_WAIT: a relative timeout.
    this.#timeout = new Uint8Array(16);
    const t = new DataView(this.#timeout.buffer);
    t.setBigInt64(0, BigInt(Math.floor(timeoutMs / 1000)), true);
    t.setBigInt64(8, BigInt((timeoutMs % 1000) * 1_000_000), true);
    this.#view.setBigUint64(
      OFFSET.mask,
      ~(1n << BigInt(openSignal - 1)) & 0xffffffffffffffffn,
      true,
    );
    const top = Deno.UnsafePointer.offset(stack, STACK_SIZE)!;
    const tid = c.clone(stubEntry(), top, THREAD_FLAGS, blockPointer, null, null, null);
    if (tid < 0) throw new SysError("clone", lastErrno(), "namespace thread");
  }

  /**
   * Make system call `nr` with up to six arguments on the thread; returns its
   * result (-errno on failure). Arguments are numbers or addresses (bigint).
   * Waits at most the timeout given at start, then throws.
   */
  call(
    nr: number,
    a0: number | bigint = 0,
    a1: number | bigint = 0,
    a2: number | bigint = 0,
    a3: number | bigint = 0,
  ): number {
    if (!this.#alive) throw new Error("the namespace thread has ended");
    const view = this.#view;
    view.setBigInt64(OFFSET.nr, BigInt(nr), true);
    const args = [a0, a1, a2, a3];
    for (let i = 0; i < 6; i++) {
      view.setBigInt64(OFFSET.args + i * 8, BigInt.asIntN(64, BigInt(args[i] ?? 0)), true);
    }
    Atomics.store(this.#state, 0, STATE.REQUEST);
    c.syscall_futex(FUTEX, this.block, WAKE, sizeT(1), this.#timeout);
    const deadline = performance.now() + this.#timeoutMs;
    while (Atomics.load(this.#state, 0) !== STATE.DONE) {
      if (performance.now() > deadline) throw new Error("the namespace thread did not answer");
      c.syscall_futex(FUTEX, this.block, WAIT, sizeT(STATE.REQUEST), this.#timeout);
    }
    return Number(view.getBigInt64(OFFSET.result, true));
  }

  /** End the thread (its memory stays mapped). */
  exit(): void {
    if (!this.#alive) return;
    this.#alive = false;
    Atomics.store(this.#state, 0, STATE.EXIT);
    c.syscall_futex(FUTEX, this.block, WAKE, sizeT(1), this.#timeout);
  }
}
