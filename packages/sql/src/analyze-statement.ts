import { parseSync, scanSync } from 'libpg-query';
import { estimateNesting, MAX_NESTING, nestingBound } from './estimate-nesting.js';
import { fingerprintStatements } from './fingerprint-statements.js';
import { lexSql, plainCodeTokens, type SqlSpan } from './lex-sql.js';
import { assertParserUsable, markParserBroken } from './load-sql-parser.js';
import { redactSql } from './redact-sql.js';
import { utf8Length } from './utf8-length.js';
import {
  STATEMENT_FLAGS,
  type AnalyzeFailureReason,
  type AnalyzeResult,
  type StatementAnalysis,
  type StatementFlag,
  type TableRef,
} from './statement-analysis.js';
import { walkStatement, type StatementFindings } from './walk-statement.js';

/** The default limit on statement text, in UTF-8 bytes: 1 MiB. */
export const DEFAULT_MAX_STATEMENT_BYTES = 1024 * 1024;

/** Options of {@link analyzeStatement}. */
export interface AnalyzeStatementOptions {
  /** Text longer than this many UTF-8 bytes is refused unparsed. Default 1 MiB. */
  readonly maxStatementBytes?: number;
}

/**
 * Analyzes statement text (one statement or several, as simple-protocol Query text may hold)
 * with PostgreSQL's own parser. Synchronous and uncached; {@link StatementAnalyzer} caches.
 *
 * Never throws for any input text. It throws only when the parser is not loaded
 * ({@link loadSqlParser}) or an earlier call left it broken.
 */
export function analyzeStatement(
  text: string,
  options: AnalyzeStatementOptions = {},
): AnalyzeResult {
  assertParserUsable();
  const max = options.maxStatementBytes ?? DEFAULT_MAX_STATEMENT_BYTES;
  if (text.length > max || (text.length * 3 > max && utf8Length(text) > max)) {
    return failure('too-large', `statement text is over the ${max}-byte limit`);
  }
  if (text.length === 0) return failure('empty', 'statement text holds no statement');
  if (text.includes('\0')) {
    // PostgreSQL reads a Query message's text up to its first NUL; what follows would be
    // analyzed here but never run, or the other way round.
    return failure('syntax', 'statement text contains a NUL character');
  }
  // Lone surrogates cannot come off the wire; encoded, they become U+FFFD, as here.
  const sql = LONE_SURROGATE.test(text) ? text.replace(LONE_SURROGATE_ALL, '\uFFFD') : text;

  // A deep tree overflows the stack while the parser writes it out as JSON, which breaks the
  // module for good: refuse deep statements before parsing. Most statements are ruled out by
  // a bound that needs no lexer. Past it, plain text is tokenized here; anything else by
  // PostgreSQL's own lexer, which costs more than the parse itself.
  let spans: SqlSpan[] | undefined;
  if (nestingBound(sql, MAX_NESTING) > MAX_NESTING) {
    spans = lexSql(sql);
    let tokens = plainCodeTokens(sql, spans);
    if (tokens === null) {
      try {
        tokens = (scanSync(lexable(sql)).tokens ?? []).map((t) => t.text);
      } catch {
        return lexFailure(sql);
      }
    }
    if (estimateNesting(tokens) > MAX_NESTING) {
      return failure('too-deep', 'statement nests too deeply to analyze');
    }
  }

  let statements: { stmt?: unknown }[];
  try {
    statements = parseSync(sql).stmts ?? [];
  } catch (err) {
    return parseFailure(err);
  }
  if (statements.length === 0) return failure('empty', 'statement text holds no statement');

  const trees = statements.map((s) => s.stmt);
  const findings = trees.map((tree) => walkStatement(tree));
  return Object.freeze({
    ok: true as const,
    analysis: combine(findings, fingerprintStatements(trees), redactSql(sql, spans)),
  });
}

const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATE_ALL = /\p{Cs}/gu;
// eslint-disable-next-line no-control-regex
const LEXER_UNSAFE = /[\u0001-\u0008\u000b\u000c\u000e-\u001f]/g;

/**
 * The text as handed to the lexer. libpg-query's token list is JSON that it does not escape
 * control characters in; outside literals, comments and quoted identifiers they are either
 * whitespace or a syntax error, and inside them they are content, so a space of the same
 * length changes no token boundary.
 */
