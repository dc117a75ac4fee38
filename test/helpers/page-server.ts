// Serves a few in-memory files on a loopback port of its own: a page there is of another origin than the edge, so
// what it sends the edge goes through CORS (preflights, exposed headers) as a third-party player site's would.
import http from "node:http";
import path from "node:path";

export interface PageServer {
  /** http://127.0.0.1:<port> */
  origin: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

/** `files` maps a path ("/index.html") to its content; anything else is 404. */
export async function servePages(files: Record<string, string | Buffer>): Promise<PageServer> {
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? "/", "http://x").pathname;
    const body = files[pathname];
    if (body === undefined || req.method !== "GET") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(pathname)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  if (typeof addr !== "object" || !addr) throw new Error("page server has no address");
  return {
    origin: `http://127.0.0.1:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        // A keep-alive connection from the browser would otherwise hold close() open.
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
