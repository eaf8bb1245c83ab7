//! What `deploy/` ships (issue 17): the gateway runs on exactly the config of
//! `deploy/kubernetes/configmap.yaml`, on the volume layout the Deployment
//! produces (files as the kubelet lays out Secret and ConfigMap volumes,
//! `..data` links included), as the image runs it — user 65532, every file
//! it reads owned by root and read-only, nothing writable but its `/tmp`.
//! The manifests themselves are validated against the Kubernetes schemas by
//! `deploy/lint` (run by `scripts/test`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use rustls::{AlertDescription, HandshakeKind};
use serde_json::Value;

use crate::support::client::{config, connect, exchange, get_request, plain_get, IO_TIMEOUT};
use crate::support::gateway::bin;
use crate::support::volume::Volume;
use crate::support::{Ca, Gateway, Leaf, Outcome, Spec};

/// The image's user and group (deploy/Containerfile `USER`, the
/// Deployment's runAsUser/runAsGroup/fsGroup).
const UID: u32 = 65532;

fn deploy(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Deployment's pod spec and its one container.
fn pod() -> (Value, Value) {
    let d = deploy("kubernetes/deployment.yaml");
    let spec = d["spec"]["template"]["spec"].clone();
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = containers[0].clone();
    (spec, c)
}

/// Seconds of a config duration (`30s`, `2m`).
fn seconds(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.len() - 1);
    n.parse::<u64>().unwrap() * if unit == "m" { 60 } else { 1 }
}

/// The config the ConfigMap holds, and its directory in the pod.
fn config_map_config() -> (String, String) {
    let (_, c) = pod();
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["run", "-c"], "{args:?}");
    let path = Path::new(args[2]);
    let cm = deploy("kubernetes/configmap.yaml");
    let key = path.file_name().unwrap().to_str().unwrap();
    let text = cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data key {key}"));
    (
        text.to_string(),
        path.parent().unwrap().to_str().unwrap().to_string(),
    )
}

