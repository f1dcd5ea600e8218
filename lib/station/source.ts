/**
 * A song as station audio: decoded block by block (lib/audio decodeStream: MP3 priming and
 * padding trimmed, WAV, FLAC) and resampled with libsoxr to 48 kHz stereo float (mono
 * duplicated, 48 kHz passed through), {@linkcode SONG_BLOCK_MS} at a time. Memory holds one decoded
 * chunk, whatever the song's length.
 *
 * @module
 */

import { decodeStream } from "../audio/decode.ts";
import { Resampler } from "../codec/mod.ts";

/**
 * Audio resampled and yielded at a time, in ms. The station encodes what it yields at once and
 * then waits to send it, so this is how much work runs without a break: a decoded chunk is
 * 256 KiB of file (16 s of a 128 kbit/s MP3), and resampling and encoding it in one go held the
 * event loop — and every listener's sends — for ~300 ms at each chunk.
 */
export const SONG_BLOCK_MS = 100;

/** A song file that cannot be turned into station audio. */
export class SongSourceError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SongSourceError";
  }
}

/**
 * Yields the song at `path` as interleaved 48 kHz stereo float blocks; the total is exactly
 * `round(frames × 48000 / rate)` frames.
 *
 * @throws {AudioDecodeError} the file cannot be decoded
 * @throws {SongSourceError} more than 2 channels
 */
export async function* songBlocks(
  path: string,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<Float32Array> {
  await using stream = await decodeStream(path, { signal: options.signal });
  if (stream.channels !== 1 && stream.channels !== 2) {
    throw new SongSourceError(`Cannot play ${stream.channels}-channel audio (mono or stereo only)`);
  }
  using rs = new Resampler({ inRate: stream.sampleRate, inChannels: stream.channels });
  const step = Math.max(1, Math.round(stream.sampleRate * SONG_BLOCK_MS / 1000)) * stream.channels;
  for await (const pcm of stream) {
    for (let at = 0; at < pcm.length; at += step) {
      const out = rs.process(pcm.subarray(at, at + step));
      if (out.length > 0) yield out;
    }
  }
  const rest = rs.flush();
  if (rest.length > 0) yield rest;
}
