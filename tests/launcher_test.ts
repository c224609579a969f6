// The built programs (./passt and ./pasta from `make`): help, version, errors,
// going to the background with a PID file, and ending on SIGTERM.
import assert from "node:assert/strict";
import { optionNames } from "../src/config/options.ts";
import { REFUSED_OPTIONS, SUPPORTED_OPTIONS } from "../src/main.ts";
import { VERSION } from "../src/version.ts";

const root = new URL("..", import.meta.url).pathname;
const passt = `${root}passt`;
const pasta = `${root}pasta`;

function requireBuilt(): void {
  for (const p of [passt, pasta]) {
    try {
      Deno.statSync(p);
    } catch {
      throw new Error(`${p} is missing: run 'make' first (make check does)`);
    }
  }
}

/** Run a program to completion (bounded), stdin closed, collecting its output. */
async function run(
  program: string,
  args: string[],
  timeoutMs = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  // output() returns only at EOF on both pipes: a background worker that kept
  // our stdout or stderr open would make this time out.
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat); // a zombie is as good as gone
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !alive(pid);
}

Deno.test("passt --help prints the usage and exits 0", async () => {
  requireBuilt();
  const r = await run(passt, ["--help"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /passt/);
  assert.match(r.stdout, /--socket/);
  assert.doesNotMatch(r.stdout, /--netns/, "pasta-only options are not in passt's help");
});

Deno.test("pasta --version prints the version and exits 0", async () => {
  requireBuilt();
  const r = await run(pasta, ["--version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.startsWith(`pasta ${VERSION}`), r.stdout);
});

Deno.test("an unknown option gets getopt's wording and exit status 1", async () => {
  requireBuilt();
  const r = await run(pasta, ["--map-guest-adr", "1.2.3.4"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split("\n")[0], "pasta: unrecognized option '--map-guest-adr'");
});

Deno.test("every option the parser knows has an effect: none is refused as not built", () => {
  for (const mode of ["passt", "pasta"] as const) {
    // Migration is refused on purpose (next test), not "not built yet".
    const refused = optionNames(mode).filter((name) =>
      !SUPPORTED_OPTIONS[mode].has(name) && !REFUSED_OPTIONS.has(name)
    );
    assert.deepEqual(refused, [], `${mode}: options still refused`);
  }
});

Deno.test("migration options are refused clearly, with status 1", async () => {
  requireBuilt();
  // --vhost-user and --print-capabilities work (tests/passt/vhost_user_test.ts).
  const refused = [...REFUSED_OPTIONS];
  assert.deepEqual(refused.sort(), ["migrate-exit", "migrate-no-linger", "repair-path"]);
  for (const args of [["--repair-path", "/tmp/r"], ["--vhost-user", "--repair-path", "/tmp/r"]]) {
    const r = await run(passt, ["-f", ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(
      r.stderr.trim(),
      "passt: --repair-path: not supported (no live migration in this implementation)",
    );
  }
  for (const option of ["--migrate-exit", "--migrate-no-linger"]) {
    const r = await run(passt, ["-f", "--vhost-user", option]);
    assert.equal(r.code, 1, option);
    assert.match(r.stderr, /not supported \(no live migration/);
  }
});

Deno.test("--runas naming a user that does not exist is refused at start", async () => {
  requireBuilt();
  const r = await run(passt, ["-f", "--runas", "nosuchuser"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), "passt: Invalid user for --runas: nosuchuser (no such user)");
});

Deno.test("passt goes to the background, writes the worker's PID, and ends on SIGTERM", async () => {
  requireBuilt();
  const dir = Deno.makeTempDirSync();
  // Started as root, passt becomes nobody, who must still reach and remove its socket.
  Deno.chmodSync(dir, 0o1777);
  const socketPath = `${dir}/passt.socket`;
  const pidFile = `${dir}/passt.pid`;
  let pid = 0;
  try {
    const r = await run(passt, ["-s", socketPath, "-P", pidFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`UNIX domain socket bound at ${socketPath}`));
    pid = Number(Deno.readTextFileSync(pidFile).trim());
    assert.ok(pid > 0 && alive(pid), `PID file names a running process (${pid})`);
    assert.ok(Deno.statSync(socketPath).isSocket, "the socket exists once the starter exits");
    // The worker is in its own session and no longer holds our stdio (run() saw EOF).
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
    assert.equal(Number(stat[3]), pid, "the worker leads its own session");
    // It runs in namespaces of its own, its root an empty read-only tmpfs.
    const mounts = Deno.readTextFileSync(`/proc/${pid}/mountinfo`).trim().split("\n");
    assert.equal(mounts.length, 1, mounts.join("\n"));
    assert.match(mounts[0]!, / \/ ro,.* - tmpfs /);
    for (const ns of ["mnt", "pid", "ipc", "uts"]) {
      assert.notEqual(
        Deno.readLinkSync(`/proc/${pid}/ns/${ns}`),
        Deno.readLinkSync(`/proc/self/ns/${ns}`),
        `${ns} namespace`,
      );
    }
    assert.match(Deno.readTextFileSync(`/proc/${pid}/status`), /^NSpid:\s+\d+\s+1$/m);
    Deno.kill(pid, "SIGTERM");
    assert.ok(await waitGone(pid, 10_000), "the worker exits on SIGTERM");
    // Without a filesystem it can't remove the socket file (nor can the C passt):
    // the next passt finds nobody accepting there and takes the path over.
    const again = await run(passt, ["-s", socketPath, "-P", pidFile]);
    assert.equal(again.code, 0, again.stderr);
    pid = Number(Deno.readTextFileSync(pidFile).trim());
    assert.ok(alive(pid), "a new passt reuses the stale socket path");
    Deno.kill(pid, "SIGTERM");
    assert.ok(await waitGone(pid, 10_000), "the second worker exits on SIGTERM");
  } finally {
    if (pid > 0 && alive(pid)) Deno.kill(pid, "SIGKILL");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--chroot-fallback: where pivot_root fails, chroot into the empty root instead", async () => {
  requireBuilt();
  // Under this seccomp wrapper pivot_root(2) fails with EINVAL, as on an initramfs root.
  const noPivot = new URL("./_no_pivot_root.py", import.meta.url).pathname;
  const dir = Deno.makeTempDirSync();
  Deno.chmodSync(dir, 0o1777);
  let pid = 0;
  try {
    const failed = await run("python3", [noPivot, passt, "-s", `${dir}/a.socket`]);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /pivot_root\(\.\): Invalid argument \(EINVAL\)/);
    const pidFile = `${dir}/b.pid`;
    const r = await run("python3", [
      noPivot,
      passt,
      "--chroot-fallback",
      "-s",
      `${dir}/b.socket`,
      "-P",
      pidFile,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /pivot_root\(\.\): Invalid argument \(EINVAL\): --chroot-fallback/);
    pid = Number(Deno.readTextFileSync(pidFile).trim());
    assert.ok(pid > 0 && alive(pid), `the worker runs (${pid})`);
    // Its root is the empty tmpfs all the same.
    assert.deepEqual([...Deno.readDirSync(`/proc/${pid}/root`)], [], "an empty root");
    const mounts = Deno.readTextFileSync(`/proc/${pid}/mountinfo`).trim().split("\n");
    assert.match(mounts.at(-1)!, / \/ ro,.* - tmpfs /);
    Deno.kill(pid, "SIGTERM");
    assert.ok(await waitGone(pid, 10_000), "the worker exits on SIGTERM");
  } finally {
    if (pid > 0 && alive(pid)) Deno.kill(pid, "SIGKILL");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("passt -f stays in the foreground with its own PID and exits 0 on SIGTERM", async () => {
  requireBuilt();
  const dir = Deno.makeTempDirSync();
  const socketPath = `${dir}/fg.socket`;
  const pidFile = `${dir}/fg.pid`;
  const child = new Deno.Command(passt, {
    args: ["-f", "-s", socketPath, "-P", pidFile],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).spawn();
  try {
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      try {
        if (Deno.readTextFileSync(pidFile).endsWith("\n")) break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 25));
    }
    const pid = Number(Deno.readTextFileSync(pidFile).trim());
    // The launcher execs Deno, which may exec itself once more to block signals:
    // the PID stays the one we started.
    assert.equal(pid, child.pid);
    child.kill("SIGTERM");
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.equal(status.success, true);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.stderr.cancel();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a second passt on a busy socket path fails with status 1", async () => {
  requireBuilt();
  const dir = Deno.makeTempDirSync();
  const socketPath = `${dir}/busy.socket`;
  const pidFile = `${dir}/busy.pid`;
  let pid = 0;
  try {
    const first = await run(passt, ["-s", socketPath, "-P", pidFile]);
    assert.equal(first.code, 0, first.stderr);
    pid = Number(Deno.readTextFileSync(pidFile).trim());
    const second = await run(passt, ["-s", socketPath]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /cannot bind UNIX domain socket at .*busy\.socket/);
    assert.ok(alive(pid), "the first instance is unaffected");
  } finally {
    if (pid > 0) Deno.kill(pid, "SIGTERM");
    if (pid > 0) await waitGone(pid, 10_000);
    Deno.removeSync(dir, { recursive: true });
  }
});
