/**
 * pasta end to end (issue 3): each test builds a sandbox (tests/sandbox/), runs the
 * pasta under test in it as an unprivileged user, and checks what a user of the
 * namespace sees: `ip` after --config-net, real DHCP/DHCPv6/SLAAC clients without it,
 * ping through it, the pcap, exit status and lifetime, and that malformed frames are
 * ignored. PASTA_UNDER_TEST selects the binary (default ./pasta); run them against
 * Debian's C pasta with PASTA_UNDER_TEST=/usr/bin/pasta.
 *
 * Assertions marked with cPastaDiffers() check what our man page says where Debian's
 * pasta 0.0~git20230309 does something else: only for a C binary (IS_C_PASTA) they are
 * skipped, with a "C pasta differs" line on stderr. See README.md beside this file.
 */

import assert from "node:assert/strict";
import { NET, type Sandbox, sleep, withSandbox } from "../sandbox/sandbox.ts";
import {
  addrsOf,
  assertHostAddressesAndRoutes,
  cPastaDiffers,
  dhclient,
  early,
  IF,
  inPasta,
  IP_STATE,
  IS_C_PASTA,
  type Json,
  LINK_UP,
  namespaceHolder,
  needs,
  parseEnv,
  PASTA,
  pasta,
  pastaSuiteIgnored,
  PYTHON,
  sections,
  show,
  shWait,
  writeScript,
} from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();
if (suiteIgnored) console.error(`tests/pasta ignored: ${suiteIgnored}`);

/** Registers a sandboxed pasta test, ignored when the suite or a needed tool is missing. */
function pastaTest(
  name: string,
  tools: string[],
  fn: (sb: Sandbox) => Promise<void>,
): void {
  Deno.test({
    name: `pasta: ${name}`,
    ignore: suiteIgnored !== undefined || needs(...tools) !== undefined,
    fn: () => withSandbox(fn),
  });
}

// --- --config-net -------------------------------------------------------------------------

pastaTest("--config-net copies the host's addresses and routes, MTU 65520", ["ip"], async (sb) => {
  const r = await inPasta(sb, ["--config-net"], IP_STATE);
  assert.equal(r.code, 0, show(r));
  const s = sections(r.stdout);
  const link = s.addr.find((l: Json) => l.ifname === IF);
  assert.ok(link, `no ${IF} in the namespace: ${r.stdout}`);
  assert.equal(link.mtu, 65520);
  assert.ok(link.flags.includes("UP"), `${IF} is not up: ${link.flags}`);
  assertHostAddressesAndRoutes(s);
  // Only loopback and the tap: nothing of the host's other links leaks in.
  assert.deepEqual(s.addr.map((l: Json) => l.ifname).sort(), ["eth0", "lo"]);
});

pastaTest(
  "--config-net copies every address and route of the host interface; --no-copy-* only one",
  ["ip"],
  async (sb) => {
    // A second address per version and routes beyond the default on the host's eth0.
    for (
      const cmd of [
        ["ip", "addr", "add", "192.0.2.77/24", "dev", "eth0"],
        ["ip", "-6", "addr", "add", "2001:db8:1::77/64", "dev", "eth0", "nodad"],
        ["ip", "route", "add", "198.51.100.0/24", "via", NET.gateway4, "dev", "eth0"],
        ["ip", "-6", "route", "add", "2001:db8:99::/48", "via", NET.gateway6, "dev", "eth0"],
      ]
    ) {
      const r = await sb.run(cmd);
      assert.equal(r.code, 0, `${cmd.join(" ")}: ${show(r)}`);
    }
    const copied = await inPasta(sb, ["--config-net"], IP_STATE);
    assert.equal(copied.code, 0, show(copied));
    const s = sections(copied.stdout);
    const addrs = addrsOf(s.addr.find((l: Json) => l.ifname === IF));
    for (const a of [`${NET.host4}/24`, "192.0.2.77/24", `${NET.host6}/64`, "2001:db8:1::77/64"]) {
      assert.ok(addrs.includes(a), `${a} copied: ${addrs}`);
    }
    const r4 = s.route4.find((rt: Json) => rt.dst === "198.51.100.0/24");
    assert.equal(r4?.gateway, NET.gateway4, JSON.stringify(s.route4));
    assert.equal(r4?.dev, IF, "the output device becomes the tap");
    const r6 = s.route6.find((rt: Json) => rt.dst === "2001:db8:99::/48");
    assert.equal(r6?.gateway, NET.gateway6, JSON.stringify(s.route6));
    assert.equal(r6?.dev, IF);

    const single = await inPasta(
      sb,
      ["--config-net", "--no-copy-addrs", "--no-copy-routes"],
      IP_STATE,
    );
    assert.equal(single.code, 0, show(single));
    const t = sections(single.stdout);
    const one = addrsOf(t.addr.find((l: Json) => l.ifname === IF));
    assert.equal(one.filter((a: string) => a.startsWith("192.0.2.")).length, 1, `${one}`);
    assert.equal(one.filter((a: string) => a.startsWith("2001:db8:1::")).length, 1, `${one}`);
    assert.equal(t.route4.find((rt: Json) => rt.dst === "198.51.100.0/24"), undefined);
    assert.equal(t.route6.find((rt: Json) => rt.dst === "2001:db8:99::/48"), undefined);
    assert.equal(t.route4.find((rt: Json) => rt.dst === "default")?.gateway, NET.gateway4);
    assert.equal(t.route6.find((rt: Json) => rt.dst === "default")?.gateway, NET.gateway6);
  },
);

