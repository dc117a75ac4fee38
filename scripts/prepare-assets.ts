// Puts the unmodified Web SDK bundle where the Player page loads it (/vendor/flashphoner.js). The copy is not in
// git (edge/public/vendor/ is ignored): it always matches the installed @flashphoner/websdk.
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const SDK_BUNDLE_SOURCE = path.join(ROOT, "node_modules", "@flashphoner", "websdk", "flashphoner.js");
export const SDK_BUNDLE_TARGET = path.join(ROOT, "edge", "public", "vendor", "flashphoner.js");

/** Copies the SDK bundle unless an identical copy is already there. Safe to call concurrently. */
export async function prepareAssets(): Promise<{ copied: boolean }> {
  let source: Buffer;
  try {
    source = await fs.readFile(SDK_BUNDLE_SOURCE);
  } catch {
    throw new Error(`${SDK_BUNDLE_SOURCE} is missing: run npm ci`);
  }
  const existing = await fs.readFile(SDK_BUNDLE_TARGET).catch(() => null);
  // Rewriting an identical file would still make a running `wrangler dev` reload its assets.
  if (existing?.equals(source)) return { copied: false };
  await fs.mkdir(path.dirname(SDK_BUNDLE_TARGET), { recursive: true });
  // Write then rename: wrangler dev and parallel test files must never see a half-written bundle.
  const tmp = `${SDK_BUNDLE_TARGET}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, source);
  await fs.rename(tmp, SDK_BUNDLE_TARGET);
  return { copied: true };
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const { copied } = await prepareAssets();
  console.log(copied ? `copied the Web SDK bundle to ${path.relative(ROOT, SDK_BUNDLE_TARGET)}` : "Web SDK bundle is up to date");
}
