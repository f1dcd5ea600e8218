/**
 * The receiving end of a media stream: DATA payloads in, PCM out to a sink (device, WAV file,
 * stdout). One playout serves a whole connection: each STREAM_INFO starts a new stream (a new
 * song on the radio) with a fresh decoder, and every stream is converted to the format the
 * output was opened with, so a radio recording stays one valid WAV file.
 *
 * What a lying sender can make it do is bounded, whatever it sends:
 * - a stream with an end (a song) yields at most the audio its STREAM_INFO announced
 *   (`frames`, else `durationMs`) plus a margin ({@linkcode ANNOUNCED_MARGIN}); past that it
 *   is refused with {@linkcode PlayoutLimitError} — a 500 KB FLAC that decodes to hours of
 *   audio stops after the announced length;
 * - FLAC is spooled to a temporary file, not memory, and decoded from it in blocks, so memory
 *   holds one block of PCM whatever the file decodes to;
 * - a live stream (`live: true`, the radio) is written no faster than the media clock (at most
 *   `leadMs` ahead of the wall clock), so a flood cannot fill a disk through `--output`;
 * - concealment of one gap is at most `maxGapUs` of silence, written in small blocks.
 *
 * A PCM gap (a lost `pcm_s16le` packet: on-demand WAV/FLAC over UDP, the PCM station) does not
 * step to silence and back, which clicks: the concealment starts at the last sample played and
 * falls linearly to 0 over {@linkcode PCM_FADE_MS}, and the audio after the gap rises linearly
 * from 0 over the same time. The output keeps the stream's length (the fades are inside the
 * concealed frames and the first frames after them).
 *
 * The radio's Opus stream (codec `opus`, 48 kHz) is decoded by one {@linkcode OpusDecoder} for
 * the whole session — songs follow each other gaplessly inside one Opus stream, so the decoder
 * is not restarted at a song change — and a lost 20 ms frame is filled by Opus packet-loss
 * concealment, one `conceal` per frame, so the output keeps the stream's length.
 *
 * @module
 */

import { decodeStream } from "../audio/decode.ts";
import { openPushDecoder, type PushDecoder } from "../audio/push_decoder.ts";
import { escapePeerText } from "../cli/output.ts";
import type { StreamInfo } from "../wire/messages.ts";
import { PcmConverter, type PcmFormat } from "./pcm_convert.ts";
import { OPUS_SAMPLE_RATE, OpusDecoder } from "../codec/mod.ts";
import { OPUS_FRAME_SAMPLES, splitOpusPayload } from "../station/encoder.ts";
import { LossGuard } from "./loss_guard.ts";

/** Length of the linear fade-out into and fade-in out of a concealed PCM gap (ms). */
export const PCM_FADE_MS = 3;

/** How much more audio than announced a stream may hold: 2 % plus one second. */
export const ANNOUNCED_MARGIN = { ratio: 0.02, seconds: 1 } as const;

/** A stream held more than its STREAM_INFO announced, or more than a limit allows. */
export class PlayoutLimitError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string) {
    super(message);
    this.name = "PlayoutLimitError";
  }
}

