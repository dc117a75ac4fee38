// Once ICE has nominated its pair, the pair's UDP socket is connect()ed to the remote end: every send then skips
// Node's per-call address handling (the lookup step, the address conversion) and the kernel's route lookup, which
// the media path pays per packet. werift keeps sending on that socket (STUN consent, DTLS, RTCP) with an explicit
// address, which a connected socket refuses, so its transport's send is wrapped to drop the address of the peer
// it is connected to. Written here rather than patched into werift: the wrapper only touches the transport's
// public `send` and `socket`, and werift has no notion of a connected pair to patch.
import dgram from "node:dgram";

/**
 * Node's own send for a connected datagram: its libuv handle's send with a SendWrap request and a one-buffer list,
 * both reused while sends complete at once (they do unless the kernel's buffer is full). dgram.Socket#send builds a
 * list, a request and closures per datagram: ~220 bytes of garbage, the largest share of the media path's, for
 * 0.3-0.4 µs per packet more CPU (measured here). These are internals (process.binding is deprecated, documentation
 * only in Node 22): without them, dgram's send is used.
 */
interface UdpHandle {
  send(req: object, list: (Uint8Array | undefined)[], count: number, hasCallback: boolean): number;
}
type SendWrapCtor = new () => { list?: unknown };
const SendWrap: SendWrapCtor | undefined = (() => {
  try {
    const b = (process as unknown as { binding(name: string): { SendWrap?: SendWrapCtor } }).binding("udp_wrap");
    return typeof b.SendWrap === "function" ? b.SendWrap : undefined;
  } catch {
    return undefined;
  }
})();

interface FastSend {
  /** dgram's socket state, whose `handle` is null once the socket closed. */
  state: { handle: UdpHandle | null };
  req: { list?: unknown };
  list: (Uint8Array | undefined)[];
}

/**
 * dgram's internal state of a socket (its libuv handle is `handle`, null once closed), read without the deprecated
 * `_handle` accessor; undefined if Node no longer keeps it there.
 */
export function dgramStateOf(socket: dgram.Socket): { handle: unknown } | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === "state symbol");
  const state = key ? (socket as unknown as Record<symbol, unknown>)[key] : undefined;
  return typeof state === "object" && state !== null && "handle" in state ? (state as { handle: unknown }) : undefined;
}

function fastSendOf(socket: dgram.Socket): FastSend | undefined {
  if (!SendWrap) return undefined;
  const state = dgramStateOf(socket) as FastSend["state"] | undefined;
  if (!state || typeof state.handle?.send !== "function") return undefined;
  return { state, req: new SendWrap(), list: [undefined] };
}

/** werift's UdpTransport, as far as this reads and wraps it. */
export interface UdpTransportLike {
  socket: dgram.Socket;
  send: (data: Buffer, addr?: readonly [string, number]) => Promise<void> | void;
}

interface State {
  host: string;
  port: number;
  connected: boolean;
  /**
   * Datagrams sent while connect() runs. They cannot go out addressed meanwhile: Node resolves the address of a
   * send after the connect's, so it would reach a connected handle with an address, and the kernel refuses that.
   */
  pending: Uint8Array[] | undefined;
  /** Node's handle-level send, once connected (undefined: dgram's send). */
  fast: FastSend | undefined;
}

/** Connecting takes one turn of the event loop; more than this pending means it is not completing. */
const MAX_PENDING = 512;

const states = new WeakMap<dgram.Socket, State>();

/**
 * Sends one datagram; returns true when it went out at once, so the caller may write its next datagram into the
 * same memory (false: Node or this module still holds it, in a send queue).
 */
export type DatagramSend = (datagram: Uint8Array) => boolean;

/**
 * A send function for datagrams to `host:port` on the transport's socket, connected to it when this is the first
 * pair the socket is used for (else addressed as before).
 */
