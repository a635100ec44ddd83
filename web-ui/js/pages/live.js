// The live wall: 1, 4, 9 or 16 tiles, each playing one stream (WebRTC, else
// FLV, else LL-HLS; see player.js) with its codec, resolution, bitrate and
// transport shown, and a PTZ pad for channels with a head. What the tiles
// show is kept for the browser tab (sessionStorage); players run only while
// the page is open, and closing a tile (or leaving) ends its viewer session,
// so an on-demand stream stops after its grace period.
import { api, can, localUrl } from '../api.js';
import { t } from '../i18n.js';
import { h, pageHead, formatRate, errorText, dialog, badge } from '../dom.js';
import { Player, TRANSPORTS } from '../player.js';
import { ptzPad } from '../ptz.js';

const LAYOUTS = [1, 4, 9, 16];
const STORE = 'camgate.live';
const INFO_MS = 2000;

const state = load();
const pending = [];

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE));
    if (s && LAYOUTS.includes(s.layout) && Array.isArray(s.tiles)) {
      return { layout: s.layout, tiles: Array.from({ length: 16 }, (_, i) => s.tiles[i] || null), selected: 0 };
    }
  } catch {
    // Nothing stored or unreadable: start empty.
  }
  return { layout: 4, tiles: Array(16).fill(null), selected: 0 };
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify({ layout: state.layout, tiles: state.tiles }));
  } catch {
    // Not kept across reloads then.
  }
}

/**
 * Asks the live page to play `item` ({device, channel, title, ptz} for a
 * GB28181 channel, {source, title} for an RTSP source, {stream, title} for
 * any running stream) in a free tile the next time it opens.
 */
export function queuePlay(item) {
  pending.push({ prefer: 'auto', ...item });
}

function place(item) {
  const free = (n) => state.tiles.slice(0, n).findIndex((x) => !x);
  let i = state.tiles[state.selected] || state.selected >= state.layout ? free(state.layout) : state.selected;
  while (i < 0 && state.layout < 16) {
    state.layout = LAYOUTS[LAYOUTS.indexOf(state.layout) + 1];
    i = free(state.layout);
  }
  if (i < 0) i = state.selected;
  state.tiles[i] = item;
  state.selected = i;
}

function defaultUrls(id) {
  const e = encodeURIComponent(id);
  return { webrtc: `/live/${e}/whep`, flv: `/live/${e}.flv`, hls: `/live/${e}/index.m3u8` };
}

function fromApi(urls) {
  return { webrtc: localUrl(urls.whep), flv: localUrl(urls.http_flv), hls: localUrl(urls.hls) };
}

/** The stream id and output URLs for a tile's item, starting a GB28181 channel. */
async function resolve(item) {
  if (item.device) {
    if (can('operator')) {
      const r = await api('POST', `/channels/${encodeURIComponent(item.device)}/${encodeURIComponent(item.channel)}/play`, { body: {} });
      return { stream: r.stream, urls: fromApi(r.urls) };
    }
    const id = `${item.device}_${item.channel}`;
    return { stream: id, urls: defaultUrls(id) };
  }
  if (item.source) {
    try {
      const s = await api('GET', `/sources/${encodeURIComponent(item.source)}`);
      return { stream: s.name, urls: fromApi(s.urls) };
    } catch {
      return { stream: item.source, urls: defaultUrls(item.source) };
    }
  }
  try {
    const s = await api('GET', `/streams/${encodeURIComponent(item.stream)}`);
    return { stream: s.id, urls: fromApi(s.urls) };
  } catch {
    return { stream: item.stream, urls: defaultUrls(item.stream) };
  }
}

function videoInfo(info, video) {
  const parts = [];
  if (info) {
    const v = info.tracks.find((tr) => tr.codec === 'h264' || tr.codec === 'h265');
    const a = info.tracks.find((tr) => !(tr.codec === 'h264' || tr.codec === 'h265'));
    if (v) parts.push(v.codec.toUpperCase());
    if (a) parts.push(a.codec.toUpperCase());
  }
  if (video.videoWidth) parts.push(`${video.videoWidth}×${video.videoHeight}`);
  if (info) {
    parts.push(formatRate(info.bitrate_bps));
    if (info.fps) parts.push(`${info.fps} fps`);
  }
  return parts.join(' · ');
}

