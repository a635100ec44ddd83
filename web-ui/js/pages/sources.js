// RTSP sources: list with live state, add/edit/delete (admin), watch, and
// "test connection" (admin): POST /api/v1/probe/rtsp connects to the camera
// as a source would, waits for the first frame and reports codec and
// resolution, without storing or starting anything — for a stored source by
// name, or from the add/edit form before saving.
import { api, can } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, badge, errorText, dialog, field, formError, toast, confirmDialog } from '../dom.js';
import { queuePlay } from './live.js';

const REFRESH_MS = 4000;

function stateBadge(s) {
  const kind = { live: 'ok', connecting: 'info', error: 'error', idle: 'off' }[s.state] || 'info';
  return h('span', { title: s.reason || '' }, badge(t(`source.state.${s.state}`), kind),
    s.reason && s.state === 'error' ? h('span.muted.reason', ` ${s.reason}`) : null);
}

/** Runs a connection test; returns the line to show. */
async function probe(body) {
  try {
    const r = await api('POST', '/probe/rtsp', { body });
    if (!r.ok) return `✗ ${t('sources.test_failed', { message: r.error })}`;
    const rep = r.report;
    const tracks = rep.streams.filter((st) => st.used).map((st) => st.encoding.toUpperCase());
    const size = rep.width ? ` ${rep.width}×${rep.height}` : '';
    return `✓ ${t('sources.test_ok', { tracks: tracks.join(' + ') || '–' })}${size}, ${rep.first_frame_ms} ms`;
  } catch (e) {
    return `✗ ${t('sources.test_failed', { message: errorText(e) })}`;
  }
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
            can('admin') ? h('button.small', { type: 'button', dataset: { testid: 'source-test' }, onclick: (e) => test(s, e.target) }, t('sources.test')) : null,
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
    results.set(s.name, await probe({ name: s.name }));
    button.disabled = false;
    load();
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
        h('p.test-result', { dataset: { testid: 'form-test-result' } }),
        h('div.actions',
          h('button', { type: 'button', dataset: { testid: 'source-form-test' }, onclick: (e) => testForm(e.target) }, t('sources.test')),
          h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
          h('button.primary', { type: 'submit', dataset: { testid: 'source-save' } }, t('common.save'))));
      // Tests what is typed, before saving. Stored credentials are used
      // when editing a source and none were typed.
      async function testForm(button) {
        const fd = new FormData(form);
        const out = form.querySelector('[data-testid=form-test-result]');
        const user = fd.get('username').trim();
        const body = s && !user && !fd.get('password') && fd.get('url').trim() === s.url
          ? { name: s.name }
          : { url: fd.get('url').trim(), transport: fd.get('transport'), ...(user ? { username: user, password: fd.get('password') } : {}) };
        button.disabled = true;
        out.textContent = t('sources.testing');
        out.textContent = await probe(body);
        button.disabled = false;
      }
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
