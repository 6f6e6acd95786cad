import uws from '@based/uws';
import { PortcullisError, type Logger } from '@portcullis/core';

/** A request as a route handler sees it: the body read whole (bounded), headers lower-cased. */
export interface ApiRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: ReadonlyMap<string, string>;
  /** The body; empty for methods without one. */
  readonly body: Buffer;
  /** Values of the route's `:name` segments, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
}

/** What a handler answers: a status and a JSON body, or a body of another type (metrics). */
export interface ApiResponse {
  readonly status: number;
  /** Serialized as JSON unless `text` is given. */
  readonly json?: unknown;
  readonly text?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One route: method, path (segments starting with `:` match one segment), handler. */
export interface ApiRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  readonly handle: (request: ApiRequest) => ApiResponse | Promise<ApiResponse>;
}

/** Options of {@link startHttpServer}. */
export interface HttpServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly routes: readonly ApiRoute[];
  /** Larger request bodies are refused with 413 before they are read whole. */
  readonly maxBodyBytes: number;
  readonly logger: Logger;
}

/** A running HTTP API server. */
export interface HttpServer {
  readonly host: string;
  readonly port: number;
  close(): void;
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  303: '303 See Other',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

/** An error body: a stable code and a message for people; never a stack trace. */
export function errorResponse(status: number, code: string, message: string): ApiResponse {
  return { status, json: { error: { code, message } } };
}

/**
 * The gateway's HTTP API on uWebSockets.js: exact-path routes, JSON in and out, bodies bounded
 * by `maxBodyBytes` (413 before reading on, from Content-Length or as the bytes arrive), JSON
 * error bodies for unknown paths (404) and methods (405), and a handler that throws answers 500
 * with a generic message while the log gets the error.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { logger, maxBodyBytes } = options;
  const byPath = new Map<string, Map<string, ApiRoute>>();
  for (const route of options.routes) {
    const methods = byPath.get(route.path) ?? new Map<string, ApiRoute>();
    methods.set(route.method, route);
    byPath.set(route.path, methods);
  }
  const patterns = [...byPath.keys()]
    .filter((path) => path.includes('/:'))
    .map((path) => ({ path, segments: path.split('/') }));
  /** The route table entry for `path` and its parameters. */
  const lookup = (
    path: string,
  ): { methods: Map<string, ApiRoute>; params: Record<string, string> } | null => {
    const exact = byPath.get(path);
    if (exact !== undefined) return { methods: exact, params: {} };
    const parts = path.split('/');
    for (const pattern of patterns) {
      if (pattern.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      const ok = pattern.segments.every((segment, i) => {
        const part = parts[i]!;
        if (!segment.startsWith(':')) return segment === part;
        if (part === '') return false;
        try {
          params[segment.slice(1)] = decodeURIComponent(part);
          return true;
        } catch {
          return false;
        }
      });
      if (ok) return { methods: byPath.get(pattern.path)!, params };
    }
    return null;
  };
  const app = uws.App();
  app.any('/*', (res, req) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const method = req.getMethod().toUpperCase();
    const path = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const headers = new Map<string, string>();
    req.forEach((key, value) => headers.set(key, value));
    const send = (response: ApiResponse): void => {
      if (aborted) return;
      const body =
        response.text ?? (response.json === undefined ? '' : JSON.stringify(response.json));
      res.cork(() => {
        res.writeStatus(STATUS_TEXT[response.status] ?? String(response.status));
        res.writeHeader(
          'content-type',
          response.contentType ?? (response.text === undefined ? 'application/json' : 'text/plain'),
        );
        res.writeHeader('cache-control', 'no-store');
        res.writeHeader('x-content-type-options', 'nosniff');
        for (const [name, value] of Object.entries(response.headers ?? {})) {
          res.writeHeader(name, value);
        }
        res.end(body);
      });
    };
    const found = lookup(path);
    if (found === null) {
      send(errorResponse(404, 'not_found', `no API endpoint at ${path}`));
      return;
    }
    const { methods, params } = found;
    const route = methods.get(method);
    if (route === undefined) {
      send({
        ...errorResponse(405, 'method_not_allowed', `${method} is not allowed on ${path}`),
        headers: { allow: [...methods.keys()].join(', ') },
      });
      return;
    }
    const run = (body: Buffer): void => {
      Promise.resolve()
        .then(() => route.handle({ method, path, query, headers, body, params }))
        .then(send, (err: unknown) => {
          logger.error({ err, method, path }, 'HTTP API handler failed');
          send(errorResponse(500, 'internal', 'the gateway could not handle the request'));
        });
    };
    if (method === 'GET' || method === 'DELETE') {
      run(Buffer.alloc(0));
      return;
    }
    const announced = Number(headers.get('content-length') ?? '0');
    if (announced > maxBodyBytes) {
      send(tooLarge(maxBodyBytes));
      return;
    }
    const parts: Buffer[] = [];
    let received = 0;
    let refused = false;
    res.onData((chunk, isLast) => {
      if (refused) return;
      received += chunk.byteLength;
      if (received > maxBodyBytes) {
        refused = true;
        send(tooLarge(maxBodyBytes));
        return;
      }
      // uWS reuses the chunk's memory after this call: copy it.
      parts.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) run(Buffer.concat(parts, received));
    });
  });
  const listenSocket = await new Promise<uws.us_listen_socket>((resolveListen, reject) => {
    app.listen(options.host, options.port, (socket) => {
      if (socket === false) {
        reject(
          new PortcullisError(
            'PCL_ERR_CONFIG_INVALID',
            `cannot listen for HTTP on ${options.host}:${options.port} (in use, or not an address of this host)`,
          ),
        );
      } else {
        resolveListen(socket);
      }
    });
  });
  return {
    host: options.host,
    port: uws.us_socket_local_port(listenSocket as unknown as uws.us_socket),
    close: () => uws.us_listen_socket_close(listenSocket),
  };
}

function tooLarge(limit: number): ApiResponse {
  return errorResponse(413, 'payload_too_large', `request bodies are limited to ${limit} bytes`);
}

/** Parses a JSON (or, with `form`, an URL-encoded form) request body, or answers 400/415. */
export function jsonBody(
  request: ApiRequest,
  form = false,
): { ok: true; value: unknown } | { ok: false; response: ApiResponse } {
  const type = request.headers.get('content-type') ?? '';
  if (form && /^application\/x-www-form-urlencoded\b/i.test(type)) {
    return {
      ok: true,
      value: Object.fromEntries(new URLSearchParams(request.body.toString('utf8'))),
    };
  }
  if (!/^application\/json\b/i.test(type)) {
    return {
      ok: false,
      response: errorResponse(415, 'unsupported_media_type', 'send the body as application/json'),
    };
  }
  try {
    return { ok: true, value: JSON.parse(request.body.toString('utf8')) as unknown };
  } catch {
    return { ok: false, response: errorResponse(400, 'bad_json', 'the body is not valid JSON') };
  }
}
