/**
 * The radio in a browser (`tls-server --web`): an HTTPS page with live updates, the station
 * as Ogg/Opus over HTTP, the status as JSON and song requests, every buffer bounded.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./http.ts";
export * from "./listener_queue.ts";
export * from "./ogg_feed.ts";
export * from "./page.ts";
export * from "./request_budget.ts";
export * from "./server.ts";
export * from "./sse.ts";
export * from "./status.ts";
