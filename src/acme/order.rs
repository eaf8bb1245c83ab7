//! One certificate from an ACME server (RFC 8555 §7.4): the account (made
//! once, its key kept in `storageDir`), a new order for the domains, each
//! authorization answered with the configured challenge, finalization with
//! a CSR for a key made here, and the chain stored next to its key. JWS,
//! nonces and the protocol's JSON are the `instant-acme` crate's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use crate::config::model::{AcmeChallenge, AcmeSource};
use crate::pki::{Output, PkiError};

use super::challenges::challenges;

/// Why an order did not produce a certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    /// The ACME server answered with a problem document (RFC 7807).
    #[error("the ACME server refused: {kind}: {detail}")]
    Problem {
        /// Its `type`.
        kind: String,
        /// Its `detail`.
        detail: String,
    },
    /// Anything else the ACME library reports (transport, JSON, timeouts).
    #[error("ACME exchange failed")]
    Acme(#[source] instant_acme::Error),
    /// An authorization offers no challenge of the configured type.
    #[error("the ACME server offers no {0} challenge for \"{1}\"")]
    NoChallenge(&'static str, String),
    /// The server asks to validate a name the order did not name.
    #[error("the ACME server asks to validate \"{0}\", which is not in domains")]
    Unasked(String),
    /// An authorization the server will not validate.
    #[error("authorization for \"{0}\" is {1:?}")]
    Authorization(String, AuthorizationStatus),
    /// The order ended in another state than ready.
    #[error("the order is {0:?} after its challenges")]
    NotReady(OrderStatus),
    /// Making the key or the CSR, or writing the files.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Reading or writing the account.
    #[error("ACME account in {path}")]
    Account {
        /// The account file.
        path: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<instant_acme::Error> for OrderError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => OrderError::Problem {
                kind: p.r#type.unwrap_or_default(),
                detail: p.detail.unwrap_or_default(),
            },
            other => OrderError::Acme(other),
        }
    }
}

impl OrderError {
    /// The problem document's `type` and `detail`, when the server sent one.
    pub(crate) fn problem(&self) -> Option<(&str, &str)> {
        match self {
            OrderError::Problem { kind, detail } => Some((kind, detail)),
            _ => None,
        }
    }
}

/// `STORAGE/account-HASH.json`: one account per directory URL, so a
/// storage directory can serve a staging and a production directory.
pub(crate) fn account_path(spec: &AcmeSource) -> PathBuf {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spec.directory_url.as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    spec.storage_dir.join(format!("account-{hex}.json"))
}

