// Webhooks (admin): HTTP endpoints that receive events as signed JSON, and
// the delivery log of each (state, attempts, last HTTP status or error).
import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, badge, errorText, dialog, field, formError, toast, confirmDialog, formatTime } from '../dom.js';
import { eventKindLabel } from './events.js';

// The kinds the gateway sends (src/webhooks/mod.rs KINDS); the API refuses
// any other.
const KINDS = ['device_online', 'device_offline', 'alarm', 'stream_started', 'stream_stopped', 'viewers_zero',
  'source_error', 'catalog_synced', 'catalog_changed', 'auth_failed', 'protocol_error'];
const REFRESH_MS = 3000;

function stateBadge(state) {
  return badge(t(`webhooks.state.${state}`), { delivered: 'ok', pending: 'info', failed: 'error' }[state] || 'info');
}

/** 32 random hex characters, for a new secret. */
function randomSecret() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export function render(main) {
  const list = h('section.card', { dataset: { testid: 'webhooks' } }, h('p.muted', t('common.loading')));
  const log = h('section.card', { dataset: { testid: 'deliveries' }, hidden: true });
  main.append(pageHead(t('nav.webhooks'),
    h('button.primary', { type: 'button', dataset: { testid: 'webhook-add' }, onclick: add }, t('webhooks.add'))),
  h('p.muted', t('webhooks.intro')), h('div.stack', list, log));
  let stopped = false;
  let shown = null; // the webhook whose deliveries are listed
  let timer;

  async function load() {
    clearTimeout(timer);
    try {
      const hooks = await api('GET', '/webhooks');
      if (stopped) return;
      list.replaceChildren(table([
        { label: t('webhooks.url'), class: 'url', cell: (w) => w.url },
        { label: t('webhooks.events'), cell: (w) => (w.events.includes('*') ? t('webhooks.all_events') : w.events.map(eventKindLabel).join(', ')) },
        { label: t('users.created'), class: 'hide-md', cell: (w) => formatTime(w.created_at) },
        {
          label: t('common.actions'),
          class: 'row-actions',
          cell: (w) => [
            h('button.small', { type: 'button', dataset: { testid: 'webhook-deliveries' }, onclick: () => { shown = w; load(); } }, t('webhooks.deliveries')),
            h('button.small.danger', { type: 'button', dataset: { testid: 'webhook-delete' }, onclick: () => remove(w) }, t('common.delete')),
          ],
        },
      ], hooks, { empty: t('webhooks.none'), rowAttrs: (w) => ({ dataset: { webhook: w.url } }) }));
      if (shown && hooks.some((w) => w.id === shown.id)) await loadDeliveries(shown);
      else log.hidden = true;
    } catch (e) {
      if (!stopped) list.replaceChildren(h('p.form-error', errorText(e)));
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }

  async function loadDeliveries(w) {
    const rows = await api('GET', `/webhooks/${encodeURIComponent(w.id)}/deliveries`);
    if (stopped) return;
    log.hidden = false;
    log.replaceChildren(h('h2', t('webhooks.deliveries_of', { url: w.url })), table([
      { label: t('events.time'), cell: (d) => formatTime(d.created_at, true) },
      { label: t('events.kind'), cell: (d) => eventKindLabel(d.event) },
      { label: t('webhooks.state'), cell: (d) => stateBadge(d.state) },
      { label: t('webhooks.attempts'), cell: (d) => String(d.attempts) },
      { label: t('webhooks.last_result'), cell: (d) => (d.last_status ? `HTTP ${d.last_status}` : (d.last_error || '–')) },
      { label: t('webhooks.delivered_at'), class: 'hide-md', cell: (d) => formatTime(d.delivered_at, true) },
    ], rows, { empty: t('webhooks.no_deliveries'), rowAttrs: (d) => ({ dataset: { event: d.event, state: d.state } }) }));
  }

  async function add() {
    const created = await dialog(t('webhooks.add'), (close) => {
      const all = h('input', { type: 'checkbox', name: 'all', checked: true });
      const kinds = KINDS.map((k) => h('label.check', h('input', { type: 'checkbox', name: 'kind', value: k, disabled: true }), eventKindLabel(k)));
      all.addEventListener('change', () => kinds.forEach((l) => { l.querySelector('input').disabled = all.checked; }));
      const secret = h('input', { name: 'secret', required: true, minlength: 16, maxlength: 256, autocomplete: 'off', value: randomSecret() });
      const form = h('form.modal-body', { dataset: { testid: 'webhook-form' } },
        field(t('webhooks.url'), h('input', { name: 'url', required: true, placeholder: 'http://vms.example:8080/camgate', inputmode: 'url' })),
        field(t('webhooks.secret'), secret, t('webhooks.secret_hint')),
        h('fieldset.kinds', h('legend', t('webhooks.events')), h('label.check', all, t('webhooks.all_events')), kinds),
        h('div.actions',
          h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
          h('button.primary', { type: 'submit', dataset: { testid: 'webhook-save' } }, t('common.save'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const fd = new FormData(form);
        const events = all.checked ? ['*'] : fd.getAll('kind');
        try {
          close(await api('POST', '/webhooks', { body: { url: fd.get('url').trim(), secret: fd.get('secret'), events } }));
        } catch (err) {
          formError(form, err);
        }
      });
      return form;
    });
    if (created) {
      toast(t('common.saved'));
      shown = created;
      load();
    }
  }

  async function remove(w) {
    if (!(await confirmDialog(t('webhooks.delete_confirm', { url: w.url })))) return;
    try {
      await api('DELETE', `/webhooks/${encodeURIComponent(w.id)}`);
      toast(t('common.deleted'));
      if (shown && shown.id === w.id) shown = null;
    } catch (e) {
      toast(errorText(e), 'error');
    }
    load();
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
