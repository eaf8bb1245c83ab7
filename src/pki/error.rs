//! Why a certificate tooling command failed, one variant per condition.
//! Each prints as one actionable line; a library's error is the `source`,
//! which the CLI prints after the text (`words::error_chain`).

use std::path::PathBuf;

use crate::identity::cert::BadCertificate;

/// Certificate tooling failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    /// rcgen refused the parameters.
    #[error("cannot create the certificate")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file that is not text.
    #[error("cannot read {}: not a text (PEM) file", .path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An output that exists (never overwritten: it may be a key).
    #[error("{} already exists; remove it or choose another output", .path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Flags that do not go together, or one that is missing; the text
    /// says what to give.
    #[error("{0}")]
    Usage(&'static str),
    /// A flag's value that is not of its kind.
    #[error("{flag} {value:?} is not {kind}")]
    NotA {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// What it should be, in words.
        kind: &'static str,
    },
    /// `--password-env` names an unset variable.
    #[error("environment variable {var} is not set (--password-env)")]
    PasswordEnvUnset {
        /// The variable.
        var: String,
    },
    /// An input that is not the PEM it should be.
    #[error("{what} is not a PEM {of} file")]
    NotPem {
        /// The flag or file.
        what: String,
        /// `certificate`, `CRL`.
        of: &'static str,
    },
    /// An input without what it should hold.
    #[error("{what} holds no {of}")]
    Holds {
        /// The flag or file.
        what: String,
        /// What is missing.
        of: &'static str,
    },
    /// A key that is not the certificate's.
    #[error("{key} does not belong to {cert}")]
    KeyMismatch {
        /// The key, in words.
        key: String,
        /// The certificate, in words.
        cert: String,
    },
    /// A certificate that does not parse.
    #[error(transparent)]
    Certificate(#[from] BadCertificate),
    /// DER that does not parse as what it should be.
    #[error("not a valid {what}")]
    Der {
        /// `CSR`, `CRL`, `certificate`.
        what: &'static str,
        /// Why.
        #[source]
        source: x509_cert::der::Error,
    },
    /// A certificate or key p12-keystore cannot take.
    #[error("unusable {what}")]
    Unusable {
        /// `certificate`, `private key`.
        what: &'static str,
        /// Why.
        #[source]
        source: p12_keystore::error::Error,
    },
    /// The PKCS#12 file could not be written.
    #[error("cannot build the PKCS#12 file")]
    P12Build(#[source] p12_keystore::error::Error),
    /// The PKCS#12 file could not be opened.
    #[error("cannot open the PKCS#12 file: wrong password or not a PKCS#12 file")]
    P12Open,
    /// A CSR portcullis refuses to sign.
    #[error(transparent)]
    Csr(#[from] CsrRefusal),
    /// A directory without `ca.crt` and `ca.key`.
    #[error("{} is not a CA directory (it needs ca.crt and ca.key; create one with `portcullis ca init --out {}`)", .dir.display(), .dir.display())]
    NotACaDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// `ca.crt` without a PEM certificate.
    #[error("{}: no PEM certificate", .path.display())]
    NoPemCertificate {
        /// The file.
        path: PathBuf,
    },
    /// `ca.crt` that is not a CA.
    #[error("{} is not a CA certificate (basicConstraints CA:TRUE missing)", .path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },
    /// `ca.key` that is not PKCS#8 PEM.
    #[error("{}: not a PKCS#8 private key in PEM form", .path.display())]
    KeyNotPkcs8 {
        /// The file.
        path: PathBuf,
    },
    /// A problem with one file, said after its name.
    #[error("{}", .path.display())]
    In {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<PkiError>,
    },
    /// No randomness for a serial number.
    #[error("the system random generator failed")]
    Random,
    /// The CA's own certificate in memory does not parse.
    #[error("unreadable ca.crt")]
    UnreadableCaCertificate,
    /// `cert revoke --cert` that is neither PEM nor DER.
    #[error("not a certificate (PEM or DER)")]
    NotACertificate,
    /// A certificate another CA issued.
    #[error("this certificate was issued by {issuer}, not by this CA ({ca})")]
    NotIssuedHere {
        /// Its issuer.
        issuer: String,
        /// This CA's subject.
        ca: String,
    },
    /// A CRL that is not PEM.
    #[error("{file}: not a PEM CRL")]
    CrlNotPem {
        /// The CRL file.
        file: String,
    },
    /// A CRL another CA issued.
    #[error(
        "{file} was issued by {issuer}, not by this CA ({ca}); move it away to start a new CRL"
    )]
    CrlIssuer {
        /// The CRL file.
        file: String,
        /// Its issuer.
        issuer: String,
        /// This CA's subject.
        ca: String,
    },
    /// A CRL this CA's key did not sign.
    #[error("{file} is not signed by the key of {}: its entries cannot be trusted; move it away to start a new CRL", .ca_crt.display())]
    CrlSignature {
        /// The CRL file.
        file: String,
        /// The CA certificate.
        ca_crt: PathBuf,
    },
    /// A critical CRL extension that would be lost.
    #[error("{file} has a critical extension ({oid}) portcullis cannot carry over")]
    CrlExtension {
        /// The CRL file.
        file: String,
        /// The extension.
        oid: String,
    },
    /// A CRL entry extension that would be lost.
    #[error("{file}: the entry for serial {serial} has an extension ({oid}) portcullis cannot carry over")]
    CrlEntryExtension {
        /// The CRL file.
        file: String,
        /// The entry's serial (upper-case hex).
        serial: String,
        /// The extension.
        oid: String,
    },
    /// PEM that does not parse (inspect).
    #[error("unreadable PEM")]
    Pem(#[from] pem::PemError),
    /// An encrypted private key (inspect).
    #[error("an encrypted private key; decrypt it first (openssl pkcs8)")]
    Encrypted,
    /// A PEM block inspect does not know.
    #[error("a PEM block \"{0}\" portcullis does not inspect")]
    UnknownBlock(String),
    /// A private key of an unknown type (inspect).
    #[error("a private key of a type portcullis does not know")]
    UnknownKey,
    /// A PKCS#12 file without `--password-*` (inspect).
    #[error("{} is PKCS#12: give its password with --password-env or --password-file", .path.display())]
    NeedsPassword {
        /// The file.
        path: PathBuf,
    },
    /// A file of no kind inspect knows.
    #[error("not a certificate, key, CSR, CRL or PKCS#12 file")]
    UnknownFile,
    /// An empty file (inspect).
    #[error("empty")]
    Empty,
    /// JSON output that could not be made.
    #[error("cannot write JSON")]
    Json(#[from] serde_json::Error),
    /// YAML output that could not be made.
    #[error("cannot write YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// Why a CSR is not signed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CsrRefusal {
    /// PEM input that is not text.
    #[error("the CSR is not PEM text")]
    NotText,
    /// PEM that does not parse.
    #[error("unreadable CSR PEM")]
    Pem,
    /// DER that does not parse.
    #[error("unreadable CSR")]
    Der(#[source] x509_cert::der::Error),
    /// rcgen could not read it.
    #[error("unreadable CSR")]
    Rcgen(#[source] rcgen::Error),
    /// A signature that is not the named key's.
    #[error("the CSR's signature does not verify: it was not made with the key it names")]
    Signature,
    /// An extension portcullis does not sign.
    #[error("the CSR requests an extension portcullis does not sign")]
    Extension,
    /// A subject that repeats an attribute (rcgen keeps one value per type).
    #[error("the CSR's subject repeats an attribute (two CN or OU values, say); portcullis signs one value per attribute: ask for one")]
    RepeatedAttribute,
    /// The key cannot be read.
    #[error("unreadable CSR key")]
    Key(#[source] x509_cert::der::Error),
    /// A key type portcullis does not sign.
    #[error("the CSR's key type is not supported (use ECDSA P-256/P-384, Ed25519 or RSA)")]
    KeyType,
    /// A server certificate without a name.
    #[error("a server certificate needs a DNS or IP name: the CSR has no subjectAltName")]
    NoName,
}
