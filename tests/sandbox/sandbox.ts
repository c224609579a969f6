/**
 * A throwaway network for integration tests, which never touches the machine's own.
 *
 * `withSandbox(fn)` starts `unshare --user --map-root-user --net --mount --pid --fork
 * --mount-proc` running setup.sh, which builds (see the drawing there):
 *
 * - HOST, the sandbox's own network namespace, where pasta runs: eth0 192.0.2.2/24 and
 *   2001:db8:1::2/64, default routes via 192.0.2.1 and 2001:db8:1::1, MTU 1500, and an
 *   /etc/resolv.conf with `nameserver 192.0.2.1`, `nameserver 2001:db8:1::1`,
 *   `search example.test` (a bind mount: seen only in the sandbox);
 * - REMOTE (/run/netns/remote), the gateway at the other end of the veth pair:
 *   192.0.2.1/24, 2001:db8:1::1/64, and a host beyond it, 203.0.113.1 and 2001:db8:2::1;
 * - an unprivileged user (uid 1000 in a user namespace of its own), to run pasta as
 *   people do: `run(cmd, { user: true })`.
 *
 * Commands enter the sandbox with nsenter (about 40 ms each), wrapped in coreutils
 * `timeout`; every process started in it is in its PID namespace, whose init is held by
 * a pipe from this process: when `withSandbox` returns, throws, or this process dies,
 * the pipe closes, init exits and the kernel kills whatever is left.
 *
 * Paths are the same inside and outside (only /run is private), so `sb.dir`, a
 * temporary directory removed at the end, is the place for files both sides read.
 *
 * `withSandbox(fn, { root: true })` builds the same network without the user
 * namespace, for a caller that is root in the initial user namespace
 * (`rootSandboxUnavailable()` says whether it is): sandbox root is then the machine's
 * real root, as when pasta is started by root or a system service, and
 * `{ user: true }` runs as uid and gid 1000 of the machine, without capabilities. The
 * network, mount and PID namespaces are still new: setup.sh refuses to build anything
 * in the caller's own, and `withSandbox` checks again before handing the sandbox out.
 */

const SETUP = new URL("./setup.sh", import.meta.url).pathname;

/** Uid of the sandbox's unprivileged user, inside its user namespace. */
export const SANDBOX_USER_ID = 1000;

/** The addresses setup.sh gives the two ends; tests compare against these. */
export const NET = {
  hostIfname: "eth0",
  host4: "192.0.2.2",
  host6: "2001:db8:1::2",
  prefix4: 24,
  prefix6: 64,
  gateway4: "192.0.2.1",
  gateway6: "2001:db8:1::1",
  /** An address of the remote namespace beyond the gateway (on its loopback). */
  remote4: "203.0.113.1",
  remote6: "2001:db8:2::1",
  hostMtu: 1500,
  nameservers: ["192.0.2.1", "2001:db8:1::1"],
  search: ["example.test"],
} as const;

/** How a sandbox is made. */
export interface SandboxOptions {
  /**
   * No user namespace: sandbox root is the machine's root (the caller must be root in
   * the initial user namespace; see `rootSandboxUnavailable`).
   */
  readonly root?: boolean;
}

/** How a command runs in the sandbox. */
export interface RunOptions {
  /**
   * As the unprivileged user, not sandbox root: uid 1000 in its own user namespace, or
   * in a root sandbox the machine's uid and gid 1000, without supplementary groups.
   */
  readonly user?: boolean;
  /** In the remote namespace instead of the host one (as sandbox root). */
  readonly remote?: boolean;
  /** Killed (TERM, then KILL 2 s later) after this many milliseconds; default 20000. */
  readonly timeoutMs?: number;
  /** Text written to the command's stdin, which is then closed. */
  readonly stdin?: string;
  /** Extra environment variables (PATH, HOME=sb.dir, LC_ALL=C are always set). */
  readonly env?: Readonly<Record<string, string>>;
}

