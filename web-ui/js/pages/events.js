// The event log: filter by kind, device and "unacknowledged only", page
// back with "older", and acknowledge alarms (operator and up; the gateway
// then resets the alarm on the device).
import { api, can } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, badge, errorText, toast, formatTime } from '../dom.js';

// The kinds the gateway stores (src/gb/platform.rs).
const KINDS = ['alarm', 'device_online', 'device_offline', 'catalog_synced', 'catalog_event', 'auth_failed', 'protocol_error'];
const LIMIT = 50;
const filter = { kind: '', device_id: '', unacknowledged: false };

export function eventKindLabel(kind) {
  const s = t(`event.${kind}`);
  return s === `event.${kind}` ? kind : s;
}

export function render(main) {
  const kind = h('select', { name: 'kind', 'aria-label': t('events.kind'), dataset: { testid: 'event-kind' } },
    h('option', { value: '' }, t('events.all_kinds')),
    KINDS.map((k) => h('option', { value: k, selected: filter.kind === k }, eventKindLabel(k))));
  const device = h('input', { type: 'search', name: 'device_id', value: filter.device_id, placeholder: t('events.device'), 'aria-label': t('events.device') });
  const unack = h('input', { type: 'checkbox', name: 'unacknowledged', checked: filter.unacknowledged });
  const list = h('div', h('p.muted', t('common.loading')));
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(true) }, t('events.older'));
  const error = h('p.form-error', { role: 'alert' });
  main.append(pageHead(t('nav.events'), h('button', { type: 'button', onclick: () => load(false) }, t('common.reload'))),
    h('div.toolbar', kind, device, h('label.check', unack, t('events.unacknowledged'))), error, list, h('div.pager', more));

  let rows = [];
  let stopped = false;
  const apply = () => {
    filter.kind = kind.value;
    filter.device_id = device.value.trim();
    filter.unacknowledged = unack.checked;
    load(false);
  };
  kind.addEventListener('change', apply);
  unack.addEventListener('change', apply);
  let typing;
  device.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 300);
  });

  async function load(older) {
    try {
      const page = await api('GET', '/events', {
        query: {
          kind: filter.kind,
          device_id: filter.device_id,
          unacknowledged: filter.unacknowledged ? 'true' : '',
          limit: LIMIT,
          before_id: older && rows.length ? rows[rows.length - 1].id : '',
        },
      });
      if (stopped) return;
      rows = older ? rows.concat(page) : page;
      more.hidden = page.length < LIMIT;
      error.textContent = '';
      draw();
    } catch (e) {
      error.textContent = errorText(e);
    }
  }

  async function ack(e) {
    try {
      const r = await api('POST', `/events/${e.id}/ack`);
      toast(t('events.acked', { reset: r.device_reset }));
      const i = rows.findIndex((x) => x.id === e.id);
      if (i >= 0) rows[i] = r;
      if (filter.unacknowledged) rows = rows.filter((x) => x.id !== e.id);
      draw();
    } catch (err) {
      toast(errorText(err), 'error');
    }
  }

  function draw() {
    list.replaceChildren(table([
      { label: t('events.time'), cell: (e) => formatTime(e.at, true) },
      { label: t('events.kind'), cell: (e) => badge(eventKindLabel(e.kind), e.kind === 'alarm' ? 'warn' : 'info') },
      { label: t('events.device'), class: 'hide-sm', cell: (e) => (e.device_id ? h('a', { href: `#/devices/${encodeURIComponent(e.device_id)}` }, e.device_id) : '–') },
      { label: t('events.channel'), class: 'hide-md', cell: (e) => e.channel_id || '–' },
      { label: t('events.message'), cell: (e) => e.message },
      {
        label: t('events.ack'),
        cell: (e) => {
          if (e.kind !== 'alarm') return '';
          if (e.acknowledged_at) return h('span.muted', t('events.acked_by', { by: e.acknowledged_by || '?', at: formatTime(e.acknowledged_at, true) }));
          return can('operator') ? h('button.small.primary', { type: 'button', dataset: { testid: 'ack' }, onclick: () => ack(e) }, t('events.ack_button')) : badge(t('events.unacked'), 'warn');
        },
      },
    ], rows, { empty: t('events.none'), rowAttrs: (e) => ({ dataset: { event: String(e.id), kind: e.kind } }) }));
  }

  load(false);
  return () => {
    stopped = true;
    clearTimeout(typing);
  };
}
