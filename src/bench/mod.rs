//! `portcullis bench`: a mutual-TLS load generator, because wrk, h2load and
//! hey cannot present a client certificate. Modes: `handshake` (new
//! connection, full handshake, one request), `resume` (the same with session
//! resumption), `keepalive` (HTTP/1.1 requests on long-lived connections),
//! `h2` (multiplexed streams), `stream` (raw TLS bulk echo, 64 KiB per op),
//! `idle` (open and hold connections). Latencies go to an HDR histogram;
//! errors are counted by kind (TLS alert names, connect, reset, timeout).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use crate::tls::client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod error;
mod workers;
pub(crate) use error::BenchError;
use workers::*;

/// `MODE`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// New connection + full handshake + one GET.
    Handshake,
    /// New connection + resumed handshake + one GET.
    Resume,
    /// GETs on long-lived HTTP/1.1 connections.
    Keepalive,
    /// GETs as multiplexed HTTP/2 streams.
    H2,
    /// Raw TLS bulk echo, 64 KiB per operation.
    Stream,
    /// Open and hold connections.
    Idle,
}

impl Mode {
    /// Its name on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Handshake => "handshake",
            Mode::Resume => "resume",
            Mode::Keepalive => "keepalive",
            Mode::H2 => "h2",
            Mode::Stream => "stream",
            Mode::Idle => "idle",
        }
    }
}

/// What to load, and how hard.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Mode.
    pub mode: Mode,
    /// `https://host:port/path` or `host:port`.
    pub target: String,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
    /// A directory of `NAME.crt` + `NAME.key` pairs: each new connection
    /// presents the next one (a fleet of clients, not one client).
    pub client_certs: Option<PathBuf>,
    /// CA bundle to verify the server.
    pub ca: Option<PathBuf>,
    /// Server name (default: the target's host).
    pub sni: Option<String>,
    /// Parallel connections (streams for h2).
    pub concurrency: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many operations.
    pub requests: Option<u64>,
    /// keepalive: requests per second in all, paced (open loop).
    pub rate: Option<u64>,
}

/// The final report.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Report {
    /// Mode.
    pub mode: Mode,
    /// Successful operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Seconds measured.
    pub seconds: f64,
    /// ops / seconds.
    pub ops_per_second: f64,
    /// MiB/s (stream mode).
    pub mib_per_second: Option<f64>,
    /// Latency percentiles in microseconds.
    pub latency_us: BTreeMap<String, u64>,
    /// Handshakes that resumed a session.
    pub resumed: u64,
    /// Full handshakes.
    pub full: u64,
    /// Connections open at the end (idle mode).
    pub open_connections: u64,
    /// The paced rate asked for (`--rate`), requests per second.
    pub rate: Option<u64>,
}

struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
    /// An https:// URL was given: `idle` sends one GET on each connection
    /// before holding it (what a keep-alive client leaves open).
    url: bool,
}

fn parse_target(t: &str, mode: Mode) -> Result<Target, BenchError> {
    let crate::tools::Target { host, port, path } = crate::tools::parse_target(t)?;
    let url = path.is_some();
    let path = match path {
        Some(p) => p,
        None if matches!(mode, Mode::Stream | Mode::Idle) => "/".to_string(),
        None => {
            return Err(BenchError::NeedsUrl {
                target: t.to_string(),
                mode,
            })
        }
    };
    use std::net::ToSocketAddrs;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| BenchError::Unresolved { host: host.clone() })?;
    Ok(Target {
        addr,
        host,
        path,
        url,
    })
}

/// The client configurations new connections take in turn: one, or one
/// per certificate of `--client-certs`.
pub(super) struct Clients {
    configs: Vec<Arc<ClientConfig>>,
    next: AtomicU64,
}

impl Clients {
    /// One configuration for every connection.
    pub(super) fn one(c: ClientConfig) -> Self {
        Clients {
            configs: vec![Arc::new(c)],
            next: AtomicU64::new(0),
        }
    }

    /// The configuration of the next connection.
    pub(super) fn pick(&self) -> &Arc<ClientConfig> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.configs.len();
        &self.configs[i]
    }

    /// The first configuration (the only one without `--client-certs`).
    pub(super) fn first(&self) -> &Arc<ClientConfig> {
        &self.configs[0]
    }
}

