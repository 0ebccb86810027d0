// The signed-in person's notifications: the stored ones from
// GET /api/v1/notifications, then live ones over the WebSocket /ws. The socket
// resumes after a drop from the last id seen (`after`), so nothing is missed and
// nothing is shown twice (ids are ULIDs: they sort by time, and the list is keyed
// by id). Reconnects back off exponentially with jitter, up to 30 s.

import { el, safeUrl, time } from './format.js';

/** Notifications asked for per page at sign-in. */
const PAGE = 500;
/** Pages read at sign-in at most (the rest stay on the server). */
const MAX_PAGES = 20;
/** Notifications kept on the page, the newest. */
const KEEP = 200;
/** First reconnect delay. */
const BACKOFF_MIN_MS = 1000;
/** Longest reconnect delay. */
const BACKOFF_MAX_MS = 30000;
/** A socket not open by then is given up and retried (a connection can hang half-open). */
const CONNECT_TIMEOUT_MS = 10000;

export class Notifications {
  /** `root`: the section; `announce(text)`: says something to screen readers. */
  constructor(api, root, announce) {
    this.api = api;
    this.announce = announce;
    this.root = root;
    this.list = root.querySelector('#notification-list');
    this.empty = root.querySelector('#notifications-empty');
    this.state = root.querySelector('#live-state');
    this.count = root.querySelector('#unread-count');
    this.onlyUnread = root.querySelector('#only-unread');
    this.markAll = root.querySelector('#mark-all-read');
    this.items = new Map();
    this.nodes = new Map();
    this.lastId = null;
    this.socket = null;
    this.stopped = false;
    this.attempt = 0;
    this.timer = null;
    this.renderQueued = false;
    this.onOnline = () => {
      if (!this.socket && !this.stopped) this.connect();
    };
    this.onToggle = () => this.list.classList.toggle('only-unread', this.onlyUnread.checked);
    this.onMarkAll = () => this.markAllRead();
  }

  async start() {
    this.root.hidden = false;
    this.onlyUnread.addEventListener('change', this.onToggle);
    this.markAll.addEventListener('click', this.onMarkAll);
    window.addEventListener('online', this.onOnline);
    this.setState('Loading…');
    try {
      await this.loadHistory();
    } catch (e) {
      if (this.stopped || e.status === 401) return;
      if (e.status === 404) {
        this.setState('Notifications are not available on this server (no /api/v1/notifications).');
        this.render();
        return;
      }
      this.setState(`Could not load stored notifications (${e.message}); connecting anyway.`);
    }
    this.render();
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    this.onlyUnread.removeEventListener('change', this.onToggle);
    this.markAll.removeEventListener('click', this.onMarkAll);
    if (this.socket) this.socket.close(1000, 'signed out');
    this.socket = null;
    this.list.replaceChildren();
    this.count.textContent = '';
    this.root.hidden = true;
    document.title = 'The Collective Strategist';
  }

  setState(text) {
    this.state.textContent = text;
  }

  async loadHistory() {
    let after = null;
    for (let i = 0; i < MAX_PAGES; i += 1) {
      const page = await this.api.get('/api/v1/notifications', { after, limit: PAGE });
      const got = Array.isArray(page.notifications) ? page.notifications : [];
      for (const n of got) this.upsert(n, false);
      if (!page.next || got.length < PAGE) break;
      after = page.next;
    }
  }

  /** Adds or updates one; true when it was new. */
  upsert(n, live) {
    if (!n || typeof n.id !== 'string') return false;
    const known = this.items.get(n.id);
    // A read mark made here stays until the server's copy says so too.
    this.items.set(n.id, known ? { ...known, ...n, read_at: n.read_at || known.read_at } : n);
    if (!this.lastId || n.id > this.lastId) this.lastId = n.id;
    if (this.items.size > KEEP) {
      const ids = [...this.items.keys()].sort();
      for (const id of ids.slice(0, ids.length - KEEP)) this.items.delete(id);
    }
    if (!known && live) this.announce(`New notification: ${n.title}`);
    return !known;
  }

  scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /** Brings the list in line with `items`, newest first, touching only what changed (focus stays put). */
  render() {
    if (this.stopped) return;
    for (const [id, node] of this.nodes) {
      if (!this.items.has(id)) {
        node.remove();
        this.nodes.delete(id);
      }
    }
    const ids = [...this.items.keys()].sort().reverse();
    let cursor = this.list.firstChild;
    for (const id of ids) {
      const n = this.items.get(id);
      let node = this.nodes.get(id);
      const state = n.read_at ? 'read' : 'unread';
      if (node && node.dataset.state !== state) {
        const fresh = this.item(n);
        if (cursor === node) cursor = fresh;
        node.replaceWith(fresh);
        node = fresh;
      }
      if (!node) node = this.item(n);
      this.nodes.set(id, node);
      if (node === cursor) cursor = cursor.nextSibling;
      else this.list.insertBefore(node, cursor);
    }
    const unread = ids.filter((id) => !this.items.get(id).read_at).length;
    this.count.textContent = unread ? `(${unread} unread)` : '';
    this.empty.hidden = ids.length > 0;
    this.markAll.disabled = unread === 0;
    document.title = unread ? `(${unread}) The Collective Strategist` : 'The Collective Strategist';
  }

  item(n) {
    const unread = !n.read_at;
    const titleId = `n-${n.id}`;
    const href = safeUrl(n.action_url);
    const linkText = n.notification_type === 'briefing_ready' ? 'Open the briefing' : 'Open';
    const priority = typeof n.priority === 'string' ? n.priority : 'normal';
    return el(
      'li',
      { class: `notification ${unread ? 'unread' : 'read'} priority-${priority}`, 'data-id': n.id, 'data-state': unread ? 'unread' : 'read' },
      el(
        'article',
        { 'aria-labelledby': titleId, tabindex: '-1' },
        el(
          'h3',
          { id: titleId },
          unread ? el('span', { class: 'badge unread-badge', text: 'Unread' }) : null,
          priority === 'high' || priority === 'critical' ? el('span', { class: `badge badge-${priority}`, text: priority }) : null,
          el('span', { class: 'title', text: n.title || '(no title)' }),
        ),
        n.body ? el('p', { class: 'body', text: n.body }) : null,
        href
          ? el(
              'p',
              {},
              el('a', {
                href,
                class: 'action',
                'aria-describedby': titleId,
                text: linkText,
                onclick: (e) => {
                  const id = briefingId(n.action_url);
                  if (id) {
                    e.preventDefault();
                    showBriefing(this.api, id);
                  }
                },
              }),
            )
          : null,
        el('p', { class: 'meta' }, time(n.created_at), ` · ${String(n.notification_type || '').replace(/_/g, ' ')}`),
        unread
          ? el('button', { type: 'button', class: 'mark-read', 'aria-describedby': titleId, text: 'Mark as read', onclick: () => this.markRead(n.id) })
          : null,
      ),
    );
  }

  /** Sends a frame if the socket is open; false when it is not. */
  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  async markRead(id) {
    const n = this.items.get(id);
    if (!n || n.read_at) return;
    const hadFocus = this.nodes.get(id)?.contains(document.activeElement);
    try {
      await this.api.post(`/api/v1/notifications/${encodeURIComponent(id)}/read`);
    } catch (e) {
      // The socket records a read too; use it when the request could not go.
      if (!(e.status === 0 && this.send({ type: 'read', id }))) {
        this.setState(`Could not mark “${n.title}” as read: ${e.message}`);
        return;
      }
    }
    n.read_at = new Date().toISOString();
    this.render();
    if (hadFocus) this.nodes.get(id)?.querySelector('article')?.focus();
  }

