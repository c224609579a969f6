/**
 * Listening sockets for forwarded ports and pasta's "auto" detection. Every case
 * runs _forward_probe.ts inside a throwaway user+network namespace (`unshare -rn`)
 * where only `lo` exists (plus, for the binding case, an unattached tap device),
 * so nothing binds or connects on the host's network; skipped where unprivileged
 * namespaces are not available. The /proc/net parser also runs here, on a file.
 */

import assert from "node:assert/strict";
import { AF, O } from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { ProcNetScanner } from "../../src/flow/autodetect.ts";

const PROBE = new URL("./_forward_probe.ts", import.meta.url).pathname;

function canUnshare(): boolean {
  try {
    return new Deno.Command("unshare", { args: ["-rn", "true"] }).outputSync().success;
  } catch {
    return false;
  }
}
const ignore = !canUnshare();

/** Run probe `name` in a new namespace after the shell commands `setup`; its JSON. */
// deno-lint-ignore no-explicit-any
async function probe(name: string, setup: string[] = []): Promise<any> {
  const script = [
    "ip link set lo up",
    ...setup,
    'exec timeout 60 "$DENO" run -A --quiet "$PROBE" "$CASE"',
  ].join(" && ");
  const out = await new Deno.Command("unshare", {
    args: ["-rn", "sh", "-ec", script],
    env: { DENO: Deno.execPath(), PROBE, CASE: name },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe ${name} failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const EPHEMERAL_FROM_3000 = 'echo "3000 60999" > /proc/sys/net/ipv4/ip_local_port_range';

Deno.test({
  name: "-t 2222:22: one dual-stack listener, connections carry target 22 and the peer",
  ignore,
  async fn() {
    const r = await probe("translate");
    assert.equal(r.listeners, 1, "one socket serves both IP versions");
    assert.equal(r.family, AF.INET6);
    assert.equal(r.port, 2222);
    assert.equal(r.v6only, 0);
    assert.equal(r.bound2222, true);
    assert.equal(r.bound22, false, "the target port is not bound locally");
    assert.equal(r.accepted.length, 2);
    const [four, six] = r.accepted;
    assert.deepEqual(four, {
      index: 0,
      peer: "127.0.0.1",
      peerPort: r.client4Port,
      family: AF.INET,
      peerLen: 16,
      target: 22,
      v6: false,
    }, "an IPv4 client on the IPv6 socket is reported as IPv4, not ::ffff:");
    assert.deepEqual(six, {
      index: 0,
      peer: "::1",
      peerPort: r.client6Port,
      family: AF.INET6,
      peerLen: 28,
      target: 22,
      v6: true,
    });
    assert.equal(r.after, 0, "close() closes the listener");
  },
});

Deno.test({
  name: "%IF/ and ADDR/ bindings only accept what they are bound to",
  ignore,
  async fn() {
    const r = await probe("bind", [
      "ip tuntap add tap0 mode tap",
      "ip addr add 10.0.0.1/24 dev tap0",
      "ip link set tap0 up",
    ]);
    assert.equal(r.listeners, 5);
    assert.deepEqual(r.tries, {
      "lo": 2223,
      "lo-other": -1,
      "tap0": 2224,
      "tap0-other": -1,
      "addr-match": 2225,
      "addr-other": -1,
      "v6-addr": 2226,
      "v6-addr-v4": -1,
      "v6-any-v4": 2227, // [::]/ also serves IPv4
    });
  },
});

Deno.test({
  name: "~ exclusions: excluded ports get no listener",
  ignore,
  async fn() {
    const r = await probe("exclude");
    assert.deepEqual(r.bound, [2000, 2001, 2002, 2006, 2007, 2008, 2009, 2010]);
    assert.equal(r.listeners, 8);
  },
});

Deno.test({
  name: "all: every free non-ephemeral port, busy ones skipped, descriptor limit raised",
  ignore,
  async fn() {
    const r = await probe("all", [EPHEMERAL_FROM_3000]);
    assert.equal(r.softBefore, 1024);
    assert.ok(r.softAfter > 1024, "the soft limit was raised towards the hard one");
    // 1..2999, less port 80 which another socket holds for both IP versions.
    assert.equal(r.listeners, 2998);
    assert.equal(r.bound1, true, "low ports too, with the privilege to bind them");
    assert.equal(r.bound79, true);
    assert.equal(r.bound80, false, "a busy port is skipped without error");
    assert.equal(r.bound81, true, "IPv4-only busy: still forwarded for IPv6");
    assert.equal(r.bound2999, true);
    assert.equal(r.bound3000, false, "ephemeral ports are left alone");
    assert.equal(r.bound49151, false);
    assert.equal(r.exclusionOnly, 100, "~1-2899 forwards 2900..2999");
  },
});

Deno.test({
  name: "all: too few descriptors, or nothing bindable, is an error naming the option",
  ignore,
  async fn() {
    const r = await probe("budget", [EPHEMERAL_FROM_3000]);
    assert.equal(r.allError.name, "PortBindError");
    assert.match(
      r.allError.message,
      /^-t all: forwarding needs 2999 listening sockets, plus \d+ other descriptors, but the open file limit is 1024: raise the hard limit \(ulimit -Hn\) or forward fewer ports$/,
    );
    assert.equal(
      r.noneError.message,
      "-t 3000-49151: no port could be forwarded " +
        "(ports 3000-60999 are ephemeral, see net.ipv4.ip_local_port_range)",
    );
  },
});

Deno.test({
  name: "an explicit port that can't be bound: the exact error, nothing left open",
  ignore,
  async fn() {
    const r = await probe("busy");
    assert.deepEqual(r.explicit, {
      name: "PortBindError",
      message: "Failed to bind TCP port 2300 for -t: Address already in use (EADDRINUSE)",
      option: "-t",
      port: 2300,
    });
    assert.equal(
      r.udp.message,
      "Failed to bind UDP port 2400 for -u: Address already in use (EADDRINUSE)",
    );
    assert.equal(
      r.bad.message,
      "Failed to bind TCP port 2500 on %nosuchif0 for -t: No such device (ENODEV)",
    );
    assert.equal(r.listeners, 2, "2299 and 2301 were released by the failed attempt");
  },
});

Deno.test({
  name: "UDP: one bound socket per port, handed over with its target port",
  ignore,
  async fn() {
    const r = await probe("udp");
    assert.deepEqual(r.sockets, [[6000, 6], [6001, 6], [6002, 6]]);
    assert.deepEqual(r.ports, [5000, 5001, 5002]);
    assert.equal(r.received, 4, "an IPv4 datagram reaches the dual-stack socket");
    assert.equal(r.from, "::ffff:127.0.0.1");
    assert.equal(r.listeners, 3);
    assert.equal(r.removed, 3, "close() gives every UDP socket back to its owner");
    assert.equal(r.after, 0);
  },
});

Deno.test({
  name: "auto: ports bound in the namespace appear and disappear on the host side",
  ignore,
  async fn() {
    const r = await probe("auto");
    assert.equal(r.initial, 0, "auto tables start with no listener");
    assert.ok(r.appearMs < 2000, `listeners appeared after ${r.appearMs} ms`);
    assert.deepEqual(r.seen, {
      tcp7001: true,
      udp7001: true, // UDP follows TCP listening ports too
      udp7002: true,
      tcp7003: false, // bound by "us" in the namespace: not mirrored
      tcp7010host: false, // our own namespace-side listener is not mirrored back
      tcp7010ns: true, // -T auto: the host's 7010 is listened on in the namespace
      tcp7001ns: false, // our own host-side listener is not mirrored back
      udpSockets: [[7001, 6], [7002, 6]],
    });
    assert.equal(r.accepted.length, 1);
    assert.equal(r.accepted[0].target, 7001);
    assert.equal(r.accepted[0].peer, "127.0.0.1");
    assert.equal(r.acceptedNs.length, 1, "the namespace-side listener accepts");
    assert.equal(r.acceptedNs[0].target, 7010);
    assert.ok(r.goneMs < 2000, `listeners went away after ${r.goneMs} ms`);
    assert.deepEqual(r.gone, { tcp7001: false, udp7001: false, udp7002: false, removedUdp: 2 });
    assert.equal(r.stats.inbound.bindFailures, 0, "excluded ports are never even tried");
    assert.equal(r.listenersAfter, 0);
  },
});

Deno.test({
  name: "out of descriptors: accepting pauses without spinning, and resumes",
  ignore,
  async fn() {
    const r = await probe("emfile", ["ulimit -n 1024"]);
    assert.ok(r.fillers > 0, JSON.stringify(r));
    assert.equal(r.acceptedStarved, 0, JSON.stringify(r));
    assert.ok(r.pauses >= 1, `accepting paused: ${JSON.stringify(r)}`);
    // 500 ms of 50 ms waits: about 10 turns when idle; a spinning listener makes thousands.
    assert.ok(r.turnsStarved < 40, `the loop spun: ${JSON.stringify(r)}`);
    assert.equal(r.accepted, 3, `all accepted once descriptors are free: ${JSON.stringify(r)}`);
  },
});

Deno.test("the /proc/net parser finds listening TCP and bound UDP ports", () => {
  const tcp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  " +
    "timeout inode",
    "   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0" +
    "        0 20495 1 0000000000000000 100 0 0 10 0",
    "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000" +
    "        0 20496 1 0000000000000000 100 0 0 10 0",
    "   2: 0100007F:D431 0100007F:0277 01 00000000:00000000 00:00000000 00000000  1000" +
    "        0 20497 1 0000000000000000 20 4 30 10 -1",
  ];
  const tcp6 = [
    "  sl  local_address                         remote_address                        st " +
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 00000000000000000000000000000000:FFFF 00000000000000000000000000000000:0000 0A " +
    "00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0",
  ];
  const udp = [
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  " +
    "timeout inode ref pointer drops",
    "  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0" +
    "        0 1 2 0000000000000000 0",
    "  101: 0100007F:A000 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0" +
    "        0 1 2 0000000000000000 0",
    "  102: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0" +
    "        0 1 2 0000000000000000 0",
  ];
  const scanner = new ProcNetScanner();
  const ports = (lines: string[], state: number, padTo = 0): number[] => {
    // Pad to more than one read chunk, so lines straddle chunk boundaries.
    let text = lines.join("\n") + "\n";
    while (text.length < padTo) text += lines.slice(1).join("\n") + "\n";
    const path = Deno.makeTempFileSync();
    try {
      Deno.writeTextFileSync(path, text);
      const fd = sys.open(path, O.RDONLY | O.CLOEXEC);
      const map = new Uint8Array(8192);
      try {
        assert.equal(scanner.scan(fd, state, map), true, "read to the end");
      } finally {
        sys.close(fd);
      }
      const found: number[] = [];
      for (let p = 0; p < 65536; p++) if (map[p >> 3]! & (1 << (p & 7))) found.push(p);
      return found;
    } finally {
      Deno.removeSync(path);
    }
  };
  assert.deepEqual(ports(tcp, 0x0a), [631, 8080], "LISTEN only, not the connection");
  assert.deepEqual(ports(tcp6, 0x0a), [65535]);
  assert.deepEqual(ports(udp, 0x07), [53], "unconnected and bound: not 0, not connected");
  assert.deepEqual(ports(tcp, 0x0a, 200_000), [631, 8080], "across read chunks");
});
