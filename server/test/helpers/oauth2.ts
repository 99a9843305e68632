/**
 * A real OAuth2 token endpoint on loopback for tests (RFC 6749 §4.4 / §6): it counts requests,
 * can be slowed down or made to refuse, and rotates refresh tokens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenRequest {
  form: Record<string, string>;
  authorization: string | undefined;
}

export interface TokenServer {
  url: string;
  requests: TokenRequest[];
  /** Answer after this many ms. */
  delayMs: number;
  /** `expires_in` of the tokens handed out. */
  expiresInSeconds: number | undefined;
  /** When set, answer 400 with this OAuth2 error code. */
  refuseWith: string | undefined;
  close(): Promise<void>;
}

export async function startTokenServer(): Promise<TokenServer> {
  const state: Omit<TokenServer, 'url' | 'close'> = { requests: [], delayMs: 0, expiresInSeconds: 3600, refuseWith: undefined };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      state.requests.push({ form, authorization: req.headers.authorization });
      const n = state.requests.length;
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        if (state.refuseWith) {
          res.statusCode = 400;
          res.end(JSON.stringify({ error: state.refuseWith, error_description: 'refused by the test endpoint' }));
          return;
        }
        res.end(
          JSON.stringify({
            access_token: `access-${n}`,
            token_type: 'Bearer',
            ...(state.expiresInSeconds !== undefined ? { expires_in: state.expiresInSeconds } : {}),
            ...(form.grant_type === 'refresh_token' ? { refresh_token: `refresh-${n}` } : {}),
          }),
        );
      }, state.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const ts = state as TokenServer;
  ts.url = `http://127.0.0.1:${port}/oauth/token`;
  ts.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return ts;
}
