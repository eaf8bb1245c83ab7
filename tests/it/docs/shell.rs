//! The `sh` examples of a page, run in order in one working directory with
//! the real binary: a small reading of shell syntax (quotes, comments,
//! `\` continuations, `NAME=VALUE` prefixes, `export`, `>` and `>>`), the
//! stand-ins for what a reader brings, and `run` under the Gateway helper.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use crate::support::gateway::{bin, Gateway, WAIT};
use crate::support::{Ca, Spec};

use super::markdown::Block;
use super::material::{place, put};

/// One command line of an example.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Line {
    /// `NAME=VALUE` words before the command.
    pub env: Vec<(String, String)>,
    /// The command and its arguments.
    pub words: Vec<String>,
    /// `> FILE` (false) or `>> FILE` (true).
    pub stdout: Option<(bool, String)>,
}

/// The logical lines of a block (`\` continuations joined), each with the
/// block-relative index of its first line; blank and comment lines dropped.
pub fn logical_lines(block: &Block) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc: Option<(usize, String)> = None;
    for (i, l) in block.lines.iter().enumerate() {
        let (start, mut text) = acc.take().unwrap_or((i, String::new()));
        match l.trim_end().strip_suffix('\\') {
            Some(head) => {
                text.push_str(head);
                text.push(' ');
                acc = Some((start, text));
            }
            None => {
                text.push_str(l);
                let t = text.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    out.push((start, t.to_string()));
                }
            }
        }
    }
    if let Some((start, text)) = acc {
        out.push((start, text.trim().to_string()));
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Out(bool),
}

fn tokenize(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    let unsupported = |c: char| {
        format!("shell syntax {c:?} is not understood by the docs test (write a plain command)")
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    toks.push(Tok::Word(w));
                }
            }
            '#' if word.is_none() => break,
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c @ ('$' | '`')) => return Err(unsupported(c)),
                        Some(c) => w.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                if let Some(c) = chars.next() {
                    word.get_or_insert_with(String::new).push(c);
                }
            }
            '>' => {
                if let Some(w) = word.take() {
                    toks.push(Tok::Word(w));
                }
                let append = chars.next_if_eq(&'>').is_some();
                toks.push(Tok::Out(append));
            }
            '$' | '`' | '<' | '|' | '&' | ';' | '(' | ')' => return Err(unsupported(c)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = word {
        toks.push(Tok::Word(w));
    }
    Ok(toks)
}

/// `NAME=VALUE`, split.
pub fn assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| (name.to_string(), value.to_string()))
}

/// Reads one logical line.
pub fn parse(line: &str) -> Result<Line, String> {
    let mut out = Line::default();
    let mut toks = tokenize(line)?.into_iter();
    while let Some(t) = toks.next() {
        match t {
            Tok::Word(w) => match assignment(&w) {
                Some(a) if out.words.is_empty() => out.env.push(a),
                _ => out.words.push(w),
            },
            Tok::Out(append) => match toks.next() {
                Some(Tok::Word(f)) if out.stdout.is_none() => out.stdout = Some((append, f)),
                _ => return Err("a redirection needs one file name".into()),
            },
        }
    }
    Ok(out)
}

