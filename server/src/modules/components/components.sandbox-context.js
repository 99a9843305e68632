// @ts-check
/*
 * Runs inside every fresh isolated-vm context, before the tenant's code. The runner
 * (components.sandbox-runner.mjs) compiles this file once per isolate and calls the function it
 * evaluates to. There is no Node.js here: no require, no process, no timers — only V8's built-ins.
 *
 * It builds `console`, `fetch` and the run's arguments from objects of this context only, and
 * turns the outcome into strings, so nothing but strings crosses to the runner. It keeps the
 * built-ins it needs before user code runs, because user code may replace any global or
 * prototype method: that may change the tenant's own output, never what shape leaves the context.
 *
 * hostLog(level, text) and hostFetch (a reference to a runner function taking requestJson and
 * returning a promise of resultJson) are the runner's two functions; the runner enforces its caps again, so these checks are a first line, not the only one.
 */
// eslint-disable-next-line @typescript-eslint/no-unused-expressions -- the script's value is this function: the runner calls it through a reference
(
  /**
   * @param {(level: string, text: string) => void} hostLog
   * @param {{ apply(receiver: undefined, args: [string], options: object): Promise<string> }} hostFetch
   * @param {string} inputJson `{id, body, headers, metadata, attachments, snapshot}`
   * @param {{ maxOutputChars: number; maxLogLines: number; maxLogChars: number; maxFetchCalls: number }} limits
   * @returns {Promise<string>} `1` + the JSON array of emitted bodies, or `0` + the JSON of
   *   `{name, message, line?, column?, transient}`: a string, because resolving a promise with an
   *   object would consult a `then` that user code may have put on Object.prototype
   */
  function plexusContext(hostLog, hostFetch, inputJson, limits) {
    'use strict';
    // The tenant's code as an async function, left here by the runner's script; taken off the
    // global object before the code can look for it.
    const holder = /** @type {{ __plexusCode?: (...args: unknown[]) => Promise<unknown> }} */ (/** @type {unknown} */ (globalThis));
    const userFn = holder.__plexusCode;
    delete holder.__plexusCode;
    const parse = JSON.parse;
    const stringify = JSON.stringify;
    const apply = Reflect.apply;
    const ownKeys = Object.keys;
    const freeze = Object.freeze;
    const slice = String.prototype.slice;
    const toLowerCase = String.prototype.toLowerCase;
    const join = Array.prototype.join;
    const push = Array.prototype.push;
    const exec = RegExp.prototype.exec;
    const PromiseCtor = Promise;
    const then = Promise.prototype.then;
    const ErrorCtor = Error;
    const isArray = Array.isArray;
    const applyHostFetch = hostFetch.apply;
    const transientErrors = new WeakSet();
    const weakSetHas = WeakSet.prototype.has;
    const weakSetAdd = WeakSet.prototype.add;
    const LINE = /code\.js:(\d+)(?::(\d+))?/;

    /** @param {string} s @param {number} n */
    const cut = (s, n) => (s.length > n ? apply(slice, s, [0, n]) : s);
    /** @param {unknown} v */
    const asText = (v) => {
      if (typeof v === 'string') return v;
      try {
        const json = stringify(v);
        return typeof json === 'string' ? json : String(v);
      } catch {
        try {
          return String(v);
        } catch {
          return '[unprintable]';
        }
      }
    };

    let logLines = 0;
    /** @param {string} level */
    const logAt = (level) =>
      /** @param {unknown[]} args */
      (...args) => {
        if (logLines >= limits.maxLogLines) return;
        logLines++;
        /** @type {string[]} */
        const parts = [];
        for (let i = 0; i < args.length; i++) apply(push, parts, [asText(args[i])]);
        hostLog(level, cut(apply(join, parts, [' ']), limits.maxLogChars));
      };
    globalThis.console = /** @type {Console} */ (
      /** @type {unknown} */ (freeze({ log: logAt('info'), info: logAt('info'), debug: logAt('debug'), warn: logAt('warn'), error: logAt('error') }))
    );

    /** @param {string} message @param {boolean} transient */
    const fetchError = (message, transient) => {
      const err = new ErrorCtor('fetch failed: ' + message);
      if (transient) apply(weakSetAdd, transientErrors, [err]);
      return err;
    };

    let fetchCalls = 0;
    /**
     * @param {unknown} url
     * @param {{ method?: unknown; headers?: unknown; body?: unknown } | undefined} init
     */
    async function fetch(url, init) {
      if (fetchCalls >= limits.maxFetchCalls) throw fetchError(`more than ${limits.maxFetchCalls} fetch calls in one run`, false);
      fetchCalls++;
      const options = init && typeof init === 'object' ? init : {};
      /** @type {Record<string, string>} */
      const headers = {};
      const given = options.headers;
      if (given && typeof given === 'object') {
        const keys = ownKeys(given);
        for (let i = 0; i < keys.length; i++) {
          const k = /** @type {string} */ (keys[i]);
          headers[k] = String(/** @type {Record<string, unknown>} */ (given)[k]);
        }
      }
      const body = options.body === undefined || options.body === null ? undefined : String(options.body);
      const request = stringify({ url: String(url), method: options.method === undefined ? 'GET' : String(options.method), headers, body });
      const answer = parse(await apply(applyHostFetch, hostFetch, [undefined, [request], { arguments: { copy: true }, result: { promise: true, copy: true } }]));
      if (!answer.ok) throw fetchError(String(answer.error), answer.transient === true);
      /** @type {{ status: number; statusText: string; url: string; headers: Record<string, string>; body: string }} */
      const r = answer.response;
      const responseHeaders = r.headers;
      /** @param {unknown} name */
      const headerOf = (name) => {
        const v = responseHeaders[apply(toLowerCase, String(name), [])];
        return v === undefined ? null : v;
      };
      return freeze({
        status: r.status,
        statusText: r.statusText,
        ok: r.status >= 200 && r.status < 300,
        url: r.url,
        headers: freeze({
          get: headerOf,
          /** @param {unknown} name */
          has: (name) => headerOf(name) !== null,
          entries: () => Object.entries(responseHeaders)[Symbol.iterator](),
        }),
        text: async () => r.body,
        json: async () => parse(r.body),
      });
    }
    globalThis.fetch = /** @type {typeof globalThis.fetch} */ (/** @type {unknown} */ (fetch));

    const input = parse(inputJson);
    /** @type {unknown[]} */
    const emitted = [];
    /** @param {unknown} value */
    const emit = (value) => {
      apply(push, emitted, [value === undefined ? null : value]);
    };
    const message = { id: input.id, body: input.body, headers: input.headers, metadata: input.metadata, attachments: input.attachments };

    /**
     * Reads what it can of a thrown value; each part on its own, since any of them may be a
     * getter, and `stack` runs the code's own Error.prepareStackTrace.
     * @param {unknown} thrown
     */
    const describe = (thrown) => {
      let name = 'Error';
      let text = 'an error that cannot be read';
      let stack = '';
      const e = /** @type {{ name?: unknown; message?: unknown; stack?: unknown }} */ (thrown);
      const isObject = e !== null && (typeof e === 'object' || typeof e === 'function');
      try {
        if (isObject && typeof e.name === 'string') name = e.name;
      } catch {
        // Keep the default.
      }
      try {
        text = isObject && typeof e.message === 'string' ? e.message : asText(thrown);
      } catch {
        // Keep the default.
      }
      try {
        if (isObject && typeof e.stack === 'string') stack = e.stack;
      } catch {
        // No line then.
      }
      const at = apply(exec, LINE, [stack]);
      /** @type {{ name: string; message: string; line?: number; column?: number; transient: boolean }} */
      const out = { name: cut(String(name), 200), message: cut(String(text), 2000), transient: false };
      if (at) {
        out.line = Number(at[1]);
        if (at[2] !== undefined) out.column = Number(at[2]);
      }
      try {
        out.transient = typeof thrown === 'object' && thrown !== null && apply(weakSetHas, transientErrors, [thrown]) === true;
      } catch {
        out.transient = false;
      }
      return out;
    };

    return new PromiseCtor((resolve) => {
      /** @param {unknown} thrown */
      const failed = (thrown) => resolve('0' + stringify(describe(thrown)));
      /** @param {unknown} result */
      const finished = (result) => {
        try {
          const out = emitted.length > 0 ? emitted : result === undefined ? [] : [result];
          const json = stringify(out);
          if (typeof json !== 'string' || !isArray(parse(json))) throw new ErrorCtor('the emitted values are not JSON');
          if (json.length > limits.maxOutputChars) throw new ErrorCtor(`output larger than ${limits.maxOutputChars} characters of JSON`);
          resolve('1' + json);
        } catch (err) {
          failed(err);
        }
      };
      try {
        if (typeof userFn !== 'function') throw new ErrorCtor('the code did not define its function');
        apply(then, userFn(input.body, input.headers, input.metadata, message, input.snapshot, emit), [finished, failed]);
      } catch (err) {
        failed(err);
      }
    });
  }
);
