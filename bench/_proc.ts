/**
 * What the fan-out benchmarks read from Linux /proc: a process's CPU time and RSS, the whole
 * machine's busy time, and stopping a child politely then firmly.
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
