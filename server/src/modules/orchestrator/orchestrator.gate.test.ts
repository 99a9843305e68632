import { describe, expect, it } from 'vitest';
import { AppError } from '../../platform/errors.js';
import { TenantGate } from './orchestrator.gate.js';

/** Resolves to whether `p` settled within a few turns of the event loop. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

describe('TenantGate (concurrent executions per tenant)', () => {
  it('lets a tenant run its limit of executions and holds the next until one leaves', async () => {
    const gate = new TenantGate(() => 2);
    const leave1 = await gate.enter('a', 'x1', true);
    await gate.enter('a', 'x2', true);
    const third = gate.enter('a', 'x3', true);
    expect(await settled(third)).toBe(false);
    expect(gate.running('a')).toBe(2);
    expect(gate.waiting('a')).toBe(1);
    leave1();
    expect(await settled(third)).toBe(true);
    expect(gate.running('a')).toBe(2);
  });

  it('never holds another tenant, nor another job of an execution already running', async () => {
    const gate = new TenantGate((tenant) => (tenant === 'a' ? 1 : 100));
    await gate.enter('a', 'x1', true);
    expect(await settled(gate.enter('a', 'x1', false))).toBe(true);
    expect(await settled(gate.enter('b', 'y1', true))).toBe(true);
    expect(await settled(gate.enter('a', 'x2', true))).toBe(false);
  });

  it('admits jobs of executions under way before jobs that would start a new one', async () => {
    const gate = new TenantGate(() => 1);
    const leave = await gate.enter('a', 'x1', true);
    const order: string[] = [];
    const starting = gate.enter('a', 'new', true).then((l) => (order.push('new'), l));
    const continuing = gate.enter('a', 'old', false).then((l) => (order.push('old'), l));
    leave();
    (await continuing)();
    await starting;
    expect(order).toEqual(['old', 'new']);
  });

  it('gives a waiting job back (transient) when its deadline passes, and every waiter when closed', async () => {
    const gate = new TenantGate(() => 1);
    await gate.enter('a', 'x1', true);
    const late = await gate.enter('a', 'x2', true, Date.now() + 20).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(AppError);
    expect((late as AppError).kind).toBe('transient');
    expect((late as AppError).message).toContain('concurrentExecutions');
    expect(gate.waiting('a')).toBe(0);
    const waiting = gate.enter('a', 'x3', true).catch((e: unknown) => e);
    gate.close();
    expect(((await waiting) as AppError).kind).toBe('transient');
  });

  it('follows a limit changed while jobs wait', async () => {
    let limit = 1;
    const gate = new TenantGate(() => limit);
    const leave = await gate.enter('a', 'x1', true);
    const second = gate.enter('a', 'x2', true);
    const third = gate.enter('a', 'x3', true);
    limit = 3;
    leave();
    expect(await settled(second)).toBe(true);
    expect(await settled(third)).toBe(true);
  });
});
