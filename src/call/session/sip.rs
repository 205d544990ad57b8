//! The call's SIP side: answering with media (SDP answer, RTP socket, the model bridge) and
//! reacting to the dialog's events (ACK, re-INVITE, INFO DTMF, transfer progress, the end).

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::sip::dialog::SessionEvent;
use crate::sip::sdp::{self, LocalMedia};

use super::super::bridge::ModelBridge;
use super::super::media::{MediaEvent, MediaLeg, MediaSource};
use super::io::{bind_rtp, codec_kind, rand_seed};
use super::Call;
use crate::store::Record;

impl Call {
    pub(super) async fn setup_media(&mut self, now: Instant) {
        let offer = self.uas.incoming().offer.clone();
        if offer.is_empty() {
            warn!("INVITE without SDP offer: not supported, rejecting with 488");
            self.uas.reject(now, 488, None);
            return;
        }
        let ctx = self.ctx.clone();
        let Some((lease, socket)) = bind_rtp(&ctx).await else {
            warn!("no free RTP port: rejecting with 503");
            self.uas.reject(now, 503, Some(5));
            return;
        };
        let local = self.local_media(lease.port());
        match sdp::answer(&offer, &local) {
            Ok(ans) => {
                let n = &ans.negotiated;
                info!(codec = ?n.codec, pt = n.payload_type, remote = ?n.remote, dtmf = ?n.telephone_event, "answering");
                let source = match (&self.closed_prompt, self.ctx.media.mode) {
                    (Some(p), _) => MediaSource::Once(p.clone()),
                    (None, mode) => match mode {
                        crate::config::MediaMode::Model => MediaSource::Model,
                        crate::config::MediaMode::Echo => MediaSource::Echo,
                        crate::config::MediaMode::Prompt => match &self.ctx.prompt {
                            Some(p) => MediaSource::Prompt(p.clone()),
                            None => MediaSource::Echo,
                        },
                    },
                };
                match MediaLeg::new(now, n, source, self.ctx.jitter, rand_seed(&lease)) {
                    Ok(m) => {
                        let mut m = m;
                        if self.end.as_deref() == Some("model_failure") {
                            // The model failed while the phone rang: answer with the fallback.
                            m.play_once(self.fallback.clone());
                        } else if self.ctx.model.is_some() && self.closed_prompt.is_none() {
                            self.codec = Some(codec_kind(n.codec));
                            match ModelBridge::new(self.agent.clone(), codec_kind(n.codec)) {
                                Ok(b) => self.bridge = Some(b),
                                Err(e) => warn!("model bridge setup failed: {e}"),
                            }
                        }
                        self.media = Some(m);
                        self.socket = Some(Arc::new(socket));
                        self.lease = Some(lease);
                        self.answered = Some(now);
                        crate::ops::metrics::call_answered(
                            now.saturating_duration_since(self.started),
                        );
                        self.record_start(&format!("{:?}", n.codec).to_uppercase());
                        self.submit(Record::CallAnswered {
                            id: self.id,
                            at: chrono::Utc::now(),
                        });
                        self.uas.answer(now, ans.sdp);
                    }
                    Err(e) => {
                        warn!("media setup failed: {e}");
                        self.uas.reject(now, 500, None);
                    }
                }
            }
            Err(e) => {
                info!("SDP offer rejected: {e}");
                self.uas.reject(now, e.status_code(), None);
            }
        }
    }

    pub(super) fn local_media(&self, port: u16) -> LocalMedia {
        LocalMedia {
            addr: self.ctx.advertised.ip(),
            port,
            codecs: self.ctx.codecs.clone(),
            ptime_ms: 20,
            session_id: u64::from(port) << 16 | (self.started.elapsed().as_nanos() as u64 & 0xffff),
            session_version: self.session_version,
            username: "voxgate".into(),
        }
    }

    pub(super) fn on_session_event(&mut self, ev: SessionEvent) {
        let now = Instant::now();
        match ev {
            SessionEvent::Confirmed => {
                debug!("ACK received: call confirmed");
                if let Some(m) = &mut self.media {
                    m.start(now);
                }
            }
            SessionEvent::Reoffer(offer) => {
                let Some(lease) = &self.lease else {
                    self.uas.reject_reoffer(now, 488);
                    return;
                };
                self.session_version += 1;
                let local = self.local_media(lease.port());
                let offer = if offer.is_empty() {
                    // Offerless re-INVITE: we cannot make a fresh offer yet; refuse politely.
                    self.uas.reject_reoffer(now, 488);
                    return;
                } else {
                    offer
                };
                match sdp::answer(&offer, &local) {
                    Ok(ans) => {
                        info!(direction = ?ans.negotiated.direction, codec = ?ans.negotiated.codec, "re-INVITE answered");
                        if let Some(m) = &mut self.media {
                            if let Err(e) = m.update(now, &ans.negotiated) {
                                warn!("re-INVITE media change failed: {e}");
                                self.uas.reject_reoffer(now, 488);
                                return;
                            }
                        }
                        self.uas.answer_reoffer(now, ans.sdp);
                    }
                    Err(e) => {
                        info!("re-INVITE offer rejected: {e}");
                        self.uas.reject_reoffer(now, e.status_code());
                    }
                }
            }
            SessionEvent::Info { content_type, body } => {
                if content_type.eq_ignore_ascii_case("application/dtmf-relay") {
                    let text = String::from_utf8_lossy(&body);
                    if let Some(d) = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Signal="))
                        .and_then(|s| s.trim().chars().next())
                    {
                        self.on_media_event(MediaEvent::Digit(d));
                    }
                }
            }
            SessionEvent::ReferAnswered(code) => self.on_refer_answered(code),
            SessionEvent::TransferProgress(code) => self.on_transfer_progress(code),
            SessionEvent::Ended(cause) => self.finish(cause),
        }
    }
}
