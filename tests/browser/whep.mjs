// WHEP in headless Chromium: a recvonly RTCPeerConnection (video + audio)
// posts its offer to /live/{stream}/whep, plays the answer's media in a
// <video> and passes once more than 30 frames were decoded.
// Usage: node whep.mjs <gateway base URL> <stream> [--timeout-secs N]
import { args, finish, runInPage } from './lib.mjs';

const { base, stream, timeoutMs } = args();

async function play({ stream, timeoutMs }) {
  const video = document.querySelector('video');
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.ontrack = (e) => media.addTrack(e.track);
  await pc.setLocalDescription(await pc.createOffer());
  const resp = await fetch(`/live/${stream}/whep`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp' },
    body: pc.localDescription.sdp,
  });
  const answer = await resp.text();
  if (resp.status !== 201) {
    return { ok: false, status: resp.status, body: answer };
  }
  const location = resp.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  video.srcObject = media;
  video.muted = true;
  video.play().catch(() => {});
  const start = performance.now();
  let frames = 0;
  while (performance.now() - start < timeoutMs) {
    frames = video.getVideoPlaybackQuality().totalVideoFrames;
    if (frames > 30) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const codecs = {};
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.codecId && stats.get(s.codecId)) {
      codecs[s.kind] = { mimeType: stats.get(s.codecId).mimeType, packets: s.packetsReceived };
    }
  });
  const audioAnswered = (answer.split('m=')[2] || '').match(/a=rtpmap:\d+ ([^/\r\n]+)/);
  const del = await fetch(location, { method: 'DELETE' });
  pc.close();
  return {
    ok: frames > 30,
    frames,
    width: video.videoWidth,
    height: video.videoHeight,
    iceState: pc.iceConnectionState,
    codecs,
    audioAnswered: audioAnswered ? audioAnswered[1] : null,
    location,
    deleteStatus: del.status,
    seconds: (performance.now() - start) / 1000,
  };
}

finish(runInPage({
  base,
  html: '<!doctype html><title>WHEP</title><video playsinline></video>',
  fn: play,
  arg: { stream },
  timeoutMs,
}));
