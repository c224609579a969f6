import assert from "node:assert/strict";
import { planNetwork } from "../../src/config/network.ts";
import { parseCommandLine } from "../../src/config/options.ts";
import type { Config } from "../../src/config/config.ts";
import type { HostInfo } from "../../src/netlink/host.ts";
import type { ResolvConf } from "../../src/config/resolv.ts";
import { formatIp } from "../../src/addr.ts";

const NO_HOST: HostInfo = {
  ipv4: undefined,
  ipv6: undefined,
  mac: undefined,
  disabledReason: { ipv4: "no route", ipv6: "no route" },
};
const NO_RESOLV: ResolvConf = {
  nameservers: [],
  nameservers4: [],
  nameservers6: [],
  search: [],
  skipped: 0,
};

function config(args: string[]): Config {
  const r = parseCommandLine("pasta", args);
  assert.equal(r.action, "run");
  return (r as { config: Config }).config;
}

Deno.test("--splice-only needs no host interface: both versions on, -4/-6 respected", () => {
  assert.throws(() => planNetwork(config([]), NO_HOST, NO_RESOLV), /no IPv4 or IPv6 address/);
  const plan = planNetwork(config(["--splice-only"]), NO_HOST, NO_RESOLV);
  assert.equal(formatIp(plan.ip4!.address), "127.0.0.1");
  assert.equal(formatIp(plan.ip6!.address), "::1");
  assert.equal(plan.dhcp, false, "nothing to hand out");
  const v4 = planNetwork(config(["--splice-only", "-4"]), NO_HOST, NO_RESOLV);
  assert.ok(v4.ip4 !== undefined && v4.ip6 === undefined);
});