/** Where PCM goes. */
export interface PcmWriter {
  /**
   * Writes interleaved samples in the format the writer was opened with; may wait
   * (backpressure). `options.signal` (the playout's) ends that wait: the write then rejects
   * with the signal's reason.
   */
  write(pcm: Int16Array, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Options for {@linkcode MediaPlayout}. */
export interface MediaPlayoutOptions {
  /** Opens the output once, with the first stream's format. */
  openOutput: (format: PcmFormat) => Promise<PcmWriter>;
  /**
   * Largest FLAC file spooled (FLAC cannot be decoded while it downloads here: it is kept in a
   * temporary file and decoded block by block at the end of the stream).
   * @default {268435456}
   */
  maxBufferedBytes?: number;
  /** Longest silence one {@linkcode MediaPlayout.gap} writes (µs). @default {1000000} */
  maxGapUs?: number;
  /**
   * How far a live stream's output may run ahead of the wall clock (ms); it then waits. The
   * join burst and the jitter buffer fit well inside. @default {2000}
   */
  leadMs?: number;
  /** Ends waits (pacing) early. */
  signal?: AbortSignal;
}

interface ActiveStream {
  info: StreamInfo;
  /** The title, safe to print. */
  name: string;
  decoder: PushDecoder | undefined;
  /** FLAC: the temporary file the bytes are spooled to until the end. */
  spool: { path: string; file: Deno.FsFile } | undefined;
  spooledBytes: number;
  /** Microseconds of audio this stream may still yield (Infinity for a live stream). */
  budgetUs: number;
  /** Frames still to drop from the start (MP3 priming). */
  skip: number;
  /** Frames still allowed before the end (drops MP3 padding); Infinity if unknown. */
  remaining: number;
  converter: PcmConverter | undefined;
  /** PCM: the last frame played (one sample per channel), where a gap's fade-out starts. */
  lastFrame: Int16Array | undefined;
  /** PCM: frames of fade-in already applied after a gap (undefined: no fade-in running). */
  fadeInAt: number | undefined;
}

/** Decodes stream payloads and writes PCM to one output. */
export class MediaPlayout implements Disposable {
  readonly #options: MediaPlayoutOptions;
  #output: PcmWriter | undefined;
  #format: PcmFormat | undefined;
  #stream: ActiveStream | undefined;
  /** Sample frames written to the output. */
  framesWritten = 0;
  /** Sample frames written to conceal lost packets (PCM: silence; Opus: PLC). */
  framesConcealed = 0;
  /** Opus frames (20 ms) filled by packet-loss concealment. */
  opusFramesConcealed = 0;
  /** Opus frames decoded from packets. */
  opusFramesDecoded = 0;
  /** Opus packets (or payloads) that were corrupt and concealed instead. */
  opusCorrupt = 0;

  /** Concealed or just-recovered Opus frames scaled down so as not to overshoot. */
  get opusFramesLimited(): number {
    return this.#guard?.limited ?? 0;
  }
  /** The session's Opus decoder (one continuous stream across songs). */
  #opus: OpusDecoder | undefined;
  /** Bounds the level of concealed frames and of the frames right after (loss_guard.ts). */
  #guard: LossGuard | undefined;
  /** Live pacing: wall time (performance.now()) at which output position 0 would play. */
  #paceOriginMs: number | undefined;
  /** Live pacing: media milliseconds written since the origin. */
  #pacedMs = 0;

  /** Creates a playout; nothing is opened until the first stream starts. */
  constructor(options: MediaPlayoutOptions) {
    this.#options = options;
  }

  /** Format of the output, once opened. */
  get format(): PcmFormat | undefined {
    return this.#format;
  }

  /**
   * Starts a new stream described by `info`, finishing the previous one.
   *
   * @param fromStart whether DATA begins at the song's start (then MP3 priming is trimmed).
   */
  async startStream(info: StreamInfo, fromStart = true): Promise<void> {
    await this.finishStream();
    if (!this.#output) {
      this.#format = { sampleRate: info.sampleRate, channels: info.channels };
      this.#output = await this.#options.openOutput(this.#format);
    }
    const codec = info.codec;
    const name = escapePeerText(info.title);
    if (codec === "opus") await this.#openOpus(info, name);
    const decoder = codec === "mp3"
      ? await openPushDecoder("mp3", { path: name })
      : codec === "wav"
      ? await openPushDecoder("wav", { path: name })
      : undefined;
    const known = fromStart && codec === "mp3" && info.frames !== undefined;
    let spool: ActiveStream["spool"];
    if (codec === "flac") {
      const path = await Deno.makeTempFile({ prefix: "soundsock-flac-", suffix: ".flac" });
      spool = { path, file: await Deno.open(path, { write: true, truncate: true }) };
    }
    const announcedUs = info.frames !== undefined
      ? info.frames / info.sampleRate * 1e6
      : info.durationMs * 1000;
    this.#stream = {
      info,
      name,
      decoder,
      spool,
      spooledBytes: 0,
      budgetUs: info.live
        ? Infinity
        : announcedUs * (1 + ANNOUNCED_MARGIN.ratio) + ANNOUNCED_MARGIN.seconds * 1e6,
      skip: fromStart && codec === "mp3" ? info.skip ?? 0 : 0,
      remaining: known ? info.frames! : Infinity,
      converter: undefined,
      lastFrame: undefined,
      fadeInAt: undefined,
    };
  }

  /** Decodes one DATA payload and writes what it yields. */
  async media(payload: Uint8Array): Promise<void> {
    const s = this.#stream;
    if (!s) return; // DATA before any STREAM_INFO (radio joined mid-burst): nothing to decode with
    if (s.spool) {
      const max = this.#options.maxBufferedBytes ?? 256 * 1024 * 1024;
      if (s.spooledBytes + payload.length > max) {
        throw new PlayoutLimitError(`Cannot play "${s.name}": FLAC larger than ${max} bytes`);
      }
      for (let at = 0; at < payload.length;) at += await s.spool.file.write(payload.subarray(at));
      s.spooledBytes += payload.length;
      return;
    }
    if (s.decoder) {
      s.decoder.push(payload);
      await this.#drain(s);
      return;
    }
    if (s.info.codec === "opus") {
      await this.#opusMedia(s, payload);
      return;
    }
    // pcm_s16le: whole sample frames, little-endian.
    const pcm = pcmFromLittleEndian(payload);
    const ch = s.info.channels;
    const frames = Math.floor(pcm.length / ch);
    if (frames === 0) return;
    if (s.fadeInAt !== undefined) {
      const fade = pcmFadeFrames(s.info.sampleRate);
      s.fadeInAt = fadeIn(pcm, ch, s.fadeInAt, fade);
      if (s.fadeInAt >= fade) s.fadeInAt = undefined;
    }
    s.lastFrame = pcm.slice((frames - 1) * ch, frames * ch);
    await this.#write(s, pcm);
  }

  /**
   * Conceals a lost packet of `durationUs` (at most `maxGapUs`, however long the sender's
   * timestamps say the gap is): Opus packet-loss concealment; for PCM and MP3 silence that
   * fades out from the last sample and back in. MP3 frames after the gap whose bit reservoir
   * was lost are concealed the same way ({@linkcode PushDecoder.lost}), so the output keeps
   * the stream's length.
   */
  async gap(durationUs: number): Promise<void> {
    const s = this.#stream;
    if (!s) return;
    const us = Math.min(Math.max(0, durationUs), this.#options.maxGapUs ?? 1_000_000);
    if (s.info.codec === "opus") {
      // In the stream's own frames: a lost 10 ms packet of a live capture is 10 ms, not 20.
      const n = opusFrameSamples(s.info);
      await this.#conceal(s, Math.round(us * OPUS_SAMPLE_RATE / 1e6 / n), n);
      return;
    }
    if (s.info.codec === "mp3" && s.decoder?.lost) {
      const rate = s.decoder.sampleRate ?? s.info.sampleRate;
      // The frames before the gap are decoded first (they were whole), then silence.
      const frames = s.decoder.lost(Math.round(us * rate / 1e6));
      await this.#drainDecoded(s);
      await this.#silence(s, frames);
      return;
    }
    if (s.info.codec !== "pcm_s16le") return;
    await this.#silence(s, Math.round(us * s.info.sampleRate / 1e6));
  }

  /** Writes `frames` of concealment: a fade from the last sample played to 0, then silence. */
  async #silence(s: ActiveStream, frames: number): Promise<void> {
    if (!(frames > 0)) return;
    this.framesConcealed += frames;
    const ch = s.decoder?.channels ?? s.info.channels;
    // The first block falls from the last sample played to 0 (then silence); what follows
    // the gap fades in (see media()).
    const first = new Int16Array(Math.min(frames, 4096) * ch);
    if (s.lastFrame) fadeOut(first, ch, s.lastFrame, pcmFadeFrames(s.info.sampleRate));
    s.lastFrame = undefined;
    s.fadeInAt = 0;
    let block = first;
    // (Stops if another stream started meanwhile; a stream being finished is unset already.)
    while (frames > 0 && (this.#stream === s || this.#stream === undefined)) {
      const n = Math.min(frames, 4096);
      await this.#write(s, block.subarray(0, n * ch));
      frames -= n;
      if (block === first) block = new Int16Array(first.length);
    }
  }

  /** Ends the current stream: flushes the decoder (and decodes a buffered FLAC). */
  async finishStream(): Promise<void> {
    const s = this.#stream;
    if (!s) return;
    this.#stream = undefined;
    try {
      if (s.spool) {
        s.spool.file.close();
        // Block by block from the file: memory holds one block, and the announced length
        // (checked in #write) stops a file that decodes to more.
        await using stream = await decodeStream(s.spool.path, { signal: this.#options.signal });
        for await (const pcm of stream) await this.#write(s, pcm, stream);
      } else if (s.decoder) {
        s.decoder.end();
        await this.#drain(s);
      }
    } catch (error) {
      if (s.spool && (error as Error).name === "AudioDecodeError") {
        // decodeStream names the temporary file; say which song it was.
        throw new PlayoutLimitError(
          `Cannot play "${s.name}": ${(error as Error).message.replace(/^.*?: /, "")}`,
        );
      }
      throw error;
    } finally {
      this.#release(s);
    }
  }

  #release(s: ActiveStream): void {
    s.decoder?.close();
    if (s.spool) {
      try {
        s.spool.file.close();
      } catch { /* closed */ }
      try {
        Deno.removeSync(s.spool.path);
      } catch { /* gone */ }
      s.spool = undefined;
    }
  }

  async #drain(s: ActiveStream): Promise<void> {
    // Frames dropped after a gap come before what decoded after them.
    const dropped = s.decoder!.takeDropped?.() ?? 0;
    if (dropped > 0) await this.#silence(s, dropped);
    await this.#drainDecoded(s);
  }

  /** Writes the decoder's PCM, fading in after a concealed gap and keeping the last frame. */
  async #drainDecoded(s: ActiveStream): Promise<void> {
    for (let pcm = s.decoder!.read(); pcm; pcm = s.decoder!.read()) {
      const ch = s.decoder!.channels ?? s.info.channels;
      const frames = Math.floor(pcm.length / ch);
      if (frames === 0) continue;
      if (s.fadeInAt !== undefined) {
        const fade = pcmFadeFrames(s.decoder!.sampleRate ?? s.info.sampleRate);
        s.fadeInAt = fadeIn(pcm, ch, s.fadeInAt, fade);
        if (s.fadeInAt >= fade) s.fadeInAt = undefined;
      }
      s.lastFrame = pcm.slice((frames - 1) * ch, frames * ch);
      await this.#write(s, pcm);
    }
  }

  async #write(
    s: ActiveStream,
    pcm: Int16Array,
    from?: { sampleRate: number; channels: number },
  ): Promise<void> {
    const ch = from?.channels ?? s.decoder?.channels ?? s.info.channels;
    const rate = from?.sampleRate ?? s.decoder?.sampleRate ?? s.info.sampleRate;
    let frames = pcm.length / ch;
    if (s.skip > 0) {
      const drop = Math.min(s.skip, frames);
      s.skip -= drop;
      pcm = pcm.subarray(drop * ch);
      frames -= drop;
    }
    if (frames > s.remaining) {
      pcm = pcm.subarray(0, s.remaining * ch);
      frames = s.remaining;
    }
    s.remaining -= frames;
    if (frames === 0) return;
    const us = frames / rate * 1e6;
    if (us > s.budgetUs) {
      const announced = Math.round(
        (s.info.frames !== undefined
          ? s.info.frames / s.info.sampleRate
          : s.info.durationMs / 1000) * 10,
      ) / 10;
      throw new PlayoutLimitError(
        `Cannot play "${s.name}": it holds more audio than its STREAM_INFO announced ` +
          `(${announced} s)`,
      );
    }
    s.budgetUs -= us;
    if (s.info.live) await this.#pace(us / 1000);
    if (!s.converter || s.converter.from.sampleRate !== rate || s.converter.from.channels !== ch) {
      s.converter = new PcmConverter({ sampleRate: rate, channels: ch }, this.#format!);
    }
    const out = s.converter.convert(pcm);
    this.framesWritten += out.length / this.#format!.channels;
    await this.#output!.write(out, { signal: this.#options.signal });
  }

  /**
   * Live streams follow the media clock: waits while the output is more than `leadMs` ahead of
   * the wall clock. Time the output fell behind is not saved up as credit.
   */
  async #pace(blockMs: number): Promise<void> {
    const now = performance.now();
    if (this.#paceOriginMs === undefined || this.#paceOriginMs + this.#pacedMs < now) {
      this.#paceOriginMs = now - this.#pacedMs;
    }
    this.#pacedMs += blockMs;
    const aheadMs = this.#paceOriginMs + this.#pacedMs - now - (this.#options.leadMs ?? 2000);
    if (aheadMs <= 0) return;
    const signal = this.#options.signal;
    if (signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, aheadMs);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  async #openOpus(info: StreamInfo, name: string): Promise<void> {
    if (info.sampleRate !== OPUS_SAMPLE_RATE || (info.channels !== 1 && info.channels !== 2)) {
      throw new PlayoutLimitError(
        `Cannot play "${name}": an Opus stream must be 48000 Hz, 1 or 2 channels ` +
          `(STREAM_INFO says ${info.sampleRate} Hz, ${info.channels} channels)`,
      );
    }
    if (this.#opus?.channels === info.channels) return;
    this.#opus?.close();
    this.#opus = undefined;
    this.#opus = await OpusDecoder.create({ channels: info.channels });
    this.#guard = new LossGuard(info.channels);
  }

  /** Decodes the Opus packets of one payload; a corrupt one is concealed (same length). */
  async #opusMedia(s: ActiveStream, payload: Uint8Array): Promise<void> {
    let packets: Uint8Array[];
    try {
      packets = splitOpusPayload(payload);
    } catch {
      this.opusCorrupt++;
      return; // nothing says how long it was: the next packet's timestamp makes it a gap
    }
    for (const packet of packets) {
      if (this.#stream !== s) return;
      let pcm: Int16Array;
      try {
        pcm = this.#guard!.decoded(this.#opus!.decode(packet));
        this.opusFramesDecoded++;
      } catch {
        this.opusCorrupt++;
        await this.#conceal(s, 1, opusFrameSamples(s.info));
        continue;
      }
      await this.#write(s, pcm, { sampleRate: OPUS_SAMPLE_RATE, channels: this.#opus!.channels });
    }
  }

  /** Opus packet-loss concealment: one `conceal` of `frameSamples` per lost frame. */
  async #conceal(s: ActiveStream, frames: number, frameSamples: number): Promise<void> {
    const dec = this.#opus;
    if (!dec) return;
    for (let i = 0; i < frames && this.#stream === s; i++) {
      const pcm = this.#guard!.concealed(dec.conceal(frameSamples));
      this.opusFramesConcealed++;
      this.framesConcealed += pcm.length / dec.channels;
      await this.#write(s, pcm, { sampleRate: OPUS_SAMPLE_RATE, channels: dec.channels });
    }
  }