pastaTest(
  "--config-net: no router advertisements, so no SLAAC address or second route; LL without DAD",
  ["ip"],
  async (sb) => {
    // The link-local address as soon as the command runs, then everything once the
    // kernel has solicited routers (at once, then every 4 s) and would have used an RA.
    const script = [
      // JSON leaves the nodad flag out: count it in the text form.
      `echo "nodad: $(ip -6 -o addr show dev ${IF} scope link | grep -c ' nodad')"`,
      `echo '--- early'; ip -j -6 addr show dev ${IF}`,
      "sleep 3",
      IP_STATE,
    ].join("\n");
    for (const args of [["--config-net"], ["--config-net", "-a", "2001:db8::1"]]) {
      const r = await inPasta(sb, args, script, { timeoutMs: 30_000 });
      assert.equal(r.code, 0, show(r));
      const s = sections(r.stdout);
      const early = s.early[0]?.addr_info ?? [];
      const ll = early.filter((a: Json) => a.scope === "link");
      assert.equal(ll.length, 1, `${args}: one link-local address: ${JSON.stringify(early)}`);
      // No duplicate address detection for it (the C pasta's IFA_F_NODAD): usable
      // as soon as the kernel gets to it, not after DAD's second.
      assert.match(r.stdout, /^nodad: 1$/m, `${args}: ${show(r)}`);
      const late = s.addr.find((l: Json) => l.ifname === IF)?.addr_info ?? [];
      assert.ok(
        late.every((a: Json) => a.tentative === undefined && a.dadfailed === undefined),
        `${args}: ${JSON.stringify(late)}`,
      );
      const global = addrsOf(s.addr.find((l: Json) => l.ifname === IF))
        .filter((a: string) => a.includes(":") && !a.startsWith("fe80:"));
      const expected = args.includes("-a") ? "2001:db8::1/64" : `${NET.host6}/64`;
      assert.deepEqual(global, [expected], `${args}: exactly the configured address`);
      const defaults = s.route6.filter((rt: Json) => rt.dst === "default");
      assert.deepEqual(defaults.map((rt: Json) => rt.gateway), [NET.gateway6], `${args}`);
      assert.equal(s.route6.filter((rt: Json) => rt.protocol === "ra").length, 0, `${args}`);
    }
  },
);

pastaTest("the command's host name is pasta- and the host's, which stays as it was", [
  "hostname",
], async (sb) => {
  const host = (await sb.run(["hostname"])).stdout.trim();
  const r = await inPasta(sb, ["--config-net"], "hostname");
  assert.equal(r.code, 0, show(r));
  assert.equal(r.stdout.trim(), `pasta-${host}`.slice(0, 64));
  assert.equal((await sb.run(["hostname"])).stdout.trim(), host, "the host's name changed");
});

pastaTest("--config-net -I names the interface", ["ip"], async (sb) => {
  const r = await inPasta(sb, ["--config-net", "-I", "tap7"], IP_STATE);
  assert.equal(r.code, 0, show(r));
  const s = sections(r.stdout);
  assert.deepEqual(s.addr.map((l: Json) => l.ifname).sort(), ["lo", "tap7"]);
  const link = s.addr.find((l: Json) => l.ifname === "tap7");
  assert.equal(link.mtu, 65520);
  assert.ok(addrsOf(link).includes(`${NET.host4}/${NET.prefix4}`));
  assert.equal(s.route4.find((rt: Json) => rt.dst === "default")?.dev, "tap7");
});

