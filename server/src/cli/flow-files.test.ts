import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { loadFlowDocuments, locateProblems, parseFieldPath } from './flow-files.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-flow-files-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof CliError) return err.problems;
    throw err;
  }
  throw new Error('expected a CliError');
}

describe('flow files', () => {
  it('reads YAML and JSON files of a directory, in name order, with several documents per YAML file', () => {
    write('b.json', '{"name": "json flow", "graph": {"nodes": []}}');
    write('a.yaml', 'name: first\n---\nname: second\n');
    write('notes.txt', 'not a flow');
    write('.hidden.yaml', 'name: hidden');
    write('sub/deep.yml', 'name: deep');
    const docs = loadFlowDocuments([dir]);
    expect(docs.map((d) => [d.name, path.basename(d.source)])).toEqual([
      ['first', 'a.yaml#1'],
      ['second', 'a.yaml#2'],
      ['json flow', 'b.json'],
    ]);
    expect(loadFlowDocuments([dir], { recursive: true }).map((d) => d.name)).toContain('deep');
  });

  it('drops the fields the server sets, so a flow read back with -o yaml applies again', () => {
    const file = write('f.yaml', 'id: 123\nstatus: active\nversion: 4\ntenant: default\ncreatedAt: x\nupdatedAt: y\nstatusReason: z\nname: f\ngraph: {nodes: []}\n');
    expect(loadFlowDocuments([file])[0]!.body).toEqual({ name: 'f', graph: { nodes: [] } });
  });

  it('places the problems the hub lists at their line and column, JSON included', () => {
    const yaml = write('f.yaml', 'name: f\ngraph:\n  nodes:\n    - id: a\n      componentId: nope\n      function: run\n  edges:\n    - source: a\n      target: c\n');
    const [doc] = loadFlowDocuments([yaml]);
    expect(locateProblems(doc!, ['graph.nodes[0].componentId: unknown component nope', 'graph.edges[0].target: "c" is not a node of this flow', 'graph.nodes[0] ("a"): unknown component nope'])).toEqual([
      `${yaml}:5:7: graph.nodes[0].componentId: unknown component nope`,
      `${yaml}:9:7: graph.edges[0].target: "c" is not a node of this flow`,
      `${yaml}:4:7: graph.nodes[0] ("a"): unknown component nope`,
    ]);
    // A field the file lacks points at the nearest part it has; a problem without a field at the document.
    expect(locateProblems(doc!, ['graph.nodes[0].fields.expression: is required', 'graph: the edges form a cycle'])).toEqual([
      `${yaml}:4:7: graph.nodes[0].fields.expression: is required`,
      `${yaml}:2:1: graph: the edges form a cycle`,
    ]);
    const json = write('g.json', '{\n  "name": "g",\n  "cron": "bad"\n}\n');
    expect(locateProblems(loadFlowDocuments([json])[0]!, ['cron: "bad" must have 5 fields'])).toEqual([`${json}:3:3: cron: "bad" must have 5 fields`]);
  });

  it('lists every problem of every file at once: syntax, no name, duplicate names, not a mapping, empty', () => {
    const broken = write('a.yaml', 'name: a\ngraph: [1,\n  nodes: 2\n');
    const nameless = write('b.yaml', 'description: no name\n');
    const first = write('c.yaml', 'name: twice\n');
    const second = write('d.json', '{"name": "twice"}');
    const list = write('e.yaml', '- name: in a list\n');
    const empty = write('f.yaml', '# nothing\n');
    const problems = problemsOf(() => loadFlowDocuments([dir]));
    expect(problems).toHaveLength(5);
    expect(problems[0]).toMatch(new RegExp(`^${broken}:\\d+:\\d+: `));
    expect(problems[1]).toBe(`${nameless}:1:1: name: is required; flows are matched by name`);
    expect(problems[2]).toBe(`${second}:1:2: name: "twice" is also the name of the flow in ${first}; names identify flows`);
    expect(problems[3]).toBe(`${list}:1:1: a flow must be a mapping (name, graph, …), not a list`);
    expect(problems[4]).toBe(`${empty}: holds no flow`);
  });

  it('names a path that does not exist', () => {
    expect(() => loadFlowDocuments([path.join(dir, 'missing')])).toThrow(/missing: no such file or directory/);
  });

  it('reads the field a problem starts with', () => {
    expect(parseFieldPath('graph.nodes[12].fields.url: must be a URL')).toEqual(['graph', 'nodes', 12, 'fields', 'url']);
    expect(parseFieldPath('graph.nodes[1] ("x"): unknown component')).toEqual(['graph', 'nodes', 1]);
    expect(parseFieldPath('flowSettings.webhooks.secret: is required')).toEqual(['flowSettings', 'webhooks', 'secret']);
    expect(parseFieldPath('the flow is invalid')).toEqual(['the']);
    expect(parseFieldPath('[oops')).toEqual([]);
  });
});