/// The `NAME.crt` + `NAME.key` pairs of `dir`, in name order.
fn certificate_pool(
    dir: &std::path::Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Vec<Arc<rustls::sign::CertifiedKey>>, BenchError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BenchError::Pool {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut crts: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .filter(|p| p.with_extension("key").exists())
        .collect();
    crts.sort();
    if crts.is_empty() {
        return Err(BenchError::EmptyPool {
            dir: dir.to_path_buf(),
        });
    }
    crts.iter()
        .map(|c| {
            crate::tools::client_certificate(Some(c), Some(&c.with_extension("key")), provider)?
                .ok_or(BenchError::EmptyPool {
                    dir: dir.to_path_buf(),
                })
        })
        .collect()
}

fn client_config(o: &Options) -> Result<Clients, BenchError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = match &o.ca {
        Some(ca) => {
            Arc::new(crate::material::roots_from_file(ca).map_err(crate::tools::ToolError::from)?)
        }
        None => return Err(BenchError::NoCa),
    };
    let presented: Vec<client::Presented> = match &o.client_certs {
        Some(_) if o.cert.is_some() || o.key.is_some() => return Err(BenchError::TwoIdentities),
        // Resumption reuses one identity; a pool of them would measure
        // full handshakes under another name.
        Some(_) if o.mode == Mode::Resume => return Err(BenchError::PoolResume),
        Some(dir) => certificate_pool(dir, &provider)?
            .into_iter()
            .map(client::Presented::Certificate)
            .collect(),
        None => vec![match crate::tools::client_certificate(
            o.cert.as_deref(),
            o.key.as_deref(),
            &provider,
        )? {
            Some(key) => client::Presented::Certificate(key),
            None => client::Presented::Nothing,
        }],
    };
    let alpn = match o.mode {
        Mode::H2 => vec![b"h2".to_vec()],
        Mode::Idle if o.target.starts_with("https://") => vec![b"http/1.1".to_vec()],
        Mode::Stream | Mode::Idle => Vec::new(),
        _ => vec![b"http/1.1".to_vec()],
    };
    let mut configs = Vec::new();
    for p in presented {
        let mut c = client::config(
            provider.clone(),
            client::ServerCheck::Roots(roots.clone()),
            p,
            alpn.clone(),
        )
        .map_err(BenchError::Tls)?;
        if o.mode != Mode::Resume {
            c.resumption = rustls::client::Resumption::disabled();
        }
        configs.push(Arc::new(c));
    }
    Ok(Clients {
        configs,
        next: AtomicU64::new(0),
    })
}

/// When a paced (`--rate`) connection sends its requests.
#[derive(Debug, Clone, Copy)]
struct Pace {
    first: Instant,
    every: Duration,
}

struct Shared {
    deadline: Instant,
    budget: Option<u64>,
    started: AtomicU64,
    ok: AtomicU64,
    resumed: AtomicU64,
    full: AtomicU64,
    open: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    hist: Mutex<Histogram<u64>>,
    stop: AtomicBool,
}

impl Shared {
    /// Claims the next operation, or says the run is over.
    fn next(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return false;
        }
        match self.budget {
            Some(b) => self.started.fetch_add(1, Ordering::Relaxed) < b,
            None => true,
        }
    }

    fn done(&self, started: Instant, local: &mut Histogram<u64>) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        let _ = local.record(
            u64::try_from(started.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
    }

    fn failed(&self, k: String) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(k).or_insert(0) += 1;
        }
    }

    fn merge(&self, local: &Histogram<u64>) {
        if let Ok(mut h) = self.hist.lock() {
            let _ = h.add(local);
        }
    }
}

// Constant, valid bounds (1 µs to 60 s, 3 significant figures): this
// cannot fail.

