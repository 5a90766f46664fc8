/**
 * Building the page with DOM calls only (no innerHTML: every string from the API lands as text), and the formatting
 * every view shares.
 */

/** @typedef {import('./types').Child} Child */

/**
 * An element with attributes (`class`, `data-*`, `aria-*`, ...; false/undefined leave one out) and children (nested
 * arrays are flattened; null, undefined and false leave a child out).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number | boolean | undefined>} [attributes]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

/**
 * @param {Element} parent
 * @param {readonly Child[]} children
 */
function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (typeof child === 'string' || typeof child === 'number') parent.append(String(child));
    else if (child instanceof Node) parent.append(child);
    else append(parent, child);
  }
}

/**
 * A table: headers, then one row of cells per item; a row may carry attributes (data-name for tests and links).
 * @param {string[]} headers
 * @param {{ attributes?: Record<string, string>, cells: Child[] }[]} rows
 * @param {string} [label]
 */
export function table(headers, rows, label) {
  return h(
    'table',
    { 'aria-label': label },
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
    h(
      'tbody',
      {},
      rows.map((row) => h('tr', row.attributes ?? {}, row.cells.map((cell) => h('td', {}, cell)))),
    ),
  );
}

/** @param {string} text @param {string} kind */
export const badge = (text, kind) => h('span', { class: `badge ${kind}` }, text);

/** @param {string} state */
export const stateBadge = (state) =>
  badge(state, state === 'ready' || state === 'passed' ? 'good' : state === 'syncing' || state === 'running' ? 'busy' : state === 'stale' ? 'warn' : 'bad');

/**
 * "4 s ago", "in 364 d": how far `iso` is from now, in the largest unit that fits.
 * @param {string | undefined} iso
 */
export function relative(iso) {
  if (iso === undefined) return '—';
  const ms = new Date(iso).getTime() - Date.now();
  const abs = Math.abs(ms);
  const [value, unit] = abs < 60_000 ? [abs / 1000, 's'] : abs < 3_600_000 ? [abs / 60_000, 'min'] : abs < 86_400_000 ? [abs / 3_600_000, 'h'] : [abs / 86_400_000, 'd'];
  const text = `${String(Math.floor(value))} ${unit}`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

/** @param {string | undefined} iso */
export const day = (iso) => (iso === undefined ? '—' : iso.slice(0, 10));

/** @param {number | undefined} ms */
export const seconds = (ms) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

/** @param {string | undefined} id */
export const shortId = (id) => (id === undefined ? '—' : h('code', { title: id }, id.length > 16 ? `${id.slice(0, 16)}…` : id));

/**
 * A definition list of facts.
 * @param {[string, Child][]} facts
 */
export const facts = (facts) => h('dl', { class: 'facts' }, facts.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]));
