//! Command-line definitions and dispatch. No business logic: each command
//! calls into the library and maps the outcome to an exit code.

mod demo;
mod pki;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LoadError;
use crate::server::{self, StartError};
use crate::telemetry::{self, LogFormat};

/// portcullis: a mutual-TLS gateway.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
pub struct Cli {
    /// Log format (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (SIGTERM/SIGINT drain).
    Run {
        /// Configuration file.
        #[arg(short = 'c', long = "config", env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
        /// Worker threads (default: number of CPUs).
        #[arg(long, env = "PORTCULLIS_THREADS")]
        threads: Option<usize>,
    },
    /// Validate a configuration and every certificate it names.
    /// Exit 0 ok, 1 problems found, 2 unusable input.
    Check {
        /// Configuration file.
        #[arg(short = 'c', long = "config", env = "PORTCULLIS_CONFIG")]
        config: PathBuf,
    },
    /// Self-contained quick start: throwaway CA and certificates, a config,
    /// and the gateway with the built-in echo upstream.
    Demo {
        /// Where to write the certificates and config (default: a new
        /// private directory, mode 0700, in the system's temporary
        /// directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Certificate authorities.
    #[command(subcommand)]
    Ca(pki::CaCommand),
    /// Issue, sign, revoke, inspect and bundle certificates.
    #[command(subcommand)]
    Cert(pki::CertCommand),
    /// Kubernetes Secret manifests on stdout.
    #[command(subcommand)]
    Secret(pki::SecretCommand),
    /// mTLS load generator (MODE: handshake, resume, keepalive, h2, stream, idle).
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        mode: crate::bench::Mode,
        /// https://HOST:PORT/PATH (HTTP modes) or HOST:PORT (stream, idle).
        target: String,
        #[command(flatten)]
        tls: ClientTlsArgs,
        /// A directory of NAME.crt + NAME.key pairs: each new connection
        /// presents the next one, as a fleet of clients would (instead of
        /// --cert/--key; not with resume).
        #[arg(long, value_name = "DIR")]
        client_certs: Option<PathBuf>,
        /// Parallel connections (streams for h2; connections held for idle).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// How long to run (e.g. 10s, 500ms, 1m).
        #[arg(long, default_value = "10s")]
        duration: String,
        /// Stop after this many operations.
        #[arg(long)]
        requests: Option<u64>,
        /// keepalive only: send this many requests per second in all, on a
        /// fixed schedule (open loop); latency counts from each request's
        /// scheduled time, so a stalled server shows as latency, as wrk2 does.
        #[arg(long)]
        rate: Option<u64>,
        /// Worker threads of the load generator (default: CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Machine-readable report.
        #[arg(long)]
        json: bool,
    },
    /// Translate configurations of other tools.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Diagnose a (mutual) TLS handshake: exit 0 when it works, 1 with the reason in words.
    Probe {
        /// https://HOST[:PORT][/PATH] or HOST:PORT.
        target: String,
        #[command(flatten)]
        tls: ClientTlsArgs,
        /// NAME:PORT:ADDRESS: connect to ADDRESS for NAME:PORT, still sending
        /// NAME as server name and Host (as curl's --resolve). Repeatable.
        #[arg(long)]
        resolve: Vec<String>,
        /// Print the diagnosis as one JSON object (ok, reason, tls,
        /// server_chain, server_verified, client_certificate_requested,
        /// accepted_issuers, client_certificate_sent/_accepted, http_status).
        #[arg(long)]
        json: bool,
    },
}

/// How `bench` and `probe` present themselves and judge the server.
#[derive(Debug, clap::Args)]
struct ClientTlsArgs {
    /// Client certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// CA certificates that verify the server.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Server name to send (default: the host).
    #[arg(long)]
    sni: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Ingress objects (+ Secrets in the same files) → a portcullis config on stdout.
    /// Exit 0 complete, 3 when something could not be carried over, 2 on unusable input.
    IngressNginx {
        /// Files of (multi-document) YAML; `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Annotation prefix.
        #[arg(long, default_value = "nginx.ingress.kubernetes.io")]
        annotation_prefix: String,
        /// Where the Secrets the config refers to are written.
        #[arg(long, default_value = ".")]
        secrets_dir: PathBuf,
        /// Address of the https listener in the output.
        #[arg(long, default_value = "0.0.0.0:443")]
        listen: std::net::SocketAddr,
        /// Address of the admin endpoint (/metrics, /healthz, /readyz) in the
        /// output; none without it.
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
    },
}

