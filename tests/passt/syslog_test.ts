// passt in the background logs to the system logger (/dev/log), tagged with its
// name and the PID the system knows it by, even from its empty root in a PID
// namespace of its own: the logger socket is connected before the filesystem goes.
import assert from "node:assert/strict";
import { PASST, passtMissing } from "./_passt.ts";
import { rootSandboxUnavailable, withSandbox } from "../sandbox/sandbox.ts";

const ignored = rootSandboxUnavailable() ?? passtMissing();
if (ignored) console.error(`tests/passt/syslog_test.ts ignored: ${ignored}`);

Deno.test({
  name: "passt in the background: lines reach /dev/log with the name and the worker's PID",
  ignore: ignored !== undefined,
  fn: () =>
    withSandbox(async (sb) => {
      const dir = sb.dir;
      // A /dev of our own, in a mount namespace of its own inside the sandbox, with
      // a datagram socket at /dev/log collected into a file by socat.
      const script = [
        "set -e",
        "mount -t tmpfs dev /dev",
        "mknod -m 666 /dev/null c 1 3",
        `socat -u UNIX-RECV:/dev/log,mode=666 OPEN:${dir}/syslog,creat,append &`,
        "collector=$!",
        "for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done",
        `"$0" -s ${dir}/sock -P ${dir}/pid`,
        "sleep 1",
        `kill $(cat ${dir}/pid)`,
        "sleep 1",
        "kill $collector",
      ].join("\n");
      const r = await sb.run(["unshare", "--mount", "sh", "-c", script, PASST], {
        timeoutMs: 30_000,
      });
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      const pid = Number((await Deno.readTextFile(`${dir}/pid`)).trim());
      assert.ok(pid > 1, `the PID file holds the PID the system knows: ${pid}`);
      const logged = await Deno.readTextFile(`${dir}/syslog`);
      // RFC 3164: <facility daemon * 8 + severity>, then the tag with the PID.
      assert.match(
        logged,
        new RegExp(`<30>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d passt\\[${pid}\\]: `),
      );
      assert.match(logged, new RegExp(`passt\\[${pid}\\]: terminating on signal 15`), logged);
    }, { root: true }),
});
