import assert from "node:assert/strict";
import {
  formatIp,
  formatIp4,
  formatIp6,
  formatMac,
  ipEquals,
  isBroadcast4,
  isLinkLocal,
  isLoopback,
  isMulticast,
  isMulticastMac,
  isUnspecified,
  isV4Compat6,
  isV4Mapped6,
  isValidIfname,
  netmaskFromPrefix4,
  parseIp,
  parseIp4,
  parseIp4Into,
  parseIp6,
  parseIp6Into,
  parseMac,
  parseMacInto,
  parseNetmask4,
  prefixFromNetmask4,
} from "../../src/addr.ts";

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

Deno.test("IPv4: strict dotted quads parse to network order", () => {
  assert.deepEqual(parseIp4("192.0.2.1"), bytes(192, 0, 2, 1));
  assert.deepEqual(parseIp4("0.0.0.0"), bytes(0, 0, 0, 0));
  assert.deepEqual(parseIp4("255.255.255.255"), bytes(255, 255, 255, 255));
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "1.2.3.256",
      "01.2.3.4",
      "1.2.3.04",
      "1..3.4",
      ".1.2.3",
      "1.2.3.4.",
      " 1.2.3.4",
      "1.2.3.4 ",
      "0x1.2.3.4",
      "1.2.3.-4",
      "4294967295",
    ]
  ) {
    assert.equal(parseIp4(bad), undefined, bad);
  }
});

Deno.test("IPv6: every textual form parses, zones and malformed text do not", () => {
  const cases: [string, string][] = [
    ["::", "00000000000000000000000000000000"],
    ["::1", "00000000000000000000000000000001"],
    ["1::", "00010000000000000000000000000000"],
    ["2001:db8::1", "20010db8000000000000000000000001"],
    ["2001:DB8:0:0:8:800:200C:417A", "20010db80000000000080800200c417a"],
    ["fe80::1:2", "fe800000000000000000000000010002"],
    ["1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
    ["::2:3:4:5:6:7:8", "00000002000300040005000600070008"],
    ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
    ["64:ff9b::192.0.2.33", "0064ff9b0000000000000000c0000221"],
    ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
    ["::1.2.3.4", "00000000000000000000000001020304"],
  ];
  for (const [text, hex] of cases) {
    const addr = parseIp6(text);
    assert.ok(addr, text);
    assert.equal(Array.from(addr, (b) => b.toString(16).padStart(2, "0")).join(""), hex, text);
  }
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      ":1::2",
      "1::2:",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8::",
      "::1:2:3:4:5:6:7:8",
      "12345::",
      "g::1",
      "fe80::1%eth0",
      "::1.2.3",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "[::1]",
      "1.2.3.4",
    ]
  ) {
    assert.equal(parseIp6(bad), undefined, bad);
  }
});

Deno.test("parse into a caller's buffer at an offset, and refuse to overrun it", () => {
  const frame = new Uint8Array(24).fill(0xaa);
  assert.ok(parseIp6Into("2001:db8::7", frame, 8));
  assert.equal(frame[7], 0xaa);
  assert.equal(formatIp6(frame, 8), "2001:db8::7");
  assert.ok(parseIp4Into("10.1.2.3", frame, 2));
  assert.equal(formatIp4(frame, 2), "10.1.2.3");
  assert.equal(parseIp4Into("10.1.2.3", frame, 21), false);
  assert.equal(parseIp6Into("::1", frame, 9), false);
  const mac = new Uint8Array(8);
  assert.ok(parseMacInto("02:00:00:aa:bb:cc", mac, 2));
  assert.equal(formatMac(mac, 2), "02:00:00:aa:bb:cc");
  assert.equal(parseMacInto("02:00:00:aa:bb:cc", mac, 3), false);
});

Deno.test("parseIp picks the family by syntax", () => {
  assert.equal(parseIp("192.0.2.1")?.length, 4);
  assert.equal(parseIp("::ffff:192.0.2.1")?.length, 16);
  assert.equal(parseIp("2001:db8::1")?.length, 16);
  assert.equal(parseIp("host.example"), undefined);
});

Deno.test("IPv6 formatting is RFC 5952 canonical", () => {
  const cases: [string, string][] = [
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["::ffff:c000:201", "::ffff:192.0.2.1"],
    ["fe80::0:0:1", "fe80::1"],
  ];
  for (const [text, canonical] of cases) assert.equal(formatIp6(parseIp6(text)!), canonical);
  assert.equal(formatIp(parseIp("198.51.100.7")!), "198.51.100.7");
  assert.equal(formatIp(new Uint8Array(3)), "?");
});

