/**
 * Drop-in contracts: each test replays, in the sandbox network (tests/sandbox/), the exact
 * argv a tool that runs passt or pasta uses, the way that tool runs it, then checks real
 * traffic and a clean teardown.
 *
 * - Podman (rootless, --network=pasta): podman makes a network namespace, bind-mounts it
 *   at a path, and runs pasta inside its rootless user namespace as uid 0 there; sandbox
 *   root is exactly that (uid 0 of a user namespace that maps the caller). pasta must
 *   exit 0 once ready (it goes to the background), with its stdout and stderr closed, so
 *   that podman's read to EOF ends. Podman tears down by unmounting (MNT_DETACH) and
 *   removing the path: pasta must then quit by itself.
 * - rootlesskit: a child holding a new user and network namespace, then pasta run as the
 *   unprivileged user with --userns/--netns /proc/PID/ns/... (or the bare PID); pasta
 *   must quit when the child exits.
 * - libvirt: `passt --one-off --socket ... --pid ...`, exit 0 when ready, then the guest
 *   connects; after it disconnects passt quits by itself.
 * - QEMU `-netdev passt`: one end of a socketpair as fd 3 of `passt --quiet --pid FILE
 *   --fd 3`, exit 0 when ready, then SIGTERM to the PID in the file.
 * - Errors: exit status 1 and the first line of stderr for an unknown option, a bad port
 *   and a missing namespace, compared with Debian's C programs when they are installed.
 *
 * Podman itself is not run: Debian 12's podman (4.3.1) has no --network=pasta (added in
 * Podman 4.4: "unable to find network with name or ID pasta"), and its crun cannot start
 * containers on this cgroup layout ("cgroups in hybrid mode not supported"). The argv and
 * the way it is run are podman 5's (pkg/network/pasta in containers/common).
 *
 * The stand-ins for the guest and servers are tests/contracts/contract.py and
 * tests/pasta/transport.py. PASTA_UNDER_TEST and PASST_UNDER_TEST select the binaries
 * (default ./pasta and ./passt); the same tests run against Debian's C ones to validate
 * them, and the places where those differ are marked with cPastaDiffers().
 */

import assert from "node:assert/strict";
import { NET, type Sandbox, sleep, withSandbox } from "./sandbox/sandbox.ts";
import {
  cPastaDiffers,
  IS_C_PASTA,
  needs,
  PASTA,
  pastaSuiteIgnored,
  PYTHON,
  show,
} from "./pasta/_pasta.ts";
import { PASST, passtMissing } from "./passt/_passt.ts";

const HELPER = new URL("./contracts/contract.py", import.meta.url).pathname;
const TRANSPORT = new URL("./pasta/transport.py", import.meta.url).pathname;

/** Debian's C programs, when installed: the reference for the error contract. */
const C_PASTA = "/usr/bin/pasta";
const C_PASST = "/usr/bin/passt";

const TOOLS = ["python3", "ss", "ps", "umount"];

const pastaIgnored = pastaSuiteIgnored() ?? needs(...TOOLS);
const passtIgnored = pastaSuiteIgnored() ?? passtMissing() ?? needs(...TOOLS);
if (pastaIgnored) console.error(`tests/contracts_test.ts (pasta) ignored: ${pastaIgnored}`);
if (passtIgnored) console.error(`tests/contracts_test.ts (passt) ignored: ${passtIgnored}`);

// deno-lint-ignore no-explicit-any
type Json = any;

/** The one JSON object a helper printed last. */
function json(stdout: string): Json {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    return { unparsable: stdout };
  }
}

/**
 * Where a command runs: the sandbox host (as its root, or as the unprivileged user), the
 * remote namespace, or inside `nsenter ARGS` (as root, or as the user).
 */
type Where =
  | "host"
  | "user"
  | "remote"
  | { readonly enter: readonly string[]; readonly user?: boolean };

function argvIn(where: Where, cmd: readonly string[]): string[] {
  return typeof where === "string" ? [...cmd] : ["nsenter", ...where.enter, "--", ...cmd];
}

