//! SIP transactions, sans-IO (RFC 3261 §17): client transactions for INVITE
//! (§17.1.1, timers A/B/D, with RFC 6026's Accepted state) and for other
//! methods (§17.1.2, timers E/F/K), and non-INVITE server transactions
//! (§17.2.2, timer J) with de-duplication of retransmitted requests. Time is an
//! input; the shell calls [`TransactionLayer::handle_timeout`] at
//! [`TransactionLayer::poll_timeout`].
//!
//! The platform only sends INVITEs (it never answers one as a lower platform
//! yet), so there is no INVITE server transaction.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Timer values (§17.1.1.1, Table 4).
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

/// Where a message goes or came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Identifies a server transaction (§17.2.3): the top Via branch, its sent-by,
/// and the method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerKey {
    pub branch: String,
    pub sent_by: String,
    pub method: String,
}

/// What to do with an incoming request.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerVerdict {
    /// A new request: hand it to the application.
    New,
    /// A retransmission already answered: send this response again.
    Resend(Bytes),
    /// A retransmission still being worked on: drop it.
    Absorb,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ServerState {
    Trying,
    Proceeding,
    Completed,
}

struct ServerTx {
    state: ServerState,
    last_response: Option<Bytes>,
    /// When a completed transaction is forgotten (timer J).
    expires: Option<Instant>,
    /// Forget it even if the application never answers.
    abandon_at: Instant,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum ClientState {
    /// "Calling" for INVITE.
    Trying,
    Proceeding,
    Completed,
    /// INVITE after a 2xx (RFC 6026 §7.2): retransmitted 2xx are re-ACKed.
    Accepted,
}

struct ClientTx {
    invite: bool,
    /// The ACK to repeat for a retransmitted final response (INVITE only).
    ack: Option<Bytes>,
    state: ClientState,
    peer: Peer,
    request: Bytes,
    /// Next retransmission (timer E), UDP only.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer F, then timer K once completed.
    deadline: Instant,
}

/// Something the shell must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes again (a retransmission).
    Transmit { peer: Peer, bytes: Bytes },
    /// The client transaction with this branch got no final response (timer F).
    Timeout { branch: String },
}

/// What became of a response from the network.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// The first provisional or final response: hand it to the application.
    Deliver,
    /// The first 3xx–6xx to an INVITE: hand it over, and send the ACK the
    /// transaction owes (§17.1.1.3), then register it with
    /// [`TransactionLayer::set_ack`].
    DeliverAndAck,
    /// A retransmitted final response to an INVITE: send this ACK again.
    ResendAck(Bytes),
    /// A retransmitted final response or one for no transaction: drop it.
    Absorb,
}

pub struct TransactionLayer {
    timers: Timers,
    servers: HashMap<ServerKey, ServerTx>,
    clients: HashMap<String, ClientTx>,
}

impl TransactionLayer {
    pub fn new(timers: Timers) -> Self {
        Self {
            timers,
            servers: HashMap::new(),
            clients: HashMap::new(),
        }
    }

    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Live transactions (server, client), for metrics and tests.
    pub fn len(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.clients.is_empty()
    }

    /// A request arrived (ACK never forms a server transaction of its own).
    pub fn on_request(&mut self, key: ServerKey, now: Instant) -> ServerVerdict {
        if let Some(tx) = self.servers.get(&key) {
            return match (&tx.state, &tx.last_response) {
                (ServerState::Trying, _) | (_, None) => ServerVerdict::Absorb,
                (_, Some(r)) => ServerVerdict::Resend(r.clone()),
            };
        }
        self.servers.insert(
            key,
            ServerTx {
                state: ServerState::Trying,
                last_response: None,
                expires: None,
                // The application must answer within 64*T1 or the transaction
                // is dropped (the client has given up by then, timer F).
                abandon_at: now + 64 * self.timers.t1,
            },
        );
        ServerVerdict::New
    }

