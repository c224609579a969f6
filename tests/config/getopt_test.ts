import assert from "node:assert/strict";
import { Getopt, getoptLong, type LongOption, type ShortOption } from "../../src/config/getopt.ts";
import { ConfigError, OPTIONS, optionString, parseCommandLine } from "../../src/config/options.ts";

// A small table in the style of passt's: flags, options with arguments, shared prefixes.
const LONG: LongOption[] = [
  { name: "debug", hasArg: false, key: "d" },
  { name: "foreground", hasArg: false, key: "f" },
  { name: "tcp-ports", hasArg: true, key: "t" },
  { name: "tcp-ns", hasArg: true, key: "T" },
  { name: "netns", hasArg: true, key: "netns" },
  { name: "netns-only", hasArg: false, key: "netns-only" },
  { name: "pcap", hasArg: true, key: "p" },
  { name: "pid", hasArg: true, key: "P" },
];
const SHORT = new Map<string, ShortOption>([
  ["d", { hasArg: false, key: "d" }],
  ["f", { hasArg: false, key: "f" }],
  ["t", { hasArg: true, key: "t" }],
  ["T", { hasArg: true, key: "T" }],
]);

function run(...args: string[]): string[] {
  const { options, operands } = getoptLong(args, SHORT, LONG);
  return [
    ...options.map((o) => o.value === undefined ? o.key : `${o.key}=${o.value}`),
    "|",
    ...operands,
  ];
}

function fails(args: string[], message: string): void {
  assert.throws(() => getoptLong(args, SHORT, LONG), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, message);
    assert.equal(e.showUsage, true);
    return true;
  });
}

Deno.test("short options cluster, and an argument is the rest of the word or the next word", () => {
  assert.deepEqual(run("-fd"), ["f", "d", "|"]);
  assert.deepEqual(run("-t22"), ["t=22", "|"]);
  assert.deepEqual(run("-t", "22"), ["t=22", "|"]);
  assert.deepEqual(run("-fdt22"), ["f", "d", "t=22", "|"]);
  assert.deepEqual(run("-fdt", "22", "-d"), ["f", "d", "t=22", "d", "|"]);
  assert.deepEqual(run("-tfd"), ["t=fd", "|"]);
  // The next word is taken whatever it looks like.
  assert.deepEqual(run("-t", "-d"), ["t=-d", "|"]);
  assert.deepEqual(run("-t", "--"), ["t=--", "|"]);
});

Deno.test("long options: --opt=val, --opt val, empty values", () => {
  assert.deepEqual(run("--tcp-ports=22"), ["t=22", "|"]);
  assert.deepEqual(run("--tcp-ports", "22"), ["t=22", "|"]);
  assert.deepEqual(run("--tcp-ports="), ["t=", "|"]);
  assert.deepEqual(run("--tcp-ports", ""), ["t=", "|"]);
  assert.deepEqual(run("--pcap=a=b"), ["p=a=b", "|"]);
  assert.deepEqual(run("--debug", "--foreground"), ["d", "f", "|"]);
});

Deno.test("abbreviations: unique prefixes match, an exact name wins", () => {
  assert.deepEqual(run("--deb"), ["d", "|"]);
  assert.deepEqual(run("--f"), ["f", "|"]);
  assert.deepEqual(run("--tcp-p", "22"), ["t=22", "|"]);
  assert.deepEqual(run("--tcp-n=22"), ["T=22", "|"]);
  assert.deepEqual(run("--netns", "x"), ["netns=x", "|"]); // also a prefix of netns-only
  assert.deepEqual(run("--netns-"), ["netns-only", "|"]);
  assert.deepEqual(run("--pc", "x"), ["p=x", "|"]);
  fails(["--tcp"], "option '--tcp' is ambiguous; possibilities: '--tcp-ports' '--tcp-ns'");
  fails(["--p=x"], "option '--p=x' is ambiguous; possibilities: '--pcap' '--pid'");
  fails(["--net"], "option '--net' is ambiguous; possibilities: '--netns' '--netns-only'");
});

Deno.test("'--' ends the options and a lone '-' is an operand", () => {
  assert.deepEqual(run("-d", "--", "-f", "--debug"), ["d", "|", "-f", "--debug"]);
  assert.deepEqual(run("--"), ["|"]);
  assert.deepEqual(run("-d", "-", "-f"), ["d", "|", "-", "-f"]);
  assert.deepEqual(run("--", "--"), ["|", "--"]);
});

