// Self-isolation: --runas resolution, the seccomp filter's decisions, and what a
// running passt or pasta worker shows in /proc/PID/status.
import assert from "node:assert/strict";
import {
  DENIED_SYSCALLS,
  denyFilter,
  parseStatus,
  resolveRunAs,
  SYSCALL_NUMBERS,
} from "../src/process/isolation.ts";
import { inPasta, pastaSuiteIgnored } from "./pasta/_pasta.ts";
import { PASST, passtMissing } from "./passt/_passt.ts";
import { sandboxUnavailable, sleep, withSandbox } from "./sandbox/sandbox.ts";

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "alice:x:1001:1002::/home/alice:/bin/sh",
].join("\n");
const GROUP = ["root:x:0:", "nogroup:x:65534:", "staff:x:50:alice"].join("\n");

Deno.test("isolation: --runas names and numbers resolve through passwd and group", () => {
  assert.deepEqual(resolveRunAs({ user: "alice", group: undefined }, PASSWD, GROUP), {
    uid: 1001,
    gid: 1002,
  });
  assert.deepEqual(resolveRunAs({ user: "alice", group: "staff" }, PASSWD, GROUP), {
    uid: 1001,
    gid: 50,
  });
  assert.deepEqual(resolveRunAs({ user: 1001, group: undefined }, PASSWD, GROUP), {
    uid: 1001,
    gid: 1002,
  });
  // A UID without an entry keeps the same number as group.
  assert.deepEqual(resolveRunAs({ user: 4242, group: undefined }, PASSWD, GROUP), {
    uid: 4242,
    gid: 4242,
  });
  assert.deepEqual(resolveRunAs({ user: "nobody", group: 7 }, PASSWD, GROUP), {
    uid: 65534,
    gid: 7,
  });
  assert.throws(
    () => resolveRunAs({ user: "mallory", group: undefined }, PASSWD, GROUP),
    /Invalid user for --runas: mallory/,
  );
  assert.throws(
    () => resolveRunAs({ user: "alice", group: "wheel" }, PASSWD, GROUP),
    /Invalid group for --runas: wheel/,
  );
});

/** Run the classic BPF `filter` on (arch, nr): the filter's return value. */
function runFilter(filter: Uint8Array, arch: number, nr: number): number {
  const view = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  let a = 0;
  for (let pc = 0, steps = 0; steps < 1000; steps++) {
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    if (code === 0x20) a = k === 4 ? arch : nr;
    else if (code === 0x15) pc += (a >>> 0) === k ? jt : jf;
    else if (code === 0x35) pc += (a >>> 0) >= k ? jt : jf;
    else if (code === 0x06) return k;
    else throw new Error(`unexpected BPF opcode ${code}`);
    pc++;
  }
  throw new Error("filter did not return");
}

Deno.test("isolation: the seccomp filter denies the listed calls with EPERM, allows the rest", () => {
  const ALLOW = 0x7fff0000;
  const EPERM = 0x00050001;
  for (const [arch, auditArch] of [["x86_64", 0xc000003e], ["aarch64", 0xc00000b7]] as const) {
    const numbers = SYSCALL_NUMBERS[arch];
    const denied = DENIED_SYSCALLS.map((n) => numbers[n]).filter((n) => n !== undefined);
    const x32 = arch === "x86_64" ? 0x40000000 : undefined;
    const filter = denyFilter(auditArch, denied, x32);
    for (const nr of denied) assert.equal(runFilter(filter, auditArch, nr), EPERM, `${arch} ${nr}`);
    assert.equal(runFilter(filter, auditArch, numbers.execve!), EPERM);
    // read, write, epoll_wait/epoll_pwait, socket: allowed.
    const allowed = arch === "x86_64" ? [0, 1, 232, 41] : [63, 64, 22, 198];
    for (const nr of allowed) {
      assert.equal(runFilter(filter, auditArch, nr), ALLOW, `${arch} ${nr}`);
    }
    // Another ABI (i386 = 0x40000003) never gets through.
    assert.equal(runFilter(filter, 0x40000003, 0), EPERM);
    if (x32 !== undefined) assert.equal(runFilter(filter, auditArch, x32 | 59), EPERM);
  }
  assert.equal(SYSCALL_NUMBERS.x86_64.execve, 59);
  assert.equal(SYSCALL_NUMBERS.aarch64.execve, 221);
});

