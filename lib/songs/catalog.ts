/**
 * The songs a server offers: the audio files directly inside one folder, probed once at start
 * (codec, rate, duration), numbered 1..N in name order. A client's song name resolves only to
 * one of these files — never to a path — so `..`, absolute paths and symlinks that lead out
 * of the folder cannot reach anything else.
 *
 * @module
 */

import { basename, extname, join, SEPARATOR } from "@std/path";
import type { Codec, SongEntry, SongList } from "../wire/messages.ts";
import { probeSong } from "../audio/decode.ts";
import { closestName } from "../cli/suggest.ts";

/** File extensions served, by codec. */
export const SONG_EXTENSIONS: Record<string, Codec> = {
  ".mp3": "mp3",
  ".wav": "wav",
  ".flac": "flac",
};

/** One servable song. */
export interface Song {
  /** 1-based position in the catalog. */
  index: number;
  /** File name, e.g. `01-morning-arpeggio.mp3`. */
  title: string;
  /** Absolute, symlink-free path inside the catalog folder. */
  path: string;
  codec: Codec;
  /** File size in bytes. */
  size: number;
  sampleRate: number;
  channels: number;
  /** Sample frames per channel after decoding. */
  frames: number;
  durationMs: number;
}

/** A song name that matches nothing in the catalog. */
export class SongNotFoundError extends Error {
  /** Exit status: the peer refused (see lib/cli ExitCode.REFUSED). */
  readonly exitCode = 3;
  /**
   * @param name what was asked for
   * @param closest a song it may have meant
   */
  constructor(name: string, closest?: Song) {
    super(
      `Song "${name.slice(0, 200)}" does not exist${
        closest ? ` (did you mean "${closest.title}"?)` : ""
      }`,
    );
    this.name = "SongNotFoundError";
  }
}

/** Options for {@linkcode SongCatalog.open}. */
export interface SongCatalogOptions {
  /** Aborts the scan. */
  signal?: AbortSignal;
}

/** The song library of one folder. */
export class SongCatalog {
  /** Songs in name order; `songs[i].index === i + 1`. */
  readonly songs: readonly Song[];
  /** Files left out, with the reason (not audio, undecodable, symlink leading out). */
  readonly skipped: readonly { name: string; reason: string }[];
  /** The folder, resolved. */
  readonly root: string;

  private constructor(root: string, songs: Song[], skipped: { name: string; reason: string }[]) {
    this.root = root;
    this.songs = songs;
    this.skipped = skipped;
  }

  /**
   * Scans `dir` (not recursively) and probes every audio file in it.
   *
   * @throws {Error} if `dir` is not a readable folder.
   */
  static async open(dir: string, options: SongCatalogOptions = {}): Promise<SongCatalog> {
    let root: string;
    try {
      root = await Deno.realPath(dir);
      if (!(await Deno.stat(root)).isDirectory) throw new Error("not a folder");
    } catch (cause) {
      const why = cause instanceof Deno.errors.NotFound
        ? "no such folder"
        : (cause as Error).message;
      throw new Error(`Cannot open songs folder "${dir}": ${why}`, { cause });
    }
    const names: string[] = [];
    for await (const entry of Deno.readDir(root)) {
      if (!entry.name.startsWith(".") && (entry.isFile || entry.isSymlink)) names.push(entry.name);
    }
    names.sort();
    const songs: Song[] = [];
    const skipped: { name: string; reason: string }[] = [];
    for (const name of names) {
      options.signal?.throwIfAborted();
      const codec = SONG_EXTENSIONS[extname(name).toLowerCase()];
      if (!codec) continue;
      try {
        const path = await confinedPath(root, name);
        const { size } = await Deno.stat(path);
        const info = await probeSong(path);
        songs.push({
          index: songs.length + 1,
          title: name,
          path,
          codec,
          size,
          sampleRate: info.sampleRate,
          channels: info.channels,
          frames: info.frames,
          durationMs: info.durationMs,
        });
      } catch (error) {
        skipped.push({ name, reason: (error as Error).message });
      }
    }
    return new SongCatalog(root, songs, skipped);
  }

