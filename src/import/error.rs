//! Why an import could not be done at all (exit 2), one variant per
//! condition. What can be imported only in part is not an error: it is
//! reported as left behind.

use std::path::PathBuf;

use crate::material::Problem;

/// Why an import could not be done at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    /// A file could not be read.
    #[error("cannot read {}", .file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard input could not be read.
    #[error("cannot read stdin")]
    ReadStdin(#[source] std::io::Error),
    /// A key twice in one document: two manifests without `---`.
    #[error("{file}: line {line}: key {key} appears twice in one YAML document; if several manifests were concatenated (`cat a.yaml b.yaml`, `>>`), put a line `---` between them")]
    DuplicateKey {
        /// The input.
        file: String,
        /// The line of the second one.
        line: u64,
        /// The key, quoted (`?` when unknown).
        key: String,
    },
    /// Not YAML.
    #[error("{file}: not YAML: {reason}")]
    NotYaml {
        /// The input.
        file: String,
        /// The parser's words, without its snippet of the input.
        reason: String,
    },
    /// A document without `kind`.
    #[error("{file}: a document without kind")]
    NoKind {
        /// The input.
        file: String,
    },
    /// A name the API server would refuse.
    #[error(
        "{what} {value:?} is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')"
    )]
    NotAName {
        /// Which name.
        what: String,
        /// The name.
        value: String,
    },
    /// A namespace the API server would refuse.
    #[error("{what} {value:?} is not a valid Kubernetes namespace (lower-case letters, digits and '-', at most 63)")]
    NotANamespace {
        /// Which namespace.
        what: String,
        /// The namespace.
        value: String,
    },
    /// An object without `metadata.name`.
    #[error("{what} without metadata.name")]
    Unnamed {
        /// `an Ingress`, `a Secret`.
        what: &'static str,
    },
    /// An Ingress without `spec`.
    #[error("Ingress {object}: no spec")]
    NoSpec {
        /// `namespace/name`.
        object: String,
    },
    /// A host that is not a DNS name.
    #[error("{object}: host {host:?} is not a DNS name")]
    NotAHost {
        /// `namespace/name`.
        object: String,
        /// The host.
        host: String,
    },
    /// A path without a backend.
    #[error("{object}: a path without a backend")]
    PathWithoutBackend {
        /// `namespace/name`.
        object: String,
    },
    /// A path that is not absolute.
    #[error("{object}: path {path:?} does not start with / (the API server would refuse it)")]
    RelativePath {
        /// `namespace/name`.
        object: String,
        /// The path.
        path: String,
    },
    /// A resource backend.
    #[error("{object}: a backend without a service (resource backends are not supported)")]
    NoService {
        /// `namespace/name`.
        object: String,
    },
    /// A passthrough backend that is not a service.
    #[error("{object}: a passthrough backend without a service")]
    PassthroughWithoutService {
        /// `namespace/name`.
        object: String,
    },
    /// A backend service without a name.
    #[error("{object}: a backend service without a name")]
    UnnamedService {
        /// `namespace/name`.
        object: String,
    },
    /// A backend service without a port.
    #[error("{object}: backend service {service} has no port")]
    NoPort {
        /// `namespace/name`.
        object: String,
        /// The service.
        service: String,
    },
    /// A Secret reference that is not `namespace/name`.
    #[error(
        "{object}: {prefix}/auth-tls-secret or proxy-ssl-secret {value:?} is not namespace/name"
    )]
    NotASecretRef {
        /// `namespace/name`.
        object: String,
        /// The annotation prefix.
        prefix: String,
        /// The value.
        value: String,
    },
    /// Two Ingresses ask for different client authentication on one host.
    #[error("host {host}: client authentication differs between Ingress {first} and Ingress {second}; make them agree")]
    AuthDiffers {
        /// The host.
        host: String,
        /// The Ingress that defined it first.
        first: String,
        /// The one that disagrees.
        second: String,
    },
    /// Two objects would get one generated name.
    #[error("{first} and {second} would both be {section}.{name} in the imported config; rename one of them (generated names join namespace, name and port with '-')")]
    NameClash {
        /// What has the name.
        first: String,
        /// What would get it too.
        second: String,
        /// `certificates`, `trustBundles`, `upstreams`.
        section: String,
        /// The name.
        name: String,
    },
    /// A Secret in the input that the gateway could not read.
    #[error(transparent)]
    Secret(#[from] Problem),
    /// No Ingress to import.
    #[error("no Ingress with rules or a defaultBackend in the input")]
    Nothing,
    /// The config could not be serialized.
    #[error("cannot write the config")]
    Json(#[from] serde_json::Error),
    /// The config could not be written as YAML.
    #[error("cannot write the config as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}
