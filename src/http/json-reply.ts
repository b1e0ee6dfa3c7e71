import type { OutgoingHttpHeaders } from 'node:http';

/** Just what sendJson() uses, so every kind of handler (HTTP/1.1, HTTP/2 compat) can call it. */
export interface JsonReply {
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  end(): unknown;
  end(text: string): unknown;
}

/** A JSON answer, never cached; HEAD gets the headers only. */
export function sendJson(req: { method?: string }, res: JsonReply, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  if (req.method === 'HEAD') res.end();
  else res.end(text);
}
