/**
 * What the fan-out benchmarks read from Linux /proc: a process's CPU time and RSS, the whole
 * machine's busy time, reading a child's output line by line, and stopping a child politely
 * then firmly; and the small helpers the fan-out benchmarks share (ports, open-files limit).
 *
 * @module
 */

/** sysconf(_SC_CLK_TCK) on Linux x86-64: /proc/PID/stat counts CPU time in these ticks. */
export const CLK_TCK = 100;

/** CPU seconds (user + system) and resident memory of one process. */
export interface ProcSample {
  cpuS: number;
  rssKiB: number;
}

/** Reads `/proc/PID/stat` (utime, stime) and `/proc/PID/status` (VmRSS). */
export function sampleProcess(pid: number): ProcSample {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { cpuS: ticks / CLK_TCK, rssKiB: rss };
}

/**
 * write(2)-family system calls a process made (`syscw` of /proc/PID/io; send(2)/sendto(2) on
 * sockets are not counted, so this counts icecast2's writes but not Deno's), or NaN.
 */
export function writeSyscalls(pid: number): number {
  try {
    const io = Deno.readTextFileSync(`/proc/${pid}/io`);
    return Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** [busy, total] jiffies of all CPUs (/proc/stat); diff two samples for a busy fraction. */
export function machineBusy(): [number, number] {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3]! + v[4]!;
  const total = v.reduce((a, b) => a + b, 0);
  return [total - idle, total];
}

/** SIGTERM, then SIGKILL after 5 s (reported through `say`). */
export async function stopProcess(
  child: Deno.ChildProcess | undefined,
  say: (text: string) => void,
): Promise<void> {
  if (!child) return;
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const killer = setTimeout(() => {
    say(`pid ${child.pid} ignored SIGTERM for 5 s: SIGKILL`);
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 5000);
  await child.status;
  clearTimeout(killer);
}

/** Reads the lines of a child's stdout or stderr, and waits for one that matches. */
export class Lines {
  #buf = "";
  #waiters: ((line: string) => void)[] = [];
  #queue: string[] = [];
  closed = false;
  constructor(stream: ReadableStream<Uint8Array>, onLine?: (line: string) => void) {
    (async () => {
      const dec = new TextDecoder();
      for await (const chunk of stream) {
        this.#buf += dec.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = this.#buf.indexOf("\n")) >= 0) {
          const line = this.#buf.slice(0, nl);
          this.#buf = this.#buf.slice(nl + 1);
          onLine?.(line);
          const w = this.#waiters.shift();
          if (w) w(line);
          else this.#queue.push(line);
        }
      }
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w("");
    })().catch(() => (this.closed = true));
  }
  /** Next line matching `pred`, within `ms`. */
  async next(pred: (line: string) => boolean, ms: number, what: string): Promise<string> {
    const deadline = performance.now() + ms;
    for (;;) {
      const i = this.#queue.findIndex(pred);
      if (i >= 0) return this.#queue.splice(i, 1)[0]!;
      this.#queue.length = 0;
      const left = deadline - performance.now();
      if (left <= 0 || this.closed) throw new Error(`timed out waiting for ${what}`);
      const line = await new Promise<string | null>((resolve) => {
        const t = setTimeout(() => resolve(null), left);
        this.#waiters.push((l) => {
          clearTimeout(t);
          resolve(l);
        });
      });
      if (line === null) throw new Error(`timed out waiting for ${what}`);
      if (pred(line)) return line;
    }
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The median of `xs` (the mean of the middle two for an even count); NaN when empty. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `x` with `digits` decimals, or "—" when it is not a finite number. */
export function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "—";
}

/** A free TCP port on 127.0.0.1 (bound and released; a server takes it next). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs `cmd` with the open-files limit raised as far as allowed (exec keeps the pid). */
export function withNoFile(
  cmd: string,
  cmdArgs: string[],
  options: Deno.CommandOptions,
): Deno.Command {
  return new Deno.Command("bash", {
    ...options,
    args: [
      "-c",
      'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
      "bash",
      cmd,
      ...cmdArgs,
    ],
  });
}

/**
 * Samples a process's RSS every `everyMs` until {@linkcode RssSampler.stop}: a mean over a
 * window says more than one sample, which lands anywhere in V8's garbage-collection cycle
 * (one end-of-window sample of tls-server varied 79–164 KiB per listener between runs).
 */
export class RssSampler {
  #sum = 0;
  #count = 0;
  #max = 0;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #pid: number;

  /** Starts sampling `pid` now. */
  constructor(pid: number, everyMs = 250) {
    this.#pid = pid;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  #sample(): void {
    try {
      const kib = sampleProcess(this.#pid).rssKiB;
      this.#sum += kib;
      this.#count++;
      this.#max = Math.max(this.#max, kib);
    } catch { /* gone */ }
  }

  /** Stops; the mean and the largest RSS seen, in KiB. */
  stop(): { meanKiB: number; maxKiB: number } {
    clearInterval(this.#timer);
    this.#sample();
    return { meanKiB: this.#sum / Math.max(1, this.#count), maxKiB: this.#max };
  }
}

/** `run -A SCRIPT --role ROLE --NAME VALUE …`: the `deno` arguments of a role process. */
export function roleArgs(
  script: string,
  role: string,
  options: Record<string, string | number>,
): string[] {
  const flags = Object.entries(options).flatMap(([name, value]) => [`--${name}`, String(value)]);
  return ["run", "-A", script, "--role", role, ...flags];
}

/**
 * A child process of a benchmark in one of its roles (e.g. `--role listeners`): driven by
 * command lines on its stdin (`start`, `stop`, `quit`), answering with JSON lines on stdout.
 */
export class RoleProcess {
  /** The child. */
  readonly child: Deno.ChildProcess;
  /** Its stdout, line by line. */
  readonly out: Lines;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;

  /** Spawns `command` (stdin and stdout must be piped). */
  constructor(command: Deno.Command) {
    this.child = command.spawn();
    this.out = new Lines(this.child.stdout);
    this.#stdin = this.child.stdin.getWriter();
  }

  /** Sends one command line. */
  async tell(cmd: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(cmd + "\n"));
  }

  /** The next JSON line whose `event` is `event`, parsed, within `ms`. */
  async expect<T = Record<string, unknown>>(event: string, ms: number, what: string): Promise<T> {
    return JSON.parse(await this.out.next((l) => l.includes(`"${event}"`), ms, what));
  }

  /** Says `quit` and waits for the exit; SIGKILL after 10 s. */
  async stop(): Promise<void> {
    await this.tell("quit").catch(() => {});
    const killer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.child.status;
    clearTimeout(killer);
  }
}

/** What a role process does on each command of its parent (see {@linkcode RoleProcess}). */
export interface RoleCommands {
  /** Open the measurement window (reset the counters). */
  start(): void;
  /** Close it and print the window's JSON line. */
  stop(): void;
  /** Close everything and exit. */
  quit(): void | Promise<void>;
}

/** The child side of {@linkcode RoleProcess}: runs `commands` for each line of stdin. */
export async function serveRoleCommands(commands: RoleCommands): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const cmd = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (cmd === "start") commands.start();
      else if (cmd === "stop") commands.stop();
      else if (cmd === "quit") await commands.quit();
    }
  }
}
