// The admin views: streams (GET /api/v1/streams), throughput and latency charts,
// per-type figures and pools (GET /api/v1/metrics), sagas in flight
// (GET /api/v1/sagas), polled every few seconds while the tab is visible; and the
// dead letters (GET /api/v1/dlq, POST /api/v1/dlq/{id}/reprocess), loaded on
// demand only, so a refresh never moves a keyboard user's focus.

import { LineChart } from './charts.js';
import { bytes, el, ms, num, replace, time } from './format.js';

/** Seconds between two polls (and two chart samples). */
const POLL_SECONDS = 5;
/** Dead letters per page. */
const DLQ_PAGE = 100;
/** Sagas shown. */
const SAGA_LIMIT = 100;

function cell(content, cls) {
  return el('td', cls ? { class: cls } : {}, content);
}

function emptyRow(cols, text) {
  return el('tr', {}, el('td', { colspan: cols, class: 'empty', text }));
}

/** Throughput summed over types; latency p50 weighted by throughput, p99 the worst type. */
export function summarize(events) {
  let total = 0;
  let weighted = 0;
  let worst = null;
  for (const e of events || []) {
    const t = e.throughput_per_minute || 0;
    total += t;
    if (t > 0) {
      weighted += (e.latency_p50 || 0) * t;
      worst = Math.max(worst ?? 0, e.latency_p99 || 0);
    }
  }
  return { throughput: total, p50: total > 0 ? weighted / total : null, p99: worst };
}

export class Admin {
  constructor(api, root) {
    this.api = api;
    this.root = root;
    this.$ = (sel) => root.querySelector(sel);
    this.stopped = false;
    this.timer = null;
    this.dlqNext = null;
    this.throughput = new LineChart(this.$('#chart-throughput'), {
      label: 'Events handled per minute',
      series: ['all types'],
      format: num,
      every: POLL_SECONDS,
    });
    this.latency = new LineChart(this.$('#chart-latency'), {
      label: 'Latency in milliseconds',
      series: ['p50', 'p99'],
      format: num,
      every: POLL_SECONDS,
    });
    this.onFilter = (ev) => {
      ev.preventDefault();
      this.loadDeadLetters();
    };
    this.onMore = () => this.loadDeadLetters({ append: true });
    this.onSagaStatus = () => this.loadSagas();
    this.onVisible = () => {
      if (!document.hidden && !this.stopped) this.poll();
    };
  }

  start() {
    this.root.hidden = false;
    this.$('#dlq-filter').addEventListener('submit', this.onFilter);
    this.$('#dlq-more').addEventListener('click', this.onMore);
    this.$('#saga-status').addEventListener('change', this.onSagaStatus);
    document.addEventListener('visibilitychange', this.onVisible);
    this.poll();
    this.loadDeadLetters();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.$('#dlq-filter').removeEventListener('submit', this.onFilter);
    this.$('#dlq-more').removeEventListener('click', this.onMore);
    this.$('#saga-status').removeEventListener('change', this.onSagaStatus);
    document.removeEventListener('visibilitychange', this.onVisible);
    for (const t of this.root.querySelectorAll('tbody')) t.replaceChildren();
    this.root.hidden = true;
  }

