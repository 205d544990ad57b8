//! SIP transports (RFC 3261 §18): a UDP socket and a TCP listener, as thin tokio tasks that move
//! bytes. Every received message is delivered, unparsed, with the [`Peer`] it came from to one
//! bounded channel; sending never awaits (a full socket or connection queue drops the message and
//! counts it — SIP's own retransmissions recover, and no call task is stalled by a slow peer).
//!
//! Every message received or sent is counted by method or status code
//! ([`crate::ops::metrics::sip_message`]), retransmissions included.
//!
//! Left out: TLS and WebSocket transports, DNS (RFC 3263) — we answer to where requests came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::message::{frame_len, MAX_MESSAGE};
use crate::ops::metrics::{self, Direction};

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable datagrams: transactions retransmit.
    Udp,
    /// A reliable stream: no retransmissions.
    Tcp,
}

/// Identifies one accepted TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Where a message came from, and so where responses (and our in-dialog requests) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport it arrived on.
    pub transport: Transport,
    /// The packet's source address (RFC 3581: we always answer there).
    pub addr: SocketAddr,
    /// The TCP connection, for stream transports.
    pub conn: Option<ConnId>,
}

/// One received message, not yet parsed.
#[derive(Debug)]
pub struct Inbound {
    /// The raw bytes of exactly one message (TCP is framed already).
    pub bytes: Bytes,
    /// Who sent it.
    pub peer: Peer,
}

/// Counters kept by the transports.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Messages dropped because a socket or connection queue was full.
    pub send_dropped: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
}

/// Cheap-to-clone handle for sending SIP messages.
#[derive(Clone)]
pub struct TransportHandle {
    udp: Option<Arc<UdpSocket>>,
    /// Writers of open TCP connections. A std Mutex: held only to clone a sender, never across
    /// an await, and touched per SIP message sent, never per media packet.
    tcp: Arc<Mutex<HashMap<ConnId, mpsc::Sender<Bytes>>>>,
    next_conn: Arc<AtomicU64>,
    inbound: mpsc::Sender<Inbound>,
    /// Counters.
    pub stats: Arc<TransportStats>,
    local: SocketAddr,
}

impl TransportHandle {
    /// The address the listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends one message to `peer` without waiting. Over TCP it reuses the peer's connection,
    /// or opens a new one if that connection is gone.
    pub fn send(&self, peer: &Peer, bytes: Bytes) {
        metrics::sip_message(Direction::Out, &bytes);
        match peer.transport {
            Transport::Udp => {
                let Some(sock) = &self.udp else {
                    warn!("UDP transport not enabled; cannot send to {}", peer.addr);
                    return;
                };
                if let Err(e) = sock.try_send_to(&bytes, peer.addr) {
                    self.stats.send_dropped.fetch_add(1, Ordering::Relaxed);
                    debug!(to = %peer.addr, "UDP send failed: {e}");
                }
            }
            Transport::Tcp => {
                let sender = peer
                    .conn
                    .and_then(|c| self.tcp.lock().ok().and_then(|m| m.get(&c).cloned()));
                match sender {
                    Some(tx) => {
                        if tx.try_send(bytes).is_err() {
                            self.stats.send_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        let this = self.clone();
                        let addr = peer.addr;
                        tokio::spawn(async move {
                            match TcpStream::connect(addr).await {
                                Ok(stream) => {
                                    let tx = this.adopt(stream, addr);
                                    let _ = tx.try_send(bytes);
                                }
                                Err(e) => warn!(to = %addr, "TCP connect failed: {e}"),
                            }
                        });
                    }
                }
            }
        }
    }

    /// Registers a TCP stream: spawns its reader (framing into [`Inbound`]) and writer.
    fn adopt(&self, stream: TcpStream, addr: SocketAddr) -> mpsc::Sender<Bytes> {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        if let Ok(mut m) = self.tcp.lock() {
            m.insert(id, tx.clone());
        }
        let (mut rd, mut wr) = stream.into_split();
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let this = self.clone();
        tokio::spawn(async move {
            let peer = Peer {
                transport: Transport::Tcp,
                addr,
                conn: Some(id),
            };
            let mut buf = BytesMut::with_capacity(8192);
            'conn: loop {
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                loop {
                    match frame_len(&buf) {
                        Ok(Some(n)) => {
                            let msg = buf.split_to(n).freeze();
                            if super::message::is_keepalive(&msg) {
                                continue;
                            }
                            this.stats.received.fetch_add(1, Ordering::Relaxed);
                            metrics::sip_message(Direction::In, &msg);
                            let _ = this.inbound.try_send(Inbound { bytes: msg, peer });
                        }
                        Ok(None) => break,
                        Err(e) => {
                            debug!(from = %addr, "closing TCP connection: {e}");
                            break 'conn;
                        }
                    }
                }
            }
            if let Ok(mut m) = this.tcp.lock() {
                m.remove(&id);
            }
        });
        tx
    }
}

/// Binds the configured transports on `listen` and starts their tasks. Received messages go to
/// the returned receiver (bounded: a flood is shed here, before parsing).
pub async fn start(
    listen: SocketAddr,
    udp: bool,
    tcp: bool,
) -> std::io::Result<(TransportHandle, mpsc::Receiver<Inbound>)> {
    let (in_tx, in_rx) = mpsc::channel(4096);
    let udp_sock = if udp {
        Some(Arc::new(UdpSocket::bind(listen).await?))
    } else {
        None
    };
    let local = match &udp_sock {
        Some(s) => s.local_addr()?,
        None => listen,
    };
    let listener = if tcp {
        // Same port as UDP so one address serves both (RFC 3261 §18).
        Some(TcpListener::bind(local).await?)
    } else {
        None
    };
    let local = match (&udp_sock, &listener) {
        (None, Some(l)) => l.local_addr()?,
        _ => local,
    };
    let handle = TransportHandle {
        udp: udp_sock.clone(),
        tcp: Arc::new(Mutex::new(HashMap::new())),
        next_conn: Arc::new(AtomicU64::new(1)),
        inbound: in_tx.clone(),
        stats: Arc::new(TransportStats::default()),
        local,
    };
    if let Some(sock) = udp_sock {
        let stats = handle.stats.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_MESSAGE + 1];
            loop {
                let (n, addr) = match sock.recv_from(&mut buf).await {
                    Ok(x) => x,
                    // ICMP port unreachable etc. surface here on some OSes; keep serving.
                    Err(e) => {
                        debug!("UDP receive error: {e}");
                        continue;
                    }
                };
                let data = &buf[..n];
                if super::message::is_keepalive(data) {
                    continue;
                }
                stats.received.fetch_add(1, Ordering::Relaxed);
                metrics::sip_message(Direction::In, data);
                let peer = Peer {
                    transport: Transport::Udp,
                    addr,
                    conn: None,
                };
                let _ = in_tx.try_send(Inbound {
                    bytes: Bytes::copy_from_slice(data),
                    peer,
                });
            }
        });
    }
    if let Some(listener) = listener {
        let h = handle.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        h.adopt(stream, addr);
                    }
                    Err(e) => {
                        warn!("TCP accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    Ok((handle, in_rx))
}
