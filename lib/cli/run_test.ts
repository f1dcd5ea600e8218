import { assertEquals } from "@std/assert";
import { ListenError } from "../net/listen_error.ts";
import type { CommandSpec } from "./flags.ts";
import { Output } from "./output.ts";
import { Interrupts, reportError, SIGNAL_GRACE_MS } from "./run.ts";

Deno.test("Interrupts: one Ctrl+C delivered twice stops once; a later one forces", () => {
  const i = new Interrupts();
  assertEquals(i.next(1000), "stop");
  // deno task forwards the terminal's SIGINT: the copy arrives within a millisecond.
  assertEquals(i.next(1000.6), "ignore");
  assertEquals(i.next(1000 + SIGNAL_GRACE_MS - 1), "ignore");
  assertEquals(i.next(1000 + SIGNAL_GRACE_MS), "force");
  assertEquals(i.next(5000), "force");
});

Deno.test("Interrupts with no grace forces on the second signal", () => {
  const i = new Interrupts(0);
  assertEquals(i.next(0), "stop");
  assertEquals(i.next(0), "force");
});

class CapturedOutput extends Output {
  readonly errors: string[] = [];
  override error(text: string): void {
    this.errors.push(text);
  }
}

const serverSpec = {
  name: "some-server",
  summary: "a server",
  flags: { port: { type: "number", default: 0, description: "port" } },
} as unknown as CommandSpec;

Deno.test("reportError adds the --port fix to a ListenError only", () => {
  const out = new CapturedOutput("quiet", false);
  const inUse = new ListenError("listen on 127.0.0.1:8443", new Deno.errors.AddrInUse("x"));
  assertEquals(reportError(new Error("wrapped", { cause: inUse }), serverSpec, out), 1);
  assertEquals(
    out.errors[0],
    "wrapped (is another some-server running? Stop it, or choose another --port; --port 0 " +
      "takes any free one)",
  );
  // A permission problem that is not about listening (an unreadable key file) gets no port hint.
  const unreadable = new Error("Cannot read the server private key", {
    cause: new Deno.errors.PermissionDenied("denied"),
  });
  reportError(unreadable, serverSpec, out);
  assertEquals(out.errors[1], "Cannot read the server private key");
});
