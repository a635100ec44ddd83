//! Downloads of device recordings into MP4 files on the box (GB/T
//! 28181-2016 §9.9): a `s=Download` stream is fed into the fMP4 segmenter
//! the HLS output uses, and its init segment and every fragment are
//! appended to `<data dir>/downloads/<id>.mp4` as they close — a
//! fragmented MP4 any player and FFmpeg read. The recording's timestamps
//! are kept, so the file plays at normal speed whatever the download speed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::hls::{HlsConfig, Segmenter};
use crate::media::{FanoutError, Stream, ViewerGuard};

/// Downloads kept in the list (finished ones beyond this are forgotten,
/// their files stay).
const MAX_DOWNLOADS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// What the API shows of a download.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DownloadInfo {
    pub id: u64,
    pub device_id: String,
    pub channel_id: String,
    /// The recording's span (Unix seconds).
    pub start: u64,
    pub end: u64,
    pub speed: u32,
    pub stream: String,
    pub state: DownloadState,
    /// Recording time written so far, seconds.
    pub media_secs: f64,
    /// `media_secs` against the asked span, 0–100.
    pub percent: f64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Entry {
    info: Mutex<DownloadInfo>,
    path: PathBuf,
    cancel: tokio_util::sync::CancellationToken,
}

pub struct Downloads {
    dir: PathBuf,
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("download {0} not found")]
    NotFound(u64),
    #[error("download {id} is {state:?}, not done")]
    NotReady { id: u64, state: DownloadState },
}

impl Downloads {
    pub fn new(data_dir: &std::path::Path) -> Arc<Self> {
        Arc::new(Self {
            dir: data_dir.join("downloads"),
            next: AtomicU64::new(1),
            entries: Mutex::default(),
        })
    }

    /// Starts writing `stream` (a download stream, held by `viewer`).
    pub fn start(
        self: &Arc<Self>,
        stream: Arc<Stream>,
        viewer: ViewerGuard,
        (device_id, channel_id): (&str, &str),
        (start, end, speed): (u64, u64, u32),
    ) -> DownloadInfo {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let info = DownloadInfo {
            id,
            device_id: device_id.to_owned(),
            channel_id: channel_id.to_owned(),
            start,
            end,
            speed,
            stream: stream.id().to_owned(),
            state: DownloadState::Running,
            media_secs: 0.0,
            percent: 0.0,
            bytes: 0,
            error: None,
        };
        let entry = Arc::new(Entry {
            info: Mutex::new(info.clone()),
            path: self.dir.join(format!("{id}.mp4")),
            cancel: tokio_util::sync::CancellationToken::new(),
        });
        {
            let mut map = lock(&self.entries);
            if map.len() >= MAX_DOWNLOADS
                && let Some(oldest) = map
                    .iter()
                    .filter(|(_, e)| lock(&e.info).state != DownloadState::Running)
                    .map(|(k, _)| *k)
                    .min()
            {
                map.remove(&oldest);
            }
            map.insert(id, entry.clone());
        }
        tokio::spawn(write(self.dir.clone(), entry, stream, viewer));
        info
    }

