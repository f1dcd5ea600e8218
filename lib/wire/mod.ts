/**
 * soundsock/2 wire format: frames, the stream decoder and control messages, shared by every
 * tool (UDP and TLS, songs and live audio). See docs/PROTOCOL.md.
 *
 * @module
 */

export * from "./crc32c.ts";
export * from "./frame.ts";
export * from "./stream_decoder.ts";
export * from "./messages.ts";