function optsIn(where: Where, timeoutMs: number) {
  return {
    remote: where === "remote",
    user: where === "user" || (typeof where !== "string" && where.user === true),
    timeoutMs,
  };
}

/** Runs a helper subcommand where told; returns its JSON (with the run for messages). */
async function helper(
  sb: Sandbox,
  where: Where,
  script: string,
  args: readonly (string | number)[],
): Promise<{ out: Json; text: string }> {
  const r = await sb.run(
    argvIn(where, [PYTHON, script, ...args.map(String)]),
    optsIn(where, 40_000),
  );
  return { out: json(r.stdout), text: show(r) };
}

/** Starts a helper server where told and waits (bounded) for its READY file. */
async function server(
  sb: Sandbox,
  where: Where,
  script: string,
  args: readonly (string | number)[],
  ready: string,
) {
  const p = await sb.spawn(
    argvIn(where, [PYTHON, script, ...args.map(String), ready]),
    optsIn(where, 40_000),
  );
  const up = await sb.waitFor(
    async () => {
      try {
        await Deno.stat(ready);
        return true;
      } catch {
        return false;
      }
    },
    10_000,
    20,
  );
  assert.ok(up, `server ${args.join(" ")} never became ready`);
  return p;
}

/** What a tool saw when it ran a daemon: exit status, output read to EOF. */
interface ToolRun {
  readonly status: number | null;
  /** stdout and stderr both reached EOF within the bound (the daemon let them go). */
  readonly eof: boolean;
  /** Seconds until EOF (or the bound). */
  readonly seconds: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The whole run, for assertion messages. */
  readonly text: string;
}

/**
 * Runs `argv` as podman, rootlesskit and libvirt do (they wait for the exit status and
 * read stdout and stderr to EOF), bounded: a daemon that kept them open fails `eof`
 * instead of hanging the test.
 */
async function asTool(sb: Sandbox, where: "host" | "user", argv: readonly string[]) {
  const r = await helper(sb, where, HELPER, ["tool-run", 20, ...argv]);
  return { ...r.out, text: r.text } as ToolRun;
}

/** Asserts that a daemon started by a tool exited 0 once ready, with its output closed. */
function assertReady(run: ToolRun, quiet: boolean): void {
  assert.equal(run.status, 0, `exits 0 once ready: ${run.text}`);
  assert.equal(run.eof, true, `closes its stdout and stderr when it detaches: ${run.text}`);
  assert.ok(run.seconds < 15, `ready within 15 s: ${run.text}`);
  if (quiet) {
    assert.equal(run.stdout, "", `--quiet: nothing on stdout: ${run.text}`);
    assert.equal(run.stderr, "", `--quiet: nothing on stderr: ${run.text}`);
  }
}

/** Whether TCP (or UDP) `port` listens in the sandbox's host namespace. */
async function listening(sb: Sandbox, port: number, udp = false): Promise<boolean> {
  const r = await sb.run(["ss", "-Hln", udp ? "-u" : "-t"]);
  return new RegExp(`:${port}\\s`).test(r.stdout);
}

/**
 * PIDs of processes whose command line contains `marker`, other than the wrappers the
 * test itself runs (timeout, sh, nsenter, ps): how a test finds a daemon without --pid.
 */
async function pidsWith(sb: Sandbox, marker: string): Promise<number[]> {
  const r = await sb.run(["ps", "-eo", "pid=,stat=,args="]);
  return r.stdout.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) =>
    f.length > 3 && !f[1]!.startsWith("Z") && !/^(timeout|sh|nsenter|ps)$/.test(f[2]!) &&
    f.slice(2).join(" ").includes(marker)
  ).map((f) => Number(f[0]));
}

/** Waits (bounded) until `pid` is gone; true if it went. */
function gone(sb: Sandbox, pid: number, timeoutMs: number): Promise<boolean> {
  return sb.waitFor(async () => !(await sb.alive(pid)), timeoutMs, 100);
}

/** The interfaces of a namespace as `ip -j addr` reports them. */
async function ipAddr(sb: Sandbox, enter: Where): Promise<Json[]> {
  const r = await sb.run(argvIn(enter, ["ip", "-j", "addr", "show"]), optsIn(enter, 10_000));
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout);
}

