// Drives rtp-sink.c (why it is C: see its head): compiles it once per run, hands it each connected viewer's socket,
// feeds werift the datagrams it hands back, and reads the per-viewer counts of a measurement window.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import type dgram from "node:dgram";
import path from "node:path";
import readline from "node:readline";
import type { Readable, Writable } from "node:stream";
import type { RTCPeerConnection } from "werift";
import { dgramStateOf } from "../../sidecar/src/webrtc/connected-socket.ts";
import { ensureDebianPackages } from "../debian.ts";

/** What one viewer saw during a measurement window. */
export interface WindowStats {
  videoPackets: number;
  audioPackets: number;
  /** Packets the sequence numbers say were sent in the window (first to last seen, per stream). */
  videoExpected: number;
  audioExpected: number;
  /** Per video frame (marker packet): kernel receive time minus media time, ms; the smallest is the viewer's offset. */
  frameOffsets: Float64Array;
  frames: number;
}

interface UdpHandle {
  fd: number;
  recvStop(): number;
}

/** The socket's libuv handle. */
function handleOf(socket: dgram.Socket): UdpHandle {
  const handle = dgramStateOf(socket)?.handle as UdpHandle | null | undefined;
  if (!handle || typeof handle.recvStop !== "function" || typeof handle.fd !== "number") throw new Error("no UDP handle on the viewer's socket");
  return handle;
}

/**
 * Every UDP socket of a peer's ICE agents, one per local address: the server sends on the pair it nominated, which
 * need not be the one this side calls nominated.
 */
function udpSockets(pc: RTCPeerConnection): dgram.Socket[] {
  const sockets = new Set<dgram.Socket>();
  for (const dtls of pc.dtlsTransports) {
    const protocols = (dtls.iceTransport.connection as unknown as { protocols: { transport?: { socket?: unknown } }[] }).protocols;
    for (const p of protocols) if (p.transport?.socket && typeof (p.transport.socket as dgram.Socket).send === "function") sockets.add(p.transport.socket as dgram.Socket);
  }
  return [...sockets];
}

export class RtpSink {
  private readonly lines: AsyncIterator<string>;
  /** A viewer's sockets by id; a datagram handed back goes to the one bound to the address it came to. */
  private readonly sockets = new Map<number, dgram.Socket[]>();
  private nextId = 1;
  /** Commands run one at a time: each reads its own reply lines. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly child: ChildProcess) {
    this.lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    this.readForwarded(child.stdio[3] as Readable);
  }

  /** Builds the sink in `dir` (gcc from Debian if missing) and starts it. */
  static async start(dir: string): Promise<RtpSink> {
    ensureDebianPackages(["gcc"]);
    const bin = path.join(dir, "rtp-sink");
    const cc = spawnSync("gcc", ["-O2", "-o", bin, path.join(import.meta.dirname, "rtp-sink.c")], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`building the RTP sink failed:\n${cc.stderr}`);
    const child = spawn(bin, [], { stdio: ["pipe", "pipe", "inherit", "pipe"] });
    return new RtpSink(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** From now on the sink reads the connected peer's media; returns its id in window results. */
  add(pc: RTCPeerConnection, videoPts: ReadonlySet<number>): Promise<number> {
    return this.run(async () => {
      const id = this.nextId++;
      const sockets = udpSockets(pc);
      if (sockets.length === 0) throw new Error("viewer has no UDP socket");
      for (const socket of sockets) {
        const handle = handleOf(socket);
        // Node stops reading before the sink starts: a datagram is read by one of them, never both.
        handle.recvStop();
        const reply = await this.command(`add ${id} ${process.pid} ${handle.fd} ${[...videoPts].join(",")}`);
        if (reply !== "ok") throw new Error(`RTP sink: ${reply}`);
      }
      this.sockets.set(id, sockets);
      return id;
    });
  }

  remove(id: number): Promise<void> {
    return this.run(async () => {
      this.sockets.delete(id);
      await this.command(`del ${id}`);
    });
  }

  startWindow(): Promise<void> {
    return this.run(async () => {
      await this.command("start");
    });
  }

  endWindow(): Promise<Map<number, WindowStats>> {
    return this.run(async () => {
      this.write("end");
      const stats = new Map<number, WindowStats>();
      for (;;) {
        const line = await this.line();
        if (line.startsWith("done")) {
          const [, dropped, unstamped] = line.split(" ").map(Number);
          if (dropped || unstamped) console.log(`    RTP sink: ${dropped} datagrams for werift lost, ${unstamped} packets stamped on reading (no kernel stamp)`);
          return stats;
        }
        const f = line.split(" ");
        if (f[0] !== "v") throw new Error(`RTP sink: ${line}`);
        const n = f.slice(1).map(Number);
        stats.set(n[0]!, {
          videoPackets: n[1]!,
          audioPackets: n[2]!,
          videoExpected: n[3]!,
          audioExpected: n[4]!,
          frames: n[5]!,
          frameOffsets: Float64Array.from(n.slice(6)),
        });
      }
    });
  }

  close(): void {
    this.child.kill();
  }

  private run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task);
    this.queue = next.catch(() => {});
    return next;
  }

  private write(line: string): void {
    (this.child.stdin as Writable).write(line + "\n");
  }

  private async command(line: string): Promise<string> {
    this.write(line);
    return this.line();
  }

  private async line(): Promise<string> {
    const next = await this.lines.next();
    if (next.done) throw new Error("the RTP sink exited");
    return next.value;
  }

  /** Frames of datagrams that are not RTP, handed to werift as its socket's own reads. */
  private readForwarded(stream: Readable): void {
    let pending: Buffer = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let o = 0;
      while (pending.length - o >= 12) {
        const len = pending.readUInt16LE(o + 10);
        if (pending.length - o < 12 + len) break;
        const tagged = pending.readUInt32LE(o);
        const address = `${pending[o + 4]}.${pending[o + 5]}.${pending[o + 6]}.${pending[o + 7]}`;
        const port = pending.readUInt16BE(o + 8);
        const data = Buffer.from(pending.subarray(o + 12, o + 12 + len));
        o += 12 + len;
        this.sockets.get(tagged & 0xffffff)?.[tagged >>> 24]?.emit("message", data, { address, family: "IPv4", port, size: len });
      }
      pending = pending.subarray(o);
    });
  }
}
