import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { accessRoutes } from '../access/access-routes.js';
import { ApprovalBroker } from '../approvals/approval-broker.js';
import { approvalPageRoutes } from '../approvals/approval-page-routes.js';
import { approvalRoutes } from '../approvals/approval-routes.js';
import { resolveConfig } from '../config/load-config.js';
import { eventRoutes } from '../events/event-routes.js';
import { GatewayIdentity } from '../identity/gateway-identity.js';
import { identityRoutes } from '../identity/identity-routes.js';
import { operationalRoutes } from './api-routes.js';

describe('docs/openapi.yaml', () => {
  it('describes exactly the routes the gateway serves', async () => {
    const doc = parse(
      readFileSync(new URL('../../../../docs/openapi.yaml', import.meta.url), 'utf8'),
    ) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-openapi-'));
    const identity = await GatewayIdentity.open(
      {
        issuer: 'urn:test',
        keysDir: join(dir, 'keys'),
        credentialTtlMs: 600_000,
        keyRotationMs: 86_400_000,
        oidc: null,
        groupAccess: [],
        agents: [],
        delegationMaxMs: 86_400_000,
      },
      { issuer: 'urn:test', dataDir: dir, logger: silentLogger, role: 'issuer' },
    );
    const served = [
      ...operationalRoutes({ ready: () => true, metrics: async () => '' }),
      ...identityRoutes(identity, () => []),
      ...approvalRoutes(new ApprovalBroker(), identity),
      ...accessRoutes({
        store: () => Promise.reject(new Error('not used')),
        identity,
        config: {
          resources: {},
          tokens: {},
          identity: null,
          approvals: {
            publicUrl: null,
            maxPendingPerPerson: 20,
            maxRequestsPerSession: 100,
            webhooks: [],
          },
        },
      }),
      ...eventRoutes({
        store: {
          query: () => Promise.reject(new Error('not used')),
          run: () => Promise.reject(new Error('not used')),
        },
        identity,
        config: resolveConfig(
          { listeners: { postgres: {} }, resources: {} },
          { baseDir: dir, env: {} },
        ),
        logger: silentLogger,
      }),
      ...approvalPageRoutes({
        publicUrl: null,
        links: null,
        broker: new ApprovalBroker(),
        identity,
        logger: silentLogger,
      }),
    ]
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, '{$1}')}`)
      .sort();
    rmSync(dir, { recursive: true, force: true });
    expect(documented).toEqual(served);
  });
});
