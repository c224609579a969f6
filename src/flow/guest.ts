/**
 * What we know about the guest (or namespace) on the other side of the tap:
 * learned from the frames it sends, read by everything that sends to it.
 */

/** The guest's link-layer and network addresses, updated as frames arrive. */
export interface GuestState {
  /** The guest's MAC address (broadcast until a frame arrives). */
  readonly mac: Uint8Array;
  /** Last IPv4 source address seen, or the assigned one (4 bytes). */
  readonly addr4: Uint8Array;
  /** Last global IPv6 source address seen, or the assigned one (16 bytes). */
  readonly addr6: Uint8Array;
  /** Last link-local IPv6 source address seen (16 bytes, all zero: none yet). */
  readonly addr6LinkLocal: Uint8Array;
  /** Whether any frame from the guest has been seen. */
  seen: boolean;
}

/** A GuestState before anything is learned: the assigned addresses, broadcast MAC. */
export function initialGuestState(
  addr4: Uint8Array | undefined,
  addr6: Uint8Array | undefined,
): GuestState {
  return {
    mac: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    addr4: addr4?.slice() ?? new Uint8Array(4),
    addr6: addr6?.slice() ?? new Uint8Array(16),
    addr6LinkLocal: new Uint8Array(16),
    seen: false,
  };
}
