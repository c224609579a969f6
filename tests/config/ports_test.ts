import assert from "node:assert/strict";
import {
  describePortForwarding,
  FORWARD_AUTO,
  FORWARD_NONE,
  type PortForwarding,
  portRules,
  PortTableBuilder,
  portTarget,
  udpFromTcp,
} from "../../src/config/ports.ts";
import { formatIp } from "../../src/addr.ts";
import type { Mode } from "../../src/config/config.ts";

function table(mode: Mode, ...specs: string[]): PortForwarding {
  const builder = new PortTableBuilder("--tcp-ports", mode, true);
  for (const spec of specs) builder.add(spec);
  return builder.build(mode === "passt" ? FORWARD_NONE : FORWARD_AUTO);
}

function fails(mode: Mode, specs: string[], message: string, option = "--tcp-ports"): void {
  const builder = new PortTableBuilder(option, mode, option !== "--tcp-ns");
  assert.throws(() => {
    for (const spec of specs) builder.add(spec);
  }, { name: "ConfigError", message });
}

// Every example of the manual, for both modes: spec → table in describePortForwarding form.
const MANUAL_EXAMPLES: [string, string][] = [
  ["22", "22"],
  ["22:23", "22:23"],
  ["22,25", "22,25"],
  ["22-80", "22-80"],
  ["22-80:32-90", "22-80:32-90"],
  ["192.0.2.1/22", "192.0.2.1/22"],
  ["192.0.2.1%eth0/22", "192.0.2.1%eth0/22"],
  ["%eth0/22", "%eth0/22"],
  ["2000-5000,~3000-3010", "2000-2999,3011-5000"],
  ["192.0.2.1/20-30,~25", "192.0.2.1/20-24,192.0.2.1/26-30"],
  ["~20000-20010", "1-19999,20011-49151"],
];

Deno.test("the manual's examples, in both modes", () => {
  for (const mode of ["passt", "pasta"] as const) {
    for (const [spec, expected] of MANUAL_EXAMPLES) {
      const t = table(mode, spec);
      assert.equal(t.mode, "spec", spec);
      assert.equal(describePortForwarding(t), expected, `${mode} -t ${spec}`);
    }
  }
});

Deno.test("lookups answer target port and bindings", () => {
  const t = table("passt", "22-80:32-90");
  assert.equal(portTarget(t, 22), 32);
  assert.equal(portTarget(t, 50), 60);
  assert.equal(portTarget(t, 80), 90);
  assert.equal(portTarget(t, 21), -1);
  assert.equal(portTarget(t, 81), -1);

  const bound = table("passt", "192.0.2.1%eth0/22");
  const [rule, ...more] = portRules(bound, 22);
  assert.ok(rule !== undefined && more.length === 0);
  assert.equal(formatIp(rule.bindAddr!), "192.0.2.1");
  assert.equal(rule.bindIfname, "eth0");
  assert.equal(rule.bestEffort, false);
  assert.deepEqual(portRules(bound, 23), []);

  const excluded = table("passt", "2000-5000,~3000-3010");
  assert.equal(portTarget(excluded, 2999), 2999);
  assert.equal(portTarget(excluded, 3000), -1);
  assert.equal(portTarget(excluded, 3010), -1);
  assert.equal(portTarget(excluded, 3011), 3011);
  assert.deepEqual(excluded.excluded, [{ first: 3000, last: 3010 }]);

  const allBut = table("passt", "~20000-20010");
  assert.equal(portTarget(allBut, 1), 1);
  assert.equal(portTarget(allBut, 20005), -1);
  assert.equal(portTarget(allBut, 49151), 49151);
  assert.equal(portTarget(allBut, 49152), -1);
  assert.ok(allBut.rules.every((r) => r.bestEffort));

  // Auto tables know nothing until run time.
  assert.equal(portTarget(FORWARD_AUTO, 22), -1);
});

Deno.test("exclusions with mapping and in any order", () => {
  assert.equal(
    describePortForwarding(table("passt", "~25,20-30:120-130")),
    "20-24:120-124,26-30:126-130",
  );
  assert.equal(describePortForwarding(table("passt", "1-10,~1,~10,~5-6")), "2-4,7-9");
  // A range swallowed whole by an exclusion disappears.
  assert.equal(describePortForwarding(table("passt", "5,7,~5")), "7");
  // Exclusions only apply within their own option: a later one may add the port back.
  assert.equal(describePortForwarding(table("passt", "~22", "22:2222")), "1-21,23-49151,22:2222");
});

Deno.test("keywords: none, auto (pasta), all (passt)", () => {
  assert.equal(table("passt", "none"), FORWARD_NONE);
  assert.equal(table("pasta", "auto"), FORWARD_AUTO);
  const all = table("passt", "all");
  assert.equal(all.mode, "all");
  assert.equal(describePortForwarding(all), "1-49151");
  assert.ok(all.rules.every((r) => r.bestEffort));
  assert.equal(table("passt"), FORWARD_NONE);
  assert.equal(table("pasta"), FORWARD_AUTO);
});