/** What a finished command did. */
export interface RunResult {
  /** Exit status; 128 + N for a signal N; 124 when `timeout` stopped it. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** True when the time limit ended it. */
  readonly timedOut: boolean;
}

/** A long-running process in the sandbox. */
export interface SandboxProcess {
  /** Its PID inside the sandbox's PID namespace (what `kill` and `pasta PID` take). */
  readonly pid: number;
  /** Settles when it exits, with everything it printed. */
  readonly result: Promise<RunResult>;
  /** Sends a signal (default TERM) if it still runs. */
  kill(signal?: string): Promise<void>;
  /** Whether it still runs (a zombie does not count). */
  alive(): Promise<boolean>;
}

/** The sandbox handed to `withSandbox`'s callback. */
export interface Sandbox {
  /** A temporary directory, same path inside and outside, removed at the end. */
  readonly dir: string;
  /** Runs a command to completion (never throws on a non-zero status). */
  run(cmd: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** `run` in the remote namespace. */
  runRemote(cmd: readonly string[], opts?: Omit<RunOptions, "remote">): Promise<RunResult>;
  /** Starts a command in the background; it is killed at the end at the latest. */
  spawn(cmd: readonly string[], opts?: RunOptions): Promise<SandboxProcess>;
  /** Whether sandbox PID `pid` exists and is not a zombie. */
  alive(pid: number): Promise<boolean>;
  /** Polls `check` every `intervalMs` until it returns true or `timeoutMs` passes. */
  waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs?: number): Promise<boolean>;
}

const DEFAULT_TIMEOUT_MS = 20_000;
const READY_TIMEOUT_MS = 15_000;
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const TOOLS = ["unshare", "nsenter", "setpriv", "ip", "timeout", "perl"];

/**
 * Why sandboxes cannot be made here, or undefined when they can: for
 * `Deno.test({ ignore })`. Checks the tools and that user namespaces are allowed.
 */
