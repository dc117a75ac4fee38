// Deterministic MP4 mutations for the reader's fuzz test: a seeded PRNG, a box walker that finds where the
// interesting fields of a valid file are, and mutators that break exactly those fields (sizes, entry counts, avcC)
// or the bytes at large. Every mutant carries a description, so a failure names what was done to which seed.

/** mulberry32: small, fast, good enough to spread mutations; the same seed always gives the same stream. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed per mutant, so that any one mutant can be made again without the ones before it. */
export function mutantSeed(runSeed: number, index: number): number {
  return (Math.imul(runSeed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
}

export interface BoxAt {
  type: string;
  start: number;
  headerSize: number;
  end: number;
  /** Indexes (into the same list) of the boxes containing this one, outermost first. */
  parents: number[];
}

/** Boxes whose body is only other boxes. */
const CONTAINERS = new Set(["moov", "trak", "mdia", "minf", "stbl", "edts", "dinf", "mvex", "moof", "traf", "mfra", "udta"]);
/** Sample entries: bytes of fixed fields between the box header and their child boxes (avcC, esds, dOps ...). */
const ENTRY_FIELDS: Record<string, number> = { avc1: 78, avc3: 78, hvc1: 78, hev1: 78, mp4a: 28, Opus: 28 };

/** Every box of a well-formed file, depth first, with its place in the tree. */
export function walkBoxes(buf: Uint8Array): BoxAt[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: BoxAt[] = [];
  const walk = (from: number, to: number, parents: number[]) => {
    let at = from;
    while (at + 8 <= to) {
      let size = view.getUint32(at);
      const type = String.fromCharCode(...buf.subarray(at + 4, at + 8));
      let headerSize = 8;
      if (size === 1) {
        size = Number(view.getBigUint64(at + 8));
        headerSize = 16;
      } else if (size === 0) {
        size = to - at;
      }
      if (size < headerSize || at + size > to) throw new Error(`seed file: box ${type} at ${at} has size ${size}`);
      const index = out.push({ type, start: at, headerSize, end: at + size, parents }) - 1;
      const body = at + headerSize;
      const inner = [...parents, index];
      if (CONTAINERS.has(type)) walk(body, at + size, inner);
      else if (type === "stsd") walk(body + 8, at + size, inner);
      else if (ENTRY_FIELDS[type] !== undefined) walk(body + ENTRY_FIELDS[type], at + size, inner);
      at += size;
    }
  };
  walk(0, buf.length, []);
  return out;
}

export interface Mutant {
  bytes: Uint8Array;
  desc: string;
}

/** Tables whose entry count sits after version and flags; stsz has its constant sample size first. */
const COUNTED: Record<string, number> = { stts: 4, stss: 4, stco: 4, co64: 4, ctts: 4, stsc: 4, elst: 4, stsd: 4, dref: 4, trun: 4, stsz: 8 };
const HUGE_COUNTS = [0xffffffff, 0x80000000, 0x10000000, 0x01000000, 0x00100000];
const BAD_SIZES = [0, 1, 7, 0xffffffff];
const PETABYTES = 2n ** 52n;

const hex = (n: number) => `0x${n.toString(16)}`;

export class Mutator {
  private readonly rnd: () => number;

  constructor(seed: number) {
    this.rnd = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  /** One to three random mutations, applied in turn (each finds the boxes anew; once the tree is broken, only byte-level ones apply). */
  mutate(seed: Uint8Array): Mutant {
    let bytes: Uint8Array = seed.slice();
    const descs: string[] = [];
    const rounds = 1 + (this.rnd() < 0.25 ? this.int(3) : 0);
    for (let r = 0; r < rounds; r++) {
      let boxes: BoxAt[];
      try {
        boxes = walkBoxes(bytes);
      } catch {
        boxes = [];
      }
      const m = this.once(bytes, boxes);
      bytes = m.bytes;
      descs.push(m.desc);
    }
    return { bytes, desc: descs.join("; ") };
  }

  private once(bytes: Uint8Array, boxes: BoxAt[]): Mutant {
    const ops: ((b: Uint8Array, x: BoxAt[]) => Mutant | undefined)[] = [
      (b, x) => this.bitFlips(b, x),
      (b, x) => this.bitFlips(b, x),
      (b) => this.byteRun(b),
      (b) => this.truncate(b),
      (b, x) => this.boxSize(b, x),
      (b, x) => this.largeSize(b, x),
      (b, x) => this.entryCount(b, x),
      (b, x) => this.entryCount(b, x),
      (b, x) => this.tableEntry(b, x),
      (b, x) => this.avcC(b, x),
      (b, x) => this.avcC(b, x),
      (b, x) => this.duplicate(b, x),
      (b, x) => this.remove(b, x),
    ];
    for (;;) {
      const m = this.pick(ops)(bytes, boxes);
      if (m) return m;
    }
  }

  /** Flips 1-16 bits, mostly inside the index (moov, moof): flips in sample data only test the packetizer. */
  bitFlips(bytes: Uint8Array, boxes: BoxAt[]): Mutant {
    const out = bytes.slice();
    const index = boxes.filter((b) => b.parents.length === 0 && (b.type === "moov" || b.type === "moof"));
    const n = 1 + this.int(16);
    const at: string[] = [];
    for (let k = 0; k < n && out.length > 0; k++) {
      const region = index.length > 0 && this.rnd() < 0.8 ? this.pick(index) : { start: 0, end: out.length };
      const pos = region.start + this.int(region.end - region.start);
      const bit = this.int(8);
      out[pos]! ^= 1 << bit;
      at.push(`${pos}.${bit}`);
    }
    return { bytes: out, desc: `flip bits ${at.join(",")}` };
  }

  byteRun(bytes: Uint8Array): Mutant {
    const out = bytes.slice();
    const pos = this.int(out.length);
    const len = Math.min(1 + this.int(64), out.length - pos);
    const fill = this.pick(["random", "0x00", "0xff"]);
    for (let k = 0; k < len; k++) out[pos + k] = fill === "random" ? this.int(256) : fill === "0x00" ? 0 : 0xff;
    return { bytes: out, desc: `${len} ${fill} bytes at ${pos}` };
  }

  truncate(bytes: Uint8Array): Mutant {
    const at = this.int(bytes.length);
    return { bytes: bytes.slice(0, at), desc: `truncate to ${at} of ${bytes.length} bytes` };
  }

  boxSize(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    if (boxes.length === 0) return undefined;
    const box = this.pick(boxes);
    const out = bytes.slice();
    const choices = [...BAD_SIZES, out.length + 1 + this.int(1 << 20), (box.end - box.start) + 1 + this.int(64), Math.max(0, box.end - box.start - 1 - this.int(16))];
    const size = this.pick(choices);
    new DataView(out.buffer).setUint32(box.start, size >>> 0);
    return { bytes: out, desc: `${box.type}@${box.start} size ${hex(size >>> 0)}` };
  }

  /** Rewrites a box header as a 64-bit one claiming petabytes (the 8 extra bytes are inserted, parents grown). */
  largeSize(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    if (boxes.length === 0) return undefined;
    const box = this.pick(boxes);
    if (box.headerSize !== 8) return undefined;
    const header = new Uint8Array(16);
    const h = new DataView(header.buffer);
    h.setUint32(0, 1);
    header.set(bytes.subarray(box.start + 4, box.start + 8), 4);
    const claim = PETABYTES + BigInt(this.int(1 << 30));
    h.setBigUint64(8, claim);
    const out = splice(bytes, box.start, 8, header);
    grow(out, boxes, box.parents, 8);
    return { bytes: out, desc: `${box.type}@${box.start} largesize ${claim}` };
  }

  entryCount(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    const tables = boxes.filter((b) => COUNTED[b.type] !== undefined && b.end - b.start >= b.headerSize + COUNTED[b.type]! + 4);
    if (tables.length === 0) return undefined;
    const box = this.pick(tables);
    const out = bytes.slice();
    const view = new DataView(out.buffer);
    const at = box.start + box.headerSize + COUNTED[box.type]!;
    const old = view.getUint32(at);
    const count = this.pick([...HUGE_COUNTS, old + 1, old * 2 + 1, this.int(0x100000000)]) >>> 0;
    view.setUint32(at, count);
    let extra = "";
    const body = box.start + box.headerSize;
    if (box.type === "stsz" && this.rnd() < 0.5) {
      // A constant sample size: no table at all, so nothing but the count says how many samples there are.
      const size = this.pick([1, 2, 1000, this.int(0x100000000)]);
      view.setUint32(body + 4, size);
      extra = ` constant size ${size}`;
    } else if (box.type === "trun" && this.rnd() < 0.5) {
      // No per-sample fields: every sample takes the defaults, so the count alone makes samples.
      out[body + 2] = 0;
      out[body + 3] = out[body + 3]! & 0x05;
      extra = " per-sample fields off";
    }
    return { bytes: out, desc: `${box.type}@${box.start} count ${hex(old)} -> ${hex(count)}${extra}` };
  }

  /** Sets one entry of a sample table (a size, an offset, a run length) to an extreme. */
  tableEntry(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    const tables = boxes.filter((b) => ["stsz", "stco", "stts", "stsc", "ctts", "stss"].includes(b.type));
    if (tables.length === 0) return undefined;
    const box = this.pick(tables);
    const first = box.start + box.headerSize + COUNTED[box.type]! + 4;
    if (first + 4 > box.end) return undefined;
    const at = first + 4 * this.int((box.end - first) >> 2);
    const out = bytes.slice();
    const value = this.pick([0, 1, 0xffffffff, 0x7fffffff, 0x04000001, out.length, this.int(0x100000000)]) >>> 0;
    new DataView(out.buffer).setUint32(at, value);
    return { bytes: out, desc: `${box.type}@${box.start} field at ${at} = ${hex(value)}` };
  }

  /** Breaks the avcC: NAL length size, parameter set counts and lengths, profile, or its own size. */
  avcC(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    const box = boxes.find((b) => b.type === "avcC");
    if (!box) return undefined;
    const out = bytes.slice();
    const body = box.start + box.headerSize;
    const view = new DataView(out.buffer);
    const spsCount = out[body + 5]! & 0x1f;
    const spsLen = view.getUint16(body + 6);
    const ppsAt = body + 8 + spsLen;
    const field = this.pick(["lengthSize", "spsCount", "spsLength", "ppsCount", "ppsLength", "profile", "version", "size"]);
    let value: number;
    switch (field) {
      case "lengthSize":
        value = this.pick([0, 2]);
        out[body + 4] = 0xfc | value;
        break;
      case "spsCount":
        value = this.pick([0, 2, 31]);
        out[body + 5] = 0xe0 | value;
        break;
      case "spsLength":
        value = this.pick([0, 1, spsLen + 1, 0xffff]);
        if (spsCount > 0) view.setUint16(body + 6, value);
        break;
      case "ppsCount":
        value = this.pick([0, 2, 255]);
        if (ppsAt < box.end) out[ppsAt] = value;
        break;
      case "ppsLength":
        value = this.pick([0, 1, 0xffff]);
        if (ppsAt + 3 <= box.end) view.setUint16(ppsAt + 1, value);
        break;
      case "profile":
        value = this.int(256);
        out[body + 1] = value;
        break;
      case "version":
        value = this.int(256);
        out[body] = value;
        break;
      default:
        value = this.pick([8, 9, 12, 15]);
        view.setUint32(box.start, value);
    }
    return { bytes: out, desc: `avcC@${box.start} ${field} = ${value}` };
  }

  /** Repeats a box right after itself, parents grown to hold it. */
  duplicate(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    const candidates = boxes.filter((b) => b.end - b.start <= 1 << 16);
    if (candidates.length === 0) return undefined;
    const box = this.pick(candidates);
    const copy = bytes.slice(box.start, box.end);
    const out = splice(bytes, box.end, 0, copy);
    grow(out, boxes, box.parents, copy.length);
    return { bytes: out, desc: `duplicate ${box.type}@${box.start}` };
  }

  /** Cuts a box out, parents shrunk to match. */
  remove(bytes: Uint8Array, boxes: BoxAt[]): Mutant | undefined {
    if (boxes.length === 0) return undefined;
    const box = this.pick(boxes);
    const out = splice(bytes, box.start, box.end - box.start, new Uint8Array(0));
    grow(out, boxes, box.parents, -(box.end - box.start));
    return { bytes: out, desc: `remove ${box.type}@${box.start}` };
  }
}

function splice(bytes: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length);
  out.set(bytes.subarray(0, at), 0);
  out.set(insert, at);
  out.set(bytes.subarray(at + remove), at + insert.length);
  return out;
}

/** Adds `delta` to the size field of each parent (all start before the edit, so their headers did not move). */
function grow(out: Uint8Array, boxes: BoxAt[], parents: number[], delta: number): void {
  const view = new DataView(out.buffer);
  for (const p of parents) {
    const box = boxes[p]!;
    if (box.headerSize === 16) view.setBigUint64(box.start + 8, view.getBigUint64(box.start + 8) + BigInt(delta));
    else view.setUint32(box.start, (view.getUint32(box.start) + delta) >>> 0);
  }
}

/**
 * Named mutants every run includes, whatever the PRNG does: the cases the issue lists, for each seed that has the
 * box in question.
 */
export function namedMutants(seed: Uint8Array): Mutant[] {
  const boxes = walkBoxes(seed);
  const out: Mutant[] = [];
  const edit = (desc: string, fn: (b: Uint8Array, v: DataView) => Uint8Array | void) => {
    const b = seed.slice();
    const r = fn(b, new DataView(b.buffer));
    out.push({ bytes: r ?? b, desc });
  };
  out.push({ bytes: seed, desc: "unchanged" });
  out.push({ bytes: new Uint8Array(0), desc: "zero-length file" });
  for (const frac of [0.001, 0.01, 0.1, 0.3, 0.5, 0.9, 0.999]) {
    const at = Math.floor(seed.length * frac);
    out.push({ bytes: seed.slice(0, at), desc: `truncate to ${at} of ${seed.length} bytes` });
  }
  for (const box of boxes.filter((b) => b.parents.length === 0 || b.type === "trak" || b.type === "stbl")) {
    for (const size of [0, 1, 7, 0xffffffff, seed.length * 4]) {
      edit(`${box.type}@${box.start} size ${hex(size)}`, (_, v) => v.setUint32(box.start, size));
    }
  }
  for (const box of boxes.filter((b) => b.parents.length === 0 && b.headerSize === 8)) {
    const header = new Uint8Array(16);
    new DataView(header.buffer).setUint32(0, 1);
    header.set(seed.subarray(box.start + 4, box.start + 8), 4);
    new DataView(header.buffer).setBigUint64(8, PETABYTES);
    out.push({ bytes: splice(seed, box.start, 8, header), desc: `${box.type}@${box.start} largesize ${PETABYTES}` });
  }
  for (const box of boxes.filter((b) => COUNTED[b.type] !== undefined)) {
    const at = box.start + box.headerSize + COUNTED[box.type]!;
    edit(`${box.type}@${box.start} count 0xffffffff`, (_, v) => v.setUint32(at, 0xffffffff));
    if (box.type === "stsz") {
      // The moov claiming 2^32 samples: a constant sample size needs no table, only the count.
      edit(`${box.type}@${box.start} count 0xffffffff constant size 1`, (_, v) => {
        v.setUint32(at - 4, 1);
        v.setUint32(at, 0xffffffff);
      });
    }
    if (box.type === "trun") {
      edit(`trun@${box.start} count 0xffffffff per-sample fields off`, (b, v) => {
        v.setUint32(at, 0xffffffff);
        b[box.start + box.headerSize + 2] = 0;
        b[box.start + box.headerSize + 3] = b[box.start + box.headerSize + 3]! & 0x05;
      });
    }
  }
  const avcC = boxes.find((b) => b.type === "avcC");
  if (avcC) {
    const body = avcC.start + avcC.headerSize;
    edit("avcC NAL length size 3", (b) => void (b[body + 4] = 0xfe));
    edit("avcC no SPS", (b) => void (b[body + 5] = 0xe0));
    edit("avcC SPS length 0xffff", (_, v) => v.setUint16(body + 6, 0xffff));
    edit("avcC 31 SPS", (b) => void (b[body + 5] = 0xff));
    edit("avcC size 9", (_, v) => v.setUint32(avcC.start, 9));
    edit("avcC PPS count 255", (b, v) => void (b[body + 8 + v.getUint16(body + 6)] = 255));
  }
  return out;
}
