/**
 * A real guest: Debian's kernel and a busybox initramfs (guest/build.sh, cached
 * under build/guest/) booted by qemu (TCG) with virtio-net over `-netdev stream`
 * to our passt, all inside the sandbox (tests/sandbox/): nothing reaches a real
 * network. The guest's init (guest/init.sh) takes a DHCP lease, waits for SLAAC, gets
 * its DHCPv6 address (a tiny static client, guest/dhcp6c.c),
 * pings the gateway over IPv4 and IPv6, fetches a 4 MiB file from a web server
 * on the sandbox host's loopback through the gateway mapping and prints its
 * SHA-256, resolves a name through a DNS responder there (UDP), answers a
 * host-to-guest connection through `-t`, and powers off. Every line it prints is
 * checked here. Two guests boot one after the other on the same passt.
 *
 * Without qemu, the kernel or the sandbox, the test is ignored and its name
 * says why.
 */
import assert from "node:assert/strict";
import { NET, type Sandbox, sandboxUnavailable, withSandbox } from "../sandbox/sandbox.ts";
import { PASST, passtMissing } from "./_passt.ts";

const here = new URL(".", import.meta.url).pathname;
const GUEST_DIR = new URL("../../build/guest/", import.meta.url).pathname;
const HTTP_PORT = 8080;
const TCP_PORT = 8022;
const DNS_NAME = "guest-test.example";
const DNS_ANSWER = "198.51.100.42";
const BLOB_SIZE = 4 << 20;

function installed(tool: string): boolean {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => {
    try {
      return Deno.statSync(`${d}/${tool}`).isFile;
    } catch {
      return false;
    }
  });
}

