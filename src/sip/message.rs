//! SIP message helpers over rsip: robust parsing (RFC 3261 §7, §18.3, §20 compact forms and
//! line folding), the mandatory-header check, base-header extraction, response building, `Via`
//! `received`/`rport` (RFC 3261 §18.2.1, RFC 3581) and TCP stream framing.
//!
//! rsip parses a canonical message well but knows no compact header names (`v:`, `i:`, …),
//! folded lines or comma-joined `Via` values, and takes everything after the blank line as the
//! body. [`parse`] therefore canonicalises the header block first, applies `Content-Length`, and
//! only then hands the bytes to rsip — inside `catch_unwind`, so a parser bug on hostile input
//! costs one message, never the socket task. Left out: multipart bodies are passed through
//! untouched; S/MIME; header values are not re-validated beyond what rsip's typed parse checks.

use std::net::SocketAddr;

use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

/// Largest SIP message we accept (UDP datagram or one framed TCP message).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most header lines we accept in one message (default of [`Limits::max_headers`]).
pub const MAX_HEADERS: usize = 100;
/// Largest body we accept (default of [`Limits::max_body`]); SDP offers are a few hundred bytes.
pub const MAX_BODY: usize = 16 * 1024;
/// The `Server`/`User-Agent` value we send.
pub const PRODUCT: &str = concat!("voxgate/", env!("CARGO_PKG_VERSION"));
/// Methods we answer, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

/// A message that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// What is wrong, for logs and the 400 reason phrase.
    pub reason: String,
    /// A ready-made `400 Bad Request` when the message was a request with enough headers to
    /// address one (Via, From, To, Call-ID, CSeq); `None` means drop silently.
    pub response: Option<Vec<u8>>,
}

/// The mandatory headers of a request, extracted once when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseHeaders {
    /// Call-ID value.
    pub call_id: String,
    /// From tag (the caller's dialog tag); empty if absent.
    pub from_tag: String,
    /// To tag; `None` outside a dialog.
    pub to_tag: Option<String>,
    /// CSeq sequence number.
    pub cseq: u32,
    /// CSeq method.
    pub cseq_method: Method,
}

/// Size limits applied while parsing (`sip.max_message_size`, `max_headers`, `max_body_size`).
/// A request over one is answered 513 (message or header count) or 413 (body), never parsed
/// further; a response over one is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message in bytes (at most [`MAX_MESSAGE`], the transports' own cap).
    pub max_message: usize,
    /// Most header lines (after unfolding).
    pub max_headers: usize,
    /// Largest body in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: MAX_MESSAGE - 1,
            max_headers: MAX_HEADERS,
            max_body: MAX_BODY,
        }
    }
}

/// Parses one SIP message (a UDP datagram or one framed TCP message) with the default limits.
pub fn parse(raw: &[u8]) -> Result<SipMessage, ParseError> {
    parse_with(raw, &Limits::default())
}

/// Parses one SIP message, refusing it when it exceeds `limits`.
pub fn parse_with(raw: &[u8], limits: &Limits) -> Result<SipMessage, ParseError> {
    if raw.len() > limits.max_message.min(MAX_MESSAGE) {
        return Err(too_large(raw, 513, "Message Too Large"));
    }
    if let Some((code, reason)) = request_line_problem(raw) {
        return Err(ParseError {
            reason: reason.clone(),
            response: minimal_response(raw, code, &reason),
        });
    }
    if let Some(method) = unknown_method(raw) {
        return Err(ParseError {
            reason: format!("method {method} not implemented"),
            response: minimal_response(raw, 501, "Not Implemented"),
        });
    }
    let canonical = canonicalise(raw, limits)?;
    let parsed = std::panic::catch_unwind(|| SipMessage::try_from(canonical.as_slice()));
    let msg = match parsed {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err(bad(raw, &format!("unparseable message: {e}"))),
        Err(_) => return Err(bad(raw, "unparseable message")),
    };
    check(&msg).map_err(|reason| bad(raw, &reason))?;
    Ok(msg)
}