// --- real clients, without --config-net ---------------------------------------------------

pastaTest(
  "without --config-net, the kernel's SLAAC takes the prefix from the RA",
  ["ip"],
  async (sb) => {
    const script = [
      LINK_UP,
      shWait(
        `ip -6 addr show dev ${IF} scope global -tentative | grep -q 'inet6 2001:db8:1:'`,
        "a SLAAC address",
      ),
      shWait(`ip -6 route show default | grep -q 'via fe80::'`, "a default route via fe80::"),
      IP_STATE,
    ].join("\n");
    const r = await inPasta(sb, [], script, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, show(r));
    const s = sections(r.stdout);
    const link = s.addr.find((l: Json) => l.ifname === IF);
    const global = link.addr_info.filter((a: Json) => a.family === "inet6" && a.scope === "global");
    assert.ok(
      global.some((a: Json) => a.local.startsWith("2001:db8:1:") && a.prefixlen === 64),
      JSON.stringify(global),
    );
    const default6 = s.route6.find((rt: Json) => rt.dst === "default");
    assert.match(default6?.gateway ?? "", /^fe80::/);
    assert.equal(default6?.dev, IF);
    // No IPv4 without DHCP: pasta configured nothing itself.
    assert.ok(!addrsOf(link).some((a) => a.startsWith(NET.host4)), JSON.stringify(link));
  },
);

pastaTest("dhclient -4: address, router, MTU; no DNS or search list by default", [
  "dhclient",
], async (sb) => {
  const env = await dhclient(sb, "-4", []);
  assert.equal(env.new_ip_address, NET.host4);
  assert.equal(env.new_subnet_mask, "255.255.255.0");
  assert.equal(env.new_routers, NET.gateway4);
  assert.equal(env.new_interface_mtu, "65520");
  assert.equal(env.new_dhcp_lease_time, "4294967295", "an infinite lease, as the C pasta");
  assert.equal(env.new_domain_name_servers, undefined, "DNS sent without --dhcp-dns");
  assert.equal(env.new_domain_search, undefined, "search list sent without --dhcp-search");
});

pastaTest("dhclient -4 with --dhcp-dns --dhcp-search: DNS and search list", [
  "dhclient",
], async (sb) => {
  const env = await dhclient(sb, "-4", ["--dhcp-dns", "--dhcp-search"]);
  assert.equal(env.new_ip_address, NET.host4);
  assert.equal(env.new_routers, NET.gateway4);
  assert.equal(env.new_domain_name_servers, NET.nameservers[0]);
  assert.equal(env.new_domain_search, "example.test.");
  assert.equal(env.new_domain_name, undefined, "no domain name (option 15), as the C pasta");
});

/** Runs busybox udhcpc in pasta's namespace; returns the environment of its "bound" call. */
async function udhcpc(sb: Sandbox, pastaArgs: string[]): Promise<Record<string, string>> {
  const script = await writeScript(
    sb,
    "udhcpc-script",
    `#!/bin/sh\n[ "$1" = bound ] && env > "${sb.dir}/udhcpc.bound"\nexit 0\n`,
  );
  const cmd = [
    LINK_UP,
    `busybox udhcpc -i ${IF} -n -q -f -t 5 -T 1 -s ${script} -O search -O mtu -O dns`,
  ].join("\n");
  const r = await inPasta(sb, pastaArgs, cmd, { timeoutMs: 30_000 });
  assert.equal(r.code, 0, show(r));
  const env = await Deno.readTextFile(`${sb.dir}/udhcpc.bound`).catch(() => "");
  assert.ok(env, `udhcpc never bound: ${show(r)}`);
  return parseEnv(env);
}

pastaTest("udhcpc: address, subnet, router, MTU; no DNS or search list by default", [
  "busybox",
], async (sb) => {
  const env = await udhcpc(sb, []);
  assert.equal(env.ip, NET.host4);
  assert.equal(env.subnet, "255.255.255.0");
  assert.equal(env.mask, "24");
  assert.equal(env.router, NET.gateway4);
  assert.equal(env.mtu, "65520");
  assert.equal(env.dns, undefined, "DNS sent without --dhcp-dns");
  assert.equal(env.search, undefined, "search list sent without --dhcp-search");
});

