/**
 * Builds `.cache/native/libsoundsock_tls.so`, the OpenSSL record layer of tls-server
 * (`native/soundsock_tls.c`), with the system's C compiler against Debian's libssl
 * (`libssl-dev`: headers; `libssl3`: the library). A second or so; rebuilt only when the C file
 * changes (a stamp holds its SHA-256).
 *
 * @module
 */

import { _findExecutable, _fromRoot } from "../../audio/build.ts";

/** Why the native TLS library cannot be built (no compiler, no OpenSSL headers…). */
export class TlsLibraryBuildError extends Error {
  override name = "TlsLibraryBuildError";
}

/** Options of {@linkcode ensureTlsLibrary}. */
export interface EnsureTlsLibraryOptions {
  /** Rebuild even when the stamp says the library is current. */
  force?: boolean;
  /**
   * Where the library and its stamp go.
   * @default "<repo>/.cache/native"
   */
  cacheDir?: string;
}

/**
 * Makes sure the library exists and matches `native/soundsock_tls.c`; builds it if not.
 * Returns its path.
 * @throws {TlsLibraryBuildError} with the reason (and the fix) when it cannot be built
 */
export async function ensureTlsLibrary(options: EnsureTlsLibraryOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? _fromRoot(".cache/native");
  const source = _fromRoot("native/soundsock_tls.c");
  const libPath = `${cacheDir}/libsoundsock_tls.so`;
  const stampPath = `${cacheDir}/libsoundsock_tls.stamp`;
  let code: Uint8Array;
  try {
    code = await Deno.readFile(source);
  } catch (cause) {
    throw new TlsLibraryBuildError(`the C source ${source} is missing`, { cause });
  }
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", code as Uint8Array<ArrayBuffer>),
  );
  const stamp = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
  if (!options.force && await readText(stampPath) === stamp && await exists(libPath)) {
    return libPath;
  }
  const searchPath = Deno.env.get("PATH") ?? "";
  const cc = _findExecutable(Deno.env.get("CC") ?? "cc", searchPath);
  if (cc === undefined) {
    throw new TlsLibraryBuildError("no C compiler (cc) found (Debian: apt-get install gcc)");
  }
  await Deno.mkdir(cacheDir, { recursive: true });
  // Built under a temporary name and renamed: a concurrent loader never sees half a file.
  const tmp = `${libPath}.${Deno.pid}.tmp`;
  const out = await new Deno.Command(cc, {
    args: [
      "-O2",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-o",
      tmp,
      source,
      "-lssl",
      "-lcrypto",
    ],
    env: { PATH: searchPath },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(tmp).catch(() => {});
    const err = new TextDecoder().decode(out.stderr);
    const hint = err.includes("openssl/")
      ? " (the OpenSSL headers: apt-get install libssl-dev)"
      : "";
    const last = err.trim().split("\n").slice(-3).join(" / ");
    throw new TlsLibraryBuildError(`compiling ${source} failed${hint}: ${last}`);
  }
  await Deno.rename(tmp, libPath);
  await Deno.writeTextFile(stampPath, stamp);
  return libPath;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