async function ipRoutes(sb: Sandbox, enter: Where, family: 4 | 6): Promise<Json[]> {
  const r = await sb.run(
    argvIn(enter, ["ip", "-j", `-${family}`, "route", "show"]),
    optsIn(enter, 10_000),
  );
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout);
}

/** "ADDR/LEN" of every address of family `family` on `link`. */
function addressesOf(links: Json[], ifname: string, family: "inet" | "inet6"): string[] {
  const link = links.find((l) => l.ifname === ifname);
  return (link?.addr_info ?? []).filter((a: Json) => a.family === family).map((a: Json) =>
    `${a.local}/${a.prefixlen}`
  );
}

/** TCP of `size` bytes from `from` to ADDR:PORT, checked by SHA-256 at a sink at `to`. */
async function tcpTransfer(
  sb: Sandbox,
  from: Where,
  to: Where,
  bind: string,
  listenPort: number,
  connect: string,
  connectPort: number,
  size: number,
  ready: string,
): Promise<Json> {
  const sink = await server(sb, to, HELPER, ["tcp-sink", bind, listenPort], ready);
  const sent = await helper(sb, from, HELPER, ["tcp-send", connect, connectPort, size]);
  const received = await sink.result;
  assert.equal(sent.out.ok, true, `TCP to ${connect}:${connectPort}: ${sent.text}`);
  const got = json(received.stdout);
  assert.equal(got.received, size, `TCP sink: ${show(received)}`);
  return got;
}

/** One UDP datagram from `from` to ADDR:PORT and its echo from `to`. */
async function udpExchange(
  sb: Sandbox,
  from: Where,
  to: Where,
  bind: string,
  listenPort: number,
  connect: string,
  connectPort: number,
  ready: string,
): Promise<Json> {
  const echo = await server(sb, to, TRANSPORT, ["udp-echo", bind, listenPort], ready);
  const ping = await helper(sb, from, TRANSPORT, ["udp-ping", connect, connectPort]);
  await echo.kill();
  return { ...ping.out, text: ping.text };
}

// --- Podman --------------------------------------------------------------------------------

/** The argv Podman 5 (rootless, --network=pasta, -p 8080:80 -p 5353:53/udp) runs. */
function podmanArgs(netns: string, pidFile?: string): string[] {
  const args = [
    "--config-net",
    "-t",
    "8080:80",
    "-u",
    "5353:53",
    "--dns-forward",
    "169.254.1.1",
    "-T",
    "none",
    "-U",
    "none",
    "--no-map-gw",
    "--quiet",
    "--netns",
    netns,
  ];
  // Debian's C pasta (2023) predates --map-guest-addr: validation runs without it.
  if (!IS_C_PASTA) args.push("--map-guest-addr", "169.254.1.2");
  if (pidFile !== undefined) args.push("--pid", pidFile);
  return args;
}

/** Creates a network namespace bind-mounted at `path`, as `ip netns add` and podman do. */
async function makeNetns(sb: Sandbox, path: string): Promise<void> {
  const r = await sb.run(["sh", "-c", `touch "$0" && unshare --net="$0" true`, path]);
  assert.equal(r.code, 0, `netns at ${path}: ${show(r)}`);
}

/** Podman's teardown: unmount (MNT_DETACH) and remove the namespace's path. */
async function removeNetns(sb: Sandbox, path: string): Promise<void> {
  const r = await sb.run(["sh", "-c", `umount -l "$0" && rm -f "$0"`, path]);
  assert.equal(r.code, 0, `removing ${path}: ${show(r)}`);
}

/** Runs pasta with Podman's argv as Podman does; returns pasta's PID. */
async function startPodmanPasta(sb: Sandbox, netns: string, pidFile?: string): Promise<number> {
  assertReady(await asTool(sb, "host", [PASTA, ...podmanArgs(netns, pidFile)]), true);
  if (pidFile !== undefined) {
    const pid = Number((await Deno.readTextFile(pidFile)).trim());
    assert.ok(pid > 1 && await sb.alive(pid), `the PID in ${pidFile} (${pid}) runs`);
    return pid;
  }
  const pids = await pidsWith(sb, netns);
  assert.equal(pids.length, 1, `one pasta process for ${netns}: ${pids}`);
  return pids[0]!;
}

