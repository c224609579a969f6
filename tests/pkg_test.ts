// Installation and packages: `make pkgs` builds a .deb and an .rpm of this version whose
// programs run once unpacked, and the manual pages document exactly the options that
// --help lists.
//
// The package tests run `make pkgs` once (about half a minute: the packages carry the
// 95 MB Deno runtime) and are skipped, saying why, where dpkg-deb or rpmbuild is missing.
import assert from "node:assert/strict";
import { VERSION } from "../src/version.ts";

const root = new URL("..", import.meta.url).pathname;
const PKG_NAME = "passt-deno";

/** Runs a command to completion (bounded), stdin closed; returns its status and output. */
async function run(
  program: string,
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean } = {},
  timeoutMs = 300_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, {
    args: [...args],
    cwd: options.cwd ?? root,
    ...(options.env ? { env: options.env } : {}),
    ...(options.clearEnv ? { clearEnv: true } : {}),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function installed(program: string): boolean {
  const dirs = (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":");
  return dirs.some((dir) => {
    try {
      return Deno.statSync(`${dir}/${program}`).isFile;
    } catch {
      return false;
    }
  });
}

const missing = ["make", "dpkg", "dpkg-deb", "rpmbuild", "rpm"].filter((p) => !installed(p));
const skipReason = missing.length > 0
  ? `no ${missing.join(", ")} here; apt-get install rpm, as .ci/run does`
  : "";
if (skipReason) console.warn(`pkg_test: package tests skipped: ${skipReason}`);

/** The test name, with the reason it is skipped here if it is. */
function pkgTestName(name: string): string {
  return skipReason ? `${name} (skipped: ${skipReason})` : name;
}

interface Packages {
  deb: string;
  rpm: string;
  /** The .deb unpacked with dpkg-deb -x; removed at unload. */
  scratch: string;
}

let built: Promise<Packages> | undefined;

/** Runs `make pkgs` once for every test of this file. */
function packages(): Promise<Packages> {
  built ??= (async () => {
    // A clean environment for make: no jobserver or flags of a `make check` above us.
    const env = Deno.env.toObject();
    for (const name of ["MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"]) delete env[name];
    const make = await run("make", ["--no-print-directory", "pkgs"], { env, clearEnv: true });
    assert.equal(make.code, 0, `make pkgs failed:\n${make.stdout.slice(-3000)}${make.stderr}`);
    const debArch = (await run("dpkg", ["--print-architecture"])).stdout.trim();
    const rpmArch = (await run("uname", ["-m"])).stdout.trim();
    const deb = `${root}build/${PKG_NAME}_${VERSION}_${debArch}.deb`;
    const rpm = `${root}build/${PKG_NAME}-${VERSION}-1.${rpmArch}.rpm`;
    const scratch = Deno.makeTempDirSync({ prefix: "pkg_test_" });
    globalThis.addEventListener("unload", () => Deno.removeSync(scratch, { recursive: true }));
    const x = await run("dpkg-deb", ["-x", deb, scratch]);
    assert.equal(x.code, 0, x.stderr);
    return { deb, rpm, scratch };
  })();
  return built;
}

/** The fields of a Debian control paragraph (continuation lines joined with "\n"). */
function controlFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last = "";
  for (const line of text.split("\n")) {
    const field = /^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$/.exec(line);
    if (field) {
      last = field[1]!;
      fields.set(last, field[2]!);
    } else if (line.startsWith(" ") && last) {
      fields.set(last, `${fields.get(last)}\n${line.slice(1)}`);
    }
  }
  return fields;
}

Deno.test({
  name: pkgTestName("make pkgs writes a .deb and an .rpm of this version"),
  ignore: skipReason !== "",
  async fn() {
    const { deb, rpm } = await packages();
    assert.ok(Deno.statSync(deb).size > 0, deb);
    assert.ok(Deno.statSync(rpm).size > 0, rpm);
  },
});

Deno.test({
  name: pkgTestName("the .deb's control names the package, version, conflict and build kind"),
  ignore: skipReason !== "",
  async fn() {
    const { deb, scratch } = await packages();
    const info = await run("dpkg-deb", ["-I", deb, "control"]);
    assert.equal(info.code, 0, info.stderr);
    const fields = controlFields(info.stdout);
    const arch = (await run("dpkg", ["--print-architecture"])).stdout.trim();
    assert.equal(fields.get("Package"), PKG_NAME);
    assert.equal(fields.get("Version"), VERSION);
    assert.equal(fields.get("Architecture"), arch);
    assert.match(fields.get("Maintainer") ?? "", /<[^>]+@[^>]+>$/);
    assert.match(fields.get("Depends") ?? "", /\blibc6\b/);
    assert.match(fields.get("Conflicts") ?? "", /(^|, )passt($|[ ,])/);
    assert.ok(Number(fields.get("Installed-Size")) > 0);
    // The description says which build this is, and the files agree.
    const launcher = (() => {
      try {
        return Deno.statSync(`${scratch}/usr/lib/passt/deno`).isFile;
      } catch {
        return false;
      }
    })();
    const description = fields.get("Description") ?? "";
    assert.match(description, launcher ? /launcher build/ : /compiled build/);
  },
});

Deno.test({
  name: pkgTestName("the .deb holds both programs, the man pages and the copyright"),
  ignore: skipReason !== "",
  async fn() {
    const { scratch } = await packages();
    assert.ok(Deno.statSync(`${scratch}/usr/bin/passt`).isFile);
    assert.equal(Deno.readLinkSync(`${scratch}/usr/bin/pasta`), "passt");
    for (const page of ["passt.1.gz", "pasta.1.gz"]) {
      assert.ok(Deno.statSync(`${scratch}/usr/share/man/man1/${page}`).size > 0, page);
    }
    const doc = `${scratch}/usr/share/doc/${PKG_NAME}`;
    for (const file of ["copyright", "changelog.gz", "README.md"]) {
      assert.ok(Deno.statSync(`${doc}/${file}`).isFile, file);
    }
  },
});

