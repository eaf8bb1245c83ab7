//! Certificate tooling (SPEC §1 `ca`, `cert`, `secret`): a CA in a
//! directory, issuing and signing, revocation, PKCS#12, inspection and
//! Kubernetes Secrets. Built on rcgen for writing and x509-cert for reading.
//!
//! Every command writes its files through [`write_files`]: temporary files
//! in the target directory renamed into place, keys created 0600, so a
//! failure never leaves a partial or world-readable file behind.

pub(crate) mod ca;
pub(crate) mod crl;
mod error;
pub(crate) mod inspect;
pub(crate) mod issue;
pub(crate) mod keys;
pub(crate) mod p12;
pub(crate) mod secret;

use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) use error::{CsrRefusal, PkiError};
pub(crate) use issue::{IssueSpec, Profile};
pub(crate) use keys::KeyType;

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a whole text file.
pub(crate) fn read_text(path: &Path) -> Result<String, PkiError> {
    String::from_utf8(read(path)?).map_err(|_| PkiError::NotText {
        path: path.to_path_buf(),
    })
}

/// One file to write: path, contents, and whether it is secret (0600).
pub(crate) struct Output {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub contents: Vec<u8>,
    /// A private key or other secret: created with mode 0600.
    pub secret: bool,
}

impl Output {
    /// A public file.
    pub(crate) fn public(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        Output {
            path: path.into(),
            contents: contents.into(),
            secret: false,
        }
    }

    /// A secret file (mode 0600).
    pub(crate) fn secret(path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        Output {
            path: path.into(),
            contents: contents.into(),
            secret: true,
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per write, also across processes that share the directory
    // (replicas in containers all run as pid 1): two writers of one file
    // each rename a complete file of their own, and the last one wins.
    let mut r = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut r);
    let n = u64::from_le_bytes(r);
    dir.join(format!(".{name}.tmp{}-{n:016x}", std::process::id()))
}

fn write_temp(path: &Path, contents: &[u8], secret: bool) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Writes every output or none: all are written to temporary files first
/// (where a full disk or a permission problem shows), then renamed into
/// place, and on failure the temporary files are removed. A rename within
/// one directory that fails after that would leave the files renamed before
/// it in place; that is the one gap.
pub(crate) fn write_files(outputs: &[Output]) -> Result<(), PkiError> {
    let mut temps = Vec::new();
    let cleanup = |temps: &[PathBuf]| {
        for t in temps {
            let _ = std::fs::remove_file(t);
        }
    };
    for o in outputs {
        let tmp = temp_path(&o.path);
        if let Err(source) = write_temp(&tmp, &o.contents, o.secret) {
            let _ = std::fs::remove_file(&tmp);
            cleanup(&temps);
            return Err(PkiError::Write {
                path: o.path.display().to_string(),
                source,
            });
        }
        temps.push(tmp);
    }
    for (o, tmp) in outputs.iter().zip(&temps) {
        if let Err(source) = std::fs::rename(tmp, &o.path) {
            cleanup(&temps);
            return Err(PkiError::Write {
                path: o.path.display().to_string(),
                source,
            });
        }
    }
    Ok(())
}

/// Writes one file atomically (see [`write_files`]).
pub(crate) fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    write_files(&[Output {
        path: path.to_path_buf(),
        contents: contents.to_vec(),
        secret,
    }])
}

/// Refuses to overwrite existing files (a key, above all).
pub(crate) fn refuse_existing(paths: &[&Path]) -> Result<(), PkiError> {
    for p in paths {
        if p.exists() {
            return Err(PkiError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// A password from `--password-env VAR` or `--password-file F` (one trailing
/// newline stripped).
pub(crate) fn password(env: Option<&str>, file: Option<&Path>) -> Result<String, PkiError> {
    let p = match (env, file) {
        (Some(var), None) => std::env::var(var).map_err(|_| PkiError::PasswordEnvUnset {
            var: var.to_string(),
        })?,
        (None, Some(f)) => {
            let text = read_text(f)?;
            let t = text.strip_suffix('\n').unwrap_or(&text);
            t.strip_suffix('\r').unwrap_or(t).to_string()
        }
        _ => {
            return Err(PkiError::Usage(
                "give the password with --password-env VAR or --password-file FILE",
            ))
        }
    };
    if p.is_empty() {
        return Err(PkiError::Usage("the password is empty"));
    }
    Ok(p)
}
