//! Runs the real `portcullis` binary on port 0 and waits on its start-up
//! lines (never a sleep).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long start-up or an expected log line may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// Collected stdout lines of a child process.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<Lines>, Condvar)>);

impl Log {
    pub fn follow(&self, out: impl std::io::Read + Send + 'static) {
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (m, c) = &*log.0;
                m.lock().unwrap().lines.push(line);
                c.notify_all();
            }
            let (m, c) = &*log.0;
            m.lock().unwrap().closed = true;
            c.notify_all();
        });
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().lines.clone()
    }

    /// Waits for a line that satisfies `pred` (JSON-parsed), up to [`WAIT`].
    pub fn wait_for(
        &self,
        what: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        let (m, c) = &*self.0;
        let mut g = m.lock().unwrap();
        let mut seen = 0;
        loop {
            for line in &g.lines[seen..] {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if pred(&v) {
                        return v;
                    }
                }
            }
            seen = g.lines.len();
            let now = Instant::now();
            if g.closed || now >= deadline {
                panic!(
                    "no log line for {what}; output so far:\n{}",
                    g.lines.join("\n")
                );
            }
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for a raw line containing `needle`, up to [`WAIT`].
    pub fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let (m, c) = &*self.0;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(l) = g.lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                panic!(
                    "no line containing {needle:?}; output so far:\n{}",
                    g.lines.join("\n")
                );
            }
            g = c.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until a line arrives after the `seen` first ones, or `at_most`
    /// passes; returns the number of lines then.
    pub fn wait_past(&self, seen: usize, at_most: Duration) -> usize {
        let (m, c) = &*self.0;
        let g = m.lock().unwrap();
        let (g, _) = c
            .wait_timeout_while(g, at_most, |l| l.lines.len() <= seen && !l.closed)
            .unwrap();
        g.lines.len()
    }

    /// Starts following the output of a process spawned elsewhere.
    pub fn of(out: impl std::io::Read + Send + 'static) -> Log {
        let log = Log::default();
        log.follow(out);
        log
    }

    /// The lines that hold a Rust `Debug` rendering of a library value
    /// (SPEC §3: reasons in words, never a library's internal names).
    pub fn debug_renderings(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| debug_rendering(l).is_some())
            .collect()
    }

    /// The one `tls handshake refused` line of `result` (waiting for it),
    /// checked for SPEC §3's fields: client address, SNI, subject, issuer,
    /// fingerprint, the result and the reason in words. No other line
    /// names the same client connection.
    pub fn refusal(&self, result: &str) -> serde_json::Value {
        let line = self.wait_for(&format!("a refusal logged as {result}"), |v| {
            v["message"] == "tls handshake refused" && v["result"] == result
        });
        let client = line["client"].as_str().unwrap_or_default().to_string();
        assert!(client.starts_with("127.0.0.1:"), "{line}");
        for field in [
            "listener",
            "sni",
            "subject",
            "issuer",
            "fingerprint",
            "reason",
        ] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
        let reason = line["reason"].as_str().unwrap_or_default();
        assert!(reason.len() > 10, "{line}");
        assert_eq!(debug_rendering(&line.to_string()), None, "{line}");
        if !line["subject"].as_str().unwrap_or_default().is_empty() {
            assert_eq!(
                line["fingerprint"].as_str().unwrap_or_default().len(),
                64,
                "{line}"
            );
            assert!(
                line["issuer"].as_str().unwrap_or_default().contains('='),
                "{line}"
            );
        }
        let about: Vec<String> = self
            .lines()
            .into_iter()
            .filter(|l| l.contains(&format!("\"{client}\"")))
            .collect();
        assert_eq!(about.len(), 1, "one line per refusal: {about:#?}");
        line
    }

    /// Lines whose `message` field equals `msg`.
    pub fn messages(&self, msg: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == msg)
            .collect()
    }
}

/// What in `line` looks like a Rust `Debug` rendering of a library value
/// (`Other(OtherError(ChainTooLong))`, `Custom { kind: … }`, a bare
/// webpki/rustls variant name), if anything.
pub fn debug_rendering(line: &str) -> Option<String> {
    const NAMES: &[&str] = &[
        "Some(",
        "Ok(",
        "Err(",
        "Other(",
        "Io(",
        "Os { code",
        "Custom { kind",
        "{ kind: ",
        "UnknownIssuer",
        "BadSignature",
        "CertExpired",
        "CertNotValidYet",
        "InvalidPurpose",
        "ChainTooLong",
        "UnknownRevocationStatus",
        "CertRevoked",
        "NoCertificatesPresented",
        "AlertReceived",
        "InvalidMessage",
        "PeerMisbehaved",
        "PeerIncompatible",
        "InvalidCertificate",
        "BadEncoding",
        "UnsupportedSignatureAlgorithm",
    ];
    if let Some(n) = NAMES.iter().find(|n| line.contains(**n)) {
        return Some((*n).to_string());
    }
    // A CamelCase word of two humps or more followed by `(` or ` {`.
    let mut word_start = None;
    for (i, c) in line.char_indices().chain([(line.len(), ' ')]) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word_start.get_or_insert(i);
            continue;
        }
        let Some(start) = word_start.take() else {
            continue;
        };
        let word = &line[start..i];
        let humps = word.bytes().filter(u8::is_ascii_uppercase).count();
        let camel = word.starts_with(|c: char| c.is_ascii_uppercase())
            && humps >= 2
            && word.bytes().any(|c| c.is_ascii_lowercase())
            && !word.contains('_');
        let rest = &line[i..];
        if camel && (rest.starts_with('(') || rest.starts_with(" {")) {
            return Some(word.to_string());
        }
    }
    None
}

