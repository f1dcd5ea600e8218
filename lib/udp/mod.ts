/**
 * UDP streaming: the server (on demand + radio), the client, the jitter buffer, reception
 * statistics, dialled-in impairment and RTP output.
 *
 * @module
 */

export * from "./address_check.ts";
export * from "./client.ts";
export * from "./flow_control.ts";
export * from "./impairment.ts";
export * from "./jitter_buffer.ts";
export * from "./reception_stats.ts";
export * from "./rtp.ts";
export * from "./server.ts";
export * from "./sim_flags.ts";
