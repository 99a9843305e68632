import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import { ErrorNote } from './common';

describe('errors are shown by name', () => {
  it('names a hub error by its code, with its message', () => {
    render(<ErrorNote error={new ApiError(409, 'ALREADY_EXISTS', 'tenant acme already exists')} />);
    expect(screen.getByRole('alert').textContent).toBe('ALREADY_EXISTS: tenant acme already exists');
  });

  it('lists the problems of a refused input', () => {
    render(<ErrorNote error={new ApiError(400, 'VALIDATION_FAILED', 'invalid', { problems: ['name: is required', 'url: not a URL'] })} />);
    const alert = screen.getByRole('alert');
    expect(alert.textContent).toContain('VALIDATION_FAILED: The hub found these problems:');
    expect(Array.from(alert.querySelectorAll('li')).map((li) => li.textContent)).toEqual(['name: is required', 'url: not a URL']);
  });

  it('names a hub that did not answer', () => {
    render(<ErrorNote error={new TypeError('Failed to fetch')} />);
    expect(screen.getByRole('alert').textContent).toBe('HUB_UNREACHABLE: Failed to fetch');
  });
});
