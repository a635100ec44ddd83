//! Outputs. Each format is muxed once per stream by a shared task and fanned
//! out to its viewers.

pub mod download;
pub mod flv;
pub mod hls;
pub mod ps;
pub mod rtsp;
pub mod webrtc;

use std::time::Duration;

use crate::media::{FanoutError, FanoutItem, FanoutReceiver, SourceState, Stream};

/// Why a viewer could not get media.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("source of stream {stream:?} failed: {reason}")]
    SourceFailed { stream: String, reason: String },
    #[error("no media from the source of stream {stream:?} within {} s", timeout.as_secs())]
    Timeout { stream: String, timeout: Duration },
    #[error("stream {stream:?} ended")]
    Ended { stream: String },
}

/// Waits for the first item a new viewer gets, giving up with a clear reason
/// when the source reports an error or nothing comes within `timeout`.
///
/// A source that failed once is retried with backoff, so an error seen here is
/// reported only if no media arrived before it; a source already live when the
/// viewer comes answers from its GOP cache at once.
pub async fn wait_for_media<T: FanoutItem>(
    stream: &Stream,
    rx: &mut FanoutReceiver<T>,
    timeout: Duration,
) -> Result<T, StartError> {
    let mut status = stream.status();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    // An error state from before this viewer arrived does not count: the
    // on-demand start this viewer triggered gets its own chance.
    status.borrow_and_update();
    loop {
        tokio::select! {
            item = rx.recv() => {
                return item.map_err(|e| match e {
                    FanoutError::Closed | FanoutError::TooSlow { .. } => {
                        // A stream closed because its source failed says why.
                        let s = status.borrow().clone();
                        match (s.state, s.reason) {
                            (SourceState::Error, Some(reason)) => StartError::SourceFailed {
                                stream: stream.id().to_owned(),
                                reason,
                            },
                            _ => StartError::Ended {
                                stream: stream.id().to_owned(),
                            },
                        }
                    }
                });
            }
            changed = status.changed() => {
                if changed.is_err() {
                    return Err(StartError::Ended { stream: stream.id().to_owned() });
                }
                let s = status.borrow_and_update().clone();
                if s.state == SourceState::Error {
                    return Err(StartError::SourceFailed {
                        stream: stream.id().to_owned(),
                        reason: s.reason.unwrap_or_else(|| "unknown error".into()),
                    });
                }
            }
            () = &mut deadline => {
                return Err(StartError::Timeout { stream: stream.id().to_owned(), timeout });
            }
        }
    }
}