function lexable(sql: string): string {
  LEXER_UNSAFE.lastIndex = 0;
  return LEXER_UNSAFE.test(sql) ? sql.replace(LEXER_UNSAFE, ' ') : sql;
}

/**
 * The lexer refused the text (an unterminated quote or comment, a bad escape). Text the lexer
 * refuses never parses, and a failing parse never reaches the deep steps, so asking the
 * parser for its message is safe.
 */
function lexFailure(sql: string): AnalyzeResult {
  try {
    parseSync(sql);
  } catch (err) {
    return parseFailure(err);
  }
  return failure('syntax', 'the statement could not be tokenized');
}

function parseFailure(err: unknown): AnalyzeResult {
  if (isSqlError(err)) {
    const message = err.message;
    if (/memory exhausted|stack depth limit/.test(message)) {
      return failure('too-deep', 'statement nests too deeply for the parser');
    }
    const cursor = err.sqlDetails?.cursorPosition;
    const position = typeof cursor === 'number' && cursor >= 0 ? cursor + 1 : undefined;
    const safe = withoutQuotedToken(message);
    return failure(
      'syntax',
      position === undefined ? safe : `${safe} (position ${position})`,
      position,
    );
  }
  if (err instanceof Error && (err instanceof RangeError || err.name === 'RuntimeError')) {
    // A stack overflow or trap unwound past the module's cleanup: its state is spoiled.
    markParserBroken(err);
    return failure('too-deep', 'statement nests too deeply for the parser');
  }
  // The wrapper's own errors (such as unreadable output) say nothing about the text's syntax,
  // and their messages may quote it.
  return failure('syntax', 'the parser could not read this statement');
}

interface SqlErrorLike extends Error {
  readonly sqlDetails?: { readonly cursorPosition?: number };
}

function isSqlError(err: unknown): err is SqlErrorLike {
  return err instanceof Error && err.name === 'SqlError';
}

/**
 * Drops the `at or near "…"` the parser appends when the token it quotes could be (part of) a
 * literal or a comment; keywords, identifiers and operators stay.
 */
function withoutQuotedToken(message: string): string {
  const match = /^(.*) at or near "(.*)"$/s.exec(message);
  if (match === null) return message;
  const token = match[2]!;
  return token.length <= 64 && SAFE_TOKEN.test(token) ? message : match[1]!;
}

const SAFE_TOKEN =
  /^(?:[A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*|[-+*/<>=~!@#%^&|`?:]+|[(),;.[\]]|\$\d+)$/;

function failure(reason: AnalyzeFailureReason, message: string, position?: number): AnalyzeResult {
  return Object.freeze(
    position === undefined
      ? { ok: false as const, reason, message }
      : { ok: false as const, reason, message, position },
  );
}

/** One analysis of the whole text: the union of its statements, frozen for sharing. */
function combine(
  findings: readonly StatementFindings[],
  fingerprint: string,
  redactedText: string,
): StatementAnalysis {
  const read = new Map<string, TableRef>();
  const written = new Map<string, TableRef>();
  const functions = new Set<string>();
  const flags = new Set<StatementFlag>();
  let readOnly = true;
  for (const f of findings) {
    for (const [key, table] of f.tablesRead) if (!read.has(key)) read.set(key, table);
    for (const [key, table] of f.tablesWritten) if (!written.has(key)) written.set(key, table);
    for (const name of f.functions) functions.add(name);
    for (const flag of f.flags) flags.add(flag);
    readOnly &&= f.readOnly;
  }
  if (findings.length > 1) flags.add('multi-statement');
  const first = findings[0]!;
  return Object.freeze({
    kind: findings.length === 1 ? first.kind : 'multi',
    statements: Object.freeze(findings.map((f) => Object.freeze({ kind: f.kind }))),
    tablesRead: Object.freeze([...read.values()]),
    tablesWritten: Object.freeze([...written.values()]),
    functions: Object.freeze([...functions]),
    flags: Object.freeze(STATEMENT_FLAGS.filter((flag) => flags.has(flag))),
    readOnly,
    fingerprint,
    redactedText,
  });
}
