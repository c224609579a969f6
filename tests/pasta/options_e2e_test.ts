/**
 * pasta's options end to end (issue 3): what a user of the namespace sees with the
 * options that pasta_test.ts leaves to the parser tests. Each test builds a sandbox
 * (tests/sandbox/), runs the pasta under test in it as the unprivileged user, and
 * observes the result inside the namespace: `ip -j` state, real DHCP and DHCPv6
 * clients, the kernel's own SLAAC, ping and TCP, a capture read with tcpdump, and
 * what pasta prints. Where an option turns something off, the same test runs a
 * control without it (concurrently, in the same sandbox), so that an absent answer
 * means the option worked, not that the check sees nothing.
 *
 * The expected behaviour is the man page's (man/pasta.1). PASTA_UNDER_TEST selects the
 * binary (default ./pasta), as for pasta_test.ts.
 */

import assert from "node:assert/strict";
import { NET, type RunResult, type Sandbox, withSandbox } from "../sandbox/sandbox.ts";
import {
  addrsOf,
  early,
  IF,
  inPasta,
  IP_STATE,
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
  shellQuote,
  show,
  shWait,
  writeScript,
} from "./_pasta.ts";

const suiteIgnored = pastaSuiteIgnored();
if (suiteIgnored) console.error(`tests/pasta ignored: ${suiteIgnored}`);

/** Registers a sandboxed test, ignored when the suite or a needed tool is missing. */
function optionsTest(name: string, tools: string[], fn: (sb: Sandbox) => Promise<void>): void {
  Deno.test({
    name: `pasta options: ${name}`,
    ignore: suiteIgnored !== undefined || needs(...tools) !== undefined,
    fn: () => withSandbox(fn),
  });
}

// --- shared shell snippets and readers ----------------------------------------------------

/**
 * Turns duplicate address detection off on the tap before it goes up, so that its
 * link-local address is usable at once: DHCPv6 and Router Solicitations then start
 * without the second or two DAD takes. Nothing else about the kernel's SLAAC changes.
 */
const NO_DAD = `echo 0 > /proc/sys/net/ipv6/conf/${IF}/accept_dad`;

/** Waits until the tap's link-local address has passed DAD (the kernel then solicits routers). */
const LINK_LOCAL_READY = shWait(
  `ip -6 addr show dev ${IF} scope link -tentative | grep -q 'inet6 fe80::'`,
  "a link-local address",
);

/** Waits until --config-net's IPv4 default route is in place (it may land just after the command starts). */
const CONFIGURED4 = shWait("ip -4 route show default | grep -q via", "an IPv4 default route");

/** The same for IPv6: the host's address, past DAD, and a default route. */
const CONFIGURED6 = [
  shWait(
    `ip -6 addr show dev ${IF} scope global -tentative | grep -q ${NET.host6}`,
    "the IPv6 address",
  ),
  shWait("ip -6 route show default | grep -q via", "an IPv6 default route"),
].join("\n");

/** Shell lines pinging every target at once (one echo, 1 s to answer), printing REPLY or NOREPLY. */
function pingAll(targets: readonly string[]): string {
  const one = (t: string) =>
    `(ping -c1 -W1 ${t} >/dev/null 2>&1 && echo "REPLY ${t}" || echo "NOREPLY ${t}") &`;
  return [...targets.map(one), "wait"].join("\n");
}

/** Which targets of `pingAll` answered. */
function replies(stdout: string): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const m of stdout.matchAll(/^(REPLY|NOREPLY) (\S+)$/gm)) out[m[2]!] = m[1] === "REPLY";
  return out;
}

/** `stdout` without `pingAll`'s lines, for `sections`. */
function withoutPings(stdout: string): string {
  return stdout.replace(/^(NO)?REPLY .*\n/gm, "");
}