export function connectedSender(transport: UdpTransportLike, host: string, port: number): DatagramSend {
  const socket = transport.socket;
  let state = states.get(socket);
  if (!state) {
    const s: State = { host, port, connected: false, pending: [], fast: undefined };
    state = s;
    states.set(socket, s);
    // A connected UDP socket hears the ICMP "port unreachable" of a peer that went away as ECONNREFUSED on its next
    // receive, which dgram emits as an 'error' event: without a listener that would end the whole process. The
    // peer's end is werift's to notice (ICE consent fails); nothing to do here.
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "ECONNREFUSED") console.warn(`media socket to ${host}:${port}: ${err.message}`);
    });
    try {
      socket.connect(port, host, () => {
        s.connected = true;
        s.fast = fastSendOf(socket);
        const pending = s.pending ?? [];
        s.pending = undefined;
        for (const d of pending) send(s, socket, d);
      });
    } catch {
      // Already connected by someone else, or closing: this socket stays unconnected, sends addressed.
      states.set(socket, { host: "", port: 0, connected: false, pending: undefined, fast: undefined });
      return addressed(socket, host, port);
    }
    transport.send = (data, addr) => {
      // After nomination ICE talks to its pair only; anything addressed elsewhere could not be sent any more.
      if (addr && (addr[0] !== s.host || addr[1] !== s.port)) return;
      queueOrSend(s, socket, data);
    };
  }
  const s = state;
  if (s.host !== host || s.port !== port) return addressed(socket, host, port);
  return (d) => queueOrSend(s, socket, d);
}

function addressed(socket: dgram.Socket, host: string, port: number): DatagramSend {
  return (d) => {
    // The address is resolved a turn later: the datagram is held until then.
    socket.send(d, port, host);
    return false;
  };
}

function queueOrSend(s: State, socket: dgram.Socket, d: Uint8Array): boolean {
  if (s.connected) return send(s, socket, d);
  if (s.pending && s.pending.length < MAX_PENDING) s.pending.push(d);
  return false;
}

/**
 * Node tries a connected send synchronously (uv_udp_try_send) and queues it, holding the buffer, only when the
 * kernel's buffer is full: an empty send queue afterwards means the memory is free again.
 */
function send(s: State, socket: dgram.Socket, d: Uint8Array): boolean {
  const fast = s.fast;
  if (fast) {
    const handle = fast.state.handle;
    if (!handle) return false; // closed
    fast.list[0] = d;
    // msg length + 1: sent at once; 0: queued (the request holds the buffer until done); < 0: an error, dropped as
    // dgram drops the errors of sends without a callback.
    const r = handle.send(fast.req, fast.list, 1, false);
    if (r >= 1) {
      fast.list[0] = undefined;
      return true;
    }
    if (r === 0) {
      fast.req.list = fast.list;
      fast.req = new SendWrap!();
      fast.list = [undefined];
    }
    return false;
  }
  try {
    socket.send(d);
    return socket.getSendQueueCount() === 0;
  } catch {
    /* the socket is closing */
    return false;
  }
}

/** What a native send needs of a connected socket: its fd and libuv's send queue on it (see native/send-batch.ts). */
export interface ConnectedFd {
  /** The fd once connect() completed, -1 before that, after close, or when the socket stayed unconnected. */
  fd(): number;
  /** Datagrams libuv holds for this socket (sends it queued when the kernel's buffer was full). */
  queued(): number;
}

interface HandleWithFd {
  fd?: number;
  getSendQueueCount?(): number;
}

/** The fd side of a socket connectedSender connected; call after connectedSender. */
export function connectedFdOf(socket: dgram.Socket): ConnectedFd {
  const s = states.get(socket);
  const state = dgramStateOf(socket) as { handle: HandleWithFd | null } | undefined;
  return {
    fd: () => {
      const h = state?.handle;
      return s?.connected && h && typeof h.fd === "number" && h.fd >= 0 ? h.fd : -1;
    },
    queued: () => {
      const h = state?.handle;
      return h && typeof h.getSendQueueCount === "function" ? h.getSendQueueCount() : 0;
    },
  };
}