pastaTest("udhcpc with --dhcp-dns --dhcp-search: DNS and search list", [
  "busybox",
], async (sb) => {
  const env = await udhcpc(sb, ["--dhcp-dns", "--dhcp-search"]);
  assert.equal(env.ip, NET.host4);
  assert.equal(env.router, NET.gateway4);
  assert.equal(env.dns?.trim(), NET.nameservers[0]);
  assert.equal(env.search?.trim(), "example.test");
});

pastaTest("dhclient -6: the host's address; no DNS or search list by default", [
  "dhclient",
], async (sb) => {
  const env = await dhclient(sb, "-6", []);
  assert.equal(env.new_ip6_address, NET.host6);
  assert.equal(env.new_dhcp6_name_servers, undefined, "DNS sent without --dhcp-dns");
  assert.equal(env.new_dhcp6_domain_search, undefined, "search sent without --dhcp-search");
});

pastaTest("dhclient -6 with --dhcp-dns --dhcp-search: DNS and search list", [
  "dhclient",
], async (sb) => {
  const env = await dhclient(sb, "-6", ["--dhcp-dns", "--dhcp-search"]);
  assert.equal(env.new_ip6_address, NET.host6);
  assert.equal(env.new_dhcp6_name_servers, NET.nameservers[1]);
  assert.equal(env.new_dhcp6_domain_search, "example.test.");
});

// --- traffic ------------------------------------------------------------------------------

pastaTest("ping from the namespace: gateway and remote host, IPv4 and IPv6", [
  "ping",
], async (sb) => {
  const targets = [NET.gateway4, NET.remote4, NET.gateway6, NET.remote6];
  const script = targets.map((t) => `ping -c1 -W2 ${t} || echo "FAILED ${t}"`).join("\n");
  const r = await inPasta(sb, ["--config-net"], script, { timeoutMs: 30_000 });
  assert.equal(r.code, 0, show(r));
  assert.doesNotMatch(r.stdout, /FAILED/, show(r));
  for (const t of targets) assert.match(r.stdout, new RegExp(`bytes from ${t}`), show(r));
});

pastaTest(
  "dhclient asking for a stale lease gets a NAK, then the right address",
  ["dhclient", "tcpdump"],
  async (sb) => {
    // A lease from another network, still valid: dhclient asks for it back first
    // (INIT-REBOOT, RFC 2131 4.3.2), and must be refused.
    await Deno.writeTextFile(
      `${sb.dir}/dhclient-4.leases`,
      [
        "lease {",
        `  interface "${IF}";`,
        "  fixed-address 198.51.100.99;",
        "  option subnet-mask 255.255.255.0;",
        "  option dhcp-server-identifier 198.51.100.1;",
        "  renew 4 2099/01/01 00:00:00;",
        "  rebind 4 2099/01/01 00:00:00;",
        "  expire 4 2099/01/01 00:00:00;",
        "}",
        "",
      ].join("\n"),
    );
    const pcap = `${sb.dir}/nak.pcap`;
    const env = await dhclient(sb, "-4", ["-p", pcap]);
    assert.equal(env.new_ip_address, NET.host4);
    const dump = await new Deno.Command("tcpdump", { args: ["-n", "-v", "-r", pcap] }).output();
    const text = new TextDecoder().decode(dump.stdout);
    assert.match(text, /Requested-IP.*198\.51\.100\.99/, text);
    assert.match(text, /DHCP-Message[^\n]*: NACK/, text);
    assert.match(text, /DHCP-Message[^\n]*: ACK/, text);
  },
);

pastaTest("-p FILE: the capture reads with tcpdump and holds the DHCP exchange", [
  "busybox",
  "tcpdump",
], async (sb) => {
  const pcap = `${sb.dir}/pasta.pcap`;
  const cmd = `${LINK_UP}\nbusybox udhcpc -i ${IF} -n -q -f -t 5 -T 1 -s /bin/true`;
  const r = await inPasta(sb, ["-p", pcap], cmd, { timeoutMs: 30_000 });
  assert.equal(r.code, 0, show(r));
  // Reading a file touches no network: tcpdump runs outside the sandbox.
  const dump = await new Deno.Command("tcpdump", { args: ["-n", "-v", "-r", pcap] }).output();
  const text = new TextDecoder().decode(dump.stdout);
  assert.ok(dump.success, new TextDecoder().decode(dump.stderr));
  for (const kind of ["Discover", "Offer", "Request", "ACK"]) {
    assert.match(text, new RegExp(`DHCP-Message \\(53\\), length 1: ${kind}`), text);
  }
  assert.match(text, /Your-IP 192\.0\.2\.2/, text);
});

