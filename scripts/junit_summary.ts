/**
 * Prints the plain closing line CI reads — `N passed, N failed, N skipped` — from the JUnit
 * report `deno test --junit-path` wrote, so a run that executed no test is visible as
 * `0 passed`. Exits 1 if the report is missing or counts a failure.
 *
 * Usage: deno run --allow-read scripts/junit_summary.ts REPORT.xml
 *
 * @module
 */

const path = Deno.args[0];
if (!path) {
  Deno.stderr.writeSync(new TextEncoder().encode("usage: junit_summary.ts REPORT.xml\n"));
  Deno.exit(2);
}
let xml: string;
try {
  xml = await Deno.readTextFile(path);
} catch (error) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(`error: cannot read ${path}: ${(error as Error).message}\n`),
  );
  Deno.exit(1);
}
let passed = 0;
let failed = 0;
let skipped = 0;
// Each <testcase ...> element ends with "/>" or "</testcase>"; look inside for <failure|error|skipped.
for (const m of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const body = m[2] ?? "";
  if (/<(failure|error)\b/.test(body)) failed++;
  else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
const line = `${passed} passed, ${failed} failed, ${skipped} skipped`;
Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
Deno.exit(failed > 0 || passed === 0 ? 1 : 0);