  /** Releases the decoders (and a FLAC spool file) without flushing. */
  [Symbol.dispose](): void {
    if (this.#stream) this.#release(this.#stream);
    this.#stream = undefined;
    this.#opus?.close();
    this.#opus = undefined;
  }
}

/**
 * Samples per channel of one of the stream's Opus frames: STREAM_INFO `frameMs` (a live
 * capture's 10 or 20), else the radio's 20 ms.
 */
function opusFrameSamples(info: StreamInfo): number {
  const ms = info.frameMs;
  return ms !== undefined && [2.5, 5, 10, 20, 40, 60].includes(ms)
    ? ms * OPUS_SAMPLE_RATE / 1000
    : OPUS_FRAME_SAMPLES;
}

/** Frames of {@linkcode PCM_FADE_MS} at `sampleRate` (at least 1). */
export function pcmFadeFrames(sampleRate: number): number {
  return Math.max(1, Math.round(PCM_FADE_MS * sampleRate / 1000));
}

/**
 * Writes a linear fall from `from` (one sample per channel) to 0 over `fade` frames into the
 * start of `out` (interleaved, `channels`); frame i holds from × (1 − (i + 1) / fade), so the
 * step from `from` to the first frame is one fade step too. Frames past the fade are left
 * as they are (silence).
 */
export function fadeOut(out: Int16Array, channels: number, from: Int16Array, fade: number): void {
  const frames = Math.min(out.length / channels, fade);
  for (let i = 0; i < frames; i++) {
    const g = 1 - (i + 1) / fade;
    for (let c = 0; c < channels; c++) out[i * channels + c] = Math.round(from[c]! * g);
  }
}

/**
 * Scales the start of `pcm` (interleaved) by a linear rise from 0 to 1 over `fade` frames, of
 * which `at` were applied already (a fade-in may span packets). Returns the new position.
 */
export function fadeIn(pcm: Int16Array, channels: number, at: number, fade: number): number {
  const frames = pcm.length / channels;
  let i = 0;
  for (; i < frames && at + i < fade; i++) {
    const g = (at + i) / fade;
    for (let c = 0; c < channels; c++) {
      pcm[i * channels + c] = Math.round(pcm[i * channels + c]! * g);
    }
  }
  return at + i;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Interprets s16le bytes as samples (copying, so the result is aligned and owned). */
export function pcmFromLittleEndian(bytes: Uint8Array): Int16Array {
  const n = bytes.length >> 1;
  if (LITTLE_ENDIAN) {
    const out = new Int16Array(n);
    new Uint8Array(out.buffer).set(bytes.subarray(0, n * 2));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Int16Array.from({ length: n }, (_, i) => view.getInt16(i * 2, true));
}
