/**
 * The capture file: records parsed back by hand, and read by an independent
 * reader, tcpdump (skipped when it is not installed: apt-get install tcpdump).
 */

import assert from "node:assert/strict";
import * as sys from "../../src/ffi/sys.ts";
import { formatMac } from "../../src/protocols/ethernet.ts";
import { LINKTYPE_ETHERNET, openPcap, PCAP_MAGIC, PCAP_SNAPLEN } from "../../src/tap/pcap.ts";
import { dhcpReply } from "../../src/protocols/dhcp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { be16, bytes, eth, ipv6, replyBytes, view } from "../protocols/_frames.ts";
import {
  dhcpParams,
  dhcpRequest,
  GUEST4,
  GUEST6,
  GUEST_MAC,
  ip6,
  mac,
  OUR_MAC,
} from "../protocols/_fixtures.ts";

function findTool(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/usr/sbin").split(":").concat("/usr/sbin")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return null;
}

const tcpdump = findTool("tcpdump");
if (!tcpdump) console.warn("tcpdump not installed: skipping its check (apt-get install tcpdump)");

/** The frames written by both tests: a DHCP offer, an ICMPv6 echo request, an ARP request. */
function sampleFrames(): Uint8Array[] {
  const out = PacketView.alloc(1500);
  const offerLength = dhcpReply(view(dhcpRequest(1)), dhcpParams, out);
  assert.ok(offerLength > 0, "DHCP offer built");
  const offer = replyBytes(out, offerLength);
  const echo6 = eth(
    OUR_MAC,
    GUEST_MAC,
    0x86dd,
    ipv6(GUEST6, ip6("2001:db8::1"), 58, 64, bytes(128, 0, 0, 0, be16(7), be16(1), [1, 2, 3]), 2),
  );
  const arp = eth(
    mac("ff:ff:ff:ff:ff:ff"),
    GUEST_MAC,
    0x0806,
    bytes(be16(1), be16(0x0800), 6, 4, be16(1), GUEST_MAC, GUEST4, new Uint8Array(6), [
      192,
      168,
      1,
      1,
    ]),
  );
  return [offer, echo6, arp];
}

interface Record {
  seconds: number;
  micros: number;
  caplen: number;
  origlen: number;
  data: Uint8Array;
}

function parsePcap(file: Uint8Array): { header: DataView; records: Record[] } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const records: Record[] = [];
  let o = 24;
  while (o < file.length) {
    assert.ok(o + 16 <= file.length, "record header inside the file");
    const caplen = v.getUint32(o + 8, true);
    assert.ok(o + 16 + caplen <= file.length, "record inside the file");
    records.push({
      seconds: v.getUint32(o, true),
      micros: v.getUint32(o + 4, true),
      caplen,
      origlen: v.getUint32(o + 12, true),
      data: file.slice(o + 16, o + 16 + caplen),
    });
    o += 16 + caplen;
  }
  return { header: new DataView(file.buffer, file.byteOffset, 24), records };
}

Deno.test("pcap: global header, records, offsets inside a buffer, snaplen", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/capture.pcap`;
  try {
    const frames = sampleFrames();
    const writer = openPcap(path);
    const before = Date.now();
    // The first frame sits in the middle of a larger, long-lived buffer.
    const big = sys.pinnedBuffer(4096);
    big.set(frames[0]!, 100);
    writer.writeFrame(big, 100, frames[0]!.length);
    writer.writeFrame(frames[1]!, 0, frames[1]!.length);
    writer.writeFrame(frames[2]!, 0, frames[2]!.length);
    // Longer than the snapshot length: cut to 65535 bytes, original length kept.
    const jumbo = sys.pinnedBuffer(70000);
    jumbo.set(frames[0]!);
    writer.writeFrame(jumbo, 0, jumbo.length);
    // Out of range: counted, not thrown, nothing written.
    writer.writeFrame(big, 4000, 200);
    const after = Date.now();
    assert.equal(writer.frames, 4);
    assert.equal(writer.errors, 1);
    writer.close();
    writer.writeFrame(frames[0]!, 0, frames[0]!.length); // ignored once closed
    assert.equal(writer.frames, 4);

    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600, "mode 0600");
    const { header, records } = parsePcap(Deno.readFileSync(path));
    assert.equal(header.getUint32(0, true), PCAP_MAGIC);
    assert.equal(header.getUint16(4, true), 2);
    assert.equal(header.getUint16(6, true), 4);
    assert.equal(header.getUint32(16, true), PCAP_SNAPLEN);
    assert.equal(header.getUint32(20, true), LINKTYPE_ETHERNET);
    assert.equal(records.length, 4);
    for (let i = 0; i < 3; i++) {
      assert.equal(records[i]!.caplen, frames[i]!.length);
      assert.equal(records[i]!.origlen, frames[i]!.length);
      assert.deepEqual(records[i]!.data, frames[i]);
    }
    assert.equal(records[3]!.caplen, PCAP_SNAPLEN);
    assert.equal(records[3]!.origlen, 70000);
    assert.deepEqual(records[3]!.data.subarray(0, frames[0]!.length), frames[0]);
    for (const r of records) {
      assert.ok(r.micros < 1_000_000);
      const ms = r.seconds * 1000 + r.micros / 1000;
      assert.ok(ms >= before - 1000 && ms <= after + 1000, `timestamp ${ms} is now`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("pcap: an unwritable path is a configuration error", () => {
  assert.throws(() => openPcap("/nonexistent-dir/capture.pcap"), /nonexistent-dir/);
});

Deno.test({
  name: "pcap: tcpdump lists every frame with its length and MAC addresses",
  ignore: !tcpdump,
  fn() {
    const dir = Deno.makeTempDirSync();
    const path = `${dir}/capture.pcap`;
    try {
      const frames = sampleFrames();
      const writer = openPcap(path);
      for (const f of frames) writer.writeFrame(f, 0, f.length);
      writer.close();
      Deno.chmodSync(dir, 0o755); // tcpdump may drop root privileges before reading
      Deno.chmodSync(path, 0o644);
      const out = new Deno.Command(tcpdump!, { args: ["-r", path, "-nn", "-e"] }).outputSync();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.ok(out.success, `tcpdump failed: ${stderr}`);
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
      assert.equal(lines.length, frames.length, lines.join("\n"));
      frames.forEach((f, i) => {
        const line = lines[i]!;
        assert.ok(
          line.includes(`${formatMac(f, 6)} > ${formatMac(f, 0)}`),
          `frame ${i} MACs: ${line}`,
        );
        assert.ok(line.includes(`length ${f.length}:`), `frame ${i} length: ${line}`);
      });
      assert.match(lines[0]!, /IPv4.*192\.168\.1\.1\.67 > .*\.68: BOOTP\/DHCP, Reply/);
      assert.match(lines[1]!, /IPv6.*ICMP6, echo request/);
      assert.match(lines[2]!, /ARP.*Request who-has 192\.168\.1\.1 tell 192\.168\.1\.118/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