/// Returns the base headers of a request or response (already checked by [`parse`]).
pub fn base(msg: &SipMessage) -> Result<BaseHeaders, String> {
    let call_id = msg
        .call_id_header()
        .map_err(|e| e.to_string())?
        .value()
        .trim()
        .to_string();
    let from = msg
        .from_header()
        .map_err(|e| e.to_string())?
        .typed()
        .map_err(|e| format!("bad From: {e}"))?;
    let to = msg
        .to_header()
        .map_err(|e| e.to_string())?
        .typed()
        .map_err(|e| format!("bad To: {e}"))?;
    let cseq = msg
        .cseq_header()
        .map_err(|e| e.to_string())?
        .typed()
        .map_err(|e| format!("bad CSeq: {e}"))?;
    Ok(BaseHeaders {
        call_id,
        from_tag: from.tag().map(|t| t.to_string()).unwrap_or_default(),
        to_tag: to.tag().map(|t| t.to_string()),
        cseq: cseq.seq,
        cseq_method: cseq.method,
    })
}

/// Builds a response to `req` (RFC 3261 §8.2.6): copies Via, From, To, Call-ID and CSeq, adds
/// `to_tag` to To when it has none, and a zero Content-Length unless a body is set later.
pub fn response(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::default();
    for h in req.headers().iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => {
                let mut value = to.value().to_string();
                if let Some(tag) = to_tag {
                    if code > 100 && !has_tag(&value) {
                        value.push_str(";tag=");
                        value.push_str(tag);
                    }
                }
                headers.push(Header::To(rsip::headers::To::new(value)));
            }
            _ => {}
        }
    }
    headers.push(Header::Server(rsip::headers::Server::new(PRODUCT)));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::from(0)));
    Response {
        status_code: StatusCode::from(code),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Sets the body and its Content-Type/Content-Length on a response.
pub fn set_body(resp: &mut Response, content_type: &str, body: Vec<u8>) {
    resp.headers
        .retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    resp.headers
        .push(Header::ContentType(rsip::headers::ContentType::new(
            content_type,
        )));
    resp.headers
        .push(Header::ContentLength(rsip::headers::ContentLength::from(
            body.len() as u32,
        )));
    resp.body = body;
}

/// Adds a header given by name and value.
pub fn add_header(headers: &mut Headers, name: &str, value: &str) {
    headers.push(Header::Other(name.to_string(), value.to_string()));
}

/// RFC 3261 §18.2.1 / RFC 3581: stamps the top Via of a received request with `received`
/// (when the source IP differs from sent-by) and fills an empty `rport` with the source port,
/// so responses — sent to the packet's source — also name it.
pub fn stamp_via(req: &mut Request, src: SocketAddr) {
    let Some(pos) = req.headers.iter().position(|h| matches!(h, Header::Via(_))) else {
        return;
    };
    let Some(Header::Via(via)) = req.headers.iter().nth(pos) else {
        return;
    };
    let value = via.value().to_string();
    let mut out = String::with_capacity(value.len() + 40);
    let mut parts = value.split(';');
    let sent = parts.next().unwrap_or_default().trim_end();
    out.push_str(sent);
    let sent_host = sent
        .split_whitespace()
        .nth(1)
        .map(|hp| host_of(hp).to_string())
        .unwrap_or_default();
    let mut have_received = false;
    for p in parts {
        let p = p.trim();
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("rport") {
            out.push_str(&format!(";rport={}", src.port()));
        } else if name.eq_ignore_ascii_case("received") {
            have_received = true;
            out.push_str(&format!(";received={}", src.ip()));
        } else {
            out.push(';');
            out.push_str(p);
        }
    }
    if !have_received && sent_host != src.ip().to_string() {
        out.push_str(&format!(";received={}", src.ip()));
    }
    let mut headers: Vec<Header> = std::mem::take(&mut req.headers).into();
    headers[pos] = Header::Via(rsip::headers::Via::new(out));
    req.headers = headers.into();
}

/// Length of the first complete message in a TCP byte stream: `Ok(None)` until the header
/// block and the body announced by `Content-Length` have arrived. Leading CRLF keep-alives
/// (RFC 5626 §3.5.1) are reported as a message of only those bytes.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let ws = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if ws > 0 {
        return Ok(Some(ws));
    }
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_MESSAGE {
            return Err("header block too large".into());
        }
        return Ok(None);
    };
    let head = &buf[..end];
    let mut length = None;
    for line in head.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(line);
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad Content-Length '{}'", value.trim()))?,
                );
            }
        }
    }
    // RFC 3261 §18.3: over a stream transport Content-Length is mandatory.
    let length = length.ok_or("missing Content-Length on a stream transport")?;
    if length > MAX_MESSAGE {
        return Err("body too large".into());
    }
    let total = end + 4 + length;
    Ok((buf.len() >= total).then_some(total))
}

