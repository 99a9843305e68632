/**
 * Standard Webhooks signatures (standardwebhooks.com): the sender signs `id.timestamp.body`
 * with HMAC-SHA256 and sends `webhook-id`, `webhook-timestamp` (Unix seconds) and
 * `webhook-signature: v1,<base64>` (several, space-separated, during a key rotation). A
 * `whsec_`-prefixed secret is base64 after the prefix; any other secret is used as its bytes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far `webhook-timestamp` may be from our clock, either way. */
export const SIGNATURE_TOLERANCE_MS = 5 * 60_000;

export function secretKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

export function sign(secret: string, id: string, timestampSeconds: number | string, body: Buffer | string): string {
  const mac = createHmac('sha256', secretKey(secret));
  mac.update(`${id}.${timestampSeconds}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

export interface SignatureHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** Why the signature does not hold, or undefined when it does. */
export function signatureProblem(secret: string, h: SignatureHeaders, body: Buffer, nowMs = Date.now()): string | undefined {
  if (!h.id || !h.timestamp || !h.signature) return 'missing webhook-id, webhook-timestamp or webhook-signature header';
  if (!/^\d{1,12}$/.test(h.timestamp)) return 'webhook-timestamp must be Unix seconds';
  if (Math.abs(nowMs - Number(h.timestamp) * 1000) > SIGNATURE_TOLERANCE_MS) return 'webhook-timestamp is more than 5 minutes away from now';
  const expected = Buffer.from(sign(secret, h.id, h.timestamp, body).slice(3), 'base64');
  for (const candidate of h.signature.split(' ')) {
    const [version, value] = candidate.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return undefined;
  }
  return 'webhook-signature does not match';
}
