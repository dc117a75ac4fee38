// The floor of sending to viewers from Node: SRTP + UDP send alone, no WebRTC stack, no file reading. N viewers each
// get 1 Mbps 30 fps video (110 packets/s of 1200 bytes) + Opus (50 packets/s of 160 bytes), paced in real time by one
// 10 ms timer, from one socket per viewer to UDP sinks on 127.0.0.1 in another process that only counts.
// Each (viewers, path) runs in a fresh sender process (forked, so JIT and GC state of one path do not leak into the
// next); its CPU is process.cpuUsage() in that process (all its threads: main, GC, libuv) between a snapshot after a
// 1 s warm-up and one right after the last tick's work. On loopback the system part includes the kernel's delivery
// to the sink socket, which a real NIC would not cost the sender.
//
// Paths:
//   werift            werift's SrtpSession.encrypt per packet + unconnected dgram send per packet
//   fast              SrtpProtector.protectInto per packet + unconnected send
//   fast-batch        SrtpProtector.protectBatch of a viewer's packets due in a tick + connected socket send
//   native            the sidecar's native send (SendBatch): a viewer's packets of a tick protected in C and sent by
//                     one sendmmsg on its connected socket, each frame's packets as one UDP GSO datagram
//   native-sendmmsg   the same without GSO (one datagram per packet in the sendmmsg)
//   native-gcm        native, AEAD AES-128-GCM instead of AES-CM + HMAC-SHA1
// Also a micro-benchmark of the protect step alone (no sockets).
import { fork, spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import dgram from "node:dgram";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { ProtectionProfileAes128CmHmacSha1_80, RtpHeader, SrtpSession } from "werift";
import { writeRtpHeader } from "../sidecar/src/rtp/rtp-header.ts";
import { SrtpProtector } from "../sidecar/src/rtp/srtp-protect.ts";
import { nativeAddon } from "../sidecar/src/native/addon.ts";
import { NativeSrtp } from "../sidecar/src/native/native-srtp.ts";
import { SendBatch, type NativeTarget } from "../sidecar/src/native/send-batch.ts";
import { deriveSessionKeys } from "../sidecar/src/rtp/srtp-protect.ts";
import { connectedFdOf, connectedSender } from "../sidecar/src/webrtc/connected-socket.ts";
import { isMain } from "./is-main.ts";

export type FloorPath = "werift" | "fast" | "fast-batch" | "native" | "native-sendmmsg" | "native-gcm";
const isNative = (p: FloorPath) => p.startsWith("native");

export interface FloorResult {
  /** loopback, or veth (the sinks behind a veth pair in a namespace of their own). */
  network: "loopback" | "veth";
  viewers: number;
  path: FloorPath;
  /** Sender CPU (user + system) per packet sent in the window. */
  usPerPacket: number;
  /** The system (kernel) part of usPerPacket. */
  usSystemPerPacket: number;
  /** 1e6 / (usPerPacket * 160): viewers one core could feed at 160 packets/s each. */
  viewersPerCore: number;
  /** Sender CPU in the window, % of one core; near 100 means it did not keep up and sent late. */
  cpuPercent: number;
  /** Packets sent in the window, and what the window called for. */
  packets: number;
  scheduled: number;
}

const TICK_MS = 10;
const VIDEO_BYTES = 1200;
const AUDIO_BYTES = 160;
/** 110 video packets/s at 30 fps: frames of 4, 4, 3 packets. */
const FRAME_PACKETS = [4, 4, 3];
const FRAME_MS = 1000 / 30;
const AUDIO_MS = 20;
const PACKETS_PER_VIEWER_SECOND = 160;
const SINKS = 4;
/** Where the sender binds and where the sinks listen: loopback, or the two ends of the bench's veth pair. */
let LOCAL = "127.0.0.1";
let HOST = "127.0.0.1";

/** Counts datagrams on a few loopback ports; a plain-JS child so its CPU is not the sender's. */
const SINK_SOURCE = `
const dgram = require("node:dgram");
const n = Number(process.argv[1]);
const host = process.argv[2];
let count = 0;
const socks = [];
let ready = 0;
for (let i = 0; i < n; i++) {
  const s = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
  s.on("message", () => { count++; });
  s.bind(0, host, () => { if (++ready === n) process.send({ ports: socks.map((x) => x.address().port) }); });
  socks.push(s);
}
process.on("message", (m) => { if (m === "count") process.send({ count }); });
process.on("disconnect", () => process.exit(0));
`;

async function startSinks(net: Net): Promise<{ ports: number[]; count(): Promise<number>; close(): void }> {
  const argv = [process.execPath, "-e", SINK_SOURCE, String(SINKS), net.remote];
  const [cmd, ...args] = net.namespace ? ["ip", "netns", "exec", net.namespace, ...argv] : argv;
  const child: ChildProcess = spawn(cmd!, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const [first] = (await once(child, "message")) as [{ ports: number[] }];
  return {
    ports: first.ports,
    async count() {
      child.send("count");
      const [m] = (await once(child, "message")) as [{ count: number }];
      return m.count;
    },
    close: () => child.disconnect(),
  };
}

interface Viewer {
  sock: dgram.Socket;
  port: number;
  werift: SrtpSession;
  fast: SrtpProtector;
  videoHeader: RtpHeader;
  audioHeader: RtpHeader;
  videoSsrc: number;
  audioSsrc: number;
  videoSeq: number;
  audioSeq: number;
  frame: number;
  nextVideoMs: number;
  nextAudioMs: number;
  /** Protected packets of the current tick, back to back; reused every tick. */
  out: Buffer;
  ends: Uint32Array;
  /** Native paths: the viewer's target for the shared batch, and its own header buffer. */
  target: NativeTarget | undefined;
  header: Buffer;
}

let nativeBatch: SendBatch | undefined;

function randomKeys() {
  return {
    localMasterKey: crypto.randomBytes(16),
    localMasterSalt: crypto.randomBytes(14),
    remoteMasterKey: crypto.randomBytes(16),
    remoteMasterSalt: crypto.randomBytes(14),
  };
}

async function makeViewer(port: number, connected: boolean, path: FloorPath): Promise<Viewer> {
  const sock = dgram.createSocket({ type: "udp4", sendBufferSize: 1 << 20 });
  await new Promise<void>((resolve) => sock.bind(0, LOCAL, resolve));
  if (connected) await new Promise<void>((resolve) => sock.connect(port, HOST, resolve));
  const keys = randomKeys();
  let target: NativeTarget | undefined;
  if (isNative(path)) {
    const derived = deriveSessionKeys(keys.localMasterKey, keys.localMasterSalt);
    const srtp = new NativeSrtp(path === "native-gcm" ? "aead-aes-128-gcm" : "aes-cm-128-hmac-sha1-80", derived);
    if (path === "native-sendmmsg") nativeAddon!.disableGso(srtp.ctx);
    // As the sidecar does it: connectedSender connects the socket, the batch sends on its fd.
    const send = connectedSender({ socket: sock, send: () => {} }, HOST, port);
    while (connectedFdOf(sock).fd() < 0) await sleep(5);
    const { fd, queued } = connectedFdOf(sock);
    target = { srtp, fd, queued, sendQueued: (d) => void send(d) };
  }
  const videoSsrc = crypto.randomInt(2 ** 32);
  const audioSsrc = crypto.randomInt(2 ** 32);
  return {
    sock,
    port,
    werift: new SrtpSession({ keys, profile: ProtectionProfileAes128CmHmacSha1_80 }),
    fast: new SrtpProtector(keys.localMasterKey, keys.localMasterSalt),
    videoHeader: new RtpHeader({ payloadType: 96, ssrc: videoSsrc }),
    audioHeader: new RtpHeader({ payloadType: 111, ssrc: audioSsrc }),
    videoSsrc,
    audioSsrc,
    videoSeq: crypto.randomInt(0x10000),
    audioSeq: crypto.randomInt(0x10000),
    frame: 0,
    // Viewers are at different places in their files: spread their frame and audio times.
    nextVideoMs: Math.random() * FRAME_MS,
    nextAudioMs: Math.random() * AUDIO_MS,
    out: Buffer.alloc(64 * 1024),
    ends: new Uint32Array(64),
    target,
    header: Buffer.alloc(12),
  };
}

/** Plain RTP packets of the tick being sent, headers written into preallocated buffers; payloads shared by all. */
const videoPayload = crypto.randomBytes(VIDEO_BYTES - 12);
const audioPayload = crypto.randomBytes(AUDIO_BYTES - 12);
const videoPool: Buffer[] = [];
const audioPool: Buffer[] = [];
const batch: Buffer[] = [];
function plain(n: number, video: boolean): Buffer {
  const pool = video ? videoPool : audioPool;
  let b = pool[n];
  if (!b) {
    b = pool[n] = Buffer.alloc(video ? VIDEO_BYTES : AUDIO_BYTES);
    (video ? videoPayload : audioPayload).copy(b, 12);
  }
  return (batch[n] = b);
}

/** Packets emitted for the viewer being served this tick, and where its protected packets have got to in v.out. */
let tickPackets = 0;
let tickOffset = 0;

function emit(v: Viewer, path: FloorPath, video: boolean, marker: boolean, ts: number): void {
  const seq = video ? v.videoSeq++ & 0xffff : v.audioSeq++ & 0xffff;
  if (path === "werift") {
    const h = video ? v.videoHeader : v.audioHeader;
    h.sequenceNumber = seq;
    h.timestamp = ts >>> 0;
    h.marker = marker;
    v.sock.send(v.werift.encrypt(video ? videoPayload : audioPayload, h), v.port, HOST);
  } else if (isNative(path)) {
    writeRtpHeader(v.header, video ? 96 : 111, marker, seq, ts >>> 0, video ? v.videoSsrc : v.audioSsrc);
    nativeBatch!.append(v.target!, v.header, video ? videoPayload : audioPayload);
  } else {
    const p = plain(tickPackets, video);
    writeRtpHeader(p, video ? 96 : 111, marker, seq, ts >>> 0, video ? v.videoSsrc : v.audioSsrc);
    if (path === "fast") {
      const len = v.fast.protectInto(p, p.length, v.out, tickOffset);
      v.sock.send(v.out, tickOffset, len, v.port, HOST);
      tickOffset += len;
    }
  }
  tickPackets++;
}

/** Sends what is due for one viewer by `nowMs`; returns packets sent. */
function sendDue(v: Viewer, nowMs: number, path: FloorPath): number {
  tickPackets = 0;
  tickOffset = 0;
  while (v.nextVideoMs <= nowMs) {
    const k = FRAME_PACKETS[v.frame % FRAME_PACKETS.length]!;
    const ts = Math.round(v.nextVideoMs * 90);
    for (let i = 0; i < k; i++) emit(v, path, true, i === k - 1, ts);
    v.frame++;
    v.nextVideoMs += FRAME_MS;
  }
  while (v.nextAudioMs <= nowMs) {
    emit(v, path, false, false, Math.round(v.nextAudioMs * 48));
    v.nextAudioMs += AUDIO_MS;
  }
  const n = tickPackets;
  if (path === "fast-batch" && n > 0) {
    if (v.ends.length < n) v.ends = new Uint32Array(n * 2);
    if (v.out.length < n * (VIDEO_BYTES + 10)) v.out = Buffer.alloc(n * 2 * (VIDEO_BYTES + 10));
    v.fast.protectBatch(batch, n, v.out, v.ends);
    for (let i = 0, from = 0; i < n; from = v.ends[i++]!) v.sock.send(v.out, from, v.ends[i]! - from);
  }
  if (isNative(path)) nativeBatch!.flush();
  return n;
}

/** Loopback, or a veth pair whose far end (the sinks) is in a network namespace of its own. */
interface Net {
  name: "loopback" | "veth";
  local: string;
  remote: string;
  namespace?: string;
}

const LOOPBACK: Net = { name: "loopback", local: "127.0.0.1", remote: "127.0.0.1" };
export const VETH_NS = "edgevod-bench";
const VETH_LOCAL = "10.213.0.1";
export const VETH_REMOTE = "10.213.0.2";

/**
 * A veth pair to a network namespace (needs root, or CAP_NET_ADMIN): closer to a NIC than loopback, where the
 * receiver's kernel work is charged to the sender. Returns why not, when it cannot be made.
 */
export function makeVeth(): Net | string {
  removeVeth();
  const steps = [
    ["netns", "add", VETH_NS],
    ["link", "add", "evbench0", "type", "veth", "peer", "name", "evbench1"],
    ["link", "set", "evbench1", "netns", VETH_NS],
    ["addr", "add", `${VETH_LOCAL}/24`, "dev", "evbench0"],
    ["link", "set", "evbench0", "up"],
    ["netns", "exec", VETH_NS, "ip", "addr", "add", `${VETH_REMOTE}/24`, "dev", "evbench1"],
    ["netns", "exec", VETH_NS, "ip", "link", "set", "evbench1", "up"],
  ];
  for (const args of steps) {
    const r = spawnSync("ip", args, { encoding: "utf8" });
    if (r.status !== 0) {
      removeVeth();
      return `ip ${args.join(" ")}: ${(r.stderr || r.error?.message || "failed").trim()}`;
    }
  }
  return { name: "veth", local: VETH_LOCAL, remote: VETH_REMOTE, namespace: VETH_NS };
}

export function removeVeth(): void {
  spawnSync("ip", ["link", "del", "evbench0"], { stdio: "ignore" });
  spawnSync("ip", ["netns", "del", VETH_NS], { stdio: "ignore" });
}

interface SenderJob {
  net: Net;
  viewers: number;
  path: FloorPath;
  seconds: number;
  warmupSeconds: number;
  ports: number[];
}

const SENDER_FLAG = "--srtp-floor-sender";

/** One (viewers, path) run, in a sender process of its own. */
async function runSender(job: SenderJob): Promise<FloorResult> {
  const { viewers, path, seconds, warmupSeconds, ports } = job;
  LOCAL = job.net.local;
  HOST = job.net.remote;
  if (isNative(path)) {
    if (!nativeAddon) throw new Error("the native send is not built (npm run build:native)");
    nativeBatch = new SendBatch(nativeAddon);
  }
  const vs = await Promise.all(Array.from({ length: viewers }, (_, i) => makeViewer(ports[i % ports.length]!, path === "fast-batch", path)));
  const t0 = performance.now();
  let sent = 0;
  type Mark = { cpu: NodeJS.CpuUsage; sent: number; ms: number };
  let start: Mark | undefined;
  const end = await new Promise<Mark>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now() - t0;
      if (!start && now >= warmupSeconds * 1000) start = { cpu: process.cpuUsage(), sent, ms: now };
      for (const v of vs) sent += sendDue(v, now, path);
      if (now >= (warmupSeconds + seconds) * 1000) {
        clearInterval(timer);
        resolve({ cpu: process.cpuUsage(), sent, ms: performance.now() - t0 });
      }
    }, TICK_MS);
  });
  await sleep(100);
  for (const v of vs) v.sock.close();
  const user = end.cpu.user - start!.cpu.user;
  const system = end.cpu.system - start!.cpu.system;
  const packets = end.sent - start!.sent;
  const ms = end.ms - start!.ms;
  const usPerPacket = (user + system) / packets;
  return {
    network: job.net.name,
    viewers,
    path,
    usPerPacket,
    usSystemPerPacket: system / packets,
    viewersPerCore: 1e6 / (usPerPacket * PACKETS_PER_VIEWER_SECOND),
    cpuPercent: ((user + system) / (ms * 1000)) * 100,
    packets,
    scheduled: Math.round((viewers * PACKETS_PER_VIEWER_SECOND * ms) / 1000),
  };
}

