// The box at a glance: devices, streams, bandwidth, CPU and memory
// (`/api/v1/system`), the running streams and the latest events; refreshed
// every few seconds while the page is open.
import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, formatBytes, formatRate, formatDuration, formatTime, pageHead, table, errorText, badge } from '../dom.js';
import { eventKindLabel } from './events.js';
import { queuePlay } from './live.js';

const REFRESH_MS = 3000;

function stat(label, value, testid, sub) {
  return h('div.stat.card', { dataset: { testid } },
    h('span.stat-label', label),
    h('span.stat-value', value),
    sub ? h('span.stat-sub', sub) : null);
}

export function render(main) {
  const stats = h('div.stats');
  const streams = h('section.card', h('h2', t('dash.streams')), h('p.muted', t('common.loading')));
  const recent = h('section.card', h('h2', t('dash.recent_events')), h('p.muted', t('common.loading')));
  const error = h('p.form-error', { role: 'alert' });
  main.append(pageHead(t('nav.dashboard')), error, stats, h('div.two-col', streams, recent));

  let timer = null;
  let stopped = false;

  async function refresh() {
    const [sys, list, evs] = await Promise.allSettled([
      api('GET', '/system'),
      api('GET', '/streams'),
      api('GET', '/events', { query: { limit: 8 } }),
    ]);
    if (stopped) return;
    error.textContent = [sys, list, evs].filter((r) => r.status === 'rejected').map((r) => errorText(r.reason)).join(' · ');
    if (sys.status === 'fulfilled') {
      const s = sys.value;
      const used = s.memory_total_bytes - s.memory_available_bytes;
      stats.replaceChildren(
        stat(t('dash.devices_online'), String(s.devices_online), 'stat-online',
          t('dash.devices_offline', { n: s.devices_offline })),
        stat(t('dash.live_streams'), String(s.streams_live ?? s.streams), 'stat-streams',
          t('dash.streams_viewers', { n: s.streams, viewers: s.viewers })),
        stat(t('dash.bandwidth_in'), formatRate(s.bytes_in_per_sec, true), 'stat-in',
          s.net_rx_bytes_per_sec !== undefined ? t('dash.network', { rate: formatRate(s.net_rx_bytes_per_sec, true) }) : null),
        stat(t('dash.bandwidth_out'), formatRate(s.bytes_out_per_sec, true), 'stat-out',
          s.net_tx_bytes_per_sec !== undefined ? t('dash.network', { rate: formatRate(s.net_tx_bytes_per_sec, true) }) : null),
        stat(t('dash.cpu'), `${Number(s.cpu_percent).toFixed(1)} %`, 'stat-cpu', t('dash.cores', { n: s.cpu_cores })),
        stat(t('dash.memory'), `${formatBytes(used)} / ${formatBytes(s.memory_total_bytes)}`, 'stat-mem',
          t('dash.rss', { size: formatBytes(s.process_rss_bytes) })),
        stat(t('dash.uptime'), formatDuration(s.uptime_secs), 'stat-uptime', `${s.hostname} · v${s.version}`),
      );
    }
    if (list.status === 'fulfilled') {
      streams.replaceChildren(h('h2', t('dash.streams')), table([
        { label: t('stream.id'), cell: (s) => h('a', { href: '#/live', onclick: () => queuePlay({ stream: s.id, title: s.id }) }, s.id) },
        { label: t('stream.state'), cell: (s) => badge(t(`source.state.${s.source.state}`), s.source.state === 'live' ? 'ok' : 'warn') },
        { label: t('stream.codec'), class: 'hide-sm', cell: (s) => s.tracks.map((tr) => tr.codec.toUpperCase()).join(' + ') || '–' },
        { label: t('stream.viewers'), cell: (s) => String(s.viewers) },
        { label: t('stream.bitrate'), cell: (s) => formatRate(s.bitrate_bps) },
      ], list.value, { empty: t('dash.no_streams') }));
    }
    if (evs.status === 'fulfilled') {
      recent.replaceChildren(h('h2', t('dash.recent_events')), h('ul.event-list', evs.value.length
        ? evs.value.map((e) => h('li', h('span.muted', formatTime(e.at, true)), ' ', badge(eventKindLabel(e.kind), e.kind === 'alarm' ? 'warn' : 'info'), ' ', e.message))
        : h('li.muted', t('events.none'))), h('a', { href: '#/events' }, t('dash.all_events')));
    }
  }

  async function loop() {
    try {
      await refresh();
    } catch (e) {
      error.textContent = errorText(e);
    }
    if (!stopped) timer = setTimeout(loop, REFRESH_MS);
  }
  loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