/// True if the bytes are only CRLF keep-alives.
pub fn is_keepalive(raw: &[u8]) -> bool {
    !raw.is_empty()
        && raw
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn has_tag(to_value: &str) -> bool {
    // A tag param sits after the URI (outside <>) — look past the closing '>' if any.
    let params = match to_value.rfind('>') {
        Some(i) => &to_value[i..],
        None => to_value,
    };
    params
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
}

fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    hostport.split(':').next().unwrap_or(hostport)
}

fn drop_err(reason: &str) -> ParseError {
    ParseError {
        reason: reason.to_string(),
        response: None,
    }
}

/// A request over one of the [`Limits`]: answered with `code` when it can be addressed.
fn too_large(raw: &[u8], code: u16, reason: &str) -> ParseError {
    ParseError {
        reason: reason.to_ascii_lowercase(),
        response: minimal_response(raw, code, reason),
    }
}

fn bad(raw: &[u8], reason: &str) -> ParseError {
    ParseError {
        reason: reason.to_string(),
        response: minimal_response(raw, 400, reason),
    }
}

/// A request line with a SIP version other than 2.0 (→ 505, RFC 3261 §8.2.2... §21.5.7) or a
/// Request-URI scheme other than sip/sips/tel (→ 416, §8.2.2.1).
fn request_line_problem(raw: &[u8]) -> Option<(u16, String)> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let (method, uri, version) = (words.next()?, words.next()?, words.next()?);
    if method.starts_with("SIP/") {
        return None; // a response
    }
    if version.starts_with("SIP/") && !version.eq_ignore_ascii_case("SIP/2.0") {
        return Some((505, "Version Not Supported".into()));
    }
    let scheme = uri.split(':').next()?.to_ascii_lowercase();
    if uri.contains(':') && !["sip", "sips", "tel"].contains(&scheme.as_str()) {
        return Some((416, "Unsupported URI Scheme".into()));
    }
    None
}

/// The method of a request line that is a valid token but not one rsip (and so we) know.
fn unknown_method(raw: &[u8]) -> Option<String> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    let mut words = line.split(' ');
    let (method, _uri, version) = (words.next()?, words.next()?, words.next()?);
    if !version.starts_with("SIP/") || method.is_empty() {
        return None;
    }
    let token = method
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
    let known = Method::all().iter().any(|m| m.to_string() == method);
    (token && !known).then(|| method.to_string())
}

/// Full compact-form table of RFC 3261 §7.3.3 and later RFCs.
fn expand_compact(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "e" => "Content-Encoding",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "f" => "From",
        "s" => "Subject",
        "k" => "Supported",
        "t" => "To",
        "v" => "Via",
        "o" => "Event",
        "r" => "Refer-To",
        "b" => "Referred-By",
        "u" => "Allow-Events",
        "x" => "Session-Expires",
        _ => name,
    }
}