#[test]
fn the_manifests_agree_with_the_config_and_the_image() {
    let (spec, c) = pod();
    let (text, _) = config_map_config();
    let cfg: Value = serde_saphyr::from_str(&text).unwrap();
    // Every port the config binds is a container port above 1023, and no
    // capability is added back: nothing needs NET_BIND_SERVICE.
    let mut bound: Vec<u64> = cfg["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .chain([cfg["admin"]["address"].as_str().unwrap()])
        .map(|a| a.parse::<SocketAddr>().unwrap().port().into())
        .collect();
    let mut declared: Vec<u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    bound.sort_unstable();
    declared.sort_unstable();
    assert_eq!(bound, declared);
    assert!(bound.iter().all(|p| *p >= 1024), "{bound:?}");
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(spec["securityContext"]["runAsUser"], UID);
    assert_eq!(spec["securityContext"]["fsGroup"], UID);
    assert_eq!(spec["automountServiceAccountToken"], false);
    let containerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Containerfile"))
            .unwrap();
    assert!(
        containerfile.contains(&format!("\nUSER {UID}:{UID}\n")),
        "the image runs as the user the Deployment names"
    );
    // The grace period covers the preStop wait and the whole drain.
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = seconds(cfg["limits"]["drainTimeout"].as_str().unwrap());
    assert!(grace > sleep + drain, "{grace} <= {sleep} + {drain}");
    // Probes on the admin endpoints.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    let admin_port = cfg["admin"]["address"]
        .as_str()
        .unwrap()
        .parse::<SocketAddr>()
        .unwrap()
        .port();
    let annotations =
        &deploy("kubernetes/deployment.yaml")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}

/// A pod's file tree as the Deployment mounts it: each volume under the
/// config's directory, kubelet style, owned by root and readable through
/// the fsGroup only.
struct Pod {
    root: tempfile::TempDir,
    tmp: PathBuf,
    volumes: BTreeMap<String, (Volume, u32)>,
    ca: Ca,
    server_name: String,
}

/// The files of each volume the Deployment mounts, by the object it names.
fn contents(object: &str, ca: &Ca, server: &Leaf, config: &str) -> Vec<(String, String)> {
    let keys = base64::engine::general_purpose::STANDARD.encode([0x11; 48]) + "\n";
    let v = |k: &str, c: &str| (k.to_string(), c.to_string());
    match object {
        "portcullis-config" => vec![v("portcullis.yaml", config)],
        // kubernetes.io/tls, as cert-manager writes it.
        "portcullis-tls" => vec![
            v("tls.crt", &server.chain_pem),
            v("tls.key", &server.key_pem),
            v("ca.crt", &ca.cert_pem),
        ],
        "portcullis-client-ca" => vec![v("ca.crt", &ca.cert_pem)],
        "portcullis-ticket-keys" => vec![v("tickets", &keys)],
        other => panic!("the Deployment mounts {other}, which this test does not know"),
    }
}

/// Owner root, group the fsGroup, `mode` for files; directories stay
/// root's and unwritable for anyone else.
fn seal(dir: &Path, mode: u32) {
    chown(dir, Some(0), Some(UID)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            continue;
        }
        if t.is_dir() {
            seal(&e.path(), mode);
        } else {
            chown(e.path(), Some(0), Some(UID)).unwrap();
            std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

impl Pod {
    /// Lays out every volume of the Deployment, with the ConfigMap's config
    /// changed only where a test must (`edit`: addresses, upstream).
    fn new(edit: impl Fn(&str) -> String) -> Pod {
        assert_eq!(
            nix_uid(),
            0,
            "this test lays files out as root-owned and runs the gateway as uid {UID}, as the kubelet would: run the suite as root (CI does)"
        );
        let (spec, c) = pod();
        let (text, config_dir) = config_map_config();
        let config = edit(&text);
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = Ca::root("Deploy CA");
        let server_name = "gateway.example.com".to_string();
        assert!(text.contains(&server_name));
        let server = ca.leaf(&Spec::server(&[&server_name]));
        let mut volumes = BTreeMap::new();
        let mut tmp = None;
        for m in c["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let at = m["mountPath"].as_str().unwrap();
            let vol = spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap();
            if vol["emptyDir"].is_object() {
                assert_eq!(at, "/tmp", "the only writable place");
                let t = root.path().join("..tmp");
                std::fs::create_dir(&t).unwrap();
                chown(&t, Some(0), Some(UID)).unwrap();
                std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o1777)).unwrap();
                tmp = Some(t);
                continue;
            }
            assert_eq!(m["readOnly"], true, "{name}");
            let rel = Path::new(at).strip_prefix(&config_dir).unwrap_or_else(|_| {
                panic!("{at} is outside {config_dir}, where the config's relative paths lead")
            });
            let (object, mode) = match (vol["configMap"].as_object(), vol["secret"].as_object()) {
                (Some(cm), None) => (cm["name"].as_str().unwrap(), 0o644),
                (None, Some(s)) => (
                    s["secretName"].as_str().unwrap(),
                    u32::try_from(s["defaultMode"].as_u64().unwrap_or(0o644)).unwrap(),
                ),
                _ => panic!("volume {name}: neither a ConfigMap nor a Secret"),
            };
            let files = contents(object, &ca, &server, &config);
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let dir = root.path().join(rel);
            let v = Volume::new(&dir, &refs);
            volumes.insert(object.to_string(), (v, mode));
        }
        for (object, (_, mode)) in &volumes {
            let dir = Pod::dir_of(root.path(), &c, &spec, object);
            seal(&dir, *mode);
        }
        Pod {
            root,
            tmp: tmp.unwrap(),
            volumes,
            ca,
            server_name,
        }
    }

    fn dir_of(root: &Path, c: &Value, spec: &Value, object: &str) -> PathBuf {
        let (_, config_dir) = config_map_config();
        let vol = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["configMap"]["name"] == object || v["secret"]["secretName"] == object)
            .unwrap();
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == vol["name"])
            .unwrap();
        root.join(
            Path::new(m["mountPath"].as_str().unwrap())
                .strip_prefix(&config_dir)
                .unwrap(),
        )
    }

    /// The kubelet's update of `object`: a new generation swapped in.
    fn swap(&mut self, object: &str, files: &[(&str, &str)]) {
        let (spec_, c) = pod();
        let dir = Pod::dir_of(self.root.path(), &c, &spec_, object);
        let (v, mode) = self.volumes.get_mut(object).unwrap();
        v.swap(files);
        seal(&dir, *mode);
    }

    /// A replica as the image runs it: uid and gid 65532 (and the fsGroup),
    /// no environment but TMPDIR, working directory `/`.
    fn replica(&self) -> Gateway {
        let mut cmd = unprivileged();
        cmd.arg(bin())
            .args(Gateway::run_args(&self.root.path().join("portcullis.yaml")))
            .env("TMPDIR", &self.tmp);
        Gateway::launch(self.root.path(), cmd)
    }

    fn client(&self, leaf: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        config(&self.ca, leaf, &[])
    }
}

