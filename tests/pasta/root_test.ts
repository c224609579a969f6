/**
 * pasta started by real root (issue 3: "as root and as an unprivileged user"). Each
 * test builds a root sandbox (`withSandbox(fn, { root: true })`: the network of
 * tests/sandbox/ in new network, mount and PID namespaces, but no user namespace), so
 * pasta runs as root of the initial user namespace, as a system service or `sudo pasta`
 * would, without anything reaching the machine's real interfaces.
 *
 * What differs as root: the process serving a namespace it joins (`--netns`) switches
 * to nobody or the --runas user, then sets no_new_privs and its seccomp filter; the one
 * serving a namespace it made for a command stays root of that new user namespace, with
 * no capabilities (man/pasta.1, "Security"). The rest must work as it does for a user:
 * --config-net, exit status, ping, DHCP, quitting when the namespace goes.
 *
 * Skipped, with the reason on stderr, unless this runs as root in the initial user
 * namespace (CI does).
 */

import assert from "node:assert/strict";
import {
  NET,
  rootSandboxUnavailable,
  type RunOptions,
  type Sandbox,
  withSandbox,
} from "../sandbox/sandbox.ts";
import {
  assertHostAddressesAndRoutes,
  dhclient,
  IF,
  inPasta,
  IP_STATE,
  type Json,
  needs,
  PASTA,
  pasta,
  pastaSuiteIgnored,
  sections,
  show,
} from "./_pasta.ts";

const suiteIgnored = rootSandboxUnavailable() ?? pastaSuiteIgnored();
if (suiteIgnored) console.error(`tests/pasta/root_test.ts ignored: ${suiteIgnored}`);

/** pasta and the commands around it run as sandbox root: the machine's root here. */
const AS_ROOT: RunOptions = { user: false };

