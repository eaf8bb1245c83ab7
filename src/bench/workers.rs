//! The load loops of each mode: connect, request, stream, hold.

use super::*;
use crate::tls::classify::client_failure;

#[allow(clippy::expect_used)]
pub(super) fn new_hist() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    h.auto(true);
    h
}

pub(super) async fn tls_connect(
    t: &Target,
    sni: &ServerName<'static>,
    cfg: &Clients,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(cfg.pick().clone())
        .connect(sni.clone(), tcp)
        .await
}

/// One request with `Connection: close`, reading to EOF.
/// How much of a response `one_request` keeps to read its status.
const HEAD_BYTES: usize = 1024;

pub(super) async fn one_request(
    t: &Target,
    sni: &ServerName<'static>,
    cfg: &Clients,
    req: &[u8],
    sh: &Shared,
) -> std::io::Result<()> {
    let mut s = tls_connect(t, sni, cfg).await?;
    if s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        sh.resumed.fetch_add(1, Ordering::Relaxed);
    } else {
        sh.full.fetch_add(1, Ordering::Relaxed);
    }
    s.write_all(req).await?;
    let mut buf = [0u8; 16384];
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        // Enough of the response for its status line.
        let room = HEAD_BYTES.saturating_sub(head.len());
        head.extend_from_slice(&buf[..n.min(room)]);
    }
    match crate::tools::status_code(&head) {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(std::io::Error::other(format!("status {code}"))),
        None => Err(std::io::Error::other("status unreadable")),
    }
}

pub(super) async fn worker(
    mode: Mode,
    t: Arc<Target>,
    sni: ServerName<'static>,
    cfg: Arc<Clients>,
    sh: Arc<Shared>,
    pace: Option<Pace>,
) {
    let mut local = new_hist();
    let host = sni_host(&sni, &t);
    match mode {
        Mode::Handshake | Mode::Resume => {
            // Each `resume` worker keeps its own sessions. A shared store
            // (rustls keeps at most 8 TLS 1.3 tickets per server, each used
            // once) runs dry when more workers than that connect at once,
            // and the mode would measure a mix with full handshakes.
            let cfg = if mode == Mode::Resume {
                let mut own = (**cfg.first()).clone();
                own.resumption = rustls::client::Resumption::in_memory_sessions(4);
                Arc::new(Clients::one(own))
            } else {
                cfg
            };
            let req = crate::tools::get_request(&t.path, &host, t.addr.port(), "portcullis-bench");
            while sh.next() {
                let start = Instant::now();
                match one_request(&t, &sni, &cfg, &req, &sh).await {
                    Ok(()) => sh.done(start, &mut local),
                    Err(e) => sh.failed(client_failure(&e)),
                }
            }
        }
        Mode::Keepalive => {
            let mut schedule = pace.map(|p| {
                let mut i = tokio::time::interval_at(p.first.into(), p.every);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                i
            });
            'conn: while sh.next() {
                let s = match tls_connect(&t, &sni, &cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        sh.failed(client_failure(&e));
                        continue;
                    }
                };
                let Ok((mut send, conn)) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await
                else {
                    sh.failed("http".into());
                    continue;
                };
                tokio::spawn(conn);
                loop {
                    let start = match &mut schedule {
                        // Late ticks are sent at once (open loop), and
                        // their wait counts as latency.
                        Some(s) => s.tick().await.into_std(),
                        None => Instant::now(),
                    };
                    if Instant::now() >= sh.deadline {
                        break 'conn;
                    }
                    let req = http::Request::get(t.path.as_str())
                        .header(http::header::HOST, host.as_str())
                        .body(Empty::<Bytes>::new());
                    let Ok(req) = req else { break 'conn };
                    match send.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status().is_success();
                            let _ = resp.into_body().collect().await;
                            if ok {
                                sh.done(start, &mut local);
                            } else {
                                sh.failed("status".into());
                            }
                        }
                        Err(_) => {
                            sh.failed("http".into());
                            continue 'conn;
                        }
                    }
                    if !sh.next() {
                        break 'conn;
                    }
                }
            }
        }
        Mode::H2 | Mode::Stream | Mode::Idle => {}
    }
    sh.merge(&local);
}

pub(super) fn sni_host(sni: &ServerName<'static>, t: &Target) -> String {
    match sni {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        // An IPv6 literal is bracketed in Host and in a URI (RFC 3986).
        _ if t.host.contains(':') => format!("[{}]", t.host),
        _ => t.host.clone(),
    }
}

