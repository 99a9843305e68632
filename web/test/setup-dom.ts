// Testing Library cleans the DOM after each test when globals are on; ours are imported, so say it.
import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

afterEach(() => cleanup());
