//! What can be wrong with a piece of material, one variant per condition.
//! Each names the file (or Secret entry) it is about; a library's own error
//! is the `source`, printed after the text by `words::error_chain`.

use std::path::PathBuf;

use super::crl::CrlStanding;
use crate::identity::cert::BadCertificate;
use crate::words::rfc3339;

/// One problem with certificates, keys, trust bundles or CRLs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    /// A file could not be read.
    #[error("cannot read {}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PEM that does not parse.
    #[error("{what}: not a PEM certificate file")]
    NotPem {
        /// The file or Secret entry.
        what: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// PEM without a certificate.
    #[error("{what}: contains no PEM certificate")]
    NoCertificate {
        /// The file or Secret entry.
        what: String,
    },
    /// A Secret manifest that is not text.
    #[error("{}: not a YAML file", .file.display())]
    NotYaml {
        /// The manifest.
        file: PathBuf,
    },
    /// YAML that is not a Secret manifest.
    #[error("{}: not a Kubernetes Secret manifest: {reason}", .file.display())]
    NotASecret {
        /// The manifest.
        file: PathBuf,
        /// The YAML parser's words (without its snippet of the file).
        reason: String,
    },
    /// A manifest of another kind.
    #[error("{}: kind is {kind:?}, not Secret", .file.display())]
    WrongKind {
        /// The manifest.
        file: PathBuf,
        /// Its kind.
        kind: String,
    },
    /// A `data` entry that is not base64.
    #[error("{}: data.{key} is not base64", .file.display())]
    NotBase64 {
        /// The manifest.
        file: PathBuf,
        /// The entry.
        key: String,
    },
    /// `secretDir` that is not a directory.
    #[error("{} is not a directory", .dir.display())]
    NotADirectory {
        /// The path.
        dir: PathBuf,
    },
    /// YAML that is not a ConfigMap manifest.
    #[error("{}: not a Kubernetes ConfigMap manifest: {reason}", .file.display())]
    NotAConfigMapManifest {
        /// The manifest.
        file: PathBuf,
        /// The YAML parser's words (without its snippet of the file).
        reason: String,
    },
    /// A manifest that is not a ConfigMap.
    #[error("{}: kind is {kind:?}, not ConfigMap", .file.display())]
    NotAConfigMap {
        /// The manifest.
        file: PathBuf,
        /// Its kind.
        kind: String,
    },
    /// A ConfigMap without the key a trust bundle names.
    #[error("{}: the ConfigMap has no data key {key:?} (give trustBundles.NAME.key)", .file.display())]
    NoConfigMapKey {
        /// The manifest.
        file: PathBuf,
        /// The key.
        key: String,
    },
    /// A session-ticket key file that cannot be used.
    #[error("{origin} {reason}")]
    TicketKeys {
        /// The file, or the Secret and its key.
        origin: String,
        /// Why (never the key text).
        reason: super::tickets::BadKeys,
    },
    /// Ticket keys any user may read (a warning).
    #[error("{} is readable by every user (mode {mode:o}); whoever reads the ticket keys can resume a session as any client: make it 0600, or 0440 with the gateway's group", .file.display())]
    TicketKeysReadable {
        /// The file.
        file: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A Secret without the entry a source needs.
    #[error("{origin}: no {entry}")]
    MissingEntry {
        /// The Secret.
        origin: String,
        /// The keys looked for (`tls.crt or cert`).
        entry: &'static str,
    },
    /// No private key in a key file or entry.
    #[error("{origin}: no PKCS#8, PKCS#1 or SEC1 private key in PEM form")]
    NoKey {
        /// The file or Secret.
        origin: String,
    },
    /// `passwordEnv` names an unset variable.
    #[error("environment variable {var} is not set (passwordEnv)")]
    PasswordEnvUnset {
        /// The variable.
        var: String,
    },
    /// `passwordFile` is not text.
    #[error("{}: not a text file", .file.display())]
    PasswordNotText {
        /// The file.
        file: PathBuf,
    },
    /// A PKCS#12 bundle that does not open.
    #[error("{}", .file.display())]
    Pkcs12 {
        /// The bundle.
        file: PathBuf,
        /// Why.
        #[source]
        source: crate::pki::PkiError,
    },
    /// A PKCS#12 bundle without a key.
    #[error("{}: holds no private key", .file.display())]
    Pkcs12NoKey {
        /// The bundle.
        file: PathBuf,
    },
    /// A PKCS#12 bundle without a certificate.
    #[error("{}: holds no certificate", .file.display())]
    Pkcs12NoCertificate {
        /// The bundle.
        file: PathBuf,
    },
    /// A key of another certificate.
    #[error("the private key in {key_origin} does not belong to the certificate in {origin}")]
    KeyMismatch {
        /// Where the key came from.
        key_origin: String,
        /// Where the certificate came from.
        origin: String,
    },
    /// A key rustls cannot sign with.
    #[error("{key_origin}: unusable private key")]
    UnusableKey {
        /// Where the key came from.
        key_origin: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// A certificate that does not parse.
    #[error("{origin}: certificate {index}")]
    BadCertificate {
        /// The file or Secret.
        origin: String,
        /// Its place in the file, from 1.
        index: usize,
        /// Why.
        #[source]
        source: BadCertificate,
    },
    /// A certificate webpki cannot take as a trust anchor.
    #[error("{origin}: certificate {index} is not a usable trust anchor: webpki cannot read it as an X.509 certificate")]
    NotAnAnchor {
        /// The file or Secret.
        origin: String,
        /// Its place in the file, from 1.
        index: usize,
    },
    /// A certificate before its notBefore.
    #[error("{origin}: certificate \"{subject}\" is not valid before {}", rfc3339(*.not_before))]
    NotYetValid {
        /// The file or Secret.
        origin: String,
        /// Its subject.
        subject: String,
        /// notBefore, Unix seconds.
        not_before: u64,
    },
    /// A certificate past its notAfter.
    #[error("{origin}: certificate \"{subject}\" expired on {}", rfc3339(*.not_after))]
    Expired {
        /// The file or Secret.
        origin: String,
        /// Its subject.
        subject: String,
        /// notAfter, Unix seconds.
        not_after: u64,
    },
    /// A chain whose second or later certificate is not a CA.
    #[error("{origin}: certificate {index} of the chain ({subject}) is not a CA, so the chain cannot lead to a trust anchor; the file must hold the leaf first, then its intermediates")]
    ChainNotCa {
        /// The file or Secret.
        origin: String,
        /// Its place in the chain, from 1.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// A trust bundle certificate that is not a CA.
    #[error("{origin}: certificate {index} ({subject}) is not a CA certificate; a trust bundle holds only CAs")]
    NotACa {
        /// The file or Secret.
        origin: String,
        /// Its place in the file, from 1.
        index: usize,
        /// Its subject.
        subject: String,
    },
    /// A CA past its notAfter.
    #[error("{origin}: CA \"{subject}\" expired on {}", rfc3339(*.not_after))]
    CaExpired {
        /// The file or Secret.
        origin: String,
        /// Its subject.
        subject: String,
        /// notAfter, Unix seconds.
        not_after: u64,
    },
    /// A certificate that expires within the warning window.
    #[error("certificate \"{subject}\" expires in {days} days ({})", rfc3339(*.not_after))]
    ExpiresSoon {
        /// Its subject.
        subject: String,
        /// Whole days left.
        days: u64,
        /// notAfter, Unix seconds.
        not_after: u64,
    },
    /// A CA that expires within the warning window.
    #[error("CA \"{subject}\" expires in {days} days")]
    CaExpiresSoon {
        /// Its subject.
        subject: String,
        /// Whole days left.
        days: u64,
    },
    /// A server certificate that does not name a hostname it serves.
    #[error("certificate \"{certificate}\" does not cover \"{name}\"; it covers [{}]", .covers.join(", "))]
    DoesNotCover {
        /// The certificate's config name.
        certificate: String,
        /// The hostname.
        name: String,
        /// Its DNS and IP SANs.
        covers: Vec<String>,
    },
    /// PEM CRLs that do not parse.
    #[error("{what}: not a PEM CRL file")]
    CrlNotPem {
        /// The file or Secret entry.
        what: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// PEM without a CRL.
    #[error("{what}: contains no CRL")]
    NoCrl {
        /// The file or Secret entry.
        what: String,
    },
    /// A CRL webpki refuses.
    #[error("{what}: not a valid CRL: {why}")]
    BadCrl {
        /// The file or Secret entry.
        what: String,
        /// webpki's reason, in words.
        why: &'static str,
    },
    /// A CRL past, or near, its nextUpdate.
    #[error(transparent)]
    Crl(#[from] CrlStanding),
}
