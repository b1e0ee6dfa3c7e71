// A parser for the subset of YAML the files in deploy/ are written in, so the
// tests can read them without a YAML package: documents separated by `---`,
// block mappings and sequences (indented with spaces), one-line flow
// collections (`[a, "b"]`, `{ key: value }`), plain, 'single' and "double"
// quoted scalars, and comments. Anything outside the subset (tabs, anchors,
// aliases, tags, block scalars, multi-line flows, odd indentation, duplicate
// keys) is an error naming the line, never a guess.

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
  no: number;
}

class YamlError extends Error {
  constructor(message: string, no: number) {
    super(`line ${no}: ${message}`);
  }
}

/** Every document in `text`. */
export function parseYaml(text: string): YamlValue[] {
  const docs: Line[][] = [[]];
  text.split('\n').forEach((raw, i) => {
    const no = i + 1;
    if (/^---\s*$/.test(raw)) {
      docs.push([]);
      return;
    }
    const lead = /^[ \t]*/.exec(raw)![0];
    if (lead.includes('\t')) throw new YamlError('a tab in the indentation', no);
    const text = stripComment(raw.slice(lead.length), no).trimEnd();
    if (text !== '') docs[docs.length - 1]!.push({ indent: lead.length, text, no });
  });
  return docs.filter((d) => d.length > 0).map((lines) => new Parser(lines).document());
}

/** The line without a comment: `#` at the start or after a space, outside quotes. */
function stripComment(s: string, no: number): string {
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") {
      // A quote opens a quoted scalar only where a scalar starts.
      if (i === 0 || /[\s[{,:-]/.test(s[i - 1]!)) quote = c;
    } else if (c === '#' && (i === 0 || s[i - 1] === ' ')) {
      return s.slice(0, i);
    }
  }
  if (quote) throw new YamlError(`an unterminated ${quote} string`, no);
  return s;
}

const isSeqItem = (t: string) => t === '-' || t.startsWith('- ');

class Parser {
  private i = 0;
  constructor(private readonly lines: Line[]) {}

  document(): YamlValue {
    const v = this.node(0);
    const rest = this.lines[this.i];
    if (rest) throw new YamlError('unexpected indentation or content', rest.no);
    return v;
  }

  private node(minIndent: number): YamlValue {
    const line = this.lines[this.i];
    if (!line || line.indent < minIndent) return null;
    return isSeqItem(line.text) ? this.sequence(line.indent) : this.mapping(line.indent);
  }

  private sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    for (let line = this.lines[this.i]; line && line.indent === indent && isSeqItem(line.text); line = this.lines[this.i]) {
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        this.i++;
        out.push(this.node(indent + 1));
      } else if (isSeqItem(rest) || splitKey(rest, line.no)) {
        // "- key: value" (or "- - x"): a collection whose first line starts after the dash.
        this.lines[this.i] = { indent: indent + (line.text.length - rest.length), text: rest, no: line.no };
        out.push(this.node(indent + 1));
      } else {
        this.i++;
        out.push(scalarOrFlow(rest, line.no));
      }
    }
    return out;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    for (let line = this.lines[this.i]; line && line.indent === indent && !isSeqItem(line.text); line = this.lines[this.i]) {
      const kv = splitKey(line.text, line.no);
      if (!kv) throw new YamlError(`expected "key: value", got ${JSON.stringify(line.text)}`, line.no);
      const [key, value] = kv;
      if (Object.hasOwn(out, key)) throw new YamlError(`duplicate key ${JSON.stringify(key)}`, line.no);
      this.i++;
      if (value !== '') {
        out[key] = scalarOrFlow(value, line.no);
        continue;
      }
      const next = this.lines[this.i];
      if (next && next.indent > indent) out[key] = this.node(indent + 1);
      else if (next && next.indent === indent && isSeqItem(next.text)) out[key] = this.sequence(indent);
      else out[key] = null;
    }
    return out;
  }
}

