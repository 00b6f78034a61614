// Builds the model pages into the Python package: src/main.tsx -> plugins/airflow_mlops/ui/static/app.js,
// src/app.css -> app.css. `node build.mjs --check` builds in memory and fails when the committed
// files differ from what the pinned sources and lock file give (tests/unit/ui/test_bundle.py runs it).
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "plugins", "airflow_mlops", "ui", "static");
const check = process.argv.includes("--check");

const result = await build({
  entryPoints: [join(here, "src", "main.tsx")],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  write: false,
  logLevel: "warning",
});
const files = {
  "app.js": result.outputFiles[0].text,
  "app.css": readFileSync(join(here, "src", "app.css"), "utf8"),
};
let stale = [];
for (const [name, text] of Object.entries(files)) {
  const target = join(out, name);
  if (check) {
    let committed = "";
    try { committed = readFileSync(target, "utf8"); } catch { committed = ""; }
    if (committed !== text) stale.push(name);
  } else {
    writeFileSync(target, text);
    console.log(`${target}: ${text.length} bytes`);
  }
}
if (stale.length) {
  console.error(`stale bundle: ${stale.join(", ")} differ from frontend/src; run: cd frontend && npm ci && npm run build`);
  process.exit(1);
}