Deno.test("address classes", () => {
  const is = (pred: (a: Uint8Array) => boolean, text: string) => pred(parseIp(text)!);
  assert.ok(is(isLoopback, "127.0.0.1") && is(isLoopback, "127.255.0.9") && is(isLoopback, "::1"));
  assert.ok(!is(isLoopback, "128.0.0.1") && !is(isLoopback, "::2"));
  assert.ok(is(isUnspecified, "0.0.0.0") && is(isUnspecified, "::"));
  assert.ok(!is(isUnspecified, "0.0.0.1"));
  assert.ok(
    is(isLinkLocal, "169.254.1.1") && is(isLinkLocal, "fe80::1") && is(isLinkLocal, "febf::1"),
  );
  assert.ok(!is(isLinkLocal, "fec0::1") && !is(isLinkLocal, "169.253.1.1"));
  assert.ok(
    is(isMulticast, "224.0.0.1") && is(isMulticast, "239.1.1.1") && is(isMulticast, "ff02::1"),
  );
  assert.ok(!is(isMulticast, "240.0.0.1") && !is(isMulticast, "fe80::1"));
  assert.ok(
    isBroadcast4(parseIp4("255.255.255.255")!) && !isBroadcast4(parseIp4("255.255.255.0")!),
  );
  assert.ok(isV4Mapped6(parseIp6("::ffff:1.2.3.4")!) && !isV4Mapped6(parseIp6("::1.2.3.4")!));
  assert.ok(isV4Compat6(parseIp6("::1.2.3.4")!));
  assert.ok(!isV4Compat6(parseIp6("::")!) && !isV4Compat6(parseIp6("::1")!));
  assert.ok(ipEquals(parseIp("10.0.0.1")!, parseIp("10.0.0.1")!));
  assert.ok(!ipEquals(parseIp("10.0.0.1")!, parseIp("::ffff:10.0.0.1")!));
});

Deno.test("netmasks: dotted or bits, contiguous only", () => {
  assert.equal(parseNetmask4("24"), 24);
  assert.equal(parseNetmask4("0"), 0);
  assert.equal(parseNetmask4("32"), 32);
  assert.equal(parseNetmask4("255.255.255.0"), 24);
  assert.equal(parseNetmask4("255.255.255.255"), 32);
  assert.equal(parseNetmask4("0.0.0.0"), 0);
  assert.equal(parseNetmask4("255.255.240.0"), 20);
  assert.equal(parseNetmask4("128.0.0.0"), 1);
  for (const bad of ["33", "-1", "024", "255.0.255.0", "0.255.255.255", "255.255.255.1", "", "x"]) {
    assert.equal(parseNetmask4(bad), -1, bad);
  }
  const out = new Uint8Array(4);
  for (let len = 0; len <= 32; len++) {
    netmaskFromPrefix4(len, out);
    assert.equal(prefixFromNetmask4(out), len);
  }
  netmaskFromPrefix4(20, out);
  assert.equal(formatIp4(out), "255.255.240.0");
});

Deno.test("MAC addresses", () => {
  assert.deepEqual(parseMac("9a:55:9A:55:9a:55"), bytes(0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55));
  assert.deepEqual(parseMac("2:0:0:0:0:1"), bytes(2, 0, 0, 0, 0, 1));
  for (
    const bad of [
      "",
      "1:2:3:4:5",
      "1:2:3:4:5:6:7",
      "001:2:3:4:5:6",
      "1:2:3:4:5:",
      "zz:2:3:4:5:6",
      "1-2-3-4-5-6",
    ]
  ) {
    assert.equal(parseMac(bad), undefined, bad);
  }
  assert.equal(formatMac(bytes(2, 0, 0xab, 0, 0, 1)), "02:00:ab:00:00:01");
  assert.ok(isMulticastMac(parseMac("01:00:5e:00:00:01")!));
  assert.ok(isMulticastMac(parseMac("ff:ff:ff:ff:ff:ff")!));
  assert.ok(!isMulticastMac(parseMac("02:00:00:00:00:01")!));
});

Deno.test("interface names follow the kernel's rules", () => {
  for (const good of ["eth0", "enp0s31f6", "a", "x".repeat(15), "tap-0.1", "wlan_0"]) {
    assert.ok(isValidIfname(good), good);
  }
  for (const bad of ["", ".", "..", "x".repeat(16), "a/b", "a:b", "a b", "a\tb"]) {
    assert.ok(!isValidIfname(bad), bad);
  }
});
