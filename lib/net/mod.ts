/**
 * Networking helpers shared by the tools.
 *
 * @module
 */

export * from "./udp_socket.ts";
