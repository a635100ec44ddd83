// One <video> playing one stream: WebRTC (WHEP, RFC 9725) first, then
// HTTP-FLV through mpegts.js (MSE), then LL-HLS through hls.js. Each
// attempt must show a decoded frame within its start window, else the next
// transport is tried; a transport that fails later restarts the sequence.
// The demuxer libraries are loaded only when their fallback is needed.
import { csrfHeaders } from './api.js';

export const TRANSPORTS = ['webrtc', 'flv', 'hls'];

// How long an attempt may take to show its first frame before the next
// transport is tried: the gateway itself waits up to its start timeout for
// an on-demand source, and HLS needs a whole segment on top.
const FIRST_FRAME_MS = { webrtc: 15000, flv: 20000, hls: 30000 };
const RETRY_MS = 3000;
// A playing transport whose frame count stops moving for this long is
// given up and the sequence restarted (a stalled MSE buffer, a dead peer
// connection that never reports "failed").
const STALL_MS = 15000;

const scripts = new Map();

/** Loads a vendored UMD script once (it sets a global). */
function loadScript(src) {
  if (!scripts.has(src)) {
    scripts.set(src, new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.async = true;
      s.onload = resolve;
      s.onerror = () => {
        scripts.delete(src);
        reject(new Error(`${src} did not load`));
      };
      document.head.append(s);
    }));
  }
  return scripts.get(src);
}

function absolute(path) {
  return new URL(path, location.href).href;
}

/** Resolves on the video's first decoded frame; rejects on timeout or abort. */
function firstFrame(video, ms, signal) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(new Error('aborted'));
    signal.addEventListener('abort', onAbort);
    const timer = setTimeout(() => finish(new Error('no video frame')), ms);
    // getVideoPlaybackQuality is everywhere MSE and WebRTC are; a poll is
    // enough to notice the first frame. The count may or may not restart
    // when the element gets a new source, so any change counts.
    const before = video.getVideoPlaybackQuality().totalVideoFrames;
    const poll = setInterval(() => {
      const now = video.getVideoPlaybackQuality().totalVideoFrames;
      if (now > 0 && now !== before) finish();
    }, 200);
  });
}

async function startWebRtc(video, url, { signal, onFatal }) {
  if (!window.RTCPeerConnection) throw new Error('WebRTC not supported');
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.ontrack = (e) => media.addTrack(e.track);
  let resource = null;
  const stop = () => {
    pc.close();
    video.srcObject = null;
    // Ends the WHEP session now instead of waiting for ICE to time out
    // (RFC 9725 §4.3); keepalive lets it go out while the page unloads.
    if (resource) fetch(resource, { method: 'DELETE', headers: csrfHeaders(), credentials: 'same-origin', keepalive: true }).catch(() => {});
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    const resp = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Accept: 'application/sdp', ...csrfHeaders() },
      body: pc.localDescription.sdp,
      credentials: 'same-origin',
      signal,
    });
    const text = await resp.text();
    if (resp.status !== 201) {
      let message = text;
      try {
        message = JSON.parse(text).error.message;
      } catch {
        // Not the API's error shape: show the body as it is.
      }
      throw new Error(`WHEP ${resp.status}: ${message}`);
    }
    const loc = resp.headers.get('Location');
    if (loc) resource = new URL(loc, absolute(url)).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
  } catch (e) {
    stop();
    throw e;
  }
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed' || pc.connectionState === 'closed') onFatal(new Error(`WebRTC ${pc.connectionState}`));
  };
  video.srcObject = media;
  return { stop };
}

async function startFlv(video, url, { hasAudio, onFatal }) {
  await loadScript('/vendor/mpegts.js');
  const mpegts = window.mpegts;
  if (!mpegts || !mpegts.getFeatureList().mseLivePlayback) throw new Error('MSE live playback not supported');
  // Its per-segment info lines would flood the console; warnings and errors stay.
  mpegts.LoggingControl.enableVerbose = false;
  mpegts.LoggingControl.enableDebug = false;
  mpegts.LoggingControl.enableInfo = false;
  const player = mpegts.createPlayer(
    { type: 'flv', isLive: true, url: absolute(url), hasAudio, hasVideo: true },
    { enableWorker: false, lazyLoad: false, liveBufferLatencyChasing: true, autoCleanupSourceBuffer: true },
  );
  player.on(mpegts.Events.ERROR, (type, detail, info) => onFatal(new Error(`FLV ${type}: ${detail}${info && info.msg ? ` (${info.msg})` : ''}`)));
  player.attachMediaElement(video);
  player.load();
  const p = player.play();
  if (p && p.catch) p.catch(() => {});
  return {
    stop: () => {
      try {
        player.pause();
        player.unload();
        player.detachMediaElement();
        player.destroy();
      } catch {
        // Already torn down by an error.
      }
    },
  };
}