/** Forks this module as a sender (inheriting the TypeScript loader this process runs with). */
async function forkSender(job: SenderJob): Promise<FloorResult> {
  const child = fork(fileURLToPath(import.meta.url), [SENDER_FLAG, JSON.stringify(job)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = once(child, "exit");
  const [result] = (await Promise.race([once(child, "message"), exited.then(([code]) => Promise.reject(new Error(`sender exited with ${code}`)))])) as [FloorResult];
  child.disconnect();
  await exited;
  return result;
}

/**
 * Sender CPU per packet for each path at each viewer count. Default: 3 s measured after 1 s warm-up per
 * (viewers, path): about 45 s for three counts and three paths.
 */
export async function measureSrtpFloor(opts: {
  viewers: number[];
  seconds?: number;
  paths?: FloorPath[];
  log?: boolean;
  /** Also over a veth pair (default: when it can be made here). */
  veth?: boolean;
}): Promise<{ results: FloorResult[]; vethSkipped?: string }> {
  const seconds = opts.seconds ?? 3;
  const paths = opts.paths ?? ["werift", "fast", "fast-batch", ...(nativeAddon ? (["native-sendmmsg", "native", "native-gcm"] as const) : [])];
  const log = opts.log ?? true;
  const results: FloorResult[] = [];
  const nets: Net[] = [LOOPBACK];
  let vethSkipped: string | undefined;
  if (opts.veth !== false) {
    const veth = makeVeth();
    if (typeof veth === "string") vethSkipped = veth;
    else nets.push(veth);
  }
  try {
    if (log) console.log(floorTableHeader());
    for (const net of nets) {
      const sinks = await startSinks(net);
      try {
        for (const viewers of opts.viewers) {
          for (const path of paths) {
            const before = await sinks.count();
            const r = await forkSender({ net, viewers, path, seconds, warmupSeconds: 1, ports: sinks.ports });
            const received = (await sinks.count()) - before;
            results.push(r);
            if (log) console.log(floorTableRow(r) + (received < r.packets ? `  (the sinks counted only ${received} packets)` : ""));
          }
        }
      } finally {
        sinks.close();
      }
    }
  } finally {
    if (nets.length > 1) removeVeth();
  }
  if (vethSkipped && log) console.log(`(veth not measured: ${vethSkipped})`);
  return { results, ...(vethSkipped ? { vethSkipped } : {}) };
}

function floorTableHeader(): string {
  return [
    "| network | viewers | path | µs sender CPU per packet | of which system | viewers per core | sender CPU | sent / scheduled |",
    "|---|---:|---|---:|---:|---:|---:|---:|",
  ].join("\n");
}

function floorTableRow(r: FloorResult): string {
  return `| ${r.network} | ${r.viewers} | ${r.path} | ${r.usPerPacket.toFixed(2)} | ${r.usSystemPerPacket.toFixed(2)} | ${Math.round(r.viewersPerCore)} | ${r.cpuPercent.toFixed(0)} % | ${((r.packets / r.scheduled) * 100).toFixed(0)} % |`;
}

/**
 * The protect step alone, µs per packet (wall time, one thread), on the same 160 packets/s mix: werift's
 * SrtpSession.encrypt, SrtpProtector.encrypt (the werift-shaped shim), protectInto, protectBatch of 4.
 */
export function measureProtectCost(packets = 200_000): Record<string, number> {
  const keys = randomKeys();
  const werift = new SrtpSession({ keys, profile: ProtectionProfileAes128CmHmacSha1_80 });
  const fast = new SrtpProtector(keys.localMasterKey, keys.localMasterSalt);
  const mix = Array.from({ length: 160 }, (_, i) => i % 16 < 11); // 110 video, 50 audio
  const headers = mix.map((video, i) => new RtpHeader({ payloadType: video ? 96 : 111, ssrc: video ? 1 : 2, sequenceNumber: i, timestamp: i }));
  const payloads = mix.map((video) => (video ? videoPayload : audioPayload));
  const plains = headers.map((h, i) => Buffer.concat([h.serialize(h.serializeSize), payloads[i]!]));
  const out = Buffer.alloc(16 * 1024);
  const ends = new Uint32Array(4);
  const seq = [0, 0];
  const next = (i: number) => {
    const h = headers[i % 160]!;
    h.sequenceNumber = seq[h.ssrc - 1]!++ & 0xffff;
    plains[i % 160]!.writeUInt16BE(h.sequenceNumber, 2);
    return i % 160;
  };
  const time = (fn: (i: number) => void, step = 1): number => {
    for (let i = 0; i < 20_000; i += step) fn(i);
    const t = process.hrtime.bigint();
    for (let i = 0; i < packets; i += step) fn(i);
    return Number(process.hrtime.bigint() - t) / 1000 / packets;
  };
  return {
    "werift SrtpSession.encrypt": time((i) => werift.encrypt(payloads[next(i)]!, headers[i % 160]!)),
    "SrtpProtector.encrypt (shim)": time((i) => fast.encrypt(payloads[next(i)]!, headers[i % 160]!)),
    "SrtpProtector.protectInto": time((i) => {
      const k = next(i);
      fast.protectInto(plains[k]!, plains[k]!.length, out, 0);
    }),
    "SrtpProtector.protectBatch of 4": time((i) => {
      const batch = [plains[next(i)]!, plains[next(i + 1)]!, plains[next(i + 2)]!, plains[next(i + 3)]!];
      fast.protectBatch(batch, 4, out, ends);
    }, 4),
    ...(nativeAddon ? nativeProtectCost(keys, plains, next, out, time) : {}),
  };
}

/** The native protect per packet (an addon call each, a copy in first as the batch does), AES-CM and GCM. */
function nativeProtectCost(
  keys: ReturnType<typeof randomKeys>,
  plains: Buffer[],
  next: (i: number) => number,
  out: Buffer,
  time: (fn: (i: number) => void, step?: number) => number,
): Record<string, number> {
  const derived = deriveSessionKeys(keys.localMasterKey, keys.localMasterSalt);
  const cm = new NativeSrtp("aes-cm-128-hmac-sha1-80", derived);
  const gcm = new NativeSrtp("aead-aes-128-gcm", derived);
  return {
    "native AES-CM + HMAC-SHA1 protect": time((i) => {
      const k = next(i);
      cm.protectInto(plains[k]!, plains[k]!.length, out, 0);
    }),
    "native AES-GCM protect": time((i) => {
      const k = next(i);
      gcm.protectInto(plains[k]!, plains[k]!.length, out, 0);
    }),
  };
}

const senderArg = process.argv.indexOf(SENDER_FLAG);
if (senderArg >= 0) {
  const result = await runSender(JSON.parse(process.argv[senderArg + 1]!) as SenderJob);
  process.send!(result);
  process.once("disconnect", () => process.exit(0));
} else if (isMain(import.meta.url)) {
  console.log("protect step alone, µs per packet (1200-byte video and 160-byte audio, 110:50):");
  for (const [name, us] of Object.entries(measureProtectCost())) console.log(`  ${name.padEnd(34)} ${us.toFixed(2)}`);
  console.log(`\nSRTP + UDP send floor, N viewers × 160 packets/s (usage: srtp-floor.ts [viewers...]):`);
  const viewers = process.argv.slice(2).map(Number).filter((n) => n > 0);
  await measureSrtpFloor({ viewers: viewers.length ? viewers : [50, 200, 400] });
}
