/**
 * A DataPathContext for the UDP tests: a hand-made network plan (the guest has
 * the "host" address 198.51.100.7 / 2001:db8:1::7, the gateway 198.51.100.1 /
 * fe80::1 stands for the host's loopback, --dns-forward 198.51.100.53 /
 * 2001:db8:1::53 goes to the resolvers 127.0.0.53 / ::1), a real EventLoop and
 * FlowTable, and a FrameOutput that hands each queued frame to a callback and is
 * flushed at the end of every loop turn, like the tap.
 */

import type { Config } from "../../src/config/config.ts";
import type { NetworkPlan } from "../../src/config/network.ts";
import type { DataPathContext, FrameOutput } from "../../src/flow/context.ts";
import { FlowTable } from "../../src/flow/flow.ts";
import { initialGuestState } from "../../src/flow/guest.ts";
import { AddressMap } from "../../src/flow/nat.ts";
import { EventLoop } from "../../src/loop.ts";
import { PacketView } from "../../src/protocols/packet.ts";
import { FRAME_MAX } from "../../src/protocols/ethernet.ts";
import { GUEST_MAC, ip4, ip6, OUR_MAC } from "./_fixtures.ts";

export const HOST4 = ip4("198.51.100.7");
export const GATEWAY4 = ip4("198.51.100.1");
export const DNS_FWD4 = ip4("198.51.100.53");
export const RESOLVER4 = ip4("127.0.0.53");
export const HOST6 = ip6("2001:db8:1::7");
export const GATEWAY6 = ip6("fe80::1");
export const DNS_FWD6 = ip6("2001:db8:1::53");
export const RESOLVER6 = ip6("::1");
export const GUEST_LL6 = ip6("fe80::5054:ff:fe12:3456");

/** Slots of the fake tap: fewer than the real one's, so batches meet a full arena. */
const FAKE_SLOTS = 8;
const FAKE_SLOT_SIZE = 4 + FRAME_MAX;

/**
 * A FrameOutput laid out like the tap's arena (slots of a length prefix and one
 * frame), handing a copy of each queued frame to `onFrame`.
 */
export class FakeTap implements FrameOutput {
  readonly #arena = new Uint8Array(new ArrayBuffer(FAKE_SLOTS * FAKE_SLOT_SIZE));
  readonly #address = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#arena)));
  readonly #view = new PacketView(this.#arena, 0);
  #queued = 0;
  /** Called with a copy of each queued frame. */
  onFrame: (frame: Uint8Array) => void = () => {};
  /** Frames queued. */
  count = 0;
  /** Flushes (explicit or at the end of a loop turn). */
  flushes = 0;

  next(): PacketView {
    if (this.#queued === FAKE_SLOTS) this.flush();
    this.#view.setWindow(this.#queued * FAKE_SLOT_SIZE + 4, 0);
    return this.#view;
  }

  queue(length: number): void {
    const start = this.#queued * FAKE_SLOT_SIZE + 4;
    this.#queued++;
    this.count++;
    this.onFrame(this.#arena.slice(start, start + length));
  }

  flush(): void {
    this.#queued = 0;
    this.flushes++;
  }

  room(): number {
    return FAKE_SLOTS - this.#queued;
  }

  slotAddress(j: number, offset: number): number {
    return this.#address + (this.#queued + j) * FAKE_SLOT_SIZE + 4 + offset;
  }
  /** No offloads: every frame carries complete checksums. */
  readonly checksumOffload = false;
  readonly segmentOffload = false;
  queueOffloaded(length: number, _segmentSize: number): void {
    this.queue(length);
  }
}

/** A fresh context (own loop, flow table, fake tap). */
export function udpContext(): DataPathContext & { tap: FakeTap } {
  const plan: NetworkPlan = {
    ourMac: OUR_MAC,
    ip4: {
      hostIfname: "lo",
      hostIfindex: 1,
      address: HOST4,
      prefixLength: 24,
      gateway: GATEWAY4,
      hostAddresses: [{ address: HOST4, prefixLength: 24 }],
      hostRoutes: [],
      mapHostLoopback: GATEWAY4,
      mapGuestAddr: undefined,
      dnsForward: DNS_FWD4,
      dns: [DNS_FWD4],
      resolvers: [RESOLVER4],
    },
    ip6: {
      hostIfname: "lo",
      hostIfindex: 1,
      address: HOST6,
      prefixLength: 64,
      gateway: GATEWAY6,
      hostAddresses: [{ address: HOST6, prefixLength: 64 }],
      hostRoutes: [],
      mapHostLoopback: GATEWAY6,
      mapGuestAddr: undefined,
      dnsForward: DNS_FWD6,
      dns: [DNS_FWD6],
      resolvers: [RESOLVER6],
      ourLinkLocal: GATEWAY6,
    },
    search: [],
    mtu: 65520,
    hostname: "",
    fqdn: "",
    dhcp: false,
    ndp: false,
    ra: false,
    dhcpv6: false,
  };
  const guest = initialGuestState(HOST4, HOST6);
  guest.mac.set(GUEST_MAC);
  guest.addr6LinkLocal.set(GUEST_LL6);
  guest.seen = true;
  const config = {
    ip4: { outbound: undefined, outboundIf: undefined },
    ip6: { outbound: undefined, outboundIf: undefined },
  } as unknown as Config;
  const loop = new EventLoop();
  const tap = new FakeTap();
  loop.addEndOfTurn(() => tap.flush());
  return {
    config,
    loop,
    tap,
    plan,
    guest,
    flows: new FlowTable(),
    nat: new AddressMap(plan, guest),
  };
}
