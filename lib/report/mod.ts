/**
 * Session reports for students: a bounded record of what a receiver saw (timeline.ts) drawn as
 * one self-contained HTML file with inline SVG (html.ts).
 *
 * @module
 */

export * from "./html.ts";
export * from "./timeline.ts";
export * from "./file.ts";