Deno.test({
  name: pkgTestName("the .deb's pasta and passt run from where it is unpacked"),
  ignore: skipReason !== "",
  async fn() {
    const { scratch } = await packages();
    const launcher = Deno.readTextFileSync(`${scratch}/usr/bin/passt`).startsWith("#!");
    if (launcher) {
      const script = Deno.readTextFileSync(`${scratch}/usr/bin/passt`);
      assert.ok(!script.includes(root), "the launcher holds no path into the build tree");
    }
    // From another directory, so nothing is found relative to the build tree.
    const version = await run(`${scratch}/usr/bin/pasta`, ["--version"], { cwd: scratch });
    assert.equal(version.code, 0, version.stderr);
    assert.ok(version.stdout.startsWith(`pasta ${VERSION}`), version.stdout);
    const help = await run(`${scratch}/usr/bin/passt`, ["--help"], { cwd: scratch });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /passt/);
    assert.match(help.stdout, /--help/);
  },
});

const canDropPrivileges = skipReason === "" && Deno.uid() === 0 && installed("setpriv");

Deno.test({
  name: canDropPrivileges
    ? "the .deb's pasta runs as nobody with no HOME: no writable Deno cache needed"
    : "the .deb's pasta runs as nobody (skipped: needs root, setpriv and the package tools)",
  ignore: !canDropPrivileges,
  async fn() {
    const { scratch } = await packages();
    Deno.chmodSync(scratch, 0o755); // makeTempDir made it private to root
    const version = await run("setpriv", [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      `${scratch}/usr/bin/pasta`,
      "--version",
    ], { cwd: "/", env: { PATH: "/usr/bin:/bin" }, clearEnv: true });
    assert.equal(version.code, 0, version.stderr);
    assert.ok(version.stdout.startsWith(`pasta ${VERSION}`), version.stdout);
    assert.equal(version.stderr, "", "nothing about caches or permissions on stderr");
  },
});

Deno.test({
  name: pkgTestName("the .rpm lists both programs and the man pages, at this version"),
  ignore: skipReason !== "",
  async fn() {
    const { rpm } = await packages();
    const list = await run("rpm", ["-qpl", rpm]);
    assert.equal(list.code, 0, list.stderr);
    const files = new Set(list.stdout.trim().split("\n"));
    for (
      const path of [
        "/usr/bin/passt",
        "/usr/bin/pasta",
        "/usr/share/man/man1/passt.1.gz",
        "/usr/share/man/man1/pasta.1.gz",
        `/usr/share/doc/${PKG_NAME}/copyright`,
      ]
    ) {
      assert.ok(files.has(path), `${path} is in the .rpm`);
    }
    const info = await run("rpm", ["-qpi", rpm]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^Name\\s*: ${PKG_NAME}$`, "m"));
    assert.match(info.stdout, new RegExp(`^Version\\s*: ${VERSION.replaceAll(".", "\\.")}$`, "m"));
    assert.match(info.stdout, /^License\s*: GPL-2\.0-or-later/m);
    const conflicts = await run("rpm", ["-qp", "--conflicts", rpm]);
    assert.equal(conflicts.stdout.trim(), "passt");
  },
});

// --- manual pages against --help ------------------------------------------------------------

const LONG_OPTION = /--[a-z0-9][a-z0-9-]*/g;

/** Plain text of a man page: font changes and other roff escapes gone, "\-" read as "-". */
function roffToText(roff: string): string {
  return roff
    .replace(/\\f(\[[^\]]*\]|\(..|.)/g, "")
    .replace(/\\[&%:]/g, "")
    .replace(/\\-/g, "-");
}

/** Long options a man page documents: those in the tag line of each .TP item. */
function documentedOptions(roff: string): Set<string> {
  const lines = roffToText(roff).split("\n");
  const options = new Set<string>();
  lines.forEach((line, i) => {
    if (!/^\.TP\b/.test(line)) return;
    for (const option of lines[i + 1]?.match(LONG_OPTION) ?? []) options.add(option);
  });
  return options;
}

for (const mode of ["passt", "pasta"] as const) {
  Deno.test(`man/${mode}.1 documents every long option of ${mode} --help, and no other`, async () => {
    const program = `${root}${mode}`;
    try {
      Deno.statSync(program);
    } catch {
      throw new Error(`${program} is missing: run 'make' first (make check does)`);
    }
    const help = await run(program, ["--help"], {}, 30_000);
    assert.equal(help.code, 0, help.stderr);
    const inHelp = new Set(help.stdout.match(LONG_OPTION) ?? []);
    const inMan = documentedOptions(Deno.readTextFileSync(`${root}man/${mode}.1`));
    assert.ok(inHelp.size > 10, `${mode} --help names its long options`);
    const helpOnly = [...inHelp].filter((o) => !inMan.has(o)).sort();
    const manOnly = [...inMan].filter((o) => !inHelp.has(o)).sort();
    assert.ok(
      helpOnly.length === 0 && manOnly.length === 0,
      `in ${mode} --help but not documented in man/${mode}.1: [${helpOnly.join(" ")}]; ` +
        `documented in man/${mode}.1 but not in --help: [${manOnly.join(" ")}]`,
    );
  });
}
