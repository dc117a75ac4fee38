// Plain numbers the media path bumps (every RTP packet sent, every recording write); the metrics read them at scrape
// time. A prom-client call per packet would cost a label hash and a map lookup thousands of times a second.
export const mediaCounters = {
  /** RTP packets sent to viewers, retransmissions included. */
  rtpPackets: 0,
  /** Their RTP header and payload bytes (before SRTP). */
  rtpBytes: 0,
  /** Catch-up packets (the frames before a seek's position or a vod-live join, squeezed), and their bytes. */
  catchUpPackets: 0,
  catchUpBytes: 0,
  /** vod-live joins (and moves) caught up from the broadcast's kept GOP, and those that read the file for it. */
  liveCatchUpsFromBroadcast: 0,
  liveCatchUpsFromFile: 0,
  /** Recordings being written now. */
  recordingsActive: 0,
  /** Bytes written to record files. */
  recordBytes: 0,
};