  /**
   * Finds a song by 1-based index (`"3"`), exact file name, file name without extension, or
   * that without a leading track number (`nocturne` for `04-nocturne.mp3`, when only one song
   * matches); names compare case-insensitively. Anything that looks like a path resolves to
   * nothing. The name is taken exactly as given (`" 2"` is not index 2): docs/PROTOCOL.md §3.1.
   */
  find(name: string): Song | undefined {
    const wanted = name;
    if (wanted === "" || /[\/\\\0]/.test(wanted) || wanted.startsWith(".")) return undefined;
    if (/^\d+$/.test(wanted)) return this.songs[Number(wanted) - 1];
    const exact = this.songs.find((s) => s.title === wanted);
    if (exact) return exact;
    const lower = wanted.toLowerCase();
    return this.songs.find((s) => s.title.toLowerCase() === lower) ??
      this.songs.find((s) => stem(s.title).toLowerCase() === lower) ??
      this.#unique((s) => unnumbered(stem(s.title)).toLowerCase() === lower);
  }

  /** The one song matching `pred`, or undefined if none or several do. */
  #unique(pred: (s: Song) => boolean): Song | undefined {
    const found = this.songs.filter(pred);
    return found.length === 1 ? found[0] : undefined;
  }

  /** Like {@linkcode find}, but throws {@linkcode SongNotFoundError}. */
  get(name: string): Song {
    const song = this.find(name);
    if (!song) throw new SongNotFoundError(name, this.suggest(name));
    return song;
  }

  /**
   * The song a mistyped name most likely meant (`nocturen` → `04-nocturne.mp3`): the closest
   * title, title without extension, or that without its track number, within a typo's edit
   * distance (lib/cli/suggest.ts). Undefined when nothing is that close.
   */
  suggest(name: string): Song | undefined {
    if (name.length > 200) return undefined;
    const names = new Map<string, Song>();
    for (const song of this.songs) {
      for (const key of [song.title, stem(song.title), unnumbered(stem(song.title))]) {
        if (!names.has(key)) names.set(key, song);
      }
    }
    const close = closestName(name, names.keys());
    return close === undefined ? undefined : names.get(close);
  }

  /**
   * The ERROR message for a name that matches nothing: `Song "x" does not exist`, with
   * ` (did you mean "y"?)` when {@linkcode suggest} finds one. The name is cut at 200 chars.
   */
  notFoundMessage(name: string): string {
    return new SongNotFoundError(name, this.suggest(name)).message;
  }

  /**
   * A SONG_LIST page from `offset`: as many entries as fit in `maxBytes` of JSON (one
   * datagram on UDP, one control frame on TLS). At least one entry if any remain and it fits.
   */
  page(offset: number, maxBytes: number): SongList {
    const start = Math.min(offset, this.songs.length);
    const songs: SongEntry[] = [];
    // {"total":N,"offset":N,"songs":[...]} with the numbers at their widest.
    let bytes = 64;
    for (const song of this.songs.slice(start)) {
      const entry = SongCatalog.entry(song);
      const size = new TextEncoder().encode(JSON.stringify(entry)).length + 1;
      if (bytes + size > maxBytes) break;
      bytes += size;
      songs.push(entry);
    }
    return { total: this.songs.length, offset: start, songs };
  }

  /** The wire form of one song (SONG_LIST entry). */
  static entry(song: Song): SongEntry {
    return {
      index: song.index,
      title: song.title,
      codec: song.codec,
      durationMs: song.durationMs,
      size: song.size,
    };
  }

  /**
   * Opens a song's file for reading, checking again that it still resolves inside the folder
   * (the file could have been replaced by a symlink since the scan).
   */
  async openFile(song: Song): Promise<Deno.FsFile> {
    const path = await confinedPath(this.root, song.title);
    return await Deno.open(path, { read: true });
  }
}

/** `04-nocturne` → `nocturne`: the track-number prefix people leave out when they ask. */
function unnumbered(name: string): string {
  return name.replace(/^\d+[-_. ]+/, "");
}

function stem(name: string): string {
  return name.slice(0, name.length - extname(name).length);
}

/** `root/name` with symlinks resolved, or an error if that leads outside `root`. */
async function confinedPath(root: string, name: string): Promise<string> {
  if (basename(name) !== name) throw new Error("not a plain file name");
  const real = await Deno.realPath(join(root, name));
  if (!real.startsWith(root + SEPARATOR)) throw new Error("symlink leads outside the songs folder");
  return real;
}