/// Splits a header block into logical `(name, value)` lines: unfolds continuations, expands
/// compact names, trims the whitespace around ':'. Returns `None` for a line with no colon.
fn header_lines(head: &str, max_headers: usize) -> Result<Vec<(String, String)>, HeaderError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match out.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => {
                    return Err(HeaderError::Bad(
                        "header block starts with a continuation line".into(),
                    ))
                }
            }
            continue;
        }
        if out.len() >= max_headers {
            return Err(HeaderError::TooMany);
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            HeaderError::Bad(format!("header line without ':': '{}'", truncate(line)))
        })?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(HeaderError::Bad(format!(
                "bad header name '{}'",
                truncate(name)
            )));
        }
        out.push((expand_compact(name).to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// Why a header block was refused.
enum HeaderError {
    /// Malformed (→ 400).
    Bad(String),
    /// More lines than [`Limits::max_headers`] (→ 513).
    TooMany,
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Splits a comma-joined header value at commas outside quotes and angle brackets.
fn split_commas(value: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted, mut angle) = (Vec::new(), String::new(), false, false);
    let mut escaped = false;
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                parts.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur.trim().to_string());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Removes linear white space around `;` and `=` (and around `/` in Via's sent-protocol)
/// outside quoted strings (RFC 3261 §7.3.1 allows it; rsip's typed parsers do not).
fn tidy_params(value: &str, via: bool) -> String {
    let seps: &[char] = if via { &[';', '=', '/'] } else { &[';', '='] };
    let mut out = String::with_capacity(value.len());
    let (mut quoted, mut escaped) = (false, false);
    let mut pending_ws = false;
    for c in value.chars() {
        if quoted {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        if c == ' ' || c == '\t' {
            pending_ws = true;
            continue;
        }
        if seps.contains(&c) {
            pending_ws = false;
            out.push(c);
            // Swallow white space after the separator too.
            continue;
        }
        if pending_ws && !out.is_empty() && !out.ends_with(seps) {
            out.push(' ');
        }
        pending_ws = false;
        if c == '"' {
            quoted = true;
        }
        out.push(c);
    }
    out
}

/// Escapes `;` and `=` inside the user part of a request line's URI
/// (`sip:user;par=x@host` → `sip:user%3Bpar%3Dx@host`, equivalent per RFC 3261 §19.1.4),
/// which rsip's URI parser would otherwise take as URI parameters.
fn escape_user_params(start_line: &str) -> String {
    let mut words = start_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return start_line.to_string();
    };
    let Some((scheme, rest)) = uri.split_once(':') else {
        return start_line.to_string();
    };
    match rest.rfind('@') {
        Some(at) if rest[..at].contains(';') => {
            let user = rest[..at].replace(';', "%3B").replace('=', "%3D");
            format!("{method} {scheme}:{user}{} {version}", &rest[at..])
        }
        _ => start_line.to_string(),
    }
}

/// Rewrites a raw message into the canonical form rsip parses, applying Content-Length.
fn canonicalise(raw: &[u8], limits: &Limits) -> Result<Vec<u8>, ParseError> {
    let start = raw
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or_else(|| drop_err("empty message"))?;
    let raw = &raw[start..];
    let (head_end, sep) = match find(raw, b"\r\n\r\n") {
        Some(i) => (i, 4),
        None => match find(raw, b"\n\n") {
            Some(i) => (i, 2),
            // A datagram with no blank line: accept it as headers only.
            None => (raw.len(), 0),
        },
    };
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| bad(raw, "header block is not UTF-8"))?;
    let body = &raw[(head_end + sep).min(raw.len())..];
    let (start_line, rest) = head.split_once('\n').unwrap_or((head, ""));
    let start_line = start_line.trim_end_matches('\r');
    let lines = header_lines(rest, limits.max_headers).map_err(|e| match e {
        HeaderError::Bad(r) => bad(raw, &r),
        HeaderError::TooMany => too_large(raw, 513, "Too Many Headers"),
    })?;
    let start_line = escape_user_params(start_line);
    let mut out = Vec::with_capacity(raw.len() + 64);
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut length: Option<usize> = None;
    for (name, value) in &lines {
        if name.eq_ignore_ascii_case("Content-Length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| bad(raw, &format!("bad Content-Length '{}'", truncate(value))))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad(raw, "conflicting Content-Length headers"));
            }
            length = Some(n);
            continue;
        }
        let is_via = name.eq_ignore_ascii_case("Via");
        let multi = is_via
            || name.eq_ignore_ascii_case("Route")
            || name.eq_ignore_ascii_case("Record-Route");
        let values = if multi {
            split_commas(value)
        } else {
            vec![value.clone()]
        };
        let tidy = is_via
            || ["From", "To", "Contact", "Route", "Record-Route"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name));
        for v in values {
            let v = if tidy { tidy_params(&v, is_via) } else { v };
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if length.unwrap_or(body.len()) > limits.max_body {
        return Err(too_large(raw, 413, "Request Entity Too Large"));
    }
    let body = match length {
        Some(n) if n > body.len() => {
            return Err(bad(
                raw,
                &format!(
                    "Content-Length {n} is larger than the {} body bytes received",
                    body.len()
                ),
            ))
        }
        Some(n) => &body[..n],
        None => body,
    };
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Checks what rsip's lenient parse lets through but RFC 3261 §8.1.1 requires of a request.
fn check(msg: &SipMessage) -> Result<(), String> {
    let SipMessage::Request(req) = msg else {
        // Responses only need what matching them to a transaction needs.
        msg.via_header()
            .map_err(|_| "response without Via".to_string())?;
        base(msg)?;
        return Ok(());
    };
    if req.version != rsip::Version::V2 {
        return Err("unsupported SIP version".into());
    }
    // The top Via must parse fully (responses are routed by it); the others only need to
    // look like a Via, as a UAS never uses them (their transports may be ones we lack).
    let mut vias = 0;
    for h in req.headers.iter() {
        if let Header::Via(v) = h {
            if vias == 0 {
                v.typed().map_err(|e| format!("bad Via: {e}"))?;
            } else {
                let value = v.value().trim();
                let proto = value.split_whitespace().next().unwrap_or_default();
                if !proto.to_ascii_uppercase().starts_with("SIP/2.0/")
                    || value.split_whitespace().count() < 2
                {
                    return Err(format!("bad Via '{}'", truncate(value)));
                }
            }
            vias += 1;
        }
    }
    if vias == 0 {
        return Err("missing Via".into());
    }
    // §20: exactly one of each of these.
    let count = |f: fn(&Header) -> bool| req.headers.iter().filter(|h| f(h)).count();
    for (name, n) in [
        ("From", count(|h| matches!(h, Header::From(_)))),
        ("To", count(|h| matches!(h, Header::To(_)))),
        ("Call-ID", count(|h| matches!(h, Header::CallId(_)))),
        ("CSeq", count(|h| matches!(h, Header::CSeq(_)))),
    ] {
        if n > 1 {
            return Err(format!("{n} {name} headers"));
        }
    }
    for h in req.headers.iter() {
        let value = match h {
            Header::From(v) => v.value(),
            Header::To(v) => v.value(),
            Header::Contact(v) => v.value(),
            _ => continue,
        };
        if !quotes_balanced(value) {
            return Err("unterminated quoted string".into());
        }
    }
    let b = base(msg)?;
    if b.call_id.is_empty() {
        return Err("empty Call-ID".into());
    }
    if b.cseq_method != req.method
        && !(req.method == Method::Ack && b.cseq_method == Method::Invite)
    {
        return Err(format!(
            "CSeq method {} does not match request method {}",
            b.cseq_method, req.method
        ));
    }
    if b.cseq > 0x7fff_ffff {
        return Err("CSeq number out of range".into());
    }
    if let Ok(mf) = req.max_forwards_header() {
        mf.value()
            .trim()
            .parse::<u8>()
            .map_err(|_| "bad Max-Forwards".to_string())?;
    }
    Ok(())
}

/// True if every `"` opens and closes a quoted string (backslash escapes inside).
fn quotes_balanced(value: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// Builds a response (400, 501) to a request we could not parse, copying its raw
/// Via/From/To/Call-ID/CSeq lines, if it has them all (RFC 3261 §8.2.6 needs them to address it).
fn minimal_response(raw: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.lines();
    let start = lines.next()?.trim();
    let words = start.split_whitespace().count();
    let last = start.split_whitespace().last().unwrap_or_default();
    if start.starts_with("SIP/") || words < 3 || !last.starts_with("SIP/") {
        return None; // a response, or not a SIP request line at all
    }
    let method = start.split_whitespace().next()?;
    if method.eq_ignore_ascii_case("ACK") {
        return None; // never answer an ACK
    }
    let mut keep = Vec::new();
    let mut seen = [false; 5];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let canonical = expand_compact(name.trim());
        let Some(idx) = ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .position(|n| n.eq_ignore_ascii_case(canonical))
        else {
            continue;
        };
        seen[idx] = true;
        keep.push(format!("{canonical}: {}", value.trim()));
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    let phrase: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(80)
        .collect();
    let mut out = format!("SIP/2.0 {code} {phrase}\r\n");
    for l in keep {
        out.push_str(&l);
        out.push_str("\r\n");
    }
    if code == 501 {
        out.push_str(&format!("Allow: {ALLOW}\r\n"));
    }
    out.push_str(&format!("Server: {PRODUCT}\r\nContent-Length: 0\r\n\r\n"));
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa0\r\n\
        f: <sip:a@10.0.0.1>;tag=1\r\n\
        t: <sip:100@127.0.0.1>\r\n\
        i: abc@10.0.0.1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Subject: folded\r\n  line\r\n\
        l: 0\r\n\r\n";

    #[test]
    fn compact_forms_folding_and_split_via() {
        let msg = parse(OPTIONS.as_bytes()).expect("parses");
        let SipMessage::Request(req) = msg else {
            panic!("request expected")
        };
        let vias: Vec<_> = req
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .collect();
        assert_eq!(vias.len(), 2);
        let b = base(&SipMessage::Request(req.clone())).expect("base");
        assert_eq!(b.call_id, "abc@10.0.0.1");
        assert_eq!(b.from_tag, "1");
        assert_eq!(b.to_tag, None);
        assert_eq!((b.cseq, b.cseq_method), (1, Method::Options));
    }

    #[test]
    fn response_copies_and_tags() {
        let SipMessage::Request(mut req) = parse(OPTIONS.as_bytes()).expect("parses") else {
            panic!()
        };
        stamp_via(&mut req, "192.0.2.9:4000".parse().expect("addr"));
        let resp = response(&req, 200, Some("xyz"));
        let text = resp.to_string();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(
            text.contains(
                "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa1;rport=4000;received=192.0.2.9"
            ),
            "{text}"
        );
        assert!(text.contains("To: <sip:100@127.0.0.1>;tag=xyz"), "{text}");
        assert!(text.contains("Content-Length: 0"), "{text}");
    }

    #[test]
    fn missing_headers_get_400_or_drop() {
        let no_callid = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let e = parse(no_callid.as_bytes()).expect_err("must fail");
        assert!(e.response.is_none(), "cannot address a 400 without Call-ID");
        let mismatch = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\r\n";
        let e = parse(mismatch.as_bytes()).expect_err("must fail");
        let resp = String::from_utf8(e.response.expect("400")).expect("utf8");
        assert!(resp.starts_with("SIP/2.0 400 "), "{resp}");
        assert!(resp.contains("Call-ID: c1"));
    }

    #[test]
    fn content_length_rules() {
        let long = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 50\r\n\r\nshort";
        let e = parse(long.as_bytes()).expect_err("too long");
        assert!(e.response.is_some());
        let short = long.replace("Content-Length: 50", "Content-Length: 2");
        let msg = parse(short.as_bytes()).expect("truncated body ok");
        assert_eq!(msg.body(), b"sh");
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 7u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = parse(&bytes);
            let _ = frame_len(&bytes);
        }
        assert!(parse(b"\r\n\r\n").is_err());
        assert!(parse(b"SIP/2.0 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn limits_answer_513_and_413() {
        let limits = Limits {
            max_message: 600,
            max_headers: 8,
            max_body: 20,
        };
        assert!(parse_with(OPTIONS.as_bytes(), &limits).is_ok());
        let code = |e: ParseError| {
            let resp = String::from_utf8(e.response.expect("answered")).expect("utf8");
            resp.lines().next().unwrap_or_default().to_string()
        };
        let big = OPTIONS.replace("Subject: folded", &format!("Subject: {}", "x".repeat(600)));
        let e = parse_with(big.as_bytes(), &limits).expect_err("too large");
        assert_eq!(code(e), "SIP/2.0 513 Message Too Large");
        let many = OPTIONS.replace("Subject:", "X-A: 1\r\nX-B: 2\r\nSubject:");
        let e = parse_with(many.as_bytes(), &limits).expect_err("too many headers");
        assert_eq!(code(e), "SIP/2.0 513 Too Many Headers");
        let body = OPTIONS.replace("l: 0\r\n\r\n", "l: 21\r\n\r\n123456789012345678901");
        let e = parse_with(body.as_bytes(), &limits).expect_err("body too large");
        assert_eq!(code(e), "SIP/2.0 413 Request Entity Too Large");
        // Without Content-Length (UDP) the received body counts.
        let body = OPTIONS.replace("l: 0\r\n\r\n", "\r\n123456789012345678901");
        assert!(parse_with(body.as_bytes(), &limits).is_err());
        // A response over a limit is dropped, never answered.
        let resp = format!("SIP/2.0 200 OK\r\n{}\r\n\r\n", "X-A: 1\r\n".repeat(20));
        let e = parse_with(resp.as_bytes(), &limits).expect_err("too many");
        assert!(e.response.is_none());
        // The default cap holds even when configured above the transports' buffer.
        let huge = Limits {
            max_message: usize::MAX,
            ..limits
        };
        assert!(parse_with(&vec![b'a'; MAX_MESSAGE + 1], &huge).is_err());
    }

    #[test]
    fn unknown_method_gets_501() {
        let raw = "NEWMETHOD sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 1 NEWMETHOD\r\n\r\n";
        let e = parse(raw.as_bytes()).expect_err("unknown");
        let resp = String::from_utf8(e.response.expect("501")).expect("utf8");
        assert!(resp.starts_with("SIP/2.0 501 "), "{resp}");
    }

    #[test]
    fn tcp_framing() {
        let msg = OPTIONS.as_bytes();
        assert_eq!(frame_len(&msg[..10]), Ok(None));
        assert_eq!(frame_len(msg), Ok(Some(msg.len())));
        let mut two = msg.to_vec();
        two.extend_from_slice(msg);
        assert_eq!(frame_len(&two), Ok(Some(msg.len())));
        assert_eq!(frame_len(b"\r\n\r\nOPT"), Ok(Some(4)));
        assert!(frame_len(b"OPTIONS x SIP/2.0\r\nVia: x\r\n\r\n").is_err());
    }
}