Deno.test("parsing stops at the first operand, keeping the command's own options", () => {
  assert.deepEqual(run("-d", "ls", "-l", "--debug"), ["d", "|", "ls", "-l", "--debug"]);
  assert.deepEqual(run("cmd", "-x"), ["|", "cmd", "-x"]);
  assert.deepEqual(run("-t", "22", "cmd"), ["t=22", "|", "cmd"]);
});

Deno.test("glibc's error messages, word for word", () => {
  fails(["--foo"], "unrecognized option '--foo'");
  fails(["--foo=bar"], "unrecognized option '--foo=bar'");
  fails(["-z"], "invalid option -- 'z'");
  fails(["-dz"], "invalid option -- 'z'");
  fails(["-d-"], "invalid option -- '-'");
  fails(["-t"], "option requires an argument -- 't'");
  fails(["-fdt"], "option requires an argument -- 't'");
  fails(["--tcp-ports"], "option '--tcp-ports' requires an argument");
  fails(["--tcp-p"], "option '--tcp-ports' requires an argument");
  fails(["--debug=1"], "option '--debug' doesn't allow an argument");
  fails(["--deb=1"], "option '--debug' doesn't allow an argument");
  fails(["--netns-only="], "option '--netns-only' doesn't allow an argument");
  fails(
    ["--=x"],
    "option '--=x' is ambiguous; possibilities: '--debug' '--foreground' '--tcp-ports' '--tcp-ns'" +
      " '--netns' '--netns-only' '--pcap' '--pid'",
  );
});

Deno.test("options are handed out one at a time, so earlier ones act first", () => {
  const getopt = new Getopt(["-d", "--bogus"], SHORT, LONG);
  assert.deepEqual(getopt.next(), { key: "d", value: undefined });
  assert.throws(() => getopt.next(), /unrecognized option '--bogus'/);
  const done = new Getopt(["-f", "cmd", "-d"], SHORT, LONG);
  assert.equal(done.next()?.key, "f");
  assert.equal(done.next(), undefined);
  assert.deepEqual(done.operands, ["cmd", "-d"]);
});

Deno.test("the real option strings of both modes", () => {
  assert.equal(optionString("passt"), "+dqfel:hs:F:p:P:m:a:n:M:g:i:o:D:S:H:461t:u:");
  assert.equal(optionString("pasta"), "+dqfel:hI:p:P:m:a:n:M:g:i:o:D:S:H:46t:u:T:U:");
  // Long names are unique, and short letters too.
  assert.equal(new Set(OPTIONS.map((o) => o.long)).size, OPTIONS.length);
  const letters = OPTIONS.flatMap((o) => o.short === undefined ? [] : [o.short]);
  assert.equal(new Set(letters).size, letters.length);
});

Deno.test("the real table: '--no' lists every --no- option in table order", () => {
  for (const mode of ["passt", "pasta"] as const) {
    assert.throws(() => parseCommandLine(mode, ["--no"]), {
      message: "option '--no' is ambiguous; possibilities: '--no-tcp' '--no-udp' '--no-icmp'" +
        " '--no-dhcp' '--no-dhcpv6' '--no-ndp' '--no-ra' '--no-splice' '--no-map-gw' '--no-dhcp-dns'" +
        " '--no-dhcp-search' '--no-netns-quit' '--no-copy-routes' '--no-copy-addrs'",
    });
  }
  assert.throws(() => parseCommandLine("passt", ["--no-dhcp-"]), {
    message: "option '--no-dhcp-' is ambiguous; possibilities: '--no-dhcp-dns' '--no-dhcp-search'",
  });
  assert.throws(() => parseCommandLine("pasta", ["--out", "x"]), {
    message:
      "option '--out' is ambiguous; possibilities: '--outbound' '--outbound-if4' '--outbound-if6'",
  });
  // "--no-dhcp" is exact although it prefixes three others.
  const r = parseCommandLine("passt", ["--no-dhcp"]);
  assert.ok(r.action === "run" && r.config.noDhcp && r.config.dhcpDns);
});
