/**
 * The message payload schemas of an AsyncAPI document (2.x: `channels.*.publish|subscribe.message`,
 * `oneOf` too; 3.x: `channels.*.messages.*`, `components.messages.*`), compiled with ajv so an
 * event's `data` is checked against them. A local `$ref` (`#/components/…`) resolves inside the
 * document. Documents without payload schemas accept any data (Compass clients send placeholder
 * specs). Compiled validators are kept per definition and spec text.
 */
import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import YAML from 'yaml';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseSpec(text: string): Json | undefined {
  try {
    const v: unknown = text.trim().startsWith('{') ? JSON.parse(text) : YAML.parse(text, { maxAliasCount: 100 });
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** JSON pointers (from the document root) of every message payload. */
function payloadPointers(doc: Json): string[] {
  const out: string[] = [];
  const esc = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');
  const addMessage = (msg: unknown, at: string): void => {
    if (!isObject(msg)) return;
    if (Array.isArray(msg.oneOf)) msg.oneOf.forEach((m, i) => addMessage(m, `${at}/oneOf/${i}`));
    else if ('payload' in msg) out.push(`${at}/payload`);
    else if (typeof msg.$ref === 'string' && msg.$ref.startsWith('#/')) {
      const target = msg.$ref.slice(1);
      const resolved = target.split('/').slice(1).reduce<unknown>((v, k) => (isObject(v) ? v[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
      if (isObject(resolved) && 'payload' in resolved) out.push(`${target}/payload`);
    }
  };
  const channels = isObject(doc.channels) ? doc.channels : {};
  for (const [name, ch] of Object.entries(channels)) {
    if (!isObject(ch)) continue;
    for (const op of ['publish', 'subscribe']) {
      const o = ch[op];
      if (isObject(o)) addMessage(o.message, `/channels/${esc(name)}/${op}/message`);
    }
    if (isObject(ch.messages)) for (const [m, msg] of Object.entries(ch.messages)) addMessage(msg, `/channels/${esc(name)}/messages/${esc(m)}`);
  }
  if (out.length === 0) {
    const comps = isObject(doc.components) && isObject(doc.components.messages) ? doc.components.messages : {};
    for (const [m, msg] of Object.entries(comps)) addMessage(msg, `/components/messages/${esc(m)}`);
  }
  return [...new Set(out)];
}

export interface PayloadCheck {
  /** Undefined when the data fits (or there is nothing to check against); else the problem with its path. */
  (data: unknown): string | undefined;
}

const accept: PayloadCheck = () => undefined;

export class PayloadSchemas {
  private readonly checks = new Map<string, PayloadCheck>();

  /** The check for an event definition's spec (compiled once per spec text). */
  checkFor(definitionId: string, specData: string | null): PayloadCheck {
    if (!specData) return accept;
    const key = `${definitionId}:${createHash('sha256').update(specData).digest('base64url')}`;
    let check = this.checks.get(key);
    if (!check) {
      check = this.compile(specData);
      if (this.checks.size > 1_000) this.checks.clear();
      this.checks.set(key, check);
    }
    return check;
  }

  private compile(specData: string): PayloadCheck {
    const doc = parseSpec(specData);
    if (!doc) return accept;
    const pointers = payloadPointers(doc);
    if (pointers.length === 0) return accept;
    const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false });
    let validators: ValidateFunction[];
    try {
      ajv.addSchema(doc, 'spec');
      validators = pointers.map((p) => ajv.compile({ $ref: `spec#${p}` }));
    } catch {
      // A schema ajv cannot compile checks nothing (the Director stored the spec with its problems).
      return accept;
    }
    return (data) => {
      let first: string | undefined;
      for (const v of validators) {
        if (v(data)) return undefined;
        const e = v.errors?.[0];
        first ??= e ? `data${e.instancePath.replace(/\//g, '.')}: ${e.message ?? 'does not fit'}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}` : 'data: does not fit';
      }
      return `${first} (the event definition's AsyncAPI message payload schema)`;
    };
  }
}
