/**
 * passt's qemu socket end to end, with fake clients speaking the stream framing:
 * many frames per write, frames split across writes, bad lengths (the connection
 * is closed, passt listens on), one client at a time, reconnection, -1/--one-off
 * and -F. Replies come from passt's real ARP and DHCP services. passt runs in the
 * sandbox (tests/sandbox/), so host discovery sees only the sandbox's addresses;
 * the clients connect from here through the socket file.
 */
import assert from "node:assert/strict";
import { bytes, dhcpOptions, rd16 } from "../protocols/_frames.ts";
import { arpRequest, dhcpRequest, GUEST_MAC, ip4 } from "../protocols/_fixtures.ts";
import {
  NET,
  type Sandbox,
  type SandboxProcess,
  sandboxUnavailable,
  sleep,
  withSandbox,
} from "../sandbox/sandbox.ts";
import { FrameClient, framed, PASST, passtMissing } from "./_passt.ts";

const ignored = sandboxUnavailable() ?? passtMissing();
if (ignored) console.error(`tests/passt/stream_test.ts ignored: ${ignored}`);

const GUEST4 = ip4(NET.host4); // passt hands the guest the host's address
const GATEWAY4 = ip4(NET.gateway4);

/** An ARP request from the guest for the gateway's address. */
const ARP_REQUEST = arpRequest(GUEST4, GATEWAY4);
/** A DHCP DISCOVER from the guest. */
const DISCOVER = dhcpRequest(1, [], { xid: 0x1234abcd });

/** Whether `f` is passt's ARP reply: the gateway's address is at passt's MAC, to us. */
function isArpReply(f: Uint8Array): boolean {
  return rd16(f, 12) === 0x0806 && rd16(f, 20) === 2 &&
    bytes(f.subarray(28, 32)).join() === GATEWAY4.join() &&
    bytes(f.subarray(32, 38)).join() === GUEST_MAC.join();
}

/** Whether `f` is a DHCP OFFER of the host's address for our DISCOVER. */
function isOffer(f: Uint8Array): boolean {
  if (rd16(f, 12) !== 0x0800 || f[23] !== 17 || rd16(f, 34) !== 67) return false;
  const bootp = f.subarray(42);
  const options = dhcpOptions(bootp);
  return options.get(53)?.[0] === 2 && bootp.subarray(16, 20).join() === GUEST4.join() &&
    new DataView(bootp.buffer, bootp.byteOffset).getUint32(4) === 0x1234abcd;
}

/** Start passt -f in the sandbox with `args`; resolves once its socket exists. */
async function startPasst(
  sb: Sandbox,
  socket: string,
  args: string[] = [],
): Promise<SandboxProcess> {
  const p = await sb.spawn([PASST, "-f", "-s", socket, ...args], { timeoutMs: 60_000 });
  const isSocket = () => {
    try {
      return Deno.statSync(socket).isSocket === true;
    } catch {
      return false;
    }
  };
  const bound = await sb.waitFor(() => Promise.resolve(isSocket()), 15_000, 50);
  assert.ok(bound, `passt binds ${socket}`);
  return p;
}

/** A client that passt serves: the ARP request gets its reply. */
async function assertServed(client: FrameClient, what: string): Promise<void> {
  await client.send(ARP_REQUEST);
  assert.ok(await client.expect(isArpReply), `${what}: ARP reply`);
}

