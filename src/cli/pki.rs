//! `ca`, `cert` and `secret`: argument definitions and dispatch to `pki`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};

use crate::pki::ca::{self, InitSpec};
use crate::pki::crl::{self, Reason, Revoked};
use crate::pki::inspect;
use crate::pki::secret::{self, Layout};
use crate::pki::{self, IssueSpec, KeyType, Output, PkiError, Profile};

/// `--days` and `--crl-days`: at least one day, at most 100 years (larger
/// values would overflow the certificate's time fields).
fn days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=36500)
}

/// `portcullis ca …`
#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// Create a CA in a directory: ca.crt, ca.key (0600), ca.crl; with
    /// --intermediate-of also chain.crt.
    Init {
        /// Directory to create the CA in.
        #[arg(long)]
        out: PathBuf,
        /// Common name.
        #[arg(long, default_value = "portcullis CA", value_parser = NonEmptyStringValueParser::new())]
        cn: String,
        /// Key type.
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
        /// Validity in days (1 to 36500).
        #[arg(long, default_value_t = 3650, value_parser = days())]
        days: u32,
        /// Make an intermediate CA signed by the CA in this directory.
        #[arg(long, value_name = "DIR")]
        intermediate_of: Option<PathBuf>,
    },
    /// Re-sign DIR/ca.crl with a fresh thisUpdate/nextUpdate and the next
    /// CRL number, keeping every revoked entry. Run it well before the
    /// CRL's nextUpdate (a daily timer): an expired CRL refuses every client.
    Crl {
        /// CA directory.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// Days until the new nextUpdate (1 to 36500).
        #[arg(long, default_value_t = crl::DEFAULT_CRL_DAYS, value_parser = days())]
        days: u32,
    },
}

