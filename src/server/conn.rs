//! Per-connection work: accept with the connection limit, read the
//! ClientHello, pick the host entry (or passthrough route), handshake with
//! its own config under `handshakeTimeout`, then HTTP or a splice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::server::TlsStream;

use super::guard;
use super::handshake::{
    finish, log_refused, log_timeout, read_hello, refused, Refused, UNRECOGNIZED_NAME_ALERT,
};
use super::idle;
use super::snapshot::AnyListener;
use super::State;
use crate::closer::{CloseReason, Closer, Registry, Tunnels};
use crate::config::model::Limits;
use crate::http::{self, Conn, TlsInfo};
use crate::stream;
use crate::telemetry::metrics::{self, ActiveConnection};
use crate::tls::HandshakeResult;

/// What a connection holds while it (or a tunnel made from it) is open:
/// its `maxConnections` slot and its place in `connections_active`.
type Slot = Arc<dyn std::any::Any + Send + Sync>;

pub(super) async fn accept_loop(
    tcp: TcpListener,
    name: String,
    state: Arc<State>,
    permits: Arc<Semaphore>,
    mut drain: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = tcp.accept() => r,
            _ = drain.changed() => return,
            _ = stop.changed() => return,
        };
        let (sock, client) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = name.as_str(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(listener = name.as_str(), client = %client, "connection refused: limits.maxConnections reached");
            drop(sock);
            continue;
        };
        // Each connection takes the snapshot current when it was accepted
        // and keeps it to the end (SPEC §2: reload is atomic per connection).
        let snapshot = state.current.load_full();
        let Some(listener) = snapshot.listener(&name).cloned() else {
            return;
        };
        let _ = sock.set_nodelay(true);
        let drain = drain.clone();
        let registry = state.authenticated.clone();
        tokio::spawn(async move {
            let slot: Slot = Arc::new((permit, ActiveConnection::open(listener.label())));
            dispatch(
                sock,
                client,
                listener,
                &snapshot.limits,
                drain,
                registry,
                slot,
            )
            .await;
        });
    }
}

async fn dispatch(
    sock: TcpStream,
    client: SocketAddr,
    listener: AnyListener,
    limits: &Limits,
    drain: watch::Receiver<bool>,
    registry: Arc<Registry>,
    slot: Slot,
) {
    // A task is as large as its largest state, so the stream kinds (with
    // their upstream connect and copy state) are boxed: an https connection
    // does not carry their size.
    match listener {
        AnyListener::Https(l) => https(sock, client, l, drain, registry, slot).await,
        AnyListener::Tls(l) => Box::pin(tls_stream(sock, client, l, limits, &registry)).await,
        AnyListener::Tcp(l) => Box::pin(l.serve(sock, client)).await,
        AnyListener::Passthrough(p) => Box::pin(passthrough(sock, client, &p, limits)).await,
        AnyListener::Http(l) => Box::pin(super::plain::serve(sock, client, l, drain, slot)).await,
    }
}

/// What the first phase of an https connection produced.
enum Opened {
    Tls(Box<TlsStream<TcpStream>>, usize, Option<String>),
    Raw(TcpStream, Vec<u8>, Arc<stream::TcpUpstream>),
    /// A tls-alpn-01 validation was answered; nothing more to do.
    Challenge,
}

/// The fatal `internal_error` alert (80), in the clear (see
/// [`UNRECOGNIZED_NAME_ALERT`]).
const INTERNAL_ERROR_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 80];
/// RFC 8737's ALPN protocol.
const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// A ClientHello that offers only `acme-tls/1`: a tls-alpn-01 validation.
fn is_acme_validation(hello: &rustls::server::ClientHello<'_>) -> bool {
    let Some(mut alpn) = hello.alpn() else {
        return false;
    };
    alpn.next() == Some(ACME_TLS_1) && alpn.next().is_none()
}

/// Answers a tls-alpn-01 validation with the challenge certificate of its
/// name (RFC 8737 §3).
async fn answer_alpn_challenge(
    sock: TcpStream,
    accepted: rustls::server::Accepted,
    sni: Option<String>,
    cert: Arc<rustls::sign::CertifiedKey>,
) -> Result<Opened, Refused> {
    let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| refused(HandshakeResult::Error, sni.clone(), "TLS configuration"))?
        .with_no_client_auth()
        .with_cert_resolver(crate::tls::fixed(cert));
    config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
    let mut stream = finish(accepted, sock, Arc::new(config), sni.clone()).await?;
    tracing::info!(
        name = sni.as_deref().unwrap_or(""),
        "answered an ACME tls-alpn-01 validation"
    );
    let _ = stream.shutdown().await;
    Ok(Opened::Challenge)
}

