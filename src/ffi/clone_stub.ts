/**
 * A clone(3) entry point that runs a list of raw system calls: how a
 * multithreaded Deno process starts a single-threaded child that can join
 * namespaces and exec a command without ever running JavaScript or libc.
 *
 * Theory of operation: Deno has many threads, so the calls pasta needs before
 * exec (setns into a user namespace, waiting for the parent to write the ID
 * maps, dup2, chdir, a clean signal mask) cannot run in our own process, and a
 * fork()ed copy of a multithreaded runtime cannot safely run JavaScript or even
 * malloc. glibc's clone(fn, stack, flags, arg) gives us a fresh child made of one
 * thread that calls fn(arg) on a stack we provide. fn is a ~130-byte
 * machine-code "syscall program runner" (sources beside this file:
 * `clone_stub_x86_64.s` and `clone_stub_aarch64.s`); arg is a block the parent
 * prepares:
 *
 *     +0   u64  fd to report a failure on (the write end of a CLOEXEC pipe)
 *     +8   u64  reserved
 *     +16  records of 8 little-endian u64: [nr, a0, a1, a2, a3, a4, a5, flags]
 *          ending with nr = -1, then a data area (C strings, pointer arrays,
 *          scratch bytes) that records point into by absolute address.
 *
 * The runner issues each record's system call in order. A result in
 * [-4095, -1] is a failure unless the record says `STEP_IGNORE_FAILURE`; with
 * `STEP_NONZERO` a result of 0 also fails (errno 0: an unexpected end of file).
 * On failure it overwrites the record's first 16 bytes with (step index, errno),
 * writes them to the report fd and calls exit_group(127). Past the last record it
 * also exits 127: the last step is meant to be an execve that never returns.
 * The parent therefore reads either end-of-file (every CLOEXEC write end closed:
 * exec succeeded) or exactly 16 bytes naming the step and errno, as posix_spawn
 * does internally.
 *
 * Memory: the code is copied once into an anonymous mapping that is then made
 * read+execute (on aarch64 the kernel cleans the data cache and invalidates the
 * instruction cache when it installs an executable user mapping of a page not
 * yet synced, so no user-space cache maintenance is needed). A single 64 KiB
 * stack, mapped once, serves every child: without CLONE_VM each child gets its
 * own copy-on-write copy of both, and of the block, so the parent may reuse or
 * drop them as soon as clone() returns. glibc's clone needs the stack only to
 * pass fn and arg; the runner itself touches no stack at all.
 *
 * The embedded bytes must match the assembly sources: `tests/stub/regen.sh`
 * reassembles them and compares (`--write` updates this file).
 */
import { c } from "./libc.ts";
import { lastErrno, SysError } from "./errno.ts";
import { ARCH, CLONE, MAP, PROT } from "./layout.ts";
import { addressOf, pinnedBuffer } from "./sys.ts";

/** Machine code assembled from `src/ffi/clone_stub_x86_64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_X86_64 = new Uint8Array([
  // <x86_64>
  0x48, 0x89, 0xfb, 0x4c, 0x8d, 0x67, 0x10, 0x45, 0x31, 0xed, 0x49, 0x8b,
  0x04, 0x24, 0x48, 0x83, 0xf8, 0xff, 0x74, 0x63, 0x49, 0x8b, 0x7c, 0x24,
  0x08, 0x49, 0x8b, 0x74, 0x24, 0x10, 0x49, 0x8b, 0x54, 0x24, 0x18, 0x4d,
  0x8b, 0x54, 0x24, 0x20, 0x4d, 0x8b, 0x44, 0x24, 0x28, 0x4d, 0x8b, 0x4c,
  0x24, 0x30, 0x0f, 0x05, 0x49, 0x8b, 0x4c, 0x24, 0x38, 0xf6, 0xc1, 0x01,
  0x75, 0x12, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x13, 0xf6, 0xc1,
  0x02, 0x74, 0x05, 0x48, 0x85, 0xc0, 0x74, 0x09, 0x49, 0x83, 0xc4, 0x40,
  0x49, 0xff, 0xc5, 0xeb, 0xb1, 0x48, 0xf7, 0xd8, 0x4d, 0x89, 0x2c, 0x24,
  0x49, 0x89, 0x44, 0x24, 0x08, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x48, 0x8b,
  0x3b, 0x4c, 0x89, 0xe6, 0xba, 0x10, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xb8,
  0xe7, 0x00, 0x00, 0x00, 0xbf, 0x7f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f,
  0x0b,
  // </x86_64>
]);

/** Machine code assembled from `src/ffi/clone_stub_aarch64.s` (see tests/stub/regen.sh). */
// deno-fmt-ignore
const CODE_AARCH64 = new Uint8Array([
  // <aarch64>
  0xf3, 0x03, 0x00, 0xaa, 0x14, 0x40, 0x00, 0x91, 0x15, 0x00, 0x80, 0xd2,
  0x88, 0x02, 0x40, 0xf9, 0x1f, 0x05, 0x00, 0xb1, 0xa0, 0x02, 0x00, 0x54,
  0x80, 0x86, 0x40, 0xa9, 0x82, 0x8e, 0x41, 0xa9, 0x84, 0x96, 0x42, 0xa9,
  0x01, 0x00, 0x00, 0xd4, 0x89, 0x1e, 0x40, 0xf9, 0xa9, 0x00, 0x00, 0x37,
  0x1f, 0xfc, 0x3f, 0xb1, 0xc2, 0x00, 0x00, 0x54, 0x49, 0x00, 0x08, 0x36,
  0x80, 0x00, 0x00, 0xb4, 0x94, 0x02, 0x01, 0x91, 0xb5, 0x06, 0x00, 0x91,
  0xf1, 0xff, 0xff, 0x17, 0xe0, 0x03, 0x00, 0xcb, 0x95, 0x02, 0x00, 0xa9,
  0x08, 0x08, 0x80, 0xd2, 0x60, 0x02, 0x40, 0xf9, 0xe1, 0x03, 0x14, 0xaa,
  0x02, 0x02, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0xc8, 0x0b, 0x80, 0xd2,
  0xe0, 0x0f, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x00, 0x00,
  // </aarch64>
]);

