/**
 * `deno task build:native` — builds .cache/native/libsoundsock_audio.so (miniaudio + our shim).
 *
 * Usage: deno run -A scripts/build_native.ts [--force]
 *
 * @module
 */

import { ensureNativeLibrary } from "../lib/audio/build.ts";
import { BuildProgress } from "../lib/audio/build_progress.ts";

const enc = new TextEncoder();
const say = (stream: { writeSync(p: Uint8Array): number }, line: string) =>
  stream.writeSync(enc.encode(`${line}\n`));

if (import.meta.main) {
  const force = Deno.args.includes("--force");
  // On a terminal one updating line with the elapsed seconds; otherwise one line.
  const progress = new BuildProgress({ prefix: "build:native" });
  try {
    const path = await ensureNativeLibrary({
      force,
      onProgress: (line) => line.startsWith("built ") ? progress.done(line) : progress.step(line),
    });
    progress[Symbol.dispose]();
    say(Deno.stdout, path);
  } catch (err) {
    progress[Symbol.dispose]();
    say(Deno.stderr, `build:native: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