async fn open_https(
    mut sock: TcpStream,
    listener: &http::HttpsListener,
) -> Result<Opened, Refused> {
    let records_hello = !listener.passthrough.is_empty();
    let (accepted, hello) = read_hello(&mut sock, records_hello).await?;
    let sni = accepted.client_hello().server_name().map(str::to_owned);
    // Only for a name whose challenge is in flight; any other acme-tls/1
    // handshake is routed as usual (a passthrough backend may be doing its
    // own validation; a terminating entry offers no acme-tls/1 and refuses
    // it with no_application_protocol).
    if is_acme_validation(&accepted.client_hello()) {
        if let Some(cert) = sni
            .as_deref()
            .and_then(|name| crate::acme::challenges().alpn01(name))
        {
            return answer_alpn_challenge(sock, accepted, sni, cert).await;
        }
    }
    let Some(index) = listener.sni.lookup(sni.as_deref()) else {
        // SPEC §2: no SNI or an unknown one, and no "*" entry: refuse.
        let _ = sock.write_all(&UNRECOGNIZED_NAME_ALERT).await;
        let detail = match &sni {
            Some(_) => "no host entry serves this server name",
            None => "client sent no server name (SNI) and no host entry is \"*\"",
        };
        return Err(refused(HandshakeResult::Denied, sni, detail));
    };
    match index {
        http::Entry::Passthrough(i) => {
            Ok(Opened::Raw(sock, hello, listener.passthrough[i].clone()))
        }
        http::Entry::Host(i) => {
            if let Some(name) = &listener.hosts[i].tls.pending {
                // SPEC §5: refused until the ACME certificate exists.
                let _ = sock.write_all(&INTERNAL_ERROR_ALERT).await;
                return Err(refused(
                    HandshakeResult::Error,
                    sni,
                    format!(
                        "certificate \"{name}\" has not been obtained from the ACME server yet"
                    ),
                ));
            }
            let config = listener.hosts[i].tls.config.clone();
            finish(accepted, sock, config, sni.clone())
                .await
                .map(|s| Opened::Tls(Box::new(s), i, sni))
        }
    }
}

