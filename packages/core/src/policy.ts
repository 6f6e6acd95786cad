import type { Person } from './identity.js';

/** What a policy rule can do with a statement. */
export type PolicyAction = 'allow' | 'block' | 'review';

/** A table name as a statement or a rule writes it; `schema` null = unqualified. */
export interface TableName {
  readonly schema: string | null;
  readonly name: string;
}

/** What the gateway knows about a statement when it judges it. */
export interface StatementFacts {
  /** False when the text could not be parsed; the other fields are then empty. */
  readonly parsed: boolean;
  /** Kind of each statement in the text (several for a multi-statement query). */
  readonly kinds: readonly string[];
  readonly tablesRead: readonly TableName[];
  readonly tablesWritten: readonly TableName[];
  readonly functions: readonly string[];
  readonly flags: readonly string[];
  readonly readOnly: boolean;
}

/** Who runs the statement, and when. */
export interface SubjectFacts {
  readonly person: Person;
  readonly agentActing: boolean;
  /** Minutes since midnight in the rule's time zone are computed from this instant. */
  readonly at: Date;
}

/** Conditions of a rule; all given conditions must hold (each list matches if any entry does). */
export interface RuleMatch {
  readonly kinds?: readonly string[];
  /** Table patterns read or written: `name`, `schema.name`, `schema.*`, `*`. */
  readonly tables?: readonly string[];
  readonly tablesWritten?: readonly string[];
  /** Function names, lower case, optionally schema-qualified (`pg_read_file`). */
  readonly functions?: readonly string[];
  readonly flags?: readonly string[];
  /** The person is in any of these groups. */
  readonly groups?: readonly string[];
  /** True: only when an agent acts; false: only when a person acts directly. */
  readonly agent?: boolean;
  /** Local time window, e.g. `{ from: '22:00', to: '06:00', timeZone: 'Europe/Berlin' }`. */
  readonly time?: { readonly from: string; readonly to: string; readonly timeZone?: string };
  readonly readOnly?: boolean;
}

/** One policy rule. */
export interface PolicyRule {
  readonly name: string;
  readonly action: PolicyAction;
  readonly match: RuleMatch;
  /** Told to the client when the rule blocks; defaults to a sentence naming the rule. */
  readonly message?: string;
}

/** A resource's statement policy: first matching rule wins, else the default. */
export interface StatementPolicy {
  readonly rules: readonly PolicyRule[];
  readonly default: PolicyAction;
  /** What happens to text the parser rejects (it cannot be shown to be read-only). */
  readonly unparsable: 'allow' | 'block';
}

/** The outcome of judging one statement. */
export interface PolicyDecision {
  readonly action: PolicyAction;
  /** The deciding rule's name; `default` or `unparsable` when no rule matched. */
  readonly rule: string;
  readonly message: string;
}

/** Allows everything (a resource with no policy configured). */
export const ALLOW_ALL: StatementPolicy = { rules: [], default: 'allow', unparsable: 'allow' };

/** Judges one statement against a policy. Pure and synchronous: it runs per statement. */
export function evaluatePolicy(
  policy: StatementPolicy,
  statement: StatementFacts,
  subject: SubjectFacts,
): PolicyDecision {
  if (!statement.parsed) {
    return {
      action: policy.unparsable,
      rule: 'unparsable',
      message:
        policy.unparsable === 'allow'
          ? ''
          : 'statement could not be parsed, so the gateway cannot show it is safe (policy "unparsable")',
    };
  }
  for (const rule of policy.rules) {
    if (ruleMatches(rule.match, statement, subject)) {
      return {
        action: rule.action,
        rule: rule.name,
        message: rule.message ?? defaultMessage(rule),
      };
    }
  }
  return {
    action: policy.default,
    rule: 'default',
    message:
      policy.default === 'allow'
        ? ''
        : `statements on this resource are ${pastTense(policy.default)} by default`,
  };
}

function defaultMessage(rule: PolicyRule): string {
  return rule.action === 'allow'
    ? ''
    : `statement ${pastTense(rule.action)} by policy rule "${rule.name}"`;
}

function pastTense(action: PolicyAction): string {
  return action === 'block' ? 'blocked' : action === 'review' ? 'held for review' : 'allowed';
}

function ruleMatches(match: RuleMatch, s: StatementFacts, who: SubjectFacts): boolean {
  if (match.kinds !== undefined && !s.kinds.some((k) => match.kinds!.includes(k))) return false;
  if (match.flags !== undefined && !s.flags.some((f) => match.flags!.includes(f))) return false;
  if (match.readOnly !== undefined && s.readOnly !== match.readOnly) return false;
  if (match.tables !== undefined && !anyTable([...s.tablesRead, ...s.tablesWritten], match.tables))
    return false;
  if (match.tablesWritten !== undefined && !anyTable(s.tablesWritten, match.tablesWritten))
    return false;
  if (
    match.functions !== undefined &&
    !s.functions.some((f) => functionMatches(f, match.functions!))
  )
    return false;
  if (match.groups !== undefined && !who.person.groups.some((g) => match.groups!.includes(g)))
    return false;
  if (match.agent !== undefined && who.agentActing !== match.agent) return false;
  if (match.time !== undefined && !withinWindow(match.time, who.at)) return false;
  return true;
}

function anyTable(tables: readonly TableName[], patterns: readonly string[]): boolean {
  return tables.some((t) => patterns.some((p) => tableMatches(t, p)));
}

/**
 * `*` matches all; `schema.*` a whole schema; `schema.name` exactly; a bare `name` matches the
 * table in any schema (an unqualified reference may resolve to any schema on the search path,
 * so a rule on `customers` must not be dodged by writing `public.customers`, nor the reverse).
 */
export function tableMatches(table: TableName, pattern: string): boolean {
  if (pattern === '*') return true;
  const dot = pattern.indexOf('.');
  if (dot === -1) return table.name === pattern;
  const schema = pattern.slice(0, dot);
  const name = pattern.slice(dot + 1);
  if (table.schema !== null && table.schema !== schema) return false;
  return name === '*' || table.name === name;
}

function functionMatches(called: string, patterns: readonly string[]): boolean {
  const bare = called.slice(called.lastIndexOf('.') + 1);
  return patterns.some((p) => p === called || p === bare);
}

/** True when `at` falls in [from, to) local time; windows may wrap midnight. */
export function withinWindow(
  window: { from: string; to: string; timeZone?: string },
  at: Date,
): boolean {
  const minutes = localMinutes(at, window.timeZone ?? 'UTC');
  const from = clockMinutes(window.from);
  const to = clockMinutes(window.to);
  return from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to;
}

function clockMinutes(clock: string): number {
  const [h, m] = clock.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

function localMinutes(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(at);
  const hour = Number(parts.find((p) => p.type === 'hour')?.value ?? 0);
  const minute = Number(parts.find((p) => p.type === 'minute')?.value ?? 0);
  return hour * 60 + minute;
}
