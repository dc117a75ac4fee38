// Debian Firefox ESR driven by puppeteer-core over WebDriver BiDi (never a downloaded browser, no geckodriver).
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import puppeteer, { type Browser, type Page } from "puppeteer-core";

const run = promisify(execFile);

export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? "/usr/bin/firefox-esr";

/** The OpenH264 version written into the plugin's .info file: Debian 12's libopenh264-7. */
const OPENH264_VERSION = "2.3.1";

export interface FirefoxOptions {
  /**
   * Register Debian's OpenH264 as Firefox's H.264 plugin (GMP), so Firefox offers H.264. Stock Firefox downloads that
   * plugin at run time, which an offline machine never does: it then offers VP8, VP9 and AV1 only.
   */
  h264?: boolean;
  /** More prefs, over the defaults below. */
  prefs?: Record<string, unknown>;
}

export interface LaunchedFirefox {
  browser: Browser;
  /** A new tab (60 s default timeouts), with its page errors going to the test's log. */
  newPage(): Promise<Page>;
  /** Closes the browser, kills what is left of it and removes its profile (and plugin) folders. Never throws. */
  close(): Promise<void>;
}

/**
 * Prefs for WebRTC playback in a headless page without a user: autoplay with sound (else the video element stays
 * paused), a fake camera and microphone without a permission prompt, ICE on whatever this host has.
 */
const PREFS: Record<string, unknown> = {
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
  "media.navigator.permission.disabled": true,
  "media.navigator.streams.fake": true,
  // ICE candidates. Without a camera and microphone permission a page gets host candidates of the default-route
  // interface only (Firefox's privacy rule; `media.navigator.permission.disabled` and a fake getUserMedia do not
  // count): measured, eth0's address alone, and in a network namespace with only `lo` none at all (ICE failed).
  // Granting both by default lifts the rule; `loopback` then adds 127.0.0.1 and ::1. Where the host has another
  // address Firefox still picks that pair (its own address: the kernel carries it over `lo`, nothing leaves).
  "permissions.default.camera": 1,
  "permissions.default.microphone": 1,
  "media.peerconnection.ice.loopback": true,
  // Raw host addresses in the candidates, not mDNS .local names.
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  // No default STUN server (stun.services.mozilla.com): nothing leaves the machine.
  "media.peerconnection.default_iceservers": "[]",
  // The plugin is put there by hand (h264), never fetched, and nothing asks for an update.
  "media.gmp-manager.updateEnabled": false,
  "media.gmp-gmpopenh264.autoupdate": false,
  "media.gmp-gmpopenh264.enabled": true,
  "media.gmp-widevinecdm.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
};

/** Where Debian's libopenh264-7 keeps the library (`dpkg -L`), or its usual path. */
async function findOpenH264(): Promise<string> {
  try {
    const { stdout } = await run("dpkg", ["-L", "libopenh264-7"]);
    const lib = stdout.split("\n").find((l) => /\/libopenh264\.so\.7$/.test(l.trim()));
    if (lib) return lib.trim();
  } catch {
    /* not a dpkg system, or not installed: try the usual path */
  }
  const fallback = "/usr/lib/x86_64-linux-gnu/libopenh264.so.7";
  await fs.access(fallback).catch(() => {
    throw new Error("libopenh264.so.7 not found: apt-get install libopenh264-7 (needed for Firefox with h264: true)");
  });
  return fallback;
}

/**
 * A GMP folder as Firefox looks for plugins in MOZ_GMP_PATH: `gmp-gmpopenh264/system-installed/` with the library
 * under the name Firefox loads and the .info file that says what it can do. A copy, not a symlink: the plugin
 * process runs sandboxed and loads the file from this folder.
 */