pub(super) async fn h2_workers(
    o: &Options,
    t: Arc<Target>,
    sni: ServerName<'static>,
    cfg: Arc<Clients>,
    sh: Arc<Shared>,
) {
    let host = sni_host(&sni, &t);
    // One connection per 32 concurrent streams.
    let conns = o.concurrency.div_ceil(32).max(1);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let s = match tls_connect(&t, &sni, &cfg).await {
            Ok(s) => s,
            Err(e) => {
                sh.failed(client_failure(&e));
                continue;
            }
        };
        let Ok((send, conn)) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(s),
        )
        .await
        else {
            sh.failed("http2".into());
            continue;
        };
        tokio::spawn(conn);
        let streams = (o.concurrency / conns) + usize::from(c < o.concurrency % conns);
        for _ in 0..streams {
            let (mut send, sh, t, host) = (send.clone(), sh.clone(), t.clone(), host.clone());
            tasks.push(tokio::spawn(async move {
                let mut local = new_hist();
                while sh.next() {
                    let start = Instant::now();
                    let uri = format!("https://{host}{}", t.path);
                    let Ok(req) = http::Request::get(uri).body(Empty::<Bytes>::new()) else {
                        break;
                    };
                    match send.send_request(req).await {
                        Ok(resp) if resp.status().is_success() => {
                            let _ = resp.into_body().collect().await;
                            sh.done(start, &mut local);
                        }
                        Ok(_) => sh.failed("status".into()),
                        Err(_) => {
                            sh.failed("http2".into());
                            break;
                        }
                    }
                }
                sh.merge(&local);
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

pub(super) const CHUNK: usize = 64 * 1024;

pub(super) async fn stream_worker(
    t: Arc<Target>,
    sni: ServerName<'static>,
    cfg: Arc<Clients>,
    sh: Arc<Shared>,
) {
    let mut local = new_hist();
    let out = vec![0x5au8; CHUNK];
    let mut back = vec![0u8; CHUNK];
    'conn: while sh.next() {
        let mut s = match tls_connect(&t, &sni, &cfg).await {
            Ok(s) => s,
            Err(e) => {
                sh.failed(client_failure(&e));
                continue;
            }
        };
        loop {
            let start = Instant::now();
            if let Err(e) = s.write_all(&out).await {
                sh.failed(client_failure(&e));
                continue 'conn;
            }
            if let Err(e) = s.read_exact(&mut back).await {
                sh.failed(client_failure(&e));
                continue 'conn;
            }
            sh.done(start, &mut local);
            if !sh.next() {
                break 'conn;
            }
        }
    }
    sh.merge(&local);
}

pub(super) async fn idle_worker(
    t: Arc<Target>,
    sni: ServerName<'static>,
    cfg: Arc<Clients>,
    sh: Arc<Shared>,
    hold: Arc<tokio::sync::Notify>,
) {
    let s = match tls_connect(&t, &sni, &cfg).await {
        Ok(s) => s,
        Err(e) => return sh.failed(client_failure(&e)),
    };
    if t.url {
        // One keep-alive request, then hold the connection as a client
        // between requests leaves it.
        let Ok((mut send, conn)) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await
        else {
            return sh.failed("http".into());
        };
        let driver = tokio::spawn(conn);
        let req = http::Request::get(t.path.as_str())
            .header(http::header::HOST, sni_host(&sni, &t))
            .body(Empty::<Bytes>::new());
        let Ok(req) = req else {
            return sh.failed("http".into());
        };
        match send.send_request(req).await {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.into_body().collect().await;
            }
            Ok(_) => return sh.failed("status".into()),
            Err(_) => return sh.failed("http".into()),
        }
        sh.ok.fetch_add(1, Ordering::Relaxed);
        sh.open.fetch_add(1, Ordering::Relaxed);
        hold.notified().await;
        drop(send);
        driver.abort();
        return;
    }
    // Make the server finish its side (and judge our certificate).
    let mut s = s;
    let mut one = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(200), s.read(&mut one)).await {
        Ok(Err(e)) => return sh.failed(client_failure(&e)),
        Ok(Ok(0)) => return sh.failed("eof".into()),
        _ => {}
    }
    sh.ok.fetch_add(1, Ordering::Relaxed);
    sh.open.fetch_add(1, Ordering::Relaxed);
    hold.notified().await;
    drop(s);
}
