/**
 * The largest {@link estimateNesting} value the analyzer hands to the parser.
 *
 * Measured against libpg-query 18 on Node 20's default 984 KiB stack, with the module's code
 * both freshly loaded and optimized by V8: every construct tried (operator and cast chains,
 * nested calls, subqueries, `CASE`, joins, set operations) first overflows at 7,000 units or
 * more, or is refused by the parser's own stack limit first. The limit leaves over three
 * times that room for a caller's frames. In statements it admits ~2,000-term operator chains,
 * ~1,000 nested calls, ~500 nested subqueries, or ~2,000 chained joins or `UNION`s.
 */
export const MAX_NESTING = 2000;

/**
 * An upper estimate, in units of stack use, of how deep the statement's parse tree will be,
 * from its tokens alone.
 *
 * The parser's own stack is bounded, but writing the tree out as JSON recurses once per tree
 * level on the JavaScript stack. An overflow there leaves the WebAssembly module broken for
 * every later call, so deep statements must be refused before they are parsed.
 *
 * Depth comes from brackets (`(`, `[`, `CASE … END`) and from chains the grammar nests to the
 * left without brackets (`a + b + c`, `x::t::t`, `… UNION … UNION …`, `a JOIN b JOIN c`). At
 * every token the estimate sums, over the open brackets, the bracket's own weight, the weight
 * of the operators in its current list element, and that of the set operations and joins in
 * it. Commas, `AND`, `OR` and the branches of a `CASE` start a new element, because the grammar
 * builds flat lists there; set operations and joins ignore them, since a comma or an `AND`
 * inside one arm does not end the chain. Weights follow the measured stack use per level.
 *
 * `tokens` are token texts, from PostgreSQL's lexer or {@link plainCodeTokens}; comments
 * among them are skipped, so `( /* c *\/ SELECT` still counts as a subquery.
 */
export function estimateNesting(tokens: Iterable<string>): number {
  // Per open bracket: its own weight, operator weight in the current element, chain weight,
  // and whether it is a CASE (closed by END rather than by a bracket).
  const base: number[] = [1];
  const ops: number[] = [0];
  const chains: number[] = [0];
  const isCase: boolean[] = [false];
  let top = 0;
  let depth = 1;
  let max = 1;
  let afterOpen = false;
  for (const text of tokens) {
    if (text.startsWith('--') || text.startsWith('/*')) continue; // `( /* c */ SELECT`
    const opened = afterOpen;
    afterOpen = false;
    if (text === '(' || text === '[') {
      top++;
      base[top] = BRACKET;
      ops[top] = 0;
      chains[top] = 0;
      isCase[top] = false;
      depth += BRACKET;
      afterOpen = true;
    } else if (text === ')' || text === ']') {
      if (top > 0) {
        depth -= base[top]! + ops[top]! + chains[top]!;
        top--;
      }
    } else if (text === ',' || text === ';') {
      depth -= ops[top]!;
      ops[top] = 0;
      if (text === ';') {
        depth -= chains[top]!;
        chains[top] = 0;
      }
    } else if (isOperatorText(text)) {
      ops[top]! += OPERATOR;
      depth += OPERATOR;
    } else if (isLetter(text.charCodeAt(0)) && text.length <= 9) {
      const word = text.toUpperCase();
      if (opened && QUERY_STARTS.has(word)) {
        base[top]! += SUBQUERY;
        depth += SUBQUERY;
      }
      if (word === 'CASE') {
        top++;
        base[top] = CASE_BRACKET;
        ops[top] = 0;
        chains[top] = 0;
        isCase[top] = true;
        depth += CASE_BRACKET;
      } else if (word === 'END') {
        if (top > 0 && isCase[top] === true) {
          depth -= base[top]! + ops[top]! + chains[top]!;
          top--;
        }
      } else if (ELEMENT_STARTS.has(word)) {
        depth -= ops[top]!;
        ops[top] = 0;
      } else {
        const chain = CHAIN_KEYWORDS.get(word);
        if (chain !== undefined) {
          chains[top]! += chain;
          depth += chain;
        } else {
          const op = OPERATOR_KEYWORDS.get(word);
          if (op !== undefined) {
            ops[top]! += op;
            depth += op;
          }
        }
      }
    }
    if (depth > max) max = depth;
  }
  return max;
}

// Stack units per level, relative to one binary operator (`a + b`).
const OPERATOR = 1;
const BRACKET = 2;
const CASE_BRACKET = 3;
/** Added to a bracket that opens a subquery: `(SELECT`, `(WITH`, `(VALUES`, `(TABLE`. */
const SUBQUERY = 2;

/** Keywords after which the grammar starts a new, flat list element at the same level. */
const ELEMENT_STARTS = new Set(['AND', 'OR', 'WHEN', 'THEN', 'ELSE']);

const QUERY_STARTS = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE']);

/** Keywords that chain whole queries or join trees to the left, with their weight. */
const CHAIN_KEYWORDS = new Map([
  ['UNION', 1],
  ['INTERSECT', 1],
  ['EXCEPT', 1],
  ['JOIN', 1],
]);

/** Keywords that act as (prefix, infix or postfix) operators in expressions, with their weight. */
const OPERATOR_KEYWORDS = new Map([
  ['NOT', 1],
  ['IS', 1],
  ['ISNULL', 1],
  ['NOTNULL', 1],
  ['COLLATE', 2],
  ['AT', 2],
  ['LIKE', 1],
  ['ILIKE', 1],
  ['SIMILAR', 1],
  ['BETWEEN', 1],
  ['IN', 1],
  ['OVERLAPS', 1],
  ['OPERATOR', 1],
  ['ESCAPE', 1],
  ['ANY', 1],
  ['ALL', 1],
  ['SOME', 1],
  ['EXISTS', 1],
  ['ARRAY', 1],
  ['ROW', 1],
]);

function isLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** True for operator tokens: `+`, `::`, `->>`, `!~*`, … (PostgreSQL's operator characters). */
function isOperatorText(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80 || IS_OPERATOR_CHAR[c] !== 1) return false;
  }
  return true;
}

const IS_OPERATOR_CHAR = new Uint8Array(128);
for (const c of '+-*/<>=~!@#%^&|`?:') IS_OPERATOR_CHAR[c.charCodeAt(0)] = 1;

/**
 * A cheap upper bound of {@link estimateNesting} that needs no lexer: every bracket as if it
 * opened a subquery, every operator character, and every run of letters as if it were the
 * heaviest keyword, none ever taken back. Each token that raises the estimate is made of such
 * characters, so the bound holds whatever the text's quotes and comments hide. When it is
 * within {@link MAX_NESTING}, the exact estimate is too and PostgreSQL's lexer need not run.
 * Stops counting once past `limit`.
 */
export function nestingBound(text: string, limit: number): number {
  let bound = 1;
  let inWord = false;
  for (let i = 0; i < text.length && bound <= limit; i++) {
    const c = text.charCodeAt(i);
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (letter) {
      if (!inWord) bound += CASE_BRACKET;
    } else if (c === 0x28 || c === 0x5b) {
      bound += BRACKET + SUBQUERY;
    } else if (c < 0x80 && IS_OPERATOR_CHAR[c] === 1) {
      bound += OPERATOR;
    }
    inWord = letter;
  }
  return bound;
}