/** The runner's machine code for the architecture we run on. */
export const STUB_CODE: Uint8Array = ARCH === "x86_64" ? CODE_X86_64 : CODE_AARCH64;

/** Record flag: a failure of this step is not reported and the program goes on. */
export const STEP_IGNORE_FAILURE = 1;
/** Record flag: a result of 0 is a failure too (reported with errno 0). */
export const STEP_NONZERO = 2;

/** Bytes before the first record: report fd, reserved. */
export const PROGRAM_HEADER_SIZE = 16;
/** Bytes per record: eight u64. */
const RECORD_SIZE = 64;
/** Bytes of the failure report the runner writes: step index, errno (u64 each). */
export const STUB_REPORT_SIZE = 16;
/** Size of the stack every child starts on, in bytes. */
const STACK_SIZE = 64 * 1024;

/** A location in a program's data area, resolved to an absolute address at build time. */
export class DataRef {
  /** Offset from the start of the data area, in bytes. */
  readonly offset: number;
  constructor(offset: number) {
    this.offset = offset;
  }
}

/** A system call argument: an integer (number or u64 bigint) or an address in the data area. */
export type StepArg = number | bigint | DataRef;

/** What a step does, for error messages: the C-level call name and a detail. */
export interface StepLabel {
  /** The call, e.g. "setns" or "execve": becomes `SysError.call`. */
  readonly call: string;
  /** What it acted on, e.g. "user namespace, fd 5" or a path. */
  readonly detail?: string;
}

interface Step {
  readonly nr: number;
  readonly args: readonly StepArg[];
  readonly flags: number;
  readonly label: StepLabel;
}

type DataChunk =
  | { readonly offset: number; readonly bytes: Uint8Array }
  | { readonly offset: number; readonly pointers: readonly DataRef[] };

const encoder = new TextEncoder();

/**
 * A syscall program under construction: steps plus the data they point to.
 * Setup time only (allocates freely).
 */
export class SyscallProgram {
  #steps: Step[] = [];
  #data: DataChunk[] = [];
  #dataSize = 0;

  /** Reserve `size` zeroed bytes in the data area (8-byte aligned). */
  bytes(size: number): DataRef {
    return this.#add({ offset: this.#reserve(size), bytes: new Uint8Array(size) });
  }

  /** Copy `bytes` into the data area (8-byte aligned). */
  copy(bytes: Uint8Array): DataRef {
    return this.#add({ offset: this.#reserve(bytes.length), bytes: bytes.slice() });
  }

  /** A NUL-terminated UTF-8 copy of `s` in the data area. */
  string(s: string): DataRef {
    const encoded = encoder.encode(s);
    const bytes = new Uint8Array(encoded.length + 1);
    bytes.set(encoded);
    return this.#add({ offset: this.#reserve(bytes.length), bytes });
  }

  /** A NULL-terminated array of pointers (argv, envp) in the data area. */
  pointerArray(refs: readonly DataRef[]): DataRef {
    return this.#add({ offset: this.#reserve((refs.length + 1) * 8), pointers: refs.slice() });
  }

  /** Append a system call (number from `SYS`), with at most six arguments. */
  step(label: StepLabel, nr: number, args: readonly StepArg[], flags = 0): void {
    if (args.length > 6) throw new Error(`${label.call}: more than six syscall arguments`);
    if (nr < 0) throw new Error(`${label.call}: no such system call on ${ARCH}`);
    this.#steps.push({ nr, args: args.slice(), flags, label });
  }

  /** How many steps the program has. */
  get length(): number {
    return this.#steps.length;
  }

  /** The label of step `index`, as reported by the runner. */
  label(index: number): StepLabel | undefined {
    return this.#steps[index]?.label;
  }

