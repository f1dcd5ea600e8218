/**
 * Media shared by the servers: songs cut into decodable packets, and the real-time station.
 *
 * @module
 */

export * from "./packetizer.ts";
export * from "./station.ts";