/** Registers a test in a root sandbox, ignored when it cannot run or a tool is missing. */
function rootTest(name: string, tools: string[], fn: (sb: Sandbox) => Promise<void>): void {
  const missing = needs(...tools);
  if (!suiteIgnored && missing) console.error(`pasta as root: ${name}: ignored: ${missing}`);
  Deno.test({
    name: `pasta as root: ${name}`,
    ignore: suiteIgnored !== undefined || missing !== undefined,
    fn: () =>
      withSandbox(async (sb) => {
        // What the whole file is about: pasta starts as uid 0 of the initial namespace.
        const who = await sb.run(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
        assert.equal(who.code, 0, show(who));
        assert.deepEqual(who.stdout.trim().split(/\s+/), ["0", "0", "0", "4294967295"]);
        await fn(sb);
      }, { root: true }),
  });
}

/** The value of `name:` in a /proc/PID/status text ("" if absent). */
function statusField(text: string, name: string): string {
  return text.match(new RegExp(`^${name}:[ \\t]*(.*)$`, "m"))?.[1]?.trim() ?? "";
}

/** A capability set of a /proc/PID/status text, as a number. */
function capabilities(text: string, name: string): bigint {
  return BigInt(`0x${statusField(text, name) || "0"}`);
}

/** CAP_NET_BIND_SERVICE: the one capability pasta may keep, for low ports bound later. */
const NET_BIND_SERVICE = 1n << 10n;

/** Uid and gid of `nobody`, which root switches to without --runas. */
function nobody(): { uid: number; gid: number } {
  const passwd = Deno.readTextFileSync("/etc/passwd");
  const entry = passwd.split("\n").map((l) => l.split(":")).find((f) => f[0] === "nobody");
  return entry && entry.length >= 4
    ? { uid: Number(entry[2]), gid: Number(entry[3]) }
    : { uid: 65534, gid: 65534 };
}

// --- pasta COMMAND ------------------------------------------------------------------------

rootTest("--config-net: the host's addresses and routes, MTU 65520", ["ip"], async (sb) => {
  const r = await inPasta(
    sb,
    ["--config-net"],
    `${IP_STATE}; echo '--- link'; ip -j link show`,
    AS_ROOT,
  );
  assert.equal(r.code, 0, show(r));
  const s = sections(r.stdout);
  assert.deepEqual(s.addr.map((l: Json) => l.ifname).sort(), ["eth0", "lo"], r.stdout);
  const link = s.link.find((l: Json) => l.ifname === IF);
  assert.equal(link?.mtu, 65520, r.stdout);
  assert.ok(link.flags.includes("UP"), `${IF} is not up: ${link.flags}`);
  assertHostAddressesAndRoutes(s);
});

rootTest(
  "the worker serving a command's namespace has no capabilities and runs under seccomp",
  [],
  async (sb) => {
    // The command's parent is the worker; every thread of it is checked.
    const r = await inPasta(
      sb,
      ["--config-net"],
      'for t in /proc/$PPID/task/*; do cat "$t/status"; echo ===; done; ' +
        "echo MAP; cat /proc/$PPID/uid_map",
      AS_ROOT,
    );
    assert.equal(r.code, 0, show(r));
    const [workerPart, map] = r.stdout.split("MAP");
    // Root of the user namespace it made, not of the initial one.
    assert.notDeepEqual(map!.trim().split(/\s+/), ["0", "0", "4294967295"], r.stdout);
    const threads = workerPart!.split("===").filter((t) => t.includes("Uid:"));
    assert.ok(threads.length > 1, r.stdout);
    for (const t of threads) {
      const tid = statusField(t, "Pid");
      assert.equal(capabilities(t, "CapEff") & ~NET_BIND_SERVICE, 0n, `thread ${tid}:\n${t}`);
      assert.equal(capabilities(t, "CapPrm") & ~NET_BIND_SERVICE, 0n, `thread ${tid}:\n${t}`);
      assert.equal(capabilities(t, "CapInh"), 0n, `thread ${tid}:\n${t}`);
      assert.equal(statusField(t, "NoNewPrivs"), "1", `thread ${tid}:\n${t}`);
      assert.equal(statusField(t, "Seccomp"), "2", `thread ${tid}:\n${t}`);
    }
  },
);

rootTest("the command's exit status is pasta's", [], async (sb) => {
  for (const status of [0, 7, 77]) {
    const started = Date.now();
    const r = await pasta(sb, ["--config-net", "--", "sh", "-c", `exit ${status}`], {
      ...AS_ROOT,
      timeoutMs: 15_000,
    });
    assert.equal(r.code, status, show(r));
    assert.ok(Date.now() - started < 10_000, "pasta outlived its command");
  }
});

rootTest("ping from the namespace: gateway and remote host, IPv4 and IPv6", [
  "ping",
], async (sb) => {
  const targets = [NET.gateway4, NET.remote4, NET.gateway6, NET.remote6];
  const script = targets.map((t) => `ping -c1 -W2 ${t} || echo "FAILED ${t}"`).join("\n");
  const r = await inPasta(sb, ["--config-net"], script, { ...AS_ROOT, timeoutMs: 30_000 });
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stdout, /FAILED/, show(r));
  for (const t of targets) assert.match(r.stdout, new RegExp(`bytes from ${t}`), show(r));
});

rootTest(
  "run by an unprivileged user of the machine (uid 1000, /dev/net/tun 0666): root inside, ping",
  ["ping"],
  async (sb) => {
    const script = `id -u; cat /proc/self/uid_map; ip -j addr show; ` +
      `ping -c1 -W2 ${NET.gateway4} >/dev/null && echo PING4; ` +
      `ping -c1 -W2 ${NET.remote6} >/dev/null && echo PING6; exit 5`;
    const r = await inPasta(sb, ["--config-net"], script, { user: true, timeoutMs: 30_000 });
    assert.equal(r.code, 5, show(r));
    const [uid, map] = r.stdout.split("\n");
    assert.equal(uid, "0", "the caller is root in the namespace pasta made");
    assert.deepEqual(map!.trim().split(/\s+/), ["0", "1000", "1"], "mapped to uid 1000");
    assert.match(r.stdout, new RegExp(`"local":"${NET.host4.replaceAll(".", "\\.")}"`));
    assert.match(r.stdout, /^PING4$/m, show(r));
    assert.match(r.stdout, /^PING6$/m, show(r));
  },
);

rootTest("dhclient -4 without --config-net: address, router, MTU", ["dhclient"], async (sb) => {
  const env = await dhclient(sb, "-4", [], AS_ROOT);
  assert.equal(env.new_ip_address, NET.host4);
  assert.equal(env.new_subnet_mask, "255.255.255.0");
  assert.equal(env.new_routers, NET.gateway4);
  assert.equal(env.new_interface_mtu, "65520");
});

