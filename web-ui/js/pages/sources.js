// RTSP sources: list with live state, add/edit/delete (admin), watch, and
// "test connection". There is no probe API, so the test asks the gateway
// for the source's HTTP-FLV output: that starts an on-demand source and
// answers only once the first frame arrived (or with the reason it could
// not), then reads the stream's tracks from /api/v1/streams/{name}.
import { api, can, localUrl } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, badge, errorText, dialog, field, formError, toast, confirmDialog, formatRate } from '../dom.js';
import { queuePlay } from './live.js';

const REFRESH_MS = 4000;

function stateBadge(s) {
  const kind = { live: 'ok', connecting: 'info', error: 'error', idle: 'off' }[s.state] || 'info';
  return h('span', { title: s.reason || '' }, badge(t(`source.state.${s.state}`), kind),
    s.reason && s.state === 'error' ? h('span.muted.reason', ` ${s.reason}`) : null);
}

export function render(main, _params, { navigate }) {
  const list = h('div', h('p.muted', t('common.loading')));
  const error = h('p.form-error', { role: 'alert' });
  main.append(pageHead(t('nav.sources'),
    can('admin') ? h('button.primary', { type: 'button', dataset: { testid: 'source-add' }, onclick: () => edit(null) }, t('sources.add')) : null),
  error, list);

  let stopped = false;
  let timer;
  const results = new Map(); // name → test result text

  async function load() {
    clearTimeout(timer);
    try {
      const rows = await api('GET', '/sources');
      if (stopped) return;
      error.textContent = '';
      list.replaceChildren(table([
        { label: t('source.name'), cell: (s) => h('strong', s.name) },
        { label: t('source.url'), class: 'hide-sm url', cell: (s) => s.url },
        { label: t('source.transport'), class: 'hide-md', cell: (s) => s.transport.toUpperCase() },
        { label: t('source.mode'), class: 'hide-md', cell: (s) => [s.on_demand ? t('source.on_demand') : t('source.always'), s.enabled ? null : t('source.disabled')].filter(Boolean).join(', ') },
        { label: t('source.status'), cell: (s) => [stateBadge(s.status), results.has(s.name) ? h('div.test-result', { dataset: { testid: 'test-result' } }, results.get(s.name)) : null] },
        {
          label: t('common.actions'),
          class: 'row-actions',
          cell: (s) => [
            h('button.small.primary', { type: 'button', dataset: { testid: 'source-watch' }, onclick: () => { queuePlay({ source: s.name, title: s.name }); navigate('live'); } }, `▶ ${t('sources.watch')}`),
            h('button.small', { type: 'button', dataset: { testid: 'source-test' }, onclick: (e) => test(s, e.target) }, t('sources.test')),
            can('admin') ? h('button.small', { type: 'button', dataset: { testid: 'source-edit' }, onclick: () => edit(s) }, t('common.edit')) : null,
            can('admin') ? h('button.small.danger', { type: 'button', dataset: { testid: 'source-delete' }, onclick: () => remove(s) }, t('common.delete')) : null,
          ],
        },
      ], rows, { empty: t('sources.none'), rowAttrs: (s) => ({ dataset: { source: s.name, state: s.status.state } }) }));
    } catch (e) {
      if (!stopped) error.textContent = errorText(e);
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }

  async function test(s, button) {
    button.disabled = true;
    results.set(s.name, t('sources.testing'));
    load();
    const ctl = new AbortController();
    try {
      const resp = await fetch(localUrl(s.urls.http_flv), { credentials: 'same-origin', signal: ctl.signal });
      if (!resp.ok) {
        let message = `${resp.status}`;
        try {
          message = (await resp.json()).error.message;
        } catch {
          // Not JSON: the status says enough.
        }
        throw new Error(message);
      }
      // Headers mean the first frame arrived; the stream itself is not needed.
      ctl.abort();
      const info = await api('GET', `/streams/${encodeURIComponent(s.name)}`);
      const tracks = info.tracks.map((tr) => (tr.width ? `${tr.codec.toUpperCase()} ${tr.width}×${tr.height}` : tr.codec.toUpperCase()));
      // The bitrate is measured over a window the stream has only just begun.
      const rate = info.bitrate_bps > 0 ? `, ${formatRate(info.bitrate_bps)}` : '';
      results.set(s.name, `✓ ${t('sources.test_ok', { tracks: tracks.join(' + ') || '–' })}${rate}`);
    } catch (e) {
      results.set(s.name, `✗ ${t('sources.test_failed', { message: e.message || String(e) })}`);
    } finally {
      ctl.abort();
      button.disabled = false;
      load();
    }
  }

  async function remove(s) {
    if (!(await confirmDialog(t('sources.delete_confirm', { name: s.name })))) return;
    try {
      await api('DELETE', `/sources/${encodeURIComponent(s.name)}`);
      toast(t('common.deleted'));
      load();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function edit(s) {
    const saved = await dialog(s ? t('sources.edit', { name: s.name }) : t('sources.add'), (close) => {
      const form = h('form.modal-body', { dataset: { testid: 'source-form' } },
        field(t('source.name'), h('input', { name: 'name', required: true, value: s ? s.name : '', readonly: !!s, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,63}' }), t('source.name_hint')),
        field(t('source.url'), h('input', { name: 'url', required: true, value: s ? s.url : '', placeholder: 'rtsp://192.168.1.64:554/Streaming/Channels/101', inputmode: 'url' })),
        h('div.row',
          field(t('source.username'), h('input', { name: 'username', autocomplete: 'off', placeholder: s && s.has_credentials ? t('source.unchanged') : '' })),
          field(t('source.password'), h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: s && s.has_credentials ? t('source.unchanged') : '' }))),
        s && s.has_credentials ? h('label.check', h('input', { type: 'checkbox', name: 'clear_credentials' }), t('source.clear_credentials')) : null,
        field(t('source.transport'), h('select', { name: 'transport' },
          ['tcp', 'udp'].map((v) => h('option', { value: v, selected: (s ? s.transport : 'tcp') === v }, v.toUpperCase())))),
        h('label.check', h('input', { type: 'checkbox', name: 'on_demand', checked: s ? s.on_demand : true }), t('source.on_demand_hint')),
        h('label.check', h('input', { type: 'checkbox', name: 'enabled', checked: s ? s.enabled : true }), t('source.enabled')),
        h('div.actions',
          h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
          h('button.primary', { type: 'submit', dataset: { testid: 'source-save' } }, t('common.save'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const fd = new FormData(form);
        const body = {
          url: fd.get('url').trim(),
          transport: fd.get('transport'),
          on_demand: !!fd.get('on_demand'),
          enabled: !!fd.get('enabled'),
        };
        const user = fd.get('username').trim();
        const pass = fd.get('password');
        if (fd.get('clear_credentials')) body.username = '';
        else if (user) {
          body.username = user;
          body.password = pass;
        } else if (pass && s) body.password = pass;
        formError(form, null);
        try {
          if (s) close(await api('PATCH', `/sources/${encodeURIComponent(s.name)}`, { body }));
          else close(await api('POST', '/sources', { body: { name: fd.get('name').trim(), ...body } }));
        } catch (err) {
          formError(form, err);
        }
      });
      return form;
    });
    if (saved) {
      toast(t('common.saved'));
      load();
    }
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
