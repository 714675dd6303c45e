import type { LogLine } from "../api/types";

function same(a: LogLine, b: LogLine): boolean {
  return a.ts === b.ts && a.stream === b.stream && a.line === b.line;
}

/**
 * Appends `incoming` to `current`, dropping lines already shown: the server
 * replays recent lines when a client subscribes, which overlap the lines read
 * over REST. Lines older than the newest shown are taken as replays.
 */
export function mergeLogLines(current: LogLine[], incoming: LogLine[], max: number): LogLine[] {
  const out = current.slice();
  for (const line of incoming) {
    const last = out[out.length - 1];
    if (last) {
      if (line.ts < last.ts) continue;
      if (line.ts === last.ts) {
        let dup = false;
        for (let i = out.length - 1; i >= 0; i--) {
          const prev = out[i];
          if (!prev || prev.ts !== line.ts) break;
          if (same(prev, line)) {
            dup = true;
            break;
          }
        }
        if (dup) continue;
      }
    }
    out.push(line);
  }
  return out.length > max ? out.slice(-max) : out;
}
