/**
 * A song as station audio: decoded block by block (lib/audio decodeStream: MP3 priming and
 * padding trimmed, WAV, FLAC) and resampled with libsoxr to 48 kHz stereo float (mono
 * duplicated, 48 kHz passed through). Memory holds one block, whatever the song's length.
 *
 * @module
 */

import { decodeStream } from "../audio/decode.ts";
import { Resampler } from "../codec/mod.ts";

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
  for await (const pcm of stream) {
    const out = rs.process(pcm);
    if (out.length > 0) yield out;
  }
  const rest = rs.flush();
  if (rest.length > 0) yield rest;
}