Deno.test("several options accumulate", () => {
  const t = table("passt", "22", "80:8080", "192.0.2.1/443", "198.51.100.1/443");
  assert.equal(describePortForwarding(t), "22,80:8080,192.0.2.1/443,198.51.100.1/443");
  assert.equal(portRules(t, 443).length, 2);
  assert.equal(portTarget(t, 80), 8080);
});

Deno.test("IPv6 bind addresses, bracketed or not, with or without interface", () => {
  assert.equal(describePortForwarding(table("passt", "2001:db8::1/22")), "2001:db8::1/22");
  assert.equal(describePortForwarding(table("passt", "[2001:db8::1]/22")), "2001:db8::1/22");
  assert.equal(describePortForwarding(table("passt", "[192.0.2.1]/22")), "192.0.2.1/22");
  assert.equal(describePortForwarding(table("passt", "fe80::1%eth0/22")), "fe80::1%eth0/22");
  assert.equal(describePortForwarding(table("passt", "::/22")), "::/22");
});

Deno.test("UDP following TCP keeps ports and bindings, drops translation", () => {
  const tcp = table("passt", "192.0.2.1/22:2222", "80-90:8080-8090");
  assert.equal(describePortForwarding(udpFromTcp(tcp)), "192.0.2.1/22,80-90");
  assert.equal(udpFromTcp(FORWARD_AUTO), FORWARD_AUTO);
  assert.equal(udpFromTcp(FORWARD_NONE), FORWARD_NONE);
  assert.equal(udpFromTcp(table("passt", "all")).mode, "all");
});

Deno.test("tables are frozen", () => {
  const t = table("passt", "22");
  assert.ok(Object.isFrozen(t) && Object.isFrozen(t.rules) && Object.isFrozen(t.rules[0]));
});

Deno.test("malformed specifications", () => {
  const bad = (spec: string, reason: string) =>
    fails("passt", [spec], `Invalid port specifier for --tcp-ports: ${spec} (${reason})`);
  bad("", "empty item");
  bad("22,", "empty item");
  bad(",22", "empty item");
  bad("22,,25", "empty item");
  bad("192.0.2.1/", "empty item");
  bad("22-", "bad range '22-'");
  bad("-22", "bad range '-22'");
  bad("a", "bad range 'a'");
  bad("22 ", "bad range '22 '");
  bad("+22", "bad range '+22'");
  bad("0x16", "bad range '0x16'");
  bad("22:", "bad range ''");
  bad("22:23:24", "bad range '23:24'");
  bad("~22:23", "bad range '22:23'");
  bad("~", "bad range ''");
  bad("0", "port 0 out of range 1-65535");
  bad("0-10", "port 0 out of range 1-65535");
  bad("70000", "port 70000 out of range 1-65535");
  bad("65535-65536", "port 65536 out of range 1-65535");
  bad("22:0", "port 0 out of range 1-65535");
  bad("80-22", "range '80-22' is reversed");
  bad("22-80:32-91", "'22-80:32-91' maps ranges of different sizes");
  bad("22-23:30", "'22-23:30' maps ranges of different sizes");
  bad("22:30-31", "'22:30-31' maps ranges of different sizes");
  bad("1.2.3/22", "bad address '1.2.3'");
  bad("/22", "bad address ''");
  bad("[::1/22", "bad address '[::1'");
  bad("host/22", "bad address 'host'");
  bad("%/22", "bad interface name ''");
  bad("1.2.3.4%averyveryverylongname/22", "bad interface name 'averyveryverylongname'");
  bad("NONE", "bad range 'NONE'");
});

Deno.test("contradictions between ranges and options", () => {
  const overlap = (specs: string[], port: number) =>
    fails(
      "passt",
      specs,
      `Overlapping port specifier for --tcp-ports: ${
        specs[specs.length - 1]
      } (port ${port} given twice)`,
    );
  overlap(["22,22"], 22);
  overlap(["20-30,25"], 25);
  overlap(["22", "22"], 22);
  overlap(["22", "192.0.2.1/22"], 22); // a wildcard listener collides with any other
  overlap(["192.0.2.1/22:23", "198.51.100.1/22:24"], 22); // one target per port
  overlap(["192.0.2.1/22", "192.0.2.1/20-30"], 22);
  overlap(["~1000", "999:1001"], 999);
  fails("passt", ["~20-30,~25"], "Overlapping excluded ranges for --tcp-ports: ~20-30,~25");
  fails("passt", ["~20-30,~30-40"], "Overlapping excluded ranges for --tcp-ports: ~20-30,~30-40");

  fails("passt", ["auto"], "'auto' port forwarding is only allowed for pasta: --tcp-ports auto");
  // The 2026 manual allows 'all' in pasta too ("-t all ... on the guest or namespace").
  assert.equal(describePortForwarding(table("pasta", "all")), "1-49151");
  fails(
    "passt",
    ["none", "none"],
    "Port forwarding mode 'none' conflicts with previous --tcp-ports: none",
  );
  fails(
    "passt",
    ["22", "all"],
    "Port forwarding mode 'all' conflicts with previous --tcp-ports: all",
  );
  fails(
    "pasta",
    ["22", "auto"],
    "Port forwarding mode 'auto' conflicts with previous --tcp-ports: auto",
  );
  fails(
    "pasta",
    ["none", "auto"],
    "Port forwarding mode 'auto' conflicts with previous --tcp-ports: auto",
  );
  fails(
    "passt",
    ["all", "22"],
    "Specific ports cannot be combined with all, none or auto: --tcp-ports 22",
  );
  fails(
    "pasta",
    ["auto", "~22"],
    "Specific ports cannot be combined with all, none or auto: --tcp-ports ~22",
  );
  fails(
    "pasta",
    ["127.0.0.1/22"],
    "Invalid port specifier for --tcp-ns: 127.0.0.1/22 (no bind address or interface allowed for --tcp-ns)",
    "--tcp-ns",
  );
});

