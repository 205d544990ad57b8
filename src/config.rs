//! Daemon configuration: built-in defaults, overridden by a YAML file, overridden by `VOXGATE_*`
//! environment variables (`VOXGATE_<SECTION>_<KEY>`, e.g. `VOXGATE_SIP_LISTEN`), plus the usual
//! `DATABASE_URL`. Every problem is reported as one line naming the key and, for the file, its
//! `file:line:col`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration that could not be loaded; the message is meant for the operator as is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or a key/value is wrong; `detail` carries line:column from the parser.
    #[error("{path}:{detail}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `line:col: message` (as precise as the parser allows).
        detail: String,
    },
    /// An environment override names an unknown key or carries a bad value.
    #[error("environment {var}: {message}")]
    Env {
        /// The variable, e.g. `VOXGATE_SIP_LISTEN`.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("{key}: {message}")]
    Semantic {
        /// Dotted key, e.g. `rtp.port_min`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The whole daemon configuration (see README "Configuration").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP signalling.
    pub sip: SipConfig,
    /// RTP media ports and timeouts.
    pub rtp: RtpConfig,
    /// What the caller hears while the model bridge is not in use.
    pub media: MediaConfig,
    /// The speech-to-speech model.
    pub model: ModelConfig,
    /// What the agent says and how (until dialplans own this per line).
    pub agent: AgentConfig,
    /// The call log.
    pub database: DatabaseConfig,
    /// Folder of dialplan YAML files.
    pub dialplans: PathBuf,
    /// Operations HTTP endpoint.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            media: MediaConfig::default(),
            model: ModelConfig::default(),
            agent: AgentConfig::default(),
            database: DatabaseConfig::default(),
            dialplans: PathBuf::from("dialplans"),
            http: HttpConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// SIP listener and admission settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for both UDP and TCP listeners.
    pub listen: SocketAddr,
    /// Address advertised in Contact/SDP when behind NAT; defaults to the listen address.
    pub public_addr: Option<std::net::IpAddr>,
    /// Source CIDRs allowed to send INVITEs (empty: everyone).
    pub allow_from: Vec<String>,
    /// Concurrent call limit; further INVITEs get 503 with Retry-After.
    pub max_calls: usize,
    /// Transports to listen on.
    pub transports: Vec<TransportName>,
    /// Codec preference for the SDP answer, best first.
    pub codecs: Vec<CodecName>,
    /// On SIGTERM, how long live calls may go on (new ones get 503) before they are hung up.
    pub drain_timeout: Secs,
    /// Per-source INVITE rate limit.
    pub rate_limit: RateLimitConfig,
    /// `User-Agent` fragments (case-insensitive) of scanners whose requests are dropped silently.
    pub block_user_agents: Vec<String>,
    /// Largest SIP message in bytes; larger requests get 513.
    #[serde(deserialize_with = "bounded::<_, 1024, 65535, _>")]
    pub max_message_size: usize,
    /// Most header lines in one message; more get 513.
    #[serde(deserialize_with = "bounded::<_, 10, 1000, _>")]
    pub max_headers: usize,
    /// Largest message body in bytes; larger get 413.
    #[serde(deserialize_with = "bounded::<_, 0, 65535, _>")]
    pub max_body_size: usize,
}

impl SipConfig {
    /// The admission-control settings for [`crate::sip::admission`].
    pub fn admission(&self) -> crate::sip::admission::AdmissionConfig {
        use crate::sip::admission::{AdmissionConfig, Cidr, RateAction};
        AdmissionConfig {
            allow_from: self
                .allow_from
                .iter()
                .filter_map(|c| Cidr::parse(c))
                .collect(),
            invites_per_second: self.rate_limit.invites_per_second,
            burst: self.rate_limit.burst,
            action: match self.rate_limit.action {
                RateLimitAction::Reject => RateAction::Reject,
                RateLimitAction::Drop => RateAction::Drop,
            },
            block_user_agents: self
                .block_user_agents
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            ..AdmissionConfig::default()
        }
    }

    /// The parser's size limits.
    pub fn limits(&self) -> crate::sip::message::Limits {
        crate::sip::message::Limits {
            max_message: self.max_message_size,
            max_headers: self.max_headers,
            max_body: self.max_body_size,
        }
    }
}

/// `sip.rate_limit`: a token bucket per source IP for new INVITEs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained INVITEs per second per source; 0 turns the limit off.
    pub invites_per_second: f64,
    /// INVITEs a source may send in one burst.
    #[serde(deserialize_with = "bounded::<_, 1, 100000, _>")]
    pub burst: u32,
    /// What an INVITE over the limit gets.
    pub action: RateLimitAction,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            invites_per_second: 20.0,
            burst: 40,
            action: RateLimitAction::Reject,
        }
    }
}

