// Fails when src/api/schema.d.ts is not exactly what openapi-typescript makes from openapi.json, so the
// UI's API types can never drift from the gateway's schema (the Makefile checks openapi.json itself).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const committed = "src/api/schema.d.ts";
const dir = mkdtempSync(join(tmpdir(), "api-types-"));
try {
  const fresh = join(dir, "schema.d.ts");
  execFileSync("npx", ["--no-install", "openapi-typescript", "openapi.json", "-o", fresh], { stdio: "pipe" });
  if (readFileSync(fresh, "utf8") !== readFileSync(committed, "utf8")) {
    console.error(`${committed} differs from openapi.json: run 'npm run gen:api' and commit the result`);
    process.exit(1);
  }
  console.log(`${committed} matches openapi.json`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
