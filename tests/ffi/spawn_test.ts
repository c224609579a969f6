/**
 * Tests for `spawnProcess` and `writeIdMaps` (src/ffi/spawn.ts) and the clone()
 * entry stub under them (src/ffi/clone_stub.ts).
 *
 * Theory of operation: each test spawns a real command (/bin/sh mostly) and
 * looks at what a user would see: its exit status, what it prints through a
 * pipe wired as its stdout, which namespaces /proc/self/ns names from inside it,
 * its signal state in /proc/self/status, or the SysError naming the failed step.
 * Network namespaces are always fresh ones (CLONE_NEWNET, or one made by
 * `unshare -rn` for this test): the host's network is never entered or changed.
 * The stub's bytes are checked against the assembly sources by
 * tests/stub/regen.sh and exercised on x86_64 and aarch64 (qemu) by
 * tests/stub/harness.sh, when the tools are installed.
 */
import assert from "node:assert/strict";
import { type SpawnOptions, spawnProcess, writeIdMaps } from "../../src/ffi/spawn.ts";
import {
  close,
  exitCodeOf,
  open,
  pipe2,
  read,
  sigismember,
  sigprocmask,
  SysError,
  waitpid,
} from "../../src/ffi/sys.ts";
import { CLONE, O, SIG, SIG_HOW } from "../../src/ffi/layout.ts";

const SH = "/bin/sh";
const GREP = ["/usr/bin/grep", "/bin/grep"].find((p) => exists(p)) ?? "/bin/grep";
const ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Wait for `pid` and return its shell-style exit code. */
function reap(pid: number): number {
  const { pid: reaped, status } = waitpid(pid, 0);
  assert.equal(reaped, pid);
  return exitCodeOf(status);
}

/** Everything readable from `fd` until end of file, as text; closes `fd`. */
function drain(fd: number): string {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = read(fd, buf);
    if (n === -4) continue; // EINTR
    assert.ok(n >= 0, `read: errno ${-n}`);
    if (n === 0) break;
    chunks.push(buf.slice(0, n));
  }
  close(fd);
  const all = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new TextDecoder().decode(all);
}

/**
 * Run `script` with sh, its stdout (and stderr) on a pipe; `extra` adds spawn
 * options, `beforeRelease` runs while a `waitForParent` child is held.
 */
function runSh(
  script: string,
  extra: Partial<SpawnOptions> = {},
  beforeRelease?: (pid: number) => void,
): { code: number; out: string } {
  const [outRead, outWrite] = pipe2(O.CLOEXEC);
  let child;
  try {
    child = spawnProcess({
      path: SH,
      argv: ["sh", "-c", script],
      env: ENV,
      ...extra,
      stdio: [null, outWrite, outWrite],
    });
  } finally {
    close(outWrite);
  }
  if (child.waiting) {
    beforeRelease?.(child.pid);
    child.release();
  }
  child.awaitExec();
  const out = drain(outRead);
  return { code: reap(child.pid), out };
}

function nsLink(pid: number | "self", ns: string): string {
  return Deno.readLinkSync(`/proc/${pid}/ns/${ns}`);
}

/** Run `fn` with `signals` blocked on this thread, then restore the previous mask. */
function withBlocked<T>(signals: number[], fn: () => T): T {
  const old = sigprocmask(SIG_HOW.BLOCK, signals);
  try {
    return fn();
  } finally {
    const previous = Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => sigismember(old, s));
    sigprocmask(SIG_HOW.SETMASK, previous);
  }
}

Deno.test("spawn: the child's exit status reaches waitpid", () => {
  const child = spawnProcess({ path: SH, argv: ["sh", "-c", "exit 7"], env: ENV });
  child.awaitExec();
  assert.equal(reap(child.pid), 7);
});

