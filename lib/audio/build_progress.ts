/**
 * Progress of the native library build on stderr: on a terminal one line that updates in
 * place (`build:native: compiling … 12 s`), otherwise a single line when the build starts.
 *
 * @module
 */

/** Where progress goes: a writable with a terminal check (Deno.stderr by default). */
export interface ProgressStream {
  writeSync(p: Uint8Array): number;
  isTerminal(): boolean;
}

/** Options of {@linkcode BuildProgress}. */
export interface BuildProgressOptions {
  /** Text before every line. @default "soundsock" */
  prefix?: string;
  /** @default Deno.stderr */
  stream?: ProgressStream;
  /** Redraw interval on a terminal, in ms. @default {250} */
  tickMs?: number;
}

/** Shows build steps with the elapsed seconds; see the module doc. */
export class BuildProgress implements Disposable {
  readonly #stream: ProgressStream;
  readonly #prefix: string;
  readonly #tty: boolean;
  readonly #tickMs: number;
  readonly #start = performance.now();
  #step: string | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #announced = false;
  #enc = new TextEncoder();

  /** Creates a reporter; nothing is printed before the first {@linkcode step}. */
  constructor(options: BuildProgressOptions = {}) {
    this.#stream = options.stream ?? Deno.stderr;
    this.#prefix = options.prefix ?? "soundsock";
    this.#tty = this.#stream.isTerminal();
    this.#tickMs = options.tickMs ?? 250;
  }

  /** Seconds since the reporter was created. */
  get elapsedS(): number {
    return Math.round((performance.now() - this.#start) / 1000);
  }

  /** Starts a step ("compiling …"): a terminal shows it with the time, a pipe one line once. */
  step(text: string): void {
    this.#step = text;
    if (!this.#tty) {
      if (!this.#announced) {
        this.#announced = true;
        this.#write(`${this.#prefix}: building the audio library once (about 25 s)…\n`);
      }
      return;
    }
    this.#draw();
    if (this.#timer === undefined) {
      const timer = setInterval(() => this.#draw(), this.#tickMs);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /** Ends the updating line with `text` (terminal only; a pipe already had its line). */
  done(text: string): void {
    this.#stop();
    if (this.#tty && this.#step !== undefined) {
      this.#write(`\r\x1b[2K${this.#prefix}: ${text} in ${this.elapsedS} s\n`);
    }
    this.#step = undefined;
  }

  /** Stops redrawing and ends the line (after a failure the error follows on its own line). */
  [Symbol.dispose](): void {
    this.#stop();
    if (this.#tty && this.#step !== undefined) this.#write("\n");
    this.#step = undefined;
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #draw(): void {
    this.#write(`\r\x1b[2K${this.#prefix}: ${this.#step} … ${this.elapsedS} s`);
  }

  #write(text: string): void {
    try {
      this.#stream.writeSync(this.#enc.encode(text));
    } catch {
      // stderr closed: progress is best effort
    }
  }
}
