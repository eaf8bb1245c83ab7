//! Prometheus metrics with exactly the SPEC §5 names and labels. Label sets
//! use `Arc<str>` and `&'static str` so that counting a handshake or a
//! request allocates nothing.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{listener, result}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandshakeLabels {
    /// Listener name.
    pub listener: Arc<str>,
    /// SPEC §3 result label.
    pub result: &'static str,
}

/// `{listener}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabels {
    /// Listener name.
    pub listener: Arc<str>,
}

/// `{listener, host, status}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    /// Listener name.
    pub listener: Arc<str>,
    /// The host entry's first hostname (bounded: never the raw Host header).
    pub host: Arc<str>,
    /// HTTP status.
    pub status: u16,
}

/// `{upstream, kind}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    /// Upstream name.
    pub upstream: Arc<str>,
    /// The endpoint's `host:port` (a TCP upstream's address).
    pub endpoint: Arc<str>,
    /// `refused`, `timeout`, `tls`, `io`.
    pub kind: &'static str,
}

/// `{listener, reason}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClosedLabels {
    /// Listener name.
    pub listener: Arc<str>,
    /// `revoked`, `expired`, `policy_changed`.
    pub reason: &'static str,
}

/// `{name, subject}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CertLabels {
    /// `certificates` or `trustBundles` name.
    pub name: String,
    /// RFC 2253 subject.
    pub subject: String,
}

/// `{trust_bundle, issuer}` (SPEC §5)
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CrlLabels {
    /// Trust bundle name.
    pub trust_bundle: String,
    /// CRL issuer.
    pub issuer: String,
}

/// `{certificate, result}` (SPEC §5)
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AcmeLabels {
    /// `certificates` name.
    pub certificate: String,
    /// `ok` or `error`.
    pub result: &'static str,
}

type HistogramFamily = Family<ListenerLabels, Histogram, fn() -> Histogram>;

/// Every metric portcullis exports.
pub(crate) struct Metrics {
    registry: Registry,
    /// `portcullis_tls_handshakes_total`
    pub handshakes: Family<HandshakeLabels, Counter>,
    /// `portcullis_connections_active`
    pub connections_active: Family<ListenerLabels, Gauge>,
    /// `portcullis_http_requests_total`
    pub http_requests: Family<HttpLabels, Counter>,
    /// `portcullis_http_request_duration_seconds`
    pub http_duration: HistogramFamily,
    /// `portcullis_upstream_errors_total`
    pub upstream_errors: Family<UpstreamLabels, Counter>,
    /// `portcullis_certificate_expiry_timestamp_seconds`
    pub cert_expiry: Family<CertLabels, Gauge>,
    /// `portcullis_crl_next_update_timestamp_seconds`
    pub crl_next_update: Family<CrlLabels, Gauge>,
    /// `portcullis_connections_closed_total`
    pub connections_closed: Family<ClosedLabels, Counter>,
    /// `portcullis_acme_orders_total`
    pub acme_orders: Family<AcmeLabels, Counter>,
    /// `portcullis_reloads_total`
    pub reloads: Counter,
    /// `portcullis_reload_failures_total`
    pub reload_failures: Counter,
}

fn duration_histogram() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            handshakes: Family::default(),
            connections_active: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            upstream_errors: Family::default(),
            cert_expiry: Family::default(),
            crl_next_update: Family::default(),
            connections_closed: Family::default(),
            acme_orders: Family::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "portcullis_tls_handshakes",
            "TLS handshakes by outcome",
            m.handshakes.clone(),
        );
        registry.register(
            "portcullis_connections_active",
            "Open client connections",
            m.connections_active.clone(),
        );
        registry.register(
            "portcullis_http_requests",
            "HTTP requests answered",
            m.http_requests.clone(),
        );
        registry.register(
            "portcullis_http_request_duration_seconds",
            "Time to answer a request",
            m.http_duration.clone(),
        );
        registry.register(
            "portcullis_upstream_errors",
            "Failures to reach an upstream",
            m.upstream_errors.clone(),
        );
        registry.register(
            "portcullis_certificate_expiry_timestamp_seconds",
            "notAfter of loaded certificates and trust-bundle CAs",
            m.cert_expiry.clone(),
        );
        registry.register(
            "portcullis_crl_next_update_timestamp_seconds",
            "nextUpdate of loaded CRLs",
            m.crl_next_update.clone(),
        );
        registry.register(
            "portcullis_connections_closed",
            "Open connections the gateway closed: certificate revoked or expired, policy changed by a reload",
            m.connections_closed.clone(),
        );
        registry.register(
            "portcullis_acme_orders",
            "ACME orders by outcome (a failed one is retried with backoff)",
            m.acme_orders.clone(),
        );
        registry.register(
            "portcullis_reloads",
            "Successful reloads",
            m.reloads.clone(),
        );
        registry.register(
            "portcullis_reload_failures",
            "Reloads refused (the previous configuration kept serving)",
            m.reload_failures.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process-wide metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Counts one handshake outcome.
pub(crate) fn handshake(listener: &Arc<str>, result: &'static str) {
    metrics()
        .handshakes
        .get_or_create(&HandshakeLabels {
            listener: listener.clone(),
            result,
        })
        .inc();
}

/// Counts one failure to reach `upstream` (`kind`: refused, timeout, tls,
/// io). The failure path only, so the label's copy of the name is fine.
pub(crate) fn upstream_error(upstream: &str, endpoint: &str, kind: &'static str) {
    metrics()
        .upstream_errors
        .get_or_create(&UpstreamLabels {
            upstream: Arc::from(upstream),
            endpoint: Arc::from(endpoint),
            kind,
        })
        .inc();
}

/// Counts one connection closed by the gateway (SPEC §3).
pub(crate) fn connection_closed(listener: &Arc<str>, reason: &'static str) {
    metrics()
        .connections_closed
        .get_or_create(&ClosedLabels {
            listener: listener.clone(),
            reason,
        })
        .inc();
}

/// Counts a connection as open until the guard drops.
pub(crate) struct ActiveConnection(Gauge);

impl ActiveConnection {
    /// Marks one more open connection on `listener`.
    pub(crate) fn open(listener: &Arc<str>) -> Self {
        let g = metrics()
            .connections_active
            .get_or_create_owned(&ListenerLabels {
                listener: listener.clone(),
            });
        g.inc();
        ActiveConnection(g)
    }
}

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
