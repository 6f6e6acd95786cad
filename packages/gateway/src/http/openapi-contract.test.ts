import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { operationalRoutes } from './api-routes.js';

describe('docs/openapi.yaml', () => {
  it('describes exactly the routes the gateway serves', () => {
    const doc = parse(
      readFileSync(new URL('../../../../docs/openapi.yaml', import.meta.url), 'utf8'),
    ) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const served = operationalRoutes({ ready: () => true, metrics: async () => '' })
      .map((route) => `${route.method} ${route.path}`)
      .sort();
    expect(documented).toEqual(served);
  });
});