/// The outcome of a command: its exit status and output.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs the binary with `args` in `dir`; a command that has not exited
/// after [`WAIT`] is killed and reported (one that never exits, such as
/// `run` outside the Gateway helper or `demo`, needs a skip marker).
pub fn portcullis(dir: &Path, env: &[(String, String)], args: &[String]) -> Result<Ran, String> {
    let child = Command::new(bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the binary: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(WAIT) {
        Ok(out) => out,
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let _ = rx.recv();
            return Err(format!(
                "still running after {WAIT:?} (a command that does not exit needs a skip marker)"
            ));
        }
    };
    let out = crate::support::words_only(out.map_err(|e| e.to_string())?);
    Ok(Ran {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// The last lines a command wrote to stderr (or else to stdout, where
/// `probe` gives its verdict), for a failure message.
pub fn tail(ran: &Ran) -> String {
    let bytes = match ran.stderr.is_empty() {
        true => &ran.stdout,
        false => &ran.stderr,
    };
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// Makes what a reader brings to a command, when no earlier example made
/// it: a CSR (`--csr`), a password file (`--password-file`), the manifests
/// `import ingress-nginx` reads (what `kubectl get ingress,secret -o yaml`
/// prints). Returns the files it made.
pub fn stand_ins(dir: &Path, args: &[String]) -> Result<Vec<String>, String> {
    let mut made = Vec::new();
    let missing = |f: &str| place(dir, f).map(|p| !p.exists());
    for pair in args.windows(2) {
        let (opt, file) = (pair[0].as_str(), pair[1].as_str());
        match opt {
            "--csr" if missing(file)? => put(dir, file, csr().as_bytes())?,
            "--password-file" if missing(file)? => put(dir, file, b"docs-test password\n")?,
            _ => continue,
        }
        made.push(file.to_string());
    }
    if args.len() > 2 && args[0] == "import" && args[1] == "ingress-nginx" {
        let mut rest = args[2..].iter();
        while let Some(a) = rest.next() {
            if a.starts_with("--") {
                if !a.contains('=') {
                    rest.next();
                }
            } else if a != "-" && missing(a)? {
                put(dir, a, cluster().as_bytes())?;
                made.push(a.clone());
            }
        }
    }
    Ok(made)
}

/// A CSR an application made for itself.
fn csr() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["app.example.com".to_string()]).unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// An Ingress with client authentication and the two Secrets it refers to.
fn cluster() -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ca = Ca::root("Cluster Client CA");
    let server = ca.leaf(&Spec {
        not_after_days: 59,
        ..Spec::server(&["api.example.com"])
    });
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: prod
  annotations:
    nginx.ingress.kubernetes.io/auth-tls-verify-client: \"on\"
    nginx.ingress.kubernetes.io/auth-tls-secret: prod/client-ca
spec:
  tls:
  - hosts: [api.example.com]
    secretName: api-tls
  rules:
  - host: api.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{ service: {{ name: api, port: {{ number: 8080 }} }} }}
---
apiVersion: v1
kind: Secret
metadata: {{ name: api-tls, namespace: prod }}
type: kubernetes.io/tls
data:
  tls.crt: {}
  tls.key: {}
---
apiVersion: v1
kind: Secret
metadata: {{ name: client-ca, namespace: prod }}
type: Opaque
data:
  ca.crt: {}
  ca.crl: {}
",
        b64(&server.chain_pem),
        b64(&server.key_pem),
        b64(&ca.cert_pem),
        b64(&ca.crl(&[]))
    )
}

/// `portcullis run …` under the Gateway helper: the config the command
/// names, with every listener and the admin endpoint moved to
/// `127.0.0.1:0` (an example's fixed port may be taken), must become ready
/// and exit 0 on SIGTERM. The helper writes it as `portcullis.yaml` (so
/// relative paths still resolve) and reads its JSON start-up lines, so the
/// example's own `--log-format` is dropped.
pub fn run_gateway(dir: &Path, line: &Line) -> Result<(), String> {
    if !line.env.is_empty() {
        return Err("the Gateway helper cannot pass environment variables to run".into());
    }
    let mut config = None;
    let mut extra = Vec::new();
    let mut args = line.words[2..].iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--config" => config = args.next().cloned(),
            "--log-format" => {
                args.next();
            }
            a if a.starts_with("--config=") => config = Some(a["--config=".len()..].into()),
            a if a.starts_with("--log-format=") => {}
            a => extra.push(a.to_string()),
        }
    }
    let config = config.ok_or("run without -c (the test does not read PORTCULLIS_CONFIG)")?;
    let text = std::fs::read_to_string(place(dir, &config)?)
        .map_err(|e| format!("cannot read {config}: {e}"))?;
    let mut value: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{config}: {e}"))?;
    for l in value["listeners"].as_array_mut().into_iter().flatten() {
        l["address"] = "127.0.0.1:0".into();
    }
    if value["admin"].is_object() {
        value["admin"]["address"] = "127.0.0.1:0".into();
    }
    let moved = serde_json::to_string_pretty(&value).unwrap();
    let own = dir.join("portcullis.yaml");
    let before = std::fs::read(&own).ok();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Gateway::start_with(dir, &moved, &extra).terminate()
    }));
    match before {
        Some(b) => std::fs::write(&own, b).unwrap(),
        None => {
            let _ = std::fs::remove_file(&own);
        }
    }
    match outcome {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("ran, but exited with {status} after SIGTERM")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the gateway did not start".into())),
    }
}

#[test]
fn shell_lines_are_read_like_a_shell() {
    let l = parse(r#"P=… portcullis ca init --cn "My CA" --x 'a b' a\ b # note"#).unwrap();
    assert_eq!(l.env, vec![("P".to_string(), "…".to_string())]);
    assert_eq!(
        l.words,
        [
            "portcullis",
            "ca",
            "init",
            "--cn",
            "My CA",
            "--x",
            "a b",
            "a b"
        ]
    );
    let l = parse("portcullis secret tls --name a >> secrets.yaml").unwrap();
    assert_eq!(l.stdout, Some((true, "secrets.yaml".to_string())));
    assert!(parse("portcullis x | grep y").is_err());
    assert!(parse("portcullis x --password $P").is_err());
}
