//! INVITE dialogs to devices (gb28181.md §5): the platform is the UAC, sends
//! an SDP offer, ACKs the 2xx, ends with BYE; a BYE from the device ends the
//! dialog too.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::super::media::{self, AnswerInfo, MediaTransport, Offer, SessionKind};
use super::{GbError, Platform, lock, random_token};
use crate::sip::msg;
use crate::sip::transaction::Peer;

/// What to ask a device for.
#[derive(Clone, Debug)]
pub struct InviteRequest {
    pub device_id: String,
    pub channel_id: String,
    pub kind: SessionKind,
    pub transport: MediaTransport,
    /// Our media address in the offer.
    pub media_ip: IpAddr,
    /// Our port in the offer (for TCP active: informational).
    pub media_port: u16,
    pub time_range: Option<(u64, u64)>,
    pub download_speed: Option<u32>,
}

/// A confirmed INVITE dialog.
#[derive(Debug)]
pub struct Dialog {
    pub device_id: String,
    pub channel_id: String,
    pub peer: Peer,
    pub call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    remote_target: String,
    /// The SSRC we offered (10 digits).
    pub offered_ssrc: String,
    /// The device's answer: its SSRC wins when it gives one.
    pub answer: AnswerInfo,
    /// Becomes true when the device ends the dialog (BYE).
    pub ended: watch::Receiver<bool>,
}

impl Dialog {
    /// The SSRC media will carry: the answered one, else ours; `None` when
    /// the device answered none or zeros (accept any).
    pub fn media_ssrc(&self) -> Option<u32> {
        self.answer.ssrc
    }

    pub fn offered_ssrc_value(&self) -> Option<u32> {
        media::ssrc_value(&self.offered_ssrc)
    }
}

impl Platform {
    /// Reserves an SSRC for a session of `kind` (released by
    /// [`Platform::release_ssrc`], or with the dialog).
    pub fn allocate_ssrc(&self, kind: SessionKind, device_id: &str) -> Result<String, GbError> {
        lock(&self.inner)
            .ssrcs
            .allocate(kind)
            .ok_or_else(|| GbError::NoSsrc(device_id.to_owned()))
    }

    pub fn release_ssrc(&self, ssrc: &str) {
        if let Some(v) = media::ssrc_value(ssrc) {
            lock(&self.inner).ssrcs.release(v);
        }
    }

    /// Sends an INVITE offering `ssrc` (from [`Platform::allocate_ssrc`])
    /// and, on 2xx, its ACK. On failure the SSRC is released; on success it
    /// stays reserved until [`Platform::bye`] or [`Platform::release_dialog`].
    pub async fn invite(
        self: &Arc<Self>,
        req: &InviteRequest,
        ssrc: &str,
    ) -> Result<Dialog, GbError> {
        let result = match self.device_target(&req.device_id) {
            Ok((peer, _)) => self.invite_with(req, peer, ssrc).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.release_ssrc(ssrc);
        }
        result
    }

