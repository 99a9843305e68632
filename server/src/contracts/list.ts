/**
 * The list envelope every collection route answers with (DESIGN.md "REST conventions"):
 * `{data, meta:{total,page,perPage,totalPages}}`, paged with `page[size]` / `page[number]`.
 */
import { z } from 'zod';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** Query-string fields shared by every list route; spread into a route's `z.strictObject`. */
export const pageQuery = {
  'page[size]': z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  'page[number]': z.coerce.number().int().min(1).max(1_000_000).default(1),
};

/** Free-text `search` (case-insensitive substring). */
export const searchQuery = z.string().min(1).max(200).optional();

/** `sort=field` ascending or `sort=-field` descending, over the given fields. */
export function sortQuery<const F extends string>(fields: readonly [F, ...F[]]) {
  const values = fields.flatMap((f) => [f, `-${f}`]) as [F | `-${F}`, ...(F | `-${F}`)[]];
  return z.enum(values).optional();
}

export function parseSort<F extends string>(sort: F | `-${F}` | undefined, fallback: F | `-${F}`): { field: F; desc: boolean } {
  const s = sort ?? fallback;
  return s.startsWith('-') ? { field: s.slice(1) as F, desc: true } : { field: s as F, desc: false };
}

export const ListMeta = z.object({
  total: z.number().int(),
  page: z.number().int(),
  perPage: z.number().int(),
  totalPages: z.number().int(),
});
export type ListMeta = z.infer<typeof ListMeta>;

export function listMeta(total: number, page: number, perPage: number): ListMeta {
  return { total, page, perPage, totalPages: Math.ceil(total / perPage) };
}

/** The response schema of a list of `item`. */
export function listOf<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), meta: ListMeta });
}