    /// The application is sending `response` (status `code`) for the request
    /// identified by `key`.
    pub fn on_send_response(
        &mut self,
        key: &ServerKey,
        code: u16,
        response: Bytes,
        transport: Transport,
        now: Instant,
    ) {
        let Some(tx) = self.servers.get_mut(key) else {
            return;
        };
        tx.last_response = Some(response);
        if code < 200 {
            tx.state = ServerState::Proceeding;
        } else {
            tx.state = ServerState::Completed;
            // Timer J: 64*T1 for unreliable transports, zero for reliable.
            let j = if transport.is_reliable() {
                Duration::ZERO
            } else {
                64 * self.timers.t1
            };
            tx.expires = Some(now + j);
        }
    }

    /// Starts a client transaction for a request sent to `peer`, keyed by its
    /// Via branch.
    pub fn on_send_request(&mut self, branch: String, peer: Peer, request: Bytes, now: Instant) {
        let invite = request.starts_with(b"INVITE ");
        let t1 = self.timers.t1;
        self.clients.insert(
            branch,
            ClientTx {
                invite,
                ack: None,
                state: ClientState::Trying,
                peer,
                request,
                retransmit_at: (!peer.transport.is_reliable()).then(|| now + t1),
                interval: t1,
                deadline: now + 64 * t1,
            },
        );
    }

    /// The ACK sent for an INVITE's final response (the transaction's own for
    /// 3xx–6xx, the dialog's for 2xx), repeated when the response is.
    pub fn set_ack(&mut self, branch: &str, ack: Bytes) {
        if let Some(tx) = self.clients.get_mut(branch) {
            tx.ack = Some(ack);
        }
    }

    /// A response arrived for the client transaction `branch` with status `code`.
    pub fn on_response(&mut self, branch: &str, code: u16, now: Instant) -> ResponseVerdict {
        let Some(tx) = self.clients.get_mut(branch) else {
            return ResponseVerdict::Absorb;
        };
        if tx.invite {
            return Self::on_invite_response(self.timers, tx, code, now);
        }
        match tx.state {
            ClientState::Completed => ResponseVerdict::Absorb,
            _ if code < 200 => {
                if tx.state == ClientState::Trying {
                    tx.state = ClientState::Proceeding;
                    // In Proceeding, timer E fires every T2 (§17.1.2.2).
                    if tx.retransmit_at.is_some() {
                        tx.interval = self.timers.t2;
                        tx.retransmit_at = Some(now + self.timers.t2);
                    }
                }
                ResponseVerdict::Deliver
            }
            _ => {
                tx.state = ClientState::Completed;
                tx.retransmit_at = None;
                // Timer K: T4 for unreliable transports, zero for reliable.
                let k = if tx.peer.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                tx.deadline = now + k;
                ResponseVerdict::Deliver
            }
        }
    }

    /// §17.1.1.2 with RFC 6026: 1xx stops timer A; 2xx → Accepted (64·T1,
    /// retransmitted 2xx handed back for a new ACK); 3xx–6xx → Completed with
    /// timer D (32 s on UDP, 0 on TCP), retransmissions re-ACKed.
    fn on_invite_response(
        timers: Timers,
        tx: &mut ClientTx,
        code: u16,
        now: Instant,
    ) -> ResponseVerdict {
        let resend = |tx: &ClientTx| match &tx.ack {
            Some(a) => ResponseVerdict::ResendAck(a.clone()),
            None => ResponseVerdict::Absorb,
        };
        match (tx.state, code) {
            (ClientState::Trying | ClientState::Proceeding, 100..=199) => {
                tx.state = ClientState::Proceeding;
                tx.retransmit_at = None;
                // No timer B once the callee is alive; a bound all the same.
                tx.deadline = now + Duration::from_secs(180);
                ResponseVerdict::Deliver
            }
            (ClientState::Trying | ClientState::Proceeding, 200..=299) => {
                tx.state = ClientState::Accepted;
                tx.retransmit_at = None;
                tx.deadline = now + 64 * timers.t1;
                ResponseVerdict::Deliver
            }
            (ClientState::Trying | ClientState::Proceeding, _) => {
                tx.state = ClientState::Completed;
                tx.retransmit_at = None;
                tx.deadline = now
                    + if tx.peer.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                ResponseVerdict::DeliverAndAck
            }
            (ClientState::Accepted, 200..=299) | (ClientState::Completed, 300..) => resend(tx),
            _ => ResponseVerdict::Absorb,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let servers = self
            .servers
            .values()
            .map(|t| t.expires.unwrap_or(t.abandon_at).min(t.abandon_at));
        let clients = self
            .clients
            .values()
            .flat_map(|t| [Some(t.deadline), t.retransmit_at].into_iter().flatten());
        servers.chain(clients).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        self.servers
            .retain(|_, t| t.expires.is_none_or(|e| now < e) && now < t.abandon_at);
        let t2 = self.timers.t2;
        self.clients.retain(|branch, t| {
            if now >= t.deadline {
                if !matches!(t.state, ClientState::Completed | ClientState::Accepted) {
                    actions.push(Action::Timeout {
                        branch: branch.clone(),
                    });
                }
                return false;
            }
            if let Some(at) = t.retransmit_at
                && now >= at
            {
                actions.push(Action::Transmit {
                    peer: t.peer,
                    bytes: t.request.clone(),
                });
                if t.invite {
                    // Timer A doubles without the T2 cap (§17.1.1.2).
                    t.interval *= 2;
                } else if t.state == ClientState::Trying {
                    t.interval = (t.interval * 2).min(t2);
                }
                t.retransmit_at = Some(now + t.interval);
            }
            true
        });
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "192.0.2.1:5060".parse().unwrap(),
        }
    }

