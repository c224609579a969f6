/**
 * Hostile input on the tap: a bounded run of the property-based fuzzer
 * (tests/fuzz/_driver.ts) against the whole data path, in the test sandbox.
 * `make fuzz` runs many more cases (FUZZ_RUNS, default 200000).
 *
 * Every case feeds generated and mutated frames (Ethernet, ARP, IPv4 with options
 * and fragments, IPv6 with extension headers, TCP with options and answers to our
 * own segments, UDP, DHCP, DHCPv6, ICMP, NDP, truncated or extended) to a fresh
 * data path and checks: nothing throws, every frame sent back is well-formed and
 * answers something the guest did, and close() leaves no flow and no descriptor.
 * A failure prints the frames in hex and the FUZZ_SEED/FUZZ_PATH to replay it.
 */
import assert from "node:assert/strict";
import { sandboxUnavailable } from "../sandbox/sandbox.ts";
import { fetchDependencies, randomSeed, runFuzz } from "./_run.ts";

/** Cases in `make check`: about 10 s. */
const CHECK_RUNS = Number(Deno.env.get("FUZZ_CHECK_RUNS") ?? 1200);

const ignored = sandboxUnavailable() ?? fetchDependencies();
if (ignored) console.error(`tests/fuzz/tap_fuzz_test.ts ignored: ${ignored}`);

Deno.test({
  name: `fuzz: the tap data path survives ${CHECK_RUNS} cases of hostile frames`,
  ignore: ignored !== undefined,
  fn: async () => {
    const seed = Deno.env.get("FUZZ_SEED") !== undefined
      ? Number(Deno.env.get("FUZZ_SEED"))
      : randomSeed();
    // Printed before the run, so that the test log of any run (CI's included) says
    // how to replay it, whatever happens next.
    const replay = `FUZZ_SEED=${seed} FUZZ_CHECK_RUNS=${CHECK_RUNS}`;
    console.log(`fuzz: ${replay}; replay: ${replay} deno test -A tests/fuzz/tap_fuzz_test.ts`);
    const r = await runFuzz({ runs: CHECK_RUNS, seed, timeoutMs: 120_000 });
    const output = `${r.stdout}\n${r.stderr}`;
    assert.ok(!r.timedOut, `the fuzz run timed out (${replay}):\n${output}`);
    assert.equal(r.code, 0, `the fuzzer found a failure (${replay}):\n${output}`);
    // The generators reach every service: a regression there would go unnoticed.
    for (const kind of ["arp", "dhcp", "tcp-syn", "tcp", "udp", "echo", "ndp-"]) {
      assert.match(
        r.stdout,
        new RegExp(`sent to the guest:.*\\b${kind}`),
        `no ${kind} reply (${replay})`,
      );
    }
  },
});
