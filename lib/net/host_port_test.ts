import { assertEquals, assertThrows } from "@std/assert";
import { HostPortError, parseHostPort } from "./host_port.ts";

Deno.test("parseHostPort: every form, with and without the default port", () => {
  assertEquals(parseHostPort("localhost:9000"), { hostname: "localhost", port: 9000 });
  assertEquals(parseHostPort("localhost", 9000), { hostname: "localhost", port: 9000 });
  assertEquals(parseHostPort("10.0.0.7:1234", 8443), { hostname: "10.0.0.7", port: 1234 });
  assertEquals(parseHostPort("[::1]:9000"), { hostname: "::1", port: 9000 });
  assertEquals(parseHostPort("[::1]", 8443), { hostname: "::1", port: 8443 });
  assertEquals(parseHostPort("::1", 8443), { hostname: "::1", port: 8443 });
  assertEquals(parseHostPort(" music.lan:8443 ", 1), { hostname: "music.lan", port: 8443 });
  assertEquals(parseHostPort("h:0", 1, { allowPortZero: true }), { hostname: "h", port: 0 });
});

Deno.test("parseHostPort: a bad address is one clear error", () => {
  for (const bad of ["", ":9000", "localhost:", "h:70000", "h:0", "h:x", "a b:1", "[::1"]) {
    assertThrows(() => parseHostPort(bad, 9000), HostPortError, "is not HOST or HOST:PORT");
  }
  assertThrows(() => parseHostPort("localhost"), HostPortError, "is not HOST:PORT");
});
