/**
 * Flow control of on-demand UDP streams (docs/PROTOCOL.md §5.1): the client acknowledges
 * with HEARTBEAT `{"ack": next}` at least every {@linkcode ACK_EVERY} packets, and the server
 * never runs more than {@linkcode FLOW_WINDOW} packets ahead of the last acknowledgement. With
 * `--interval 0` this paces the sender to what the receiver takes, instead of overflowing the
 * receiver's socket buffer (about 90 datagrams of 1232 bytes with Linux defaults).
 *
 * @module
 */

/** Packets an on-demand stream may run ahead of the client's acknowledgements. */
export const FLOW_WINDOW = 64;
/** The client acknowledges at least every this many packets. */
export const ACK_EVERY = 16;
/** Without any acknowledgement for this long, the sender assumes acks are lost and goes on. */
export const ACK_STALL_MS = 250;