    pub fn list(&self) -> Vec<DownloadInfo> {
        let mut v: Vec<DownloadInfo> = lock(&self.entries)
            .values()
            .map(|e| lock(&e.info).clone())
            .collect();
        v.sort_by_key(|d| d.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<DownloadInfo> {
        lock(&self.entries).get(&id).map(|e| lock(&e.info).clone())
    }

    /// The finished file.
    pub fn file(&self, id: u64) -> Result<PathBuf, DownloadError> {
        let e = lock(&self.entries)
            .get(&id)
            .cloned()
            .ok_or(DownloadError::NotFound(id))?;
        let state = lock(&e.info).state;
        if state == DownloadState::Done {
            Ok(e.path.clone())
        } else {
            Err(DownloadError::NotReady { id, state })
        }
    }

    /// Stops a running download and deletes the file.
    pub async fn delete(&self, id: u64) -> Result<(), DownloadError> {
        let e = lock(&self.entries)
            .remove(&id)
            .ok_or(DownloadError::NotFound(id))?;
        e.cancel.cancel();
        let _ = tokio::fs::remove_file(&e.path).await;
        let _ = tokio::fs::remove_file(e.path.with_extension("mp4.part")).await;
        Ok(())
    }
}

async fn write(dir: PathBuf, entry: Arc<Entry>, stream: Arc<Stream>, viewer: ViewerGuard) {
    let result = write_inner(&dir, &entry, &stream).await;
    drop(viewer);
    let mut info = lock(&entry.info);
    match result {
        Ok(true) => {
            info.state = DownloadState::Done;
            info.percent = 100.0_f64.min(info.percent.max(0.0));
            tracing::info!(
                download = info.id,
                stream = stream.id(),
                bytes = info.bytes,
                media_secs = info.media_secs,
                "download finished"
            );
        }
        Ok(false) => info.state = DownloadState::Cancelled,
        Err(e) => {
            tracing::warn!(download = info.id, stream = stream.id(), error = %e, "download failed");
            info.state = DownloadState::Failed;
            info.error = Some(e);
        }
    }
}

/// `Ok(true)` when the recording ended and the file is complete.
async fn write_inner(
    dir: &std::path::Path,
    entry: &Entry,
    stream: &Arc<Stream>,
) -> Result<bool, String> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let part_path = entry.path.with_extension("mp4.part");
    let mut file = tokio::fs::File::create(&part_path)
        .await
        .map_err(|e| format!("cannot create {}: {e}", part_path.display()))?;
    let (span, id) = {
        let i = lock(&entry.info);
        ((i.end.saturating_sub(i.start)).max(1) as f64, i.id)
    };
    let mut seg = Segmenter::new(HlsConfig::default());
    let mut frames = stream.subscribe();
    let mut wrote_init = false;
    let (mut msn, mut part) = (0u64, 0u32);
    let mut first_dts: Option<i64> = None;
    let mut bytes = 0u64;
    let ended = loop {
        let frame = tokio::select! {
            () = entry.cancel.cancelled() => break false,
            f = frames.recv() => f,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(FanoutError::Closed) => break true,
            Err(e) => return Err(format!("the writer fell behind the stream: {e}")),
        };
        seg.push(&frame)
            .map_err(|e| format!("the recording changed its codec parameters: {e}"))?;
        let mut out = Vec::new();
        if !wrote_init && let Some(init) = seg.init() {
            out.push(init);
            wrote_init = true;
        }
        // Parts in order; a closed segment's parts are still there.
        loop {
            if let Some(b) = seg.part(msn, part) {
                out.push(b);
                part += 1;
            } else if seg.next_msn() > msn && seg.part(msn + 1, 0).is_some() {
                msn += 1;
                part = 0;
            } else {
                break;
            }
        }
        for b in out {
            file.write_all(&b)
                .await
                .map_err(|e| format!("cannot write {}: {e}", part_path.display()))?;
            bytes += b.len() as u64;
        }
        if frame.is_video() {
            let first = *first_dts.get_or_insert(frame.dts);
            let secs = (frame.dts - first) as f64 / f64::from(frame.track.timescale());
            let mut i = lock(&entry.info);
            i.media_secs = secs;
            i.percent = (100.0 * secs / span).min(100.0);
            i.bytes = bytes;
        }
    };
    if !ended {
        return Ok(false);
    }
    // What was still open when the recording ended.
    loop {
        match seg.part(msn, part) {
            Some(b) => {
                file.write_all(&b)
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", part_path.display()))?;
                bytes += b.len() as u64;
                part += 1;
            }
            None if seg.part(msn + 1, 0).is_some() => {
                msn += 1;
                part = 0;
            }
            None => break,
        }
    }
    file.sync_all()
        .await
        .map_err(|e| format!("cannot sync {}: {e}", part_path.display()))?;
    drop(file);
    if bytes == 0 || !wrote_init {
        return Err("the device sent no media".into());
    }
    tokio::fs::rename(&part_path, &entry.path)
        .await
        .map_err(|e| format!("cannot rename to {}: {e}", entry.path.display()))?;
    lock(&entry.info).bytes = bytes;
    tracing::debug!(download = id, "download file complete");
    Ok(true)
}
