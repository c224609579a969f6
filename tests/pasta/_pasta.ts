/**
 * What the pasta integration tests share: which binary is under test, whether the
 * suite can run at all, and how to run pasta in a sandbox as an unprivileged user.
 *
 * PASTA_UNDER_TEST picks the binary (default: ./pasta as `make` built it); the same
 * tests validate Debian's C pasta with PASTA_UNDER_TEST=/usr/bin/pasta.
 */

import assert from "node:assert/strict";
import {
  NET,
  type RunOptions,
  type RunResult,
  type Sandbox,
  type SandboxProcess,
  sandboxUnavailable,
  sleep,
} from "../sandbox/sandbox.ts";

/** Absolute path of the pasta binary under test. */
export const PASTA = Deno.env.get("PASTA_UNDER_TEST") ??
  new URL("../../pasta", import.meta.url).pathname;

/**
 * True when the binary under test is the C pasta (Debian's, for validation): tests then
 * skip the few assertions where it is known to differ from our man page and issue 3,
 * and print what they skipped. Ours names itself "(TypeScript on Deno ...)".
 */
export const IS_C_PASTA = (() => {
  try {
    const out = new Deno.Command(PASTA, { args: ["--version"], stderr: "null" }).outputSync();
    const text = new TextDecoder().decode(out.stdout);
    return text !== "" && !text.includes("TypeScript");
  } catch {
    return false;
  }
})();

/** Notes, on stderr, an assertion skipped because the C pasta differs there. */
export function cPastaDiffers(what: string): void {
  console.error(`C pasta differs (assertion skipped): ${what}`);
}

/** Debian's python3 (a pyenv shim on PATH may not work as the sandbox's user). */
export const PYTHON = ["/usr/bin/python3", "/usr/bin/python3.11"].find(exists) ?? "python3";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function installed(tool: string): boolean {
  return ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => exists(`${d}/${tool}`));
}

/**
 * Why the pasta suite is skipped, or undefined when it runs. Our pasta says
 * "not supported yet" until namespaces and the tap are wired; that is probed in an
 * empty user+network namespace, so nothing can reach a real interface.
 */
