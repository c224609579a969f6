/**
 * Running a few system calls on every thread of the process: for the calls
 * Linux applies to the calling thread only (capset, prctl(PR_CAPBSET_DROP)).
 *
 * Theory of operation: Deno runs threads of its own (V8 platform workers,
 * tokio workers, the pasta namespace thread), and capabilities and the
 * bounding set belong to each thread. glibc solves the same problem for
 * setresuid() and friends by signalling every thread and making the call in
 * the handler; libpsx does it for capset. We do the same with a ~60-byte
 * machine-code signal handler (sources beside this file:
 * `thread_stub_x86_64.s`, `thread_stub_aarch64.s`) that runs a list of
 * records laid out by `SyscallProgram` (see clone_stub.ts) and returns. The
 * address of the records is written into the 8 bytes after the code before
 * the page is made read+execute, so the handler needs no argument.
 *
 * The handler checks nothing: the caller sends the signal to each thread
 * (tgkill) and then reads every thread's state back from
 * /proc/self/task/TID/status until it is what it asked for, or gives up.
 * Everything here is set-up time; the code page and the program stay mapped
 * for good (a signal still queued must find them).
 *
 * The embedded bytes must match the assembly sources: `tests/stub/regen.sh`
 * reassembles them and compares (`--write` updates this file).
 */
import { c } from "./libc.ts";
import { lastErrno, SysError } from "./errno.ts";
import { ARCH, MAP, PROT, SA, SIGACTION } from "./layout.ts";
import { PROGRAM_HEADER_SIZE, type SyscallProgram } from "./clone_stub.ts";
import { addressOf, pinnedBuffer, sigaction, tgkill } from "./sys.ts";

/** Machine code assembled from `src/ffi/thread_stub_x86_64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_X86_64 = new Uint8Array([
  // <x86_64>
  0x41, 0x54, 0x4c, 0x8b, 0x25, 0x37, 0x00, 0x00, 0x00, 0x49, 0x8b, 0x04,
  0x24, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x26, 0x49, 0x8b, 0x7c, 0x24, 0x08,
  0x49, 0x8b, 0x74, 0x24, 0x10, 0x49, 0x8b, 0x54, 0x24, 0x18, 0x4d, 0x8b,
  0x54, 0x24, 0x20, 0x4d, 0x8b, 0x44, 0x24, 0x28, 0x4d, 0x8b, 0x4c, 0x24,
  0x30, 0x0f, 0x05, 0x49, 0x83, 0xc4, 0x40, 0xeb, 0xd0, 0x41, 0x5c, 0xc3,
  0x0f, 0x1f, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  // </x86_64>
]);

/** Machine code assembled from `src/ffi/thread_stub_aarch64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_AARCH64 = new Uint8Array([
  // <aarch64>
  0x89, 0x01, 0x00, 0x58, 0x28, 0x01, 0x40, 0xf9, 0x1f, 0x05, 0x00, 0xb1,
  0xe0, 0x00, 0x00, 0x54, 0x20, 0x85, 0x40, 0xa9, 0x22, 0x8d, 0x41, 0xa9,
  0x24, 0x95, 0x42, 0xa9, 0x01, 0x00, 0x00, 0xd4, 0x29, 0x01, 0x01, 0x91,
  0xf8, 0xff, 0xff, 0x17, 0xc0, 0x03, 0x5f, 0xd6, 0x1f, 0x20, 0x03, 0xd5,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  // </aarch64>
]);

const CODE: Uint8Array = ARCH === "x86_64" ? CODE_X86_64 : CODE_AARCH64;

/**
 * The real-time signal per-thread programs travel on (isolation.ts). Raw threads
 * (ns_stub.ts) leave only this one unblocked.
 */
export const THREAD_SIGNAL = 63;

/** The last 8 bytes of the code: where the handler finds its records. */
const BLOCK_SLOT_SIZE = 8;

/** Programs (and their code pages) kept alive for as long as the process runs. */
const keptAlive: Uint8Array[] = [];

/**
 * A signal handler that runs one program on whichever thread receives `signal`,
 * installed until `close()`.
 */
export class ThreadProgram {
  readonly #signal: number;
  readonly #previous = pinnedBuffer(SIGACTION.size);
  #installed = false;

  /** Map the handler for `program` and install it for `signal` (a real-time signal). */
  constructor(program: SyscallProgram, signal: number) {
    this.#signal = signal;
    const block = program.build(-1);
    keptAlive.push(block);
    const code = c.mmap(
      null,
      BigInt(CODE.length),
      PROT.READ | PROT.WRITE,
      MAP.PRIVATE | MAP.ANONYMOUS,
      -1,
      0n,
    );
    if (code === null || BigInt(Deno.UnsafePointer.value(code)) === 0xffffffffffffffffn) {
      throw new SysError("mmap", lastErrno(), "thread stub code");
    }
    const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(code, CODE.length));
    bytes.set(CODE);
    new DataView(bytes.buffer).setBigUint64(
      CODE.length - BLOCK_SLOT_SIZE,
      addressOf(block) + BigInt(PROGRAM_HEADER_SIZE),
      true,
    );
    if (c.mprotect(code, BigInt(CODE.length), PROT.READ | PROT.EXEC) < 0) {
      throw new SysError("mprotect", lastErrno(), "thread stub code");
    }
    const act = pinnedBuffer(SIGACTION.size);
    const view = new DataView(act.buffer);
    view.setBigUint64(SIGACTION.handler, BigInt(Deno.UnsafePointer.value(code)), true);
    // Nothing else runs on a thread while it is in the handler.
    act.fill(0xff, SIGACTION.mask, SIGACTION.flags);
    view.setInt32(SIGACTION.flags, SA.SIGINFO | SA.RESTART, true);
    sigaction(signal, act, this.#previous);
    this.#installed = true;
  }

  /** Have thread `tid` of this process run the program: 0 or -errno (-ESRCH: it is gone). */
  runOn(tid: number): number {
    return tgkill(tid, this.#signal);
  }

  /** Put back the signal's previous disposition. */
  close(): void {
    if (!this.#installed) return;
    this.#installed = false;
    sigaction(this.#signal, this.#previous, pinnedBuffer(SIGACTION.size));
  }
}
