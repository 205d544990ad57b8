//! Responses: turn selection, paced audio with transcript deltas, function calls, and the
//! `response.done` that ends each one (completed, or cancelled by barge-in / `response.cancel`).

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::{Output, SimConn};
use crate::model::protocol::*;
use crate::model::sim::script::{Failure, FunctionCallScript, Turn};
use crate::model::sim::stats::ConnStats;

/// What started a response; only an explicit first `response.create` speaks the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// `response.create` from the client.
    Explicit,
    /// Server VAD at the end of caller speech (`create_response`).
    Vad,
}

/// The response being streamed.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: String,
    pub(super) format: AudioFormat,
    pub(super) reply: String,
    pub(super) function_call: Option<FunctionCallScript>,
    /// The assistant audio item, when the turn speaks.
    pub(super) message_item: Option<String>,
    pub(super) ticket: u64,
    /// Encoded reply audio, once synthesized.
    pub(super) audio: Option<Vec<u8>>,
    pub(super) sent: usize,
    pub(super) audio_done: bool,
    pub(super) words: Vec<String>,
    pub(super) words_sent: usize,
    pub(super) next_at: Option<Instant>,
    pub(super) output: Vec<Item>,
}

impl SimConn {
    pub(super) fn next_turn(&mut self, trigger: Trigger) -> Turn {
        let first = self.responses == 0;
        self.responses += 1;
        if let (true, Trigger::Explicit, Some(greeting)) =
            (first, trigger, &self.script.greeting_reply)
        {
            return Turn {
                reply: Some(greeting.clone()),
                ..Turn::default()
            };
        }
        match self.script.turns.get(self.turn_index) {
            Some(turn) => {
                self.turn_index += 1;
                turn.clone()
            }
            None => Turn {
                reply: Some(self.script.default_reply.clone()),
                ..Turn::default()
            },
        }
    }

    pub(super) fn start_response(&mut self, now: Instant, trigger: Trigger) {
        let turn = self.next_turn(trigger);
        match turn.fail {
            Some(Failure::Close) => {
                self.closed = true;
                self.out.push_back(Output::Close {
                    code: 1011,
                    reason: "simulated failure".into(),
                });
                return;
            }
            Some(Failure::Error) => {
                let msg =
                    "The server had an error while processing your request (simulated).".into();
                return self.error("server_error", "server_error", msg, None, None);
            }
            Some(Failure::Hang) => {
                self.hung = true;
                return;
            }
            Some(Failure::Garbage) => {
                self.out
                    .push_back(Output::Text("{\"type\": \"response.created\", oops".into()));
                self.hung = true;
                return;
            }
            None => {}
        }
        let id = self.new_id("resp");
        ConnStats::bump(&self.stats.responses_created, 1);
        self.send(ServerEvent::ResponseCreated(Box::new(ResponseEvent {
            response: Response {
                id: id.clone(),
                conversation_id: Some("conv_sim".into()),
                ..Response::default()
            },
        })));
        let reply = turn
            .reply
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_default();
        let mut active = Active {
            id: id.clone(),
            format: self.output_format,
            words: reply.split_whitespace().map(str::to_owned).collect(),
            reply,
            function_call: turn.function_call,
            message_item: None,
            ticket: 0,
            audio: None,
            sent: 0,
            audio_done: true,
            words_sent: 0,
            next_at: None,
            output: Vec::new(),
        };
        if !active.reply.is_empty() {
            let item_id = self.new_id("item");
            let item = Item::Message {
                id: Some(item_id.clone()),
                role: Role::Assistant,
                content: vec![],
                status: Some(ItemStatus::InProgress),
            };
            self.send(ServerEvent::OutputItemAdded(OutputItemEvent {
                response_id: id.clone(),
                output_index: 0,
                item: item.clone(),
            }));
            let previous_item_id = self.last_item.replace(item_id.clone());
            self.send(ServerEvent::ItemAdded(ItemEvent {
                item,
                previous_item_id,
            }));
            self.send(ServerEvent::ContentPartAdded(ContentPartEvent {
                response_id: id,
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
                part: Part {
                    kind: "audio".into(),
                    text: None,
                    transcript: Some(String::new()),
                },
            }));
            self.audio_items.insert(item_id.clone(), 0);
            active.message_item = Some(item_id);
            active.audio_done = false;
            active.ticket = self.ids;
            self.out.push_back(Output::Synthesize {
                ticket: active.ticket,
                text: active.reply.clone(),
                rate: active.format.sample_rate(),
            });
        }
        self.response = Some(active);
        self.advance(now);
    }

