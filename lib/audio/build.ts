/**
 * Builds the native audio library `.cache/native/libsoundsock_audio.so` from our C shim
 * (`native/soundsock_audio.c`) and the miniaudio v0.11.21 header.
 *
 * The header is not committed: it is taken from the npm package `react-native-audio-api@0.13.6`
 * (which vendors miniaudio 0.11.21) with `npm pack`, checked against pinned hashes, and cached.
 * We never `npm install` that package (it has React Native peer dependencies).
 *
 * @module
 */

import { AudioLibraryError } from "./errors.ts";
import { BuildProgress } from "./build_progress.ts";

/** npm package that ships the miniaudio header, and where the header is inside its tarball. */
const NPM_SPEC = "react-native-audio-api@0.13.6";
const NPM_INTEGRITY =
  "sha512-055JlxTaajdzcJCzyd+xnH1pJawNkt2NZ3RNoI2vv1QxYRh257W/dcDky/qf4/VMEFdpZFuFfVW1hv75OEh3gA==";
const HEADER_IN_TARBALL = "package/common/cpp/audioapi/libs/miniaudio/miniaudio.h";
const HEADER_SHA256 = "6b2029714f8634c4d7c70cc042f45074e0565766113fc064f20cd27c986be9c9";

/** Repository root, resolved from this file so tools work from any working directory. */
const REPO_ROOT = new URL("../../", import.meta.url);

/** Default location of the built library (inside the git-ignored `.cache/`). */
export const DEFAULT_LIBRARY_PATH = _fromRoot(".cache/native/libsoundsock_audio.so");

/** Options of {@linkcode ensureNativeLibrary}. */
export interface EnsureNativeLibraryOptions {
  /**
   * Rebuild even if the stamp says the library is up to date.
   * @default false
   */
  force?: boolean;
  /**
   * Directory for the header, the library and the stamp file.
   * @default "<repo>/.cache/native"
   */
  cacheDir?: string;
  /**
   * `PATH` used to find the C compiler (`$CC`, else `cc`) and `npm`.
   * @default Deno.env.get("PATH")
   */
  searchPath?: string;
  /**
   * Called with each step ("fetching the miniaudio header with npm pack", "verifying …",
   * "compiling …", "built …"). Without it, a build (not the up-to-date check) reports on stderr
   * through {@linkcode BuildProgress}: one updating line with the elapsed seconds on a
   * terminal, one line otherwise — so the first use of audio is not a silent minute.
   */
  onProgress?: (line: string) => void;
  /** Cancels the build (the running child process is killed). */
  signal?: AbortSignal;
}

/**
 * Makes sure the native library exists and matches the current shim and header; builds it if
 * not (about a minute: most of it compiling miniaudio). Returns the path of the library.
 *
 * @throws {AudioLibraryError} when there is no C compiler, npm fails, a hash does not match, or
 * the compiler fails; the message says how to fix it.
 */
export async function ensureNativeLibrary(
  options: EnsureNativeLibraryOptions = {},
): Promise<string> {
  const cacheDir = options.cacheDir ?? _fromRoot(".cache/native");
  const searchPath = options.searchPath ?? Deno.env.get("PATH") ?? "";
  const libPath = `${cacheDir}/libsoundsock_audio.so`;
  const stampPath = `${cacheDir}/libsoundsock_audio.stamp`;
  const headerPath = `${cacheDir}/miniaudio.h`;
  const shimPath = _fromRoot("native/soundsock_audio.c");

  let shim: Uint8Array;
  try {
    shim = await Deno.readFile(shimPath);
  } catch (cause) {
    throw new AudioLibraryError(
      `Cannot build the audio library: the C shim ${shimPath} is missing`,
      { cause },
    );
  }
  const stamp = JSON.stringify({ shim: await _sha256Hex(shim), header: HEADER_SHA256 });
  if (!options.force && await _readText(stampPath) === stamp && await _exists(libPath)) {
    return libPath;
  }

  // Look for the compiler first: without one there is nothing to gain from fetching the header.
  const cc = _findExecutable(Deno.env.get("CC") ?? "cc", searchPath);
  if (cc === undefined) {
    throw new AudioLibraryError(
      "Cannot build the audio library: no C compiler (cc) found. " +
        "Install one (Debian: apt-get install gcc) or set SOUNDSOCK_MINIAUDIO_LIB",
    );
  }
  using reporter = options.onProgress ? undefined : new BuildProgress({ prefix: "audio library" });
  const progress = options.onProgress ?? ((line: string) => reporter!.step(line));
  await Deno.mkdir(cacheDir, { recursive: true });
  if (await _fileSha256(headerPath) !== HEADER_SHA256) {
    progress(`fetching the miniaudio header with npm pack ${NPM_SPEC}`);
    await _fetchHeader(headerPath, searchPath, progress, options.signal);
  }

  progress(`compiling ${shimPath} with ${cc}`);
  // Build into a temporary name and rename: a concurrent loader never sees a half-written file.
  const tmp = `${libPath}.${Deno.pid}.tmp`;
  await _run(
    cc,
    [
      "-O2",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-I",
      cacheDir,
      "-o",
      tmp,
      shimPath,
      "-lm",
      "-lpthread",
      "-ldl",
    ],
    "compiling the audio library",
    searchPath,
    options.signal,
  );
  await Deno.rename(tmp, libPath);
  await Deno.writeTextFile(stampPath, stamp);
  if (reporter) reporter.done(`built ${libPath}`);
  else progress(`built ${libPath}`);
  return libPath;
}