Deno.test({
  name: "contract: podman (rootless, --network=pasta): addresses, -t/-u, outbound, netns removal",
  ignore: pastaIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const netns = `${sb.dir}/netns-podman`;
      await makeNetns(sb, netns);
      const pid = await startPodmanPasta(sb, netns);
      const ns: Where = { enter: [`--net=${netns}`] };

      // The namespace as --config-net leaves it: the host's address, MTU, routes.
      const links = await ipAddr(sb, ns);
      const tap = links.find((l) => l.ifname !== "lo");
      assert.ok(tap, `a tap device in the namespace: ${JSON.stringify(links)}`);
      assert.equal(tap.ifname, NET.hostIfname, "named as the host's interface");
      assert.equal(tap.mtu, 65520);
      assert.ok(tap.flags.includes("UP"), "the tap is up");
      assert.deepEqual(addressesOf(links, tap.ifname, "inet"), [`${NET.host4}/${NET.prefix4}`]);
      assert.ok(
        addressesOf(links, tap.ifname, "inet6").includes(`${NET.host6}/${NET.prefix6}`),
        `IPv6 address: ${addressesOf(links, tap.ifname, "inet6")}`,
      );
      const routes4 = await ipRoutes(sb, ns, 4);
      assert.ok(
        routes4.some((r) => r.dst === "default" && r.gateway === NET.gateway4),
        `IPv4 default route via ${NET.gateway4}: ${JSON.stringify(routes4)}`,
      );
      const routes6 = await ipRoutes(sb, ns, 6);
      assert.ok(
        routes6.some((r) => r.dst === "default" && r.gateway === NET.gateway6),
        `IPv6 default route via ${NET.gateway6}: ${JSON.stringify(routes6)}`,
      );

      // -t 8080:80 and -u 5353:53, from the host side as `curl localhost:8080` would.
      assert.ok(await listening(sb, 8080), "-t 8080 listens on the host");
      assert.ok(await listening(sb, 5353, true), "-u 5353 listens on the host");
      await tcpTransfer(sb, "host", ns, "0.0.0.0", 80, "127.0.0.1", 8080, 1 << 20, `${sb.dir}/t1`);
      await tcpTransfer(sb, "host", ns, "0.0.0.0", 80, NET.host4, 8080, 1 << 20, `${sb.dir}/t2`);
      const udp = await udpExchange(
        sb,
        "host",
        ns,
        "0.0.0.0",
        53,
        "127.0.0.1",
        5353,
        `${sb.dir}/u1`,
      );
      if (IS_C_PASTA && udp.same !== true) {
        cPastaDiffers(`UDP through -u 5353:53 got no echo (${udp.text})`);
      } else {
        assert.equal(udp.same, true, `UDP through -u 5353:53: ${udp.text}`);
      }

      // Outbound from the container: TCP and UDP to a host beyond the gateway.
      await tcpTransfer(
        sb,
        ns,
        "remote",
        NET.remote4,
        9000,
        NET.remote4,
        9000,
        256 << 10,
        `${sb.dir}/t3`,
      );
      const out = await udpExchange(
        sb,
        ns,
        "remote",
        NET.remote4,
        9001,
        NET.remote4,
        9001,
        `${sb.dir}/u2`,
      );
      assert.equal(out.same, true, `UDP from the namespace: ${out.text}`);
      assert.equal(out.from, NET.remote4);

      // --dns-forward 169.254.1.1: queries reach the host's first resolver (192.0.2.1).
      await server(sb, "remote", TRANSPORT, ["dns-stub", NET.gateway4], `${sb.dir}/dns`);
      const dns = await helper(sb, ns, TRANSPORT, ["dns-query", "169.254.1.1"]);
      assert.deepEqual(dns.out, {
        from: "169.254.1.1",
        port: 53,
        id_ok: true,
        answer: "198.51.100.77",
      }, dns.text);

      // --map-guest-addr 169.254.1.2 (host.containers.internal): the host at the
      // address the container has.
      if (IS_C_PASTA) {
        cPastaDiffers("--map-guest-addr is not an option of Debian's C pasta");
      } else {
        const got = await tcpTransfer(
          sb,
          ns,
          "host",
          NET.host4,
          9100,
          "169.254.1.2",
          9100,
          4096,
          `${sb.dir}/t4`,
        );
        assert.equal(got.peer, NET.host4, "the host sees the connection from its own address");
      }

      // Podman's teardown: the namespace path goes, pasta follows by itself.
      assert.ok(await sb.alive(pid), "pasta still runs before the teardown");
      await removeNetns(sb, netns);
      assert.ok(await gone(sb, pid, 10_000), "pasta quits within 10 s of the netns removal");
      assert.equal(await listening(sb, 8080), false, "the -t port is released");
      assert.equal(await listening(sb, 5353, true), false, "the -u port is released");
    }),
});