async fn https(
    sock: TcpStream,
    client: SocketAddr,
    listener: Arc<http::HttpsListener>,
    mut drain: watch::Receiver<bool>,
    registry: Arc<Registry>,
    slot: Slot,
) {
    let limits = &listener.limits;
    // The handshake phase (a 4 KiB ClientHello buffer, the rustls
    // handshake state) is boxed so that it is freed when it ends instead of
    // sizing the connection's task for its whole life: a task is as large as
    // its largest state, and idle connections are what there are most of.
    let (stream, host, sni) = match tokio::time::timeout(
        limits.handshake_timeout,
        Box::pin(open_https(sock, &listener)),
    )
    .await
    {
        Ok(Ok(Opened::Tls(s, h, sni))) => (s, h, sni),
        Ok(Ok(Opened::Raw(sock, hello, up))) => {
            Box::pin(stream::replay(&listener.name, &up, sock, &hello, client)).await;
            return;
        }
        Ok(Ok(Opened::Challenge)) => return,
        Ok(Err(r)) => return log_refused(&listener.label, client, &r),
        Err(_) => return log_timeout(&listener.label, client),
    };
    let (_, tls) = stream.get_ref();
    let host_tls = &listener.hosts[host].tls;
    let identity = host_tls.peer_identity(tls).map(Arc::new);
    if identity.is_none() && tls.peer_certificates().is_some_and(|c| !c.is_empty()) {
        // Fail closed: a chain webpki accepted but whose names we cannot
        // read (an exotic string type) must not pass as anonymous.
        let r = refused(
            HandshakeResult::Error,
            sni,
            "the client certificate's names could not be read",
        );
        return log_refused(&listener.label, client, &r);
    }
    let policy_key = host_tls.policy_key;
    let closer = Arc::new(Closer::default());
    // A reload published while this handshake ran on the old configuration.
    let overtaken = match listener.succession.is_current() {
        true => None,
        false => guard::still_serves(&listener, sni.as_deref(), &policy_key),
    };
    let guard = match guard::after_handshake(
        host_tls,
        tls,
        identity.as_deref(),
        &closer,
        &registry,
        overtaken.as_ref().map(|(l, e)| &l.hosts[*e].tls),
    ) {
        Ok(g) => g,
        Err(result) => {
            let r = refused(
                result,
                sni,
                "the client certificate is no longer valid (a resumed session, or a reload during the handshake)",
            );
            log_refused(&listener.label, client, &r);
            let mut stream = stream;
            let _ = stream.shutdown().await;
            return;
        }
    };
    metrics::handshake(&listener.label, HandshakeResult::Ok.as_str());
    let info = TlsInfo {
        sni,
        version: tls.protocol_version().and_then(crate::tls::version_name),
        cipher: tls
            .negotiated_cipher_suite()
            .and_then(|c| crate::tls::cipher_name(c.suite())),
        alpn: tls
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
    };
    let forwarded = listener.hosts[host].forward.prepare(
        identity.as_deref(),
        &crate::forward::ConnFacts {
            sni: info.sni.as_deref(),
            version: info.version,
            cipher: info.cipher,
        },
    );
    let tunnels = Arc::new(Tunnels::default());
    let conn = Arc::new(Conn {
        listener: listener.clone(),
        host,
        policy_key,
        client,
        identity: identity.clone(),
        tls: info,
        forwarded,
        other_forwarded: Default::default(),
        forwarded_for: http::headers::forwarded_for(client.ip()),
        closer: closer.clone(),
        slot,
        drain: drain.clone(),
        tunnels: tunnels.clone(),
        stats: Default::default(),
    });
    let sni = conn.tls.sni.clone();
    let activity = idle::Activity::new();
    let io = hyper_util::rt::TokioIo::new(idle::Tracked::new(stream, activity.clone()));
    let svc = idle::service(&activity, conn, Conn::handle);
    let served = listener.server.serve_connection_with_upgrades(io, svc);
    tokio::pin!(served);
    let idle_timeout = limits.idle_timeout;
    // Once the connection is asked to close, what is in flight gets this
    // long to finish; then it is dropped (a client that stops reading, or a
    // request body that never ends, cannot keep it open).
    let grace = limits.drain_timeout;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut closing = *drain.borrow();
    if closing {
        served.as_mut().graceful_shutdown();
    }
    // SPEC §2: a reload that changes this connection's policy drains it.
    let mut watched = overtaken.map_or_else(|| listener.clone(), |(l, _)| l);
    let mut logged = false;
    // One timer for the idle check, the drain deadline and the client
    // certificate's notAfter, whichever comes first (every open connection
    // carries this loop's state, so it holds one timer, not three).
    // The expiry is taken from the wall clock at every turn (the monotonic
    // clock stops while a VM is suspended); notAfter is the last valid
    // second.
    let expired = || {
        guard
            .not_after
            .is_some_and(|t| rustls_pki_types::UnixTime::now().as_secs() > t)
    };
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    loop {
        if closing && deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + grace);
        }
        let idle_at = (!closing).then(|| {
            tokio::time::Instant::now() + idle_timeout.saturating_sub(activity.idle_for())
        });
        let expiry_at = guard.not_after.filter(|_| !logged).map(|t| {
            let now = rustls_pki_types::UnixTime::now().as_secs();
            tokio::time::Instant::now()
                + Duration::from_secs(t.saturating_add(1).saturating_sub(now))
        });
        let wake = [idle_at, deadline, expiry_at].into_iter().flatten().min();
        if let Some(w) = wake {
            timer.as_mut().reset(w);
        }
        let mut close_now = None;
        tokio::select! {
            _ = served.as_mut() => break,
            _ = timer.as_mut(), if wake.is_some() => {
                let now = tokio::time::Instant::now();
                if deadline.is_some_and(|d| now >= d) {
                    break;
                }
                if !logged && expired() {
                    close_now = Some(CloseReason::Expired);
                } else if !closing && activity.idle_for() >= idle_timeout {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            r = drain.changed(), if !closing => {
                if r.is_ok() {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            why = closer.closed(), if !logged => close_now = Some(why),
            _ = crate::closer::retirement(watched.clone()), if !closing => {
                match guard::still_serves(&listener, sni.as_deref(), &policy_key) {
                    Some((newest, _)) => watched = newest,
                    None => {
                        closer.close(CloseReason::PolicyChanged);
                    }
                }
            }
        }
        if let Some(why) = close_now {
            closing = true;
            logged = true;
            closer.close(why);
            let why = closer.reason().unwrap_or(why);
            guard::log_closed(&listener.label, client, identity.as_deref(), why);
            // HTTP/1.1: after the in-flight response, which then says
            // `Connection: close`; HTTP/2: GOAWAY.
            served.as_mut().graceful_shutdown();
        }
    }
    // A request that found the policy changed closed the connection itself
    // (421 + `Connection: close`) before the branch above ran.
    if let (false, Some(why)) = (logged, closer.reason()) {
        logged = true;
        guard::log_closed(&listener.label, client, identity.as_deref(), why);
    }
    // WebSocket tunnels outlive the HTTP connection: they stay registered
    // and judged (revocation, expiry, reload) until they end. (Boxed: few
    // connections get here, and every connection's task would otherwise be
    // sized for this state too.)
    if tunnels.count() > 0 {
        Box::pin(async {
            while tunnels.count() > 0 {
                tokio::select! {
                    _ = tunnels.all_closed() => break,
                    why = guard::must_close(&closer, guard.not_after), if !logged => {
                        logged = true;
                        closer.close(why);
                        guard::log_closed(&listener.label, client, identity.as_deref(), why);
                    }
                    _ = crate::closer::retirement(watched.clone()), if !logged => {
                        match guard::still_serves(&listener, sni.as_deref(), &policy_key) {
                            Some((newest, _)) => watched = newest,
                            None => {
                                closer.close(CloseReason::PolicyChanged);
                            }
                        }
                    }
                }
            }
        })
        .await;
    }
    // The tunnel may have seen the closer (and ended) first.
    if let (false, Some(why)) = (logged, closer.reason()) {
        guard::log_closed(&listener.label, client, identity.as_deref(), why);
    }
}

async fn tls_stream(
    mut sock: TcpStream,
    client: SocketAddr,
    l: Arc<stream::TlsListener>,
    limits: &Limits,
    registry: &Arc<Registry>,
) {
    let local = sock.local_addr().unwrap_or(client);
    let handshake = async {
        let (accepted, _) = read_hello(&mut sock, false).await?;
        let sni = accepted.client_hello().server_name().map(str::to_owned);
        finish(accepted, sock, l.tls.config.clone(), sni).await
    };
    // (Boxed: see `https`.)
    let s = match tokio::time::timeout(limits.handshake_timeout, Box::pin(handshake)).await {
        Ok(Ok(s)) => s,
        Ok(Err(r)) => return log_refused(&l.label, client, &r),
        Err(_) => return log_timeout(&l.label, client),
    };
    let tls = s.get_ref().1;
    let identity = l.tls.peer_identity(tls);
    let closer = Arc::new(Closer::default());
    let key = l.tls.policy_key;
    let overtaken = match l.succession.is_current() {
        true => None,
        false => match guard::still_admits(&l, &key, identity.as_ref()) {
            Some(newest) => Some(newest),
            // A reload during the handshake changed the policy or the
            // allow against this client: never dial the upstream.
            None => {
                guard::log_closed(
                    &l.label,
                    client,
                    identity.as_ref(),
                    CloseReason::PolicyChanged,
                );
                return;
            }
        },
    };
    let guard = match guard::after_handshake(
        &l.tls,
        tls,
        identity.as_ref(),
        &closer,
        registry,
        overtaken.as_ref().map(|n| &n.tls),
    ) {
        Ok(g) => g,
        Err(result) => {
            let sni = tls.server_name().map(str::to_owned);
            let r = refused(
                result,
                sni,
                "the client certificate is no longer valid (a resumed session, or a reload during the handshake)",
            );
            return log_refused(&l.label, client, &r);
        }
    };
    // SPEC §3: a `tls` stream whose certificate is revoked or expires is
    // closed at once (dropping the splice closes both sides); so is one
    // whose policy or `allow` a reload changed against it (SPEC §2).
    let served = l.serve(s, client, local);
    tokio::pin!(served);
    let mut watched = overtaken.unwrap_or_else(|| l.clone());
    loop {
        tokio::select! {
            // A close or a retirement that is already known wins over the
            // splice: it must not dial the upstream first.
            biased;
            why = guard::must_close(&closer, guard.not_after) => {
                guard::log_closed(&l.label, client, identity.as_ref(), why);
                break;
            }
            _ = crate::closer::retirement(watched.clone()) => {
                match guard::still_admits(&l, &key, identity.as_ref()) {
                    Some(newest) => watched = newest,
                    None => {
                        closer.close(CloseReason::PolicyChanged);
                    }
                }
            }
            _ = served.as_mut() => break,
        }
    }
}

async fn passthrough(
    mut sock: TcpStream,
    client: SocketAddr,
    p: &stream::Passthrough,
    limits: &Limits,
) {
    // (Boxed: see `https`.)
    let hello = match tokio::time::timeout(
        limits.handshake_timeout,
        Box::pin(read_hello(&mut sock, true)),
    )
    .await
    {
        Ok(Ok((accepted, hello))) => {
            let sni = accepted.client_hello().server_name().map(str::to_owned);
            Some((sni, hello))
        }
        Ok(Err(r)) => {
            log_refused(&p.label, client, &r);
            None
        }
        Err(_) => {
            log_timeout(&p.label, client);
            None
        }
    };
    let Some((sni, hello)) = hello else { return };
    match p.route(sni.as_deref()) {
        Some(up) => stream::replay(&p.name, up, sock, &hello, client).await,
        None => {
            // SPEC §2: no route and no defaultUpstream: the connection is closed.
            let _ = sock.write_all(&UNRECOGNIZED_NAME_ALERT).await;
            let r = refused(
                HandshakeResult::Denied,
                sni,
                "no passthrough route for this server name",
            );
            log_refused(&p.label, client, &r);
        }
    }
}
