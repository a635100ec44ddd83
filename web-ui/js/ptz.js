// The PTZ pad of a live tile: press and hold a direction, zoom, focus or
// iris button to move (`POST …/ptz`), release to stop; presets are listed,
// called, stored and deleted through `/presets`. GB28181 channels only
// (RTSP sources move only through a serial binding, without presets).
import { api } from './api.js';
import { t } from './i18n.js';
import { h, toast, errorText } from './dom.js';

const DIRS = [
  ['↖', 'left', 'up'], ['↑', null, 'up'], ['↗', 'right', 'up'],
  ['←', 'left', null], null, ['→', 'right', null],
  ['↙', 'left', 'down'], ['↓', null, 'down'], ['↘', 'right', 'down'],
];

/** `target`: {device, channel} or {source}. */
export function ptzPad(target) {
  const base = target.source
    ? `/sources/${encodeURIComponent(target.source)}`
    : `/channels/${encodeURIComponent(target.device)}/${encodeURIComponent(target.channel)}`;
  const speed = h('input', { type: 'range', min: 16, max: 255, step: 1, value: 128, 'aria-label': t('ptz.speed') });

  const send = async (body) => {
    try {
      await api('POST', `${base}/ptz`, { body });
    } catch (e) {
      toast(errorText(e), 'error');
    }
  };

  // Motion runs while the button is held; releasing (or the pointer leaving
  // it) sends the matching stop.
  const hold = (label, title, body, stop) => {
    let active = false;
    const end = () => {
      if (!active) return;
      active = false;
      send(stop);
    };
    return h('button.ptz-btn', {
      type: 'button',
      title,
      'aria-label': title,
      onpointerdown: (e) => {
        e.preventDefault();
        active = true;
        send(typeof body === 'function' ? body() : body);
      },
      onpointerup: end,
      onpointerleave: end,
      onpointercancel: end,
      onkeydown: (e) => {
        if ((e.key === 'Enter' || e.key === ' ') && !active) {
          active = true;
          send(typeof body === 'function' ? body() : body);
        }
      },
      onkeyup: end,
    }, label);
  };

  const pad = h('div.ptz-dirs', DIRS.map((d) => (d
    ? hold(d[0], t(`ptz.dir.${[d[2], d[1]].filter(Boolean).join('_')}`),
      () => ({ action: 'move', pan: d[1] || undefined, tilt: d[2] || undefined, speed: Number(speed.value) }),
      { action: 'stop' })
    : h('button.ptz-btn.stop', { type: 'button', title: t('ptz.stop'), 'aria-label': t('ptz.stop'), onclick: () => send({ action: 'stop' }) }, '■'))));

  const lens = (kind, a, b) => h('div.ptz-pair',
    hold('−', t(`ptz.${kind}.${a}`), { action: kind, direction: a }, { action: kind === 'zoom' ? 'stop' : 'lens_stop' }),
    h('span.ptz-pair-label', t(`ptz.${kind}`)),
    hold('+', t(`ptz.${kind}.${b}`), { action: kind, direction: b }, { action: kind === 'zoom' ? 'stop' : 'lens_stop' }));

  const presets = h('div.ptz-presets');
  if (!target.source) drawPresets(presets, base);

  return h('div.ptz-pad', { dataset: { testid: 'ptz-pad' } },
    pad,
    h('div.ptz-lens', lens('zoom', 'out', 'in'), lens('focus', 'near', 'far'), lens('iris', 'close', 'open')),
    h('label.ptz-speed', t('ptz.speed'), speed),
    presets);
}

async function drawPresets(box, base) {
  const number = h('input', { type: 'number', min: 1, max: 255, value: 1, 'aria-label': t('ptz.preset_number') });
  const act = (method, suffix, ok) => async () => {
    const n = Number(number.value);
    if (!(n >= 1 && n <= 255)) return;
    try {
      await api(method, `${base}/presets/${n}${suffix}`);
      toast(t(ok, { n }));
      if (method !== 'POST') drawPresets(box, base);
    } catch (e) {
      toast(errorText(e), 'error');
    }
  };
  const list = h('select', { 'aria-label': t('ptz.presets'), onchange: (e) => { if (e.target.value) number.value = e.target.value; } },
    h('option', { value: '' }, t('ptz.presets')));
  box.replaceChildren(h('div.ptz-preset-row', list, number),
    h('div.ptz-preset-row',
      h('button.small', { type: 'button', onclick: act('POST', '/call', 'ptz.preset_called') }, t('ptz.preset_call')),
      h('button.small', { type: 'button', onclick: act('PUT', '', 'ptz.preset_saved') }, t('ptz.preset_set')),
      h('button.small.danger', { type: 'button', onclick: act('DELETE', '', 'ptz.preset_deleted') }, t('ptz.preset_delete'))));
  try {
    const presets = await api('GET', `${base}/presets`);
    for (const p of presets) list.append(h('option', { value: p.id }, p.name ? `${p.id} · ${p.name}` : String(p.id)));
  } catch (e) {
    list.title = errorText(e);
  }
}
