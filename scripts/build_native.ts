/**
 * `deno task build:native` — builds .cache/native/libsoundsock_audio.so (miniaudio + our shim)
 * and .cache/native/libsoundsock_tls.so (tls-server's OpenSSL record layer).
 *
 * Usage: deno run -A scripts/build_native.ts [--force]
 *
 * @module
 */

import { ensureNativeLibrary } from "../lib/audio/build.ts";
import { BuildProgress } from "../lib/audio/build_progress.ts";
import { ensureTlsLibrary } from "../lib/tls/native/build.ts";

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
    // tls-server's OpenSSL record layer (it falls back to node:tls without it, so only a note).
    try {
      say(Deno.stdout, await ensureTlsLibrary({ force }));
    } catch (err) {
      say(Deno.stderr, `build:native: TLS library not built (${(err as Error).message})`);
    }
  } catch (err) {
    progress[Symbol.dispose]();
    say(Deno.stderr, `build:native: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
