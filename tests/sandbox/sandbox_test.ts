/** The sandbox itself: the network it promises, its users, its time limits, its cleanup. */

import assert from "node:assert/strict";
import {
  NET,
  rootSandboxUnavailable,
  SANDBOX_USER_ID,
  sandboxUnavailable,
  withSandbox,
} from "./sandbox.ts";

const ignore = sandboxUnavailable() !== undefined;
const rootIgnored = rootSandboxUnavailable();
if (rootIgnored) console.error(`root sandbox tests ignored: ${rootIgnored}`);

Deno.test({
  name: "sandbox: host and remote namespaces, routes, resolv.conf, ping both ways",
  ignore,
  fn: () =>
    withSandbox(async (sb) => {
      const addr = await sb.run(["ip", "-j", "addr", "show", "dev", NET.hostIfname]);
      assert.equal(addr.code, 0, addr.stderr);
      const [link] = JSON.parse(addr.stdout);
      assert.equal(link.mtu, NET.hostMtu);
      const locals = link.addr_info.map((a: { local: string }) => a.local);
      assert.ok(locals.includes(NET.host4) && locals.includes(NET.host6), addr.stdout);

      const route4 = JSON.parse((await sb.run(["ip", "-j", "route", "show", "default"])).stdout);
      assert.equal(route4[0]?.gateway, NET.gateway4);
      const route6 = JSON.parse(
        (await sb.run(["ip", "-j", "-6", "route", "show", "default"])).stdout,
      );
      assert.equal(route6[0]?.gateway, NET.gateway6);

      const resolv = await sb.run(["cat", "/etc/resolv.conf"]);
      assert.match(resolv.stdout, /^nameserver 192\.0\.2\.1$/m);
      assert.match(resolv.stdout, /^nameserver 2001:db8:1::1$/m);
      assert.match(resolv.stdout, /^search example\.test$/m);
      // Only the sandbox sees it.
      assert.doesNotMatch(await Deno.readTextFile("/etc/resolv.conf"), /example\.test/);

      for (const target of [NET.gateway4, NET.gateway6, NET.remote4, NET.remote6]) {
        const ping = await sb.run(["ping", "-c1", "-W2", target], { user: true });
        assert.equal(ping.code, 0, `ping ${target}: ${ping.stdout}${ping.stderr}`);
      }
      const back = await sb.runRemote(["ping", "-c1", "-W2", NET.host4]);
      assert.equal(back.code, 0, back.stdout + back.stderr);
      const remoteAddr = await sb.runRemote(["ip", "-j", "addr", "show", "dev", "eth0"]);
      assert.match(remoteAddr.stdout, /"local":"192\.0\.2\.1"/);
    }),
});

Deno.test({
  name: "sandbox: the unprivileged user has no capabilities and its own uid",
  ignore,
  fn: () =>
    withSandbox(async (sb) => {
      const id = await sb.run(["sh", "-c", "id -u; grep CapEff /proc/self/status"], {
        user: true,
      });
      assert.equal(id.code, 0, id.stderr);
      assert.match(id.stdout, new RegExp(`^${SANDBOX_USER_ID}\\n`));
      assert.match(id.stdout, /CapEff:\s+0+\n/);
      const root = await sb.run(["id", "-u"]);
      assert.equal(root.stdout.trim(), "0");
    }),
});

