/** A started service the registry can stop. */
export interface RegisteredService {
  /** Stops the service and removes its files. */
  stop(): Promise<void>;
  /** Best-effort synchronous stop for a process 'exit' handler. */
  stopSync(): void;
}

const services = new Set<RegisteredService>();
let hooked = false;

function stopAllSync(): void {
  for (const service of services) {
    try {
      service.stopSync();
    } catch {
      // Keep stopping the others; the process is exiting.
    }
  }
  services.clear();
}

/** Adds a service to the registry; returns a function that removes it again. @internal */
export function registerService(service: RegisteredService): () => void {
  if (!hooked) {
    hooked = true;
    process.once('exit', stopAllSync);
  }
  services.add(service);
  return () => {
    services.delete(service);
  };
}

/**
 * Stops every service this process started through the testkit and has not stopped yet.
 * The same happens, synchronously and best-effort, when the process exits; servers run with a
 * parent-death signal too, so they also go when the process is killed.
 */
export async function stopAllServices(): Promise<void> {
  const running = [...services];
  const results = await Promise.allSettled(running.map((service) => service.stop()));
  const failed = results.filter((result) => result.status === 'rejected');
  if (failed.length > 0) {
    throw new AggregateError(
      failed.map((result) => result.reason as unknown),
      `${failed.length} service(s) failed to stop`,
    );
  }
}
