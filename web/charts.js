// A small SVG line chart drawn by hand (no chart library): a fixed number of
// samples, newest on the right, y from 0 to a rounded maximum. Colours come from
// the style sheet (classes series-0, series-1, ...), so the CSP needs no inline
// style. The chart is an image for assistive technology: its caption says what it
// shows, and its label is rewritten with the latest values on every update.

import { el } from './format.js';

const W = 600;
const H = 180;
const LEFT = 52;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 22;

/** The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1). */
function niceCeil(v) {
  if (!(v > 1)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export class LineChart {
  /**
   * `label`: what it shows; `series`: names of the lines; `format`: a number for people;
   * `points`: samples kept; `every`: seconds between samples (for the axis).
   */
  constructor(svg, { label, series, format, points = 60, every = 5 }) {
    this.svg = svg;
    this.label = label;
    this.series = series;
    this.format = format;
    this.points = points;
    this.every = every;
    this.data = series.map(() => []);
  }

  /** Adds one sample per series (null: no value this time) and redraws. */
  push(values) {
    values.forEach((v, i) => {
      const d = this.data[i];
      d.push(typeof v === 'number' && Number.isFinite(v) ? v : null);
      if (d.length > this.points) d.shift();
    });
    this.render();
  }

  render() {
    const plotW = W - LEFT - RIGHT;
    const plotH = H - TOP - BOTTOM;
    const all = this.data.flat().filter((v) => v !== null);
    const max = niceCeil(Math.max(0, ...all));
    const x = (i, n) => LEFT + plotW - (n - 1 - i) * (plotW / (this.points - 1));
    const y = (v) => TOP + plotH - (v / max) * plotH;
    const parts = [];
    for (const f of [0, 0.5, 1]) {
      const yy = y(max * f);
      parts.push(el('svg:line', { x1: LEFT, x2: W - RIGHT, y1: yy, y2: yy, class: 'grid' }));
      parts.push(el('svg:text', { x: LEFT - 6, y: yy + 4, class: 'axis', 'text-anchor': 'end', text: this.format(max * f) }));
    }
    const minutes = Math.round(((this.points - 1) * this.every) / 60);
    parts.push(el('svg:text', { x: LEFT, y: H - 4, class: 'axis', text: `${minutes} min ago` }));
    parts.push(el('svg:text', { x: W - RIGHT, y: H - 4, class: 'axis', 'text-anchor': 'end', text: 'now' }));
    this.data.forEach((d, s) => {
      let path = '';
      let pen = false;
      d.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        path += `${pen ? 'L' : 'M'}${x(i, d.length).toFixed(1)} ${y(v).toFixed(1)} `;
        pen = true;
      });
      if (path) parts.push(el('svg:path', { d: path.trim(), class: `line series-${s}` }));
    });
    this.svg.replaceChildren(...parts);
    const now = this.series.map((name, s) => {
      const last = this.data[s][this.data[s].length - 1];
      return `${name} ${last === null || last === undefined ? 'no data' : this.format(last)}`;
    });
    this.svg.setAttribute('aria-label', `${this.label}. Now: ${now.join(', ')}. Scale up to ${this.format(max)} over ${minutes} minutes.`);
    return now;
  }
}
