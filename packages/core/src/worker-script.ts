import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** Where a worker thread's script is, and the Node flags it needs to load. */
export interface WorkerScript {
  readonly url: URL;
  /** Flags for the worker; undefined when it needs none (the build). */
  readonly execArgv: string[] | undefined;
}

/**
 * The worker script `name` next to the module at `moduleUrl` (its `import.meta.url`). The build
 * loads the compiled `name.js`. Tests run the sources as TypeScript (through vitest or tsx), and
 * then the worker loads `name.ts` through tsx, resolving workspace packages to their sources as
 * its parent does. Measure speed against the build: tsx-compiled workers run slower.
 */
export function workerScript(moduleUrl: string, name: string): WorkerScript {
  const fromSource = moduleUrl.endsWith('.ts');
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, moduleUrl);
  if (!fromSource) return { url, execArgv: undefined };
  const tsx = pathToFileURL(createRequire(moduleUrl).resolve('tsx')).href;
  return { url, execArgv: ['--conditions=@portcullis/source', '--import', tsx] };
}