Deno.test("spawn: stdout redirected to a pipe is captured, argv and env arrive", () => {
  const { code, out } = runSh('printf "%s|%s|%s" "$0" "$1" "$GREETING"', {
    argv: ["sh", "-c", 'printf "%s|%s|%s" "$0" "$1" "$GREETING"', "name", "two words"],
    env: [...ENV, "GREETING=hello there"],
  });
  assert.equal(code, 0);
  assert.equal(out, "name|two words|hello there");
});

Deno.test("spawn: a missing executable fails awaitExec with ENOENT naming execve", () => {
  const child = spawnProcess({ path: "/nonexistent/command", argv: ["command"], env: ENV });
  assert.throws(() => child.awaitExec(), (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.call, "execve");
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, /\/nonexistent\/command/);
    return true;
  });
  // The failed child was reaped by awaitExec.
  assert.ok(waitpid(child.pid, 0).pid < 0);
});

Deno.test("spawn: a failing setns names its step; a bad chdir names its path", () => {
  const badNs = spawnProcess({
    path: SH,
    argv: ["sh", "-c", "exit 0"],
    env: ENV,
    setns: [{ fd: 9999, nstype: CLONE.NEWNET }],
  });
  assert.throws(() => badNs.awaitExec(), (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.call, "setns");
    assert.equal(e.code, "EBADF");
    assert.match(e.message, /net namespace, fd 9999/);
    return true;
  });

  const badDir = spawnProcess({
    path: SH,
    argv: ["sh", "-c", "exit 0"],
    env: ENV,
    chdir: "/nonexistent/dir",
  });
  assert.throws(() => badDir.awaitExec(), (e: unknown) => {
    assert.ok(e instanceof SysError);
    assert.equal(e.call, "chdir");
    assert.equal(e.code, "ENOENT");
    assert.match(e.message, /\/nonexistent\/dir/);
    return true;
  });
});

Deno.test("spawn: chdir and setsid apply before exec", () => {
  const { code, out } = runSh(
    // Fields 1 and 6 of /proc/PID/stat: pid and session ID (read by the shell itself).
    'read pid comm state ppid pgrp session rest < /proc/self/stat; echo "$pid $session $(pwd)"',
    { chdir: "/tmp", setsid: true },
  );
  assert.equal(code, 0);
  const [pid, session, cwd] = out.trim().split(" ");
  assert.equal(session, pid, "the shell leads its own session");
  assert.equal(cwd, "/tmp");
});

Deno.test("spawn: closeFrom keeps inherited descriptors from reaching the command", () => {
  const [leakRead, leakWrite] = pipe2(0); // not CLOEXEC: would leak without closeFrom
  try {
    const script = `[ -e /proc/$$/fd/${leakWrite} ] && echo open || echo closed`;
    assert.equal(runSh(script).out.trim(), "open");
    assert.equal(runSh(script, { closeFrom: 3 }).out.trim(), "closed");
  } finally {
    close(leakRead);
    close(leakWrite);
  }
});

