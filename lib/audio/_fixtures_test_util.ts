/**
 * Test fixtures made with ffmpeg / lame / flac / sox into a temp dir (once per process), and
 * ffmpeg / ffprobe as the reference decoder.
 *
 * @module
 */

/** One generated fixture and how it was made. */
export interface Fixture {
  /** Short name, e.g. "cbr128.mp3". */
  name: string;
  /** Absolute path. */
  path: string;
}

let _made: Promise<{ dir: string; files: Fixture[] }> | undefined;

async function _run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Generates all fixtures (cached for the process). */
export function fixtures(): Promise<{ dir: string; files: Fixture[] }> {
  return _made ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "soundsock-audio-fixtures-" });
    const p = (n: string) => `${dir}/${n}`;
    // A chord with an envelope: more realistic for MP3 than a pure sine, still deterministic.
    const src = "aevalsrc=0.3*sin(2*PI*440*t)+0.2*sin(2*PI*660*t)*sin(2*PI*0.5*t)" +
      "|0.3*sin(2*PI*550*t)+0.1*sin(2*PI*3000*t):s=44100:d=3";
    await _run("ffmpeg", [
      "-v",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      src,
      "-c:a",
      "pcm_s16le",
      p("src.wav"),
    ]);
    await _run("ffmpeg", [
      "-v",
      "error",
      "-y",
      "-i",
      p("src.wav"),
      "-ar",
      "22050",
      "-ac",
      "1",
      p("mono22k.wav"),
    ]);
    await _run("ffmpeg", ["-v", "error", "-y", "-i", p("src.wav"), "-ar", "48000", p("s48k.wav")]);
    const jobs: [string, string[]][] = [
      ["lame", ["--quiet", "-b", "128", p("src.wav"), p("cbr128.mp3")]],
      ["lame", ["--quiet", "-V", "2", p("src.wav"), p("vbr.mp3")]],
      ["lame", ["--quiet", "-t", "-b", "192", p("src.wav"), p("notag.mp3")]],
      ["lame", ["--quiet", "-b", "64", p("mono22k.wav"), p("mono22k.mp3")]],
      ["lame", ["--quiet", "-b", "256", p("s48k.wav"), p("s48k.mp3")]],
      ["ffmpeg", [
        "-v",
        "error",
        "-y",
        "-i",
        p("src.wav"),
        "-c:a",
        "libmp3lame",
        "-b:a",
        "160k",
        "-id3v2_version",
        "3",
        "-write_id3v1",
        "1",
        "-metadata",
        "title=Fixture",
        "-metadata",
        "artist=soundsock",
        p("id3.mp3"),
      ]],
      ["flac", ["--silent", "-f", "-o", p("s16.flac"), p("src.wav")]],
      ["sox", [p("src.wav"), "-b", "24", p("s24.flac")]],
      ["sox", [p("src.wav"), "-b", "24", p("s24.wav")]],
    ];
    await Promise.all(jobs.map(([c, a]) => _run(c, a)));
    const names = [
      "src.wav",
      "mono22k.wav",
      "cbr128.mp3",
      "vbr.mp3",
      "notag.mp3",
      "mono22k.mp3",
      "s48k.mp3",
      "id3.mp3",
      "s16.flac",
      "s24.flac",
      "s24.wav",
    ];
    return { dir, files: names.map((name) => ({ name, path: p(name) })) };
  })();
}

/** ffmpeg's decode of a file as s16le (native channels and rate). */
export async function ffmpegDecode(path: string): Promise<Int16Array> {
  const out = await new Deno.Command("ffmpeg", {
    args: ["-v", "error", "-i", path, "-f", "s16le", "-acodec", "pcm_s16le", "-"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ffmpeg ${path}: ${new TextDecoder().decode(out.stderr)}`);
  return new Int16Array(out.stdout.buffer, out.stdout.byteOffset, out.stdout.byteLength >> 1);
}

/** ffprobe's sample rate and channel count of the first audio stream. */
export async function ffprobe(path: string): Promise<{ sampleRate: number; channels: number }> {
  const out = await new Deno.Command("ffprobe", {
    args: ["-v", "error", "-select_streams", "a:0", "-show_streams", "-of", "json", path],
    stdout: "piped",
  }).output();
  const s = JSON.parse(new TextDecoder().decode(out.stdout)).streams[0];
  return { sampleRate: Number(s.sample_rate), channels: Number(s.channels) };
}

/** Largest absolute difference between two sample arrays (over the shorter length). */
export function maxDiff(a: Int16Array, b: Int16Array): { max: number; at: number } {
  let max = 0, at = -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) {
      max = d;
      at = i;
    }
  }
  return { max, at };
}

/** Audio files in the repo's songs/ folder (empty if none). */
export function songFiles(): string[] {
  const dir = decodeURIComponent(new URL("../../songs/", import.meta.url).pathname);
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && /\.(mp3|wav|flac)$/i.test(e.name))
      .map((e) => `${dir}${e.name}`)
      .sort();
  } catch {
    return [];
  }
}