// --- lifetime -----------------------------------------------------------------------------

pastaTest("the command's exit status is pasta's, and pasta exits with it", [], async (sb) => {
  for (const status of [0, 3, 77]) {
    const started = Date.now();
    const r = await pasta(sb, ["--config-net", "--", "sh", "-c", `exit ${status}`], {
      timeoutMs: 15_000,
    });
    assert.equal(r.code, status, show(r));
    assert.ok(Date.now() - started < 10_000, "pasta outlived its command");
  }
});

pastaTest("-P FILE with a command: the PID of the pasta the user started", [], async (sb) => {
  const pidFile = `${sb.dir}/pasta.pid`;
  const p = await sb.spawn(
    [PASTA, "--config-net", "-P", pidFile, "--", "sleep", "30"],
    { user: true, timeoutMs: 40_000 },
  );
  const readPid = async () => Number((await Deno.readTextFile(pidFile).catch(() => "")).trim());
  assert.ok(
    await sb.waitFor(async () => (await readPid()) > 0, 10_000),
    `nothing written to ${pidFile}: ${await early(p)}`,
  );
  assert.equal(await readPid(), p.pid, "the PID file names the pasta the user started");
  await p.kill("KILL");
});

async function configuredIn(sb: Sandbox, nsenterTarget: string[]): Promise<boolean> {
  const r = await sb.run(["nsenter", ...nsenterTarget, "ip", "-j", "addr", "show"]);
  return r.code === 0 && r.stdout.includes(`"local":"${NET.host4}"`);
}

async function netnsCase(sb: Sandbox, noQuit: boolean): Promise<void> {
  const holder = await namespaceHolder(sb);
  const path = "/run/netns/target";
  const bind = await sb.run([
    "sh",
    "-c",
    `touch ${path} && mount --bind /proc/${holder.pid}/ns/net ${path}`,
  ]);
  assert.equal(bind.code, 0, show(bind));
  const args = ["--config-net", "-f", "--netns", path, "--userns", `/proc/${holder.pid}/ns/user`];
  if (noQuit) args.push("--no-netns-quit");
  const p = await sb.spawn([PASTA, ...args], { user: true, timeoutMs: 60_000 });
  assert.ok(
    await sb.waitFor(() => configuredIn(sb, [`--net=${path}`]), 10_000),
    `pasta did not configure ${path}`,
  );
  const rm = await sb.run(["sh", "-c", `umount -l ${path} && rm ${path}`]);
  assert.equal(rm.code, 0, show(rm));
  if (noQuit) {
    await sleep(2000);
    assert.ok(await p.alive(), "pasta quit despite --no-netns-quit");
    await p.kill();
  } else {
    assert.ok(
      await sb.waitFor(async () => !(await p.alive()), 10_000),
      "pasta still runs after its netns file was removed",
    );
  }
  await holder.kill();
}

pastaTest("-f --netns PATH: SIGHUP (terminal gone) ends pasta, status 129", ["ip"], async (sb) => {
  const holder = await namespaceHolder(sb);
  const path = "/run/netns/hup";
  const bind = await sb.run([
    "sh",
    "-c",
    `touch ${path} && mount --bind /proc/${holder.pid}/ns/net ${path}`,
  ]);
  assert.equal(bind.code, 0, show(bind));
  const args = ["--config-net", "-f", "--netns", path, "--userns", `/proc/${holder.pid}/ns/user`];
  const p = await sb.spawn([PASTA, ...args], { user: true, timeoutMs: 60_000 });
  assert.ok(
    await sb.waitFor(() => configuredIn(sb, [`--net=${path}`]), 10_000),
    `pasta did not configure ${path}: ${await early(p)}`,
  );
  await p.kill("HUP");
  const r = await Promise.race([p.result, sleep(10_000).then(() => undefined)]);
  assert.ok(r !== undefined, "pasta -f still runs 10 s after SIGHUP");
  assert.equal(r.code, 129, show(r));
  await holder.kill();
});