/// What an INVITE over the rate limit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitAction {
    /// 503 Service Unavailable with Retry-After.
    #[default]
    Reject,
    /// No answer at all.
    Drop,
}

/// Deserialises an integer and checks `LO <= n <= HI` (the parser adds file:line:col).
fn bounded<'de, D, const LO: u64, const HI: u64, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let n = u64::deserialize(d)?;
    if !(LO..=HI).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "{n} is out of range: use {LO} to {HI}"
        )));
    }
    T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_addr: None,
            allow_from: Vec::new(),
            max_calls: 500,
            transports: vec![TransportName::Udp, TransportName::Tcp],
            codecs: vec![CodecName::Pcmu, CodecName::Pcma, CodecName::Opus],
            drain_timeout: Secs(Duration::from_secs(30)),
            rate_limit: RateLimitConfig::default(),
            block_user_agents: crate::sip::admission::SCANNER_AGENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            max_message_size: 65535,
            max_headers: 100,
            max_body_size: 16384,
        }
    }
}

/// A SIP transport name as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportName {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

/// A codec name as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus 48 kHz.
    Opus,
}

/// RTP port range and media timeouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpConfig {
    /// Lowest RTP port (even).
    pub port_min: u16,
    /// Highest RTP port.
    pub port_max: u16,
    /// No RTP from the caller for this long (while not on hold) → BYE.
    pub timeout: Secs,
    /// Jitter buffer target delay.
    pub jitter: Secs,
}

impl Default for RtpConfig {
    fn default() -> Self {
        RtpConfig {
            port_min: 20000,
            port_max: 30000,
            timeout: Secs(Duration::from_secs(30)),
            jitter: Secs(Duration::from_millis(40)),
        }
    }
}

/// What the caller hears when no model is used (the foundation's test modes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// `echo` sends the caller's audio back; `prompt` plays `prompt` in a loop.
    pub mode: MediaMode,
    /// WAV file (mono PCM16, any rate) for `prompt` mode.
    pub prompt: Option<PathBuf>,
    /// Ring this long before answering (0 = answer at once, after 180 Ringing).
    pub answer_delay: Secs,
    /// Hang up with BYE after this long (0 = never); a safety net until dialplans own limits.
    pub max_call: Secs,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            mode: MediaMode::Model,
            prompt: None,
            answer_delay: Secs(Duration::ZERO),
            max_call: Secs(Duration::from_secs(3600)),
        }
    }
}

/// Media modes available without a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Put the speech-to-speech model on the line (the product).
    #[default]
    Model,
    /// Send the caller's audio straight back (two-way audio check).
    Echo,
    /// Play the configured WAV prompt to the caller.
    Prompt,
}

/// The Realtime model endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `wss://…`, `ws://…`, or `sim` for the built-in simulator.
    pub url: String,
    /// Model name sent to the server (configuration, never hard-coded in logic).
    pub name: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Script for the built-in simulator (`url: sim`); none: its default conversation.
    pub sim_script: Option<PathBuf>,
    /// How long the WebSocket handshake may take.
    pub connect_timeout: Secs,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            url: "wss://api.openai.com/v1/realtime".into(),
            name: "gpt-realtime".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            sim_script: None,
            connect_timeout: Secs(Duration::from_secs(5)),
        }
    }
}

