/**
 * `deno task build:native` — builds .cache/native/libsoundsock_audio.so (miniaudio + our shim).
 *
 * Usage: deno run -A scripts/build_native.ts [--force]
 *
 * @module
 */

import { ensureNativeLibrary } from "../lib/audio/build.ts";

const enc = new TextEncoder();
const say = (stream: { writeSync(p: Uint8Array): number }, line: string) =>
  stream.writeSync(enc.encode(`${line}\n`));

if (import.meta.main) {
  const force = Deno.args.includes("--force");
  try {
    const path = await ensureNativeLibrary({
      force,
      onProgress: (line) => say(Deno.stderr, `build:native: ${line}`),
    });
    say(Deno.stdout, path);
  } catch (err) {
    say(Deno.stderr, `build:native: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