pastaTest(
  "--netns PATH of another user namespace without --userns: exit 1, saying what to give",
  ["ip"],
  async (sb) => {
    const holder = await namespaceHolder(sb);
    try {
      const r = await sb.run(
        [PASTA, "-f", "--config-net", "--netns", `/proc/${holder.pid}/ns/net`],
        { user: true, timeoutMs: 20_000 },
      );
      assert.equal(r.code, 1, show(r));
      if (IS_C_PASTA) cPastaDiffers("the advice to use --userns");
      else assert.match(r.stderr, /EPERM.*belongs to another user namespace.*--userns/, show(r));
    } finally {
      await holder.kill();
    }
  },
);

pastaTest(
  "--netns PATH: pasta quits when the netns file is removed",
  ["ip"],
  (sb) => netnsCase(sb, false),
);

pastaTest("--netns PATH --no-netns-quit: pasta keeps running", ["ip"], (sb) => netnsCase(sb, true));

pastaTest("pasta PID joins the process's namespaces and quits when it ends", ["ip"], async (sb) => {
  const holder = await namespaceHolder(sb);
  const p = await sb.spawn([PASTA, "--config-net", "-f", String(holder.pid)], {
    user: true,
    timeoutMs: 60_000,
  });
  assert.ok(
    await sb.waitFor(() => configuredIn(sb, ["-t", String(holder.pid), "--net"]), 10_000),
    "pasta did not configure the process's namespace",
  );
  const link = await sb.run(["nsenter", "-t", String(holder.pid), "--net", "ip", "-j", "link"]);
  assert.match(link.stdout, /"ifname":"eth0".*"mtu":65520/);
  await holder.kill();
  const quit = await sb.waitFor(async () => !(await p.alive()), 10_000);
  if (IS_C_PASTA && !quit) {
    // Debian's 2023-03 pasta watches /proc/PID with inotify, which procfs never triggers.
    cPastaDiffers("pasta PID did not quit when the process ended");
    return;
  }
  assert.ok(quit, "pasta still runs after the process ended");
});

// --- robustness ---------------------------------------------------------------------------

/**
 * Malformed frames (names from malformed.py) that Debian's C pasta answers: it takes a
 * BOOTP request without the DHCP cookie or with an empty message type option as a
 * Discover, reads an NS target past the end of the frame, and answers a Solicit whose
 * client ID is empty and whose IA_NA is cut. Issue 3 wants no reply to any of them.
 */
const C_PASTA_ANSWERS = [
  "DHCP without magic cookie",
  "DHCP message type option of length 0",
  "NDP NS cut before its target",
  "DHCPv6 Solicit with a client ID option of length 0 and a truncated IA_NA",
];

pastaTest("malformed ARP, DHCP, NDP and DHCPv6 frames: no reply, no crash", [
  "ping",
], async (sb) => {
  const feeder = new URL("./malformed.py", import.meta.url).pathname;
  const script = [
    shWait(`ip -6 addr show dev ${IF} scope link -tentative | grep -q fe80::`, "link-local"),
    `${PYTHON} ${feeder} ${IF} > ${sb.dir}/malformed.json`,
    `ip neigh flush dev ${IF}`,
    `ping -c1 -W2 ${NET.gateway4} >/dev/null || echo "FAILED ping ${NET.gateway4}"`,
    `ping -c1 -W2 ${NET.gateway6} >/dev/null || echo "FAILED ping ${NET.gateway6}"`,
    `ip -j neigh show dev ${IF}`,
  ].join("\n");
  const r = await inPasta(sb, ["--config-net"], script, { timeoutMs: 40_000 });
  assert.equal(r.code, 0, show(r));
  const result = JSON.parse(await Deno.readTextFile(`${sb.dir}/malformed.json`));
  assert.ok(result.control, "the valid ARP request got no reply: the check sees nothing");
  const replies = (result.replies as string[]).filter((reply) => {
    const known = IS_C_PASTA && C_PASTA_ANSWERS.some((name) => reply.startsWith(`${name} ->`));
    if (known) cPastaDiffers(`answered a malformed frame: ${reply}`);
    return !known;
  });
  assert.deepEqual(replies, []);
  assert.doesNotMatch(r.stdout, /FAILED/, show(r));
  assert.match(r.stdout, new RegExp(`"dst":"${NET.gateway4.replaceAll(".", "\\.")}"`));
});