  async markAllRead() {
    const unread = [...this.items.values()].filter((n) => !n.read_at).map((n) => n.id);
    for (const id of unread) await this.markRead(id);
    this.announce(`${unread.length} marked as read`);
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = new URLSearchParams({ token: this.api.token });
    if (this.lastId) q.set('after', this.lastId);
    let ws;
    try {
      ws = new WebSocket(`${proto}//${window.location.host}/ws?${q}`);
    } catch (e) {
      this.retry(null, false);
      return;
    }
    this.socket = ws;
    let opened = false;
    this.setState(this.attempt ? 'Reconnecting…' : 'Connecting…');
    const guard = setTimeout(() => {
      if (opened || this.socket !== ws) return;
      this.socket = null;
      ws.close();
      if (!this.stopped) this.retry(null, false);
    }, CONNECT_TIMEOUT_MS);
    ws.addEventListener('open', () => {
      opened = true;
      clearTimeout(guard);
      this.setState('Connected, catching up…');
    });
    ws.addEventListener('message', (ev) => this.onFrame(ev.data));
    ws.addEventListener('close', (ev) => {
      clearTimeout(guard);
      if (this.socket !== ws) return;
      this.socket = null;
      if (!this.stopped) this.retry(ev, opened);
    });
  }

  onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === 'notification' && frame.notification) {
      const n = frame.notification;
      this.upsert(n, true);
      if (!n.delivered_at) this.send({ type: 'ack', id: n.id });
      this.scheduleRender();
    } else if (frame.type === 'replayed') {
      this.attempt = 0;
      this.setState(frame.count ? `Live (caught up on ${frame.count} missed)` : 'Live');
      this.root.dataset.live = 'true';
    }
  }

  retry(ev, opened) {
    delete this.root.dataset.live;
    this.attempt += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.attempt - 1));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    const why = ev && ev.code && ev.code !== 1006 ? ` (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})` : '';
    this.setState(`Disconnected${why}; reconnecting in ${Math.ceil(delay / 1000)} s.`);
    this.timer = setTimeout(() => this.connect(), delay);
    if (!opened && this.attempt === 1) {
      // Refused before the upgrade: a 401 here signs out (through the API client).
      this.api.get('/api/v1/notifications', { limit: 1 }).catch((e) => {
        if (e.status === 404 && !this.stopped) {
          clearTimeout(this.timer);
          this.setState('Live notifications are not available on this server (no /ws).');
        }
      });
    }
  }
}

/** The briefing id of an action URL `/briefings/{id}` of this site, else null. */
export function briefingId(url) {
  const m = typeof url === 'string' ? /^\/briefings\/([0-9A-Za-z_-]+)$/.exec(url) : null;
  return m ? m[1] : null;
}

function words(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function render(value) {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) {
    return el('ul', {}, ...value.map((v) => el('li', {}, render(v))));
  }
  if (typeof value === 'object') {
    const link = safeUrl(value.url || value.link);
    const label = value.title || value.name || value.keyword || value.text;
    if (label !== undefined) {
      const rest = Object.entries(value)
        .filter(([k]) => !['url', 'link', 'title', 'name', 'keyword', 'text'].includes(k))
        .map(([k, v]) => `${words(k)}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(' · ');
      return el('span', {}, link ? el('a', { href: link, rel: 'noopener noreferrer', text: String(label) }) : String(label), rest ? ` (${rest})` : '');
    }
    return el('dl', {}, ...Object.entries(value).flatMap(([k, v]) => [el('dt', { text: words(k) }), el('dd', {}, render(v))]));
  }
  return String(value);
}

/** Reads a briefing and shows it in its section (the caller's own; the server checks). */
export async function showBriefing(api, id) {
  const section = document.getElementById('briefing');
  const body = document.getElementById('briefing-body');
  const period = document.getElementById('briefing-period');
  section.hidden = false;
  body.replaceChildren(el('p', { text: 'Loading the briefing…' }));
  try {
    const b = await api.get(`/api/v1/briefings/${encodeURIComponent(id)}`);
    period.textContent = `${words(b.period || '')} briefing, ${time(b.period_start).textContent} to ${time(b.period_end).textContent}`;
    const content = b.content && typeof b.content === 'object' ? b.content : { text: b.content };
    body.replaceChildren(
      ...Object.entries(content).flatMap(([k, v]) => [el('h3', { text: words(k) }), el('div', {}, render(v))]),
    );
  } catch (e) {
    body.replaceChildren(el('p', { role: 'alert', text: `The briefing cannot be shown: ${e.message}` }));
  }
  document.getElementById('briefing-close').onclick = () => {
    section.hidden = true;
  };
  section.focus();
}
