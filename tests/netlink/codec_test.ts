/**
 * The netlink codec against hand-built messages: no socket involved. Replies are
 * assembled with the same writer requests use, then fed to the parsers.
 */

import assert from "node:assert/strict";
import { AF } from "../../src/ffi/layout.ts";
import {
  consumeReplyDatagram,
  IFA,
  IFA_F,
  IFADDRMSG_SIZE,
  IFINFOMSG_SIZE,
  IFLA,
  NetlinkError,
  type NetlinkMessage,
  NetlinkMessageWriter,
  NetlinkReplyError,
  NLM_F,
  NLMSG,
  NLMSG_HDRLEN,
  parseAddress,
  parseAttributes,
  parseLink,
  parseMessages,
  parseRoute,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTM,
  RTMSG_SIZE,
  RTN,
  RTNEXTHOP_SIZE,
  RTPROT,
} from "../../src/netlink/codec.ts";
import { describeRoute, routeSpecFor } from "../../src/netlink/configure.ts";

const PORT = 4242;
const SEQ = 77;

/** Build one message with `fill` and return its bytes, addressed to PORT. */
function message(
  type: number,
  flags: number,
  fill: (w: NetlinkMessageWriter) => void,
  seq = SEQ,
): Uint8Array {
  const w = new NetlinkMessageWriter(new Uint8Array(4096));
  w.begin(type, flags, seq);
  w.view.setUint32(12, PORT, true);
  fill(w);
  return w.buf.slice(0, w.end());
}