// The examples the 2026 manual adds: spec → mode and table in describePortForwarding form.
const MANUAL_2026_EXAMPLES: [Mode, string, string, string][] = [
  ["passt", "::1/all", "all", "::1/1-49151"],
  ["pasta", "all", "all", "1-49151"],
  ["passt", "0.0.0.0/5000:192.0.2.5/6000", "spec", "0.0.0.0/5000:192.0.2.5/6000"],
  ["pasta", "127.0.0.6/all:192.0.2.6", "all", "127.0.0.6/1-49151:192.0.2.6/1-49151"],
  ["pasta", "::1/auto", "auto", "::1/1-65535,auto"],
  ["pasta", "8000-8010,auto", "auto", "8000-8010,auto"],
  ["pasta", "auto", "auto", "auto"],
  // target address only, IPv6 target in brackets, "*" for any address
  ["passt", "22:192.0.2.9", "spec", "22:192.0.2.9/22"],
  ["passt", "[::1]/80-81:[2001:db8::5]/8080-8081", "spec", "::1/80-81:[2001:db8::5]/8080-8081"],
  ["passt", "2001:db8::1/443:2001:db8::5/8443", "spec", "2001:db8::1/443:[2001:db8::5]/8443"],
  ["passt", "*/22", "spec", "22"],
  ["passt", "*%eth0/22", "spec", "%eth0/22"],
  ["passt", "all,~22", "all", "1-21,23-49151"],
];

Deno.test("the 2026 manual's additions: target addresses, all with an address, auto sets", () => {
  for (const [mode, spec, kind, expected] of MANUAL_2026_EXAMPLES) {
    const t = table(mode, spec);
    assert.equal(t.mode, kind, `${mode} -t ${spec}`);
    assert.equal(describePortForwarding(t), expected, `${mode} -t ${spec}`);
  }
  const t = table("passt", "0.0.0.0/5000:192.0.2.5/6000");
  assert.equal(formatIp(t.rules[0]!.targetAddr!), "192.0.2.5");
  assert.equal(t.rules[0]!.targetFirst, 6000);
  assert.equal(table("passt", "22").rules[0]!.targetAddr, undefined);
  assert.equal(table("pasta", "auto"), FORWARD_AUTO, "plain auto is still the shared table");
  const restricted = table("pasta", "8000-8010,auto");
  assert.equal(udpFromTcp(restricted).mode, "auto");
  assert.equal(describePortForwarding(udpFromTcp(restricted)), "8000-8010,auto");
  const bad = (spec: string, reason: string, option = "--tcp-ports") =>
    fails("passt", [spec], `Invalid port specifier for ${option}: ${spec} (${reason})`, option);
  bad("0.0.0.0/22:2001:db8::5/22", "target '2001:db8::5' is not of the listening address's family");
  bad("22:0.0.0.0/22", "target address '0.0.0.0' is not a unicast address");
  bad("22:224.0.0.1", "target address '224.0.0.1' is not a unicast address");
  bad("22:nowhere/22", "bad target address 'nowhere'");
  bad("all:nowhere", "bad target address 'nowhere'");
  fails(
    "pasta",
    ["22:127.0.0.2"],
    "Invalid port specifier for --tcp-ns: 22:127.0.0.2 (no target address allowed for --tcp-ns)",
    "--tcp-ns",
  );
  fails(
    "passt",
    ["8000,auto"],
    "'auto' port forwarding is only allowed for pasta: --tcp-ports 8000,auto",
  );
  fails(
    "passt",
    ["192.0.2.1/22:192.0.2.5", "198.51.100.1/22:192.0.2.6"],
    "Overlapping port specifier for --tcp-ports: 198.51.100.1/22:192.0.2.6 (port 22 given twice)",
  );
});