export function render(main) {
  while (pending.length) place(pending.shift());
  save();
  const grid = h('div.live-grid', { dataset: { testid: 'live-grid' } });
  const running = new Map(); // tile index → {player, timer, stopped}

  const layoutButtons = LAYOUTS.map((n) => h('button.small', {
    type: 'button',
    class: n === state.layout ? 'active' : null,
    'aria-pressed': String(n === state.layout),
    dataset: { layout: String(n) },
    onclick: () => {
      state.layout = n;
      save();
      draw();
    },
  }, t('live.layout', { n })));

  main.append(pageHead(t('nav.live'),
    h('div.layouts', { role: 'group', 'aria-label': t('live.layouts') }, layoutButtons),
    h('button', { type: 'button', dataset: { testid: 'live-add' }, onclick: () => pick(state.selected) }, t('live.add')),
    h('button', { type: 'button', onclick: stopAll }, t('live.stop_all'))), grid);

  function stopTile(i) {
    const r = running.get(i);
    if (!r) return;
    r.stopped = true;
    clearTimeout(r.timer);
    r.player?.stop();
    running.delete(i);
  }

  function stopAll() {
    for (let i = 0; i < 16; i += 1) {
      stopTile(i);
      state.tiles[i] = null;
    }
    save();
    draw();
  }

  function close(i) {
    stopTile(i);
    state.tiles[i] = null;
    save();
    draw();
  }

  async function pick(i) {
    const item = await dialog(t('live.pick'), (done) => {
      const body = h('div.modal-body.picker', h('p.muted', t('common.loading')));
      Promise.allSettled([api('GET', '/sources'), api('GET', '/streams')]).then(([src, str]) => {
        const sources = src.status === 'fulfilled' ? src.value : [];
        const streams = str.status === 'fulfilled' ? str.value.filter((s) => !sources.some((x) => x.name === s.id)) : [];
        body.replaceChildren(
          h('h3', t('live.pick_sources')),
          sources.length ? h('ul.pick-list', sources.map((s) => h('li', h('button.wide', {
            type: 'button', dataset: { pick: s.name }, onclick: () => done({ source: s.name, title: s.name, prefer: 'auto' }),
          }, s.name, ' ', badge(t(`source.state.${s.status.state}`), s.status.state === 'live' ? 'ok' : 'info'))))) : h('p.muted', t('sources.none')),
          h('h3', t('live.pick_streams')),
          streams.length ? h('ul.pick-list', streams.map((s) => h('li', h('button.wide', {
            type: 'button', dataset: { pick: s.id }, onclick: () => done({ stream: s.id, title: s.id, prefer: 'auto' }),
          }, s.id)))) : h('p.muted', t('dash.no_streams')),
          h('p.muted', t('live.pick_hint')));
      });
      return body;
    });
    if (item) {
      stopTile(i);
      state.tiles[i] = item;
      state.selected = i;
      save();
      draw();
    }
  }

  function tile(i) {
    const item = state.tiles[i];
    const el = h('div.tile', {
      class: i === state.selected ? 'selected' : null,
      dataset: { tile: String(i), state: item ? 'connecting' : 'empty' },
      onclick: () => {
        if (state.selected === i) return;
        state.selected = i;
        grid.querySelectorAll('.tile').forEach((x) => x.classList.toggle('selected', x.dataset.tile === String(i)));
      },
    });
    if (!item) {
      el.append(h('button.tile-empty', { type: 'button', 'aria-label': t('live.add'), onclick: () => pick(i) }, '+'));
      return el;
    }
    const video = h('video', { muted: true, playsinline: true, autoplay: true });
    video.muted = true;
    const title = h('span.tile-title', item.title || item.stream || item.source || item.channel);
    const transport = h('span.tile-transport', { dataset: { testid: 'transport' } });
    const info = h('span.tile-info', { dataset: { testid: 'tile-info' } });
    const status = h('div.tile-status', t('live.connecting'));
    const prefer = h('select.small', {
      'aria-label': t('live.transport'),
      dataset: { testid: 'prefer' },
      onchange: () => {
        item.prefer = prefer.value;
        save();
        stopTile(i);
        start(i, el, video, transport, info, status);
      },
    }, ['auto', ...TRANSPORTS].map((tr) => h('option', { value: tr, selected: (item.prefer || 'auto') === tr }, t(`transport.${tr}`))));
    const tools = h('div.tile-tools', prefer);
    if (item.ptz && can('operator')) {
      const slot = h('div.ptz-slot');
      tools.append(h('button.small', {
        type: 'button',
        dataset: { testid: 'ptz-toggle' },
        onclick: () => {
          if (slot.firstChild) slot.replaceChildren();
          else slot.append(ptzPad(item.device ? { device: item.device, channel: item.channel } : { source: item.source }));
        },
      }, 'PTZ'));
      el.append(slot);
    }
    tools.append(
      h('button.small', { type: 'button', title: t('live.fullscreen'), 'aria-label': t('live.fullscreen'), onclick: () => (document.fullscreenElement ? document.exitFullscreen() : el.requestFullscreen?.()) }, '⤢'),
      h('button.small.danger', { type: 'button', title: t('live.close'), 'aria-label': t('live.close'), dataset: { testid: 'tile-close' }, onclick: (e) => { e.stopPropagation(); close(i); } }, '✕'));
    el.prepend(video, h('div.tile-top', title, transport), status, h('div.tile-bottom', info, tools));
    start(i, el, video, transport, info, status);
    return el;
  }

  async function start(i, el, video, transport, info, status) {
    const item = state.tiles[i];
    const r = { player: null, timer: null, stopped: false };
    running.set(i, r);
    el.dataset.state = 'connecting';
    status.textContent = t('live.connecting');
    status.hidden = false;
    let resolved;
    try {
      resolved = await resolve(item);
    } catch (e) {
      if (r.stopped) return;
      el.dataset.state = 'error';
      status.textContent = errorText(e);
      // Try again later: the device may come back.
      r.timer = setTimeout(() => {
        if (!r.stopped) start(i, el, video, transport, info, status);
      }, 5000);
      return;
    }
    if (r.stopped) return;
    el.dataset.stream = resolved.stream;
    let streamInfo = null;
    try {
      streamInfo = await api('GET', `/streams/${encodeURIComponent(resolved.stream)}`);
    } catch {
      // Not in the hub until someone watches (on demand): no audio hint yet.
    }
    if (r.stopped) return;
    const hasAudio = !!streamInfo && streamInfo.tracks.some((tr) => tr.codec === 'aac');
    const showInfo = () => {
      info.textContent = videoInfo(streamInfo, video);
    };
    video.addEventListener('resize', showInfo);
    r.player = new Player(video, {
      urls: resolved.urls,
      prefer: item.prefer || 'auto',
      hasAudio,
      onState: (s) => {
        el.dataset.state = s.state;
        el.dataset.transport = s.transport || '';
        transport.replaceChildren(s.transport ? badge(t(`transport.${s.transport}`), s.state === 'playing' ? 'ok' : 'info') : '');
        status.hidden = s.state === 'playing';
        if (s.state === 'playing') showInfo();
        status.textContent = s.state === 'error' ? `${t('live.failed')}: ${s.error}` : t('live.connecting_via', { transport: t(`transport.${s.transport}`) });
      },
    });
    r.player.start();
    const poll = async () => {
      if (r.stopped) return;
      try {
        streamInfo = await api('GET', `/streams/${encodeURIComponent(resolved.stream)}`);
      } catch {
        streamInfo = null;
      }
      if (r.stopped) return;
      showInfo();
      r.timer = setTimeout(poll, INFO_MS);
    };
    poll();
  }

  // Tiles whose item did not change keep playing across redraws (a
  // layout change, another tile closed).
  const elements = new Map(); // tile index → {item, el}
  function draw() {
    for (const [i, e] of [...elements]) {
      if (i >= state.layout || e.item !== state.tiles[i]) {
        stopTile(i);
        elements.delete(i);
      }
    }
    const n = Math.sqrt(state.layout);
    grid.style.setProperty('--cols', String(n));
    grid.dataset.layout = String(state.layout);
    layoutButtons.forEach((b) => {
      const on = Number(b.dataset.layout) === state.layout;
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', String(on));
    });
    grid.replaceChildren(...Array.from({ length: state.layout }, (_, i) => {
      if (!elements.has(i)) elements.set(i, { item: state.tiles[i], el: tile(i) });
      const { el } = elements.get(i);
      el.classList.toggle('selected', i === state.selected);
      return el;
    }));
  }

  draw();
  return () => {
    for (const i of [...running.keys()]) stopTile(i);
  };
}
