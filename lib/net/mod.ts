/**
 * Networking helpers shared by the tools.
 *
 * @module
 */

export * from "./udp_socket.ts";
export * from "./udp_fanout.ts";
export * from "./close.ts";
export * from "./source_key.ts";
export * from "./listen_error.ts";
