/**
 * The request block shared between the main thread and the namespace thread:
 * an Int32Array of control slots followed by a small text area (paths, names).
 */

/** Slots of the control array. */
export const NsSlot = {
  STATE: 0,
  OP: 1,
  A0: 2,
  A1: 3,
  A2: 4,
  RESULT: 5,
  COUNT: 8,
} as const;

/** Values of the STATE slot. */
export const NsState = { IDLE: 0, REQUEST: 1, DONE: 2, EXIT: 3 } as const;

/** Operations. */
export const NsOp = {
  /** socket(A0 domain, A1 type, A2 protocol) → fd. */
  SOCKET: 1,
  /** open(text path of length A1, A0 flags) → fd. */
  OPEN: 2,
  /** tap device named by text (length A1), extra IFF flags A0 → fd; final name back in text. */
  TAP: 3,
} as const;

/** Byte offset of the text area. */
export const NS_TEXT_OFFSET = NsSlot.COUNT * 4;
/** Size of the text area in bytes. */
export const NS_TEXT_SIZE = 4096;
/** Size of the whole shared block in bytes. */
export const NS_BLOCK_SIZE = NS_TEXT_OFFSET + NS_TEXT_SIZE;