export function pastaSuiteIgnored(): string | undefined {
  const sandbox = sandboxUnavailable();
  if (sandbox) return sandbox;
  if (!exists(PASTA)) return `${PASTA} does not exist (run make)`;
  try {
    const out = new Deno.Command("unshare", {
      args: [
        "--user",
        "--map-root-user",
        "--net",
        "timeout",
        "-k",
        "2",
        "30",
        PASTA,
        "--config-net",
        "--",
        "true",
      ],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    const line = new TextDecoder().decode(out.stderr).split("\n").find((l) =>
      l.includes("not supported yet")
    );
    if (out.code === 1 && line) return `${PASTA}: ${line.trim()}`;
  } catch (e) {
    return `cannot run ${PASTA}: ${e}`;
  }
  return undefined;
}

/** Tools a test needs, or the reason it is skipped. */
export function needs(...tools: string[]): string | undefined {
  const missing = tools.filter((t) => !installed(t));
  return missing.length ? `not installed: ${missing.join(", ")}` : undefined;
}

/** Runs pasta with `args` in the sandbox, as the unprivileged user. */
export function pasta(
  sb: Sandbox,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return sb.run([PASTA, ...args], { user: true, ...opts });
}

/** Runs `script` with sh inside a namespace pasta made (`pasta ARGS -- sh -c SCRIPT`). */
export function inPasta(
  sb: Sandbox,
  args: readonly string[],
  script: string,
  opts: RunOptions = {},
): Promise<RunResult> {
  return pasta(sb, [...args, "--", "sh", "-c", script], opts);
}

/** Writes an executable script into the sandbox directory and returns its path. */
export async function writeScript(sb: Sandbox, name: string, text: string): Promise<string> {
  const path = `${sb.dir}/${name}`;
  await Deno.writeTextFile(path, text, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return path;
}

/** KEY=VALUE lines (as `env` prints them) as a record. */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/** A shell loop that waits (bounded: 100 × 0.1 s) until `condition` succeeds. */
export function shWait(condition: string, what: string): string {
  return `i=0; until ${condition}; do i=$((i+1)); ` +
    `[ $i -le 100 ] || { echo "timed out waiting for ${what}" >&2; exit 99; }; sleep 0.1; done`;
}

/** Formats a failed run for an assertion message. */
export function show(r: RunResult): string {
  return `status ${r.code}${
    r.timedOut ? " (timed out)" : ""
  }\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** Writes `size` random bytes to `path`; returns their SHA-256 (hex). */
export async function randomFile(path: string, size: number): Promise<string> {
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(data.subarray(off, Math.min(off + 65536, size)));
  }
  await Deno.writeFile(path, data);
  return sha256(data);
}

/** SHA-256 of `data` (hex). */
export async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of a file, or a description of why there is none. */
export async function sha256File(path: string): Promise<string> {
  try {
    return await sha256(await Deno.readFile(path));
  } catch (e) {
    return `(unreadable: ${e})`;
  }
}

/** `s` as one shell word. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** What a background pasta printed, if it already ended. */
export async function early(p: SandboxProcess): Promise<string> {
  const r = await Promise.race([p.result, sleep(100).then(() => undefined)]);
  return r ? show(r) : "(still running)";
}

// --- what `ip -j` and DHCP clients show in pasta's namespace ------------------------------

/** Parsed `ip -j` output. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** The interface pasta creates in the namespace (named after the host's). */
export const IF = NET.hostIfname;
/** Shell command that brings it up, where --config-net is not used. */
export const LINK_UP = `ip link set ${IF} up`;

/** The addresses of one link of `ip -j addr`, as ADDRESS/PREFIXLEN. */
export function addrsOf(link: Json): string[] {
  return link.addr_info.map((a: Json) => `${a.local}/${a.prefixlen}`);
}

/** Splits the output of several `ip -j` commands separated by "--- NAME" lines. */
export function sections(stdout: string): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const part of stdout.split(/^--- /m).slice(1)) {
    const nl = part.indexOf("\n");
    out[part.slice(0, nl)] = JSON.parse(part.slice(nl + 1).trim() || "[]");
  }
  return out;
}

/** Shell commands printing addresses and routes as `sections` reads them (addr, route4, route6). */
export const IP_STATE = [
  "echo '--- addr'; ip -j addr show",
  "echo '--- route4'; ip -j route show",
  "echo '--- route6'; ip -j -6 route show",
].join("; ");

/** A dhclient script that records each call's environment in DIR/dhclient.REASON. */
function dhclientScript(sb: Sandbox): Promise<string> {
  return writeScript(
    sb,
    "dhclient-script",
    `#!/bin/sh\nenv > "${sb.dir}/dhclient.$reason"\nexit 0\n`,
  );
}

async function dhclientConf(sb: Sandbox): Promise<string> {
  const path = `${sb.dir}/dhclient.conf`;
  await Deno.writeTextFile(
    path,
    "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,\n" +
      "  domain-search, interface-mtu, dhcp6.name-servers, dhcp6.domain-search;\n",
  );
  return path;
}

/**
 * Runs `dhclient -4|-6 -1` in pasta's namespace (pasta run with `opts`, as the
 * unprivileged user unless they say otherwise); returns the BOUND|BOUND6 environment.
 */
export async function dhclient(
  sb: Sandbox,
  family: "-4" | "-6",
  pastaArgs: string[],
  opts: RunOptions = {},
): Promise<Record<string, string>> {
  const script = await dhclientScript(sb);
  const conf = await dhclientConf(sb);
  const files = `-pf ${sb.dir}/dhclient${family}.pid -lf ${sb.dir}/dhclient${family}.leases`;
  const wait6 = family === "-6"
    ? shWait(
      `ip -6 addr show dev ${IF} scope link -tentative | grep -q 'inet6 fe80::'`,
      "a link-local address",
    )
    : ":";
  const cmd = [
    LINK_UP,
    wait6,
    `dhclient ${family} -1 -v -cf ${conf} -sf ${script} ${files} ${IF}; status=$?`,
    // -1 still leaves a daemon behind once bound: stop it.
    `dhclient ${family} -x ${files} 2>/dev/null`,
    "exit $status",
  ].join("\n");
  const r = await inPasta(sb, pastaArgs, cmd, { timeoutMs: 40_000, ...opts });
  assert.equal(r.code, 0, show(r));
  const reason = family === "-4" ? "BOUND" : "BOUND6";
  const env = await Deno.readTextFile(`${sb.dir}/dhclient.${reason}`).catch(() => "");
  assert.ok(env, `dhclient never reached ${reason}: ${show(r)}`);
  return parseEnv(env);
}

/** Starts `unshare -Urn sleep` as the sandbox user; returns it once its netns exists. */
export async function namespaceHolder(sb: Sandbox) {
  const holder = await sb.spawn(
    ["unshare", "--user", "--map-root-user", "--net", "sleep", "60"],
    { user: true, timeoutMs: 60_000 },
  );
  const mine = (await sb.run(["readlink", "/proc/self/ns/net"])).stdout;
  const ready = await sb.waitFor(async () => {
    const r = await sb.run(["readlink", `/proc/${holder.pid}/ns/net`]);
    return r.code === 0 && r.stdout !== mine;
  }, 5000);
  assert.ok(ready, "the namespace holder never unshared");
  return holder;
}

/**
 * Asserts what --config-net gives the namespace in the sandbox (`s`: the sections of
 * IP_STATE's output): the host's address of each version on IF, and the default
 * routes via the sandbox's gateways through IF.
 */
export function assertHostAddressesAndRoutes(s: Json): void {
  const addrs = addrsOf(s.addr.find((l: Json) => l.ifname === IF));
  assert.ok(addrs.includes(`${NET.host4}/${NET.prefix4}`), `addresses: ${addrs}`);
  assert.ok(addrs.includes(`${NET.host6}/${NET.prefix6}`), `addresses: ${addrs}`);
  const default4 = s.route4.find((rt: Json) => rt.dst === "default");
  assert.equal(default4?.gateway, NET.gateway4, JSON.stringify(s.route4));
  assert.equal(default4?.dev, IF);
  const default6 = s.route6.find((rt: Json) => rt.dst === "default");
  assert.equal(default6?.gateway, NET.gateway6, JSON.stringify(s.route6));
  assert.equal(default6?.dev, IF);
}