/** Concatenate messages into one datagram. */
function datagram(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function linkMessage(index: number, name: string, mtu: number, mac: number[]): Uint8Array {
  return message(RTM.NEWLINK, NLM_F.MULTI, (w) => {
    const at = w.reserve(IFINFOMSG_SIZE);
    w.view.setUint16(at + 2, 1, true); // ARPHRD_ETHER
    w.view.setInt32(at + 4, index, true);
    w.view.setUint32(at + 8, 0x1043, true);
    w.attrBytes(IFLA.IFNAME, new TextEncoder().encode(name + "\0"));
    w.attrU32(IFLA.MTU, mtu);
    w.attrBytes(IFLA.ADDRESS, new Uint8Array(mac));
  });
}

function doneMessage(error = 0): Uint8Array {
  return message(NLMSG.DONE, NLM_F.MULTI, (w) => {
    const at = w.reserve(4);
    w.view.setInt32(at, error, true);
  });
}

function errorMessage(error: number, flags = 0, kernelText?: string): Uint8Array {
  return message(NLMSG.ERROR, flags, (w) => {
    const at = w.reserve(4 + NLMSG_HDRLEN);
    w.view.setInt32(at, error, true);
    w.view.setUint32(at + 4, NLMSG_HDRLEN, true); // echoed request header, capped
    w.view.setUint16(at + 8, RTM.NEWADDR, true);
    w.view.setUint32(at + 12, SEQ, true);
    if (kernelText !== undefined) {
      w.attrBytes(1, new TextEncoder().encode(kernelText + "\0"));
    }
  });
}

function collect(buf: Uint8Array, seq = SEQ): { progress: string; data: NetlinkMessage[] } {
  const data: NetlinkMessage[] = [];
  const progress = consumeReplyDatagram(buf, buf.length, seq, PORT, "TEST", (m) => data.push(m));
  return { progress, data };
}

Deno.test("a multipart dump spread over datagrams ends at NLMSG_DONE", () => {
  const first = datagram(
    linkMessage(1, "lo", 65536, [0, 0, 0, 0, 0, 0]),
    linkMessage(2, "eth0", 1500, [0x52, 0x54, 0, 0x12, 0x34, 0x56]),
  );
  const a = collect(first);
  assert.equal(a.progress, "more");
  assert.equal(a.data.length, 2);
  const second = datagram(linkMessage(3, "wlan0", 1400, [2, 0, 0, 0, 0, 1]), doneMessage());
  const b = collect(second);
  assert.equal(b.progress, "done");
  assert.equal(b.data.length, 1);

  const links = [...a.data, ...b.data].map((m) => parseLink(m.payload, "TEST"));
  assert.deepEqual(links.map((l) => [l.index, l.name, l.mtu]), [
    [1, "lo", 65536],
    [2, "eth0", 1500],
    [3, "wlan0", 1400],
  ]);
  assert.deepEqual([...links[1]!.mac], [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  assert.equal(links[1]!.flags, 0x1043);
  assert.equal(links[1]!.type, 1);
});

Deno.test("messages of another sequence number or port are skipped", () => {
  const stale = message(NLMSG.DONE, 0, (w) => w.reserve(4), SEQ - 1);
  const { progress, data } = collect(datagram(stale, linkMessage(1, "lo", 1, [])));
  assert.equal(progress, "more");
  assert.equal(data.length, 1);
});

Deno.test("NLMSG_ERROR with 0 is an acknowledgement", () => {
  assert.equal(collect(errorMessage(0)).progress, "done");
});

Deno.test("NLMSG_ERROR with an errno names the request and the error", () => {
  assert.throws(() => collect(errorMessage(-17)), (e: unknown) => {
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.errno, 17);
    assert.equal(e.code, "EEXIST");
    assert.equal(e.request, "TEST");
    assert.match(e.message, /TEST: File exists \(EEXIST\)/);
    return true;
  });
});

Deno.test("the kernel's extended ACK message is carried into the error", () => {
  const msg = errorMessage(-19, NLM_F.CAPPED | NLM_F.ACK_TLVS, "ipv4: Device not found");
  assert.throws(() => collect(msg), (e: unknown) => {
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.kernelMessage, "ipv4: Device not found");
    assert.match(e.message, /ENODEV.*kernel: ipv4: Device not found/);
    return true;
  });
});

Deno.test("NLMSG_DONE carrying an errno (aborted dump) is an error", () => {
  assert.throws(() => collect(doneMessage(-16)), /EBUSY/);
});

Deno.test("NLMSG_OVERRUN is an error", () => {
  const overrun = message(NLMSG.OVERRUN, 0, () => {});
  assert.throws(() => collect(overrun), NetlinkReplyError);
});

Deno.test("a message longer than its datagram is a clear error, not a read past the end", () => {
  const msg = linkMessage(2, "eth0", 1500, [1, 2, 3, 4, 5, 6]);
  const cut = msg.slice(0, msg.length - 8);
  assert.throws(
    () => parseMessages(cut, cut.length, "RTM_GETLINK dump"),
    (e: unknown) => {
      assert.ok(e instanceof NetlinkReplyError);
      assert.match(e.message, /RTM_GETLINK dump: message at offset 0 claims \d+ bytes/);
      return true;
    },
  );
  assert.throws(() => parseMessages(cut.subarray(0, 10), 10, "X"), /truncated message header/);
});

Deno.test("a message length below the header size cannot loop the parser", () => {
  const bad = new Uint8Array(32);
  new DataView(bad.buffer).setUint32(0, 0, true); // nlmsg_len 0
  assert.throws(() => parseMessages(bad, bad.length, "X"), /claims 0 bytes/);
});

Deno.test("a truncated attribute is a clear error naming where it was", () => {
  const msg = linkMessage(2, "eth0", 1500, [1, 2, 3, 4, 5, 6]);
  const [m] = parseMessages(msg, msg.length, "X");
  // Inflate the first attribute's length beyond the payload.
  const payload = m!.payload.slice();
  new DataView(payload.buffer).setUint16(IFINFOMSG_SIZE, 200, true);
  assert.throws(() => parseLink(payload, "RTM_GETLINK dump"), (e: unknown) => {
    assert.ok(e instanceof NetlinkReplyError);
    assert.match(e.message, /RTM_GETLINK dump: truncated attribute 3 in link 2/);
    return true;
  });
  // An attribute length under the header size, too.
  new DataView(payload.buffer).setUint16(IFINFOMSG_SIZE, 2, true);
  assert.throws(() => parseLink(payload, "X"), /truncated attribute/);
  // A fixed struct cut short.
  assert.throws(() => parseLink(payload.subarray(0, 10), "X"), /truncated ifinfomsg/);
});

Deno.test("attributes of the wrong size are rejected", () => {
  const msg = message(RTM.NEWADDR, 0, (w) => {
    const at = w.reserve(IFADDRMSG_SIZE);
    w.view.setUint8(at, AF.INET);
    w.view.setUint8(at + 1, 24);
    w.attrBytes(IFA.LOCAL, new Uint8Array([192, 0, 2])); // 3 bytes
  });
  const [m] = parseMessages(msg, msg.length, "X");
  assert.throws(() => parseAddress(m!.payload, "RTM_GETADDR dump"), /IFA_LOCAL is 3 bytes, 4/);
});

Deno.test("attribute flag bits are masked off the type", () => {
  const bytes = new Uint8Array([8, 0, RTA.OIF, 0x80, 7, 0, 0, 0]); // NLA_F_NESTED set
  const attrs = parseAttributes(bytes, "X", "test");
  assert.deepEqual([...attrs.get(RTA.OIF)!], [7, 0, 0, 0]);
});

Deno.test("addresses: IFA_FLAGS overrides ifa_flags; a peer is reported apart", () => {
  const msg = message(RTM.NEWADDR, 0, (w) => {
    const at = w.reserve(IFADDRMSG_SIZE);
    w.view.setUint8(at, AF.INET);
    w.view.setUint8(at + 1, 32);
    w.view.setUint8(at + 2, IFA_F.PERMANENT);
    w.view.setUint32(at + 4, 5, true);
    w.attrBytes(IFA.ADDRESS, new Uint8Array([198, 51, 100, 1]));
    w.attrBytes(IFA.LOCAL, new Uint8Array([198, 51, 100, 2]));
    w.attrU32(IFA.FLAGS, IFA_F.PERMANENT | IFA_F.NOPREFIXROUTE);
  });
  const [m] = parseMessages(msg, msg.length, "X");
  const a = parseAddress(m!.payload, "X");
  assert.equal(a.ifindex, 5);
  assert.equal(a.prefixLength, 32);
  assert.deepEqual([...a.address], [198, 51, 100, 2]);
  assert.deepEqual([...a.peer!], [198, 51, 100, 1]);
  assert.equal(a.flags, IFA_F.PERMANENT | IFA_F.NOPREFIXROUTE);
});

function multipathRoute(hopLengthFix?: number): Uint8Array {
  return message(RTM.NEWROUTE, NLM_F.MULTI, (w) => {
    const at = w.reserve(RTMSG_SIZE);
    w.view.setUint8(at, AF.INET);
    w.view.setUint8(at + 4, RT_TABLE.MAIN);
    w.view.setUint8(at + 5, RTPROT.STATIC);
    w.view.setUint8(at + 6, RT_SCOPE.UNIVERSE);
    w.view.setUint8(at + 7, RTN.UNICAST);
    w.attrU32(RTA.PRIORITY, 600);
    const nest = w.nestBegin(RTA.MULTIPATH);
    for (const [ifindex, weight, gw] of [[2, 1, 1], [3, 5, 9]] as const) {
      const hop = w.reserve(RTNEXTHOP_SIZE);
      w.view.setUint8(hop + 3, weight - 1);
      w.view.setInt32(hop + 4, ifindex, true);
      w.attrBytes(RTA.GATEWAY, new Uint8Array([192, 0, 2, gw]));
      w.view.setUint16(hop, hopLengthFix ?? w.length - hop, true);
    }
    w.nestEnd(nest);
  });
}

Deno.test("a multipath route's nexthops come with weights and gateways", () => {
  const msg = multipathRoute();
  const [m] = parseMessages(msg, msg.length, "X");
  const r = parseRoute(m!.payload, "X");
  assert.equal(r.dstLength, 0);
  assert.deepEqual([...r.dst], [0, 0, 0, 0]);
  assert.equal(r.oif, 0);
  assert.equal(r.gateway, undefined);
  assert.equal(r.priority, 600);
  assert.equal(r.protocol, RTPROT.STATIC);
  assert.equal(r.table, RT_TABLE.MAIN);
  assert.deepEqual(
    r.nexthops.map((n) => [n.ifindex, n.weight, [...n.gateway!].join(".")]),
    [[2, 1, "192.0.2.1"], [3, 5, "192.0.2.9"]],
  );
});

Deno.test("a nexthop longer than RTA_MULTIPATH is a clear error", () => {
  const msg = multipathRoute(400);
  const [m] = parseMessages(msg, msg.length, "X");
  assert.throws(() => parseRoute(m!.payload, "RTM_GETROUTE dump (IPv4)"), /truncated nexthop 0/);
});

Deno.test("a route prefix longer than the address is rejected", () => {
  const msg = message(RTM.NEWROUTE, 0, (w) => {
    const at = w.reserve(RTMSG_SIZE);
    w.view.setUint8(at, AF.INET);
    w.view.setUint8(at + 1, 33);
  });
  const [m] = parseMessages(msg, msg.length, "X");
  assert.throws(() => parseRoute(m!.payload, "X"), /prefix length 33/);
});

Deno.test("the writer refuses to overflow its buffer", () => {
  const w = new NetlinkMessageWriter(new Uint8Array(32));
  w.begin(RTM.NEWLINK, NLM_F.REQUEST, 1);
  w.attrU32(IFLA.MTU, 1500);
  assert.throws(() => w.attrBytes(IFLA.IFNAME, new Uint8Array(20)), RangeError);
});

Deno.test("the writer pads attributes to 4 bytes and sets nlmsg_len", () => {
  const w = new NetlinkMessageWriter(new Uint8Array(64));
  w.begin(RTM.NEWLINK, NLM_F.REQUEST | NLM_F.ACK, 0x01020304);
  w.reserve(IFINFOMSG_SIZE);
  w.attrBytes(IFLA.ADDRESS, new Uint8Array([1, 2, 3, 4, 5, 6]));
  const len = w.end();
  assert.equal(len, NLMSG_HDRLEN + IFINFOMSG_SIZE + 12); // 4 + 6 padded to 12
  const [m] = parseMessages(w.buf, len, "X");
  assert.equal(m!.type, RTM.NEWLINK);
  assert.equal(m!.flags, NLM_F.REQUEST | NLM_F.ACK);
  assert.equal(m!.seq, 0x01020304);
  assert.equal(m!.payload.length, IFINFOMSG_SIZE + 12);
});

Deno.test("routeSpecFor moves every path of a host route to the namespace interface", () => {
  const msg = multipathRoute();
  const [m] = parseMessages(msg, msg.length, "X");
  const spec = routeSpecFor(parseRoute(m!.payload, "X"), 9);
  assert.equal(spec.ifindex, undefined);
  assert.equal(spec.metric, 600);
  assert.equal(spec.protocol, RTPROT.STATIC);
  assert.deepEqual(
    spec.nexthops?.map((n) => [n.ifindex, n.weight, [...n.gateway!].join(".")]),
    [[9, 1, "192.0.2.1"], [9, 5, "192.0.2.9"]],
  );
  assert.match(describeRoute(spec), /^default nexthop via 192\.0\.2\.1 dev #9 weight 1 /);
});
