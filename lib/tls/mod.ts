/**
 * soundsock over TLS: certificates, the tls-server (downloads, request radio, Icecast feed) and
 * the tls-client library. See docs/PROTOCOL.md §5.3.
 *
 * @module
 */

export * from "./certs.ts";
export * from "./connect.ts";
export * from "./client.ts";
export * from "./atomic_file.ts";
export * from "./send_queue.ts";
export * from "./radio_program.ts";
export * from "./song_hashes.ts";
export * from "./download.ts";
export * from "./session.ts";
export * from "./server.ts";
export * from "./icecast.ts";
