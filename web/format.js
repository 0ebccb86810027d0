// Small helpers shared by the page's modules: building DOM nodes from data (text
// only: nothing from the server is ever parsed as HTML) and formatting figures.

/**
 * Makes an element. `attrs` keys are attributes, except `text` (its text),
 * `class` and `on<event>` (a listener); children are nodes or strings.
 */
export function el(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const node = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Replaces the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** A count or rate for people: 1,234.5; a dash for null. */
export function num(n) {
  return n === null || n === undefined || Number.isNaN(n) ? '—' : numberFormat.format(n);
}

/** Milliseconds, as ms or s. */
export function ms(n) {
  if (n === null || n === undefined) return '—';
  return n >= 10000 ? `${numberFormat.format(n / 1000)} s` : `${numberFormat.format(n)} ms`;
}

/** Bytes, in KB, MB or GB. */
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${numberFormat.format(n)} ${units[i]}`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A `<time>` for an RFC 3339 instant (a dash when absent). */
export function time(iso) {
  if (!iso) return document.createTextNode('—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  return el('time', { datetime: iso, text: timeFormat.format(d) });
}

/** Whether `url` may be a link on this page: http(s) or this origin only. */
export function safeUrl(url) {
  if (typeof url !== 'string' || url === '') return null;
  try {
    const u = new URL(url, window.location.href);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}