// --- pasta --netns NAME ---------------------------------------------------------------------

/**
 * `ip netns add NAME`, then pasta `args` --config-net --netns NAME -P FILE in the
 * background: checks that it started, that every thread of the process serving the
 * namespace runs as `uid`:`gid` without supplementary groups or capabilities, with
 * no_new_privs and a seccomp filter, that ping reaches the gateway through it, and that
 * it quits within 5 s of `ip netns del NAME`.
 */
async function joinAsRoot(
  sb: Sandbox,
  name: string,
  args: readonly string[],
  uid: number,
  gid: number,
): Promise<void> {
  const add = await sb.run(["ip", "netns", "add", name]);
  assert.equal(add.code, 0, show(add));
  const pidFile = `${sb.dir}/${name}.pid`;
  const start = await sb.run([PASTA, ...args, "--config-net", "--netns", name, "-P", pidFile], {
    timeoutMs: 15_000,
  });
  // Also fails if the background process kept the caller's stdout or stderr open.
  assert.equal(start.code, 0, show(start));
  const pid = Number((await Deno.readTextFile(pidFile).catch(() => "")).trim());
  assert.ok(pid > 0, `no PID in ${pidFile}: ${show(start)}`);

  let threads: string[] = [];
  const filtered = await sb.waitFor(async () => {
    const r = await sb.run([
      "sh",
      "-c",
      `for t in /proc/${pid}/task/*; do cat "$t/status" && echo ===; done`,
    ], { timeoutMs: 5000 });
    threads = r.stdout.split("===").filter((t) => t.includes("Uid:"));
    return threads.length > 0 && threads.every((t) => statusField(t, "Seccomp") === "2");
  }, 10_000);
  assert.ok(filtered, `pasta ${pid} is not filtered:\n${threads.join("===")}\n${show(start)}`);
  assert.ok(threads.length > 1, "Deno runs several threads");
  for (const t of threads) {
    const what = `thread ${statusField(t, "Pid")}:\n${t}`;
    const ids = (field: string) => statusField(t, field).split(/\s+/).map(Number);
    assert.deepEqual(ids("Uid"), [uid, uid, uid, uid], what);
    assert.deepEqual(ids("Gid"), [gid, gid, gid, gid], what);
    assert.equal(statusField(t, "Groups"), "", what);
    assert.equal(capabilities(t, "CapEff") & ~NET_BIND_SERVICE, 0n, what);
    assert.equal(capabilities(t, "CapPrm") & ~NET_BIND_SERVICE, 0n, what);
    assert.equal(statusField(t, "NoNewPrivs"), "1", what);
    assert.equal(statusField(t, "Seccomp"), "2", what);
  }

  // Its root is an empty read-only tmpfs in a mount namespace of its own.
  const mounts = await sb.run(["cat", `/proc/${pid}/mountinfo`]);
  assert.equal(mounts.code, 0, show(mounts));
  const lines = mounts.stdout.trim().split("\n");
  assert.equal(lines.length, 1, mounts.stdout);
  assert.match(lines[0]!, / \/ ro,.* - tmpfs /);

  for (const target of [NET.gateway4, NET.gateway6]) {
    const ping = await sb.run(["ip", "netns", "exec", name, "ping", "-c1", "-W2", target]);
    assert.equal(ping.code, 0, `ping ${target} in ${name}: ${show(ping)}`);
  }

  assert.ok(await sb.alive(pid), `pasta ${pid} ended before its namespace was removed`);
  const del = await sb.run(["ip", "netns", "del", name]);
  assert.equal(del.code, 0, show(del));
  assert.ok(
    await sb.waitFor(async () => !(await sb.alive(pid)), 5000),
    `pasta ${pid} still runs 5 s after ip netns del ${name}`,
  );
}

rootTest("--netns NAME: switches to nobody, filtered, serves it, quits with it", [
  "ip",
  "ping",
], async (sb) => {
  const { uid, gid } = nobody();
  assert.notEqual(uid, 0);
  await joinAsRoot(sb, "x", [], uid, gid);
});

rootTest("--runas UID:GID --netns NAME: the process serving it takes that identity", [
  "ip",
  "ping",
], (sb) => joinAsRoot(sb, "y", ["--runas", "4321:4322"], 4321, 4322));