/// `portcullis cert …`
#[derive(Debug, Subcommand)]
pub(super) enum CertCommand {
    /// Issue a certificate and a new key: PREFIX.crt (leaf then chain) and PREFIX.key (0600).
    Issue(IssueArgs),
    /// Sign a CSR (subject and SANs from the CSR; usage from the profile only).
    Sign {
        /// CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The CSR (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// server, client or peer.
        #[arg(long, value_enum)]
        profile: Profile,
        /// Output certificate file.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days (1 to 36500).
        #[arg(long, default_value_t = 90, value_parser = days())]
        days: u32,
    },
    /// Revoke a certificate: add it to DIR/ca.crl and re-sign it.
    Revoke {
        /// CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The certificate to revoke.
        #[arg(long)]
        cert: PathBuf,
        /// RFC 5280 reason.
        #[arg(long, value_enum, ignore_case = true)]
        reason: Option<Reason>,
        /// Days until the CRL's nextUpdate (1 to 36500).
        #[arg(long, default_value_t = crl::DEFAULT_CRL_DAYS, value_parser = days())]
        crl_days: u32,
    },
    /// Describe certificates, keys, CSRs, CRLs and PKCS#12 files.
    Inspect {
        /// Files to inspect.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Environment variable holding a PKCS#12 password.
        #[arg(long, conflicts_with = "password_file")]
        password_env: Option<String>,
        /// File holding a PKCS#12 password.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Bundle a key, its certificate and chain into PKCS#12.
    P12 {
        /// Certificate (PEM; may hold the chain too).
        #[arg(long)]
        cert: PathBuf,
        /// Private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// Extra chain certificates (PEM).
        #[arg(long)]
        chain: Option<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Environment variable holding the password.
        #[arg(long, conflicts_with = "password_file")]
        password_env: Option<String>,
        /// File holding the password (one trailing newline is ignored).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// 3DES and SHA-1 for old consumers (default: AES-256 with PBKDF2).
        #[arg(long)]
        legacy: bool,
        /// Friendly name of the entry.
        #[arg(long, default_value = "portcullis")]
        name: String,
    },
}

/// `cert issue` arguments.
#[derive(Debug, Args)]
pub(super) struct IssueArgs {
    /// CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// server, client or peer.
    #[arg(long, value_enum)]
    profile: Profile,
    /// Output prefix: writes PREFIX.crt and PREFIX.key.
    #[arg(long)]
    out: PathBuf,
    /// Common name (default: the first SAN).
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    cn: Option<String>,
    /// DNS name (repeatable).
    #[arg(long)]
    dns: Vec<String>,
    /// IP address (repeatable).
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// URI, e.g. a SPIFFE ID (repeatable).
    #[arg(long)]
    uri: Vec<String>,
    /// Email address (repeatable).
    #[arg(long)]
    email: Vec<String>,
    /// Organization.
    #[arg(long)]
    org: Option<String>,
    /// Organizational unit.
    #[arg(long)]
    ou: Option<String>,
    /// Key type.
    #[arg(long, value_enum, default_value_t)]
    key_type: KeyType,
    /// Validity in days (1 to 36500).
    #[arg(long, default_value_t = 90, value_parser = days())]
    days: u32,
}

/// `portcullis secret …`
#[derive(Debug, Subcommand)]
pub(super) enum SecretCommand {
    /// kubernetes.io/tls: tls.crt, tls.key, optional ca.crt.
    Tls(SecretArgs),
    /// Opaque for Istio credentialName: cert, key, cacert.
    Istio(SecretArgs),
    /// Opaque with whichever of tls.crt, tls.key, ca.crt, ca.crl are given.
    Generic(SecretArgs),
}

/// Secret arguments.
#[derive(Debug, Args)]
pub(super) struct SecretArgs {
    /// Secret name.
    #[arg(long)]
    name: String,
    /// Namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Certificate chain (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// CA certificates (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// CRL (PEM; generic only).
    #[arg(long)]
    crl: Option<PathBuf>,
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Runs `ca …`.
pub(super) fn ca(cmd: CaCommand) -> Result<String, PkiError> {
    match cmd {
        CaCommand::Init {
            out,
            cn,
            key_type,
            days,
            intermediate_of,
        } => {
            let parent = intermediate_of.as_deref().map(ca::load).transpose()?;
            let spec = InitSpec { cn, key_type, days };
            let made = ca::init(&out, &spec, parent.as_ref())?;
            Ok(format!(
                "created {} CA \"{}\" in {} (ca.crt, ca.key, ca.crl{})",
                if parent.is_some() {
                    "intermediate"
                } else {
                    "root"
                },
                made.summary.subject,
                out.display(),
                if parent.is_some() { ", chain.crt" } else { "" }
            ))
        }
        CaCommand::Crl { ca, days } => {
            let ca = ca::load(&ca)?;
            let r = crl::renew(&ca, days)?;
            Ok(format!(
                "re-signed {} (CRL number {}, {} revoked, next update {})",
                ca.dir.join("ca.crl").display(),
                r.crl_number,
                r.entries,
                crate::words::rfc3339(r.next_update)
            ))
        }
    }
}

/// Runs `cert …`.
pub(super) fn cert(cmd: CertCommand) -> Result<String, PkiError> {
    match cmd {
        CertCommand::Issue(a) => {
            let ca = ca::load(&a.ca)?;
            let (crt, key) = (with_ext(&a.out, "crt"), with_ext(&a.out, "key"));
            pki::refuse_existing(&[&crt, &key])?;
            let spec = IssueSpec {
                cn: a.cn,
                dns: a.dns,
                ip: a.ip,
                uri: a.uri,
                email: a.email,
                org: a.org,
                ou: a.ou,
                days: a.days,
                key_type: a.key_type,
            };
            let issued = pki::issue::issue(&ca, a.profile, &spec)?;
            pki::write_files(&[
                Output::public(&crt, issued.cert_pem),
                Output::secret(&key, issued.key_pem),
            ])?;
            Ok(format!("wrote {} and {}", crt.display(), key.display()))
        }
        CertCommand::Sign {
            ca,
            csr,
            profile,
            out,
            days,
        } => {
            let ca = ca::load(&ca)?;
            pki::refuse_existing(&[&out])?;
            let csr = pki::read(&csr)?;
            let issued = pki::issue::sign(&ca, profile, &csr, days)?;
            pki::write_file(&out, issued.cert_pem.as_bytes(), false)?;
            Ok(format!("wrote {}", out.display()))
        }
        CertCommand::Revoke {
            ca,
            cert,
            reason,
            crl_days,
        } => {
            let ca = ca::load(&ca)?;
            let bytes = pki::read(&cert)?;
            match crl::revoke(&ca, &bytes, reason, crl_days)? {
                Revoked::Added { serial, crl_number } => Ok(format!(
                    "revoked serial {serial}; {} re-signed (CRL number {crl_number})",
                    ca.dir.join("ca.crl").display()
                )),
                Revoked::Already { serial } => Ok(format!(
                    "serial {serial} was already revoked; nothing changed"
                )),
            }
        }
        CertCommand::Inspect {
            files,
            json,
            password_env,
            password_file,
        } => {
            let password = match (&password_env, &password_file) {
                (None, None) => None,
                (e, f) => Some(pki::password(e.as_deref(), f.as_deref())?),
            };
            let reports = files
                .iter()
                .map(|f| inspect::inspect(f, password.as_deref()))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                Ok(serde_json::to_string_pretty(&reports)?)
            } else {
                Ok(inspect::text(&reports).trim_end().to_string())
            }
        }
        CertCommand::P12 {
            cert,
            key,
            chain,
            out,
            password_env,
            password_file,
            legacy,
            name,
        } => {
            let password = pki::password(password_env.as_deref(), password_file.as_deref())?;
            pki::refuse_existing(&[&out])?;
            let chain = chain.as_deref().map(pki::read).transpose()?;
            let bytes = pki::p12::build(
                &pki::read(&cert)?,
                &pki::read(&key)?,
                chain.as_deref(),
                &password,
                &name,
                legacy,
            )?;
            pki::write_file(&out, &bytes, true)?;
            Ok(format!("wrote {}", out.display()))
        }
    }
}

/// Runs `secret …`; returns the manifest.
pub(super) fn secret(cmd: SecretCommand) -> Result<String, PkiError> {
    let (layout, a) = match cmd {
        SecretCommand::Tls(a) => (Layout::Tls, a),
        SecretCommand::Istio(a) => (Layout::Istio, a),
        SecretCommand::Generic(a) => (Layout::Generic, a),
    };
    if layout != Layout::Generic && (a.cert.is_none() || a.key.is_none()) {
        return Err(PkiError::Usage("give --cert and --key"));
    }
    let read = |p: &Option<PathBuf>| p.as_deref().map(pki::read).transpose();
    let files = secret::Files {
        cert: read(&a.cert)?,
        key: read(&a.key)?,
        ca: read(&a.ca)?,
        crl: read(&a.crl)?,
    };
    secret::render(layout, &a.name, a.namespace.as_deref(), &files)
}
