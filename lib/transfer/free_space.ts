/**
 * Free space of the filesystem holding a folder. Deno has no `statfs`, so this asks
 * `df -Pk` (POSIX output, 1024-byte blocks) and returns undefined when that fails.
 *
 * @module
 */

/** Bytes available to unprivileged users on the filesystem of `dir`, if known. */
export async function freeSpace(dir: string): Promise<number | undefined> {
  try {
    const out = await new Deno.Command("df", {
      args: ["-Pk", dir],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return undefined;
    const line = new TextDecoder().decode(out.stdout).trim().split("\n")[1] ?? "";
    const available = Number(line.split(/\s+/)[3]);
    return Number.isFinite(available) ? available * 1024 : undefined;
  } catch {
    return undefined;
  }
}
