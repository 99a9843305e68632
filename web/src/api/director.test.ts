import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { graphqlError, M, parseLabelFilter, parseLabelValue, Q, scenariosOf, withScenarios } from './director';

// The Director's own SDL, read as text by Vite: the documents are checked against what the hub serves.
import SDL from '../../../server/src/modules/director/director.schema.graphql?raw';

describe('the Director client', () => {
  const schema = buildSchema(SDL);
  const operations = Object.entries({ ...Q, ...M });

  it.each(operations)('%s is a valid document of director.schema.graphql, named as it says', (_key, operation) => {
    const doc = parse(operation.document);
    expect(validate(schema, doc).map((e) => e.message)).toEqual([]);
    const names = doc.definitions.map((d) => ('name' in d ? d.name?.value : undefined));
    expect(names).toEqual([operation.name]);
  });

  it('refuses a field the schema does not have (the check above would catch a typo)', () => {
    expect(validate(schema, parse('query { applications { data { nmae } } }')).length).toBeGreaterThan(0);
  });

  it('names errors by the Director code and gives them the status it stands for', () => {
    const notFound = graphqlError(200, [{ message: 'application x not found', extensions: { error_code: 20, code: 'NOT_FOUND' } }]);
    expect([notFound.status, notFound.code, notFound.message]).toEqual([404, 'NOT_FOUND', 'application x not found']);
    const compass = graphqlError(200, [{ message: 'name taken', extensions: { error_code: 21 } }]);
    expect([compass.status, compass.code]).toEqual([409, 'NOT_UNIQUE']);
    const unauthenticated = graphqlError(401, [{ message: 'no token', extensions: { error_code: 26, code: 'UNAUTHENTICATED' } }]);
    expect([unauthenticated.status, unauthenticated.code]).toEqual([401, 'UNAUTHENTICATED']);
    const several = graphqlError(200, [{ message: 'a' }, { message: 'b' }]);
    expect(several.details?.problems).toEqual(['a', 'b']);
    expect(graphqlError(502, undefined).code).toBe('HTTP_502');
  });

  it('turns what a person types into label filters', () => {
    expect(parseLabelFilter('')).toBeUndefined();
    expect(parseLabelFilter(' env ')).toEqual({ key: 'env' });
    expect(parseLabelFilter('env=prod')).toEqual({ key: 'env', query: '"prod"' });
    expect(parseLabelFilter('size = 5')).toEqual({ key: 'size', query: '5' });
    expect(parseLabelFilter('tier=["gold"]')).toEqual({ key: 'tier', query: '["gold"]' });
    expect(parseLabelFilter('env=')).toEqual({ key: 'env' });
    expect(parseLabelFilter('=x')).toBeUndefined();
    expect(parseLabelValue('[1, 2]')).toEqual([1, 2]);
    expect(parseLabelValue('eu-west')).toBe('eu-west');
  });

  it('reads and rewrites the scenarios enum, keeping the rest of its schema', () => {
    const def = { key: 'scenarios', schema: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^x$', enum: ['DEFAULT', 'SHOP'] } } };
    expect(scenariosOf(def)).toEqual(['DEFAULT', 'SHOP']);
    expect(scenariosOf({ key: 'scenarios', schema: JSON.stringify(def.schema) })).toEqual(['DEFAULT', 'SHOP']);
    expect(scenariosOf(undefined)).toEqual(['DEFAULT']);
    expect(withScenarios(def, ['DEFAULT', 'SHOP', 'ERP'])).toEqual({ type: 'array', minItems: 1, items: { type: 'string', pattern: '^x$', enum: ['DEFAULT', 'SHOP', 'ERP'] } });
  });
});