    fn key(branch: &str) -> ServerKey {
        ServerKey {
            branch: branch.into(),
            sent_by: "192.0.2.1:5060".into(),
            method: "REGISTER".into(),
        }
    }

    /// Drives the layer on a simulated clock until `end`, recording when each
    /// action happened (ms after `t0`).
    fn run(layer: &mut TransactionLayer, t0: Instant, end: Duration) -> Vec<(u128, Action)> {
        let mut out = Vec::new();
        while let Some(at) = layer.poll_timeout() {
            if at > t0 + end {
                break;
            }
            for a in layer.handle_timeout(at) {
                out.push(((at - t0).as_millis(), a));
            }
        }
        out
    }

    #[test]
    fn udp_request_retransmits_on_timer_e_and_times_out_on_f() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_send_request("z9hG4bK1".into(), udp(), Bytes::from_static(b"MESSAGE"), t0);
        let acts = run(&mut l, t0, Duration::from_secs(40));
        let sends: Vec<u128> = acts
            .iter()
            .filter(|(_, a)| matches!(a, Action::Transmit { .. }))
            .map(|(t, _)| *t)
            .collect();
        // 0.5, 1.5, 3.5, 7.5 s, then every T2 = 4 s until F = 32 s.
        assert_eq!(&sends[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(sends.iter().all(|&t| t < 32_000));
        let timeout: Vec<_> = acts
            .iter()
            .filter(|(_, a)| matches!(a, Action::Timeout { .. }))
            .collect();
        assert_eq!(timeout.len(), 1);
        assert_eq!(timeout[0].0, 32_000);
        assert!(l.is_empty());
    }

    #[test]
    fn final_response_stops_retransmission_and_absorbs_duplicates() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_send_request("b".into(), udp(), Bytes::from_static(b"MESSAGE"), t0);
        let t = t0 + Duration::from_millis(700);
        assert_eq!(l.on_response("b", 200, t), ResponseVerdict::Deliver);
        assert_eq!(l.on_response("b", 200, t), ResponseVerdict::Absorb);
        assert_eq!(l.on_response("unknown", 200, t), ResponseVerdict::Absorb);
        let acts = run(&mut l, t0, Duration::from_secs(60));
        assert!(acts.is_empty(), "{acts:?}");
        assert!(l.is_empty(), "timer K cleared it");
    }