Deno.test({
  name: "contract: podman with --pid FILE: the PID in the file, teardown by SIGTERM",
  ignore: pastaIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const netns = `${sb.dir}/netns-podman`;
      const pidFile = `${sb.dir}/pasta.pid`;
      await makeNetns(sb, netns);
      const pid = await startPodmanPasta(sb, netns, pidFile);
      assert.deepEqual(await pidsWith(sb, netns), [pid], "the file names the pasta that runs");
      const ns: Where = { enter: [`--net=${netns}`] };
      await tcpTransfer(sb, "host", ns, "0.0.0.0", 80, "127.0.0.1", 8080, 64 << 10, `${sb.dir}/t1`);

      const kill = await sb.run(["kill", "-TERM", String(pid)]);
      assert.equal(kill.code, 0, show(kill));
      assert.ok(await gone(sb, pid, 5_000), "pasta quits within 5 s of SIGTERM");
      assert.equal(await listening(sb, 8080), false, "the -t port is released");
      const still = await sb.run(["nsenter", `--net=${netns}`, "true"]);
      assert.equal(still.code, 0, "the namespace, podman's, is left alone");
      await removeNetns(sb, netns);
    }),
});

/**
 * The argv Podman 5.4 runs for `-p 5927:5927 -p 5928:5928/udp` with the container's
 * addresses named per IP version, --map-guest-addr for IPv4 only.
 */
function podman54Args(netns: string): string[] {
  const args = ["--config-net"];
  for (const host of [NET.host4, NET.host6]) {
    args.push("-t", `${host}/5927-5927:5927-5927`, "-u", `${host}/5928-5928:5928-5928`);
  }
  args.push("--dns-forward", "169.254.1.1", "--no-map-gw", "--quiet", "--netns", netns);
  if (!IS_C_PASTA) args.push("--map-guest-addr", "169.254.1.2");
  return args;
}

