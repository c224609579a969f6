// The libc layer: data crosses real descriptors, errno names the real failure.
import assert from "node:assert/strict";
import {
  AF,
  EPOLL,
  IOVEC_SIZE,
  MMSGHDR,
  MSG,
  MSGHDR,
  O,
  SOCK,
  SOCKADDR_IN_SIZE,
} from "../../src/ffi/layout.ts";
import * as sys from "../../src/ffi/sys.ts";
import { EventLoop } from "../../src/loop.ts";

const loopback = new Uint8Array([127, 0, 0, 1]);

Deno.test("socketpair carries bytes both ways through read/write", () => {
  const [a, b] = sys.socketpair(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
  try {
    const out = sys.pinnedBuffer(4096);
    crypto.getRandomValues(out);
    assert.equal(sys.write(a, out, out.length), out.length);
    const back = sys.pinnedBuffer(4096);
    let got = 0;
    while (got < back.length) {
      const n = sys.read(b, back.subarray(got), back.length - got);
      assert.ok(n > 0, `read returned ${n}`);
      got += n;
    }
    assert.deepEqual(back, out);
    assert.equal(sys.write(b, out, 10), 10);
    assert.equal(sys.read(a, back, 100), 10);
    assert.deepEqual(back.subarray(0, 10), out.subarray(0, 10));
  } finally {
    sys.close(a);
    sys.close(b);
  }
});

Deno.test("read on an empty nonblocking socket returns -EAGAIN, not an exception", () => {
  const [a, b] = sys.socketpair(AF.UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC);
  try {
    assert.equal(sys.read(a, sys.pinnedBuffer(16), 16), -sys.Errno.EAGAIN);
  } finally {
    sys.close(a);
    sys.close(b);
  }
});

/** A batch of `count` mmsghdrs, each with one iovec over its own pinned buffer. */
function mmsgBatch(count: number, size: number) {
  const vec = sys.pinnedBuffer(count * MMSGHDR.size);
  const iov = sys.pinnedBuffer(count * IOVEC_SIZE);
  const vecView = new DataView(vec.buffer);
  const iovView = new DataView(iov.buffer);
  const buffers = Array.from({ length: count }, () => sys.pinnedBuffer(size));
  const iovBase = sys.addressOf(iov);
  buffers.forEach((buf, i) => {
    sys.setIovec(iovView, i, sys.addressOf(buf), size);
    vecView.setBigUint64(i * MMSGHDR.size + MSGHDR.iov, iovBase + BigInt(i * IOVEC_SIZE), true);
    vecView.setBigUint64(i * MMSGHDR.size + MSGHDR.iovlen, 1n, true);
  });
  return { vec, vecView, iov, iovView, buffers };
}

Deno.test("sendmmsg/recvmmsg move a batch of datagrams intact", () => {
  const [a, b] = sys.socketpair(AF.UNIX, SOCK.DGRAM | SOCK.NONBLOCK | SOCK.CLOEXEC);
  try {
    const count = 8;
    const tx = mmsgBatch(count, 512);
    tx.buffers.forEach((buf, i) => {
      crypto.getRandomValues(buf);
      sys.setIovecLength(tx.iovView, i, 100 + i * 40); // distinct lengths
    });
    assert.equal(sys.sendmmsg(a, tx.vec, count, 0), count);
    const rx = mmsgBatch(count, 512);
    assert.equal(sys.recvmmsg(b, rx.vec, count, MSG.DONTWAIT), count);
    for (let i = 0; i < count; i++) {
      const len = rx.vecView.getUint32(i * MMSGHDR.size + MMSGHDR.len, true);
      assert.equal(len, 100 + i * 40);
      assert.deepEqual(rx.buffers[i]!.subarray(0, len), tx.buffers[i]!.subarray(0, len));
    }
    assert.equal(sys.recvmmsg(b, rx.vec, count, MSG.DONTWAIT), -sys.Errno.EAGAIN);
  } finally {
    sys.close(a);
    sys.close(b);
  }
});

/** A loopback TCP port with nothing listening: bind, read the port, close. */
function closedLoopbackPort(): number {
  const s = sys.socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  const addr = sys.pinnedBuffer(SOCKADDR_IN_SIZE);
  sys.encodeSockaddrIn(addr, loopback, 0);
  sys.bind(s, addr, SOCKADDR_IN_SIZE);
  sys.getsockname(s, addr);
  const port = sys.sockaddrPort(addr);
  sys.close(s);
  return port;
}

Deno.test("connect to a closed loopback port fails with ECONNREFUSED", () => {
  const port = closedLoopbackPort();
  const s = sys.socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
  try {
    const addr = sys.pinnedBuffer(SOCKADDR_IN_SIZE);
    sys.encodeSockaddrIn(addr, loopback, port);
    const r = sys.connect(s, addr, SOCKADDR_IN_SIZE);
    assert.equal(r, -sys.Errno.ECONNREFUSED);
    assert.equal(sys.errnoName(-r), "ECONNREFUSED");
  } finally {
    sys.close(s);
  }
});

Deno.test("setup calls throw SysError naming the call and errno", () => {
  assert.throws(
    () => sys.open("/nonexistent/definitely/not/here", O.RDONLY),
    (e: unknown) =>
      e instanceof sys.SysError && e.call === "open" && e.code === "ENOENT" &&
      e.message.includes("/nonexistent/definitely/not/here") &&
      e.message.includes("No such file or directory"),
  );
  assert.throws(
    () => sys.socket(12345, SOCK.STREAM, 0),
    (e: unknown) => e instanceof sys.SysError && e.call === "socket" && e.code === "EAFNOSUPPORT",
  );
});

Deno.test("errno stays exact under allocation pressure and garbage collection", () => {
  // Interleave three different failures with heavy allocation, so that garbage
  // collections happen between calls; every read of errno must match its call.
  const port = closedLoopbackPort();
  const addr = sys.pinnedBuffer(SOCKADDR_IN_SIZE);
  sys.encodeSockaddrIn(addr, loopback, port);
  const buf = sys.pinnedBuffer(16);
  let garbage: unknown[] = [];
  let mismatches = 0;
  for (let i = 0; i < 3000; i++) {
    garbage.push(new Array(200).fill({ i }), "x".repeat(i % 500));
    if (garbage.length > 2000) garbage = [];
    if (sys.read(-1, buf, 16) !== -sys.Errno.EBADF) mismatches++;
    const s = sys.socket(AF.INET, SOCK.STREAM | SOCK.CLOEXEC, 0);
    if (sys.connect(s, addr, SOCKADDR_IN_SIZE) !== -sys.Errno.ECONNREFUSED) mismatches++;
    sys.close(s);
    if (sys.tryOpen("/nonexistent-errno-test", O.RDONLY) !== -sys.Errno.ENOENT) mismatches++;
  }
  assert.equal(mismatches, 0);
});

Deno.test("epoll reports readiness with the registered kind and index", () => {
  const loop = new EventLoop();
  const [r, w] = sys.pipe2(O.NONBLOCK | O.CLOEXEC);
  try {
    const seen: [number, number, number][] = [];
    const kind = loop.defineKind("pipe", (index, events, fd) => {
      seen.push([index, events, fd]);
      sys.read(fd, sys.pinnedBuffer(64), 64);
      loop.stop(7);
    });
    assert.equal(loop.add(r, kind, 123456, EPOLL.IN), 0);
    assert.equal(loop.add(r, kind, 1, EPOLL.IN), -sys.Errno.EEXIST);
    sys.write(w, new Uint8Array([1, 2, 3]), 3);
    assert.equal(loop.run(1000, 5), 7);
    assert.deepEqual(seen, [[123456, EPOLL.IN, r]]);
  } finally {
    sys.close(r);
    sys.close(w);
    loop.close();
  }
});

Deno.test("a timerfd fires through the loop", () => {
  const loop = new EventLoop();
  try {
    let ticks = 0;
    const start = performance.now();
    loop.addTimer("test", 20, (expirations) => {
      ticks += expirations;
      if (ticks >= 3) loop.stop(0);
    });
    loop.run(1000, 50);
    assert.ok(ticks >= 3, `timer ticked ${ticks} times`);
    assert.ok(performance.now() - start >= 55, "three 20 ms periods take at least 55 ms");
  } finally {
    loop.close();
  }
});

Deno.test("an exception in a handler is counted and the loop goes on", () => {
  const loop = new EventLoop();
  const [r, w] = sys.pipe2(O.NONBLOCK | O.CLOEXEC);
  try {
    const errors: string[] = [];
    loop.onHandlerError((kind, e) => errors.push(`${kind}: ${e}`));
    let calls = 0;
    const kind = loop.defineKind("flaky", (_i, _e, fd) => {
      calls++;
      sys.read(fd, sys.pinnedBuffer(8), 8);
      if (calls === 1) throw new Error("boom");
      loop.stop(0);
    });
    loop.add(r, kind, 0, EPOLL.IN);
    sys.write(w, new Uint8Array([1]), 1);
    loop.run(200, 1);
    sys.write(w, new Uint8Array([1]), 1);
    loop.run(200, 1);
    assert.equal(calls, 2);
    assert.equal(loop.stats.handlerErrors, 1);
    assert.deepEqual(errors, ["flaky: Error: boom"]);
  } finally {
    sys.close(r);
    sys.close(w);
    loop.close();
  }
});

Deno.test("getrlimit reads RLIMIT_NOFILE", () => {
  const [soft, hard] = sys.getrlimit(7);
  assert.ok(soft > 0 && soft <= hard);
});
