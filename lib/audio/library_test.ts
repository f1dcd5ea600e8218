import { assert, assertEquals, assertRejects } from "@std/assert";
import { ensureNativeLibrary } from "./build.ts";
import { AudioLibraryError } from "./errors.ts";

Deno.test("a missing SOUNDSOCK_MINIAUDIO_LIB gives an error that says how to build the library", async () => {
  const code = `
    import { loadAudioLib } from ${JSON.stringify(new URL("./ffi.ts", import.meta.url).href)};
    try { await loadAudioLib(); } catch (e) { Deno.stdout.writeSync(new TextEncoder().encode(e.name + ": " + e.message)); }
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    env: { SOUNDSOCK_MINIAUDIO_LIB: "/nonexistent/libsoundsock_audio.so" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert(text.startsWith("AudioLibraryError: Cannot load miniaudio: "), text);
  assert(text.endsWith(". Build it with: deno task build:native"), text);
});

Deno.test("building without a C compiler says how to install one", async () => {
  const cacheDir = await Deno.makeTempDir();
  try {
    const err = await assertRejects(
      () => ensureNativeLibrary({ cacheDir, searchPath: "/nonexistent", force: true }),
      AudioLibraryError,
    );
    assertEquals(
      err.message,
      "Cannot build the audio library: no C compiler (cc) found. Install one (Debian: apt-get install gcc) or set SOUNDSOCK_MINIAUDIO_LIB",
    );
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("importing lib/audio loads no native library", async () => {
  const code = `
    await import(${JSON.stringify(new URL("./mod.ts", import.meta.url).href)});
    const ffi = await import(${JSON.stringify(new URL("./ffi.ts", import.meta.url).href)});
    Deno.stdout.writeSync(new TextEncoder().encode(String(ffi._loadedLib() === undefined)));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code],
    env: { SOUNDSOCK_MINIAUDIO_LIB: "/nonexistent/lib.so" },
    stdout: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(out.stdout), "true");
});
