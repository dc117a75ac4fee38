// Janus 1.1 (Debian package `janus`) as the baseline: its streaming plugin serves an RTP mountpoint fed with the bench
// file's packets, and viewers attach through its WebSocket API. Installed and configured here, torn
// down afterwards. Janus never gathers loopback candidates (libnice skips `lo`), so its media goes to the host's own
// address: the kernel still routes that over the loopback device, nothing leaves the machine.
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs/promises";
import path from "node:path";
import type { RTCPeerConnection } from "werift";
import { freePort } from "../../test/helpers/ports.ts";
import { runFeederProcess } from "./rtp-feeder.ts";
import { offerSrtp } from "../../test/helpers/werift-viewer.ts";

const LIB = "/usr/lib/x86_64-linux-gnu/janus";

/**
 * A UDP port free on every address, below the ephemeral range (32768+) and Janus's rtp_port_range: after a climb of
 * hundreds of viewers, a port that was free for TCP was taken for UDP often enough that the mountpoint did not play.
 */
async function freeUdpPort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const free = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "0.0.0.0", () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error("no free UDP port in 20000-29999");
}
const MOUNTPOINT = 1;

export interface JanusServer {
  pid: number;
  wsUrl: string;
  /** The end of Janus's output. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts Janus with only the streaming plugin and the WebSocket transport, and feeds `file` in a loop at real time
 * into its mountpoint. `cpu` pins Janus (taskset), `eventLoops` sets its
 * event_loops (0 = Janus's default of one loop thread per handle).
 */
export async function startJanus(opts: { file: string; dir: string; cpu?: number; feederCpu?: number; eventLoops: number }): Promise<JanusServer> {
  const wsPort = await freePort();
  const [videoPort, audioPort] = [await freeUdpPort(), await freeUdpPort()];
  const conf = path.join(opts.dir, "janus-conf");
  const plugins = path.join(opts.dir, "janus-plugins");
  const transports = path.join(opts.dir, "janus-transports");
  const empty = path.join(opts.dir, "janus-empty");
  for (const d of [conf, plugins, transports, empty]) await fs.mkdir(d, { recursive: true });
  await fs.symlink(`${LIB}/plugins/libjanus_streaming.so`, path.join(plugins, "libjanus_streaming.so")).catch(() => {});
  await fs.symlink(`${LIB}/transports/libjanus_websockets.so`, path.join(transports, "libjanus_websockets.so")).catch(() => {});
  await fs.writeFile(
    path.join(conf, "janus.jcfg"),
    `general: {
  configs_folder = "${conf}"
  plugins_folder = "${plugins}"
  transports_folder = "${transports}"
  events_folder = "${empty}"
  loggers_folder = "${empty}"
  debug_level = 2
  session_timeout = 0
  ${opts.eventLoops > 0 ? `event_loops = ${opts.eventLoops}` : ""}
}
media: {
  rtp_port_range = "40000-60000"
}
nat: {
  ignore_mdns = true
}
`,
  );
  await fs.writeFile(
    path.join(conf, "janus.transport.websockets.jcfg"),
    `general: {
  json = "plain"
  ws = true
  ws_port = ${wsPort}
  ws_ip = "127.0.0.1"
}
admin: {
  admin_ws = false
}
`,
  );
  await fs.writeFile(
    path.join(conf, "janus.plugin.streaming.jcfg"),
    `general: {
}
bench: {
  type = "rtp"
  id = ${MOUNTPOINT}
  description = "bench"
  media = (
    { type = "video", mid = "v", port = ${videoPort}, pt = 96, codec = "h264", fmtp = "profile-level-id=42e01f;packetization-mode=1" },
    { type = "audio", mid = "a", port = ${audioPort}, pt = 111, codec = "opus" }
  )
}
`,
  );
  let log = "";
  const pin = (cpu: number | undefined, argv: string[]) => (cpu === undefined ? argv : ["taskset", "-c", String(cpu), ...argv]);
  const janusArgv = pin(opts.cpu, ["janus", "-F", conf, "-C", path.join(conf, "janus.jcfg")]);
  const janus = spawn(janusArgv[0]!, janusArgv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  janus.stdout!.on("data", (d) => (log = (log + d).slice(-20_000)));
  janus.stderr!.on("data", (d) => (log = (log + d).slice(-20_000)));
  const wsUrl = `ws://127.0.0.1:${wsPort}`;
  for (let i = 0; ; i++) {
    if (janus.exitCode !== null) throw new Error(`janus exited:\n${log}`);
    if (await canConnect(wsUrl)) break;
    if (i > 100) throw new Error(`janus did not come up:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Fed by a process of its own on the viewers' core: the same packets our sidecar sends, paced as precisely.
  const feeder = await runFeederProcess(opts.feederCpu, opts.file, { video: videoPort, audio: audioPort }, { video: 96, audio: 111 });
  return {
    pid: janus.pid!,
    wsUrl,
    log: () => log,
    async stop() {
      await feeder.stop();
      for (const p of [janus]) {
        if (p.exitCode !== null) continue;
        const gone = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        const t = setTimeout(() => p.kill("SIGKILL"), 3000);
        await gone;
        clearTimeout(t);
      }
    },
  };
}

async function canConnect(url: string): Promise<boolean> {
  try {
    const ws = await openSocket(url);
    ws.close();
    return true;
  } catch {
    return false;
  }
}

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "janus-protocol");
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`cannot open ${url}`));
  });
}

type JanusReply = { janus: string; transaction?: string; data?: { id: number }; jsep?: { type: string; sdp: string }; plugindata?: unknown; error?: unknown };

/** One WebSocket to Janus carrying every viewer's session, with request/answer matched by transaction. */
export class JanusClient {
  private next = 0;
  private readonly waiting = new Map<string, { resolve: (r: JanusReply) => void; reject: (e: Error) => void; until: (r: JanusReply) => boolean }>();

  private constructor(private readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as JanusReply;
      const w = msg.transaction ? this.waiting.get(msg.transaction) : undefined;
      if (!w) return;
      if (msg.janus === "error") {
        this.waiting.delete(msg.transaction!);
        w.reject(new Error(`janus: ${JSON.stringify(msg.error)}`));
      } else if (w.until(msg)) {
        this.waiting.delete(msg.transaction!);
        w.resolve(msg);
      }
    };
  }

  static async connect(url: string): Promise<JanusClient> {
    return new JanusClient(await openSocket(url));
  }

  private request(body: Record<string, unknown>, until: (r: JanusReply) => boolean = (r) => r.janus === "success"): Promise<JanusReply> {
    const transaction = `t${++this.next}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(transaction);
        reject(new Error(`janus: no answer to ${JSON.stringify(body)}`));
      }, 20_000);
      this.waiting.set(transaction, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
        until,
      });
      this.ws.send(JSON.stringify({ ...body, transaction }));
    });
  }

  /** Watches the bench mountpoint: Janus offers, `pc` answers. Returns the offer's SDP and a function to hang up. */
  async watch(pc: RTCPeerConnection): Promise<{ offerSdp: string; hangup(): Promise<void> }> {
    const session = (await this.request({ janus: "create" })).data!.id;
    const handle = (await this.request({ janus: "attach", session_id: session, plugin: "janus.plugin.streaming" })).data!.id;
    const ids = { session_id: session, handle_id: handle };
    const offer = await this.request({ janus: "message", ...ids, body: { request: "watch", id: MOUNTPOINT } }, (r) => r.janus === "event" && !!r.jsep);
    await pc.setRemoteDescription({ type: "offer", sdp: offer.jsep!.sdp });
    // What Chromium offers as the DTLS client: Janus's server picks AEAD AES-GCM from it (checked), as from Chromium.
    offerSrtp(pc, "chromium");
    await pc.setLocalDescription(await pc.createAnswer());
    await this.request(
      { janus: "message", ...ids, body: { request: "start" }, jsep: { type: "answer", sdp: pc.localDescription!.sdp } },
      (r) => r.janus === "event",
    );
    return {
      offerSdp: offer.jsep!.sdp,
      hangup: async () => {
        await this.request({ janus: "destroy", session_id: session }).catch(() => {});
      },
    };
  }

  close(): void {
    this.ws.close();
  }
}
