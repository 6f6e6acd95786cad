import type { CopyPlanSpec, RowPlanSpec } from '@portcullis/masking';

/**
 * Faults a test can ask a worker for. Honoured only when the worker's environment has
 * `PORTCULLIS_TEST_HOOKS=1`; ignored otherwise, so production traffic cannot trigger them.
 * `exit`: `process.exit(1)` mid-task; `throw`: the task throws; `uncaught`: an error thrown
 * outside the task (the worker thread dies); `hang`: a busy loop that never returns.
 */
export type MaskTestHook = 'exit' | 'throw' | 'uncaught' | 'hang';

/** The message the pool posts to a worker: one chunk to mask. */
export type MaskTask = RowsMaskTask | CopyMaskTask;

interface MaskTaskBase {
  /** Identifies the spec; the worker compiles each id once and keeps it in a bounded cache. */
  readonly planId: string;
  /** The chunk's bytes: an ArrayBuffer of its own, transferred, holding the chunk at offset 0. */
  readonly buffer: ArrayBuffer;
  /** The chunk's length in `buffer`. */
  readonly length: number;
  /** First frame to mask. */
  readonly start: number;
  /** End of the frames to mask. */
  readonly end: number;
  readonly testHook?: MaskTestHook;
}

/** DataRows, through `rewriteDataRows`. */
export interface RowsMaskTask extends MaskTaskBase {
  readonly kind: 'rows';
  readonly spec: RowPlanSpec;
}

/** CopyData messages of a `COPY … TO STDOUT` in text or CSV format, through `rewriteCopyData`. */
export interface CopyMaskTask extends MaskTaskBase {
  readonly kind: 'copy';
  readonly spec: CopyPlanSpec;
  /** The first CopyData in the range is the CSV header line: left alone. */
  readonly header: boolean;
}

/** A worker's answer. Errors cross the thread as `{ code, message }`, never as objects. */
export type MaskReply = MaskReplyOk | MaskReplyFailed;

/** The chunk was masked (or needed no change). */
export interface MaskReplyOk {
  readonly ok: true;
  /** The input buffer, transferred back. */
  readonly buffer: ArrayBuffer;
  /** The rewritten frames of `[start, consumed)` at offset 0 (transferred); null: no change. */
  readonly output: ArrayBuffer | null;
  /** Bytes of `output` in use (its ArrayBuffer may be longer). */
  readonly outputLength: number;
  readonly consumed: number;
  readonly frames: number;
  readonly rewrittenFrames: number;
  readonly maskedValues: number;
  readonly maskedColumns: readonly number[];
}

/** The worker caught an error; `code` is a Portcullis error code when the error had one. */
export interface MaskReplyFailed {
  readonly ok: false;
  readonly code: string;
  readonly message: string;
}