Deno.test({
  name: "passt: the stream framing, one client at a time, reconnections",
  ignore: ignored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const socket = `${sb.dir}/passt.socket`;
      const passt = await startPasst(sb, socket);
      const clients: FrameClient[] = [];
      const connect = async () => {
        const c = await FrameClient.connect(socket);
        clients.push(c);
        return c;
      };
      try {
        // Many frames in one write: each is answered.
        const a = await connect();
        await a.send(ARP_REQUEST, DISCOVER, ARP_REQUEST);
        assert.ok(await a.expect(isArpReply), "first ARP reply");
        assert.ok(await a.expect(isOffer), "DHCP OFFER");
        assert.ok(await a.expect(isArpReply), "second ARP reply");

        // Frames split across writes, at boundaries inside the prefix and the frame.
        const stream = framed(DISCOVER, ARP_REQUEST);
        for (const [from, to] of [[0, 1], [1, 3], [3, 7], [7, 200], [200, 290], [290, -1]]) {
          await a.write(stream.slice(from, to === -1 ? undefined : to));
          await sleep(20);
        }
        assert.ok(await a.expect(isOffer), "OFFER for a DISCOVER split across writes");
        assert.ok(await a.expect(isArpReply), "ARP reply for a request split across writes");

        // A second client while the first is connected: accepted and closed at once.
        const b = await connect();
        assert.ok(await b.closedWithin(5000), "a second client is refused");
        await assertServed(a, "the first client after the refusal");

        // A zero length breaks the framing: passt closes the connection, listens on.
        await a.write(new Uint8Array(4));
        assert.ok(await a.closedWithin(5000), "a zero length closes the connection");
        const c = await connect();
        await assertServed(c, "the client after a zero length");

        // So does a length over 65535 + 14 (an IP packet can't be larger).
        await c.write(framed(new Uint8Array(65535 + 15)));
        assert.ok(await c.closedWithin(5000), "an oversized length closes the connection");

        // Two clients in a row: the next one is served once the previous one left.
        const d = await connect();
        await assertServed(d, "a client after an oversized length");
        await d.close();
        await sleep(100);
        const e = await connect();
        await assertServed(e, "a client after the previous one closed");
        assert.ok(await passt.alive(), "passt still runs");
      } finally {
        for (const c of clients) await c.close();
        await passt.kill();
      }
      const r = await passt.result;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /refusing another connection/);
      assert.match(r.stderr, /bad frame length 0 from the client/);
      assert.match(r.stderr, /bad frame length 65550 from the client/);
      assert.throws(() => Deno.statSync(socket), "the socket file is removed at exit");
    }),
});

Deno.test({
  name: "passt: -1 exits once the first client has gone",
  ignore: ignored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const socket = `${sb.dir}/one.socket`;
      const passt = await startPasst(sb, socket, ["-1"]);
      const client = await FrameClient.connect(socket);
      try {
        await assertServed(client, "the one-off client");
      } finally {
        await client.close();
      }
      const r = await passt.result;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /exiting \(one-off\)/);
      assert.throws(() => Deno.statSync(socket), "the socket file is removed at exit");
    }),
});

// A socketpair made by python3 in the sandbox: one end to passt -F, the other
// speaks the framing. Prints the reply frame in hex, then passt's exit status.
const FD_CLIENT = `
import socket, subprocess, sys
ours, theirs = socket.socketpair()
passt = subprocess.Popen([sys.argv[1], "-f", "-F", str(theirs.fileno())], pass_fds=[theirs.fileno()])
theirs.close()
ours.settimeout(15)
ours.sendall(bytes.fromhex(sys.argv[2]))
buf = b""
while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
    buf += ours.recv(65536)
print(buf[4:4 + int.from_bytes(buf[:4], "big")].hex())
ours.close()
print(passt.wait(timeout=15))
`;

Deno.test({
  name: "passt: -F serves a connected socket passed in, and exits when it closes",
  ignore: ignored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const hex = [...framed(ARP_REQUEST)].map((b) => b.toString(16).padStart(2, "0")).join("");
      const r = await sb.run(["python3", "-c", FD_CLIENT, PASST, hex], { timeoutMs: 40_000 });
      assert.equal(r.code, 0, r.stderr);
      const [reply, status] = r.stdout.trim().split("\n");
      const frame = Uint8Array.from(reply!.match(/../g)!.map((h) => parseInt(h, 16)));
      assert.ok(isArpReply(frame), `ARP reply through -F: ${reply}`);
      assert.equal(status, "0", "passt exits 0 when the -F socket closes");
    }),
});