    #[test]
    fn provisional_response_slows_retransmission_to_t2() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_send_request("b".into(), udp(), Bytes::from_static(b"SUBSCRIBE"), t0);
        assert_eq!(l.on_response("b", 100, t0), ResponseVerdict::Deliver);
        let acts = run(&mut l, t0, Duration::from_secs(10));
        let sends: Vec<u128> = acts.iter().map(|(t, _)| *t).collect();
        assert_eq!(sends, vec![4000, 8000]);
    }

    #[test]
    fn tcp_request_never_retransmits() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        let tcp = Peer {
            transport: Transport::Tcp,
            ..udp()
        };
        l.on_send_request("b".into(), tcp, Bytes::from_static(b"MESSAGE"), t0);
        let acts = run(&mut l, t0, Duration::from_secs(60));
        assert_eq!(acts, vec![(32_000, Action::Timeout { branch: "b".into() })]);
    }

    #[test]
    fn invite_retransmits_on_timer_a_and_times_out_on_b() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_send_request("i".into(), udp(), Bytes::from_static(b"INVITE sip:x"), t0);
        let acts = run(&mut l, t0, Duration::from_secs(40));
        let sends: Vec<u128> = acts
            .iter()
            .filter(|(_, a)| matches!(a, Action::Transmit { .. }))
            .map(|(t, _)| *t)
            .collect();
        // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: doubling, no T2 cap; B = 32 s.
        assert_eq!(sends, vec![500, 1500, 3500, 7500, 15_500, 31_500]);
        assert!(
            acts.iter()
                .any(|(t, a)| *t == 32_000 && matches!(a, Action::Timeout { .. }))
        );
    }

    #[test]
    fn invite_provisional_stops_retransmission_and_final_responses_are_acked() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_send_request("i".into(), udp(), Bytes::from_static(b"INVITE sip:x"), t0);
        assert_eq!(l.on_response("i", 100, t0), ResponseVerdict::Deliver);
        let t = t0 + Duration::from_secs(5);
        assert!(
            run(&mut l, t0, Duration::from_secs(5)).is_empty(),
            "no retransmission after 1xx"
        );
        // A 2xx: delivered once; its retransmissions are re-ACKed with the
        // dialog's ACK.
        assert_eq!(l.on_response("i", 200, t), ResponseVerdict::Deliver);
        assert_eq!(
            l.on_response("i", 200, t),
            ResponseVerdict::Absorb,
            "no ACK registered yet"
        );
        l.set_ack("i", Bytes::from_static(b"ACK"));
        assert_eq!(
            l.on_response("i", 200, t),
            ResponseVerdict::ResendAck(Bytes::from_static(b"ACK"))
        );
        l.handle_timeout(t + Duration::from_secs(32));
        assert!(l.is_empty(), "Accepted ends after 64*T1");

        // A 486: delivered with an ACK to send; retransmissions re-ACKed
        // until timer D; no timeout reported.
        l.on_send_request("j".into(), udp(), Bytes::from_static(b"INVITE sip:y"), t0);
        assert_eq!(l.on_response("j", 486, t0), ResponseVerdict::DeliverAndAck);
        l.set_ack("j", Bytes::from_static(b"ACK486"));
        assert_eq!(
            l.on_response("j", 486, t0),
            ResponseVerdict::ResendAck(Bytes::from_static(b"ACK486"))
        );
        let acts = run(&mut l, t0, Duration::from_secs(60));
        assert!(acts.is_empty(), "{acts:?}");
        assert!(l.is_empty());
    }

    #[test]
    fn server_deduplicates_retransmitted_requests() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        assert_eq!(l.on_request(key("a"), t0), ServerVerdict::New);
        assert_eq!(
            l.on_request(key("a"), t0),
            ServerVerdict::Absorb,
            "not answered yet"
        );
        let resp = Bytes::from_static(b"SIP/2.0 200 OK");
        l.on_send_response(&key("a"), 200, resp.clone(), Transport::Udp, t0);
        assert_eq!(
            l.on_request(key("a"), t0 + Duration::from_secs(1)),
            ServerVerdict::Resend(resp.clone())
        );
        // Another branch is another transaction.
        assert_eq!(l.on_request(key("b"), t0), ServerVerdict::New);
        // Timer J (32 s) forgets it: the same branch is then new again.
        let later = t0 + Duration::from_secs(33);
        l.handle_timeout(later);
        assert_eq!(l.on_request(key("a"), later), ServerVerdict::New);
    }

    #[test]
    fn unanswered_server_transactions_are_abandoned() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(Timers::default());
        l.on_request(key("a"), t0);
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        l.handle_timeout(t0 + Duration::from_secs(32));
        assert!(l.is_empty());
    }
}
