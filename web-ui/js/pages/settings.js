// Settings: the signed-in user's password, the GB28181 platform (SIP),
// media (on-demand grace, start timeout) and network (ports and public IP,
// applied at the next start). Non-admins see the values read-only.
import { api, can } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, errorText, field, formError, toast } from '../dom.js';

function section(title, testid, ...children) {
  return h('section.card', { dataset: { testid } }, h('h2', title), ...children);
}

function saveRow(admin, testid) {
  return admin ? h('div.actions', h('button.primary', { type: 'submit', dataset: { testid } }, t('common.save'))) : null;
}

export function render(main) {
  const admin = can('admin');
  const account = section(t('settings.account'), 'settings-account');
  const sip = section(t('settings.sip'), 'settings-sip', h('p.muted', t('common.loading')));
  const media = section(t('settings.media'), 'settings-media', h('p.muted', t('common.loading')));
  const network = section(t('settings.network'), 'settings-network', h('p.muted', t('common.loading')));
  main.append(pageHead(t('nav.settings')));
  if (!admin) main.append(h('p.notice', t('settings.read_only')));
  main.append(h('div.two-col', h('div.stack', sip, account), h('div.stack', media, network)));

  // Own password (any role).
  {
    const form = h('form', { dataset: { testid: 'password-form' } },
      field(t('settings.current_password'), h('input', { name: 'current_password', type: 'password', required: true, autocomplete: 'current-password' })),
      field(t('settings.new_password'), h('input', { name: 'new_password', type: 'password', required: true, autocomplete: 'new-password' })),
      h('div.actions', h('button.primary', { type: 'submit' }, t('settings.change_password'))));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      formError(form, null);
      try {
        await api('PUT', '/auth/password', { body: { current_password: fd.get('current_password'), new_password: fd.get('new_password') } });
        form.reset();
        toast(t('settings.password_changed'));
      } catch (err) {
        formError(form, err);
      }
    });
    account.append(form);
  }

  async function loadSip() {
    let s;
    try {
      s = await api('GET', '/settings/sip');
    } catch (e) {
      sip.replaceChildren(h('h2', t('settings.sip')), h('p.form-error', errorText(e)));
      return;
    }
    const form = h('form', h('fieldset', { disabled: !admin },
      field(t('settings.platform_id'), h('input', { name: 'platform_id', value: s.platform_id, required: true, pattern: '\\d{20}', inputmode: 'numeric' }), t('settings.platform_id_hint')),
      field(t('settings.domain'), h('input', { name: 'domain', value: s.domain, required: true, pattern: '\\d{10}', inputmode: 'numeric' }), t('settings.domain_hint')),
      field(t('settings.sip_password'), h('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: s.has_password ? t('settings.password_set') : t('settings.password_none') })),
      s.has_password ? h('label.check', h('input', { type: 'checkbox', name: 'clear_password' }), t('settings.password_clear')) : null,
      h('label.check', h('input', { type: 'checkbox', name: 'auto_accept', checked: s.auto_accept }), t('settings.auto_accept')),
      h('div.row',
        field(t('settings.keepalive_interval'), h('input', { name: 'keepalive_interval_secs', type: 'number', min: 1, max: 3600, value: s.keepalive_interval_secs })),
        field(t('settings.keepalive_count'), h('input', { name: 'keepalive_timeout_count', type: 'number', min: 1, max: 100, value: s.keepalive_timeout_count }))),
      h('p.muted', t('settings.sip_listen', { addr: s.listen })),
      saveRow(admin, 'save-sip')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const body = {
        platform_id: fd.get('platform_id').trim(),
        domain: fd.get('domain').trim(),
        auto_accept: !!fd.get('auto_accept'),
        keepalive_interval_secs: Number(fd.get('keepalive_interval_secs')),
        keepalive_timeout_count: Number(fd.get('keepalive_timeout_count')),
      };
      if (fd.get('clear_password')) body.password = null;
      else if (fd.get('password')) body.password = fd.get('password');
      formError(form, null);
      try {
        await api('PUT', '/settings/sip', { body });
        toast(t('common.saved'));
        loadSip();
      } catch (err) {
        formError(form, err);
      }
    });
    sip.replaceChildren(h('h2', t('settings.sip')), form);
  }

  async function loadMedia() {
    let m;
    try {
      m = await api('GET', '/settings/media');
    } catch (e) {
      media.replaceChildren(h('h2', t('settings.media')), h('p.form-error', errorText(e)));
      return;
    }
    const form = h('form', h('fieldset', { disabled: !admin },
      field(t('settings.grace'), h('input', { name: 'on_demand_grace_secs', type: 'number', min: 0, max: 3600, value: m.on_demand_grace_secs, dataset: { testid: 'grace' } }), t('settings.grace_hint')),
      field(t('settings.start_timeout'), h('input', { name: 'start_timeout_secs', type: 'number', min: 1, max: 300, value: m.start_timeout_secs }), t('settings.start_timeout_hint')),
      saveRow(admin, 'save-media')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      formError(form, null);
      try {
        await api('PUT', '/settings/media', { body: { on_demand_grace_secs: Number(fd.get('on_demand_grace_secs')), start_timeout_secs: Number(fd.get('start_timeout_secs')) } });
        toast(t('common.saved'));
        loadMedia();
      } catch (err) {
        formError(form, err);
      }
    });
    media.replaceChildren(h('h2', t('settings.media')), form);
  }

  async function loadNetwork() {
    let n;
    try {
      n = await api('GET', '/settings/network');
    } catch (e) {
      network.replaceChildren(h('h2', t('settings.network')), h('p.form-error', errorText(e)));
      return;
    }
    // A port given by a command-line flag or environment variable cannot be
    // changed here; say so next to it.
    const fixed = new Set(n.fixed_by_flags || []);
    const port = (name) => field(t(`settings.${name}`),
      h('input', { name, type: 'number', min: 1, max: 65535, value: n[name] ?? '', disabled: fixed.has(name) }),
      fixed.has(name) ? t('settings.fixed_by_flag') : undefined);
    const form = h('form', h('fieldset', { disabled: !admin },
      h('div.row', port('sip_port'), port('rtp_port')),
      h('div.row', port('rtsp_port'), port('webrtc_port')),
      field(t('settings.public_ip'), h('input', { name: 'public_ip', value: n.public_ip || '', placeholder: '203.0.113.10', inputmode: 'decimal' }), t('settings.public_ip_hint')),
      n.restart_required ? h('p.notice', { dataset: { testid: 'restart-required' } }, t('settings.restart_required')) : null,
      saveRow(admin, 'save-network')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const body = {};
      // Only what changed is sent.
      for (const k of ['sip_port', 'rtp_port', 'rtsp_port', 'webrtc_port']) {
        if (fixed.has(k)) continue;
        const v = String(fd.get(k) ?? '').trim();
        if (v !== '' && Number(v) !== n[k]) body[k] = Number(v);
      }
      const ip = String(fd.get('public_ip')).trim() || null;
      if (ip !== (n.public_ip ?? null)) body.public_ip = ip;
      formError(form, null);
      try {
        await api('PUT', '/settings/network', { body });
        toast(t('common.saved'));
        loadNetwork();
      } catch (err) {
        formError(form, err);
      }
    });
    network.replaceChildren(h('h2', t('settings.network')), form);
  }

  loadSip();
  loadMedia();
  loadNetwork();
}