    /// Streams the next audio chunk when due; finishes the response when all is sent.
    pub(super) fn advance(&mut self, now: Instant) {
        let Some(mut r) = self.response.take() else {
            return;
        };
        if !r.audio_done {
            let (Some(audio), Some(item_id), Some(due)) =
                (&r.audio, r.message_item.clone(), r.next_at)
            else {
                self.response = Some(r); // waiting for synthesis
                return;
            };
            if now < due {
                self.response = Some(r);
                return;
            }
            let pace = self.script.pace;
            let chunk_ms = pace.chunk_ms.clamp(20, 100) as u64;
            let chunk = (chunk_ms * r.format.bytes_per_ms()) as usize;
            let end = (r.sent + chunk).min(audio.len());
            let delta = base64::engine::general_purpose::STANDARD.encode(&audio[r.sent..end]);
            let total = audio.len();
            r.sent = end;
            let part = |delta: String| TextDelta {
                response_id: r.id.clone(),
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
                delta,
            };
            self.out
                .push_back(Output::Send(ServerEvent::OutputAudioDelta(
                    OutputAudioDelta {
                        response_id: r.id.clone(),
                        item_id: item_id.clone(),
                        output_index: 0,
                        content_index: 0,
                        delta,
                    },
                )));
            let target = (r.words.len() * end).div_ceil(total.max(1));
            while r.words_sent < target {
                let sep = if r.words_sent + 1 < r.words.len() {
                    " "
                } else {
                    ""
                };
                let text = format!("{}{sep}", r.words[r.words_sent]);
                self.out
                    .push_back(Output::Send(ServerEvent::OutputAudioTranscriptDelta(part(
                        text,
                    ))));
                r.words_sent += 1;
            }
            self.audio_items
                .insert(item_id.clone(), r.format.bytes_to_ms(end as u64));
            if end < total {
                let step = Duration::from_secs_f64(
                    chunk_ms as f64 / 1000.0 / pace.speedup.max(0.1) as f64,
                );
                r.next_at = Some(due + step);
                self.response = Some(r);
                return;
            }
            self.finish_audio(&mut r, ItemStatus::Completed);
        }
        if let Some(call) = r.function_call.take() {
            self.function_call(&mut r, call);
        }
        self.done(r, ResponseStatus::Completed, None);
    }

    pub(super) fn finish_audio(&mut self, r: &mut Active, status: ItemStatus) {
        let Some(item_id) = r.message_item.clone() else {
            return;
        };
        r.audio_done = true;
        let transcript = r.words[..r.words_sent].join(" ");
        let (response_id, index) = (r.id.clone(), (0, 0));
        self.send(ServerEvent::OutputAudioTranscriptDone(TranscriptDone {
            response_id: response_id.clone(),
            item_id: item_id.clone(),
            output_index: index.0,
            content_index: index.1,
            transcript: transcript.clone(),
        }));
        self.send(ServerEvent::OutputAudioDone(PartRef {
            response_id: response_id.clone(),
            item_id: item_id.clone(),
            output_index: 0,
            content_index: 0,
        }));
        self.send(ServerEvent::ContentPartDone(ContentPartEvent {
            response_id: response_id.clone(),
            item_id: item_id.clone(),
            output_index: 0,
            content_index: 0,
            part: Part {
                kind: "audio".into(),
                text: None,
                transcript: Some(transcript.clone()),
            },
        }));
        let item = Item::Message {
            id: Some(item_id),
            role: Role::Assistant,
            content: vec![ContentPart::OutputAudio {
                audio: None,
                transcript: Some(transcript),
            }],
            status: Some(status),
        };
        self.send(ServerEvent::OutputItemDone(OutputItemEvent {
            response_id,
            output_index: 0,
            item: item.clone(),
        }));
        self.send(ServerEvent::ItemDone(ItemEvent {
            item: item.clone(),
            previous_item_id: None,
        }));
        r.output.push(item);
    }

