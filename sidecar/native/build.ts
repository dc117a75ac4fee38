// Builds the native media send (srtp-send.c) at `npm ci`: one `cc` call against the N-API and OpenSSL headers the
// `node` npm package ships, no download, no node-gyp (it wants python and a header tarball). It never fails the
// install: without a compiler or headers the sidecar logs that and sends from JS.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ADDON_PATH = path.join(here, "build", "srtp-send.node");

/** The header tree of the running Node (include/node beside its bin/), or Debian's. */
function includeDir(): string | undefined {
  const candidates = [path.resolve(path.dirname(process.execPath), "..", "include", "node"), "/usr/include/node"];
  return candidates.find((d) => fs.existsSync(path.join(d, "node_api.h")) && fs.existsSync(path.join(d, "openssl", "evp.h")));
}

export function buildAddon(log: (line: string) => void = console.log): boolean {
  const include = includeDir();
  if (!include) {
    log("edge-vod native send: no Node headers with OpenSSL found; the sidecar will send from JS");
    return false;
  }
  const cc = process.env.CC || "cc";
  fs.mkdirSync(path.dirname(ADDON_PATH), { recursive: true });
  const tmp = `${ADDON_PATH}.${process.pid}.tmp`;
  try {
    execFileSync(
      cc,
      [
        ...["-O2", "-fPIC", "-shared", "-std=gnu11", "-Wall", "-Wno-unused-parameter"],
        "-DNODE_GYP_MODULE_NAME=srtp_send",
        `-I${include}`,
        path.join(here, "srtp-send.c"),
        "-o",
        tmp,
      ],
      { stdio: ["ignore", "inherit", "pipe"] },
    );
    // Renamed into place so a sidecar loading it never sees half a file.
    fs.renameSync(tmp, ADDON_PATH);
    log(`edge-vod native send: built ${path.relative(process.cwd(), ADDON_PATH)}`);
    return true;
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const e = err as { stderr?: Buffer; message: string };
    log(`edge-vod native send: build failed (${(e.stderr?.toString().split("\n").find((l) => l.includes("error")) || e.message).slice(0, 300)}); the sidecar will send from JS`);
    return false;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildAddon();
  process.exitCode = 0;
}