/// The agent's words and voice, used for every call until dialplans set them per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Spoken as soon as the call is answered.
    pub greeting: String,
    /// System instructions for the model.
    pub instructions: String,
    /// Voice name.
    pub voice: String,
    /// Input transcription model (empty: no caller transcripts).
    pub transcription_model: String,
    /// No answer from the model for this long → fallback.
    pub response_timeout: Secs,
    /// WAV (mono 16-bit 8 kHz) played when the model fails, before hanging up; none: tones.
    pub fallback_prompt: Option<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            greeting: "Thanks for calling. How can I help you today?".into(),
            instructions: "You are a friendly, brief telephone agent. Speak in short sentences."
                .into(),
            voice: "marin".into(),
            transcription_model: "gpt-4o-mini-transcribe".into(),
            response_timeout: Secs(Duration::from_secs(10)),
            fallback_prompt: None,
        }
    }
}

/// The call-log database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Where records wait while the database is unreachable.
    pub spool_dir: PathBuf,
    /// Delete call events (transcripts, tool calls) older than this many days; 0 keeps them.
    /// Call rows stay as the audit trail.
    pub retention_days: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://voxgate.db".into(),
            spool_dir: "spool".into(),
            retention_days: 0,
        }
    }
}

/// The operations HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address for /metrics, /healthz and /readyz.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `voxgate=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A duration written as `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl Secs {
    /// Parses `30s`, `500ms`, `2m`, `1h` or `30`.
    pub fn parse(text: &str) -> Result<Secs, String> {
        let t = text.trim();
        let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
            Some(i) => t.split_at(i),
            None => (t, "s"),
        };
        let value: f64 = num
            .parse()
            .map_err(|_| format!("'{text}' is not a duration: write e.g. 30s, 500ms, 2m"))?;
        let secs = match unit.trim() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            other => {
                return Err(format!(
                    "unknown unit '{other}' in '{text}': use ms, s, m or h"
                ))
            }
        };
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("'{text}' is not a valid duration"));
        }
        Ok(Secs(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Secs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Secs::parse(&n.to_string()).map_err(serde::de::Error::custom),
            Raw::Text(t) => Secs::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (if given), then the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &vars)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Self::from_yaml(p, &text)?
            }
            None => Config::default(),
        };
        let config = config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses YAML text; `path` is only used in messages.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str::<Config>(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            detail: yaml_error_detail(&e),
        })
    }

    /// Applies `VOXGATE_<SECTION>_<KEY>` overrides and `DATABASE_URL`.
    fn apply_env(self, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut tree = serde_json::to_value(&self).map_err(|e| ConfigError::Semantic {
            key: "config".into(),
            message: e.to_string(),
        })?;
        for (var, value) in env {
            let path: Vec<String> = if var == "DATABASE_URL" {
                vec!["database".into(), "url".into()]
            } else if let Some(rest) = var.strip_prefix("VOXGATE_") {
                match env_path(&tree, rest) {
                    Some(p) => p,
                    None => {
                        return Err(ConfigError::Env {
                            var: var.clone(),
                            message: format!(
                                "no such setting; known sections: {}",
                                section_names(&tree).join(", ")
                            ),
                        })
                    }
                }
            } else {
                continue;
            };
            let parsed: serde_json::Value = if value.trim().is_empty() {
                serde_json::Value::Null
            } else {
                serde_saphyr::from_str(value)
                    .unwrap_or_else(|_| serde_json::Value::String(value.clone()))
            };
            // Keep strings strings: "5060" for a string field must not turn into a number.
            let slot = path
                .iter()
                .try_fold(&mut tree, |node, key| node.get_mut(key.as_str()));
            if let Some(slot) = slot {
                *slot = match (&*slot, parsed) {
                    (serde_json::Value::String(_), serde_json::Value::Number(_))
                    | (serde_json::Value::String(_), serde_json::Value::Bool(_)) => {
                        serde_json::Value::String(value.clone())
                    }
                    (_, v) => v,
                };
            }
            let check: Result<Config, _> = serde_json::from_value(tree.clone());
            if let Err(e) = check {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message: format!("bad value '{value}': {e}"),
                });
            }
        }
        serde_json::from_value(tree).map_err(|e| ConfigError::Semantic {
            key: "config".into(),
            message: e.to_string(),
        })
    }

    /// Checks values that parse but make no sense.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Semantic {
                key: key.into(),
                message,
            })
        };
        if self.rtp.port_min == 0 || self.rtp.port_min > self.rtp.port_max {
            return bad(
                "rtp.port_min",
                format!(
                    "range {}-{} is empty: port_min must be > 0 and <= port_max",
                    self.rtp.port_min, self.rtp.port_max
                ),
            );
        }
        if u32::from(self.rtp.port_max) - u32::from(self.rtp.port_min) < 2 {
            return bad(
                "rtp.port_max",
                "the range must hold at least one even RTP port and its RTCP port".into(),
            );
        }
        if self.sip.codecs.is_empty() {
            return bad("sip.codecs", "list at least one of pcmu, pcma, opus".into());
        }
        if self.sip.drain_timeout.0 > Duration::from_secs(24 * 3600) {
            return bad(
                "sip.drain_timeout",
                format!(
                    "{} is longer than a day: write e.g. 30s or 15m",
                    self.sip.drain_timeout
                ),
            );
        }
        if self.sip.transports.is_empty() {
            return bad("sip.transports", "list udp, tcp or both".into());
        }
        if self.media.mode == MediaMode::Model
            && self.model.url != "sim"
            && !self.model.url.starts_with("ws://")
            && !self.model.url.starts_with("wss://")
        {
            return bad(
                "model.url",
                format!(
                    "'{}' is not a model endpoint: use sim, ws://… or wss://…",
                    self.model.url
                ),
            );
        }
        if self.media.mode == MediaMode::Prompt && self.media.prompt.is_none() {
            return bad(
                "media.prompt",
                "media.mode is 'prompt' but no prompt file is set".into(),
            );
        }
        let rate = self.sip.rate_limit.invites_per_second;
        if !rate.is_finite() || rate < 0.0 {
            return bad(
                "sip.rate_limit.invites_per_second",
                format!("{rate} is not a rate: use 0 (no limit) or a positive number"),
            );
        }
        if self.sip.max_body_size > self.sip.max_message_size {
            return bad(
                "sip.max_body_size",
                format!(
                    "{} is larger than sip.max_message_size ({})",
                    self.sip.max_body_size, self.sip.max_message_size
                ),
            );
        }
        for cidr in &self.sip.allow_from {
            if !valid_cidr(cidr) {
                return bad(
                    "sip.allow_from",
                    format!("'{cidr}' is not an address or CIDR such as 10.0.0.0/8"),
                );
            }
        }
        Ok(())
    }
}

