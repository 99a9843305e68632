/**
 * From an HTTP call to a flow message (seed 002 "Execute Webhook Flow"):
 * `{id, attachments, body, headers, metadata}` plus `query` for POST. A POST body becomes
 * `body` by its media type — JSON parsed; form fields as an object; `text/*` as a string; XML
 * parsed, with the text kept in `attachments.body`; anything else only as a base64 attachment.
 * A GET puts its query string into `body`. Parsing is linear in the body's size whatever it
 * holds, because it runs on the main thread before any step does, often for flows without auth.
 */
import { randomUUID } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { FlowMessage } from '../../contracts/flows.js';
import { AppError } from '../../platform/errors.js';
import { findUnstorable } from '../../platform/storable.js';

/** A request body kept as sent: the raw bytes of an attachment. */
export interface BodyAttachment {
  contentType: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
}

export interface ParsedBody {
  body: unknown;
  attachments: Record<string, BodyAttachment>;
}

/** Headers that carry the caller's credentials: never copied into a message (messages are stored). */
const DROPPED_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

const xmlParser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, trimValues: true });

/** The media type without parameters, lower case (`application/json`). */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

export function isJsonType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

function isXmlType(type: string): boolean {
  return type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml');
}

export interface BodyLimits {
  /** Most fields of a form-encoded body (PLEXUS_WEBHOOK_MAX_FIELDS); more → 413. */
  maxFields: number;
  /** Most elements of an XML body (PLEXUS_WEBHOOK_MAX_XML_ELEMENTS); more → 413. */
  maxXmlElements: number;
}

/** Parses a POST body by its media type; throws 400 for a body its type cannot read. */
export function parseBody(raw: Buffer | undefined, contentType: string | undefined, limits: BodyLimits): ParsedBody {
  if (!raw || raw.length === 0) return { body: {}, attachments: {} };
  const type = mediaTypeOf(contentType);
  if (isJsonType(type)) {
    try {
      return { body: JSON.parse(raw.toString('utf8')) as unknown, attachments: {} };
    } catch (err) {
      throw new AppError('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (type === 'application/x-www-form-urlencoded') return { body: formToObject(raw.toString('utf8'), limits.maxFields), attachments: {} };
  if (isXmlType(type)) {
    const text = raw.toString('utf8');
    return { body: parseXml(text, limits.maxXmlElements), attachments: { body: { contentType: type, size: raw.length, encoding: 'utf8', content: text } } };
  }
  if (type.startsWith('text/')) return { body: raw.toString('utf8'), attachments: {} };
  return { body: {}, attachments: { body: { contentType: type, size: raw.length, encoding: 'base64', content: raw.toString('base64') } } };
}

/** Start tags: `<` before a name, not `</`, `<!` or `<?`. An overestimate inside CDATA or comments. */
function countXmlElements(text: string): number {
  let count = 0;
  for (let at = text.indexOf('<'); at !== -1; at = text.indexOf('<', at + 1)) {
    const next = text.charCodeAt(at + 1);
    if (next !== 47 /* / */ && next !== 33 /* ! */ && next !== 63 /* ? */) count++;
  }
  return count;
}

/**
 * Parsing is linear but costly (~8 µs per element measured here: a 10 MB body of 700,000
 * elements held the main thread 6 s), so the element count is capped before parsing.
 */
function parseXml(text: string, maxElements: number): unknown {
  // Entity definitions can expand a small body into a huge one; webhooks have no use for them.
  if (/<!DOCTYPE/i.test(text)) throw new AppError('BAD_REQUEST', 'XML body must not contain a DOCTYPE');
  const elements = countXmlElements(text);
  if (elements > maxElements) {
    throw new AppError('PAYLOAD_TOO_LARGE', `XML body has ${elements} elements; at most ${maxElements} are accepted (PLEXUS_WEBHOOK_MAX_XML_ELEMENTS)`, 'user', { elements, maxElements });
  }
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new AppError('BAD_REQUEST', `body is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  try {
    return xmlParser.parse(text) as unknown;
  } catch (err) {
    // Well-formed, but beyond what the parser takes (e.g. its limit on nested tags).
    throw new AppError('BAD_REQUEST', `XML body cannot be read: ${(err as Error).message}`);
  }
}

/** Fields of a form body: `&`-separated parts that are not empty, as URLSearchParams counts them. */
function countFormFields(text: string): number {
  let count = 0;
  let from = 0;
  for (;;) {
    const amp = text.indexOf('&', from);
    const end = amp === -1 ? text.length : amp;
    if (end > from) count++;
    if (amp === -1) return count;
    from = amp + 1;
  }
}

/**
 * Repeated fields become arrays, as in the query string. Counted before parsing, so a body of
 * a million empty fields costs a scan, not a million entries; arrays grow in place, so repeats
 * cost linear time (copying the array per repeat made 30,000 of them take seconds).
 */
function formToObject(text: string, maxFields: number): Record<string, string | string[]> {
  const fields = countFormFields(text);
  if (fields > maxFields) {
    throw new AppError('PAYLOAD_TOO_LARGE', `form body has ${fields} fields; at most ${maxFields} are accepted (PLEXUS_WEBHOOK_MAX_FIELDS)`, 'user', { fields, maxFields });
  }
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of new URLSearchParams(text)) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return { ...out };
}

/**
 * What in a message the database could not store (NUL, an unpaired surrogate, JSON nested too
 * deep), named for the caller — checked before the call is answered, so nothing accepted is lost
 * on the way to storage. The query string and path were checked with the request.
 */
export function unstorablePart(parsed: ParsedBody, headers: Record<string, unknown>): string | undefined {
  const found = findUnstorable(parsed.body, 'body') ?? findUnstorable(parsed.attachments, 'attachments') ?? findUnstorable(headers, 'headers');
  return found ? `${found.path}: ${found.problem}` : undefined;
}

export function messageHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in headers) {
    const v = headers[k];
    if (v !== undefined && !DROPPED_HEADERS.has(k)) out[k] = v;
  }
  return out;
}

export interface MessageInput {
  method: 'GET' | 'POST';
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, unknown>;
  parsed: ParsedBody;
  requestId: string;
  /** What followed `/hook/:flowId/`, if anything. */
  suffix: string | undefined;
}

export function buildMessage(input: MessageInput): FlowMessage {
  const metadata = {
    source: 'webhook',
    method: input.method,
    requestId: input.requestId,
    receivedAt: new Date().toISOString(),
    ...(input.suffix ? { path: input.suffix } : {}),
  };
  const headers = messageHeaders(input.headers);
  if (input.method === 'GET') return { id: randomUUID(), attachments: {}, body: input.query, headers, metadata };
  return { id: randomUUID(), attachments: input.parsed.attachments, body: input.parsed.body, headers, metadata, query: input.query };
}
