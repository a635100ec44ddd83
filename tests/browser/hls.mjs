// LL-HLS in headless Chromium through MSE with hls.js (lowLatencyMode):
// plays /live/{stream}/index.m3u8 and passes once more than 30 frames were
// decoded. hls.js comes from node_modules, served to the page by the harness.
// Usage: node hls.mjs <gateway base URL> <stream> [--timeout-secs N]
import { args, finish, hlsJs, runInPage } from './lib.mjs';

const { base, stream, timeoutMs } = args();

async function play({ stream, timeoutMs }) {
  await new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = 'hls.js';
    s.onload = resolve;
    s.onerror = () => reject(new Error('hls.js did not load'));
    document.head.appendChild(s);
  });
  // eslint-disable-next-line no-undef
  if (!Hls.isSupported()) return { ok: false, error: 'MSE not supported' };
  const video = document.querySelector('video');
  video.muted = true;
  const errors = [];
  // eslint-disable-next-line no-undef
  const hls = new Hls({ lowLatencyMode: true });
  // eslint-disable-next-line no-undef
  hls.on(Hls.Events.ERROR, (_, d) => errors.push(`${d.type}/${d.details}${d.fatal ? ' (fatal)' : ''}`));
  const codecs = {};
  // eslint-disable-next-line no-undef
  hls.on(Hls.Events.BUFFER_CODECS, (_, d) => {
    for (const kind of ['video', 'audio', 'audiovideo']) {
      if (d[kind]) codecs[kind] = d[kind].codec;
    }
  });
  hls.loadSource(`/live/${stream}/index.m3u8`);
  hls.attachMedia(video);
  video.play().catch(() => {});
  const start = performance.now();
  let frames = 0;
  while (performance.now() - start < timeoutMs) {
    frames = video.getVideoPlaybackQuality().totalVideoFrames;
    if (frames > 30) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const result = {
    ok: frames > 30,
    frames,
    width: video.videoWidth,
    height: video.videoHeight,
    codecs,
    lowLatency: hls.lowLatencyMode,
    latencySecs: hls.latency,
    errors: errors.slice(0, 20),
    seconds: (performance.now() - start) / 1000,
  };
  hls.destroy();
  return result;
}

finish(runInPage({
  base,
  html: '<!doctype html><title>HLS</title><video playsinline></video>',
  files: { 'hls.js': hlsJs() },
  fn: play,
  arg: { stream },
  timeoutMs,
}));