/** The frames of a pcap file as tcpdump -n -vv prints them, one string per frame. */
async function frames(path: string): Promise<string[]> {
  // Reading a file touches no network: tcpdump runs outside the sandbox.
  const out = await new Deno.Command("tcpdump", { args: ["-n", "-vv", "-r", path] }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `tcpdump -r ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return text.split(/^(?=\d\d:\d\d:\d\d\.)/m).filter((f) => f.trim() !== "");
}

/** The Router Advertisements among `frames`. */
function routerAdvertisements(all: string[]): string[] {
  return all.filter((f) => f.includes("ICMP6, router advertisement"));
}

/** The link of the tap in `ip -j addr` output (sections().addr). */
function tapLink(addr: Json, name: string = IF): Json {
  const link = addr.find((l: Json) => l.ifname === name);
  assert.ok(link, `no ${name} in the namespace: ${JSON.stringify(addr)}`);
  return link;
}

/** Addresses of `link` of one family ("inet", "inet6") and scope ("global", "link"). */
function addrsOfKind(link: Json, family: string, scope = "global"): string[] {
  return link.addr_info
    .filter((a: Json) => a.family === family && a.scope === scope)
    .map((a: Json) => `${a.local}/${a.prefixlen}`);
}

/** What a DHCP client run saw: the run itself, and the environment of its lease, if any. */
interface LeaseRun {
  readonly result: RunResult;
  readonly lease: Record<string, string> | undefined;
}

/** How `dhclientLease` runs. */
interface LeaseOptions {
  /** dhclient's `timeout` statement: seconds before it gives up (default 10). */
  readonly timeoutSeconds?: number;
  /** Also wait (bounded) until the kernel has taken a default route from an RA. */
  readonly awaitRa?: boolean;
  /** More options for dhclient's request list, comma-separated (e.g. "host-name"). */
  readonly request?: string;
}

/**
 * `dhclient -4|-6 -1` in pasta's namespace. Unlike _pasta.ts's `dhclient`, a failure is
 * returned, not asserted, and every file is named after `tag`, so that several runs can
 * share a sandbox at the same time.
 */
async function dhclientLease(
  sb: Sandbox,
  family: "-4" | "-6",
  pastaArgs: readonly string[],
  tag: string,
  { timeoutSeconds = 10, awaitRa = false, request }: LeaseOptions = {},
): Promise<LeaseRun> {
  const script = await writeScript(
    sb,
    `${tag}-script`,
    `#!/bin/sh\nenv > "${sb.dir}/${tag}.$reason"\nexit 0\n`,
  );
  const conf = `${sb.dir}/${tag}.conf`;
  await Deno.writeTextFile(
    conf,
    "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,\n" +
      "  domain-search, interface-mtu, dhcp6.name-servers, dhcp6.domain-search" +
      (request === undefined ? "" : `,\n  ${request}`) + ";\n" +
      `timeout ${timeoutSeconds};\n`,
  );
  const files = `-pf ${sb.dir}/${tag}.pid -lf ${sb.dir}/${tag}.leases`;
  const cmd = [
    NO_DAD,
    LINK_UP,
    family === "-6" ? LINK_LOCAL_READY : ":",
    `dhclient ${family} -1 -v -cf ${conf} -sf ${script} ${files} ${IF}; status=$?`,
    // -1 still leaves a daemon behind once bound: stop it.
    `dhclient ${family} -x ${files} 2>/dev/null`,
    awaitRa ? shWait("ip -6 route show default | grep -q 'via fe80::'", "an RA") : ":",
    "exit $status",
  ].join("\n");
  const result = await inPasta(sb, pastaArgs, cmd, { timeoutMs: 40_000 });
  const reason = family === "-4" ? "BOUND" : "BOUND6";
  const env = await Deno.readTextFile(`${sb.dir}/${tag}.${reason}`).catch(() => "");
  return { result, lease: env ? parseEnv(env) : undefined };
}

/** busybox udhcpc in pasta's namespace: two discovers 1 s apart, then it gives up. */
async function udhcpcLease(sb: Sandbox, pastaArgs: readonly string[], tag: string) {
  const script = await writeScript(
    sb,
    `${tag}-script`,
    `#!/bin/sh\n[ "$1" = bound ] && env > "${sb.dir}/${tag}.bound"\nexit 0\n`,
  );
  const cmd = `${LINK_UP}\nbusybox udhcpc -i ${IF} -n -q -f -t 2 -T 1 -s ${script}`;
  const result = await inPasta(sb, pastaArgs, cmd, { timeoutMs: 30_000 });
  const env = await Deno.readTextFile(`${sb.dir}/${tag}.bound`).catch(() => "");
  return { result, lease: env ? parseEnv(env) : undefined };
}

/** Binds the holder's network namespace at /run/netns/NAME, as `ip netns add` would. */
async function nameNamespace(sb: Sandbox, pid: number, name: string): Promise<void> {
  const path = `/run/netns/${name}`;
  const bind = await sb.run([
    "sh",
    "-c",
    `touch ${path} && mount --bind /proc/${pid}/ns/net ${path}`,
  ]);
  assert.equal(bind.code, 0, show(bind));
}

/** Runs `script` in the network namespace /run/netns/NAME (as sandbox root). */
function inNamedNamespace(sb: Sandbox, name: string, script: string): Promise<RunResult> {
  return sb.run(["nsenter", `--net=/run/netns/${name}`, "sh", "-c", script], {
    timeoutMs: 20_000,
  });
}

/** Whether pasta has configured the host's IPv4 address in /run/netns/NAME. */
async function configuredNamed(sb: Sandbox, name: string): Promise<boolean> {
  const r = await sb.run(["nsenter", `--net=/run/netns/${name}`, "ip", "-j", "addr", "show"]);
  return r.code === 0 && r.stdout.includes(`"local":"${NET.host4}"`);
}

const NS_MAC = "02:00:00:aa:bb:cc";
const OUR_MAC = "02:00:00:11:22:33";
const ALL_TARGETS = [NET.gateway4, NET.gateway6, NET.remote4, NET.remote6];

// --- 1. MAC addresses ---------------------------------------------------------------------

