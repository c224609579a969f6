/**
 * What the passt integration tests share: the binary under test, and a client of
 * the qemu stream protocol (each frame preceded by its 4-byte big-endian length)
 * over passt's UNIX domain socket, from outside the sandbox (socket files are
 * reachable across network namespaces; sandbox paths are the same outside).
 */
import { sleep } from "../sandbox/sandbox.ts";

/**
 * Absolute path of the passt binary under test: PASST_UNDER_TEST, or ./passt as `make`
 * built it (PASST_UNDER_TEST=/usr/bin/passt validates tests against Debian's C passt).
 */
export const PASST = Deno.env.get("PASST_UNDER_TEST") ??
  new URL("../../passt", import.meta.url).pathname;

/** Why ./passt cannot be tested, or undefined. */
export function passtMissing(): string | undefined {
  try {
    Deno.statSync(PASST);
    return undefined;
  } catch {
    return `${PASST} does not exist (run make)`;
  }
}

/** `frames`, each preceded by its length, in one buffer. */
export function framed(...frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + 4 + f.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    view.setUint32(at, f.length);
    out.set(f, at + 4);
    at += 4 + f.length;
  }
  return out;
}

/** One client connection to passt's socket, reading frames in the background. */
export class FrameClient {
  readonly #conn: Deno.UnixConn;
  #stream = new Uint8Array(0);
  readonly #frames: Uint8Array[] = [];
  /** Set once the connection reached EOF or failed (passt closed it). */
  closed = false;
  readonly #pump: Promise<void>;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#pump = this.#read();
  }

  /** Connect to the socket at `path`. */
  static async connect(path: string): Promise<FrameClient> {
    return new FrameClient(await Deno.connect({ transport: "unix", path }));
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(1 << 16);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        const next = new Uint8Array(this.#stream.length + n);
        next.set(this.#stream);
        next.set(buf.subarray(0, n), this.#stream.length);
        let at = 0;
        while (next.length - at >= 4) {
          const length = new DataView(next.buffer, at).getUint32(0);
          if (next.length - at - 4 < length) break;
          this.#frames.push(next.slice(at + 4, at + 4 + length));
          at += 4 + length;
        }
        this.#stream = next.slice(at);
      }
    } catch {
      // reset by passt: closed as well
    }
    this.closed = true;
  }

  /** Write `bytes` as they are (one write). */
  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.#conn.write(bytes.subarray(at));
  }

  /** Send `frames` in one write. */
  send(...frames: Uint8Array[]): Promise<void> {
    return this.write(framed(...frames));
  }

  /** The first received frame that `match` accepts (removed from the queue), or undefined. */
  async expect(
    match: (f: Uint8Array) => boolean,
    timeoutMs = 5000,
  ): Promise<Uint8Array | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#frames.findIndex(match);
      if (i >= 0) return this.#frames.splice(i, 1)[0];
      if (Date.now() > deadline || this.closed) return undefined;
      await sleep(10);
    }
  }

  /** Whether passt closes the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await sleep(10);
    return this.closed;
  }

  /** Close our end and wait for the reader. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
    await this.#pump;
  }
}
