/**
 * Opus (RFC 6716) encoder and decoder on Debian's libopus through Deno FFI.
 *
 * Always 48 kHz, 1 or 2 interleaved channels. Frame durations 2.5 / 5 / 10 / 20 / 40 / 60 ms
 * (the station uses 20 ms). The decoder conceals lost packets (PLC) and, when the sender
 * enabled it, recovers a lost frame from the next packet's in-band FEC.
 *
 * @example Encode one 20 ms frame and decode it
 * ```ts
 * using enc = await OpusEncoder.create({ channels: 2, bitrate: 128_000 });
 * using dec = await OpusDecoder.create({ channels: 2 });
 * const packet = enc.encode(new Float32Array(enc.frameSize * 2));
 * const pcm = dec.decode(packet); // Int16Array, 960 * 2 samples
 * ```
 *
 * @module
 */

import { type AudioLib, loadAudioLib } from "../audio/ffi.ts";
import { _cStringAt, loadOpus, type OpusLib } from "./ffi.ts";
import { OpusError } from "./errors.ts";

/** The only rate we run libopus at (Opus's native rate). */
export const OPUS_SAMPLE_RATE = 48_000;
/** Frame durations libopus accepts, in milliseconds. */
export const OPUS_FRAME_MS = [2.5, 5, 10, 20, 40, 60] as const;
/** A frame duration libopus accepts. */
export type OpusFrameMs = (typeof OPUS_FRAME_MS)[number];
/** The longest packet libopus decodes: 120 ms = 5760 samples per channel at 48 kHz. */
export const OPUS_MAX_FRAME_SAMPLES = 5760;
/** Output buffer for one packet; 4000 bytes is libopus's recommendation (max 1275 per frame ×3). */
const MAX_PACKET_BYTES = 4000;

/** Encoder tuning: `audio` (music; the station), `voip` (speech, favours SILK), `lowdelay`. */
export type OpusApplication = "audio" | "voip" | "lowdelay";
const APPLICATION = { voip: 2048, audio: 2049, lowdelay: 2051 } as const;

/** opus_defines.h request codes (stable libopus ABI). */
const CTL = {
  SET_BITRATE: 4002,
  GET_BITRATE: 4003,
  SET_VBR: 4006,
  SET_COMPLEXITY: 4010,
  SET_INBAND_FEC: 4012,
  SET_PACKET_LOSS_PERC: 4014,
  SET_SIGNAL: 4024,
  GET_LOOKAHEAD: 4027,
  RESET_STATE: 4028,
  GET_LAST_PACKET_DURATION: 4039,
} as const;
const SIGNAL_MUSIC = 3002;
/** ss_opus_ctl_* result when the shim could not dlopen libopus. */
const CTL_UNAVAILABLE = -1000;

/** Options of {@linkcode OpusEncoder.create}. */
export interface OpusEncoderOptions {
  /**
   * Interleaved channels of the input.
   * @default 2
   */
  channels?: 1 | 2;
  /**
   * Duration of one frame (one packet) in ms.
   * @default 20
   */
  frameMs?: OpusFrameMs;
  /**
   * Target bitrate in bit/s (6000 ... 510000).
   * @default 128000
   */
  bitrate?: number;
  /**
   * What the encoder is tuned for.
   * @default "audio"
   */
  application?: OpusApplication;
  /**
   * Encoder complexity 0 (fastest) ... 10 (best).
   * @default 10
   */
  complexity?: number;
  /**
   * Variable bitrate (libopus's default) or constant bitrate.
   * @default true
   */
  vbr?: boolean;
  /**
   * Put in-band FEC (a low-bitrate copy of the previous frame) into each packet. libopus only
   * does so in its SILK / hybrid modes (speech-like bitrates); CELT-only music frames carry none.
   * @default false
   */
  inbandFec?: boolean;
  /**
   * Expected packet loss in percent (0 ... 100); FEC is only spent when this is above 0.
   * @default 0
   */
  expectedLossPercent?: number;
}

/** Options of {@linkcode OpusDecoder.create}. */
export interface OpusDecoderOptions {
  /**
   * Interleaved channels of the output (a mono stream decodes to stereo and vice versa).
   * @default 2
   */
  channels?: 1 | 2;
}

function _channels(channels: number | undefined): 1 | 2 {
  const ch = channels ?? 2;
  if (ch !== 1 && ch !== 2) throw new RangeError(`Opus channels must be 1 or 2, got ${ch}`);
  return ch;
}

function _opusError(lib: OpusLib, what: string, code: number): OpusError {
  const text = _cStringAt(lib.opus_strerror(code)) ?? `error ${code}`;
  return new OpusError(`${what}: ${text}`, code);
}