optionsTest(
  "--ns-mac-addr sets the tap's MAC; -M is the MAC ARP and NDP answer with",
  ["ping"],
  async (sb) => {
    const script = [
      CONFIGURED4,
      CONFIGURED6,
      "echo '--- link'; ip -j link show",
      pingAll([NET.gateway4, NET.gateway6]),
      "echo '--- neigh'; ip -j neigh show",
    ].join("\n");
    const r = await inPasta(sb, ["--config-net", "--ns-mac-addr", NS_MAC, "-M", OUR_MAC], script, {
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, show(r));
    const s = sections(withoutPings(r.stdout));
    assert.equal(tapLink(s.link).address, NS_MAC, JSON.stringify(s.link));
    assert.deepEqual(replies(r.stdout), { [NET.gateway4]: true, [NET.gateway6]: true }, show(r));
    for (const gateway of [NET.gateway4, NET.gateway6]) {
      const entry = s.neigh.find((n: Json) => n.dst === gateway);
      assert.equal(entry?.lladdr, OUR_MAC, `neighbour ${gateway}: ${JSON.stringify(s.neigh)}`);
    }
  },
);

// --- 2. MTU -------------------------------------------------------------------------------

optionsTest("-m 1400 --config-net: the tap's MTU is 1400", ["ip"], async (sb) => {
  const r = await inPasta(
    sb,
    ["--config-net", "-m", "1400"],
    `echo '--- link'; ip -j link show; echo '--- v6mtu'; echo "[$(cat /proc/sys/net/ipv6/conf/${IF}/mtu)]"`,
  );
  assert.equal(r.code, 0, show(r));
  const s = sections(r.stdout);
  assert.equal(tapLink(s.link).mtu, 1400, JSON.stringify(s.link));
  assert.deepEqual(s.v6mtu, [1400]);
});

optionsTest("-m 1400: dhclient gets interface-mtu 1400; -m 0: no MTU option", [
  "dhclient",
], async (sb) => {
  const [m1400, m0] = await Promise.all([
    dhclientLease(sb, "-4", ["-m", "1400"], "mtu1400"),
    dhclientLease(sb, "-4", ["-m", "0"], "mtu0"),
  ]);
  assert.ok(m1400.lease, `no lease with -m 1400: ${show(m1400.result)}`);
  assert.equal(m1400.lease.new_interface_mtu, "1400");
  assert.ok(m0.lease, `no lease with -m 0: ${show(m0.result)}`);
  assert.equal(m0.lease.new_ip_address, NET.host4);
  assert.equal(m0.lease.new_interface_mtu, undefined, "an MTU was sent with -m 0");
});

// --- 3. --no-icmp -------------------------------------------------------------------------

optionsTest("--no-icmp: echo requests get no reply; without it they do", [
  "ping",
], async (sb) => {
  const script = [
    CONFIGURED4,
    CONFIGURED6,
    pingAll(ALL_TARGETS),
    `echo '--- neigh'; ip -j neigh show`,
  ].join("\n");
  const [off, control] = await Promise.all([
    inPasta(sb, ["--config-net", "--no-icmp"], script, { timeoutMs: 30_000 }),
    inPasta(sb, ["--config-net"], script, { timeoutMs: 30_000 }),
  ]);
  assert.equal(control.code, 0, show(control));
  assert.deepEqual(
    replies(control.stdout),
    Object.fromEntries(ALL_TARGETS.map((t) => [t, true])),
    show(control),
  );
  assert.equal(off.code, 0, show(off));
  assert.deepEqual(
    replies(off.stdout),
    Object.fromEntries(ALL_TARGETS.map((t) => [t, false])),
    show(off),
  );
  // The link itself works: ARP and NDP resolved the gateway, only the echoes were dropped.
  const neigh = sections(withoutPings(off.stdout)).neigh;
  for (const gateway of [NET.gateway4, NET.gateway6]) {
    assert.ok(
      neigh.some((n: Json) => n.dst === gateway && n.lladdr),
      `${gateway} unresolved: ${JSON.stringify(neigh)}`,
    );
  }
});

// --- 4. turning the DHCP, DHCPv6, NDP and RA responders off -------------------------------

optionsTest("--no-dhcp: udhcpc gets no lease; without it, it does", ["busybox"], async (sb) => {
  const [off, control] = await Promise.all([
    udhcpcLease(sb, ["--no-dhcp"], "nodhcp"),
    udhcpcLease(sb, [], "dhcp"),
  ]);
  assert.equal(control.result.code, 0, show(control.result));
  assert.equal(control.lease?.ip, NET.host4, show(control.result));
  assert.equal(off.lease, undefined, `a lease with --no-dhcp: ${JSON.stringify(off.lease)}`);
  assert.equal(off.result.code, 1, show(off.result));
  assert.match(off.result.stderr, /no lease, failing/, show(off.result));
});

optionsTest("-H and --fqdn: dhclient gets the host name and the client FQDN", [
  "dhclient",
], async (sb) => {
  const names = ["-H", "guest1", "--fqdn", "guest1.example.org"];
  const [v4, v6, plain] = await Promise.all([
    dhclientLease(sb, "-4", names, "named4", { request: "host-name, fqdn.fqdn" }),
    dhclientLease(sb, "-6", names, "named6", { request: "dhcp6.fqdn" }),
    dhclientLease(sb, "-4", [], "unnamed4", { request: "host-name, fqdn.fqdn" }),
  ]);
  assert.equal(v4.lease?.new_host_name, "guest1", show(v4.result));
  assert.equal(v4.lease?.new_fqdn_fqdn, "guest1.example.org", JSON.stringify(v4.lease));
  assert.equal(v4.lease?.new_fqdn_encoded, "true", "flag E: wire format");
  assert.equal(v6.lease?.new_ip6_address, NET.host6, show(v6.result));
  assert.equal(v6.lease?.new_fqdn_fqdn, "guest1.example.org", JSON.stringify(v6.lease));
  assert.ok(plain.lease !== undefined, show(plain.result));
  assert.equal(plain.lease.new_host_name, undefined, "no -H, no host name");
  assert.equal(plain.lease.new_fqdn_fqdn, undefined, "no --fqdn, no client FQDN");
});

optionsTest("--no-dhcpv6: dhclient -6 gets no lease; without it, it does", [
  "dhclient",
], async (sb) => {
  const [off, control] = await Promise.all([
    dhclientLease(sb, "-6", ["--no-dhcpv6"], "nodhcp6", { timeoutSeconds: 3 }),
    dhclientLease(sb, "-6", [], "dhcp6", { timeoutSeconds: 3 }),
  ]);
  assert.equal(control.result.code, 0, show(control.result));
  assert.equal(control.lease?.new_ip6_address, NET.host6, show(control.result));
  assert.equal(off.lease, undefined, `a lease with --no-dhcpv6: ${JSON.stringify(off.lease)}`);
  assert.equal(off.result.code, 2, show(off.result));
  assert.match(off.result.stderr, /Solicit on/, show(off.result));
  assert.doesNotMatch(off.result.stderr, /RCV: Advertise|RCV: Reply/, show(off.result));
});

optionsTest(
  "--no-ra and --no-ndp: no RA, so no SLAAC address or default route; without them, both",
  ["ip", "tcpdump"],
  async (sb) => {
    // Without DAD, the kernel solicits routers as soon as the link is up, then every 4 s;
    // pasta answers at once and also advertises unsolicited when the link comes up.
    const script = [
      NO_DAD,
      LINK_UP,
      LINK_LOCAL_READY,
      "i=0; until ip -6 route show default | grep -q 'via fe80::'; do",
      "  i=$((i+1)); [ $i -le 20 ] || break; sleep 0.1",
      "done",
      IP_STATE,
    ].join("\n");
    const run = (args: string[], tag: string) =>
      inPasta(sb, [...args, "-p", `${sb.dir}/${tag}.pcap`], script, { timeoutMs: 30_000 });
    const [noRa, noNdp, control] = await Promise.all([
      run(["--no-ra"], "nora"),
      run(["--no-ndp"], "nondp"),
      run([], "ra"),
    ]);

    assert.equal(control.code, 0, show(control));
    const c = sections(control.stdout);
    assert.ok(
      addrsOfKind(tapLink(c.addr), "inet6").some((a) => a.startsWith("2001:db8:1:")),
      `no SLAAC address without --no-ra: ${JSON.stringify(c.addr)}`,
    );
    assert.match(c.route6.find((rt: Json) => rt.dst === "default")?.gateway ?? "", /^fe80::/);
    assert.ok(routerAdvertisements(await frames(`${sb.dir}/ra.pcap`)).length > 0);

    for (
      const [option, r, tag] of [["--no-ra", noRa, "nora"], ["--no-ndp", noNdp, "nondp"]] as const
    ) {
      assert.equal(r.code, 0, `${option}: ${show(r)}`);
      const s = sections(r.stdout);
      assert.deepEqual(addrsOfKind(tapLink(s.addr), "inet6"), [], `${option}: ${r.stdout}`);
      assert.equal(s.route6.find((rt: Json) => rt.dst === "default"), undefined, option);
      const all = await frames(`${sb.dir}/${tag}.pcap`);
      // The kernel asked: the silence is pasta's.
      assert.ok(
        all.some((f) => f.includes("ICMP6, router solicitation")),
        `${option}: no Router Solicitation was captured:\n${all.join("")}`,
      );
      assert.deepEqual(routerAdvertisements(all), [], `${option}: an RA was sent`);
    }
  },
);

optionsTest("--no-ndp: neighbour solicitations go unanswered; --no-ra still answers them", [
  "ping",
], async (sb) => {
  const script = [
    CONFIGURED4,
    CONFIGURED6,
    pingAll([NET.gateway4, NET.gateway6]),
    `echo '--- neigh'; ip -j -6 neigh show dev ${IF}`,
  ].join("\n");
  const [noNdp, noRa] = await Promise.all([
    inPasta(sb, ["--config-net", "--no-ndp"], script, { timeoutMs: 30_000 }),
    inPasta(sb, ["--config-net", "--no-ra"], script, { timeoutMs: 30_000 }),
  ]);
  assert.equal(noNdp.code, 0, show(noNdp));
  assert.deepEqual(replies(noNdp.stdout), { [NET.gateway4]: true, [NET.gateway6]: false });
  const entry = sections(withoutPings(noNdp.stdout)).neigh
    .find((n: Json) => n.dst === NET.gateway6);
  assert.equal(entry?.lladdr, undefined, `${NET.gateway6} resolved: ${JSON.stringify(entry)}`);
  assert.equal(noRa.code, 0, show(noRa));
  assert.deepEqual(replies(noRa.stdout), { [NET.gateway4]: true, [NET.gateway6]: true });
});

// --- 5. the RA as the kernel and tcpdump see it -------------------------------------------

optionsTest(
  "kernel SLAAC with -m 1400 --dhcp-dns --dhcp-search: IPv6 MTU 1400; RA has RDNSS, DNSSL",
  ["ip", "tcpdump"],
  async (sb) => {
    const script = [
      LINK_UP,
      shWait(
        `ip -6 addr show dev ${IF} scope global | grep -q 'inet6 2001:db8:1:'`,
        "a SLAAC address",
      ),
      shWait(`ip -6 route show default | grep -q 'via fe80::'`, "a default route via fe80::"),
      `echo "v6mtu=$(cat /proc/sys/net/ipv6/conf/${IF}/mtu)"`,
      // Not /sys/class/net: sysfs shows the namespace of whoever mounted it.
      `echo "linkmtu=$(ip -o link show dev ${IF} | sed -n 's/.* mtu \\([0-9]*\\) .*/\\1/p')"`,
    ].join("\n");
    const [announced, plain] = await Promise.all([
      inPasta(
        sb,
        ["-m", "1400", "--dhcp-dns", "--dhcp-search", "-p", `${sb.dir}/announced.pcap`],
        script,
        { timeoutMs: 30_000 },
      ),
      inPasta(sb, ["-p", `${sb.dir}/plain.pcap`], script, { timeoutMs: 30_000 }),
    ]);

    assert.equal(announced.code, 0, show(announced));
    // The tap's link MTU stays 1500: the 1400 the kernel uses for IPv6 is the RA's.
    assert.match(announced.stdout, /^v6mtu=1400\nlinkmtu=1500$/m, show(announced));
    const ras = routerAdvertisements(await frames(`${sb.dir}/announced.pcap`));
    assert.ok(ras.length > 0, "no RA captured");
    for (const ra of ras) {
      assert.match(ra, /mtu option \(5\), length 8 \(1\): +1400\b/, ra);
      assert.match(ra, /rdnss option \(25\).*addr: 2001:db8:1::1\s*$/m, ra);
      assert.match(ra, /dnssl option \(31\).*domain\(s\): example\.test\.\s*$/m, ra);
    }

    // Without -m, the default 65520 is announced; the kernel ignores an RA MTU above the
    // link's (1500 on a tap). Without --dhcp-dns/--dhcp-search, no RDNSS or DNSSL.
    assert.equal(plain.code, 0, show(plain));
    assert.match(plain.stdout, /^v6mtu=1500\nlinkmtu=1500$/m, show(plain));
    const plainRas = routerAdvertisements(await frames(`${sb.dir}/plain.pcap`));
    assert.ok(plainRas.length > 0, "no RA captured without options");
    for (const ra of plainRas) {
      assert.match(ra, /mtu option \(5\), length 8 \(1\): +65520\b/, ra);
      assert.doesNotMatch(ra, /rdnss|dnssl/, ra);
    }
  },
);

// --- 6. -D and -S -------------------------------------------------------------------------

const DNS4 = "192.0.2.53";
const DNS6 = "2001:db8:1::53";
const SEARCH = "alpha.test beta.test";

optionsTest(
  "-D/-S with --dhcp-dns --dhcp-search: DHCP, DHCPv6 and the RA announce exactly those",
  ["dhclient", "tcpdump"],
  async (sb) => {
    const args = ["--dhcp-dns", "--dhcp-search", "-D", DNS4, "-D", DNS6, "-S", SEARCH];
    const [v4, v6] = await Promise.all([
      dhclientLease(sb, "-4", [...args, "-p", `${sb.dir}/dns.pcap`], "dns4", { awaitRa: true }),
      dhclientLease(sb, "-6", args, "dns6"),
    ]);
    assert.equal(v4.result.code, 0, show(v4.result));
    assert.ok(v4.lease, `dhclient -4 got no lease: ${show(v4.result)}`);
    assert.equal(v4.lease.new_domain_name_servers, DNS4);
    assert.equal(v4.lease.new_domain_search, "alpha.test. beta.test.");
    // Option 15 is optional; if sent, it is the first search domain, not resolv.conf's.
    if (v4.lease.new_domain_name !== undefined) {
      assert.equal(v4.lease.new_domain_name, "alpha.test");
    }
    assert.ok(v6.lease, `dhclient -6 got no lease: ${show(v6.result)}`);
    assert.equal(v6.lease.new_dhcp6_name_servers, DNS6);
    assert.equal(v6.lease.new_dhcp6_domain_search, "alpha.test. beta.test.");
    const ras = routerAdvertisements(await frames(`${sb.dir}/dns.pcap`));
    assert.ok(ras.length > 0, "no RA captured");
    for (const ra of ras) {
      assert.match(ra, /rdnss option \(25\).*addr: 2001:db8:1::53\s*$/m, ra);
      assert.match(ra, /dnssl option \(31\).*domain\(s\): alpha\.test\. beta\.test\.\s*$/m, ra);
    }
  },
);

optionsTest("-D none -S none with --dhcp-dns --dhcp-search: no nameserver, no search list", [
  "dhclient",
  "tcpdump",
], async (sb) => {
  const args = ["--dhcp-dns", "--dhcp-search", "-D", "none", "-S", "none"];
  const [v4, v6] = await Promise.all([
    dhclientLease(sb, "-4", [...args, "-p", `${sb.dir}/none.pcap`], "none4", { awaitRa: true }),
    dhclientLease(sb, "-6", args, "none6"),
  ]);
  assert.equal(v4.result.code, 0, show(v4.result));
  assert.ok(v4.lease, `dhclient -4 got no lease: ${show(v4.result)}`);
  assert.equal(v4.lease.new_ip_address, NET.host4);
  assert.equal(v4.lease.new_domain_name_servers, undefined);
  assert.equal(v4.lease.new_domain_search, undefined);
  assert.equal(v4.lease.new_domain_name, undefined);
  assert.ok(v6.lease, `dhclient -6 got no lease: ${show(v6.result)}`);
  assert.equal(v6.lease.new_ip6_address, NET.host6);
  assert.equal(v6.lease.new_dhcp6_name_servers, undefined);
  assert.equal(v6.lease.new_dhcp6_domain_search, undefined);
  const ras = routerAdvertisements(await frames(`${sb.dir}/none.pcap`));
  assert.ok(ras.length > 0, "no RA captured");
  for (const ra of ras) assert.doesNotMatch(ra, /rdnss|dnssl/, ra);
});

// --- 7. no command: a shell ---------------------------------------------------------------

optionsTest(
  "no command: $SHELL, else /bin/sh, reads stdin as root in new user, net and UTS namespaces",
  [],
  async (sb) => {
    const shell = await writeScript(
      sb,
      "test-shell",
      '#!/bin/sh\necho "test shell started"\nexec /bin/sh "$@"\n',
    );
    const ns = "readlink /proc/self/ns/user /proc/self/ns/net /proc/self/ns/uts";
    const [custom, fallback, outside] = await Promise.all([
      pasta(sb, ["--config-net"], {
        stdin: `id -u\n${ns}\nexit 3\n`,
        env: { SHELL: shell },
        timeoutMs: 20_000,
      }),
      // sb.run sets no SHELL: pasta falls back to /bin/sh.
      pasta(sb, ["--config-net"], { stdin: 'echo "shell=$0"\nexit 5\n', timeoutMs: 20_000 }),
      sb.run(["sh", "-c", ns], { user: true }),
    ]);
    assert.equal(custom.code, 3, show(custom));
    const lines = custom.stdout.trim().split("\n");
    assert.equal(lines[0], "test shell started", show(custom));
    assert.equal(lines[1], "0", `not root in the namespace: ${show(custom)}`);
    const inside = lines.slice(2);
    const before = outside.stdout.trim().split("\n");
    assert.equal(inside.length, 3, show(custom));
    for (const [i, kind] of ["user", "net", "uts"].entries()) {
      assert.match(inside[i]!, new RegExp(`^${kind}:\\[\\d+\\]$`));
      assert.notEqual(inside[i], before[i], `the command shares the caller's ${kind} namespace`);
    }
    assert.equal(fallback.code, 5, show(fallback));
    assert.match(fallback.stdout, /^shell=-?(\/bin\/)?sh$/m, show(fallback));
  },
);

// --- 8. --netns NAME, --netns-only --------------------------------------------------------

optionsTest("--netns NAME (/run/netns/NAME): served, traffic passes, quits with it", [
  "ping",
], async (sb) => {
  const holder = await namespaceHolder(sb);
  await nameNamespace(sb, holder.pid, "opt");
  const p = await sb.spawn(
    [PASTA, "--config-net", "-f", "--netns", "opt", "--userns", `/proc/${holder.pid}/ns/user`],
    { user: true, timeoutMs: 60_000 },
  );
  assert.ok(await sb.waitFor(() => configuredNamed(sb, "opt"), 10_000), "opt not configured");
  const ping = await inNamedNamespace(
    sb,
    "opt",
    [CONFIGURED4, CONFIGURED6, pingAll([NET.remote4, NET.remote6])].join("\n"),
  );
  assert.deepEqual(replies(ping.stdout), { [NET.remote4]: true, [NET.remote6]: true }, show(ping));
  const del = await sb.run(["ip", "netns", "del", "opt"]);
  assert.equal(del.code, 0, show(del));
  assert.ok(
    await sb.waitFor(async () => !(await p.alive()), 10_000),
    "pasta still runs after ip netns del",
  );
  // In the foreground, "the target namespace went away" is exit status 0.
  const r = await p.result;
  assert.equal(r.code, 0, show(r));
  await holder.kill();
});

optionsTest(
  "--netns-only: PID's user namespace is not joined; inside it (as Podman runs pasta) it serves",
  ["ping"],
  async (sb) => {
    const holder = await namespaceHolder(sb);
    // From outside the holder's user namespace, the network namespace can only be joined
    // through it: --netns-only forbids that, so setup fails.
    const refused = await pasta(sb, ["-f", "--config-net", "--netns-only", String(holder.pid)], {
      timeoutMs: 15_000,
    });
    assert.equal(refused.code, 1, show(refused));
    assert.match(refused.stderr, /EPERM|not permitted/i, show(refused));
    assert.equal(refused.stderr.trim().split("\n").length, 1, `not one line: ${show(refused)}`);

    // Started in the holder's user namespace (root there), pasta joins the named network
    // namespace only, and its process stays in that user namespace.
    await nameNamespace(sb, holder.pid, "podman");
    const p = await sb.spawn(
      [
        "nsenter",
        "-t",
        String(holder.pid),
        "--user",
        "--preserve-credentials",
        "--",
        PASTA,
        "-f",
        "--config-net",
        "--netns-only",
        "--netns",
        "podman",
      ],
      { user: true, timeoutMs: 60_000 },
    );
    assert.ok(
      await sb.waitFor(() => configuredNamed(sb, "podman"), 10_000),
      `pasta --netns-only did not configure the namespace: ${await early(p)}`,
    );
    const ping = await inNamedNamespace(
      sb,
      "podman",
      [CONFIGURED4, pingAll([NET.gateway4, NET.remote4])].join("\n"),
    );
    assert.deepEqual(replies(ping.stdout), { [NET.gateway4]: true, [NET.remote4]: true });
    const userns = await sb.run([
      "readlink",
      `/proc/${p.pid}/ns/user`,
      `/proc/${holder.pid}/ns/user`,
    ]);
    const [pastaUserns, holderUserns] = userns.stdout.trim().split("\n");
    assert.ok(pastaUserns, show(userns));
    assert.equal(pastaUserns, holderUserns, "pasta moved to another user namespace");
    await p.kill();
    await holder.kill();
  },
);

// --- 9. the start-up summary --------------------------------------------------------------

optionsTest("start-up summary: interfaces and the ARP, DHCP and NDP answers; -q: none", [
  "ip",
], async (sb) => {
  const args = ["--config-net", "-M", OUR_MAC, "--", "true"];
  const [loud, quiet] = await Promise.all([pasta(sb, args), pasta(sb, ["-q", ...args])]);
  assert.equal(loud.code, 0, show(loud));
  const lines = loud.stderr.split("\n").map((l) => l.replace(/^pasta: /, "").trimEnd());
  const first = lines.indexOf(`Outbound interface: ${IF}, namespace interface: ${IF}`);
  assert.ok(first >= 0, `no outbound interface line: ${show(loud)}`);
  const summary = lines.slice(first, first + 10);
  assert.deepEqual(summary.slice(0, 9), [
    `Outbound interface: ${IF}, namespace interface: ${IF}`,
    "ARP:",
    `    address: ${OUR_MAC}`,
    "DHCP:",
    `    assign: ${NET.host4}`,
    "    mask: 255.255.255.0",
    `    router: ${NET.gateway4}`,
    "NDP/DHCPv6:",
    `    assign: ${NET.host6}`,
  ], show(loud));
  assert.match(summary[9] ?? "", /^ {4}router: fe80::[0-9a-f:]+$/, show(loud));

  assert.equal(quiet.code, 0, show(quiet));
  assert.doesNotMatch(
    quiet.stderr,
    /Outbound interface|namespace interface|ARP:|DHCP:|NDP\/DHCPv6:|assign:|router:/,
    show(quiet),
  );
});

// --- 10. -4, -6, -i, --outbound-if4/6 -----------------------------------------------------

optionsTest("-4: no IPv6 from --config-net; -6: no IPv4; the other version works", [
  "ping",
], async (sb) => {
  const state = [IP_STATE, pingAll([NET.remote4, NET.remote6])];
  const [only4, only6] = await Promise.all([
    // Past DAD, the kernel has solicited routers: an RA would have given it an address.
    inPasta(
      sb,
      ["--config-net", "-4"],
      [CONFIGURED4, LINK_LOCAL_READY, "sleep 1", ...state].join("\n"),
      { timeoutMs: 30_000 },
    ),
    inPasta(sb, ["--config-net", "-6"], [CONFIGURED6, ...state].join("\n"), { timeoutMs: 30_000 }),
  ]);

  assert.equal(only4.code, 0, show(only4));
  const s4 = sections(withoutPings(only4.stdout));
  const link4 = tapLink(s4.addr);
  assert.deepEqual(addrsOfKind(link4, "inet"), [`${NET.host4}/${NET.prefix4}`]);
  assert.deepEqual(addrsOfKind(link4, "inet6"), [], `IPv6 with -4: ${JSON.stringify(link4)}`);
  assert.equal(s4.route6.find((rt: Json) => rt.dst === "default"), undefined, "IPv6 default");
  assert.deepEqual(replies(only4.stdout), { [NET.remote4]: true, [NET.remote6]: false });

  assert.equal(only6.code, 0, show(only6));
  const s6 = sections(withoutPings(only6.stdout));
  const link6 = tapLink(s6.addr);
  assert.deepEqual(addrsOfKind(link6, "inet"), [], `IPv4 with -6: ${JSON.stringify(link6)}`);
  assert.ok(addrsOf(link6).includes(`${NET.host6}/${NET.prefix6}`), JSON.stringify(link6));
  assert.deepEqual(s6.route4, [], "IPv4 routes with -6");
  assert.deepEqual(replies(only6.stdout), { [NET.remote4]: false, [NET.remote6]: true });
});

optionsTest(
  "-i and --outbound-if4/6: addresses from the named interface, traffic passes through it",
  ["ping"],
  async (sb) => {
    // A second interface in the sandbox's host namespace (both ends of a veth pair stay
    // there): its addresses are what -i aux0 must hand to the namespace.
    const aux = await sb.run([
      "sh",
      "-c",
      [
        "ip link add aux0 type veth peer name aux1",
        "ip link set aux1 up && ip link set aux0 up",
        "ip addr add 198.51.100.2/24 dev aux0",
        "ip -6 addr add 2001:db8:9::2/64 dev aux0 nodad",
      ].join(" && "),
    ]);
    assert.equal(aux.code, 0, show(aux));

    const helper = new URL("./transport.py", import.meta.url).pathname;
    const pings = [CONFIGURED4, CONFIGURED6, pingAll([NET.remote4, NET.remote6])].join("\n");
    // One TCP echo server per IP version in the remote namespace (asyncio makes "::"
    // IPv6-only), each taking one connection.
    const tcpServer = async (addr: string, bind: string, port: number) => {
      const ready = `${sb.dir}/tcp-${port}`;
      const argv = [PYTHON, helper, "many-server", bind, String(port), "1", ready];
      const p = await sb.spawn(argv, { remote: true, timeoutMs: 60_000 });
      return { addr, port, ready, p };
    };
    const servers = [
      await tcpServer(NET.remote4, "0.0.0.0", 12000),
      await tcpServer(NET.remote6, "::", 12001),
    ];
    const tcpClient = (addr: string, port: number) =>
      [PYTHON, helper, "many-client", addr, String(port), "1", "4096"].map(shellQuote).join(" ");
    const traffic = [
      pings,
      ...servers.flatMap((s) => [
        shWait(`[ -e ${s.ready} ]`, "the TCP server"),
        `echo "tcp ${s.addr} $(${tcpClient(s.addr, s.port)})"`,
      ]),
    ].join("\n");
    const addrs = [
      shWait("ip -4 addr show | grep -q 198.51.100.2", "the address from aux0"),
      "echo '--- addr'; ip -j addr show",
    ].join("\n");
    const [byI, byOutbound, iAux, outboundAux, unknownI, unknownOut] = await Promise.all([
      inPasta(sb, ["--config-net", "-i", IF], pings, { timeoutMs: 30_000 }),
      inPasta(sb, ["--config-net", "--outbound-if4", IF, "--outbound-if6", IF], traffic, {
        timeoutMs: 40_000,
      }),
      inPasta(sb, ["--config-net", "-i", "aux0"], addrs),
      inPasta(sb, ["--config-net", "--outbound-if4", "aux0"], addrs),
      pasta(sb, ["--config-net", "-i", "nosuch0", "--", "true"]),
      pasta(sb, ["--config-net", "--outbound-if4", "nosuch0", "--", "true"]),
    ]);

    assert.equal(byI.code, 0, show(byI));
    assert.deepEqual(replies(byI.stdout), { [NET.remote4]: true, [NET.remote6]: true }, show(byI));
    assert.equal(byOutbound.code, 0, show(byOutbound));
    assert.deepEqual(
      replies(byOutbound.stdout),
      { [NET.remote4]: true, [NET.remote6]: true },
      show(byOutbound),
    );
    for (const { addr, p } of servers) {
      const line = byOutbound.stdout.match(new RegExp(`^tcp ${addr} (.*)$`, "m"))?.[1] ?? "{}";
      assert.equal(JSON.parse(line).ok, 1, `TCP to ${addr}: ${show(byOutbound)}`);
      const served = await p.result;
      assert.match(served.stdout, /"ok": ?1/, show(served));
    }

    // -i aux0: both versions from aux0, and the tap is named after it.
    assert.equal(iAux.code, 0, show(iAux));
    const linkI = tapLink(sections(iAux.stdout).addr, "aux0");
    assert.deepEqual(addrsOfKind(linkI, "inet"), ["198.51.100.2/24"]);
    assert.ok(addrsOf(linkI).includes("2001:db8:9::2/64"), JSON.stringify(linkI));
    assert.ok(!addrsOf(linkI).includes(`${NET.host6}/${NET.prefix6}`), JSON.stringify(linkI));
    // --outbound-if4 aux0: IPv4 from aux0, IPv6 still from eth0's default route.
    assert.equal(outboundAux.code, 0, show(outboundAux));
    const links = sections(outboundAux.stdout).addr.filter((l: Json) => l.ifname !== "lo");
    assert.equal(links.length, 1, JSON.stringify(links));
    assert.deepEqual(addrsOfKind(links[0], "inet"), ["198.51.100.2/24"]);
    assert.ok(addrsOf(links[0]).includes(`${NET.host6}/${NET.prefix6}`), JSON.stringify(links));

    for (const r of [unknownI, unknownOut]) {
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, /nosuch0/, show(r));
      assert.equal(r.stderr.trim().split("\n").length, 1, `not one line: ${show(r)}`);
    }
  },
);

