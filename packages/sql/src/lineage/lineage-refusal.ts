/**
 * Thrown inside the tracer when it cannot prove a lineage; `traceLineage` turns it into
 * `{ ok: false, reason }`. Never escapes the package.
 */
export class LineageRefusal extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'LineageRefusal';
  }
}

/** Stops tracing with a reason that says precisely what could not be resolved. */
export function refuse(reason: string): never {
  throw new LineageRefusal(reason);
}
