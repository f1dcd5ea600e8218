/**
 * The Icecast output of the radio: an Ogg/Opus source client (source.ts) over the Ogg page
 * writer (ogg.ts) and Ogg/Opus muxer (ogg_opus.ts). Transport-neutral: it takes station events.
 *
 * @module
 */

export * from "./backoff.ts";
export * from "./ogg.ts";
export * from "./ogg_opus.ts";
export * from "./source.ts";
export * from "./url.ts";