/// A running gateway.
pub struct Gateway {
    child: Child,
    pub addrs: HashMap<String, SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub log: Log,
    pub err: Log,
    pub dir: PathBuf,
}

impl Gateway {
    /// Writes `config` as `portcullis.yaml` in `dir` and runs it.
    pub fn start(dir: &Path, config: &str) -> Gateway {
        Gateway::start_with(dir, config, &[])
    }

    /// `start` with extra `run` arguments (such as `--threads 1`).
    pub fn start_with(dir: &Path, config: &str, args: &[&str]) -> Gateway {
        let path = dir.join("portcullis.yaml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(Gateway::run_args(&path)).args(args);
        Gateway::launch(dir, cmd)
    }

    /// The arguments `run` gets from these helpers, for a command that
    /// wraps the binary (`setpriv … portcullis run …`).
    pub fn run_args(config: &Path) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = ["run", "--log-format", "json", "-c"]
            .map(Into::into)
            .to_vec();
        v.push(config.into());
        v
    }

    /// Runs `cmd` (a `portcullis run --log-format json` command line, maybe
    /// wrapped) and waits until it is ready; `dir` is where its files are.
    pub fn launch(dir: &Path, mut cmd: Command) -> Gateway {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Log::default();
        log.follow(child.stdout.take().unwrap());
        let err_log = Log::default();
        err_log.follow(child.stderr.take().unwrap());
        let mut gw = Gateway {
            child,
            addrs: HashMap::new(),
            admin: None,
            log,
            err: err_log.clone(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = gw.log.lines();
            if lines.iter().any(|l| l.contains("\"message\":\"ready\"")) {
                for l in lines {
                    let v: serde_json::Value = match serde_json::from_str(&l) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    let addr = v["address"].as_str().and_then(|a| a.parse().ok());
                    match (v["message"].as_str(), addr) {
                        (Some("listening"), Some(a)) => {
                            gw.addrs
                                .insert(v["listener"].as_str().unwrap().to_string(), a);
                        }
                        (Some("admin listening"), Some(a)) => gw.admin = Some(a),
                        _ => {}
                    }
                }
                return gw;
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!(
                    "gateway exited with {status} before it was ready:\nstdout:\n{}\nstderr:\n{}",
                    gw.log.lines().join("\n"),
                    err_log.lines().join("\n")
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "gateway not ready within {WAIT:?}:\n{}",
                    gw.log.lines().join("\n")
                );
            }
            // Wait for the next stdout line rather than polling on a timer.
            let (m, c) = &*gw.log.0;
            let g = m.lock().unwrap();
            let n = g.lines.len();
            let _ = c.wait_timeout_while(g, Duration::from_millis(200), |l| {
                l.lines.len() == n && !l.closed
            });
        }
    }

    /// Waits until the gateway logged `message` `n` times in all.
    pub fn wait_messages(&self, message: &str, n: usize) {
        let mut seen = 0;
        self.log.wait_for(&format!("{message} x{n}"), |v| {
            if v["message"] == message {
                seen += 1;
            }
            seen >= n
        });
    }

    /// Runs `change`, then waits for the reload it causes.
    pub fn reload_after(&self, change: impl FnOnce()) {
        let before = self.log.messages("reloaded").len();
        change();
        self.wait_messages("reloaded", before + 1);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of listener `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs[name]
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit after SIGTERM"
            );
            let (m, c) = &*self.log.0;
            let g = m.lock().unwrap();
            let _ = c.wait_timeout_while(g, Duration::from_millis(100), |l| !l.closed);
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("gateway stderr:\n{}", self.err.lines().join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every test that runs a gateway checks its whole output: no log
        // line holds a Debug rendering of a library error (SPEC §3).
        if !std::thread::panicking() {
            let bad: Vec<String> = [&self.log, &self.err]
                .iter()
                .flat_map(|l| l.debug_renderings())
                .collect();
            assert!(
                bad.is_empty(),
                "log lines with a Debug rendering:\n{}",
                bad.join("\n")
            );
        }
    }
}

#[test]
fn debug_renderings_are_recognized_and_words_are_not() {
    for bad in [
        r#"{"reason":"invalid peer certificate: Other(OtherError(ChainTooLong))"}"#,
        r#"{"error":"Custom { kind: InvalidData, error: \"x\" }"}"#,
        r#"{"reason":"UnknownIssuer"}"#,
        r#"{"error":"hyper::Error(Io, Os { code: 104 })"}"#,
        r#"{"error":"InvalidCertificate(BadEncoding)"}"#,
        r#"{"error":"Error { kind: Io }"}"#,
        "not a valid CRL: TrailingData(Crl)",
    ] {
        assert!(debug_rendering(bad).is_some(), "{bad}");
    }
    for good in [
        r#"{"message":"tls handshake refused","reason":"issued by CN=Other CA, which trust bundle `clients` does not contain (add its CA to caFile)"}"#,
        r#"{"message":"config reloaded","hosts":["a.test"],"subject":"CN=a\\, b,O=Acme (Europe) Ltd"}"#,
        r#"{"message":"closing connection","reason":"policy_changed"}"#,
    ] {
        assert_eq!(debug_rendering(good), None, "{good}");
    }
}