Deno.test({
  name: "contract: podman 5.4: IPv4 and IPv6 -t/-u from the host's address; only copied addresses",
  ignore: pastaIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const netns = `${sb.dir}/netns-podman`;
      await makeNetns(sb, netns);
      assertReady(await asTool(sb, "host", [PASTA, ...podman54Args(netns)]), true);
      const ns: Where = { enter: [`--net=${netns}`] };

      // Published ports hit at once, from the host's own addresses (which the
      // container has too): no gateway mapping, and a guest mapping for IPv4 only.
      const t4 = await tcpTransfer(
        sb,
        "host",
        ns,
        "0.0.0.0",
        5927,
        NET.host4,
        5927,
        1 << 20,
        `${sb.dir}/t4`,
      );
      if (!IS_C_PASTA) assert.equal(t4.peer, "169.254.1.2", "IPv4: the --map-guest-addr address");
      const t6 = await tcpTransfer(
        sb,
        "host",
        ns,
        "::",
        5927,
        NET.host6,
        5927,
        1 << 20,
        `${sb.dir}/t6`,
      );
      assert.match(t6.peer, /^fe80::/, "IPv6: from pasta's link-local address, as the C pasta");
      const small = await tcpTransfer(
        sb,
        "host",
        ns,
        "::",
        5927,
        NET.host6,
        5927,
        10,
        `${sb.dir}/s6`,
      );
      assert.match(small.peer, /^fe80::/);
      for (const [bind, addr, tag] of [["0.0.0.0", NET.host4, "u4"], ["::", NET.host6, "u6"]]) {
        const udp = await udpExchange(sb, "host", ns, bind!, 5928, addr!, 5928, `${sb.dir}/${tag}`);
        assert.equal(udp.same, true, `UDP to ${addr}:5928: ${udp.text}`);
        assert.equal(udp.from, addr, "the echo comes back from the address the client used");
      }

      // The namespace as Podman's users see it after a while: the copied global
      // address only (no SLAAC address from router advertisements), one default
      // route, and a link-local address that was never tentative.
      await sleep(3000);
      const links = await ipAddr(sb, ns);
      assert.deepEqual(
        addressesOf(links, NET.hostIfname, "inet6").filter((a) => !a.startsWith("fe80:")),
        [`${NET.host6}/${NET.prefix6}`],
        JSON.stringify(links),
      );
      const tap = links.find((l) => l.ifname === NET.hostIfname);
      const linkLocal = (tap?.addr_info ?? []).filter((a: Json) => a.scope === "link");
      assert.equal(linkLocal.length, 1, JSON.stringify(tap));
      assert.equal(linkLocal[0].tentative, undefined, "the link-local address is usable at once");
      assert.equal(linkLocal[0].dadfailed, undefined);
      const routes6 = await ipRoutes(sb, ns, 6);
      const defaults = routes6.filter((r) => r.dst === "default");
      assert.deepEqual(
        defaults.map((r) => r.gateway),
        [NET.gateway6],
        `one default route, the copied one: ${JSON.stringify(routes6)}`,
      );
      assert.equal(routes6.filter((r) => r.protocol === "ra").length, 0, JSON.stringify(routes6));
      await removeNetns(sb, netns);
    }),
});

// --- rootlesskit -------------------------------------------------------------------------

/** The argv rootlesskit's pasta driver runs (without the target, which varies). */
const ROOTLESSKIT_ARGS = [
  "--stderr",
  "--ns-ifname=tap0",
  "--mtu=65520",
  "--config-net",
  "--address=10.0.2.100",
  "--netmask=24",
  "--gateway=10.0.2.2",
  "--dns-forward=10.0.2.3",
  "--tcp-ports=none",
  "--udp-ports=none",
];

async function rootlesskitContract(sb: Sandbox, target: (pid: number) => string[]) {
  // The child rootlesskit makes: new user and network namespaces, as the user.
  const holder = await sb.spawn(["unshare", "-rn", "sleep", "60"], {
    user: true,
    timeoutMs: 70_000,
  });
  const isChild = await sb.waitFor(
    async () => {
      const r = await sb.run(["readlink", `/proc/${holder.pid}/ns/net`, "/proc/1/ns/net"]);
      const [child, init] = r.stdout.trim().split("\n");
      return r.code === 0 && child !== init;
    },
    5_000,
    20,
  );
  assert.ok(isChild, "the holder is in its own network namespace");

  const marker = [...ROOTLESSKIT_ARGS, ...target(holder.pid)].join(" ");
  assertReady(await asTool(sb, "user", [PASTA, ...ROOTLESSKIT_ARGS, ...target(holder.pid)]), false);
  const pids = await pidsWith(sb, marker);
  assert.equal(pids.length, 1, `one pasta for ${marker}: ${pids}`);
  const pid = pids[0]!;

  const ns: Where = {
    enter: ["-t", String(holder.pid), "--user", "--net", "--preserve-credentials"],
    user: true,
  };
  const links = await ipAddr(sb, ns);
  const tap0 = links.find((l) => l.ifname === "tap0");
  assert.ok(tap0, `tap0 in the namespace: ${JSON.stringify(links)}`);
  assert.equal(tap0.mtu, 65520);
  assert.ok(tap0.flags.includes("UP"), "tap0 is up");
  assert.deepEqual(addressesOf(links, "tap0", "inet"), ["10.0.2.100/24"]);
  const routes = await ipRoutes(sb, ns, 4);
  assert.ok(
    routes.some((x) => x.dst === "default" && x.gateway === "10.0.2.2" && x.dev === "tap0"),
    `default route via 10.0.2.2 on tap0: ${JSON.stringify(routes)}`,
  );
  const got = await tcpTransfer(
    sb,
    ns,
    "remote",
    NET.remote4,
    9000,
    NET.remote4,
    9000,
    256 << 10,
    `${sb.dir}/t1`,
  );
  assert.equal(got.peer, NET.host4, "the remote end sees the host's address");

  // rootlesskit's teardown: its child exits, pasta must follow.
  await holder.kill("KILL");
  if (IS_C_PASTA && !(await gone(sb, pid, 5_000))) {
    cPastaDiffers("pasta does not quit when the namespace's process ends");
    return;
  }
  assert.ok(await gone(sb, pid, 10_000), "pasta quits within 10 s of the child's exit");
}