Deno.test({
  name: "sandbox: status, stdin, time limits and cleanup of spawned processes",
  ignore,
  fn: async () => {
    let pid = 0;
    let outerPids: string[] = [];
    await withSandbox(async (sb) => {
      assert.equal((await sb.run(["sh", "-c", "exit 7"])).code, 7);
      assert.equal((await sb.run(["cat"], { stdin: "hello" })).stdout, "hello");
      const slow = await sb.run(["sleep", "30"], { timeoutMs: 300 });
      assert.ok(slow.timedOut, `status ${slow.code}`);

      // Durations no other test uses, so pgrep below sees only these two.
      const mark = 60 + Math.floor(Math.random() * 1e6) / 1e7;
      const sleeper = await sb.spawn(["sleep", `${mark}`], { user: true });
      pid = sleeper.pid;
      assert.ok(await sleeper.alive());
      const marker = `${sb.dir}/marker`;
      await sb.spawn(["sh", "-c", `echo $$ > ${marker}; exec sleep ${mark + 1}`]);
      assert.ok(
        await sb.waitFor(async () => (await Deno.stat(marker).catch(() => null)) !== null, 5000),
      );
      const pattern = `^sleep (${mark}|${mark + 1})$`.replaceAll(".", "\\.");
      const pgrep = await new Deno.Command("pgrep", { args: ["-f", pattern] }).output();
      outerPids = new TextDecoder().decode(pgrep.stdout).trim().split("\n").filter((s) => s);
      await sleeper.kill();
      assert.ok(await sb.waitFor(async () => !(await sleeper.alive()), 5000));
    });
    assert.ok(pid > 0);
    assert.ok(outerPids.length > 0, "the spawned sleepers were not seen from outside");
    for (const p of outerPids) {
      let gone = false;
      for (let i = 0; i < 50 && !gone; i++) {
        gone = !(await Deno.stat(`/proc/${p}`).then(() => true).catch(() => false));
        if (!gone) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(gone, `process ${p} outlived its sandbox`);
    }
  },
});

Deno.test({
  name: "sandbox (root): the machine's root, the same network, only new namespaces",
  ignore: rootIgnored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const outside = Object.fromEntries(
        ["net", "mnt", "pid", "user"].map((ns) => [ns, Deno.readLinkSync(`/proc/self/ns/${ns}`)]),
      );
      const inside = await sb.run([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; for ns in net mnt pid user; do readlink /proc/self/ns/$ns; done",
      ]);
      assert.equal(inside.code, 0, inside.stderr);
      const [uid, map, net, mnt, pid, user] = inside.stdout.trim().split("\n");
      assert.equal(uid, "0");
      assert.deepEqual(map?.trim().split(/\s+/), ["0", "0", "4294967295"]);
      assert.equal(user, outside.user, "a root sandbox has no user namespace");
      assert.notEqual(net, outside.net);
      assert.notEqual(mnt, outside.mnt);
      assert.notEqual(pid, outside.pid);

      const addr = await sb.run(["ip", "-j", "addr", "show", "dev", NET.hostIfname]);
      const [link] = JSON.parse(addr.stdout);
      assert.equal(link.mtu, NET.hostMtu);
      const locals = link.addr_info.map((a: { local: string }) => a.local);
      assert.ok(locals.includes(NET.host4) && locals.includes(NET.host6), addr.stdout);
      const links = JSON.parse((await sb.run(["ip", "-j", "link", "show"])).stdout);
      assert.deepEqual(links.map((l: { ifname: string }) => l.ifname).sort(), ["eth0", "lo"]);
      assert.match((await sb.run(["cat", "/etc/resolv.conf"])).stdout, /^search example\.test$/m);
      assert.doesNotMatch(await Deno.readTextFile("/etc/resolv.conf"), /example\.test/);

      // The unprivileged user: uid 1000 of the machine, no capabilities, may ping.
      const id = await sb.run(
        ["sh", "-c", `id -u; id -G; grep CapEff /proc/self/status; touch ${sb.dir}/mine`],
        { user: true },
      );
      assert.equal(id.code, 0, id.stderr);
      assert.match(id.stdout, new RegExp(`^${SANDBOX_USER_ID}\\n${SANDBOX_USER_ID}\\n`));
      assert.match(id.stdout, /CapEff:\s+0+\n/);
      for (const target of [NET.gateway4, NET.gateway6, NET.remote4, NET.remote6]) {
        const ping = await sb.run(["ping", "-c1", "-W2", target], { user: true });
        assert.equal(ping.code, 0, `ping ${target}: ${ping.stdout}${ping.stderr}`);
      }
    }, { root: true }),
});

Deno.test({
  name: "sandbox: setup.sh refuses to build in its caller's namespaces",
  ignore,
  fn: async () => {
    const setup = new URL("./setup.sh", import.meta.url).pathname;
    // Run in throwaway namespaces all the same, so that a broken check harms nothing:
    // there setup.sh is told that they are its caller's, or told nothing.
    const own = (ns: string) => `$(readlink /proc/self/ns/${ns})`;
    const claims = [
      `SANDBOX_OUTER_NET=${own("net")} SANDBOX_OUTER_MNT=${own("mnt")} sh "$0"`,
      `SANDBOX_OUTER_NET=other SANDBOX_OUTER_MNT=${own("mnt")} sh "$0"`,
      'sh "$0"',
    ];
    for (const claim of claims) {
      const out = await new Deno.Command("unshare", {
        args: ["--user", "--map-root-user", "--net", "--mount", "sh", "-c", claim, setup],
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, `${claim}: ${stderr}`);
      assert.equal(new TextDecoder().decode(out.stdout), "");
      assert.match(stderr, /namespace .* is not a new one: refusing to run/);
    }
  },
});
