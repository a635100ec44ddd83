// Users (username + password, a role each) and API tokens (for machines;
// the token is shown once, when created). Admin only.
import { api, session } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, table, badge, errorText, dialog, field, formError, toast, confirmDialog, formatTime } from '../dom.js';

const ROLES = ['admin', 'operator', 'viewer'];

function roleSelect(name, selected, attrs = {}) {
  return h('select', { name, ...attrs }, ROLES.map((r) => h('option', { value: r, selected: r === selected }, t(`role.${r}`))));
}

export function render(main) {
  const usersBox = h('section.card', { dataset: { testid: 'users' } }, h('h2', t('users.title')), h('p.muted', t('common.loading')));
  const tokensBox = h('section.card', { dataset: { testid: 'tokens' } }, h('h2', t('tokens.title')), h('p.muted', t('common.loading')));
  main.append(pageHead(t('nav.users')), h('div.stack', usersBox, tokensBox));
  let stopped = false;

  async function loadUsers() {
    let users;
    try {
      users = await api('GET', '/users');
    } catch (e) {
      usersBox.replaceChildren(h('h2', t('users.title')), h('p.form-error', errorText(e)));
      return;
    }
    if (stopped) return;
    const me = session().username;
    usersBox.replaceChildren(
      h('div.section-head', h('h2', t('users.title')),
        h('button.primary', { type: 'button', dataset: { testid: 'user-add' }, onclick: addUser }, t('users.add'))),
      table([
        { label: t('users.username'), cell: (u) => [h('strong', u.username), u.username === me ? h('span.muted', ` (${t('users.you')})`) : null] },
        {
          label: t('users.role'),
          cell: (u) => roleSelect('role', u.role, {
            'aria-label': t('users.role'),
            disabled: u.username === me,
            onchange: (e) => patch(u, { role: e.target.value }),
          }),
        },
        { label: t('users.status'), cell: (u) => (u.disabled ? badge(t('users.disabled'), 'off') : badge(t('users.active'), 'ok')) },
        { label: t('users.last_login'), class: 'hide-sm', cell: (u) => formatTime(u.last_login_at) },
        { label: t('users.created'), class: 'hide-md', cell: (u) => formatTime(u.created_at) },
        {
          label: t('common.actions'),
          class: 'row-actions',
          cell: (u) => [
            h('button.small', { type: 'button', onclick: () => resetPassword(u) }, t('users.set_password')),
            u.username === me ? null : h('button.small', { type: 'button', onclick: () => patch(u, { disabled: !u.disabled }) }, u.disabled ? t('users.enable') : t('users.disable')),
            u.username === me ? null : h('button.small.danger', { type: 'button', dataset: { testid: 'user-delete' }, onclick: () => removeUser(u) }, t('common.delete')),
          ],
        },
      ], users, { empty: t('users.none'), rowAttrs: (u) => ({ dataset: { user: u.username } }) }));
  }

  async function patch(u, body) {
    try {
      await api('PATCH', `/users/${encodeURIComponent(u.id)}`, { body });
      toast(t('common.saved'));
    } catch (e) {
      toast(errorText(e), 'error');
    }
    loadUsers();
  }

  async function addUser() {
    const created = await dialog(t('users.add'), (close) => {
      const form = h('form.modal-body', { dataset: { testid: 'user-form' } },
        field(t('users.username'), h('input', { name: 'username', required: true, autocomplete: 'off' })),
        field(t('users.password'), h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' })),
        field(t('users.role'), roleSelect('role', 'viewer')),
        h('div.actions',
          h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
          h('button.primary', { type: 'submit', dataset: { testid: 'user-save' } }, t('common.save'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const fd = new FormData(form);
        try {
          close(await api('POST', '/users', { body: { username: fd.get('username').trim(), password: fd.get('password'), role: fd.get('role') } }));
        } catch (err) {
          formError(form, err);
        }
      });
      return form;
    });
    if (created) {
      toast(t('users.added', { name: created.username }));
      loadUsers();
    }
  }

  async function resetPassword(u) {
    await dialog(t('users.set_password_for', { name: u.username }), (close) => {
      const form = h('form.modal-body',
        field(t('users.new_password'), h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password' })),
        h('div.actions',
          h('button', { type: 'button', onclick: () => close(null) }, t('common.cancel')),
          h('button.primary', { type: 'submit' }, t('common.save'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          await api('PATCH', `/users/${encodeURIComponent(u.id)}`, { body: { password: new FormData(form).get('password') } });
          toast(t('common.saved'));
          close(true);
        } catch (err) {
          formError(form, err);
        }
      });
      return form;
    });
  }

  async function removeUser(u) {
    if (!(await confirmDialog(t('users.delete_confirm', { name: u.username })))) return;
    try {
      await api('DELETE', `/users/${encodeURIComponent(u.id)}`);
      toast(t('common.deleted'));
    } catch (e) {
      toast(errorText(e), 'error');
    }
    loadUsers();
  }

  async function loadTokens() {
    let tokens;
    try {
      tokens = await api('GET', '/tokens');
    } catch (e) {
      tokensBox.replaceChildren(h('h2', t('tokens.title')), h('p.form-error', errorText(e)));
      return;
    }
    if (stopped) return;
    const name = h('input', { name: 'name', required: true, maxlength: 100, placeholder: t('tokens.name_hint'), 'aria-label': t('tokens.name') });
    const form = h('form.inline-form', { dataset: { testid: 'token-form' } },
      name, roleSelect('role', 'viewer', { 'aria-label': t('users.role') }),
      h('button.primary', { type: 'submit' }, t('tokens.create')));
    const shown = h('div.token-shown');
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      formError(form, null);
      try {
        const created = await api('POST', '/tokens', { body: { name: fd.get('name').trim(), role: fd.get('role') } });
        await loadTokens();
        showToken(created);
      } catch (err) {
        formError(form, err);
      }
    });
    tokensBox.replaceChildren(h('h2', t('tokens.title')), h('p.muted', t('tokens.intro')), form, shown,
      table([
        { label: t('tokens.name'), cell: (tk) => tk.name },
        { label: t('tokens.prefix'), class: 'hide-sm', cell: (tk) => h('code', `${tk.prefix}…`) },
        { label: t('users.role'), cell: (tk) => t(`role.${tk.role}`) },
        { label: t('tokens.last_used'), class: 'hide-sm', cell: (tk) => formatTime(tk.last_used_at) },
        { label: t('users.created'), class: 'hide-md', cell: (tk) => formatTime(tk.created_at) },
        { label: t('common.actions'), class: 'row-actions', cell: (tk) => h('button.small.danger', { type: 'button', dataset: { testid: 'token-delete' }, onclick: () => removeToken(tk) }, t('common.delete')) },
      ], tokens, { empty: t('tokens.none'), rowAttrs: (tk) => ({ dataset: { token: tk.name } }) }));
  }

  function showToken(created) {
    const box = tokensBox.querySelector('.token-shown');
    const code = h('code.token-value', { dataset: { testid: 'token-value' } }, created.token);
    box.replaceChildren(h('div.notice',
      h('p', h('strong', t('tokens.created', { name: created.name })), ' ', t('tokens.once')),
      code,
      h('button.small', {
        type: 'button',
        onclick: () => navigator.clipboard?.writeText(created.token).then(() => toast(t('tokens.copied')), () => {}),
      }, t('tokens.copy'))));
  }

  async function removeToken(tk) {
    if (!(await confirmDialog(t('tokens.delete_confirm', { name: tk.name })))) return;
    try {
      await api('DELETE', `/tokens/${tk.id}`);
      toast(t('common.deleted'));
    } catch (e) {
      toast(errorText(e), 'error');
    }
    loadTokens();
  }

  loadUsers();
  loadTokens();
  return () => {
    stopped = true;
  };
}
