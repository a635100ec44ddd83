// GB28181 devices: a searchable, paged table (the list API's keyword,
// online, page and page_size), refreshed every few seconds.
import { api, can } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, onlineBadge, formatTime, errorText, dialog, field, formError, toast } from '../dom.js';

const PAGE_SIZE = 20;
const REFRESH_MS = 5000;
// The filter survives leaving the page and coming back.
const filter = { keyword: '', online: '', page: 1 };

export function render(main, _params, { navigate }) {
  const keyword = h('input', {
    type: 'search', name: 'keyword', value: filter.keyword, placeholder: t('devices.search'),
    'aria-label': t('devices.search'), dataset: { testid: 'device-search' },
  });
  const online = h('select', { name: 'online', 'aria-label': t('devices.filter_status') },
    h('option', { value: '', selected: filter.online === '' }, t('devices.all')),
    h('option', { value: 'true', selected: filter.online === 'true' }, t('status.online')),
    h('option', { value: 'false', selected: filter.online === 'false' }, t('status.offline')));
  const list = h('div', h('p.muted', t('common.loading')));
  const pager = h('div.pager');
  const error = h('p.form-error', { role: 'alert' });
  let searchTimer;
  keyword.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filter.keyword = keyword.value.trim();
      filter.page = 1;
      load();
    }, 300);
  });
  online.addEventListener('change', () => {
    filter.online = online.value;
    filter.page = 1;
    load();
  });
  const add = can('admin')
    ? h('button.primary', { type: 'button', dataset: { testid: 'device-add' }, onclick: () => addDevice(navigate) }, t('devices.add'))
    : null;
  main.append(pageHead(t('nav.devices'), add),
    h('div.toolbar', keyword, online), error, list, pager);

  let stopped = false;
  let timer;
  async function load() {
    clearTimeout(timer);
    try {
      const page = await api('GET', '/devices', {
        query: { keyword: filter.keyword, online: filter.online, page: filter.page, page_size: PAGE_SIZE },
      });
      if (stopped) return;
      error.textContent = '';
      list.replaceChildren(table([
        { label: t('device.id'), cell: (d) => h('a', { href: `#/devices/${encodeURIComponent(d.id)}` }, d.id) },
        { label: t('device.name'), cell: (d) => d.name || '–' },
        { label: t('device.status'), cell: (d) => onlineBadge(d.online) },
        { label: t('device.model'), class: 'hide-sm', cell: (d) => [d.manufacturer, d.model].filter(Boolean).join(' ') || '–' },
        { label: t('device.address'), class: 'hide-sm', cell: (d) => d.address ? `${d.address} (${d.transport || '?'})` : '–' },
        { label: t('device.channels'), cell: (d) => d.channel_count ?? '–' },
        { label: t('device.last_keepalive'), class: 'hide-md', cell: (d) => formatTime(d.last_keepalive) },
      ], page.items, {
        empty: t('devices.none'),
        rowAttrs: (d) => ({ class: 'clickable', dataset: { device: d.id, online: String(d.online) }, onclick: (e) => {
          if (e.target.tagName !== 'A') navigate(`devices/${encodeURIComponent(d.id)}`);
        } }),
      }));
      const pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
      pager.replaceChildren(
        h('button', { type: 'button', disabled: filter.page <= 1, onclick: () => { filter.page -= 1; load(); } }, t('common.prev')),
        h('span', t('common.page', { page: filter.page, pages, total: page.total })),
        h('button', { type: 'button', disabled: filter.page >= pages, onclick: () => { filter.page += 1; load(); } }, t('common.next')));
    } catch (e) {
      if (!stopped) error.textContent = errorText(e);
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  }
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(searchTimer);
  };
}

/** Pre-registers a device (its own password, name, charset). */
async function addDevice(navigate) {
  const created = await dialog(t('devices.add'), (close) => {
    const form = h('form.modal-body',
      field(t('device.id'), h('input', { name: 'id', required: true, pattern: '[A-Za-z0-9]{1,64}', inputmode: 'numeric' }), t('device.id_hint')),
      field(t('device.name'), h('input', { name: 'name' })),
      field(t('device.password'), h('input', { name: 'password', type: 'password', autocomplete: 'new-password' }), t('device.password_hint')),
      h('div.actions',
        h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
        h('button.primary', { type: 'submit' }, t('common.save'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const body = { id: fd.get('id').trim() };
      if (fd.get('name').trim()) body.name = fd.get('name').trim();
      if (fd.get('password')) body.password = fd.get('password');
      try {
        close(await api('POST', '/devices', { body }));
      } catch (err) {
        formError(form, err);
      }
    });
    return form;
  });
  if (created) {
    toast(t('devices.added', { id: created.id }));
    navigate(`devices/${encodeURIComponent(created.id)}`);
  }
}
