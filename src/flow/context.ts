/**
 * What the data-path protocols (TCP, UDP, ICMP) share: the loop, the tap
 * output, the network plan, the guest's learned addresses, the flow table and
 * the address translation rules. Made once by the worker, passed to each.
 */
import type { Config } from "../config/config.ts";
import type { NetworkPlan } from "../config/network.ts";
import type { EventLoop } from "../loop.ts";
import type { PacketView } from "../protocols/packet.ts";
import type { FlowTable } from "./flow.ts";
import type { GuestState } from "./guest.ts";
import type { AddressMap } from "./nat.ts";

/** Where frames towards the guest go (the tap device's output arena). */
export interface FrameOutput {
  /** A view at a free frame slot; build the frame from its window start. */
  next(): PacketView;
  /** Queue the frame of `length` bytes just built at `next()`'s window. */
  queue(length: number): void;
  /** Write the queued frames now. */
  flush(): void;
  /** Free frame slots before a flush is needed. */
  room(): number;
  /**
   * The memory address of byte `offset` in the `j`-th free slot's frame (0: the
   * one `next()` returns now), for socket reads straight into frames.
   */
  slotAddress(j: number, offset: number): number;
}

/** A handler for one transport protocol of frames coming from the guest. */
export interface TransportHandler {
  /**
   * An IPv4 packet: IP header at `ipOffset` (within the frame's window) of
   * `ipHeaderLength` bytes, then `l4Length` bytes of transport header and data.
   */
  fromTap4(pkt: PacketView, ipOffset: number, ipHeaderLength: number, l4Length: number): void;
  /** An IPv6 packet: `headersLength` bytes of IPv6 headers at `ipOffset`, then `l4Length`. */
  fromTap6(pkt: PacketView, ipOffset: number, headersLength: number, l4Length: number): void;
}

/** Everything a data-path protocol needs. */
export interface DataPathContext {
  /** The configuration (for -o, --outbound-if*, timeouts…). */
  readonly config: Config;
  /** The event loop: register sockets and timers here. */
  readonly loop: EventLoop;
  /** Frames towards the guest. */
  readonly tap: FrameOutput;
  /** The addressing fixed at start. */
  readonly plan: NetworkPlan;
  /** The guest's learned addresses. */
  readonly guest: GuestState;
  /** The flow table shared by all protocols. */
  readonly flows: FlowTable;
  /** The address translation rules. */
  readonly nat: AddressMap;
}