/// True if `text` is an IP address or an `addr/prefix` CIDR.
fn valid_cidr(text: &str) -> bool {
    crate::sip::admission::Cidr::parse(text).is_some()
}

/// Maps `SIP_LISTEN`, `RTP_PORT_MIN` or `SIP_RATE_LIMIT_BURST` onto a key path present in
/// `tree` (keys may contain `_`; nested sections are followed, and a whole section may be set).
fn env_path(tree: &serde_json::Value, rest: &str) -> Option<Vec<String>> {
    fn walk(node: &serde_json::Value, rest: &str, top: bool) -> Option<Vec<String>> {
        let obj = node.as_object()?;
        if let Some(v) = obj.get(rest) {
            // A top-level section is set key by key; nested ones may be set whole.
            if !(top && v.is_object()) {
                return Some(vec![rest.to_string()]);
            }
        }
        obj.iter()
            .filter(|(_, v)| v.is_object())
            .find_map(|(key, v)| {
                let tail = rest.strip_prefix(key.as_str())?.strip_prefix('_')?;
                let mut path = walk(v, tail, false)?;
                path.insert(0, key.clone());
                Some(path)
            })
    }
    walk(tree, &rest.to_ascii_lowercase(), true)
}

/// Top-level section names, for error messages.
fn section_names(tree: &serde_json::Value) -> Vec<String> {
    tree.as_object()
        .map(|o| o.keys().map(|k| k.to_ascii_uppercase()).collect())
        .unwrap_or_default()
}

