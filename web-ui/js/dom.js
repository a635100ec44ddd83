// Small DOM helpers: h() builds elements (text is always set as text, never
// as HTML, so names from devices cannot inject markup), formatting, toasts
// and a modal dialog.
import { t, language } from './i18n.js';

/**
 * h('button.primary', {onclick, type: 'button'}, 'text', child, ...)
 * Attributes: `class`, `dataset`, `on*` handlers, boolean and string attrs.
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

/** Bits per second, from bytes per second when `fromBytes`. */
export function formatRate(n, fromBytes = false) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  let v = Number(n) * (fromBytes ? 8 : 1);
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

/** A time from unix seconds, unix milliseconds (`ms`) or an RFC 3339 string. */
export function formatTime(v, ms = false) {
  if (v === null || v === undefined || v === '') return '–';
  const d = typeof v === 'string' ? new Date(v) : new Date(ms ? v : v * 1000);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.toLocaleString(language() === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

export function formatDuration(secs) {
  if (secs === null || secs === undefined) return '–';
  const d = Math.floor(secs / 86400);
  const hh = Math.floor((secs % 86400) / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  if (d > 0) return t('duration.dh', { d, h: hh });
  if (hh > 0) return t('duration.hm', { h: hh, m: mm });
  return t('duration.ms', { m: mm, s: Math.floor(secs % 60) });
}

export function badge(text, kind) {
  return h(`span.badge.${kind}`, text);
}

export function onlineBadge(online) {
  return badge(online ? t('status.online') : t('status.offline'), online ? 'ok' : 'off');
}

let toastBox;

/** A short message at the bottom of the screen; `kind`: ok | error. */
export function toast(message, kind = 'ok') {
  if (!toastBox) {
    toastBox = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(toastBox);
  }
  const el = h(`div.toast.${kind}`, message);
  toastBox.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** The message to show for an API error (field named when there is one). */
export function errorText(e) {
  if (!e) return '';
  if (e.status === 403) return t('error.forbidden', { message: e.message });
  if (e.status === 429) return t('error.rate_limited', { secs: e.retryAfter ?? '?' });
  if (e.field) return t('error.field', { field: e.field, message: e.message });
  return e.message || String(e);
}

/**
 * A modal dialog: `content` is an element (usually a form); resolves with
 * what `close(value)` was called with, or null when dismissed.
 */
export function dialog(title, build) {
  return new Promise((resolve) => {
    const dlg = h('dialog.modal', { 'aria-label': title });
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    dlg.append(
      h('div.modal-head', h('h2', title),
        h('button.icon', { type: 'button', 'aria-label': t('common.close'), onclick: () => done(null) }, '✕')),
      build(done),
    );
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(null);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export async function confirmDialog(message) {
  return dialog(t('common.confirm'), (close) => h('div.modal-body',
    h('p', message),
    h('div.actions',
      h('button', { type: 'button', onclick: () => close(false) }, t('common.cancel')),
      h('button.danger', { type: 'button', dataset: { testid: 'confirm-yes' }, onclick: () => close(true) }, t('common.ok'))),
  ));
}

/** A labelled form field. */
export function field(label, input, hint) {
  return h('label.field', h('span.label', label), input, hint ? h('span.hint', hint) : null);
}

/** Shows an API error under a form (and marks the named field). */
export function formError(form, e) {
  let box = form.querySelector('.form-error');
  if (!box) {
    box = h('p.form-error', { role: 'alert' });
    form.append(box);
  }
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  if (!e) {
    box.textContent = '';
    return;
  }
  box.textContent = errorText(e);
  if (e.field) {
    const el = form.querySelector(`[name="${CSS.escape(e.field)}"]`);
    if (el) el.setAttribute('aria-invalid', 'true');
  }
}

/** A page heading with optional action buttons. */
export function pageHead(title, ...actions) {
  return h('div.page-head', h('h1', title), h('div.actions', ...actions));
}

/** A table; `cols`: [{label, cell(row) → node|string, class?}]. */
export function table(cols, rows, { empty, rowAttrs } = {}) {
  const body = rows.length
    ? rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : null,
      cols.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.cell(r)))))
    : [h('tr', h('td.empty', { colspan: cols.length }, empty || t('common.none')))];
  return h('div.table-wrap', h('table',
    h('thead', h('tr', cols.map((c) => h('th', { class: c.class, scope: 'col' }, c.label)))),
    h('tbody', body)));
}