    async fn invite_with(
        self: &Arc<Self>,
        req: &InviteRequest,
        peer: Peer,
        ssrc: &str,
    ) -> Result<Dialog, GbError> {
        let settings = self.settings();
        let uri_channel = (req.kind != SessionKind::Play).then_some(req.channel_id.as_str());
        let sdp = media::offer_sdp(&Offer {
            platform_id: &settings.platform_id,
            kind: req.kind,
            media_ip: req.media_ip,
            port: req.media_port,
            transport: req.transport,
            ssrc,
            uri_channel,
            time_range: req.time_range,
            download_speed: req.download_speed,
        });
        let call_id = format!("{}@camgate", random_token(12));
        let from_tag = random_token(6);
        let subject = format!("{}:{ssrc},{}:0", req.channel_id, settings.platform_id);
        let request = self.build_request(
            rsip::Method::Invite,
            &req.channel_id,
            peer,
            &call_id,
            &from_tag,
            None,
            1,
            &[
                ("Subject", subject),
                ("Content-Type", "APPLICATION/SDP".to_owned()),
            ],
            Some(sdp.into_bytes()),
        );
        let invite_branch = msg::top_branch(&request.headers).unwrap_or_default();
        let request_uri = request.uri.to_string();
        let (ended_tx, ended) = watch::channel(false);
        lock(&self.inner).dialogs.insert(call_id.clone(), ended_tx);
        let response = self
            .request_to(&req.device_id, peer, request)
            .await
            .inspect_err(|_| {
                lock(&self.inner).dialogs.remove(&call_id);
            })?;
        let code = response.status_code.code();
        if !(200..300).contains(&code) {
            lock(&self.inner).dialogs.remove(&call_id);
            return Err(GbError::Rejected {
                device_id: req.device_id.clone(),
                cmd: format!("INVITE {}", req.channel_id),
                code,
            });
        }
        let to_tag = msg::header_value(&response.headers, "To")
            .and_then(|t| msg::param(&t, "tag").map(str::to_owned));
        let remote_target = msg::header_value(&response.headers, "Contact")
            .and_then(|c| {
                let start = c.find("sip:")?;
                let rest = &c[start..];
                let end = rest.find(['>', ';', ' ']).unwrap_or(rest.len());
                Some(rest[..end].to_owned())
            })
            .unwrap_or(request_uri);
        let answer_text = String::from_utf8_lossy(&response.body);
        let answer = media::read_answer(&answer_text);
        let mut dialog = Dialog {
            device_id: req.device_id.clone(),
            channel_id: req.channel_id.clone(),
            peer,
            call_id: call_id.clone(),
            from_tag,
            to_tag,
            cseq: 1,
            remote_target,
            offered_ssrc: ssrc.to_owned(),
            answer: AnswerInfo {
                ssrc: None,
                addr: None,
                payload_types: Vec::new(),
                setup: None,
            },
            ended,
        };
        // ACK whatever the body says: the dialog exists; a bad answer is then
        // ended with BYE.
        let ack = self.in_dialog(&dialog, rsip::Method::Ack, 1);
        if let Err(e) = self.endpoint.send_ack(&invite_branch, peer, ack).await {
            tracing::warn!(device_id = req.device_id, error = %e, "cannot send ACK");
        }
        match answer {
            Ok(a) => {
                if let Some(v) = a.ssrc
                    && Some(v) != media::ssrc_value(ssrc)
                {
                    tracing::info!(
                        device_id = req.device_id,
                        channel_id = req.channel_id,
                        offered = ssrc,
                        answered = v,
                        "device answered its own SSRC: adopting it"
                    );
                }
                dialog.answer = a;
                Ok(dialog)
            }
            Err(e) => {
                tracing::warn!(device_id = req.device_id, error = %e, "unreadable SDP answer: ending the dialog");
                let _ = self.bye(&mut dialog).await;
                Err(GbError::BadAnswer {
                    device_id: req.device_id.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }

    fn in_dialog(&self, d: &Dialog, method: rsip::Method, cseq: u32) -> rsip::Request {
        let mut r = self.build_request(
            method,
            &d.channel_id,
            d.peer,
            &d.call_id,
            &d.from_tag,
            d.to_tag.as_deref(),
            cseq,
            &[],
            None,
        );
        if let Ok(uri) = rsip::Uri::try_from(d.remote_target.as_str()) {
            r.uri = uri;
        }
        r
    }

    /// Ends a dialog with BYE (unless the device already did) and releases
    /// its SSRC.
    pub async fn bye(&self, d: &mut Dialog) -> Result<(), GbError> {
        self.release_dialog(d);
        if *d.ended.borrow() {
            return Ok(());
        }
        d.cseq += 1;
        let bye = self.in_dialog(d, rsip::Method::Bye, d.cseq);
        let r = self.request_to(&d.device_id, d.peer, bye).await?;
        tracing::debug!(
            device_id = d.device_id,
            channel_id = d.channel_id,
            code = r.status_code.code(),
            "BYE answered"
        );
        Ok(())
    }

    /// Sends a MANSRTSP command in the dialog (INFO, `Application/MANSRTSP`;
    /// GB/T 28181-2016 §9.8.3 and appendix B) and returns the SIP status.
    pub async fn info(&self, d: &mut Dialog, mansrtsp: &str) -> Result<u16, GbError> {
        if *d.ended.borrow() {
            return Err(GbError::BadRequest("the playback session has ended".into()));
        }
        d.cseq += 1;
        let mut info = self.build_request(
            rsip::Method::Info,
            &d.channel_id,
            d.peer,
            &d.call_id,
            &d.from_tag,
            d.to_tag.as_deref(),
            d.cseq,
            &[("Content-Type", "Application/MANSRTSP".to_owned())],
            Some(mansrtsp.as_bytes().to_vec()),
        );
        if let Ok(uri) = rsip::Uri::try_from(d.remote_target.as_str()) {
            info.uri = uri;
        }
        let r = self.request_to(&d.device_id, d.peer, info).await?;
        Ok(r.status_code.code())
    }

    /// Forgets the dialog and frees its SSRC (idempotent).
    pub fn release_dialog(&self, d: &Dialog) {
        let mut inner = lock(&self.inner);
        inner.dialogs.remove(&d.call_id);
        if let Some(v) = d.offered_ssrc_value() {
            inner.ssrcs.release(v);
        }
    }

    pub(super) async fn on_bye(&self, req: &crate::sip::endpoint::InboundRequest) {
        let call_id = msg::header_value(&req.request.headers, "Call-ID").unwrap_or_default();
        let found = lock(&self.inner).dialogs.remove(&call_id);
        match found {
            Some(tx) => {
                tx.send_replace(true);
                tracing::info!(call_id, peer = %req.peer.addr, "device ended the media dialog (BYE)");
                self.reply(req, 200, &[]).await;
            }
            // §15.1.2: a BYE for no dialog gets 481.
            None => self.reply(req, 481, &[]).await,
        }
    }

    /// SSRCs in use (for the API and tests).
    pub fn ssrcs_in_use(&self) -> usize {
        lock(&self.inner).ssrcs.in_use()
    }
}