/** Runs a ctl through the native shim; throws OpusError / clear errors on failure. */
function _ctlSet(
  audio: AudioLib,
  opus: OpusLib,
  kind: 0 | 1,
  st: Deno.PointerValue,
  request: number,
  value: number,
): void {
  const r = audio.ss_opus_ctl_set(kind, st, request, value);
  if (r === CTL_UNAVAILABLE) {
    throw new OpusError(
      "Cannot configure Opus: the native library could not load libopus.so.0. " +
        "Install it with: apt-get install libopus0",
      r,
    );
  }
  if (r !== 0) throw _opusError(opus, `Cannot configure Opus (request ${request}=${value})`, r);
}

function _ctlGet(
  audio: AudioLib,
  opus: OpusLib,
  kind: 0 | 1,
  st: Deno.PointerValue,
  request: number,
): number {
  const out = new Int32Array(1);
  const r = audio.ss_opus_ctl_get(kind, st, request, out);
  if (r === CTL_UNAVAILABLE) {
    throw new OpusError(
      "Cannot query Opus: the native library could not load libopus.so.0. " +
        "Install it with: apt-get install libopus0",
      r,
    );
  }
  if (r !== 0) throw _opusError(opus, `Cannot query Opus (request ${request})`, r);
  return out[0]!;
}

/**
 * An Opus encoder (48 kHz). Feed it exactly {@linkcode frameSize} samples per channel per call;
 * each call returns one packet. Dispose it (`using`) to free the native state.
 */
export class OpusEncoder implements Disposable {
  /** Interleaved input channels. */
  readonly channels: 1 | 2;
  /** Frame duration in ms. */
  readonly frameMs: OpusFrameMs;
  /** Samples per channel in one frame (960 for 20 ms). */
  readonly frameSize: number;
  /**
   * Encoder lookahead in samples per channel at 48 kHz (OPUS_GET_LOOKAHEAD, 312 for the
   * `audio` application): decoded output lags the input by this much, and a stream should skip
   * it (Ogg Opus "pre-skip").
   */
  readonly lookahead: number;
  #opus: OpusLib;
  #audio: AudioLib;
  #st: Deno.PointerValue;
  #out = new Uint8Array(MAX_PACKET_BYTES);

  private constructor(
    opus: OpusLib,
    audio: AudioLib,
    st: Deno.PointerValue,
    channels: 1 | 2,
    frameMs: OpusFrameMs,
    lookahead: number,
  ) {
    this.#opus = opus;
    this.#audio = audio;
    this.#st = st;
    this.channels = channels;
    this.frameMs = frameMs;
    this.frameSize = OPUS_SAMPLE_RATE * frameMs / 1000;
    this.lookahead = lookahead;
  }

  /**
   * Creates an encoder. Loads libopus and the native shim (for the ctl calls) on first use.
   *
   * @throws {CodecLibraryError} libopus is missing (message names `apt-get install libopus0`)
   * @throws {RangeError} an option is out of range
   */
  static async create(options: OpusEncoderOptions = {}): Promise<OpusEncoder> {
    const channels = _channels(options.channels);
    const frameMs = options.frameMs ?? 20;
    if (!OPUS_FRAME_MS.includes(frameMs)) {
      throw new RangeError(
        `Opus frame must be one of ${OPUS_FRAME_MS.join(", ")} ms, got ${frameMs}`,
      );
    }
    const bitrate = options.bitrate ?? 128_000;
    if (!Number.isInteger(bitrate) || bitrate < 6000 || bitrate > 510_000) {
      throw new RangeError(`Opus bitrate must be 6000 ... 510000 bit/s, got ${bitrate}`);
    }
    const complexity = options.complexity ?? 10;
    if (!Number.isInteger(complexity) || complexity < 0 || complexity > 10) {
      throw new RangeError(`Opus complexity must be 0 ... 10, got ${complexity}`);
    }
    const loss = options.expectedLossPercent ?? 0;
    if (!Number.isInteger(loss) || loss < 0 || loss > 100) {
      throw new RangeError(`Opus expected loss must be 0 ... 100 %, got ${loss}`);
    }
    const opus = loadOpus();
    const audio = await loadAudioLib();
    const err = new Int32Array(1);
    const application = APPLICATION[options.application ?? "audio"];
    const st = opus.opus_encoder_create(OPUS_SAMPLE_RATE, channels, application, err);
    if (st === null) throw _opusError(opus, "Cannot create Opus encoder", err[0]!);
    try {
      _ctlSet(audio, opus, 0, st, CTL.SET_BITRATE, bitrate);
      _ctlSet(audio, opus, 0, st, CTL.SET_COMPLEXITY, complexity);
      _ctlSet(audio, opus, 0, st, CTL.SET_VBR, options.vbr === false ? 0 : 1);
      _ctlSet(audio, opus, 0, st, CTL.SET_INBAND_FEC, options.inbandFec ? 1 : 0);
      _ctlSet(audio, opus, 0, st, CTL.SET_PACKET_LOSS_PERC, loss);
      if (application === APPLICATION.audio) {
        _ctlSet(audio, opus, 0, st, CTL.SET_SIGNAL, SIGNAL_MUSIC);
      }
      const lookahead = _ctlGet(audio, opus, 0, st, CTL.GET_LOOKAHEAD);
      return new OpusEncoder(opus, audio, st, channels, frameMs, lookahead);
    } catch (e) {
      opus.opus_encoder_destroy(st);
      throw e;
    }
  }

