import assert from "node:assert/strict";
import {
  decodeDomainList,
  domainListLength,
  domainNameLength,
  encodeDomainList,
} from "../../src/protocols/dns_name.ts";

Deno.test("DNS names: uncompressed encoding is plain labels", () => {
  const buf = new Uint8Array(64);
  const n = encodeDomainList(["a.bc", "x."], buf, 2, false);
  assert.equal(n, 9);
  assert.equal(n, domainListLength(["a.bc", "x."]));
  assert.deepEqual([...buf.subarray(2, 2 + n)], [1, 97, 2, 98, 99, 0, 1, 120, 0]);
});

Deno.test("DNS names: RFC 3397 compression reuses suffixes with pointers relative to the start", () => {
  const buf = new Uint8Array(64).fill(0xee);
  const names = ["eng.apple.com", "marketing.apple.com", "apple.com"];
  const n = encodeDomainList(names, buf, 5, true);
  // The RFC 3397 §3 example, offsets relative to the option data.
  assert.deepEqual([...buf.subarray(5, 5 + n)], [
    3,
    101,
    110,
    103,
    5,
    97,
    112,
    112,
    108,
    101,
    3,
    99,
    111,
    109,
    0,
    9,
    109,
    97,
    114,
    107,
    101,
    116,
    105,
    110,
    103,
    0xc0,
    4,
    0xc0,
    4,
  ]);
  assert.deepEqual(decodeDomainList(buf, 5, n), names);
});

Deno.test("DNS names: invalid names and lack of room fail as a whole", () => {
  assert.equal(domainNameLength(""), -1);
  assert.equal(domainNameLength("a..b"), -1);
  assert.equal(domainNameLength("x".repeat(64) + ".com"), -1);
  assert.equal(domainNameLength("sp ace.com"), -1);
  assert.equal(domainNameLength("ünï.com"), -1);
  assert.equal(domainNameLength(Array(130).fill("a").join(".")), -1, "over 255 bytes");
  const buf = new Uint8Array(8);
  assert.equal(encodeDomainList(["a.b", "bad..name"], buf, 0, false), -1);
  assert.equal(encodeDomainList(["example.com"], buf, 0, false), -1);
  assert.equal(encodeDomainList(["example.com"], new Uint8Array(64), 0, true, 10), -1);
});

Deno.test("DNS names: decoder rejects loops and overruns", () => {
  assert.equal(decodeDomainList(new Uint8Array([0xc0, 0]), 0, 2), null);
  assert.equal(decodeDomainList(new Uint8Array([3, 97, 98]), 0, 3), null);
  assert.equal(decodeDomainList(new Uint8Array([0]), 0, 1), null);
});
