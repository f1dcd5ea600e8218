/**
 * Incremental decoding of soundsock frames from a byte stream (TCP, TLS): bytes arrive in
 * arbitrary pieces — a frame split across reads, many frames in one read — and come out as
 * whole frames. The header is validated as soon as its 32 bytes are in, so a lying length
 * field is refused before anything is buffered for it; memory is bounded by one frame.
 *
 * @module
 */

import {
  finishFrame,
  type Frame,
  FrameError,
  type FrameHeader,
  type FrameLimitOptions,
  HEADER_SIZE,
  parseHeader,
  STREAM_MAX_PAYLOAD,
} from "./frame.ts";

/** Push bytes in, take whole frames out. Not safe to reuse after it has thrown. */
export class FrameDecoder {
  readonly #maxPayload: number;
  /** The header being read; reused. */
  readonly #head = new Uint8Array(HEADER_SIZE);
  /** The frame being read, sized exactly once its header is valid; handed out when full. */
  #frame: Uint8Array | undefined;
  #len = 0;
  #header: FrameHeader | undefined;

  /** @param options.maxPayload largest accepted payload, default 1 MiB − 32. */
  constructor(options: FrameLimitOptions = {}) {
    this.#maxPayload = options.maxPayload ?? STREAM_MAX_PAYLOAD;
  }

  /** Bytes held that do not yet form a whole frame. */
  get pendingBytes(): number {
    return this.#len;
  }

  /**
   * Feeds the next piece of the stream; returns the frames it completes, in order. Each
   * frame owns its bytes (one copy from `chunk`), so the caller may reuse `chunk`'s buffer.
   *
   * @throws {FrameError} at the first invalid frame.
   */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#header === undefined) {
        // Fill the header first; nothing is allocated for the payload until it is validated.
        const take = Math.min(HEADER_SIZE - this.#len, chunk.length - pos);
        this.#head.set(chunk.subarray(pos, pos + take), this.#len);
        this.#len += take;
        pos += take;
        if (this.#len < HEADER_SIZE) break;
        this.#header = parseHeader(this.#head, this.#maxPayload);
        this.#frame = new Uint8Array(HEADER_SIZE + this.#header.payloadLength);
        this.#frame.set(this.#head);
      }
      const frame = this.#frame!;
      const take = Math.min(frame.length - this.#len, chunk.length - pos);
      frame.set(chunk.subarray(pos, pos + take), this.#len);
      this.#len += take;
      pos += take;
      if (this.#len < frame.length) break;
      frames.push(finishFrame(this.#header, frame));
      this.#header = undefined;
      this.#frame = undefined;
      this.#len = 0;
    }
    return frames;
  }

  /**
   * Declares the end of the stream.
   *
   * @throws {FrameError} (`truncated`) if the stream stopped inside a frame.
   */
  end(): void {
    if (this.#len > 0) {
      const expected = this.#header ? HEADER_SIZE + this.#header.payloadLength : HEADER_SIZE;
      throw new FrameError(
        "truncated",
        `stream ended inside a frame (${this.#len} of ${expected} bytes)`,
      );
    }
  }
}

/** Anything frames can be read from: `Deno.Conn`, `Deno.TlsConn`, `Deno.FsFile`. */
export interface ByteReader {
  /** Reads into `p`; resolves to the count read, or null at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
}

/** Options for {@linkcode readFrames}. */
export interface ReadFramesOptions extends FrameLimitOptions {
  /** Stops reading when aborted (the caller closes the connection to unblock a pending read). */
  signal?: AbortSignal;
  /**
   * Size of the read buffer; large reads keep per-call overhead low.
   * @default {65536}
   */
  readSize?: number;
}

/**
 * Yields frames read from `reader` until it ends. A clean end between frames returns; an end
 * inside a frame throws {@linkcode FrameError}.
 */
export async function* readFrames(
  reader: ByteReader,
  options: ReadFramesOptions = {},
): AsyncGenerator<Frame, void, undefined> {
  const decoder = new FrameDecoder(options);
  const buf = new Uint8Array(options.readSize ?? 64 * 1024);
  while (!options.signal?.aborted) {
    const n = await reader.read(buf);
    if (n === null) break;
    for (const frame of decoder.push(buf.subarray(0, n))) yield frame;
  }
  options.signal?.throwIfAborted();
  decoder.end();
}
