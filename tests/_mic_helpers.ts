/**
 * mic-broadcast as a user runs it, for the tests: spawned from the repo root with `--ready-json`
 * (its first stdout line gives the ports).
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url).pathname;

/** A running mic-broadcast (see {@linkcode spawnBroadcast}). */
export interface BroadcastProcess extends AsyncDisposable {
  /** Its `--ready-json` line. */
  ready: { udpPort?: number; tlsPort?: number };
  /** Stops it with SIGINT; resolves to its exit status and everything it wrote on stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
  /** Kills it at once (SIGKILL) if it still runs. */
  kill(): void;
}

/**
 * Starts `cmd/mic_broadcast.ts --ready-json ARGS` (children inherit Deno.env, e.g. a test
 * PulseAudio's PULSE_SERVER); resolves once it is ready. Dispose stops it (SIGINT) and waits.
 */
export async function spawnBroadcast(args: string[]): Promise<BroadcastProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cmd/mic_broadcast.ts`, "--ready-json", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = AbortSignal.timeout(20_000);
  try {
    while (!text.includes("\n")) {
      if (deadline.aborted) throw new Error(`mic-broadcast did not start: ${text}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`mic-broadcast exited: ${await stderr}`);
      text += value;
    }
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    throw error;
  }
  void reader.cancel().catch(() => {});
  const signal = (s: Deno.Signal) => {
    try {
      child.kill(s);
    } catch { /* exited */ }
  };
  return {
    ready: JSON.parse(text.split("\n")[0]!),
    async stop() {
      signal("SIGINT");
      const { code } = await child.status;
      return { code, stderr: await stderr };
    },
    kill: () => signal("SIGKILL"),
    async [Symbol.asyncDispose]() {
      signal("SIGINT");
      await child.status;
      await stderr;
    },
  };
}
