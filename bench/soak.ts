/**
 * `make soak`: does pasta's memory stay flat under sustained mixed load and floods?
 * (the hardening issue's "bounded memory growth under any traffic").
 *
 * In the test sandbox (tests/sandbox/: nothing leaves it), our pasta runs a
 * namespace whose script repeats, until SOAK_SECONDS (default 600) have passed:
 * a TCP upload and a download through the tap (iperf3 to the gateway address,
 * i.e. the host's loopback), a UDP stream, a burst of connect+close
 * (bench/rr.py crr), a SYN flood to 4000 ports of the remote host (each SYN
 * makes pasta open a socket and connect) and a UDP flood to 4000 ports (each a
 * new UDP flow with its own socket). Every SOAK_SAMPLE_SECONDS (default 10) the
 * RSS of pasta's processes (VmRSS, summed) and their open descriptors are read
 * from /proc. Printed: the series, and the verdict: the RSS at the end against
 * the RSS after the first two minutes (warm-up: code compiled, buffers touched),
 * which must not grow by more than 10%. Descriptors follow the floods' flows
 * (UDP flows live 180 s) and stay below the flow table's capacity.
 *
 *   deno run -A bench/soak.ts          (or make soak)
 */

import { type Sandbox, sleep, withSandbox } from "../tests/sandbox/sandbox.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const PASTA = `${ROOT}pasta`;
const RR = `${ROOT}bench/rr.py`;
const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? "600");
const SAMPLE_SECONDS = Number(Deno.env.get("SOAK_SAMPLE_SECONDS") ?? "10");
const WARM_UP_SECONDS = Math.min(120, SECONDS / 5);
const FLOOD_PORTS = 4000;

/** Floods from inside the namespace (root there): SYNs and UDP datagrams to many ports. */
const FLOOD = `
import random, socket, struct, sys
dst, kind, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = socket.inet_aton(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
if kind == "syn":
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    d = socket.inet_aton(dst)
    for i in range(count):
        sport, dport = random.randint(20000, 60000), 10000 + i
        h = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 0x50, 0x02, 65535, 0, 0)
        c = csum(src + d + struct.pack("!BBH", 0, 6, len(h)) + h)
        h = h[:16] + struct.pack("!H", c) + h[18:]
        s.sendto(h, (dst, 0))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(b"x" * 64, (dst, 20000 + i))
`;

interface Sample {
  t: number;
  rssKiB: number;
  fds: number;
}

/** VmRSS (KiB, summed) and open descriptors of our pasta's processes. */
async function measure(sb: Sandbox): Promise<{ rssKiB: number; fds: number }> {
  const r = await sb.run([
    "sh",
    "-c",
    `for p in $(pgrep -f 'mod.ts pasta'); do
       rss=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null)
       fds=$(ls /proc/$p/fd 2>/dev/null | wc -l)
       echo "$rss $fds"
     done`,
  ]);
  let rssKiB = 0;
  let fds = 0;
  for (const line of r.stdout.trim().split("\n")) {
    const [rss, fd] = line.split(" ").map(Number);
    if (Number.isFinite(rss)) rssKiB += rss!;
    if (Number.isFinite(fd)) fds += fd!;
  }
  return { rssKiB, fds };
}

const samples: Sample[] = [];
await withSandbox(async (sb) => {
  const flood = `${sb.dir}/flood.py`;
  await Deno.writeTextFile(flood, FLOOD);
  const servers = [
    await sb.spawn(["iperf3", "-s", "-B", "127.0.0.1", "-p", "5201"], {
      timeoutMs: (SECONDS + 120) * 1000,
    }),
    await sb.spawn(["python3", RR, "server", "127.0.0.1", "5301"], {
      timeoutMs: (SECONDS + 120) * 1000,
    }),
  ];
  await sleep(500);
  const script = `
sysctl -qw net.ipv4.tcp_max_tw_buckets=256 2>/dev/null
for i in $(seq 100); do ip -4 route show default | grep -q via && break; sleep 0.1; done
end=$(( $(date +%s) + ${SECONDS} ))
while [ "$(date +%s)" -lt "$end" ]; do
  iperf3 -c 192.0.2.1 -p 5201 -t 3 >/dev/null 2>&1
  iperf3 -c 192.0.2.1 -p 5201 -t 3 -R >/dev/null 2>&1
  iperf3 -c 192.0.2.1 -p 5201 -t 2 -u -b 500M >/dev/null 2>&1
  python3 ${RR} crr 192.0.2.1 5301 2 >/dev/null 2>&1
  python3 ${flood} 203.0.113.1 syn ${FLOOD_PORTS} 192.0.2.2 >/dev/null 2>&1
  python3 ${flood} 203.0.113.1 udp ${FLOOD_PORTS} 192.0.2.2 >/dev/null 2>&1
done
echo soak-done
touch ${sb.dir}/soak-done
sleep 2
`;
  const pasta = await sb.spawn([PASTA, "--config-net", "--", "sh", "-c", script], {
    user: true,
    timeoutMs: (SECONDS + 90) * 1000,
  });
  const start = Date.now();
  const doneFile = `${sb.dir}/soak-done`;
  const finished = () => Deno.stat(doneFile).then(() => true, () => false);
  while (await pasta.alive() && !(await finished())) {
    await sleep(SAMPLE_SECONDS * 1000);
    if (await finished()) break;
    const m = await measure(sb);
    if (m.rssKiB === 0) continue;
    const t = Math.round((Date.now() - start) / 1000);
    samples.push({ t, ...m });
    console.log(`${t} s: RSS ${(m.rssKiB / 1024).toFixed(1)} MiB, ${m.fds} descriptors`);
  }
  const r = await pasta.result;
  for (const s of servers) await s.kill();
  if (!r.stdout.includes("soak-done")) {
    console.error(`the load script did not finish: status ${r.code}\n${r.stderr}`);
    Deno.exit(1);
  }
});

const warm = samples.find((s) => s.t >= WARM_UP_SECONDS) ?? samples[0];
const last = samples.at(-1);
if (warm === undefined || last === undefined) {
  console.error("no samples");
  Deno.exit(1);
}
const growth = (last.rssKiB - warm.rssKiB) / warm.rssKiB;
const peak = Math.max(...samples.map((s) => s.rssKiB));
const peakFds = Math.max(...samples.map((s) => s.fds));
console.log(
  `\nRSS after warm-up (${warm.t} s): ${(warm.rssKiB / 1024).toFixed(1)} MiB; ` +
    `at the end (${last.t} s): ${(last.rssKiB / 1024).toFixed(1)} MiB ` +
    `(${(growth * 100).toFixed(1)}%); peak ${(peak / 1024).toFixed(1)} MiB; ` +
    `descriptors ${warm.fds} -> ${last.fds}, at most ${peakFds} (the flow table holds 16384 flows)`,
);
const flat = growth <= 0.1;
console.log(flat ? "verdict: flat" : "verdict: GROWING");
Deno.exit(flat ? 0 : 1);
