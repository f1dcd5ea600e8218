/**
 * A guard on Opus packet-loss concealment. CELT's concealment extrapolates the last pitch
 * period, and the frames decoded right after a loss start from a guessed energy state: on the
 * demo chorale both overshoot — a 5 % loss session measured up to 32767 (clipped) against a
 * source peak of 27669 and a lossless decode peak of 30392. So a concealed frame, and the
 * {@linkcode RECOVERY_FRAMES} frames after it, are scaled down to at most the peak of the last
 * {@linkcode HISTORY_FRAMES} frames decoded normally (the gain drops at once, so the bound holds,
 * and rises with a ramp across a frame), and the gain returns to 1 over the first normal frame.
 * Audio decoded without loss passes untouched.
 *
 * @module
 */

/** Frames after a concealed one whose level is bounded too (the decoder re-converges). */
export const RECOVERY_FRAMES = 5;
/** Normal frames whose peak sets the ceiling (10 × 20 ms). */
export const HISTORY_FRAMES = 10;

/** The guard for one decoder; feed it every frame in order. */
export class LossGuard {
  readonly #channels: number;
  readonly #peaks: number[] = [];
  #gain = 1;
  #recovering = 0;
  /** Frames that were scaled down. */
  limited = 0;

  /** @param channels interleaved channels of the frames */
  constructor(channels: number) {
    this.#channels = channels;
  }

  /** A concealed frame (modified in place and returned). */
  concealed(pcm: Int16Array): Int16Array {
    this.#recovering = RECOVERY_FRAMES;
    return this.#limit(pcm);
  }

  /** A frame decoded from a packet (modified in place when recovering from a loss). */
  decoded(pcm: Int16Array): Int16Array {
    if (this.#recovering > 0) {
      this.#recovering--;
      return this.#limit(pcm);
    }
    this.#peaks.push(_peak(pcm));
    if (this.#peaks.length > HISTORY_FRAMES) this.#peaks.shift();
    if (this.#gain !== 1) this.#ramp(pcm, 1);
    return pcm;
  }

  #limit(pcm: Int16Array): Int16Array {
    // No history yet (a loss right at the start): nothing to compare with.
    if (this.#peaks.length === 0) return pcm;
    const ceiling = Math.max(...this.#peaks);
    const peak = _peak(pcm);
    const target = peak > ceiling ? ceiling / peak : 1;
    if (target < 1) this.limited++;
    if (target !== 1 || this.#gain !== 1) this.#ramp(pcm, target);
    return pcm;
  }

  /** Scales the frame to `target`: at once when lower, else ramped from the current gain. */
  #ramp(pcm: Int16Array, target: number): void {
    const frames = pcm.length / this.#channels;
    const from = this.#gain;
    for (let f = 0; f < frames; f++) {
      const g = target < from ? target : from + (target - from) * (f + 1) / frames;
      for (let c = 0; c < this.#channels; c++) {
        const i = f * this.#channels + c;
        pcm[i] = Math.round(pcm[i]! * g);
      }
    }
    this.#gain = target;
  }
}

function _peak(pcm: Int16Array): number {
  let m = 0;
  for (let i = 0; i < pcm.length; i++) {
    const v = pcm[i]!;
    const a = v < 0 ? -v : v;
    if (a > m) m = a;
  }
  return m;
}
