/**
 * Test harness: a private, headless PulseAudio daemon with a virtual speaker and microphone.
 *
 * - sink `speaker` (description "Speaker"): what we play; record it with {@linkcode Pulse.recordSpeaker}
 *   (parec on `speaker.monitor`).
 * - sink `micfeed` + `module-remap-source master=micfeed.monitor source_name=mic` (description
 *   "Mic"): {@linkcode Pulse.playToMic} feeds a WAV into it with paplay; capture `mic`.
 *
 * The daemon runs as a child process (`--daemonize=no`) so disposing kills exactly it. It runs as
 * root here: pulseaudio only warns ("not intended to be run as root") without `--system`.
 * miniaudio inside the test process reaches it through `PULSE_SERVER`, which we set in
 * Deno.env (libpulse reads it when connecting) and restore on dispose.
 *
 * @module
 */

const ENV_KEYS = ["PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR"] as const;

/** A running private PulseAudio daemon. */
export interface Pulse extends AsyncDisposable {
  /** Runtime directory (socket at `<dir>/pulse/native`). */
  readonly runtimeDir: string;
  /** Environment for child processes (paplay, parec, pactl). */
  readonly env: Record<string, string>;
  /** Runs pactl against this daemon; returns stdout. */
  pactl(...args: string[]): Promise<string>;
  /**
   * Starts recording the speaker monitor (s16le mono at `rate`); resolves once data flows.
   * `source` records another one instead (`micfeed.monitor`: what was fed to the microphone).
   */
  recordSpeaker(rate: number, source?: string): Promise<{ stop(): Promise<Int16Array> }>;
  /** Plays a WAV file into the virtual microphone; resolves when paplay finished. */
  playToMic(wavPath: string): Promise<void>;
}

/**
 * The recorder (parec) ended before it was stopped, so the recording is incomplete. This is a
 * failure of the test's sound server, not of the code under test: tests may retry once on it.
 */
export class RecorderExitedError extends Error {
  constructor(source: string, status: Deno.CommandStatus, stderr: string, daemon: string) {
    super(
      `parec on ${source} ended early (code ${status.code}, signal ${status.signal}); ${daemon}` +
        (stderr.trim() ? `; parec said: ${stderr.trim()}` : ""),
    );
    this.name = "RecorderExitedError";
  }
}

/** Is the pulseaudio daemon installed? */
export function havePulse(): boolean {
  try {
    return new Deno.Command("pulseaudio", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Starts the daemon and the virtual devices; `await using pulse = await startPulse()`. */
export async function startPulse(): Promise<Pulse> {
  const runtimeDir = await Deno.makeTempDir({ prefix: "soundsock-pulse-" });
  const socket = `${runtimeDir}/pulse/native`;
  await Deno.mkdir(`${runtimeDir}/pulse`, { recursive: true });
  const env: Record<string, string> = {
    XDG_RUNTIME_DIR: runtimeDir,
    PULSE_RUNTIME_PATH: `${runtimeDir}/pulse`,
    PULSE_SERVER: `unix:${socket}`,
    HOME: runtimeDir, // pulse writes its cookie and config under $HOME
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const daemon = new Deno.Command("pulseaudio", {
    args: [
      "--daemonize=no",
      "--exit-idle-time=-1",
      "--disallow-exit",
      "--system=false",
      "--use-pid-file=no",
      // No real-time scheduling: its RLIMIT_RTTIME watchdog can kill the daemon on a loaded
      // CI machine, and a null sink does not need it.
      "--realtime=no",
      "--high-priority=no",
      "-n", // no default.pa: only what we load
      `--load=module-native-protocol-unix auth-anonymous=1 socket=${socket}`,
      "--log-target=stderr",
      "--log-level=error",
    ],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(daemon.stderr).text();
  let daemonExit: Deno.CommandStatus | undefined;
  daemon.status.then((s) => daemonExit = s);
  const daemonState = () =>
    daemonExit
      ? `pulseaudio had exited (code ${daemonExit.code}, signal ${daemonExit.signal})`
      : "pulseaudio was still running";

  const pactl = async (...args: string[]) => {
    const out = await new Deno.Command("pactl", { args, env, clearEnv: true }).output();
    if (!out.success) {
      throw new Error(`pactl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  };

  const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, Deno.env.get(k)]));
  const dispose = async () => {
    for (const k of ENV_KEYS) {
      const v = saved[k];
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
    try {
      daemon.kill("SIGTERM");
    } catch {
      // already gone
    }
    await daemon.status;
    await stderr.catch(() => "");
    await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
  };

  try {
    // Ready when pactl can talk to it: poll the socket (bounded: 10 s).
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        await pactl("info");
        break;
      } catch (err) {
        if (Date.now() > until) {
          throw new Error(`pulseaudio did not start: ${await Promise.race([stderr, ""])}`, {
            cause: err,
          });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await pactl(
      "load-module",
      "module-null-sink",
      "sink_name=speaker",
      "sink_properties=device.description=Speaker",
    );
    await pactl(
      "load-module",
      "module-null-sink",
      "sink_name=micfeed",
      "sink_properties=device.description=MicFeed",
    );
    await pactl(
      "load-module",
      "module-remap-source",
      "master=micfeed.monitor",
      "source_name=mic",
      "source_properties=device.description=Mic",
    );
    await pactl("set-default-sink", "speaker");
    await pactl("set-default-source", "mic");
  } catch (err) {
    await dispose();
    throw err;
  }
  for (const k of ENV_KEYS) Deno.env.set(k, env[k]!);

  return {
    runtimeDir,
    env,
    pactl,
    async recordSpeaker(rate: number, source = "speaker.monitor") {
      const child = new Deno.Command("parec", {
        args: [
          `--device=${source}`,
          "--format=s16le",
          `--rate=${rate}`,
          "--channels=1",
          "--raw",
          "--latency-msec=20",
        ],
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const parecStderr = new Response(child.stderr).text().catch(() => "");
      let exited: Deno.CommandStatus | undefined;
      const status = child.status.then((s) => exited = s);
      const chunks: Uint8Array[] = [];
      const reader = child.stdout.getReader();
      // Resolve only once the monitor stream really delivers data (streams start late).
      const first = await reader.read();
      if (first.done) {
        await status;
        throw new RecorderExitedError(source, exited!, await parecStderr, daemonState());
      }
      chunks.push(first.value);
      const pump = (async () => {
        for (;;) {
          const r = await reader.read();
          if (r.done) return;
          chunks.push(r.value);
        }
      })();
      return {
        async stop() {
          const early = exited;
          if (!early) child.kill("SIGTERM");
          await pump;
          await status;
          if (early) {
            throw new RecorderExitedError(source, early, await parecStderr, daemonState());
          }
          const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
          let o = 0;
          for (const c of chunks) {
            bytes.set(c, o);
            o += c.length;
          }
          return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
        },
      };
    },
    async playToMic(wavPath: string) {
      const out = await new Deno.Command("paplay", {
        args: ["--device=micfeed", wavPath],
        env,
        clearEnv: true,
      }).output();
      if (!out.success) throw new Error(`paplay: ${new TextDecoder().decode(out.stderr)}`);
    },
    [Symbol.asyncDispose]: dispose,
  };
}

/**
 * Runs a recording test body, once more if the recorder (not the code under test) died: see
 * {@linkcode RecorderExitedError}. Any other failure, and a second recorder death, fail the test.
 */
export async function retryIfRecorderExited(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!(err instanceof RecorderExitedError)) throw err;
    Deno.stderr.writeSync(new TextEncoder().encode(`${err.message}; running the test once more\n`));
    await body();
  }
}
