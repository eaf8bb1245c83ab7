//! The endpoints of one HTTP upstream (SPEC §2 `endpoints`,
//! `loadBalancing`, `healthCheck`): which endpoint a request goes to, the
//! passive health of each, and the one retry a connect failure earns.
//!
//! - `roundRobin` takes the endpoints in turn; `leastRequest` the one with
//!   the fewest requests in flight (ties in turn). Each endpoint has its own
//!   connection pool.
//! - With `healthCheck`, an endpoint that fails `maxFailures` times in a row
//!   (no connection, a broken exchange, or a 502/503/504 answer — Envoy's
//!   "gateway failures") is skipped for `ejectFor`, then tried again. When
//!   every endpoint is ejected they are all tried anyway (Envoy's panic
//!   threshold): refusing everything helps no one.
//! - A request that no connection could take (nothing of it was written)
//!   goes once to another endpoint when its method is idempotent; the
//!   client never sees the first failure, the metrics and the log do.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, HOST};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::pool::{self, Failure, InFlight, Pool, PooledBody, SendError};
use crate::config::model::{Balance, HealthCheck, HostHeader};

/// One endpoint: its pool and its state.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// `host:port`: the `endpoint` label, and the Host sent with
    /// `hostHeader: upstream`.
    pub(crate) label: Arc<str>,
    host: HeaderValue,
    pool: Arc<Pool>,
    in_flight: Arc<AtomicUsize>,
    /// Failures in a row.
    failures: AtomicU32,
    /// Until when it is skipped, in milliseconds since [`Balancer::epoch`];
    /// 0: not ejected.
    ejected_until: AtomicU64,
}

impl Endpoint {
    /// An endpoint reached through `pool`, sending `host` when the Host is
    /// the upstream's.
    pub(crate) fn new(label: &str, host: HeaderValue, pool: Pool) -> Self {
        Endpoint {
            label: Arc::from(label),
            host,
            pool: Arc::new(pool),
            in_flight: Arc::default(),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        }
    }
}

/// The endpoints of one upstream and how they are chosen.
#[derive(Debug)]
pub struct Balancer {
    name: Arc<str>,
    endpoints: Vec<Endpoint>,
    balance: Balance,
    health: Option<HealthCheck>,
    next: AtomicUsize,
    epoch: Instant,
    /// Whether the endpoints speak HTTP/2 (`version: http2`).
    http2: bool,
}

/// Why a request got no response, and from which endpoint.
pub(crate) struct Failed {
    /// The endpoint that failed last.
    pub(crate) endpoint: Arc<str>,
    /// Why.
    pub(crate) error: SendError,
}

impl Balancer {
    /// The endpoints of upstream `name`.
    pub(crate) fn new(
        name: &str,
        endpoints: Vec<Endpoint>,
        balance: Balance,
        health: Option<HealthCheck>,
        http2: bool,
    ) -> Self {
        Balancer {
            name: Arc::from(name),
            endpoints,
            balance,
            health,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            http2,
        }
    }