async function makeOpenH264Plugin(dir: string): Promise<string> {
  const pluginDir = path.join(dir, "gmp-gmpopenh264", "system-installed");
  await fs.mkdir(pluginDir, { recursive: true });
  await fs.copyFile(await findOpenH264(), path.join(pluginDir, "libgmpopenh264.so"));
  await fs.writeFile(
    path.join(pluginDir, "gmpopenh264.info"),
    `Name: gmpopenh264\nDescription: OpenH264 from Debian's libopenh264-7\nVersion: ${OPENH264_VERSION}\nAPIs: encode-video[h264], decode-video[h264]\n`,
  );
  return pluginDir;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Headless Debian Firefox ESR. Call close() in an `after` or `finally`: it always ends the browser. */
export async function launchFirefox(opts: FirefoxOptions = {}): Promise<LaunchedFirefox> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "edge-vod-firefox-"));
  const profileDir = path.join(tmp, "profile");
  await fs.mkdir(profileDir);
  const env: Record<string, string | undefined> = { ...process.env };
  // The developer's own plugins must not decide what the stock browser offers.
  delete env.MOZ_GMP_PATH;
  if (opts.h264) env.MOZ_GMP_PATH = await makeOpenH264Plugin(tmp);

  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      browser: "firefox",
      protocol: "webDriverBiDi",
      executablePath: FIREFOX_PATH,
      headless: true,
      userDataDir: profileDir,
      env,
      extraPrefsFirefox: { ...PREFS, ...opts.prefs },
      // The test runner handles signals; a killed run still leaves no browser behind thanks to close().
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      timeout: 60_000,
    });
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const pid = browser.process()?.pid;

  let closed: Promise<void> | undefined;
  return {
    browser,
    async newPage() {
      const page = await browser.newPage();
      // Generous defaults for unlabelled waits (navigation, selectors): tests share a small machine.
      page.setDefaultTimeout(60_000);
      page.setDefaultNavigationTimeout(60_000);
      page.on("pageerror", (err) => console.log(`firefox page error: ${err instanceof Error ? err.message : String(err)}`));
      return page;
    },
    close() {
      closed ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([browser.close().catch(() => {}), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        // puppeteer starts Firefox in a process group of its own: end that group, content processes and all.
        if (pid !== undefined) {
          for (const target of [-pid, pid]) {
            try {
              process.kill(target, "SIGKILL");
            } catch {
              /* already gone */
            }
          }
          for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
        }
        await fs.rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => {});
      })();
      return closed;
    },
  };
}

/**
 * An init script that keeps every RTCPeerConnection a page makes in `window.__pcs`, so a test can read its stats.
 * A string, not a function: tsx decorates functions with helpers that do not exist in the page.
 */
export const capturePeerConnections = `
  (() => {
    const Original = window.RTCPeerConnection;
    window.__pcs = [];
    const Wrapped = function (...args) { const pc = new Original(...args); window.__pcs.push(pc); return pc; };
    Wrapped.prototype = Original.prototype;
    Object.setPrototypeOf(Wrapped, Original);
    window.RTCPeerConnection = Wrapped;
  })();
`;

/** Sums one counter of the page's RTP stats over every peer connection kept by capturePeerConnections. */
export function rtpStat(page: Page, type: "inbound-rtp" | "outbound-rtp", kind: "audio" | "video", field: string): Promise<number> {
  return page.evaluate(
    async (type, kind, field) => {
      let n = 0;
      for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
        (await pc.getStats()).forEach((s: Record<string, unknown>) => {
          if (s.type === type && s.kind === kind) n += Number(s[field] ?? 0);
        });
      }
      return n;
    },
    type,
    kind,
    field,
  );
}

/**
 * Loads the Player page on `page` for `stream` with capturePeerConnections (and `initScripts`) installed, and waits
 * for the Web SDK to be there.
 */
export async function openPlayer(page: Page, edgeUrl: string, stream: string, initScripts: readonly string[] = []): Promise<Page> {
  for (const script of [capturePeerConnections, ...initScripts]) await page.evaluateOnNewDocument(script);
  await page.goto(`${edgeUrl}/player.html?stream=${encodeURIComponent(stream)}`);
  await page.waitForFunction(() => typeof (window as unknown as { Flashphoner?: unknown }).Flashphoner !== "undefined", {
    timeout: 60_000,
  });
  return page;
}

/** The offer a fresh RTCPeerConnection makes to receive audio and video: what this Firefox can take. */
export function receiveOffer(page: Page): Promise<string> {
  return page.evaluate(async () => {
    const pc = new RTCPeerConnection();
    try {
      // The legacy options, as the Web SDK's own receive-only offer is made.
      return (await pc.createOffer({ offerToReceiveAudio: true, offerToReceiveVideo: true })).sdp ?? "";
    } finally {
      pc.close();
    }
  });
}

/** `a=rtpmap` codec names of the offer's m=video (or m=audio) section, in its order. */
export function offeredCodecs(sdp: string, kind: "audio" | "video"): string[] {
  const section = sdp.split(/\r?\n(?=m=)/).find((s) => s.startsWith(`m=${kind}`)) ?? "";
  return [...section.matchAll(/^a=rtpmap:(\d+) ([^/\r\n]+)/gm)].map((m) => `${m[2]}/${m[1]}`);
}
