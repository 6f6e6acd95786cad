import { RecordBatchBuilder } from './record-batch-builder.js';

/** One partition's batch in a {@link ProduceSet}. */
export interface ProduceSetBatch {
  readonly topic: string;
  readonly partition: number;
  readonly builder: RecordBatchBuilder;
}

/**
 * The records of one send, grouped by topic and partition, each partition's records encoded
 * into its own {@link RecordBatchBuilder} as they are added. Reusable: {@link clear} keeps the
 * builders and their buffers for the next send, so a steady stream of sends allocates little.
 */
export class ProduceSet {
  readonly #topics = new Map<string, (RecordBatchBuilder | undefined)[]>();
  readonly #initialBatchBytes: number;

  constructor(options: { initialBatchBytes?: number } = {}) {
    this.#initialBatchBytes = options.initialBatchBytes ?? 64 * 1024;
  }

  /** The batch records for `topic`'s `partition` go into. */
  batch(topic: string, partition: number): RecordBatchBuilder {
    let partitions = this.#topics.get(topic);
    if (partitions === undefined) {
      partitions = [];
      this.#topics.set(topic, partitions);
    }
    let builder = partitions[partition];
    if (builder === undefined) {
      builder = new RecordBatchBuilder(this.#initialBatchBytes);
      partitions[partition] = builder;
    }
    return builder;
  }

  /** Records added since the last clear. */
  get recordCount(): number {
    let count = 0;
    for (const partitions of this.#topics.values()) {
      for (const builder of partitions) count += builder?.recordCount ?? 0;
    }
    return count;
  }

  /** The batches that hold records. */
  batches(): ProduceSetBatch[] {
    const out: ProduceSetBatch[] = [];
    for (const [topic, partitions] of this.#topics) {
      partitions.forEach((builder, partition) => {
        if (builder !== undefined && builder.recordCount > 0)
          out.push({ topic, partition, builder });
      });
    }
    return out;
  }

  /** Empties every batch, keeping the buffers. */
  clear(): void {
    for (const partitions of this.#topics.values()) {
      for (const builder of partitions) builder?.reset();
    }
  }
}
