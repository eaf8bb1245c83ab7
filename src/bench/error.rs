//! Why `portcullis bench` could not start.

use std::path::PathBuf;
use std::time::Duration;

use super::Mode;

/// Why bench could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// The target, `--resolve`, `--cert`/`--key` or `--ca`.
    #[error(transparent)]
    Tool(#[from] crate::tools::ToolError),
    /// A request mode with a `HOST:PORT` target.
    #[error("{target}: mode {} needs an https:// URL", .mode.as_str())]
    NeedsUrl {
        /// The target as given.
        target: String,
        /// The mode.
        mode: Mode,
    },
    /// `--rate` with another mode than keepalive, or zero.
    #[error("--rate {rate}: give a rate above 0, with mode keepalive (mode {} runs closed loop)", .mode.as_str())]
    Rate {
        /// The rate given.
        rate: u64,
        /// The mode.
        mode: Mode,
    },
    /// The host has no address.
    #[error("cannot resolve {host}")]
    Unresolved {
        /// The host.
        host: String,
    },
    /// No `--ca`.
    #[error("give --ca (the CA that issued the server's certificate)")]
    NoCa,
    /// `--client-certs` with `--cert`/`--key`.
    #[error("give --cert and --key, or --client-certs, not both")]
    TwoIdentities,
    /// `--client-certs` with `resume`.
    #[error("--client-certs does not go with resume (a resumed session keeps one identity)")]
    PoolResume,
    /// `--client-certs` cannot be listed.
    #[error("cannot read --client-certs {}", .dir.display())]
    Pool {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--client-certs` without pairs.
    #[error("--client-certs {} holds no NAME.crt with its NAME.key", .dir.display())]
    EmptyPool {
        /// The directory.
        dir: PathBuf,
    },
    /// rustls refused the client configuration.
    #[error("cannot make the TLS client configuration")]
    Tls(#[source] rustls::Error),
    /// `--sni` (or the host) is not a server name.
    #[error("{name:?} is not a server name")]
    ServerName {
        /// The name.
        name: String,
    },
    /// `--duration` overflows the clock.
    #[error("--duration {}s is too long", .duration.as_secs())]
    TooLong {
        /// The duration.
        duration: Duration,
    },
}
