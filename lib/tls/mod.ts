/**
 * soundsock over TLS: certificates, the tls-server (downloads, the request radio's sessions) and
 * the tls-client library. See docs/PROTOCOL.md §5.3. The request radio's program is
 * lib/station/radio_program.ts, the Icecast output lib/icecast/, saving files lib/files/.
 *
 * @module
 */

export * from "./certs.ts";
export * from "./connect.ts";
export * from "./client.ts";
export * from "./send_queue.ts";
export * from "./song_hashes.ts";
export * from "./download.ts";
export * from "./session.ts";
export * from "./server.ts";