/** `key: value` or `key:` → [key, value]; undefined when the text is not a mapping entry. */
function splitKey(text: string, no: number): [string, string] | undefined {
  let key: string;
  let rest: string;
  if (text[0] === '"' || text[0] === "'") {
    const end = quotedEnd(text, 0, no);
    key = unquote(text.slice(0, end), no);
    rest = text.slice(end);
    if (!/^\s*:(\s|$)/.test(rest)) return undefined;
    rest = rest.replace(/^\s*:/, '');
  } else {
    const m = /^([^\s[\]{},:#&*!|>'"%@`][^:]*?|[^\s[\]{},:#&*!|>'"%@`]):(\s|$)/.exec(text);
    if (!m) return undefined;
    key = m[1]!;
    rest = text.slice(m[0].length - m[2]!.length);
  }
  return [key, rest.trim()];
}

/** The index just past the quoted string starting at `start`. */
function quotedEnd(s: string, start: number, no: number): number {
  const q = s[start]!;
  for (let i = start + 1; i < s.length; i++) {
    if (q === '"' && s[i] === '\\') i++;
    else if (s[i] === q) {
      if (q === "'" && s[i + 1] === "'") i++;
      else return i + 1;
    }
  }
  throw new YamlError(`an unterminated ${q} string`, no);
}

function unquote(s: string, no: number): string {
  if (s[0] === "'") return s.slice(1, -1).replace(/''/g, "'");
  const escapes: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\', '/': '/', '0': '\0', r: '\r' };
  return s.slice(1, -1).replace(/\\(.)/g, (_, c: string) => {
    const e = escapes[c];
    if (e === undefined) throw new YamlError(`an unsupported escape \\${c}`, no);
    return e;
  });
}

function scalarOrFlow(text: string, no: number): YamlValue {
  if (/^[&*!|>]/.test(text)) throw new YamlError(`anchors, aliases, tags and block scalars are not supported: ${JSON.stringify(text)}`, no);
  if (text[0] === '[' || text[0] === '{') {
    const [v, end] = flow(text, 0, no);
    if (text.slice(end).trim() !== '') throw new YamlError(`content after a flow collection: ${JSON.stringify(text.slice(end))}`, no);
    return v;
  }
  if (text[0] === '"' || text[0] === "'") {
    const end = quotedEnd(text, 0, no);
    if (text.slice(end).trim() !== '') throw new YamlError(`content after a quoted string: ${JSON.stringify(text.slice(end))}`, no);
    return unquote(text, no);
  }
  if (/:\s/.test(text)) throw new YamlError(`": " in a plain scalar (quote it): ${JSON.stringify(text)}`, no);
  return plain(text);
}

/** A plain scalar: null, booleans and numbers as YAML 1.2's core schema reads them, else the string. */
function plain(s: string): YamlValue {
  if (s === 'null' || s === '~') return null;
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^[-+]?[0-9]+$/.test(s) || /^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(s)) return Number(s);
  return s;
}

/** A one-line flow collection or scalar at `i`; returns the value and the index after it. */
function flow(s: string, i: number, no: number): [YamlValue, number] {
  const skip = (j: number) => {
    while (s[j] === ' ') j++;
    return j;
  };
  i = skip(i);
  const open = s[i];
  if (open === '[' || open === '{') {
    const close = open === '[' ? ']' : '}';
    const list: YamlValue[] = [];
    const map: { [key: string]: YamlValue } = {};
    i = skip(i + 1);
    while (s[i] !== close) {
      if (i >= s.length) throw new YamlError(`an unterminated ${open} (flow collections must fit on one line)`, no);
      if (open === '[') {
        const [v, j] = flow(s, i, no);
        list.push(v);
        i = skip(j);
      } else {
        const [k, j] = flowScalar(s, i, no, true);
        i = skip(j);
        if (s[i] !== ':') throw new YamlError(`expected ":" after ${JSON.stringify(k)} in a flow mapping`, no);
        const [v, j2] = flow(s, i + 1, no);
        if (Object.hasOwn(map, String(k))) throw new YamlError(`duplicate key ${JSON.stringify(k)}`, no);
        map[String(k)] = v;
        i = skip(j2);
      }
      if (s[i] === ',') i = skip(i + 1);
      else if (s[i] !== close) throw new YamlError(`expected "," or "${close}" at ${JSON.stringify(s.slice(i))}`, no);
    }
    return [open === '[' ? list : map, i + 1];
  }
  return flowScalar(s, i, no, false);
}

function flowScalar(s: string, i: number, no: number, isKey: boolean): [YamlValue, number] {
  if (s[i] === '"' || s[i] === "'") {
    const end = quotedEnd(s, i, no);
    return [unquote(s.slice(i, end), no), end];
  }
  let j = i;
  while (j < s.length && !/[,\]}]/.test(s[j]!) && !(s[j] === ':' && (isKey || /[\s,\]}]/.test(s[j + 1] ?? ' ')))) j++;
  const text = s.slice(i, j).trim();
  if (text === '') throw new YamlError(`an empty entry at ${JSON.stringify(s.slice(i))}`, no);
  return [isKey ? text : plain(text), j];
}