    pub(super) fn function_call(&mut self, r: &mut Active, call: FunctionCallScript) {
        let item_id = self.new_id("item");
        let call_id = self.new_id("call");
        let output_index = r.output.len() as u32;
        let arguments = match call.arguments {
            Value::Null => "{}".to_owned(),
            other => other.to_string(),
        };
        let item = |arguments: String, status| Item::FunctionCall {
            id: Some(item_id.clone()),
            call_id: call_id.clone(),
            name: call.name.clone(),
            arguments,
            status: Some(status),
        };
        let added = item(String::new(), ItemStatus::InProgress);
        self.send(ServerEvent::OutputItemAdded(OutputItemEvent {
            response_id: r.id.clone(),
            output_index,
            item: added.clone(),
        }));
        let previous_item_id = self.last_item.replace(item_id.clone());
        self.send(ServerEvent::ItemAdded(ItemEvent {
            item: added,
            previous_item_id,
        }));
        let mut split = arguments.len() / 2;
        while !arguments.is_char_boundary(split) {
            split -= 1;
        }
        for piece in [&arguments[..split], &arguments[split..]] {
            self.send(ServerEvent::FunctionCallArgumentsDelta(
                FunctionCallArgumentsDelta {
                    response_id: r.id.clone(),
                    item_id: item_id.clone(),
                    output_index,
                    call_id: call_id.clone(),
                    delta: piece.to_owned(),
                },
            ));
        }
        self.send(ServerEvent::FunctionCallArgumentsDone(
            FunctionCallArgumentsDone {
                response_id: r.id.clone(),
                item_id: item_id.clone(),
                output_index,
                call_id: call_id.clone(),
                name: Some(call.name.clone()),
                arguments: arguments.clone(),
            },
        ));
        let done = item(arguments, ItemStatus::Completed);
        self.send(ServerEvent::OutputItemDone(OutputItemEvent {
            response_id: r.id.clone(),
            output_index,
            item: done.clone(),
        }));
        self.send(ServerEvent::ItemDone(ItemEvent {
            item: done.clone(),
            previous_item_id: None,
        }));
        r.output.push(done);
    }

    pub(super) fn cancel(&mut self, reason: &str) {
        let Some(mut r) = self.response.take() else {
            return;
        };
        if !r.audio_done {
            self.finish_audio(&mut r, ItemStatus::Incomplete);
        }
        let details = StatusDetails {
            kind: Some("cancelled".into()),
            reason: Some(reason.into()),
            error: None,
        };
        self.done(r, ResponseStatus::Cancelled, Some(details));
    }

    pub(super) fn done(
        &mut self,
        r: Active,
        status: ResponseStatus,
        status_details: Option<StatusDetails>,
    ) {
        let counter = match status {
            ResponseStatus::Cancelled => &self.stats.responses_cancelled,
            _ => &self.stats.responses_completed,
        };
        ConnStats::bump(counter, 1);
        let audio_ms = r.format.bytes_to_ms(r.sent as u64);
        let output_tokens = audio_ms / 50 + r.words_sent as u64;
        let input_tokens = 100 + 20 * self.responses;
        let usage = Usage {
            total_tokens: input_tokens + output_tokens,
            input_tokens,
            output_tokens,
            input_token_details: Some(TokenDetails {
                text_tokens: Some(100),
                audio_tokens: Some(input_tokens - 100),
                cached_tokens: Some(0),
                image_tokens: Some(0),
            }),
            output_token_details: Some(TokenDetails {
                text_tokens: Some(r.words_sent as u64),
                audio_tokens: Some(audio_ms / 50),
                ..TokenDetails::default()
            }),
        };
        self.send(ServerEvent::ResponseDone(Box::new(ResponseEvent {
            response: Response {
                id: r.id,
                status,
                status_details,
                output: r.output,
                usage: Some(usage),
                conversation_id: Some("conv_sim".into()),
            },
        })));
        let limit = |name: &str, limit: u64, used: u64| RateLimit {
            name: name.into(),
            limit,
            remaining: limit.saturating_sub(used),
            reset_seconds: 60.0,
        };
        let limits = vec![
            limit("requests", 5000, self.responses),
            limit("tokens", 400_000, input_tokens + output_tokens),
        ];
        self.send(ServerEvent::RateLimitsUpdated(RateLimitsUpdated {
            rate_limits: limits,
        }));
    }
}