/// Turns a serde-saphyr error into `line:col: message` on one line.
pub fn yaml_error_detail(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    match e.location() {
        Some(loc) => format!("{}:{}: {}", loc.line(), loc.column(), strip_loc(first)),
        None => format!(" {first}"),
    }
}

/// Removes the location the parser writes into its message ("error: line X column Y: …",
/// "… at line X column Y"), as we print it in front in the `file:line:col` form.
fn strip_loc(text: &str) -> &str {
    let mut t = text.trim();
    t = t.strip_prefix("error:").map(str::trim_start).unwrap_or(t);
    if let Some(rest) = t.strip_prefix("line ") {
        if let Some(i) = rest.find(": ") {
            t = &rest[i + 2..];
        }
    }
    match t.find(" at line ") {
        Some(i) => &t[..i],
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_design() {
        let c = Config::default();
        assert_eq!(c.sip.listen.to_string(), "0.0.0.0:5060");
        assert_eq!(c.sip.max_calls, 500);
        assert_eq!(c.sip.drain_timeout, Secs(Duration::from_secs(30)));
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (20000, 30000));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(c.database.url, "sqlite://voxgate.db");
        assert_eq!(c.dialplans, PathBuf::from("dialplans"));
    }

    #[test]
    fn yaml_then_env_override() {
        let c = Config::from_yaml(
            Path::new("v.yaml"),
            "sip:\n  listen: 127.0.0.1:5070\nrtp:\n  port_min: 40000\n  port_max: 40100\n",
        )
        .expect("valid yaml");
        let c = c
            .apply_env(&env(&[
                ("VOXGATE_SIP_LISTEN", "127.0.0.1:5080"),
                ("VOXGATE_RTP_TIMEOUT", "5s"),
                ("VOXGATE_SIP_MAX_CALLS", "7"),
                ("VOXGATE_SIP_DRAIN_TIMEOUT", "2m"),
                ("DATABASE_URL", "postgres://x/y"),
                ("PATH", "/bin"),
            ]))
            .expect("env applies");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5080");
        assert_eq!(c.rtp.port_min, 40000);
        assert_eq!(c.rtp.timeout, Secs(Duration::from_secs(5)));
        assert_eq!(c.sip.max_calls, 7);
        assert_eq!(c.sip.drain_timeout, Secs(Duration::from_secs(120)));
        assert_eq!(c.database.url, "postgres://x/y");
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = Config::from_yaml(Path::new("v.yaml"), "sip:\n  lisen: 1.2.3.4:5\n")
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.starts_with("v.yaml:2:"), "{msg}");
        assert!(msg.contains("lisen"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }

    #[test]
    fn bad_value_is_reported() {
        let err = Config::from_yaml(Path::new("v.yaml"), "rtp:\n  port_min: lots\n")
            .expect_err("bad value");
        assert!(err.to_string().starts_with("v.yaml:2:"), "{err}");
    }

    #[test]
    fn unknown_env_is_reported() {
        let err = Config::default()
            .apply_env(&env(&[("VOXGATE_SIP_LISTN", "x")]))
            .expect_err("unknown env");
        assert!(err.to_string().contains("VOXGATE_SIP_LISTN"), "{err}");
        let err = Config::default()
            .apply_env(&env(&[("VOXGATE_SIP_LISTEN", "nowhere")]))
            .expect_err("bad env value");
        assert!(err.to_string().contains("bad value"), "{err}");
    }

    #[test]
    fn admission_keys_from_yaml_and_env() {
        let c = Config::from_yaml(
            Path::new("v.yaml"),
            "sip:\n  rate_limit: { invites_per_second: 5, burst: 10, action: drop }\n  max_headers: 60\n",
        )
        .expect("valid yaml");
        assert_eq!(c.sip.rate_limit.burst, 10);
        assert_eq!(c.sip.rate_limit.action, RateLimitAction::Drop);
        assert_eq!(c.sip.max_headers, 60);
        assert_eq!(c.sip.max_body_size, 16384, "default kept");
        let c = c
            .apply_env(&env(&[
                ("VOXGATE_SIP_RATE_LIMIT_INVITES_PER_SECOND", "2.5"),
                ("VOXGATE_SIP_RATE_LIMIT_ACTION", "reject"),
                ("VOXGATE_SIP_MAX_BODY_SIZE", "4096"),
                ("VOXGATE_SIP_BLOCK_USER_AGENTS", "[evil-scanner]"),
            ]))
            .expect("env applies");
        assert_eq!(c.sip.rate_limit.invites_per_second, 2.5);
        assert_eq!(c.sip.rate_limit.action, RateLimitAction::Reject);
        assert_eq!(c.sip.rate_limit.burst, 10);
        assert_eq!(c.sip.max_body_size, 4096);
        assert_eq!(c.sip.admission().block_user_agents, ["evil-scanner"]);
        let c = Config::default()
            .apply_env(&env(&[(
                "VOXGATE_SIP_RATE_LIMIT",
                "{ invites_per_second: 0, burst: 1 }",
            )]))
            .expect("a whole nested section");
        assert_eq!(c.sip.rate_limit.invites_per_second, 0.0);
        let err = Config::default()
            .apply_env(&env(&[("VOXGATE_SIP_RATE_LIMIT_BURSTS", "3")]))
            .expect_err("unknown nested key");
        assert!(
            err.to_string().contains("VOXGATE_SIP_RATE_LIMIT_BURSTS"),
            "{err}"
        );
        let err = Config::default()
            .apply_env(&env(&[("VOXGATE_SIP", "{}")]))
            .expect_err("a top-level section is not a key");
        assert!(err.to_string().contains("no such setting"), "{err}");
    }

    #[test]
    fn admission_values_are_checked_with_their_line() {
        let err = Config::from_yaml(
            Path::new("v.yaml"),
            "sip:\n  listen: 127.0.0.1:5070\n  max_message_size: 100000\n",
        )
        .expect_err("out of range");
        let msg = err.to_string();
        assert!(msg.starts_with("v.yaml:3:"), "{msg}");
        assert!(msg.contains("1024 to 65535"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
        let err = Config::from_yaml(
            Path::new("v.yaml"),
            "sip:\n  rate_limit:\n    action: maybe\n",
        )
        .expect_err("bad action");
        assert!(err.to_string().starts_with("v.yaml:3:"), "{err}");
        let err = Config::default()
            .apply_env(&env(&[("VOXGATE_SIP_MAX_HEADERS", "3")]))
            .expect_err("bad env value");
        assert!(err.to_string().contains("VOXGATE_SIP_MAX_HEADERS"), "{err}");
        let mut c = Config::default();
        c.sip.max_body_size = 65535;
        c.sip.max_message_size = 2000;
        let err = c.validate().expect_err("body > message");
        assert!(err.to_string().starts_with("sip.max_body_size:"), "{err}");
        let mut c = Config::default();
        c.sip.rate_limit.invites_per_second = -1.0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn semantic_checks() {
        let mut c = Config::default();
        c.rtp.port_min = 5000;
        c.rtp.port_max = 4000;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.sip.allow_from = vec!["10.0.0.0/33".into()];
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.sip.drain_timeout = Secs(Duration::from_secs(2 * 24 * 3600));
        let err = c.validate().expect_err("two days");
        assert!(err.to_string().starts_with("sip.drain_timeout:"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            Secs::parse("500ms").ok(),
            Some(Secs(Duration::from_millis(500)))
        );
        assert_eq!(Secs::parse("2m").ok(), Some(Secs(Duration::from_secs(120))));
        assert_eq!(Secs::parse("30").ok(), Some(Secs(Duration::from_secs(30))));
        assert!(Secs::parse("soon").is_err());
    }
}
