import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { cleanFields, formSchemaFor, labelOf, uiSchemaFor } from './form';
import { evaluateJsonata } from './JsonataField';
import { NodeForm } from './NodeForm';
import { valueSchemaOf } from '../pages/Secrets';
import { SECRET_TYPES } from '@contracts/secrets';

/** The http-request fields schema as GET /api/v1/components gives it (abridged). */
const httpFields = {
  type: 'object',
  properties: {
    method: { default: 'GET', type: 'string', enum: ['GET', 'POST', 'PUT'] },
    url: { type: 'string', minLength: 1, maxLength: 8192, description: 'http(s) URL; `{{ JSONata }}` parts are evaluated over the body' },
    headers: { default: {}, type: 'object', propertyNames: { type: 'string', pattern: '^[A-Za-z-]+$' }, additionalProperties: { type: 'string' } },
    body: { type: 'string', minLength: 1, description: 'JSONata over the body (`$message` is the whole message); default: the message body.' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 300000 },
    failOnHttpError: { type: 'boolean' },
  },
  required: ['url'],
  additionalProperties: false,
};

describe('form generation from a component schema', () => {
  it('titles every field from its name and drops what the form validator cannot read', () => {
    const schema = formSchemaFor(httpFields);
    const props = schema.properties as Record<string, { title: string; propertyNames?: unknown }>;
    expect(Object.values(props).map((p) => p.title)).toEqual(['Method', 'Url', 'Headers', 'Body', 'Timeout ms', 'Fail on http error']);
    expect(props.headers!.propertyNames).toBeUndefined();
    expect(httpFields.properties.headers.propertyNames).toBeDefined();
    expect(labelOf('allowPrivateNetwork')).toBe('Allow private network');
  });

  it('gives code and JSONata fields several lines, everything else one', () => {
    const ui = uiSchemaFor(httpFields);
    expect(ui.body).toEqual({ 'ui:widget': 'textarea', 'ui:options': { rows: 3 } });
    expect(ui.url).toBeUndefined();
    expect(ui.method).toBeUndefined();
    expect(uiSchemaFor({ properties: { code: { type: 'string' } } }).code).toEqual({ 'ui:widget': 'textarea', 'ui:options': { rows: 10 } });
    expect(ui['ui:submitButtonOptions']).toEqual({ norender: true });
  });

  it('leaves blank optional fields out', () => {
    expect(cleanFields({ url: 'http://x', body: '', timeoutMs: undefined, failOnHttpError: false })).toEqual({ url: 'http://x', failOnHttpError: false });
  });

  it('renders a labelled input per field, reports edits and shows schema errors as they are typed', async () => {
    const onChange = vi.fn();
    render(<NodeForm idPrefix="send" schema={httpFields} value={{ url: 'http://a' }} onChange={onChange} />);
    const url = screen.getByRole('textbox', { name: /^Url/ });
    expect((url as HTMLInputElement).value).toBe('http://a');
    expect(screen.getByRole('combobox', { name: /^Method/ })).toBeTruthy();
    expect(screen.getByRole('spinbutton', { name: /^Timeout ms/ })).toBeTruthy();
    expect(screen.getByRole('textbox', { name: /^Body/ }).tagName).toBe('TEXTAREA');
    fireEvent.change(url, { target: { value: 'http://b' } });
    await waitFor(() => expect(onChange).toHaveBeenLastCalledWith(expect.objectContaining({ url: 'http://b' })));
    fireEvent.change(screen.getByRole('spinbutton', { name: /^Timeout ms/ }), { target: { value: '0' } });
    await waitFor(() => expect(document.body.textContent).toMatch(/must be >= 1/));
  });

  it('shows nothing editable when read-only', () => {
    render(<NodeForm idPrefix="ro" schema={httpFields} value={{ url: 'http://a' }} onChange={() => undefined} readonly />);
    expect((screen.getByRole('textbox', { name: /^Url/ }) as HTMLInputElement).readOnly).toBe(true);
  });
});

describe('JSONata on a sample message', () => {
  it('evaluates a mapper and a condition, and names a bad sample or expression', async () => {
    expect(await evaluateJsonata('{"total": qty * price}', '{"qty": 3, "price": 50}')).toEqual({ ok: true, value: { total: 150 } });
    expect(await evaluateJsonata('qty > 5', '{"qty": 3}')).toEqual({ ok: true, value: false });
    const badSample = await evaluateJsonata('qty', '{qty: 3}');
    expect(badSample.ok).toBe(false);
    expect(!badSample.ok && badSample.error).toMatch(/^sample message:/);
    const badExpr = await evaluateJsonata('qty +', '{"qty": 3}');
    expect(!badExpr.ok && badExpr.error).toMatch(/at \d+/);
  });
});

describe('secret forms from the shared zod contracts', () => {
  it('renders a form for every secret type, with the contract’s fields', () => {
    for (const type of SECRET_TYPES) {
      const { unmount } = render(<NodeForm idPrefix={`secret-${type}`} schema={valueSchemaOf(type)} value={{}} onChange={() => undefined} />);
      if (type === 'basic') {
        expect(screen.getByRole('textbox', { name: /^Username/ })).toBeTruthy();
        expect(screen.getByRole('textbox', { name: /^Password/ })).toBeTruthy();
      }
      if (type === 'oauth2') expect(screen.getByRole('combobox', { name: /^Grant type/ })).toBeTruthy();
      unmount();
    }
    expect((valueSchemaOf('basic') as { required: string[] }).required).toEqual(['username', 'password']);
  });
});