  /** The bitrate libopus is aiming for, in bit/s (OPUS_GET_BITRATE). */
  get bitrate(): number {
    return _ctlGet(this.#audio, this.#opus, 0, this.#live(), CTL.GET_BITRATE);
  }

  /**
   * Changes the target bitrate (takes effect with the next frame).
   * @throws {RangeError} outside 6000 ... 510000 bit/s
   */
  setBitrate(bitrate: number): void {
    if (!Number.isInteger(bitrate) || bitrate < 6000 || bitrate > 510_000) {
      throw new RangeError(`Opus bitrate must be 6000 ... 510000 bit/s, got ${bitrate}`);
    }
    _ctlSet(this.#audio, this.#opus, 0, this.#live(), CTL.SET_BITRATE, bitrate);
  }

  /**
   * Encodes one frame: exactly `frameSize * channels` interleaved samples, s16 or float (±1.0).
   * Returns the packet (a fresh copy). `maxBytes` caps the packet's size (libopus spends fewer
   * bits on this frame to fit; a transport's payload limit).
   *
   * @throws {RangeError} wrong number of samples, or `maxBytes` outside 3 ... 4000
   * @throws {OpusError} libopus failed
   */
  encode(pcm: Int16Array | Float32Array, maxBytes = MAX_PACKET_BYTES): Uint8Array<ArrayBuffer> {
    const st = this.#live();
    if (!Number.isInteger(maxBytes) || maxBytes < 3 || maxBytes > MAX_PACKET_BYTES) {
      throw new RangeError(
        `Opus packet cap must be 3 ... ${MAX_PACKET_BYTES} bytes, got ${maxBytes}`,
      );
    }
    if (pcm.length !== this.frameSize * this.channels) {
      throw new RangeError(
        `Opus frame must have ${this.frameSize * this.channels} samples ` +
          `(${this.frameMs} ms × ${this.channels} ch), got ${pcm.length}`,
      );
    }
    const n = pcm instanceof Int16Array
      ? this.#opus.opus_encode(st, pcm, this.frameSize, this.#out, maxBytes)
      : this.#opus.opus_encode_float(st, pcm, this.frameSize, this.#out, maxBytes);
    if (n < 0) throw _opusError(this.#opus, "Cannot encode Opus frame", n);
    return this.#out.slice(0, n);
  }

  /** Forgets all history (as a fresh encoder with the same settings). */
  reset(): void {
    _ctlSet(this.#audio, this.#opus, 0, this.#live(), CTL.RESET_STATE, 0);
  }

  /** Frees the native encoder. A no-op the second time. */
  close(): void {
    if (this.#st === null) return;
    this.#opus.opus_encoder_destroy(this.#st);
    this.#st = null;
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #live(): Deno.PointerValue {
    if (this.#st === null) throw new TypeError("Cannot use a closed OpusEncoder");
    return this.#st;
  }
}

/**
 * An Opus decoder (48 kHz, interleaved s16 out). Besides {@linkcode decode} it conceals a lost
 * packet ({@linkcode conceal}) and recovers one from the next packet's in-band FEC
 * ({@linkcode decodeFec}). Dispose it (`using`) to free the native state.
 */
export class OpusDecoder implements Disposable {
  /** Interleaved output channels. */
  readonly channels: 1 | 2;
  #opus: OpusLib;
  #audio: AudioLib;
  #st: Deno.PointerValue;
  #pcm: Int16Array<ArrayBuffer>;

  private constructor(opus: OpusLib, audio: AudioLib, st: Deno.PointerValue, channels: 1 | 2) {
    this.#opus = opus;
    this.#audio = audio;
    this.#st = st;
    this.channels = channels;
    this.#pcm = new Int16Array(OPUS_MAX_FRAME_SAMPLES * channels);
  }

  /**
   * Creates a decoder. Loads libopus and the native shim on first use.
   *
   * @throws {CodecLibraryError} libopus is missing (message names `apt-get install libopus0`)
   */
  static async create(options: OpusDecoderOptions = {}): Promise<OpusDecoder> {
    const channels = _channels(options.channels);
    const opus = loadOpus();
    const audio = await loadAudioLib();
    const err = new Int32Array(1);
    const st = opus.opus_decoder_create(OPUS_SAMPLE_RATE, channels, err);
    if (st === null) throw _opusError(opus, "Cannot create Opus decoder", err[0]!);
    return new OpusDecoder(opus, audio, st, channels);
  }

  /**
   * Decodes one packet to interleaved s16 (its full duration, e.g. 960 × channels for 20 ms).
   *
   * @throws {OpusError} the packet is empty or corrupt
   */
  decode(packet: Uint8Array): Int16Array<ArrayBuffer> {
    if (packet.length === 0) {
      throw new OpusError("Cannot decode Opus packet: empty packet", -4);
    }
    return this.#run(packet, OPUS_MAX_FRAME_SAMPLES, 0, "Cannot decode Opus packet");
  }

  /**
   * Packet-loss concealment: synthesizes `frameSize` samples per channel (a multiple of 2.5 ms,
   * i.e. of 120) for a lost packet from the decoder's history. Keeps the stream time-aligned.
   *
   * @throws {RangeError} frameSize is not a positive multiple of 120 up to 5760
   */
  conceal(frameSize: number): Int16Array<ArrayBuffer> {
    _checkLostSize(frameSize);
    return this.#run(null, frameSize, 0, "Cannot conceal lost Opus frame");
  }

  /**
   * Recovers the lost frame *before* `nextPacket` from its in-band FEC (`frameSize` samples per
   * channel, the lost packet's duration). If `nextPacket` carries no FEC, libopus conceals
   * instead, so the result always has the right length. Decode `nextPacket` itself afterwards
   * with {@linkcode decode} as usual.
   *
   * @throws {RangeError} frameSize is not a positive multiple of 120 up to 5760
   * @throws {OpusError} nextPacket is corrupt
   */
  decodeFec(nextPacket: Uint8Array, frameSize: number): Int16Array<ArrayBuffer> {
    _checkLostSize(frameSize);
    if (nextPacket.length === 0) return this.conceal(frameSize);
    return this.#run(nextPacket, frameSize, 1, "Cannot decode Opus FEC");
  }

  /** Duration of the last decoded / concealed packet in samples per channel. */
  get lastPacketDuration(): number {
    return _ctlGet(this.#audio, this.#opus, 1, this.#live(), CTL.GET_LAST_PACKET_DURATION);
  }

  /** Forgets all history (as a fresh decoder). */
  reset(): void {
    _ctlSet(this.#audio, this.#opus, 1, this.#live(), CTL.RESET_STATE, 0);
  }

  /** Frees the native decoder. A no-op the second time. */
  close(): void {
    if (this.#st === null) return;
    this.#opus.opus_decoder_destroy(this.#st);
    this.#st = null;
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #run(
    data: Uint8Array | null,
    frameSize: number,
    fec: 0 | 1,
    what: string,
  ): Int16Array<ArrayBuffer> {
    const st = this.#live();
    const n = this.#opus.opus_decode(
      st,
      data as Uint8Array<ArrayBuffer> | null,
      data?.length ?? 0,
      this.#pcm,
      frameSize,
      fec,
    );
    if (n < 0) throw _opusError(this.#opus, what, n);
    return this.#pcm.slice(0, n * this.channels);
  }

  #live(): Deno.PointerValue {
    if (this.#st === null) throw new TypeError("Cannot use a closed OpusDecoder");
    return this.#st;
  }
}

function _checkLostSize(frameSize: number): void {
  if (
    !Number.isInteger(frameSize) || frameSize <= 0 || frameSize % 120 !== 0 ||
    frameSize > OPUS_MAX_FRAME_SAMPLES
  ) {
    throw new RangeError(
      `Lost Opus frame size must be a multiple of 120 samples (2.5 ms) up to 5760, got ${frameSize}`,
    );
  }
}

/**
 * Samples per channel (at 48 kHz) in an Opus packet, from its TOC byte(s); no decoder needed.
 *
 * @throws {OpusError} the packet is malformed
 */
export function opusPacketSamples(packet: Uint8Array): number {
  const opus = loadOpus();
  if (packet.length === 0) throw new OpusError("Cannot read Opus packet: empty packet", -4);
  const n = opus.opus_packet_get_nb_samples(
    packet as Uint8Array<ArrayBuffer>,
    packet.length,
    OPUS_SAMPLE_RATE,
  );
  if (n < 0) throw _opusError(opus, "Cannot read Opus packet", n);
  return n;
}
