/** The payload types of an SDP's video m-line, so a header-only viewer can tell video packets from audio. */
export function videoPayloadTypes(sdp: string): Set<number> {
  const line = sdp.split(/\r?\n/).find((l) => l.startsWith("m=video "));
  return new Set((line?.split(" ").slice(3) ?? []).map(Number));
}