async function startHls(video, url, { onFatal }) {
  await loadScript('/vendor/hls.light.min.js');
  const Hls = window.Hls;
  if (Hls && Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 10 });
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (d.fatal) onFatal(new Error(`HLS ${d.type}: ${d.details}`));
    });
    hls.loadSource(absolute(url));
    hls.attachMedia(video);
    return { stop: () => hls.destroy() };
  }
  if (video.canPlayType('application/vnd.apple.mpegurl')) {
    // Safari plays HLS natively.
    video.src = url;
    return {
      stop: () => {
        video.removeAttribute('src');
        video.load();
      },
    };
  }
  throw new Error('HLS not supported');
}

/**
 * `new Player(video, {urls: {whep, flv, hls}, prefer: 'auto'|'webrtc'|'flv'|'hls',
 * hasAudio, onState({state, transport, error})})`; `start()`, `stop()`.
 */
export class Player {
  constructor(video, opts) {
    this.video = video;
    this.opts = opts;
    this.transport = null;
    this.current = null;
    this.abort = null;
    this.retry = null;
    this.stopped = false;
    this.generation = 0;
  }

  order() {
    const { urls, prefer } = this.opts;
    const available = TRANSPORTS.filter((tr) => !!urls[tr]);
    if (prefer && prefer !== 'auto') return available.includes(prefer) ? [prefer] : [];
    return available;
  }

  emit(state, extra = {}) {
    if (this.opts.onState) this.opts.onState({ state, transport: this.transport, ...extra });
  }

  async start() {
    this.stopped = false;
    const gen = ++this.generation;
    const errors = [];
    for (const tr of this.order()) {
      if (this.stopped || gen !== this.generation) return;
      this.teardown();
      this.transport = tr;
      this.abort = new AbortController();
      const signal = this.abort.signal;
      this.emit('connecting');
      let failedLater = null;
      const onFatal = (e) => {
        if (gen !== this.generation || this.stopped) return;
        failedLater = e;
        if (this.abort) this.abort.abort();
        if (this.playing) this.fail(e);
      };
      this.playing = false;
      try {
        const starter = { webrtc: startWebRtc, flv: startFlv, hls: startHls }[tr];
        this.current = await starter(this.video, this.opts.urls[tr], { signal, onFatal, hasAudio: !!this.opts.hasAudio });
        if (this.stopped || gen !== this.generation) {
          this.teardown();
          return;
        }
        this.video.muted = true;
        const p = this.video.play();
        if (p && p.catch) p.catch(() => {});
        await firstFrame(this.video, FIRST_FRAME_MS[tr], signal);
        if (failedLater) throw failedLater;
        this.playing = true;
        this.emit('playing');
        this.watchStall(gen);
        return;
      } catch (e) {
        errors.push(`${tr}: ${failedLater ? failedLater.message : e.message}`);
        console.warn('camgate player', tr, 'failed:', failedLater || e);
      }
    }
    if (this.stopped || gen !== this.generation) return;
    this.teardown();
    this.transport = null;
    this.emit('error', { error: errors.join('; ') || 'no transport available' });
    this.scheduleRetry();
  }

  watchStall(gen) {
    let last = -1;
    let since = Date.now();
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (gen !== this.generation || !this.playing) {
        clearInterval(this.watchdog);
        return;
      }
      const frames = this.video.getVideoPlaybackQuality().totalVideoFrames;
      if (frames !== last) {
        last = frames;
        since = Date.now();
      } else if (Date.now() - since > STALL_MS) {
        clearInterval(this.watchdog);
        this.fail(new Error('no new video frame'));
      }
    }, 1000);
  }

  fail(e) {
    this.playing = false;
    this.generation += 1;
    this.teardown();
    this.emit('error', { error: `${this.transport}: ${e.message}` });
    this.scheduleRetry();
  }

  scheduleRetry() {
    clearTimeout(this.retry);
    if (!this.stopped) this.retry = setTimeout(() => this.start(), RETRY_MS);
  }

  teardown() {
    if (this.abort) this.abort.abort();
    this.abort = null;
    if (this.current) this.current.stop();
    this.current = null;
  }

  stop() {
    this.stopped = true;
    this.playing = false;
    clearInterval(this.watchdog);
    this.generation += 1;
    clearTimeout(this.retry);
    this.teardown();
    this.transport = null;
  }
}
