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

export class PacketStore {
  private readonly tableIds = new WeakMap<SampleTable, number>();
  private nextTableId = 1;
  /** In least to most recently used order (a hit moves its entry to the end). */
  private readonly entries = new Map<number, Entry>();
  private bytesHeld = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly budgetBytes: number) {}

  get bytes(): number {
    return this.bytesHeld;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The packets of sample `index` of `table` for a playback whose time 0 is `zero`, if stored. */
  get(table: SampleTable, index: number, zero: number): readonly MediaPacket[] | undefined {
    const key = this.keyOf(table, index);
    const e = key === undefined ? undefined : this.entries.get(key);
    if (!e || e.zero !== zero) {
      this.misses++;
      return undefined;
    }
    this.entries.delete(key!);
    this.entries.set(key!, e);
    this.hits++;
    return e.packets;
  }

  /** Stores a sample's packets; `bytes` is what they hold (their payloads must not share a larger buffer). */
  put(table: SampleTable, index: number, zero: number, packets: readonly MediaPacket[], bytes: number): void {
    if (this.budgetBytes <= 0 || bytes > this.budgetBytes) return;
    let key = this.keyOf(table, index);
    if (key === undefined) {
      if (this.nextTableId >= MAX_TABLE_ID) return;
      const id = this.nextTableId++;
      this.tableIds.set(table, id);
      key = id * INDEX_SPAN + index;
    }
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytesHeld -= old.bytes;
    }
    this.entries.set(key, { zero, packets, bytes });
    this.bytesHeld += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytesHeld <= this.budgetBytes) break;
      this.entries.delete(k);
      this.bytesHeld -= e.bytes;
    }
  }

  private keyOf(table: SampleTable, index: number): number | undefined {
    const id = this.tableIds.get(table);
    return id === undefined ? undefined : id * INDEX_SPAN + index;
  }
}