export function sandboxUnavailable(): string | undefined {
  for (const tool of TOOLS) {
    const found = PATH.split(":").some((dir) => {
      try {
        return Deno.statSync(`${dir}/${tool}`).isFile;
      } catch {
        return false;
      }
    });
    if (!found) return `${tool} is not installed`;
  }
  try {
    const out = new Deno.Command("unshare", {
      args: ["--user", "--map-root-user", "--net", "--mount", "true"],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!out.success) {
      return `unshare cannot make user namespaces: ${new TextDecoder().decode(out.stderr).trim()}`;
    }
  } catch (e) {
    return `unshare failed: ${e}`;
  }
  return undefined;
}

/**
 * Why root sandboxes (`withSandbox(fn, { root: true })`) cannot be made here, or
 * undefined when they can: for `Deno.test({ ignore })`. Needs the same tools, and
 * root in the initial user namespace (whose uid_map maps every id to itself).
 */
export function rootSandboxUnavailable(): string | undefined {
  const sandbox = sandboxUnavailable();
  if (sandbox) return sandbox;
  if (Deno.uid() !== 0) return `not running as root (uid ${Deno.uid()})`;
  let map: string;
  try {
    map = Deno.readTextFileSync("/proc/self/uid_map").trim().split(/\s+/).join(" ");
  } catch (e) {
    return `cannot read /proc/self/uid_map: ${e}`;
  }
  if (map !== "0 0 4294967295") return `not in the initial user namespace (uid_map ${map})`;
  try {
    const out = new Deno.Command("unshare", {
      args: ["--net", "--mount", "true"],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (!out.success) {
      return `unshare cannot make namespaces as root: ${
        new TextDecoder().decode(out.stderr).trim()
      }`;
    }
  } catch (e) {
    return `unshare failed: ${e}`;
  }
  return undefined;
}

const decoder = new TextDecoder();

/** What /proc/PID/ns/NAME links to ("net:[4026531840]"). */
function namespaceOf(pid: number | "self", name: "net" | "mnt"): string {
  return Deno.readLinkSync(`/proc/${pid}/ns/${name}`);
}

/**
 * Runs `fn` with a fresh sandbox (a root one with `{ root: true }`), and tears the
 * sandbox down however `fn` ends.
 */
export async function withSandbox<T>(
  fn: (sb: Sandbox) => Promise<T>,
  options: SandboxOptions = {},
): Promise<T> {
  const root = options.root === true;
  const outerNet = namespaceOf("self", "net");
  const outerMnt = namespaceOf("self", "mnt");
  const dir = await Deno.makeTempDir({ prefix: "passt-sandbox-" });
  // The root sandbox's user is uid 1000 of the machine: let it use the directory too.
  if (root) await Deno.chmod(dir, 0o1777);
  const init = new Deno.Command("unshare", {
    args: [
      ...(root ? [] : ["--user", "--map-root-user"]),
      "--net",
      "--mount",
      "--pid",
      "--fork",
      "--mount-proc",
      "--propagation",
      "private",
      "sh",
      SETUP,
    ],
    env: {
      PATH,
      LC_ALL: "C",
      SANDBOX_USER_ID: String(SANDBOX_USER_ID),
      SANDBOX_ROOT: root ? "1" : "0",
      SANDBOX_OUTER_NET: outerNet,
      SANDBOX_OUTER_MNT: outerMnt,
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = init.stdin.getWriter();
  const stderrText = new Response(init.stderr).text();
  const processes = new Set<SandboxProcess>();
  try {
    await waitReady(init.stdout, READY_TIMEOUT_MS, stderrText, init.status);
    const initPid = await sandboxInitPid(init.pid);
    // Every command enters init's namespaces: they must not be ours.
    if (namespaceOf(initPid, "net") === outerNet || namespaceOf(initPid, "mnt") === outerMnt) {
      throw new Error(`sandbox init ${initPid} shares this process's namespaces`);
    }
    const sb = makeSandbox(initPid, dir, processes, root);
    return await fn(sb);
  } finally {
    for (const p of processes) await p.kill("KILL").catch(() => {});
    await stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        init.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5_000);
    await init.status;
    clearTimeout(timer);
    await stderrText.catch(() => "");
    await Promise.allSettled([...processes].map((p) => p.result));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Reads the init's stdout until "ready"; throws with its stderr if it fails or hangs. */
async function waitReady(
  stdout: ReadableStream<Uint8Array>,
  timeoutMs: number,
  stderr: Promise<string>,
  status: Promise<Deno.CommandStatus>,
): Promise<void> {
  const reader = stdout.getReader();
  let seen = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (!seen.includes("ready\n")) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") throw new Error(`sandbox setup took over ${timeoutMs} ms`);
      if (next.done) {
        const code = (await status).code;
        throw new Error(`sandbox setup failed (status ${code}): ${await stderr}`);
      }
      seen += decoder.decode(next.value);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
    // Nothing more comes from init: let the pipe close.
    await stdout.cancel().catch(() => {});
  }
}

/** The PID (outside) of unshare's forked child: process 1 of the sandbox. */
async function sandboxInitPid(unsharePid: number): Promise<number> {
  const children = (await Deno.readTextFile(`/proc/${unsharePid}/task/${unsharePid}/children`))
    .trim().split(/\s+/).filter((s) => s !== "");
  if (children.length !== 1) throw new Error(`unshare has children [${children}], not one`);
  return Number(children[0]);
}

function makeSandbox(
  initPid: number,
  dir: string,
  processes: Set<SandboxProcess>,
  root: boolean,
): Sandbox {
  /** nsenter argv that runs `cmd` where `opts` says, under `timeout`. */
  const argv = (cmd: readonly string[], opts: RunOptions): string[] => {
    const seconds = ((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000).toFixed(1);
    const enter = ["-t", String(initPid), "--net", "--mount", "--pid"];
    if (!root) enter.push("--user", "--preserve-credentials");
    enter.push("--");
    const user = root
      ? [
        "setpriv",
        `--reuid=${SANDBOX_USER_ID}`,
        `--regid=${SANDBOX_USER_ID}`,
        "--clear-groups",
        "--",
      ]
      : [
        "nsenter",
        "--user=/run/sandbox/userns",
        "--preserve-credentials",
        "--",
        "setpriv",
        `--reuid=${SANDBOX_USER_ID}`,
        `--regid=${SANDBOX_USER_ID}`,
        "--keep-groups",
        "--",
      ];
    const where = opts.remote
      ? ["nsenter", "--net=/run/netns/remote", "--"]
      : opts.user
      ? user
      : [];
    return [...enter, ...where, "timeout", "-k", "2", seconds, ...cmd];
  };

  const command = (cmd: readonly string[], opts: RunOptions, stdin: boolean) =>
    new Deno.Command("nsenter", {
      args: argv(cmd, opts),
      env: { PATH, HOME: dir, LC_ALL: "C", ...opts.env },
      clearEnv: true,
      cwd: dir,
      stdin: stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    });

  const collect = async (
    child: Deno.ChildProcess,
    opts: RunOptions,
  ): Promise<RunResult> => {
    const started = Date.now();
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const limit = timeoutMs + 10_000;
    // Backstop in case nsenter itself hangs: `timeout` inside should have acted.
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, limit);
    try {
      const out = await child.output();
      const code = out.signal ? 128 + signalNumber(out.signal) : out.code;
      return {
        code,
        stdout: decoder.decode(out.stdout),
        stderr: decoder.decode(out.stderr),
        timedOut: code === 124 || (code === 137 && Date.now() - started >= timeoutMs),
      };
    } finally {
      clearTimeout(timer);
    }
  };

  const run = async (cmd: readonly string[], opts: RunOptions = {}): Promise<RunResult> => {
    const child = command(cmd, opts, opts.stdin !== undefined).spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    return await collect(child, opts);
  };

  const alive = async (pid: number): Promise<boolean> => {
    const r = await run(["sh", "-c", `cat /proc/${pid}/stat 2>/dev/null`], { timeoutMs: 5000 });
    // Field 3, after the parenthesised name, is the state: Z is a zombie, X dead.
    const state = r.stdout.slice(r.stdout.lastIndexOf(")") + 2, r.stdout.lastIndexOf(")") + 3);
    return r.code === 0 && state !== "" && state !== "Z" && state !== "X";
  };

  let spawned = 0;
  const spawn = async (cmd: readonly string[], opts: RunOptions = {}): Promise<SandboxProcess> => {
    const pidFile = `${dir}/.spawn-${++spawned}.pid`;
    const wrapped = ["sh", "-c", 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"', pidFile];
    const child = command([...wrapped, ...cmd], opts, false).spawn();
    const result = collect(child, opts);
    let pid = 0;
    for (let i = 0; i < 500 && pid === 0; i++) {
      try {
        pid = Number((await Deno.readTextFile(pidFile)).trim());
      } catch {
        const early = await Promise.race([result, sleep(10).then(() => undefined)]);
        if (early) throw new Error(`${cmd.join(" ")} exited at once: ${early.stderr}`);
      }
    }
    if (!pid) throw new Error(`${cmd.join(" ")}: no PID within 5 s`);
    const proc: SandboxProcess = {
      pid,
      result,
      kill: async (signal = "TERM") => {
        if (await alive(pid)) await run(["kill", `-${signal}`, String(pid)], { timeoutMs: 5000 });
      },
      alive: () => alive(pid),
    };
    processes.add(proc);
    result.finally(() => processes.delete(proc));
    return proc;
  };

  const waitFor = async (
    check: () => Promise<boolean>,
    timeoutMs: number,
    intervalMs = 100,
  ): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      if (await check()) return true;
      if (Date.now() >= deadline) return false;
      await sleep(intervalMs);
    }
    return false;
  };

  return {
    dir,
    run,
    runRemote: (cmd, opts = {}) => run(cmd, { ...opts, remote: true }),
    spawn,
    alive,
    waitFor,
  };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGALRM: 14,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 0;
}