Deno.test({
  name: "contract: rootlesskit: --userns/--netns /proc/PID/ns/..., tap0, outbound TCP, exit",
  ignore: pastaIgnored !== undefined,
  fn: () =>
    withSandbox((sb) =>
      rootlesskitContract(
        sb,
        (pid) => [`--userns=/proc/${pid}/ns/user`, `--netns=/proc/${pid}/ns/net`],
      )
    ),
});

Deno.test({
  name: "contract: rootlesskit, bare PID: tap0, outbound TCP, exit with the process",
  ignore: pastaIgnored !== undefined,
  fn: () => withSandbox((sb) => rootlesskitContract(sb, (pid) => [String(pid)])),
});

// --- libvirt and QEMU --------------------------------------------------------------------

/** The lease passt hands out in the sandbox with --mtu 65520 (or the default). */
function assertLease(lease: Json, text: string): void {
  assert.deepEqual(lease, {
    address: NET.host4,
    netmask: "255.255.255.0",
    router: [NET.gateway4],
    dns: [NET.nameservers[0]],
    mtu: 65520,
  }, text);
}

Deno.test({
  name: "contract: libvirt: passt --one-off --socket --pid, DHCP, exit after the guest leaves",
  ignore: passtIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const socket = `${sb.dir}/dom-net0.socket`;
      const pidFile = `${sb.dir}/dom-net0.pid`;
      const run = await asTool(sb, "user", [
        PASST,
        "--one-off",
        "--socket",
        socket,
        "--pid",
        pidFile,
        "--mtu",
        "65520",
        "--tcp-ports",
        "2222:22",
        "--udp-ports",
        "5353:53",
      ]);
      assertReady(run, false);
      const pid = Number((await Deno.readTextFile(pidFile)).trim());
      assert.ok(pid > 1 && await sb.alive(pid), `the PID in ${pidFile} (${pid}) runs`);
      assert.ok((await Deno.stat(socket)).isSocket, "the socket exists once passt is ready");
      assert.ok(await listening(sb, 2222), "--tcp-ports 2222 listens");
      assert.ok(await listening(sb, 5353, true), "--udp-ports 5353 listens");

      const guest = await helper(sb, "user", HELPER, ["stream-dhcp", socket]);
      assertLease(guest.out.lease, guest.text);

      assert.ok(await gone(sb, pid, 10_000), "--one-off: passt quits once the guest leaves");
      assert.equal(await listening(sb, 2222), false, "the forwarded port is released");
      // In the background both passt's run in an empty root and can't remove the
      // socket file: whatever is left must be stale, nobody accepting on it.
      const left = await Deno.stat(socket).then(() => true, () => false);
      if (left) {
        const probe = await sb.run(["socat", "-u", "OPEN:/dev/null", `UNIX-CONNECT:${socket}`]);
        assert.notEqual(probe.code, 0, "nothing accepts on the socket file left behind");
      }
    }),
});