/** Fetches the tarball with `npm pack`, verifies it, and extracts only the header. */
async function _fetchHeader(
  headerPath: string,
  searchPath: string,
  progress: (line: string) => void,
  signal?: AbortSignal,
) {
  const npm = _findExecutable("npm", searchPath);
  if (npm === undefined) {
    throw new AudioLibraryError(
      "Cannot build the audio library: npm not found (it fetches the miniaudio header). " +
        "Install Node.js/npm or set SOUNDSOCK_MINIAUDIO_LIB",
    );
  }
  const tmpDir = await Deno.makeTempDir({ prefix: "soundsock-miniaudio-" });
  try {
    await _run(
      npm,
      ["pack", NPM_SPEC, "--silent", "--pack-destination", tmpDir],
      `npm pack ${NPM_SPEC}`,
      searchPath,
      signal,
      tmpDir,
    );
    const tgz = [...Deno.readDirSync(tmpDir)].find((e) => e.name.endsWith(".tgz"));
    if (!tgz) throw new AudioLibraryError(`Cannot build the audio library: npm pack made no file`);
    const tarball = `${tmpDir}/${tgz.name}`;
    progress(`verifying ${tgz.name} (sha512) and miniaudio.h (sha256)`);
    const { createHash } = await import("node:crypto");
    const integrity = "sha512-" +
      createHash("sha512").update(await Deno.readFile(tarball)).digest("base64");
    if (integrity !== NPM_INTEGRITY) {
      throw new AudioLibraryError(
        `Cannot build the audio library: ${NPM_SPEC} has integrity ${integrity}, ` +
          `expected ${NPM_INTEGRITY}`,
      );
    }
    await _run(
      "tar",
      ["-xzf", tarball, "-C", tmpDir, HEADER_IN_TARBALL],
      "extracting miniaudio.h",
      searchPath,
      signal,
    );
    const header = await Deno.readFile(`${tmpDir}/${HEADER_IN_TARBALL}`);
    const got = await _sha256Hex(header);
    if (got !== HEADER_SHA256) {
      throw new AudioLibraryError(
        `Cannot build the audio library: miniaudio.h has sha256 ${got}, expected ${HEADER_SHA256}`,
      );
    }
    await Deno.writeFile(headerPath, header);
  } finally {
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
}

/** Runs a command, throwing an AudioLibraryError with its stderr when it fails. */
async function _run(
  cmd: string,
  args: string[],
  what: string,
  searchPath: string,
  signal?: AbortSignal,
  cwd?: string,
): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, {
      args,
      cwd,
      env: { PATH: searchPath },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
  } catch (cause) {
    throw new AudioLibraryError(`Cannot build the audio library: ${what} failed to start`, {
      cause,
    });
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-15).join("\n");
    throw new AudioLibraryError(
      `Cannot build the audio library: ${what} failed (exit ${out.code})${err ? `:\n${err}` : ""}`,
    );
  }
}

/** Finds an executable by name on a PATH string (absolute names are checked as they are). */
export function _findExecutable(name: string, searchPath: string): string | undefined {
  const candidates = name.includes("/")
    ? [name]
    : searchPath.split(":").filter((d) => d !== "").map((d) => `${d}/${name}`);
  for (const c of candidates) {
    try {
      const st = Deno.statSync(c);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return c;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}

/** A repo-relative path as an absolute file-system path. */
export function _fromRoot(relative: string): string {
  return decodeURIComponent(new URL(relative, REPO_ROOT).pathname);
}

async function _sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function _fileSha256(path: string): Promise<string | undefined> {
  try {
    return await _sha256Hex(await Deno.readFile(path));
  } catch {
    return undefined;
  }
}

async function _readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

async function _exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
