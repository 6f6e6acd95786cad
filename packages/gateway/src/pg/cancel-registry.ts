import { randomBytes, timingSafeEqual } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from '@portcullis/core';
import { cancelRequest, sslRequest } from '@portcullis/protocol-pg';
import type { PostgresResource } from '../config/load-config.js';
import { upstreamTlsOptions } from './upstream-tls.js';

/** Bits of a gateway process id that hold the session counter; the rest name the process. */
const COUNTER_BITS = 24;
const COUNTER_MASK = (1 << COUNTER_BITS) - 1;

interface Entry {
  readonly secret: Buffer;
  readonly resource: PostgresResource;
  readonly upstreamProcessId: number;
  readonly upstreamSecretKey: number;
  /** The session's own answer to a cancel (a held statement); true when it handled it. */
  readonly onCancel: (() => boolean) | undefined;
}

/**
 * Hands each client session a cancel key of the gateway's own and maps it to the upstream
 * backend's key, which the client never sees. The key's process id carries the gateway process
 * slot, so a CancelRequest that reaches another process of a multi-process gateway can be
 * routed to the one that owns the session.
 */
export class CancelRegistry {
  readonly #slot: number;
  readonly #entries = new Map<number, Entry>();
  readonly #logger: Logger;
  #counter = randomBytes(3).readUIntBE(0, 3);

  /** `slot` is this process's number, 0..63. */
  constructor(slot: number, logger: Logger) {
    if (!Number.isInteger(slot) || slot < 0 || slot > 63)
      throw new RangeError(`process slot ${slot} is outside 0..63`);
    this.#slot = slot;
    this.#logger = logger;
  }

  /**
   * Registers a session; returns the key to give the client. `onCancel` runs first on a cancel
   * and, when it returns true, nothing is sent upstream.
   */
  register(
    resource: PostgresResource,
    upstreamProcessId: number,
    upstreamSecretKey: number,
    onCancel?: () => boolean,
  ): { processId: number; secretKey: number } {
    let processId: number;
    do {
      this.#counter = (this.#counter + 1) & COUNTER_MASK;
      processId = (this.#slot << COUNTER_BITS) | this.#counter;
    } while (this.#entries.has(processId) || processId === 0);
    const secret = randomBytes(4);
    this.#entries.set(processId, {
      secret,
      resource,
      upstreamProcessId,
      upstreamSecretKey,
      onCancel,
    });
    return { processId, secretKey: secret.readInt32BE(0) };
  }

  /** Forgets a session's key. */
  unregister(processId: number): void {
    this.#entries.delete(processId);
  }

  /** The process slot a gateway process id belongs to. */
  static slotOf(processId: number): number {
    return processId >>> COUNTER_BITS;
  }

  /** True when this process owns the key's session. */
  owns(processId: number): boolean {
    return CancelRegistry.slotOf(processId) === this.#slot;
  }

  /**
   * Forwards a cancel to the upstream backend when the key matches a live session of this
   * process; an unknown key or a wrong secret is ignored, as PostgreSQL does.
   */
  cancel(processId: number, secretKey: number): boolean {
    const entry = this.#entries.get(processId);
    if (entry === undefined) return false;
    const offered = Buffer.alloc(4);
    offered.writeInt32BE(secretKey | 0, 0);
    if (!timingSafeEqual(offered, entry.secret)) return false;
    if (entry.onCancel?.() === true) return true;
    this.#sendUpstreamCancel(entry);
    return true;
  }

  #sendUpstreamCancel(entry: Entry): void {
    const { resource } = entry;
    const packet = cancelRequest(entry.upstreamProcessId, entry.upstreamSecretKey);
    const socket = netConnect({ host: resource.host, port: resource.port });
    socket.setTimeout(resource.connectTimeoutMs, () => socket.destroy());
    socket.on('error', (err) =>
      this.#logger.warn({ err, resource: resource.name }, 'cancel request to upstream failed'),
    );
    if (resource.tls.mode === 'disable') {
      socket.end(packet);
      return;
    }
    socket.once('connect', () => socket.write(sslRequest));
    socket.once('data', (answer) => {
      if (answer[0] !== 0x53) {
        socket.destroy();
        return;
      }
      const secure = tlsConnect({ ...upstreamTlsOptions(resource), socket });
      secure.on('error', (err) =>
        this.#logger.warn({ err, resource: resource.name }, 'cancel request to upstream failed'),
      );
      secure.once('secureConnect', () => secure.end(packet));
    });
  }
}
