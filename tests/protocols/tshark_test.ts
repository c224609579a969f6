/**
 * Independent check: write our replies to a pcap file and let tshark decode them,
 * with IPv4 and UDP checksum validation on. Skipped (with a message) when tshark is
 * not installed.
 */
import assert from "node:assert/strict";
import { arpReply } from "../../src/protocols/arp.ts";
import { dhcpReply } from "../../src/protocols/dhcp.ts";
import { dhcpv6Reply } from "../../src/protocols/dhcpv6.ts";
import { ndpReply, ndpRouterAdvertisement } from "../../src/protocols/ndp.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { be16, replyBytes, view } from "./_frames.ts";
import {
  arpParams,
  arpRequest,
  CLIENT_DUID,
  dhcpParams,
  dhcpRequest,
  dhcpv6Params,
  dhcpv6Request,
  GUEST4,
  GUEST6,
  GUEST_LL,
  iaNa,
  ndpParams,
  neighborSolicit,
  OUR_LL,
  ROUTER4,
  routerSolicit,
  v6opt,
} from "./_fixtures.ts";

function findTool(name: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/usr/sbin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return null;
}

const tshark = findTool("tshark");
if (!tshark) {
  console.warn(
    "tshark not installed: skipping the independent decoding test (apt-get install tshark)",
  );
}

/** Classic pcap file (microsecond timestamps, LINKTYPE_ETHERNET) holding `frames`. */
function pcap(frames: Uint8Array[]): Uint8Array {
  const size = 24 + frames.reduce((n, f) => n + 16 + f.length, 0);
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, 0xa1b2c3d4, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, 65535, true);
  dv.setUint32(20, 1, true);
  let o = 24;
  frames.forEach((f, i) => {
    dv.setUint32(o, 1700000000 + i, true);
    dv.setUint32(o + 8, f.length, true);
    dv.setUint32(o + 12, f.length, true);
    buf.set(f, o + 16);
    o += 16 + f.length;
  });
  return buf;
}

Deno.test({
  name: "tshark decodes every reply without errors and with good checksums",
  ignore: !tshark,
  async fn() {
    const frames: Uint8Array[] = [];
    const add = (n: number, out: PacketView) => {
      assert.ok(n > 0);
      frames.push(replyBytes(out, n));
    };
    const out = PacketView.alloc(2048);
    add(arpReply(view(arpRequest(GUEST4, ROUTER4)), arpParams, out), out);
    const clientIdOpt = [61, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56];
    add(dhcpReply(view(dhcpRequest(1, [clientIdOpt])), dhcpParams, out), out);
    add(dhcpReply(view(dhcpRequest(3, [[50, ...GUEST4], [54, ...ROUTER4]])), dhcpParams, out), out);
    add(dhcpReply(view(dhcpRequest(3, [[50, 10, 9, 9, 9]])), dhcpParams, out), out);
    const longSearch = Array.from({ length: 20 }, (_, i) => `sub${i}.zone${i}.example${i}.net${i}`);
    add(
      dhcpReply(
        view(dhcpRequest(1, [[57, ...be16(1500)]])),
        { ...dhcpParams, search: longSearch },
        out,
      ),
      out,
    );
    add(ndpReply(view(neighborSolicit(GUEST_LL, OUR_LL)), ndpParams, out), out);
    add(ndpReply(view(routerSolicit(GUEST_LL)), ndpParams, out), out);
    add(ndpRouterAdvertisement(ndpParams, out), out);
    const clientId = v6opt(1, CLIENT_DUID);
    add(dhcpv6Reply(view(dhcpv6Request(1, 7, clientId, iaNa(3))), dhcpv6Params, out), out);
    add(
      dhcpv6Reply(
        view(
          dhcpv6Request(
            3,
            8,
            clientId,
            v6opt(2, [0, 3, 0, 1, ...dhcpv6Params.ourMac]),
            iaNa(3, GUEST6),
          ),
        ),
        dhcpv6Params,
        out,
      ),
      out,
    );
    add(dhcpv6Reply(view(dhcpv6Request(11, 9, clientId)), dhcpv6Params, out), out);
    // -H and --fqdn: DHCP options 12 and 81, DHCPv6 option 39.
    const named = { hostname: "guest1", fqdn: "guest1.example.org" };
    add(dhcpReply(view(dhcpRequest(1)), { ...dhcpParams, ...named }, out), out);
    add(
      dhcpv6Reply(
        view(dhcpv6Request(11, 10, clientId, v6opt(39, [0x01, 0]))),
        { ...dhcpv6Params, fqdn: named.fqdn },
        out,
      ),
      out,
    );

    const file = await Deno.makeTempFile({ suffix: ".pcap" });
    try {
      await Deno.writeFile(file, pcap(frames));
      const { code, stdout, stderr } = await new Deno.Command(tshark!, {
        args: [
          "-r",
          file,
          "-V",
          "-o",
          "ip.check_checksum:TRUE",
          "-o",
          "udp.check_checksum:TRUE",
        ],
        env: { HOME: "/tmp" },
      }).output();
      const text = new TextDecoder().decode(stdout);
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      if (Deno.env.get("TSHARK_DUMP")) console.log(text);
      assert.doesNotMatch(text, /Malformed/i);
      assert.doesNotMatch(text, /Checksum Status: Bad|incorrect|\[Expert Info \((Error|Warning)/);
      const expect = [
        "Opcode: reply (2)",
        "Option: (53) DHCP Message Type (Offer)",
        "Option: (53) DHCP Message Type (ACK)",
        "Option: (53) DHCP Message Type (NAK)",
        "Option: (1) Subnet Mask (255.255.255.0)",
        "Option: (3) Router",
        "Option: (6) Domain Name Server",
        "Option: (26) Interface MTU",
        "Option: (119) Domain Search",
        "FQDN: lab.example.org",
        "FQDN: sub19.zone19.example19.net19",
        "Option: (61) Client identifier",
        "Type: Neighbor Advertisement (136)",
        "Type: Router Advertisement (134)",
        "ICMPv6 Option (Prefix information : 2a02:6d40:3ca5:2001::/64)",
        "ICMPv6 Option (MTU : 65520)",
        "ICMPv6 Option (Recursive DNS Server 2001:db8:53::1 2001:db8:53::2)",
        "ICMPv6 Option (DNS Search List Option redhat.com example.org lab.example.org)",
        "Message type: Advertise (2)",
        "Message type: Reply (7)",
        "Identity Association for Non-temporary Address",
        "IPv6 address: 2a02:6d40:3ca5:2001:b81d:fa4a:8cdd:cf17",
        "DNS recursive name server",
        "Domain Search List",
        "List entry: lab.example.org.",
        "Transaction ID: 0x000007",
        "Option: (12) Host Name",
        "Host Name: guest1",
        "Option: (81) Client Fully Qualified Domain Name",
        "Client name: guest1.example.org",
        ".1.. = Encoding: Binary encoding",
        "Option: Client Fully Qualified Domain Name (39)",
        "Client Domain Name: guest1.example.org.",
      ];
      for (const e of expect) assert.ok(text.includes(e), `tshark output lacks "${e}"`);
      const good = text.match(/Checksum Status: Good/g)?.length ?? 0;
      assert.ok(good >= 10, `${good} checksums validated as good`);
    } finally {
      await Deno.remove(file);
    }
  },
});
