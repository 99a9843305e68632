import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sign, signatureProblem } from './webhooks.signature.js';

// The example of the Standard Webhooks specification.
const SPEC_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const SPEC_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const SPEC_TS = 1614265330;
const SPEC_BODY = '{"test": 2432232314}';
const SPEC_SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

describe('Standard Webhooks signatures', () => {
  it('signs like the specification', () => {
    expect(sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)).toBe(SPEC_SIGNATURE);
  });

  it('accepts a valid signature among several, within 5 minutes either way', () => {
    const h = { id: SPEC_ID, timestamp: String(SPEC_TS), signature: `v1,bm90IGl0 ${SPEC_SIGNATURE}` };
    expect(signatureProblem(SPEC_SECRET, h, Buffer.from(SPEC_BODY), SPEC_TS * 1000 + 299_000)).toBeUndefined();
    expect(signatureProblem(SPEC_SECRET, h, Buffer.from(SPEC_BODY), SPEC_TS * 1000 - 299_000)).toBeUndefined();
    expect(signatureProblem(SPEC_SECRET, h, Buffer.from(SPEC_BODY), SPEC_TS * 1000 + 301_000)).toMatch(/5 minutes/);
  });

  it('refuses a changed body, another id, a wrong secret and missing headers', () => {
    const now = SPEC_TS * 1000;
    const h = { id: SPEC_ID, timestamp: String(SPEC_TS), signature: SPEC_SIGNATURE };
    expect(signatureProblem(SPEC_SECRET, h, Buffer.from('{"test": 1}'), now)).toBe('webhook-signature does not match');
    expect(signatureProblem(SPEC_SECRET, { ...h, id: 'msg_other' }, Buffer.from(SPEC_BODY), now)).toBe('webhook-signature does not match');
    expect(signatureProblem('whsec_' + Buffer.from('another key').toString('base64'), h, Buffer.from(SPEC_BODY), now)).toBe('webhook-signature does not match');
    expect(signatureProblem(SPEC_SECRET, { ...h, signature: undefined }, Buffer.from(SPEC_BODY), now)).toMatch(/missing/);
    expect(signatureProblem(SPEC_SECRET, { ...h, timestamp: '2021-02-25' }, Buffer.from(SPEC_BODY), now)).toMatch(/Unix seconds/);
  });

  it('uses a secret without the whsec_ prefix as its bytes', () => {
    const secret = 'plain-secret-of-some-length';
    const expected = createHmac('sha256', secret).update(`id.1.body`).digest('base64');
    expect(sign(secret, 'id', 1, 'body')).toBe(`v1,${expected}`);
  });
});
