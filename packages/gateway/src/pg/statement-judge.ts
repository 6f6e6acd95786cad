import {
  evaluatePolicy,
  type Person,
  type PolicyDecision,
  type StatementFacts,
  type StatementPolicy,
  type TableName,
} from '@portcullis/core';
import {
  redactSql,
  type AnalyzeResult,
  type StatementAnalysis,
  type StatementAnalyzer,
} from '@portcullis/sql';
import type { ApprovalOutcome } from '../approvals/approval-broker.js';
import type { SessionMasking } from '../masking/session-masking.js';
import type { Judgement } from './statement-tracker.js';

/** Who a session is and what governs it. */
export interface JudgeContext {
  readonly analyzer: StatementAnalyzer;
  readonly policy: StatementPolicy;
  readonly person: Person;
  readonly agentActing: boolean;
  /** Record statement text with its literal values (`events.dangerouslyRecordLiterals`). */
  readonly recordLiterals: boolean;
  /** Masking of the session's results; null when the resource masks nothing. */
  readonly masking?: SessionMasking | null;
  readonly now?: () => Date;
}

const UNPARSED: StatementFacts = {
  parsed: false,
  kinds: [],
  tablesRead: [],
  tablesWritten: [],
  functions: [],
  flags: [],
  readOnly: false,
};

/**
 * Always refused, whatever the policy: after such a SET the server would read later statement
 * text differently from the gateway's parser, and every guardrail would be guessing.
 */
const UNSAFE_LEXER_SETTING: PolicyDecision = {
  action: 'block',
  rule: 'unsafe-lexer-setting',
  message:
    'changing client_encoding or standard_conforming_strings is not allowed through Portcullis: it reads statements as UTF8 with standard_conforming_strings on',
};

const EMPTY_TEXT: StatementFacts = { ...UNPARSED, parsed: true, readOnly: true };

/** Makes a session's judge: statement text in, policy decision and recorded facts out. */
export function createJudge(ctx: JudgeContext): (text: string) => Judgement {
  const masking = ctx.masking?.active === true ? ctx.masking : null;
  const judge = judgePolicy(ctx);
  const { analyzer } = ctx;
  if (masking === null) return (text) => judge(text, analyzer.analyze(text));
  return (text) => {
    const analysis = analyzer.analyze(text);
    const judgement = judge(text, analysis);
    if (judgement.decision.action !== 'allow') return judgement;
    const verdict = masking.verdict(text, analysis);
    if (!verdict.ok) {
      judgement.decision = { action: 'block', rule: verdict.rule, message: verdict.message };
      judgement.refusedByMasking = true;
      return judgement;
    }
    judgement.masks = verdict.statements;
    judgement.masksValid = masking.validity();
    return judgement;
  };
}

/** A judgement while the judge still completes it (each statement gets a new one). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a statement's analysis alone decides, kept per analysis (shared by literal shape). */
interface AnalysisFacts {
  readonly facts: StatementFacts;
  readonly tables: readonly string[];
  readonly unsafeLexerSetting: boolean;
}

const factsByAnalysis = new WeakMap<StatementAnalysis, AnalysisFacts>();

function analysisFacts(a: StatementAnalysis): AnalysisFacts {
  let known = factsByAnalysis.get(a);
  if (known === undefined) {
    known = {
      facts: {
        parsed: true,
        kinds: a.statements.map((s) => s.kind),
        tablesRead: a.tablesRead,
        tablesWritten: a.tablesWritten,
        functions: a.functions,
        flags: a.flags,
        readOnly: a.readOnly,
      },
      tables: tableNames([...a.tablesRead, ...a.tablesWritten]),
      unsafeLexerSetting: a.flags.includes('unsafe-lexer-setting'),
    };
    factsByAnalysis.set(a, known);
  }
  return known;
}

/** The guardrail half of the judge: policy decision and recorded facts. */
function judgePolicy(
  ctx: JudgeContext,
): (text: string, result: AnalyzeResult) => Mutable<Judgement> {
  const now = ctx.now ?? (() => new Date());
  return (text, result) => {
    const subject = { person: ctx.person, agentActing: ctx.agentActing, at: now() };
    if (!result.ok && result.reason === 'empty') {
      // An empty query (or only comments) does nothing; the server answers EmptyQueryResponse.
      return {
        decision: evaluatePolicy(ctx.policy, EMPTY_TEXT, subject),
        recordedText: '',
        kind: 'empty',
        fingerprint: '',
        tables: [],
        masks: null,
      };
    }
    if (!result.ok) {
      return {
        decision: evaluatePolicy(ctx.policy, UNPARSED, subject),
        // The parser rejected it; the lexer still finds and removes every literal.
        recordedText: ctx.recordLiterals ? text : redactSql(text),
        kind: 'unparsable',
        fingerprint: '',
        tables: [],
        masks: null,
      };
    }
    const a = result.analysis;
    const known = analysisFacts(a);
    return {
      decision: known.unsafeLexerSetting
        ? UNSAFE_LEXER_SETTING
        : evaluatePolicy(ctx.policy, known.facts, subject),
      recordedText: ctx.recordLiterals ? text : a.redactedText,
      kind: a.kind,
      fingerprint: a.fingerprint,
      tables: known.tables,
      masks: null,
    };
  };
}

function tableNames(tables: readonly TableName[]): string[] {
  return [...new Set(tables.map((t) => (t.schema === null ? t.name : `${t.schema}.${t.name}`)))];
}

/**
 * SQL that fails with the policy's refusal when the server runs it. A refused statement is
 * replaced by this rather than dropped, so PostgreSQL itself orders the error among pipelined
 * results and fails an open transaction exactly as the refused statement failing would.
 * `code` is the SQLSTATE (42501 unless a cancel is being reported).
 */
export function refusalStatement(message: string, hint: string, code = '42501'): string {
  const literal = (value: string): string =>
    `'${value.replaceAll('\0', '').replaceAll('$portcullis$', '').replaceAll("'", "''")}'`;
  return `DO $portcullis$BEGIN RAISE EXCEPTION USING ERRCODE = ${literal(code)}, MESSAGE = ${literal(message)}, HINT = ${literal(hint)}; END$portcullis$`;
}

/** SQLSTATE of a statement the client cancelled (query_canceled). */
export const QUERY_CANCELED = '57014';

/**
 * How a held statement fails when its approval ends without a grant: SQLSTATE and message
 * (`ruleMessage` is the rule's own). Null when it was granted.
 */
export function approvalRefusal(
  outcome: ApprovalOutcome,
  ruleMessage: string,
): { readonly code: string; readonly message: string } | null {
  switch (outcome.kind) {
    case 'granted':
      return null;
    case 'denied': {
      const by = outcome.by.map((p) => p.email).join(', ');
      const why = outcome.reason === '' ? '' : `: ${outcome.reason}`;
      return { code: '42501', message: `${ruleMessage}; denied by ${by}${why}` };
    }
    case 'expired':
      return { code: '42501', message: `${ruleMessage}; approval expired (${outcome.reason})` };
    case 'withdrawn':
      // The client cancelled it (a disconnect ends the session before anything is sent).
      return { code: QUERY_CANCELED, message: 'canceling statement due to user request' };
    case 'failed':
      return {
        code: '42501',
        message: `${ruleMessage}; it was not run because its approval could not be tracked (${outcome.reason})`,
      };
  }
}
