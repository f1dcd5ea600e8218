/**
 * Command-line conventions shared by all tools: strict flags and `--help`, the JSON-lines
 * event log, human output levels, exit codes and signal handling.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./event_log.ts";
export * from "./flags.ts";
export * from "./output.ts";
export * from "./run.ts";
export * from "./audio_flags.ts";
export * from "./command.ts";
export * from "./playback_status.ts";
export * from "./song_table.ts";
export * from "./suggest.ts";
