import { describe, expect, it } from 'vitest';
import { buildMessage, parseBody, unstorablePart } from './webhooks.messages.js';

const LIMITS = { maxFields: 1_000, maxXmlElements: 10_000 };

describe('webhook bodies', () => {
  it('parses by media type', () => {
    expect(parseBody(Buffer.from('{"a":[1,2]}'), 'application/vnd.api+json; charset=utf-8', LIMITS).body).toEqual({ a: [1, 2] });
    expect(parseBody(Buffer.from('x=1&x=2&y=%C3%A9'), 'application/x-www-form-urlencoded', LIMITS).body).toEqual({ x: ['1', '2'], y: 'é' });
    expect(parseBody(Buffer.from('plain'), 'text/csv', LIMITS).body).toBe('plain');
    expect(parseBody(undefined, 'application/json', LIMITS)).toEqual({ body: {}, attachments: {} });
    const soap = parseBody(Buffer.from('<e:Envelope xmlns:e="urn:x"><e:Body><n>1</n></e:Body></e:Envelope>'), 'application/soap+xml', LIMITS);
    expect(soap.body).toEqual({ 'e:Envelope': { '@xmlns:e': 'urn:x', 'e:Body': { n: '1' } } });
    expect(soap.attachments.body?.encoding).toBe('utf8');
    const bin = parseBody(Buffer.from([1, 2, 3]), 'application/octet-stream', LIMITS);
    expect(bin).toEqual({ body: {}, attachments: { body: { contentType: 'application/octet-stream', size: 3, encoding: 'base64', content: 'AQID' } } });
  });

  it('refuses malformed JSON and XML, and XML with a DOCTYPE', () => {
    expect(() => parseBody(Buffer.from('{'), 'application/json', LIMITS)).toThrow(/not valid JSON/);
    expect(() => parseBody(Buffer.from('<a>'), 'application/xml', LIMITS)).toThrow(/well-formed/);
    const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>';
    expect(() => parseBody(Buffer.from(bomb), 'text/xml', LIMITS)).toThrow(/DOCTYPE/);
  });

  it('parses 30,000 repeats of one form field in linear time, and refuses more fields than the limit with 413', () => {
    // Copying the array per repeat took 5.8 s for 30,000 repeats; a linear parse takes a few ms.
    // Bounded generously (a busy machine) yet far below the quadratic time.
    const repeats = Array.from({ length: 30_000 }, (_, i) => `k=${i}`).join('&');
    const startedAt = performance.now();
    const body = parseBody(Buffer.from(repeats), 'application/x-www-form-urlencoded', { ...LIMITS, maxFields: 30_000 }).body as { k: string[] };
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    expect(body.k).toHaveLength(30_000);
    expect(body.k[29_999]).toBe('29999');

    expect(parseBody(Buffer.from('a=1&&b=2&'), 'application/x-www-form-urlencoded', { ...LIMITS, maxFields: 2 }).body).toEqual({ a: '1', b: '2' });
    const tooMany = (): unknown => parseBody(Buffer.from('a=1&b=2&c=3'), 'application/x-www-form-urlencoded', { ...LIMITS, maxFields: 2 });
    expect(tooMany).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE', status: 413 }));
    expect(tooMany).toThrow(/3 fields; at most 2 .*PLEXUS_WEBHOOK_MAX_FIELDS/);
  });

  it('counts XML elements before parsing and refuses more than the limit with 413', () => {
    const xml = (n: number) => Buffer.from(`<?xml version="1.0"?><r>${'<a x="1">v</a>'.repeat(n)}<!-- c --></r>`);
    expect((parseBody(xml(2), 'application/xml', { ...LIMITS, maxXmlElements: 3 }).body as { r: { a: unknown[] } }).r.a).toHaveLength(2);
    const tooMany = (): unknown => parseBody(xml(3), 'application/xml', { ...LIMITS, maxXmlElements: 3 });
    expect(tooMany).toThrow(expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE', status: 413 }));
    expect(tooMany).toThrow(/4 elements; at most 3 .*PLEXUS_WEBHOOK_MAX_XML_ELEMENTS/);
  });

  it('answers 400, not 500, for XML nested beyond what the parser reads', () => {
    const deep = '<a>'.repeat(2_000) + '</a>'.repeat(2_000);
    expect(() => parseBody(Buffer.from(deep), 'application/xml', LIMITS)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', status: 400 }));
  });

  it('names the part of a message the database could not store', () => {
    const json = (text: string) => parseBody(Buffer.from(text), 'application/json', LIMITS);
    expect(unstorablePart(json('{"a":[1,"x\\\\u0000y"]}'), {})).toBeUndefined();
    expect(unstorablePart(json('{"a":[1,"x\\u0000y"]}'), {})).toMatch(/^body\.a\[1\]: contains a NUL character/);
    expect(unstorablePart(json('{"a":"\\ud800"}'), {})).toMatch(/^body\.a: contains an unpaired UTF-16 surrogate/);
    expect(unstorablePart(json('{"a":"\\ud83d\\ude00"}'), {})).toBeUndefined();
    expect(unstorablePart(json('{"k\\u0000":1}'), {})).toMatch(/^body\["k\\u0000"\]: has a key that contains a NUL/);
    expect(unstorablePart(json('{"x":' + '['.repeat(300) + ']'.repeat(300) + '}'), {})).toMatch(/^body\.x\[0\].*…: nests deeper than 256 levels/);
    expect(unstorablePart(parseBody(Buffer.from('a=%00'), 'application/x-www-form-urlencoded', LIMITS), {})).toMatch(/^body\.a: contains a NUL/);
    expect(unstorablePart(parseBody(Buffer.from('a\u0000b'), 'text/plain', LIMITS), {})).toMatch(/^body: contains a NUL/);
    expect(unstorablePart(parseBody(Buffer.from('<a>x\u0000</a>'), 'application/xml', LIMITS), {})).toMatch(/NUL/);
    expect(unstorablePart(json('{}'), { 'x-a': 'a\u0000' })).toMatch(/^headers\["x-a"\]: contains a NUL/);
  });

  it('builds seed-format messages without credentials', () => {
    const headers = { 'content-type': 'application/json', authorization: 'Bearer x', cookie: 'c=1', 'x-a': 'b' };
    const post = buildMessage({ method: 'POST', headers, query: { q: '1' }, parsed: { body: { a: 1 }, attachments: {} }, requestId: 'r1', suffix: 'x/y' });
    expect(post).toEqual({
      id: expect.any(String),
      attachments: {},
      body: { a: 1 },
      headers: { 'content-type': 'application/json', 'x-a': 'b' },
      metadata: { source: 'webhook', method: 'POST', requestId: 'r1', receivedAt: expect.any(String), path: 'x/y' },
      query: { q: '1' },
    });
    const get = buildMessage({ method: 'GET', headers: {}, query: { q: '1' }, parsed: { body: {}, attachments: {} }, requestId: 'r2', suffix: undefined });
    expect(get.body).toEqual({ q: '1' });
    expect(get.query).toBeUndefined();
  });
});