Deno.test("spawn: the command gets an empty signal mask and default dispositions", () => {
  // grep itself reads its status: a shell in between would clear its own mask (dash does).
  const grep = (extra: Partial<SpawnOptions> = {}) =>
    runSh("", {
      path: GREP,
      argv: ["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"],
      ...extra,
    });
  const blocked = [SIG.TERM, SIG.INT, SIG.HUP, SIG.CHLD];

  const clean = withBlocked(blocked, () => grep());
  assert.equal(clean.code, 0);
  assert.match(clean.out, /^SigBlk:\s+0{16}$/m);
  // Deno ignores SIGPIPE; an ignored disposition would survive exec.
  assert.match(clean.out, /^SigIgn:\s+0{16}$/m);

  // Opting out keeps the caller's state: HUP, INT, TERM, CHLD are bits 0, 1, 14, 16;
  // SIGPIPE (bit 12) stays ignored.
  const kept = withBlocked(
    blocked,
    () => grep({ resetSignalMask: false, resetSignalDispositions: false }),
  );
  assert.match(kept.out, /^SigBlk:\s+0{11}14003$/m);
  // Whoever started the test may ignore more signals (make does, for signal 32):
  // check only that SIGPIPE's ignored disposition was kept.
  const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]{16})$/m.exec(kept.out)?.[1] ?? "0"}`);
  assert.equal((ignored >> 12n) & 1n, 1n, kept.out);
});

Deno.test("spawn: new user and network namespaces, root after writeIdMaps", () => {
  const { code, out } = runSh(
    "id -u; id -g; readlink /proc/self/ns/net; readlink /proc/self/ns/user",
    { cloneFlags: CLONE.NEWUSER | CLONE.NEWNET, waitForParent: true },
    (pid) => writeIdMaps(pid),
  );
  assert.equal(code, 0);
  const [uid, gid, net, user] = out.trim().split("\n");
  assert.equal(uid, "0");
  assert.equal(gid, "0");
  assert.match(net ?? "", /^net:\[\d+\]$/);
  assert.notEqual(net, nsLink("self", "net"));
  assert.notEqual(user, nsLink("self", "user"));
});

Deno.test("spawn: a held child exits 127 when its parent gives up on it", () => {
  const child = spawnProcess({
    path: SH,
    argv: ["sh", "-c", "exit 0"],
    env: ENV,
    waitForParent: true,
  });
  assert.throws(() => child.awaitExec(), /before release/);
  child.close();
  assert.equal(reap(child.pid), 127);
});

Deno.test("spawn: joining an existing user and network namespace with setns", async () => {
  const target = new Deno.Command("unshare", {
    args: ["-rn", "sleep", "30"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const fds: number[] = [];
  try {
    // unshare execs sleep once it is in its new namespaces.
    const deadline = Date.now() + 5000;
    while (nsLink(target.pid, "net") === nsLink("self", "net")) {
      assert.ok(Date.now() < deadline, "unshare -rn did not enter a new network namespace");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const userFd = open(`/proc/${target.pid}/ns/user`, O.RDONLY | O.CLOEXEC);
    fds.push(userFd);
    const netFd = open(`/proc/${target.pid}/ns/net`, O.RDONLY | O.CLOEXEC);
    fds.push(netFd);

    const { code, out } = runSh("readlink /proc/self/ns/user; readlink /proc/self/ns/net; id -u", {
      setns: [{ fd: userFd, nstype: CLONE.NEWUSER }, { fd: netFd, nstype: CLONE.NEWNET }],
    });
    assert.equal(code, 0);
    const [user, net, uid] = out.trim().split("\n");
    assert.equal(user, nsLink(target.pid, "user"));
    assert.equal(net, nsLink(target.pid, "net"));
    assert.notEqual(net, nsLink("self", "net"));
    assert.equal(uid, "0");
  } finally {
    for (const fd of fds) close(fd);
    target.kill("SIGKILL");
    await target.status;
  }
});

/** Whether every tool is on PATH (the stub checks need cross binutils and qemu-user). */
function haveTools(...tools: string[]): boolean {
  const path = (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":");
  return tools.every((tool) =>
    path.some((dir) => {
      try {
        return Deno.statSync(`${dir}/${tool}`).isFile;
      } catch {
        return false;
      }
    })
  );
}

/** Run a helper script; it must exit 0. */
async function runScript(script: string): Promise<void> {
  const path = new URL(script, import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(path, {
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, text);
}

const STUB_TOOLS = ["as", "objcopy", "aarch64-linux-gnu-as", "aarch64-linux-gnu-objcopy"];

Deno.test({
  name: "clone stub: embedded bytes match the assembly sources",
  ignore: !haveTools(...STUB_TOOLS),
  fn: () => runScript("../stub/regen.sh"),
});

Deno.test({
  name: "clone stub: syscall programs behave on x86_64 and aarch64 (qemu)",
  ignore: !haveTools(...STUB_TOOLS, "gcc", "aarch64-linux-gnu-gcc", "qemu-aarch64-static"),
  fn: () => runScript("../stub/harness.sh"),
});