Deno.test({
  name: "contract: qemu -netdev passt: --quiet --pid --fd 3, DHCP, SIGTERM",
  ignore: passtIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const pidFile = `${sb.dir}/passt.pid`;
      const r = await helper(sb, "user", HELPER, [
        "qemu-fd",
        pidFile,
        PASST,
        "--quiet",
        "--pid",
        pidFile,
        "--fd",
        "3",
      ]);
      const out = r.out;
      assert.equal(out.status, 0, `passt exits 0 once ready: ${r.text}`);
      assert.equal(out.stdout, "", "--quiet: nothing on stdout");
      assert.equal(out.stderr, "", "--quiet: nothing on stderr");
      assert.equal(out.alive, true, `the PID in the file runs: ${r.text}`);
      assertLease(out.lease, r.text);
      assert.equal(out.gone_after_term, true, `passt quits on SIGTERM: ${r.text}`);
    }),
});

// --- errors --------------------------------------------------------------------------------

/** A failing invocation: arguments, and what the first line says after the program name. */
interface ErrorCase {
  readonly args: readonly string[];
  /** Our first line, after "PROGRAM: ": exactly, or its start. */
  readonly line: string | RegExp;
}

const PASTA_ERRORS: ErrorCase[] = [
  { args: ["--bogus"], line: "unrecognized option '--bogus'" },
  { args: ["-t", "99999"], line: /^Invalid port specifier .*99999/ },
  {
    args: ["--netns", "/nonexistent/ns"],
    line: /^Couldn't open network namespace \/nonexistent\/ns\b/,
  },
];
const PASST_ERRORS: ErrorCase[] = [
  { args: ["--bogus"], line: "unrecognized option '--bogus'" },
  { args: ["-t", "99999"], line: /^Invalid port specifier .*99999/ },
];

/** The first stderr line that is not C passt's complaint about syslog, and the status. */
async function firstError(sb: Sandbox, binary: string, args: readonly string[]) {
  const r = await sb.run([binary, ...args], { user: true, timeoutMs: 20_000 });
  const line = r.stderr.split("\n").find((l) => l !== "" && !l.startsWith("Failed to send")) ??
    "";
  return { code: r.code, line, text: show(r) };
}

/** `line` without the program name C's getopt (argv[0]) or ours (the mode) puts first. */
function withoutProgram(line: string, binary: string): string {
  const base = binary.slice(binary.lastIndexOf("/") + 1);
  for (const prefix of [`${binary}: `, `${base}: `]) {
    if (line.startsWith(prefix)) return line.slice(prefix.length);
  }
  return line;
}

async function errorContract(
  sb: Sandbox,
  binary: string,
  reference: string,
  cases: readonly ErrorCase[],
): Promise<void> {
  const haveReference = reference !== binary && (await Deno.stat(reference).then(
    () => true,
    () => false,
  ));
  for (const c of cases) {
    const ours = await firstError(sb, binary, c.args);
    const what = `${binary} ${c.args.join(" ")}`;
    assert.equal(ours.code, 1, `${what}: exit status 1\n${ours.text}`);
    const tail = withoutProgram(ours.line, binary);
    if (typeof c.line === "string") assert.equal(tail, c.line, `${what}: first line`);
    else assert.match(tail, c.line, `${what}: first line`);
    if (!haveReference) continue;
    // The C program, verified here: same status, and the same line modulo wording
    // after the common start checked above.
    const ref = await firstError(sb, reference, c.args);
    assert.equal(ref.code, ours.code, `${reference} ${c.args.join(" ")}: status\n${ref.text}`);
    const refTail = withoutProgram(ref.line, reference);
    if (typeof c.line === "string") assert.equal(refTail, tail, `the C line: ${ref.line}`);
    else assert.match(refTail, c.line, `the C line: ${ref.line}`);
  }
}

Deno.test({
  name: "contract: pasta errors: exit status 1 and the first line, as the C pasta",
  ignore: pastaIgnored !== undefined,
  fn: () => withSandbox((sb) => errorContract(sb, PASTA, C_PASTA, PASTA_ERRORS)),
});

Deno.test({
  name: "contract: passt errors: exit status 1 and the first line, as the C passt",
  ignore: passtIgnored !== undefined,
  fn: () => withSandbox((sb) => errorContract(sb, PASST, C_PASST, PASST_ERRORS)),
});