Deno.test("isolation: /proc status credential lines are parsed", () => {
  const text = "Name:\tdeno\nUid:\t65534\t65534\t65534\t65534\nGid:\t7\t7\t7\t7\n" +
    "CapInh:\t0000000000000000\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\n" +
    "CapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\nSeccomp:\t2\n";
  const t = parseStatus(12, text);
  assert.deepEqual(t.uids, [65534, 65534, 65534, 65534]);
  assert.deepEqual(t.gids, [7, 7, 7, 7]);
  assert.equal(t.permitted, 0x400n);
  assert.equal(t.bounding, 0x1ffffffffffn);
  assert.equal(t.noNewPrivs, true);
  assert.equal(t.seccomp, 2);
});

/** The credential lines of every thread of `pid`, read from the outside. */
function threadStatuses(pid: number) {
  return [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) =>
    parseStatus(Number(e.name), Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/status`))
  );
}

const decoder = new TextDecoder();

/** Whether this test runs as root in the initial user namespace with `unshare`. */
function realRootUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return "not running as root";
  const map = Deno.readTextFileSync("/proc/self/uid_map").trim().split(/\s+/);
  if (map.join(" ") !== "0 0 4294967295") return "not in the initial user namespace";
  try {
    const out = new Deno.Command("unshare", { args: ["--net", "true"] }).outputSync();
    return out.success ? undefined : "unshare --net fails";
  } catch {
    return "unshare is not installed";
  }
}

/**
 * Start passt as real root in a network namespace of its own (a veth pair for
 * its host interface, nothing reaches the machine's network) in the background
 * with `args`; returns its PID (from -P) and a function that ends it.
 */
async function startRootPasst(dir: string, args: readonly string[]) {
  const script = [
    "ip link set lo up",
    "ip link add eth0 type veth peer name eth1",
    "ip addr add 192.0.2.2/24 dev eth0",
    "ip link set eth0 up && ip link set eth1 up",
    "ip route add default via 192.0.2.1",
    `exec "$@"`,
  ].join("\n");
  const holder = new Deno.Command("unshare", {
    args: ["--net", "sh", "-c", `${script}\n`, "sh", PASST, "-f", ...args],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const pidFile = `${dir}/pid`;
  for (let i = 0; i < 150; i++) {
    try {
      const text = Deno.readTextFileSync(pidFile).trim();
      if (text.length > 0) return { pid: Number(text), process: holder };
    } catch {
      // not yet
    }
    await sleep(100);
  }
  holder.kill("SIGKILL");
  const out = await holder.output();
  throw new Error(`passt did not start: ${decoder.decode(out.stderr)}`);
}

Deno.test({
  name: "isolation: passt started as real root runs as nobody, without capabilities, filtered",
  ignore: realRootUnavailable() !== undefined || passtMissing() !== undefined,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "passt-isolation-" });
    const { pid, process } = await startRootPasst(dir, [
      "-s",
      `${dir}/sock`,
      "-P",
      `${dir}/pid`,
    ]);
    try {
      const threads = threadStatuses(pid);
      assert.ok(threads.length > 1, "Deno runs several threads");
      for (const t of threads) {
        assert.deepEqual(t.uids, [65534, 65534, 65534, 65534], `thread ${t.tid}`);
        assert.equal(t.effective, 0n, `thread ${t.tid} CapEff`);
        assert.equal(t.permitted, 0n, `thread ${t.tid} CapPrm`);
        assert.equal(t.inheritable, 0n, `thread ${t.tid} CapInh`);
        assert.equal(t.bounding & ~0x400n, 0n, `thread ${t.tid} CapBnd`);
        assert.equal(t.noNewPrivs, true, `thread ${t.tid} NoNewPrivs`);
        assert.equal(t.seccomp, 2, `thread ${t.tid} Seccomp`);
      }
      const groups = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^Groups:(.*)$/m)?.[1];
      assert.equal(groups?.trim(), "");
      // The socket was handed to the new user, who can remove it at exit.
      assert.equal(Deno.statSync(`${dir}/sock`).uid, 65534);
    } finally {
      process.kill("SIGTERM");
      const out = await process.output();
      await Deno.remove(dir, { recursive: true });
      assert.match(decoder.decode(out.stderr), /changed to nobody/);
    }
  },
});

Deno.test({
  name: "isolation: passt --runas UID:GID as real root takes that identity",
  ignore: realRootUnavailable() !== undefined || passtMissing() !== undefined,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "passt-isolation-" });
    const { pid, process } = await startRootPasst(dir, [
      "--runas",
      "4321:4322",
      "-s",
      `${dir}/sock`,
      "-P",
      `${dir}/pid`,
    ]);
    try {
      const [main] = threadStatuses(pid);
      assert.deepEqual(main?.uids, [4321, 4321, 4321, 4321]);
      assert.deepEqual(main?.gids, [4322, 4322, 4322, 4322]);
      assert.equal(main?.seccomp, 2);
    } finally {
      process.kill("SIGTERM");
      await process.output();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "isolation: --runas with an unknown user or group is refused at start",
  ignore: passtMissing() !== undefined,
  fn: async () => {
    for (
      const [value, message] of [
        ["nosuchuser", "passt: Invalid user for --runas: nosuchuser (no such user)"],
        ["nobody:nosuchgroup", "passt: Invalid group for --runas: nosuchgroup (no such group)"],
      ]
    ) {
      const out = await new Deno.Command(PASST, {
        args: ["-f", "--runas", value!, "-s", "/nonexistent/sock"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 1);
      assert.equal(decoder.decode(out.stderr).trim(), message);
    }
  },
});

Deno.test({
  name: "isolation: passt as root of a user namespace keeps its user, drops the rest",
  ignore: sandboxUnavailable() !== undefined || passtMissing() !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const p = await sb.spawn([PASST, "-f", "-s", `${sb.dir}/sock`], { timeoutMs: 60_000 });
      try {
        let status = "";
        const ready = await sb.waitFor(
          async () => {
            const r = await sb.run(["cat", `/proc/${p.pid}/status`]);
            status = r.stdout;
            return /^Seccomp:\s*2$/m.test(status);
          },
          20_000,
          200,
        );
        assert.ok(ready, `no seccomp filter:\n${status}`);
        const t = parseStatus(p.pid, status);
        assert.deepEqual(t.uids, [0, 0, 0, 0]);
        assert.equal(t.effective & ~0x400n, 0n);
        assert.equal(t.permitted & ~0x400n, 0n);
        assert.equal(t.bounding & ~0x400n, 0n);
        assert.equal(t.noNewPrivs, true);
      } finally {
        await p.kill();
      }
    }),
});

Deno.test({
  name: "isolation: the pasta worker drops capabilities and runs under seccomp, its command not",
  ignore: pastaSuiteIgnored() !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      // The command's parent is the worker; every thread of it is checked.
      const r = await inPasta(
        sb,
        ["--config-net"],
        'for t in /proc/$PPID/task/*; do cat "$t/status"; echo ===; done; ' +
          "echo SELF; cat /proc/self/status; " +
          "echo MOUNTS; cat /proc/$PPID/mountinfo; echo OWN; test -x /bin/sh && echo files",
      );
      assert.equal(r.code, 0, r.stderr);
      const [statusPart, mountPart] = r.stdout.split("MOUNTS");
      const [workerPart, selfPart] = statusPart!.split("SELF");
      // The worker's root is an empty read-only tmpfs; the command keeps the files.
      const [workerMounts, own] = mountPart!.split("OWN");
      const mounts = workerMounts!.trim().split("\n");
      assert.equal(mounts.length, 1, workerMounts);
      assert.match(mounts[0]!, / \/ ro,.* - tmpfs /);
      assert.equal(own!.trim(), "files", "the command sees the filesystem");
      const threads = workerPart!.split("===").filter((s) => s.includes("Uid:"));
      assert.ok(threads.length > 1, r.stdout);
      for (const text of threads) {
        const t = parseStatus(0, text);
        assert.equal(t.effective & ~0x400n, 0n, text);
        assert.equal(t.permitted & ~0x400n, 0n, text);
        assert.equal(t.inheritable, 0n, text);
        assert.equal(t.bounding & ~0x400n, 0n, text);
        assert.equal(t.noNewPrivs, true, text);
        assert.equal(t.seccomp, 2, text);
      }
      const self = parseStatus(0, selfPart!);
      assert.equal(self.seccomp, 0);
      assert.notEqual(self.effective, 0n);
    }),
});
