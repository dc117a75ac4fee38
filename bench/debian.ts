// The bench runs on a fresh Debian machine with one command: what it needs from Debian comes in here, as
// scripts/test.sh does for the tests (root, or sudo without a password).
import { spawnSync } from "node:child_process";

/** Debian package -> a command that succeeds once it is installed. */
const NEEDS: Record<string, string> = {
  ffmpeg: "command -v ffmpeg && command -v ffprobe",
  chromium: "test -x /usr/bin/chromium",
  janus: "command -v janus",
  gcc: "command -v gcc",
  // The one-node Swift that bench/storage.ts runs as its S3 server (test/helpers/swift.ts).
  "swift-proxy": "test -x /usr/bin/swift-proxy-server",
  "swift-object": "test -x /usr/bin/swift-object-server",
  "swift-container": "test -x /usr/bin/swift-container-server",
  "swift-account": "test -x /usr/bin/swift-account-server",
};

export function ensureDebianPackages(packages: (keyof typeof NEEDS)[]): void {
  const missing = packages.filter((p) => spawnSync("sh", ["-c", NEEDS[p]!], { stdio: "ignore" }).status !== 0);
  if (missing.length === 0) return;
  const sudo = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  console.log(`installing Debian packages: ${missing.join(" ")}`);
  for (const args of [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...missing]]) {
    const cmd = [...sudo, ...args];
    const r = spawnSync(cmd[0]!, cmd.slice(1), { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed`);
  }
}