  /**
   * Lay the program out in a fresh pinned block, with `reportFd` in the header.
   * The block's address is baked into it: it must not be copied before clone().
   */
  build(reportFd: number): Uint8Array<ArrayBuffer> {
    const dataStart = PROGRAM_HEADER_SIZE + (this.#steps.length + 1) * RECORD_SIZE;
    const block = pinnedBuffer(dataStart + this.#dataSize);
    const view = new DataView(block.buffer);
    const base = addressOf(block);
    const value = (arg: StepArg): bigint =>
      arg instanceof DataRef
        ? base + BigInt(dataStart + arg.offset)
        : BigInt.asUintN(64, BigInt(arg));

    view.setBigUint64(0, BigInt(reportFd), true);
    let at = PROGRAM_HEADER_SIZE;
    for (const step of this.#steps) {
      view.setBigUint64(at, BigInt(step.nr), true);
      for (let i = 0; i < 6; i++) {
        const arg = step.args[i];
        view.setBigUint64(at + 8 + i * 8, arg === undefined ? 0n : value(arg), true);
      }
      view.setBigUint64(at + 56, BigInt(step.flags), true);
      at += RECORD_SIZE;
    }
    view.setBigInt64(at, -1n, true);

    for (const chunk of this.#data) {
      const start = dataStart + chunk.offset;
      if ("bytes" in chunk) {
        block.set(chunk.bytes, start);
      } else {
        chunk.pointers.forEach((ref, i) => view.setBigUint64(start + i * 8, value(ref), true));
      }
    }
    return block;
  }

  #reserve(size: number): number {
    const offset = this.#dataSize;
    this.#dataSize += (size + 7) & ~7;
    return offset;
  }

  #add(chunk: DataChunk): DataRef {
    this.#data.push(chunk);
    return new DataRef(chunk.offset);
  }
}

let entry: Deno.PointerObject | undefined;
let stackTop: Deno.PointerObject | undefined;

function mapAnonymous(size: number, prot: number, what: string): Deno.PointerObject {
  const p = c.mmap(null, BigInt(size), prot, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0n);
  // MAP_FAILED is (void *)-1.
  if (p === null || BigInt(Deno.UnsafePointer.value(p)) === 0xffffffffffffffffn) {
    throw new SysError("mmap", lastErrno(), what);
  }
  return p;
}

/** The runner's entry point: mapped, filled and made read+execute on first use, kept forever. */
function runnerEntry(): Deno.PointerObject {
  if (entry !== undefined) return entry;
  const code = mapAnonymous(STUB_CODE.length, PROT.READ | PROT.WRITE, "clone stub code");
  new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(code, STUB_CODE.length)).set(STUB_CODE);
  if (c.mprotect(code, BigInt(STUB_CODE.length), PROT.READ | PROT.EXEC) < 0) {
    throw new SysError("mprotect", lastErrno(), "clone stub code");
  }
  entry = code;
  return entry;
}

/** The top of the shared child stack (stacks grow down on both architectures). */
function childStackTop(): Deno.PointerObject {
  if (stackTop !== undefined) return stackTop;
  const stack = mapAnonymous(STACK_SIZE, PROT.READ | PROT.WRITE, "clone stub stack");
  stackTop = Deno.UnsafePointer.offset(stack, STACK_SIZE)!;
  return stackTop;
}

/** clone(2) flags that would make the child share state with us: refused. */
const SHARING_FLAGS = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD |
  CLONE.VFORK | CLONE.PARENT | CLONE.PIDFD;

/**
 * Start a child that runs `block` (from `SyscallProgram.build`) and exits.
 * `flags` are clone(2) flags: namespace flags only (CLONE_NEW*) plus the exit
 * signal in the low byte (SIGCHLD for waitpid). Returns the child's pid in our
 * PID namespace. Throws a SysError if clone fails.
 */
export function cloneRunner(block: Uint8Array<ArrayBuffer>, flags: number): number {
  if ((flags & SHARING_FLAGS) !== 0) {
    throw new Error(`cloneRunner: flags 0x${flags.toString(16)} would share state with the child`);
  }
  const fn = runnerEntry();
  const stack = childStackTop();
  const pid = c.clone(fn, stack, flags, Deno.UnsafePointer.of(block), null, null, null);
  if (pid < 0) throw new SysError("clone", lastErrno(), `flags 0x${flags.toString(16)}`);
  return pid;
}

/** A decoded failure report: which step failed and with which errno (0: end of file). */
export interface StubReport {
  /** Index of the failed step in the program. */
  readonly step: number;
  /** The errno the step failed with; 0 when a `STEP_NONZERO` step returned 0. */
  readonly errno: number;
}

/** Decode the 16-byte failure report the runner writes. */
export function decodeStubReport(report: Uint8Array): StubReport {
  const view = new DataView(report.buffer, report.byteOffset, STUB_REPORT_SIZE);
  return {
    step: Number(view.getBigUint64(0, true)),
    errno: Number(view.getBigUint64(8, true)),
  };
}