    /// Whether the endpoints speak HTTP/2.
    pub(crate) fn is_http2(&self) -> bool {
        self.http2
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The endpoint for the next request, never `not` when another exists.
    fn pick(&self, not: Option<usize>) -> usize {
        let n = self.endpoints.len();
        let now = self.now_ms();
        // A retry does not move the turn on: the next request still gets
        // the endpoint after the one that failed.
        let start = match not {
            None => self.next.fetch_add(1, Ordering::Relaxed),
            Some(_) => self.next.load(Ordering::Relaxed),
        } % n;
        let order = (0..n).map(|i| (start + i) % n).filter(|i| Some(*i) != not);
        let healthy = |i: &usize| self.endpoints[*i].ejected_until.load(Ordering::Relaxed) <= now;
        let pick_in = |it: &mut dyn Iterator<Item = usize>| -> Option<usize> {
            match self.balance {
                Balance::RoundRobin => it.next(),
                Balance::LeastRequest => {
                    it.min_by_key(|i| self.endpoints[*i].in_flight.load(Ordering::Relaxed))
                }
            }
        };
        pick_in(&mut order.clone().filter(healthy))
            // Every other one ejected: try them anyway.
            .or_else(|| pick_in(&mut order.clone()))
            .unwrap_or(start)
    }

    /// Notes how an exchange with endpoint `i` went.
    fn judge(&self, i: usize, ok: bool) {
        let ep = &self.endpoints[i];
        if ok {
            ep.failures.store(0, Ordering::Relaxed);
            return;
        }
        let Some(h) = self.health else { return };
        let n = ep.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= h.max_failures {
            ep.failures.store(0, Ordering::Relaxed);
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(h.eject_for.as_millis()).unwrap_or(u64::MAX));
            ep.ejected_until.store(until.max(1), Ordering::Relaxed);
            tracing::warn!(
                upstream = &*self.name,
                endpoint = &*ep.label,
                failures = n,
                seconds = h.eject_for.as_secs(),
                "upstream endpoint ejected"
            );
        }
    }

    /// Sends `req` (origin-form, its Host still the client's `host`) to an
    /// endpoint, setting the Host `host_header` asks for.
    pub(crate) async fn send(
        &self,
        req: Request<Incoming>,
        host_header: &HostHeader,
        host: &HeaderValue,
    ) -> Result<Response<PooledBody>, Failed> {
        let idempotent = matches!(
            *req.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let (mut req, sent) = pool::track(req);
        let mut tried = None;
        loop {
            let i = self.pick(tried);
            let ep = &self.endpoints[i];
            let value = match host_header {
                HostHeader::Preserve => host,
                HostHeader::Upstream => &ep.host,
            };
            req.headers_mut().insert(HOST, value.clone());
            let counted = InFlight::start(&ep.in_flight);
            match ep.pool.send(req, sent.clone()).await {
                Ok(mut resp) => {
                    let gateway_failure = matches!(
                        resp.status(),
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    self.judge(i, !gateway_failure);
                    resp.body_mut().hold(counted);
                    return Ok(resp);
                }
                Err(Failure::Unsent(unsent, error))
                    if idempotent && tried.is_none() && self.endpoints.len() > 1 =>
                {
                    if error.is_endpoint_failure() {
                        self.judge(i, false);
                    }
                    self.report(&ep.label, &error, true);
                    tried = Some(i);
                    req = *unsent;
                }
                Err(f) => {
                    let error = match f {
                        Failure::Unsent(_, e) | Failure::Sent(e) => e,
                    };
                    // The client's own body failing (it went away mid-upload)
                    // says nothing about the endpoint; nor does another
                    // request's failed connection attempt, counted once.
                    let client_side = sent.as_ref().is_some_and(|u| u.broken())
                        || matches!(&error, SendError::Request(e) if e.is_user());
                    if !client_side && error.is_endpoint_failure() {
                        self.judge(i, false);
                    }
                    return Err(Failed {
                        endpoint: ep.label.clone(),
                        error,
                    });
                }
            }
        }
    }

    /// Logs and counts a failure of `endpoint` (`retried`: the request went
    /// on to another endpoint).
    pub(crate) fn report(&self, endpoint: &str, error: &SendError, retried: bool) {
        let kind = error.kind();
        crate::telemetry::metrics::upstream_error(&self.name, endpoint, kind.as_str());
        let error_words = crate::words::error_chain(error);
        if retried {
            tracing::warn!(
                upstream = &*self.name,
                endpoint,
                kind = kind.as_str(),
                error = error_words,
                "upstream endpoint failed; the request went to another endpoint"
            );
        } else {
            tracing::warn!(
                upstream = &*self.name,
                endpoint,
                kind = kind.as_str(),
                error = error_words,
                "upstream request failed"
            );
        }
    }
}
