// Generates the Fleet API's TypeScript (messages and the service descriptor
// connect-web calls) from proto/ with Debian's protoc and protoc-gen-es, into
// src/gen/ (not committed: proto/ is the one source of the API).
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const webUi = join(dirname(fileURLToPath(import.meta.url)), "..");
const protoRoot = join(webUi, "..", "proto");
const out = join(webUi, "src", "gen");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
try {
  execFileSync(
    "protoc",
    [
      `--proto_path=${protoRoot}`,
      `--plugin=protoc-gen-es=${join(webUi, "node_modules", ".bin", "protoc-gen-es")}`,
      `--es_out=${out}`,
      "--es_opt=target=ts,import_extension=none",
      "threadfleet/board/v1/board.proto",
      "threadfleet/fleet/v1/fleet.proto",
    ],
    { stdio: "inherit" },
  );
} catch (e) {
  console.error(`gen-api: protoc failed (${e.message}); is protobuf-compiler installed (deploy/bootstrap)?`);
  process.exit(1);
}