/// Prints a tooling command's result: its text on stdout, or its error as
/// one line on stderr with exit 1.
fn finish(result: Result<String, crate::pki::PkiError>) -> ExitCode {
    match result {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints each line of an error (its sources joined on the same line).
fn report(e: &dyn std::error::Error) {
    let text = crate::words::error_chain(e);
    for line in text.lines() {
        eprintln!("portcullis: {line}");
    }
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, std::io::Error> {
    let mut b = match threads.filter(|n| *n > 0) {
        // One worker: a single-threaded scheduler (no work-stealing queues,
        // no cross-thread wakeups), like one nginx worker process.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    b.enable_all();
    b.build()
}

/// Help and version go out as clap prints them; a usage mistake becomes
/// one line (clap's first, without its usage block), exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("portcullis: {first} (see --help)");
            ExitCode::from(2)
        }
    }
}

fn exit_code(e: &StartError) -> ExitCode {
    match e {
        StartError::Config(LoadError::Unreadable { .. }) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // rustls needs exactly one process-wide provider: aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Check { config } => match server::prepare(&config) {
            Ok((_, snapshot)) => {
                for w in &snapshot.warnings {
                    eprintln!("portcullis: warning: {w}");
                }
                // SPEC §2: loadable, but not fit to serve (an expired CRL).
                for p in &snapshot.problems {
                    eprintln!("portcullis: {p}");
                }
                if !snapshot.problems.is_empty() {
                    return ExitCode::FAILURE;
                }
                // Not a problem: `run` orders them (and is not ready until).
                for (name, why) in &snapshot.pending {
                    eprintln!(
                        "portcullis: note: certificates.{name}: no usable certificate stored yet ({why}); `run` orders one with ACME"
                    );
                }
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                report(&e);
                exit_code(&e)
            }
        },
        Command::Run { config, threads } => {
            telemetry::init(cli.log_format);
            let snapshot = match server::prepare(&config) {
                Ok((_, s)) => s,
                Err(e) => {
                    report(&e);
                    return exit_code(&e);
                }
            };
            let rt = match runtime(threads) {
                Ok(rt) => rt,
                Err(e) => {
                    report(&e);
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(server::run(config, snapshot, |_| {})) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report(&e);
                    exit_code(&e)
                }
            }
        }
        Command::Demo { dir, port } => {
            telemetry::init(cli.log_format);
            demo::run(dir, port)
        }
        Command::Ca(cmd) => finish(pki::ca(cmd)),
        Command::Import(ImportCommand::IngressNginx {
            files,
            annotation_prefix,
            secrets_dir,
            listen,
            admin,
        }) => {
            let opts = crate::import::Options {
                files,
                prefix: annotation_prefix,
                secrets_dir,
                listen,
                admin,
            };
            match crate::import::run(&opts) {
                Err(e) => {
                    report(&e);
                    ExitCode::from(2)
                }
                Ok(out) => {
                    let files: Vec<crate::pki::Output> = out
                        .secrets
                        .iter()
                        .map(|(p, y)| crate::pki::Output::secret(p.clone(), y.clone()))
                        .collect();
                    // Like `ca init --out`: the directory is made if missing.
                    if !files.is_empty() {
                        if let Err(e) = std::fs::create_dir_all(&opts.secrets_dir) {
                            eprintln!(
                                "portcullis: cannot create --secrets-dir {}: {e}",
                                opts.secrets_dir.display()
                            );
                            return ExitCode::from(2);
                        }
                    }
                    if let Err(e) = crate::pki::write_files(&files) {
                        report(&e);
                        return ExitCode::from(2);
                    }
                    print!("{}", out.config);
                    for w in &out.warnings {
                        eprintln!("warning: {w}");
                    }
                    for l in &out.left_behind {
                        eprintln!("not carried over: {l}");
                    }
                    if out.left_behind.is_empty() && !out.placeholders {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
            }
        }
        Command::Bench {
            mode,
            target,
            tls: ClientTlsArgs { cert, key, ca, sni },
            client_certs,
            concurrency,
            duration,
            requests,
            rate,
            threads,
            json,
        } => {
            let Some(duration) = crate::config::validate::parse_duration(&duration) else {
                eprintln!("portcullis: --duration {duration:?} is not a duration (for example 10s, 500ms, 1m)");
                return ExitCode::from(2);
            };
            let rt = match runtime(threads) {
                Ok(rt) => rt,
                Err(e) => {
                    report(&e);
                    return ExitCode::FAILURE;
                }
            };
            let opts = crate::bench::Options {
                mode,
                target,
                cert,
                key,
                client_certs,
                ca,
                sni,
                concurrency: concurrency.max(1),
                duration,
                requests,
                rate,
            };
            match rt.block_on(crate::bench::run(opts)) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        print!("{}", crate::bench::text(&r));
                    }
                    if r.ops == 0 {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    report(&e);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Probe {
            target,
            tls: ClientTlsArgs { cert, key, ca, sni },
            resolve,
            json,
        } => {
            let report = crate::probe::probe(&crate::probe::Options {
                target,
                cert,
                key,
                ca,
                sni,
                resolve,
                json,
            });
            print!("{}", report.text);
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Cert(cmd) => finish(pki::cert(cmd)),
        Command::Secret(cmd) => finish(pki::secret(cmd).map(|y| y.trim_end().to_string())),
    }
}
