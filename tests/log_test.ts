// Logging: the log file never grows past --log-size, drops the oldest lines first,
// and never cuts a line in half.
import assert from "node:assert/strict";
import { Logger } from "../src/log.ts";

Deno.test("the log file stays under --log-size while far more is written", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/passt.log`;
  const cap = 64 * 1024;
  const logger = new Logger();
  try {
    logger.configure({
      program: "passt",
      debug: false,
      trace: false,
      quiet: false,
      logFile: path,
      logSize: cap,
    });
    let written = 0;
    let maxSeen = 0;
    for (let i = 0; i < 20000; i++) {
      const line = `line ${i} ${"x".repeat(i % 97)}`;
      logger.info(line);
      written += line.length + 8;
      if (i % 500 === 0) maxSeen = Math.max(maxSeen, Deno.statSync(path).size);
    }
    assert.ok(written > 10 * cap, "the test writes far more than the cap");
    const text = Deno.readTextFileSync(path);
    assert.ok(text.length <= cap, `file is ${text.length} bytes, cap ${cap}`);
    assert.ok(maxSeen <= cap, `file reached ${maxSeen} bytes`);
    const lines = text.trimEnd().split("\n");
    // Whole lines only, newest kept, in order.
    for (const l of lines) assert.match(l, /^passt: line \d+ x*$/);
    assert.match(lines[lines.length - 1]!, /^passt: line 19999 /);
    const numbers = lines.map((l) => Number(l.split(" ")[2]));
    for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[i - 1]! + 1);
    assert.ok(numbers[0]! > 0, "the oldest lines were dropped");
    assert.equal(logger.lost, 0);
  } finally {
    logger.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("quiet drops informational lines but keeps warnings; debug lines need --debug", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/pasta.log`;
  const logger = new Logger();
  try {
    logger.configure({
      program: "pasta",
      debug: false,
      trace: false,
      quiet: true,
      logFile: path,
      logSize: 1 << 20,
    });
    logger.info("hidden info");
    logger.debug("hidden debug");
    logger.warn("visible warning");
    assert.equal(logger.debugging, false);
    const text = Deno.readTextFileSync(path);
    assert.equal(text, "pasta: visible warning\n");
  } finally {
    logger.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("with --trace, debug is on and lines carry elapsed seconds", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/passt.log`;
  const logger = new Logger();
  try {
    logger.configure({
      program: "passt",
      debug: false,
      trace: true,
      quiet: false,
      logFile: path,
      logSize: 1 << 20,
    });
    assert.equal(logger.debugging, true);
    assert.equal(logger.tracing, true);
    logger.trace("a packet");
    assert.match(Deno.readTextFileSync(path), /^passt: \d+\.\d{4}: a packet\n$/);
  } finally {
    logger.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
