// Packetized samples shared by every playback of the same file version on this sidecar: a personal `vod://` viewer
// reads and packetizes a sample only if no other viewer of that file did so recently. Per viewer there remain the
// header rewrite, SRTP and the send, as for a vod-live broadcast; and memory per viewer no longer holds its own
// read-ahead of the file.
//
// Keyed by the sample table, which the index cache shares per file version (a changed file has a new table) and a
// copy still being prepared grows in place (a written sample never changes), plus the playback's time 0, which
// depends on the tracks played. Packets are stored for a file's first pass only: a looping broadcast's later passes
// carry other timestamps (and a broadcast has one source anyway). Least recently used samples go first once the store
// holds more than its budget of sample bytes.
//
// Recency is kept by lru-cache's index links: a hit moves nothing in a Map. Moving a hit to the end of a Map (delete,
// then set) made it rehash its table every few thousand hits, ~35 000 a second at 450 viewers: large tables that went
// straight to the old generation and were most of what a vod:// viewer cost over a vod-live one.
import { LRUCache } from "lru-cache";
import type { SampleTable } from "../mp4/types.ts";
import type { MediaPacket } from "./packet-source.ts";

interface Entry {
  zero: number;
  /** The sample's packets, in send order; shared and read only. */
  packets: readonly MediaPacket[];
  bytes: number;
}

/** Sample indexes stay below 2^32; table ids below 2^21, so a key stays an exact double. */
const INDEX_SPAN = 0x1_0000_0000;
const MAX_TABLE_ID = 1 << 21;
/** lru-cache's options argument of a get, passed so that a hit allocates nothing. */
const GET_OPTIONS = Object.freeze({});

export class PacketStore {
  private readonly tableIds = new WeakMap<SampleTable, number>();
  private nextTableId = 1;
  /** Undefined when the budget is 0: nothing is stored. */
  private readonly entries: LRUCache<number, Entry> | undefined;
  hits = 0;
  misses = 0;

  constructor(private readonly budgetBytes: number) {
    this.entries = budgetBytes > 0 ? new LRUCache<number, Entry>({ maxSize: budgetBytes, sizeCalculation: (e) => Math.max(1, e.bytes) }) : undefined;
  }

  get bytes(): number {
    return this.entries?.calculatedSize ?? 0;
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  /** The packets of sample `index` of `table` for a playback whose time 0 is `zero`, if stored. */
  get(table: SampleTable, index: number, zero: number): readonly MediaPacket[] | undefined {
    const key = this.keyOf(table, index);
    const e = key === undefined ? undefined : this.entries?.get(key, GET_OPTIONS);
    if (!e || e.zero !== zero) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return e.packets;
  }

  /** Stores a sample's packets; `bytes` is what they hold (their payloads must not share a larger buffer). */
  put(table: SampleTable, index: number, zero: number, packets: readonly MediaPacket[], bytes: number): void {
    if (!this.entries || bytes > this.budgetBytes) return;
    let key = this.keyOf(table, index);
    if (key === undefined) {
      if (this.nextTableId >= MAX_TABLE_ID) return;
      const id = this.nextTableId++;
      this.tableIds.set(table, id);
      key = id * INDEX_SPAN + index;
    }
    // Least recently used samples go first once the budget is passed.
    this.entries.set(key, { zero, packets, bytes });
  }

  private keyOf(table: SampleTable, index: number): number | undefined {
    const id = this.tableIds.get(table);
    return id === undefined ? undefined : id * INDEX_SPAN + index;
  }
}
