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
  /**
   * Whether frames may leave their TCP/UDP checksum to the kernel: such a frame
   * holds only the pseudo-header sum in the checksum field (`l4PartialV4`/`V6`)
   * and is queued with `queueOffloaded`. Fixed for the life of a turn.
   */
  readonly checksumOffload: boolean;
  /**
   * Whether a TCP frame queued with `queueOffloaded` may carry more payload than
   * one segment (up to 64 KiB of frame): the kernel cuts it into segments of the
   * size given, or hands it over whole. Only with `checksumOffload`.
   */
  readonly segmentOffload: boolean;
  /**
   * Queue the frame of `length` bytes just built at `next()`'s window, whose
   * TCP or UDP checksum the kernel completes (see `checksumOffload`);
   * `segmentSize` (bytes of TCP payload per segment) when its payload is larger
   * than one segment (see `segmentOffload`), otherwise 0.
   */
  queueOffloaded(length: number, segmentSize: number): void;
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
