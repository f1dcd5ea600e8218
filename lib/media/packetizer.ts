/**
 * Cuts a song into independently decodable media packets: whole MP3 frames (never split), or
 * whole PCM sample frames for WAV/FLAC (decoded once on the server), each packet at most
 * `maxPayload` bytes and stamped with the media time of its first sample. UDP on-demand, the
 * UDP radio and the TLS radio all send these.
 *
 * @module
 */

import { decodeFile } from "../audio/decode.ts";
import { scanMp3 } from "../audio/mp3_frames.ts";
import type { StreamInfo } from "../wire/messages.ts";
import type { Song } from "../songs/catalog.ts";

/** One packet of media. */
export interface MediaPacket {
  /** Whole MP3 frames, or interleaved s16le PCM frames. */
  payload: Uint8Array;
  /** Media time of the first sample, microseconds from the start of the song. */
  timestampUs: number;
  /** Playing time of the payload, microseconds. */
  durationUs: number;
}

/** A song ready to stream. */
export interface PacketizedSong {
  /** What STREAM_INFO says about it (codec `mp3` or `pcm_s16le`). */
  info: StreamInfo;
  /** Packets in order. */
  packets: MediaPacket[];
  /** Total playing time in microseconds. */
  durationUs: number;
}

/** A song that cannot be cut into packets of the requested size. */
export class PacketizeError extends Error {
  /** Creates the error; `message` is user-facing. */
  constructor(message: string) {
    super(message);
    this.name = "PacketizeError";
  }
}

/**
 * Reads, scans or decodes `song` and cuts it into packets of at most `maxPayload` bytes.
 *
 * @throws {PacketizeError} if one MP3 frame is larger than `maxPayload`.
 */
export async function packetizeSong(song: Song, maxPayload: number): Promise<PacketizedSong> {
  return song.codec === "mp3"
    ? packetizeMp3(song.title, await Deno.readFile(song.path), maxPayload)
    : await packetizePcmFile(song, maxPayload);
}

/** Groups the MP3 frames of `bytes` into packets (ID3 tags and the Xing/Info frame left out). */
export function packetizeMp3(title: string, bytes: Uint8Array, maxPayload: number): PacketizedSong {
  const scan = scanMp3(bytes);
  if (!scan || scan.frames.length === 0) {
    throw new PacketizeError(`Cannot stream "${title}": no MP3 frames found`);
  }
  const packets: MediaPacket[] = [];
  const usPerSample = 1e6 / scan.sampleRate;
  let samples = 0;
  let start = -1;
  let end = -1;
  let packetSamples = 0;
  const flush = () => {
    if (start < 0) return;
    packets.push({
      payload: bytes.subarray(start, end),
      timestampUs: Math.round((samples - packetSamples) * usPerSample),
      durationUs: Math.round(packetSamples * usPerSample),
    });
    start = -1;
    packetSamples = 0;
  };
  for (const frame of scan.frames) {
    if (frame.length > maxPayload) {
      throw new PacketizeError(
        `Cannot stream "${title}": an MP3 frame of ${frame.length} bytes does not fit ` +
          `a ${maxPayload}-byte payload`,
      );
    }
    // Frames are contiguous in the file, so a packet is one slice of it.
    if (start >= 0 && (frame.offset !== end || frame.offset + frame.length - start > maxPayload)) {
      flush();
    }
    if (start < 0) start = frame.offset;
    end = frame.offset + frame.length;
    packetSamples += frame.samples;
    samples += frame.samples;
  }
  flush();
  const frames = scan.totalSamples;
  return {
    info: {
      title,
      codec: "mp3",
      sampleRate: scan.sampleRate,
      channels: scan.channels,
      durationMs: Math.round(frames * 1000 / scan.sampleRate),
      frames,
      skip: scan.trimStart,
      packets: packets.length,
    },
    packets,
    durationUs: Math.round(samples * usPerSample),
  };
}

async function packetizePcmFile(song: Song, maxPayload: number): Promise<PacketizedSong> {
  const decoded = await decodeFile(song.path);
  return packetizePcm(song.title, decoded.pcm, decoded.sampleRate, decoded.channels, maxPayload);
}

/** Cuts interleaved 16-bit PCM into packets of whole sample frames. */
export function packetizePcm(
  title: string,
  pcm: Int16Array,
  sampleRate: number,
  channels: number,
  maxPayload: number,
): PacketizedSong {
  const frameBytes = 2 * channels;
  const framesPerPacket = Math.floor(maxPayload / frameBytes);
  if (framesPerPacket < 1) {
    throw new PacketizeError(`Cannot stream "${title}": ${maxPayload}-byte payloads are too small`);
  }
  const bytes = littleEndianBytes(pcm);
  const totalFrames = pcm.length / channels;
  const packets: MediaPacket[] = [];
  for (let f = 0; f < totalFrames; f += framesPerPacket) {
    const n = Math.min(framesPerPacket, totalFrames - f);
    packets.push({
      payload: bytes.subarray(f * frameBytes, (f + n) * frameBytes),
      timestampUs: Math.round(f * 1e6 / sampleRate),
      durationUs: Math.round(n * 1e6 / sampleRate),
    });
  }
  return {
    info: {
      title,
      codec: "pcm_s16le",
      sampleRate,
      channels,
      durationMs: Math.round(totalFrames * 1000 / sampleRate),
      frames: totalFrames,
      packets: packets.length,
    },
    packets,
    durationUs: Math.round(totalFrames * 1e6 / sampleRate),
  };
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** The samples as s16le bytes (a view on little-endian hosts, a swapped copy otherwise). */
export function littleEndianBytes(pcm: Int16Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out = new Uint8Array(pcm.length * 2);
  const view = new DataView(out.buffer);
  pcm.forEach((s, i) => view.setInt16(i * 2, s, true));
  return out;
}