optionsTest("--stats 1 -f: event counts per descriptor kind on stderr", ["ping"], async (sb) => {
  const script = `${CONFIGURED4}\nping -c 6 -i 0.5 ${NET.gateway4} > /dev/null\necho done`;
  const r = await inPasta(sb, ["-f", "--stats", "1", "--config-net"], script, {
    timeoutMs: 30_000,
  });
  assert.equal(r.code, 0, show(r));
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("stats:"));
  const header = lines[0]?.split(" ").slice(1) ?? [];
  const tap = header.indexOf("tap");
  assert.ok(tap >= 0, `no tap column: ${r.stderr}`);
  const counts = lines.filter((l) => /^stats:( \d+)+$/.test(l));
  assert.ok(counts.length >= 2, `at least two reports in 3 s of pings: ${r.stderr}`);
  const last = counts.at(-1)!.split(" ").slice(1).map(Number);
  assert.equal(last.length, header.length, "one count per column");
  assert.ok(last[tap]! >= 6, `tap events counted: ${counts.at(-1)}`);
  const quiet = await inPasta(sb, ["-f", "--config-net"], "true");
  assert.doesNotMatch(quiet.stderr, /^stats:/m, "no statistics without --stats");
});

optionsTest("-a ADDR/LEN: dhclient gets that address and the prefix length's netmask", [
  "dhclient",
], async (sb) => {
  const cidr = await dhclientLease(sb, "-4", ["-a", `${NET.host4}/16`], "cidr");
  assert.equal(cidr.lease?.new_ip_address, NET.host4, show(cidr.result));
  assert.equal(cidr.lease?.new_subnet_mask, "255.255.0.0", JSON.stringify(cidr.lease));
});