/// `setpriv` to the image's user, groups and an empty environment.
fn unprivileged() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={UID}"))
        .arg(format!("--regid={UID}"))
        .arg(format!("--groups={UID}"))
        .arg("--")
        .env_clear()
        .current_dir("/");
    cmd
}

fn nix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The ConfigMap's config with loopback port-0 addresses and the built-in
/// echo upstream in place of the cluster Service; every edit must apply.
fn on_loopback(text: &str) -> String {
    https_at(text, "127.0.0.1:0")
}

/// [`on_loopback`], the https listener at `https`.
fn https_at(text: &str, https: &str) -> String {
    let mut t = text.to_string();
    for (from, to) in [
        ("\"0.0.0.0:9090\"", "\"127.0.0.1:0\""),
        ("0.0.0.0:8443", https),
        ("0.0.0.0:8080", "127.0.0.1:0"),
        (
            "{ url: \"http://app.default.svc.cluster.local:8080\" }",
            "{ builtin: echo }",
        ),
    ] {
        assert_eq!(
            t.matches(from).count(),
            1,
            "{from} in the ConfigMap's config"
        );
        t = t.replacen(from, to, 1);
    }
    t
}

/// One request on a new connection; the handshake kind and the outcome.
fn visit(
    addr: SocketAddr,
    name: &str,
    cfg: &Arc<rustls::ClientConfig>,
) -> (Option<HandshakeKind>, Outcome) {
    match connect(addr, name, cfg) {
        Ok(mut s) => {
            let kind = s.conn.handshake_kind();
            (kind, exchange(&mut s, &get_request("/", name)))
        }
        Err(o) => (None, o),
    }
}