/// The stored account, or a new one (stored before it is used). One at a
/// time in this process: the certificates of one storage directory share
/// their account, and two made at once would leave one of them unused.
async fn account(
    spec: &AcmeSource,
    http: impl Fn() -> Box<dyn instant_acme::HttpClient>,
    fresh: bool,
) -> Result<Account, OrderError> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let path = account_path(spec);
    let shown = path.display().to_string();
    let bad = |source: Box<dyn std::error::Error + Send + Sync>| OrderError::Account {
        path: shown.clone(),
        source,
    };
    if !fresh {
        match std::fs::read(&path) {
            Ok(text) => {
                let creds: AccountCredentials =
                    serde_json::from_slice(&text).map_err(|e| bad(Box::new(e)))?;
                return Ok(Account::builder_with_http(http())
                    .from_credentials(creds)
                    .await?);
            }
            // Only a missing account makes a new one: one that cannot be
            // read now is not replaced (CAA accounturi pins name it).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(Box::new(e))),
        }
    }
    let contact = spec.email.as_ref().map(|m| format!("mailto:{m}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = Account::builder_with_http(http())
        .create(
            &NewAccount {
                contact: &contacts,
                // Configuring a directory is agreeing to its terms.
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            spec.directory_url.clone(),
            None,
        )
        .await?;
    let json = serde_json::to_vec_pretty(&creds).map_err(|e| bad(Box::new(e)))?;
    crate::pki::write_file(&path, &json, true)?;
    tracing::info!(account = account.id(), file = %path.display(), "ACME account created");
    Ok(account)
}

/// What is answered for one authorization, withdrawn when the order ends
/// however it ends.
enum Answered {
    /// The token, and the file it was published in for other replicas.
    Http01(String, PathBuf),
    TlsAlpn01(String),
}

struct Withdraw(Vec<Answered>);

impl Drop for Withdraw {
    fn drop(&mut self) {
        for a in &self.0 {
            match a {
                Answered::Http01(token, file) => {
                    challenges().forget_http01(token);
                    let _ = std::fs::remove_file(file);
                }
                Answered::TlsAlpn01(domain) => challenges().forget_alpn01(domain),
            }
        }
    }
}

/// Orders a certificate for `spec.domains` and stores it in
/// `spec.storage_dir` as `NAME.pem`: the chain as issued, then its key.
pub(crate) async fn obtain(
    name: &str,
    spec: &AcmeSource,
    http: impl Fn() -> Box<dyn instant_acme::HttpClient>,
) -> Result<(), OrderError> {
    ensure_dir(&spec.storage_dir)?;
    let ids: Vec<Identifier> = spec
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut account = account(spec, &http, false).await?;
    let mut order = match account.new_order(&NewOrder::new(&ids)).await {
        Err(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
        {
            // The server forgot the stored account (a test server restarted,
            // or the account was deactivated): make a new one.
            tracing::warn!(
                certificate = name,
                "the ACME server does not know the stored account; creating a new one"
            );
            account = self::account(spec, &http, true).await?;
            account.new_order(&NewOrder::new(&ids)).await?
        }
        other => other?,
    };
    let mut answered = Withdraw(Vec::new());
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a?;
        let domain = match a.identifier().identifier {
            Identifier::Dns(d) => d.clone(),
            other => format!("{other:?}"),
        };
        // Only the names asked for get a challenge answer.
        if !spec.domains.contains(&domain.to_ascii_lowercase()) {
            return Err(OrderError::Unasked(domain));
        }
        match a.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(OrderError::Authorization(domain, other)),
        }
        let (kind, label) = match spec.challenge {
            AcmeChallenge::Http01 => (ChallengeType::Http01, "http-01"),
            AcmeChallenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        };
        let mut ch = a
            .challenge(kind)
            .ok_or_else(|| OrderError::NoChallenge(label, domain.clone()))?;
        let ka = ch.key_authorization();
        match spec.challenge {
            AcmeChallenge::Http01 => {
                challenges().answer_http01(&ch.token, ka.as_str());
                // For the replicas that share storageDir (the CA's request
                // may reach any of them). Not secret: token.thumbprint.
                let file = super::challenges::published(&spec.storage_dir, &ch.token);
                publish(&file, ka.as_str())?;
                answered.0.push(Answered::Http01(ch.token.clone(), file));
            }
            AcmeChallenge::TlsAlpn01 => {
                let cert = super::alpn::challenge_certificate(&domain, ka.digest().as_ref())?;
                challenges().answer_alpn01(&domain, cert);
                answered.0.push(Answered::TlsAlpn01(domain.clone()));
            }
        }
        ch.set_ready().await?;
    }
    let polling = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(120));
    let status = order.poll_ready(&polling).await?;
    drop(answered);
    if status != OrderStatus::Ready {
        return Err(OrderError::NotReady(status));
    }
    let key = spec.key_type.generate()?;
    let mut params = rcgen::CertificateParams::new(spec.domains.clone()).map_err(PkiError::from)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(PkiError::from)?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&polling).await?;
    // One file, one rename: a reload never reads a new key with an old
    // chain or the other way round.
    let mut pem = chain;
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&key.serialize_pem());
    crate::pki::write_files(&[Output::secret(&spec.file, pem)])?;
    Ok(())
}

/// Writes an http-01 answer where other replicas look for it.
fn publish(file: &Path, key_authorization: &str) -> Result<(), PkiError> {
    if let Some(dir) = file.parent() {
        ensure_dir(dir)?;
    }
    crate::pki::write_file(file, key_authorization.as_bytes(), false)
}

/// Creates the storage directory (0700) if it is not there.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| PkiError::Write {
        path: dir.display().to_string(),
        source,
    })
}
