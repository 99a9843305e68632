import { describe, expect, it } from 'vitest';
import { buildMessage, parseBody } from './webhooks.messages.js';

describe('webhook bodies', () => {
  it('parses by media type', () => {
    expect(parseBody(Buffer.from('{"a":[1,2]}'), 'application/vnd.api+json; charset=utf-8').body).toEqual({ a: [1, 2] });
    expect(parseBody(Buffer.from('x=1&x=2&y=%C3%A9'), 'application/x-www-form-urlencoded').body).toEqual({ x: ['1', '2'], y: 'é' });
    expect(parseBody(Buffer.from('plain'), 'text/csv').body).toBe('plain');
    expect(parseBody(undefined, 'application/json')).toEqual({ body: {}, attachments: {} });
    const soap = parseBody(Buffer.from('<e:Envelope xmlns:e="urn:x"><e:Body><n>1</n></e:Body></e:Envelope>'), 'application/soap+xml');
    expect(soap.body).toEqual({ 'e:Envelope': { '@xmlns:e': 'urn:x', 'e:Body': { n: '1' } } });
    expect(soap.attachments.body?.encoding).toBe('utf8');
    const bin = parseBody(Buffer.from([1, 2, 3]), 'application/octet-stream');
    expect(bin).toEqual({ body: {}, attachments: { body: { contentType: 'application/octet-stream', size: 3, encoding: 'base64', content: 'AQID' } } });
  });

  it('refuses malformed JSON and XML, and XML with a DOCTYPE', () => {
    expect(() => parseBody(Buffer.from('{'), 'application/json')).toThrow(/not valid JSON/);
    expect(() => parseBody(Buffer.from('<a>'), 'application/xml')).toThrow(/well-formed/);
    const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>';
    expect(() => parseBody(Buffer.from(bomb), 'text/xml')).toThrow(/DOCTYPE/);
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