/// The serial the server presents, as the client saw it.
fn served_leaf(addr: SocketAddr, name: &str, cfg: &Arc<rustls::ClientConfig>) -> Vec<u8> {
    let s = connect(addr, name, cfg).unwrap();
    s.conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

#[test]
fn two_replicas_run_unprivileged_on_the_manifests_layout() {
    let mut p = Pod::new(on_loopback);
    let (a, b) = (p.replica(), p.replica());
    let alice = p.ca.leaf(&Spec::client("alice"));
    let name = p.server_name.clone();
    for gw in [&a, &b] {
        let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert_eq!(
            uid.split_whitespace().skip(1).collect::<Vec<_>>(),
            vec![UID.to_string().as_str(); 4],
            "runs as the image's user"
        );
        assert_eq!(plain_get(gw.admin.unwrap(), "/readyz").status(), 200);
    }
    // Mutual TLS as the ConfigMap configures it, through the ticket keys
    // of the Secret volume: a session made on a resumes on b.
    let cfg = p.client(Some(&alice));
    let (kind, out) = visit(a.addr("public"), &name, &cfg);
    assert_eq!(
        (kind, out.status()),
        (Some(HandshakeKind::Full), 200),
        "{out:?}"
    );
    assert!(out.body().contains("CN=alice"), "{out:?}");
    let (kind, out) = visit(b.addr("public"), &name, &cfg);
    assert_eq!((kind, out.status()), (Some(HandshakeKind::Resumed), 200));
    assert_eq!(
        visit(a.addr("public"), &name, &p.client(None)).1,
        Outcome::Alert(AlertDescription::CertificateRequired)
    );
    // Port 80's listener redirects to https on 443.
    let mut t = TcpStream::connect(a.addr("plain")).unwrap();
    t.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    t.write_all(get_request("/x?y=1", &name).as_bytes())
        .unwrap();
    let mut head = String::new();
    t.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: https://{name}/x?y=1\r\n")),
        "{head}"
    );

    // cert-manager renews the Secret: the kubelet swaps it in, both
    // replicas serve the new certificate.
    let renewed = p.ca.leaf(&Spec::server(&[&name]));
    let ca_pem = p.ca.cert_pem.clone();
    let (ra, rb) = (
        a.log.messages("reloaded").len(),
        b.log.messages("reloaded").len(),
    );
    p.swap(
        "portcullis-tls",
        &[
            ("tls.crt", &renewed.chain_pem),
            ("tls.key", &renewed.key_pem),
            ("ca.crt", &ca_pem),
        ],
    );
    a.wait_messages("reloaded", ra + 1);
    b.wait_messages("reloaded", rb + 1);
    for gw in [&a, &b] {
        assert_eq!(
            // (A fresh client: a resumed session shows the certificate
            // of the session it resumes.)
            served_leaf(gw.addr("public"), &name, &p.client(Some(&alice))),
            renewed.chain[0].as_ref().to_vec()
        );
    }
    // trust-manager updates the client-CA ConfigMap to another CA: alice
    // is refused, a client of the new CA is served.
    let next = Ca::root("Deploy CA 2");
    let bob = next.leaf(&Spec::client("bob"));
    let (ra, rb) = (
        a.log.messages("reloaded").len(),
        b.log.messages("reloaded").len(),
    );
    p.swap("portcullis-client-ca", &[("ca.crt", &next.cert_pem)]);
    a.wait_messages("reloaded", ra + 1);
    b.wait_messages("reloaded", rb + 1);
    for gw in [&a, &b] {
        let fresh_alice = p.client(Some(&alice));
        assert_eq!(
            visit(gw.addr("public"), &name, &fresh_alice).1,
            Outcome::Alert(AlertDescription::UnknownCA)
        );
        let (_, out) = visit(gw.addr("public"), &name, &p.client(Some(&bob)));
        assert_eq!(out.status(), 200, "{out:?}");
    }
    let alive = |gw: &Gateway| plain_get(gw.admin.unwrap(), "/healthz").status();
    assert_eq!((alive(&a), alive(&b)), (200, 200));
    drop((a, b));
    // Nothing was written: no file of the image's user anywhere it could
    // have written but its own /tmp.
    let mut written = Vec::new();
    for top in [
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
        p.root.path(),
    ] {
        owned_by_uid(top, &p.tmp, &mut written);
    }
    assert!(written.is_empty(), "written outside its /tmp: {written:?}");
}

/// Files under `dir` (not under `skip`) owned by the image's user.
fn owned_by_uid(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path == skip {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == UID {
            out.push(path.clone());
        }
        if meta.is_dir() {
            owned_by_uid(&path, skip, out);
        }
    }
}

#[test]
fn unprivileged_it_cannot_bind_a_privileged_port_and_says_so() {
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 0,
        "net.ipv4.ip_unprivileged_port_start is 0: any user may bind any port here, so what the image assumes cannot be tested"
    );
    let port = start - 1;
    let p = Pod::new(|t| https_at(t, &format!("127.0.0.1:{port}")));
    let mut cmd = unprivileged();
    let out = cmd
        .arg(bin())
        .args(Gateway::run_args(&p.root.path().join("portcullis.yaml")))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("CAP_NET_BIND_SERVICE"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
