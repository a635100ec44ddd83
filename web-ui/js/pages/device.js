// One device: its record, what it answers to DeviceInfo and DeviceStatus,
// the edit form (name, charset, password), catalog refresh, and the channel
// tree with a Play button per camera.
import { api, can } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, onlineBadge, formatTime, errorText, field, formError, toast, confirmDialog, badge } from '../dom.js';
import { buildTree, cameraCount, hasPtz } from '../tree.js';
import { queuePlay } from './live.js';

export function render(main, [id], { navigate }) {
  const head = h('div');
  const infoBox = h('section.card', h('h2', t('device.record')), h('p.muted', t('common.loading')));
  const liveBox = h('section.card', h('h2', t('device.live_info')), h('p.muted', t('device.live_info_hint')));
  const editBox = can('admin') ? h('section.card', h('h2', t('device.edit'))) : null;
  const treeBox = h('section.card.tree-card', { dataset: { testid: 'channel-tree' } }, h('h2', t('device.channels')), h('p.muted', t('common.loading')));
  const error = h('p.form-error', { role: 'alert' });
  main.append(head, error, h('div.two-col', h('div.stack', infoBox, liveBox, editBox), treeBox));

  let device = null;
  let stopped = false;

  async function loadDevice() {
    device = await api('GET', `/devices/${encodeURIComponent(id)}`);
    if (stopped) return;
    head.replaceChildren(pageHead(`${device.name || device.id}`,
      onlineBadge(device.online),
      can('operator') ? h('button', { type: 'button', dataset: { testid: 'catalog-refresh' }, disabled: !device.online, onclick: refreshCatalog }, t('device.refresh_catalog')) : null,
      can('admin') ? h('button.danger', { type: 'button', onclick: remove }, t('common.delete')) : null));
    const rows = [
      ['device.id', device.id],
      ['device.name', device.name || '–'],
      ['device.status', onlineBadge(device.online)],
      ['device.registered', device.registered ? t('common.yes') : t('common.no')],
      ['device.address', device.address ? `${device.address} (${device.transport || '?'})` : '–'],
      ['device.model', [device.manufacturer, device.model].filter(Boolean).join(' ') || '–'],
      ['device.firmware', device.firmware || '–'],
      ['device.gb_version', device.gb_version || '–'],
      ['device.user_agent', device.user_agent || '–'],
      ['device.charset', `${device.charset_override || device.charset_detected || '–'} (${t(`charset.${device.charset}`)})`],
      ['device.has_password', device.has_password ? t('device.own_password') : t('device.default_password')],
      ['device.registered_at', formatTime(device.registered_at)],
      ['device.last_keepalive', formatTime(device.last_keepalive)],
      ['device.catalog_synced', formatTime(device.catalog_synced_at)],
      ['device.subscribed', device.catalog_subscribed ? t('common.yes') : t('common.no')],
    ];
    infoBox.replaceChildren(h('h2', t('device.record')), h('dl.kv', rows.map(([k, v]) => [h('dt', t(k)), h('dd', v)])));
    if (editBox && !editBox.querySelector('form')) drawEdit();
  }

  async function loadLive() {
    if (!device || !device.online) {
      liveBox.replaceChildren(h('h2', t('device.live_info')), h('p.muted', t('device.offline_no_query')));
      return;
    }
    liveBox.replaceChildren(h('h2', t('device.live_info')), h('p.muted', t('common.loading')));
    const [info, status] = await Promise.allSettled([
      api('GET', `/devices/${encodeURIComponent(id)}/info`),
      api('GET', `/devices/${encodeURIComponent(id)}/status`),
    ]);
    if (stopped) return;
    const dl = (r) => (r.status === 'fulfilled'
      ? h('dl.kv', Object.entries(r.value || {}).filter(([, v]) => v !== null && typeof v !== 'object')
        .map(([k, v]) => [h('dt', t(`device.field.${k}`) === `device.field.${k}` ? k : t(`device.field.${k}`)), h('dd', String(v))]))
      : h('p.form-error', errorText(r.reason)));
    liveBox.replaceChildren(h('h2', t('device.live_info')),
      h('h3', t('device.info')), dl(info), h('h3', t('device.status_query')), dl(status),
      h('button.small', { type: 'button', onclick: loadLive }, t('common.reload')));
  }

  function drawEdit() {
    const charset = device.charset_override || '';
    const form = h('form', { dataset: { testid: 'device-edit' } },
      field(t('device.name'), h('input', { name: 'name', value: device.name || '' })),
      field(t('device.charset'), h('select', { name: 'charset' },
        h('option', { value: '', selected: charset === '' }, t('charset.auto')),
        h('option', { value: 'utf-8', selected: charset === 'utf-8' }, 'UTF-8'),
        h('option', { value: 'gb18030', selected: charset === 'gb18030' }, 'GB18030'))),
      field(t('device.password'), h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: t('device.password_unchanged') })),
      h('label.check', h('input', { type: 'checkbox', name: 'clear_password' }), t('device.password_clear')),
      h('div.actions', h('button.primary', { type: 'submit' }, t('common.save'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const body = { name: fd.get('name').trim() || null, charset: fd.get('charset') || null };
      if (fd.get('clear_password')) body.password = null;
      else if (fd.get('password')) body.password = fd.get('password');
      formError(form, null);
      try {
        await api('PATCH', `/devices/${encodeURIComponent(id)}`, { body });
        toast(t('common.saved'));
        form.querySelector('[name=password]').value = '';
        await loadDevice();
      } catch (err) {
        formError(form, err);
      }
    });
    editBox.replaceChildren(h('h2', t('device.edit')), form);
  }

  async function loadChannels() {
    const channels = await api('GET', `/devices/${encodeURIComponent(id)}/channels`);
    if (stopped) return;
    const roots = buildTree(channels);
    treeBox.replaceChildren(h('h2', t('device.channels'), ' ', h('span.muted', t('device.camera_count', { n: channels.filter((c) => c.kind === 'camera').length }))),
      roots.length ? h('ul.tree', { role: 'tree' }, roots.map(drawNode)) : h('p.muted', t('device.no_channels')));
  }

  function drawNode(node) {
    const c = node.channel;
    const label = [h('span.node-kind', { title: t(`kind.${c.kind}`) }, t(`kind.${c.kind}`)), ' ', h('span.node-name', c.name || c.id), ' ', h('span.muted.node-id', c.id)];
    if (c.kind === 'camera' || (c.kind === 'other' && !node.children.length)) {
      return h('li.leaf', { role: 'treeitem', dataset: { channel: c.id, kind: c.kind } },
        h('div.node-row',
          h('span.node-label', label),
          onlineBadge(c.online),
          hasPtz(c) ? badge('PTZ', 'info') : null,
          can('operator') ? h('button.small.primary', {
            type: 'button',
            dataset: { testid: 'play' },
            onclick: () => {
              queuePlay({ device: id, channel: c.id, title: c.name || c.id, ptz: hasPtz(c) });
              navigate('live');
            },
          }, `▶ ${t('device.play')}`) : null));
    }
    return h('li', { role: 'treeitem', dataset: { channel: c.id, kind: c.kind } },
      h('details', { open: true },
        h('summary', h('span.node-label', label), ' ', h('span.muted', `(${cameraCount(node)})`)),
        h('ul', { role: 'group' }, node.children.map(drawNode))));
  }

  async function refreshCatalog() {
    try {
      const s = await api('POST', `/devices/${encodeURIComponent(id)}/catalog/refresh`);
      toast(t('device.catalog_refreshed', { n: s && s.items !== undefined ? s.items : '' }));
      await loadChannels();
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  async function remove() {
    if (!(await confirmDialog(t('device.delete_confirm', { id })))) return;
    try {
      await api('DELETE', `/devices/${encodeURIComponent(id)}`);
      toast(t('common.deleted'));
      navigate('devices');
    } catch (e) {
      toast(errorText(e), 'error');
    }
  }

  (async () => {
    try {
      await loadDevice();
      await loadChannels();
      await loadLive();
    } catch (e) {
      if (!stopped) error.textContent = errorText(e);
    }
  })();
  return () => {
    stopped = true;
  };
}