/** Why the guest can't be booted here, or undefined (builds the guest if needed). */
function guestUnavailable(): string | undefined {
  const missing = sandboxUnavailable() ?? passtMissing();
  if (missing) return missing;
  for (const tool of ["qemu-system-x86_64", "python3", "busybox", "socat"]) {
    if (!installed(tool)) return `${tool} is not installed (.ci/run installs it)`;
  }
  if (Deno.build.arch !== "x86_64") return `the guest is x86_64, this is ${Deno.build.arch}`;
  const out = new Deno.Command("sh", {
    args: [`${here}guest/build.sh`, GUEST_DIR],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (out.success) return undefined;
  return text.startsWith("unavailable: ")
    ? text.slice("unavailable: ".length)
    : `guest build failed: ${text} ${new TextDecoder().decode(out.stderr).trim()}`;
}

const unavailable = guestUnavailable();
if (unavailable) console.error(`tests/passt/guest_test.ts ignored: ${unavailable}`);

/** How qemu reaches passt: the stream socket, or vhost-user with shared memory. */
type Transport = "stream" | "vhost-user";

/** qemu's network arguments for `transport` over the socket at `socket`. */
function netArgs(transport: Transport, socket: string): string[] {
  if (transport === "stream") {
    return [
      "-device",
      "virtio-net-pci,netdev=s",
      "-netdev",
      `stream,id=s,server=off,addr.type=unix,addr.path=${socket}`,
    ];
  }
  // vectors=0: Debian's qemu 7.2 under TCG crashes (a null pointer, fixed in 8.0)
  // as soon as the guest enables MSI-X on a vhost-user NIC; legacy interrupts work.
  return [
    "-object",
    `memory-backend-memfd,id=mem,size=${GUEST_MEMORY_MIB}M,share=on`,
    "-numa",
    "node,memdev=mem",
    "-chardev",
    `socket,id=c,path=${socket}`,
    "-netdev",
    "vhost-user,id=s,chardev=c",
    "-device",
    "virtio-net-pci,netdev=s,vectors=0",
  ];
}

/** The guest's memory (MiB). */
const GUEST_MEMORY_MIB = 256;

/** Boot the guest against `socket`; returns its "GUEST: " lines. */
async function bootGuest(
  sb: Sandbox,
  socket: string,
  run: string,
  transport: Transport = "stream",
): Promise<string[]> {
  // The console goes to a file, so that the host connects through -t only once the
  // guest listens: an attempt made earlier would sit in passt until the guest is up
  // and could take the guest's one-shot server from the attempt that waits.
  const consoleFile = `${sb.dir}/console-${run.replaceAll(" ", "-")}.txt`;
  const qemuArgs = [
    "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-m",
    String(GUEST_MEMORY_MIB),
    "-nographic",
    "-no-reboot",
    "-kernel",
    `${GUEST_DIR}vmlinuz`,
    "-initrd",
    `${GUEST_DIR}initramfs.gz`,
    "-append",
    `console=ttyS0 quiet panic=-1 guest.http=${HTTP_PORT} guest.tcp=${TCP_PORT} ` +
    `guest.name=${DNS_NAME} guest.gw6=${NET.gateway6}`,
    ...netArgs(transport, socket),
  ];
  const quoted = qemuArgs.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const qemu = sb.run(["sh", "-c", `exec ${quoted} >${consoleFile} 2>&1 </dev/null`], {
    timeoutMs: 90_000,
  });
  const text = () => Deno.readTextFile(consoleFile).catch(() => "");
  const listening = await sb.waitFor(
    async () => (await text()).includes(`GUEST: listening ${TCP_PORT}`),
    80_000,
    100,
  );
  const reply = listening
    ? await sb.run([
      "sh",
      "-c",
      `echo hello-from-host | socat -t 10 - TCP:127.0.0.1:${TCP_PORT}`,
    ], { timeoutMs: 30_000 })
    : undefined;
  const done = await qemu;
  const output = await text();
  assert.equal(done.code, 0, `qemu: ${done.stderr}\n${output}`);
  assert.ok(listening, `${run}: the guest never listened:\n${output}`);
  assert.equal(reply?.stdout.trim(), "reply:hello-from-host", "the guest answered through -t");
  const lines = output.split(/\r?\n/).map((l) => l.slice(l.indexOf("GUEST: ")))
    .filter((l) => l.startsWith("GUEST: ")).map((l) => l.slice("GUEST: ".length));
  return lines;
}

/** Check every line the guest printed, in order. */
function assertGuestLines(lines: string[], blobSum: string, run: string): void {
  const expected: (string | RegExp)[] = [
    /^link 52:54:00:12:34:56$/,
    new RegExp(
      `^lease ip=${NET.host4} mask=${NET.prefix4} router=${NET.gateway4} ` +
        `dns=${NET.nameservers[0]} mtu=65520 domain= search=${NET.search[0]}$`,
    ),
    // SLAAC: the /64 of the host's prefix with the guest's EUI-64, via passt's link-local.
    /^slaac 2001:db8:1:0:5054:ff:fe12:3456\/64 via fe80::[0-9a-f:]+$/,
    // DHCPv6 (the guest's dhcp6c, rapid commit): the host's own address.
    `dhcpv6 ${NET.host6}`,
    `ping4 ${NET.gateway4} ok`,
    `ping6 ${NET.gateway6} ok`,
    `sha256 ${blobSum}`,
    `dns ${DNS_NAME} ${DNS_ANSWER}`,
    `listening ${TCP_PORT}`,
    "tcp got hello-from-host",
    "done",
  ];
  const all = lines.join("\n");
  assert.equal(lines.length, expected.length, `${run}: the guest printed:\n${all}`);
  expected.forEach((e, i) => {
    if (typeof e === "string") assert.equal(lines[i], e, `${run}: line ${i}\n${all}`);
    else assert.match(lines[i]!, e, `${run}: line ${i}\n${all}`);
  });
}

/**
 * passt serving two guests in a row over `transport` (passt started with `args`
 * before -s): every line each guest prints, then passt still waiting, and exit 0.
 */
async function twoGuests(
  sb: Sandbox,
  args: readonly string[],
  runs: readonly [string, string],
  transport: Transport = "stream",
): Promise<void> {
  const blob = `${sb.dir}/blob`;
  const sum = await sb.run([
    "sh",
    "-c",
    `head -c ${BLOB_SIZE} /dev/urandom >${blob} && sha256sum ${blob}`,
  ]);
  assert.equal(sum.code, 0, sum.stderr);
  const blobSum = sum.stdout.split(" ")[0]!;
  const socket = `${sb.dir}/passt.socket`;
  const servers = [
    await sb.spawn(["busybox", "httpd", "-f", "-p", `127.0.0.1:${HTTP_PORT}`, "-h", sb.dir], {
      timeoutMs: 120_000,
    }),
    await sb.spawn(["python3", `${here}dns_responder.py`, "53", DNS_ANSWER], {
      timeoutMs: 120_000,
    }),
  ];
  const passt = await sb.spawn([PASST, "-f", ...args, "-s", socket, "-t", String(TCP_PORT)], {
    timeoutMs: 120_000,
  });
  try {
    assert.ok(
      await sb.waitFor(async () => (await sb.run(["test", "-S", socket])).code === 0, 15_000),
      "passt binds its socket",
    );
    for (const run of runs) {
      assertGuestLines(await bootGuest(sb, socket, run, transport), blobSum, run);
    }
    assert.ok(await passt.alive(), "passt waits for the next guest");
  } finally {
    await passt.kill();
    for (const s of servers) await s.kill();
  }
  const r = await passt.result;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.match(/accepted a connection/g)?.length, 2, r.stderr);
}

Deno.test({
  name: unavailable === undefined
    ? "passt: two real guests in a row (qemu, virtio-net): DHCP, SLAAC, DHCPv6, ping, TCP, UDP, -t"
    : `passt: real guests (ignored: ${unavailable})`,
  ignore: unavailable !== undefined,
  fn: () => withSandbox((sb) => twoGuests(sb, [], ["first guest", "second guest"])),
});

Deno.test({
  name: unavailable === undefined
    ? "passt --vhost-user: two real guests in a row (shared memory): DHCP, SLAAC, DHCPv6, ping, TCP, UDP, -t"
    : `passt --vhost-user: real guests (ignored: ${unavailable})`,
  ignore: unavailable !== undefined,
  fn: () =>
    withSandbox((sb) =>
      twoGuests(
        sb,
        ["--vhost-user"],
        ["first vhost-user guest", "second vhost-user guest"],
        "vhost-user",
      )
    ),
});