/// Runs a benchmark on the current runtime.
pub(crate) async fn run(o: Options) -> Result<Report, BenchError> {
    if let Some(rate) = o.rate {
        if rate == 0 || o.mode != Mode::Keepalive {
            return Err(BenchError::Rate { rate, mode: o.mode });
        }
    }
    let t = Arc::new(parse_target(&o.target, o.mode)?);
    let cfg = Arc::new(client_config(&o)?);
    let name = o.sni.clone().unwrap_or_else(|| t.host.clone());
    let sni = ServerName::try_from(name.clone())
        .map_err(|_| BenchError::ServerName { name: name.clone() })?;
    let deadline = Instant::now()
        .checked_add(o.duration)
        .ok_or(BenchError::TooLong {
            duration: o.duration,
        })?;
    let sh = Arc::new(Shared {
        deadline,
        budget: o.requests,
        started: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        resumed: AtomicU64::new(0),
        full: AtomicU64::new(0),
        open: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        hist: Mutex::new(new_hist()),
        stop: AtomicBool::new(false),
    });
    let hold = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let progress = if std::io::stderr().is_terminal() {
        let sh = sh.clone();
        Some(tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sh.ok.load(Ordering::Relaxed);
                eprint!(
                    "\r{now} ops, {} ops/s, {} errors   ",
                    now - last,
                    sh.errors
                        .lock()
                        .map(|m| m.values().sum::<u64>())
                        .unwrap_or(0)
                );
                last = now;
            }
        }))
    } else {
        None
    };
    match o.mode {
        Mode::H2 => h2_workers(&o, t.clone(), sni, cfg, sh.clone()).await,
        Mode::Idle => {
            let mut tasks = Vec::new();
            for _ in 0..o.concurrency {
                tasks.push(tokio::spawn(idle_worker(
                    t.clone(),
                    sni.clone(),
                    cfg.clone(),
                    sh.clone(),
                    hold.clone(),
                )));
            }
            // Wait until every connection is open or failed, report it, hold.
            while sh.ok.load(Ordering::Relaxed)
                + sh.errors
                    .lock()
                    .map(|m| m.values().sum::<u64>())
                    .unwrap_or(0)
                < o.concurrency as u64
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            eprintln!(
                "established {} connections",
                sh.open.load(Ordering::Relaxed)
            );
            tokio::time::sleep(sh.deadline.saturating_duration_since(Instant::now())).await;
            hold.notify_waiters();
            for t in tasks {
                let _ = t.await;
            }
        }
        Mode::Stream => {
            let tasks: Vec<_> = (0..o.concurrency)
                .map(|_| {
                    tokio::spawn(stream_worker(
                        t.clone(),
                        sni.clone(),
                        cfg.clone(),
                        sh.clone(),
                    ))
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        }
        mode => {
            // With --rate, connection k sends at started + k/rate, then
            // every concurrency/rate seconds: the rate in all, evenly spread.
            let pace = |k: usize| {
                o.rate.map(|r| Pace {
                    first: started + Duration::from_secs_f64(k as f64 / r as f64),
                    every: Duration::from_secs_f64(o.concurrency as f64 / r as f64),
                })
            };
            let tasks: Vec<_> = (0..o.concurrency)
                .map(|k| {
                    tokio::spawn(worker(
                        mode,
                        t.clone(),
                        sni.clone(),
                        cfg.clone(),
                        sh.clone(),
                        pace(k),
                    ))
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64().min(
        o.duration
            .as_secs_f64()
            .max(started.elapsed().as_secs_f64()),
    );
    let ops = sh.ok.load(Ordering::Relaxed);
    let errors_by_kind = sh.errors.lock().map(|m| m.clone()).unwrap_or_default();
    let h = sh
        .hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| new_hist());
    let mut latency_us = BTreeMap::new();
    if o.mode != Mode::Idle && !h.is_empty() {
        for (k, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            latency_us.insert(k.to_string(), h.value_at_quantile(q));
        }
        latency_us.insert("max".into(), h.max());
    }
    Ok(Report {
        mode: o.mode,
        ops,
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        seconds,
        ops_per_second: ops as f64 / seconds.max(1e-9),
        mib_per_second: (o.mode == Mode::Stream)
            .then(|| ops as f64 * (CHUNK as f64 / 1_048_576.0) / seconds.max(1e-9)),
        latency_us,
        resumed: sh.resumed.load(Ordering::Relaxed),
        full: sh.full.load(Ordering::Relaxed),
        open_connections: sh.open.load(Ordering::Relaxed),
        rate: o.rate,
    })
}

/// The human report.
pub(crate) fn text(r: &Report) -> String {
    let mut s = format!(
        "mode {:?}: {} ops in {:.2} s = {:.1} ops/s, {} errors\n",
        r.mode, r.ops, r.seconds, r.ops_per_second, r.errors
    );
    if let Some(m) = r.mib_per_second {
        s.push_str(&format!("throughput: {m:.1} MiB/s\n"));
    }
    if !r.latency_us.is_empty() {
        s.push_str(&format!(
            "latency: p50 {} µs, p90 {} µs, p99 {} µs, max {} µs\n",
            r.latency_us["p50"], r.latency_us["p90"], r.latency_us["p99"], r.latency_us["max"]
        ));
    }
    if r.resumed + r.full > 0 {
        s.push_str(&format!(
            "handshakes: {} full, {} resumed\n",
            r.full, r.resumed
        ));
    }
    if r.mode == Mode::Idle {
        s.push_str(&format!("open connections held: {}\n", r.open_connections));
    }
    for (k, n) in &r.errors_by_kind {
        s.push_str(&format!("error {k}: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_ipv6_literals_and_need_urls_for_http_modes() {
        let t = parse_target("https://[::1]:8443/x", Mode::Handshake).unwrap();
        assert_eq!(t.addr, "[::1]:8443".parse().unwrap());
        assert_eq!((t.host.as_str(), t.path.as_str()), ("::1", "/x"));
        let t = parse_target("https://[::1]/", Mode::Resume).unwrap();
        assert_eq!(t.addr, "[::1]:443".parse().unwrap());
        let t = parse_target("[::1]:9", Mode::Stream).unwrap();
        assert_eq!(t.addr, "[::1]:9".parse().unwrap());
        let e = parse_target("127.0.0.1:9", Mode::Keepalive).err().unwrap();
        assert_eq!(
            e.to_string(),
            "127.0.0.1:9: mode keepalive needs an https:// URL"
        );
        assert!(parse_target("127.0.0.1", Mode::Stream).is_err());
    }
}