  /** One refresh of everything polled; the next is scheduled unless the tab is hidden. */
  async poll() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const [streams, metrics] = await Promise.allSettled([
      this.api.get('/api/v1/streams'),
      this.api.get('/api/v1/metrics'),
      this.loadSagas(),
    ]);
    if (this.stopped) return;
    const errors = [];
    if (streams.status === 'fulfilled') this.renderStreams(streams.value.streams || []);
    else errors.push(`streams: ${streams.reason.message}`);
    if (metrics.status === 'fulfilled') this.renderMetrics(metrics.value);
    else {
      errors.push(`metrics: ${metrics.reason.message}`);
      this.throughput.push([null]);
      this.latency.push([null, null]);
    }
    this.$('#admin-error').textContent = errors.length ? `Could not refresh ${errors.join('; ')}` : '';
    replace(this.$('#admin-updated'), 'Last update: ', time(new Date().toISOString()), '.');
    if (!document.hidden) this.timer = setTimeout(() => this.poll(), POLL_SECONDS * 1000);
  }

  renderStreams(streams) {
    const rows = [];
    for (const s of streams) {
      const groups = s.groups && s.groups.length ? s.groups : [null];
      for (const g of groups) {
        rows.push(
          el(
            'tr',
            { 'data-stream': s.name },
            el('th', { scope: 'row', text: s.name }),
            cell(num(s.length), 'n'),
            cell(s.last_id || '—', 'mono'),
            cell(g ? g.name : 'no consumer group'),
            cell(g ? num(g.consumers) : '—', 'n'),
            cell(g ? num(g.pending) : '—', 'n'),
            cell(g ? num(g.lag) : '—', 'n'),
          ),
        );
      }
    }
    replace(this.$('#streams-table tbody'), ...(rows.length ? rows : [emptyRow(7, 'No streams.')]));
  }

  renderMetrics(m) {
    const sum = summarize(m.events);
    this.throughput.push([sum.throughput]);
    this.latency.push([sum.p50, sum.p99]);
    this.$('#throughput-now').textContent = `(now ${num(sum.throughput)})`;
    this.$('#latency-now').textContent = `(now p50 ${sum.p50 === null ? '—' : ms(sum.p50)}, p99 ${sum.p99 === null ? '—' : ms(sum.p99)})`;
    const types = (m.events || []).map((e) =>
      el(
        'tr',
        {},
        el('th', { scope: 'row', text: e.event_type }),
        cell(e.group),
        cell(num(e.throughput_per_minute), 'n'),
        cell(ms(e.latency_p50), 'n'),
        cell(ms(e.latency_p99), 'n'),
        cell(ms(e.processing_time_p95), 'n'),
        cell(`${num((e.error_rate || 0) * 100)} %`, 'n'),
      ),
    );
    replace(this.$('#types-table tbody'), ...(types.length ? types : [emptyRow(7, 'Nothing handled in this process during the window.')]));
    // This process's routers (workers, restarts), by stream and group.
    const here = new Map((m.pools || []).map((p) => [`${p.stream_name}\u0000${p.group}`, p]));
    const pools = (m.groups || []).map((g) => {
      const p = here.get(`${g.stream_name}\u0000${g.group}`);
      return el(
        'tr',
        { 'data-group': g.group, 'data-stream': g.stream_name },
        el('th', { scope: 'row', text: g.group }),
        cell(g.stream_name),
        cell(num(g.consumers), 'n'),
        cell(p ? num(p.workers) : '—', 'n workers'),
        cell(p ? num(p.restarts) : '—', 'n'),
        cell(num(p ? p.in_flight : g.in_flight), 'n'),
        cell(num(g.queue_depth), 'n'),
        cell(g.oldest_pending_age_ms === null ? '—' : ms(g.oldest_pending_age_ms), 'n'),
        cell(num(g.dead_letters_per_minute), 'n'),
      );
    });
    replace(this.$('#pools-table tbody'), ...(pools.length ? pools : [emptyRow(9, 'No consumer groups yet.')]));
    const p = m.process;
    this.$('#process-figures').textContent = p
      ? `This server process: ${bytes(p.rss_bytes)} resident, ${num(p.cpu_seconds)} s of CPU so far.`
      : '';
  }

  async loadSagas() {
    const status = this.$('#saga-status').value;
    const tbody = this.$('#sagas-table tbody');
    try {
      const page = await this.api.get('/api/v1/sagas', { status, limit: SAGA_LIMIT });
      const rows = (page.sagas || []).map((s) =>
        el(
          'tr',
          { 'data-id': s.id },
          el('th', { scope: 'row', text: s.saga }),
          cell(s.id, 'mono'),
          cell(num(s.step), 'n'),
          cell(num(s.attempts), 'n'),
          cell(time(s.deadline_at)),
          cell(time(s.updated_at)),
          cell(s.error || ''),
        ),
      );
      replace(tbody, ...(rows.length ? rows : [emptyRow(7, `No ${status} sagas.`)]));
    } catch (e) {
      replace(tbody, emptyRow(7, `Could not load sagas: ${e.message}`));
      throw e;
    }
  }

  filters() {
    const f = new FormData(this.$('#dlq-filter'));
    return {
      stream: f.get('stream'),
      type: String(f.get('type') || '').trim(),
      reason: f.get('reason'),
      status: f.get('status'),
      limit: DLQ_PAGE,
    };
  }

  /** Loads the first page for the filters (or the next one); `note` prefixes the status line. */
  async loadDeadLetters({ append = false, note = '' } = {}) {
    const status = this.$('#dlq-status');
    const tbody = this.$('#dlq-table tbody');
    const params = this.filters();
    if (append) params.after = this.dlqNext;
    status.textContent = `${note}Loading dead letters…`;
    try {
      const page = await this.api.get('/api/v1/dlq', params);
      const rows = (page.dead_letters || []).map((d) => this.deadLetterRow(d));
      if (append) tbody.querySelector('.empty')?.closest('tr')?.remove();
      if (append) tbody.append(...rows);
      else replace(tbody, ...(rows.length ? rows : [emptyRow(9, 'No dead letters match.')]));
      this.dlqNext = page.next_after || null;
      this.$('#dlq-more').hidden = !this.dlqNext;
      const shown = tbody.querySelectorAll('tr[data-id]').length;
      status.textContent = `${note}${shown} dead letter${shown === 1 ? '' : 's'} shown${this.dlqNext ? ', more available' : ''}.`;
    } catch (e) {
      status.textContent = `${note}Could not load dead letters: ${e.message}`;
    }
  }

  deadLetterRow(d) {
    const open = d.status === 'open';
    return el(
      'tr',
      { 'data-id': d.id, 'data-type': d.type, 'data-stream': d.stream },
      cell(time(d.at)),
      cell(d.stream),
      el('th', { scope: 'row', text: d.type || '(no type)' }),
      cell(d.reason),
      cell(d.group),
      cell(num(d.attempts), 'n'),
      cell(d.error, 'wrap'),
      cell(d.status),
      cell(
        open
          ? el('button', {
              type: 'button',
              class: 'reprocess',
              'aria-label': `Reprocess ${d.type} dead letter ${d.id} for ${d.group}`,
              text: 'Reprocess',
              onclick: (ev) => this.reprocess(d, ev.currentTarget),
            })
          : '',
      ),
    );
  }

  async reprocess(d, button) {
    button.disabled = true;
    const status = this.$('#dlq-status');
    try {
      await this.api.post(`/api/v1/dlq/${encodeURIComponent(d.id)}/reprocess`);
    } catch (e) {
      button.disabled = false;
      status.textContent = `Could not reprocess ${d.id}: ${e.message}`;
      return;
    }
    // The button leaves with its row: keep the keyboard user near it.
    status.focus();
    await this.loadDeadLetters({ note: `Sent ${d.type} (${d.id}) back to ${d.group}. ` });
  }
}
