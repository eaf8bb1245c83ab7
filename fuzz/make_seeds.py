#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/.

Run from the repository root after `cargo build`:
    python3 fuzz/make_seeds.py target/debug/portcullis
Needs openssl. Certificates, keys and CRLs are made fresh (throwaway), the
rest is written here; the result is committed so that the suite's short
runs and `scripts/fuzz` start from the same inputs.
"""
import base64, os, re, shutil, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/portcullis")
TMP = tempfile.mkdtemp()


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, cwd=TMP, **kw).stdout


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def der_tlv(b, i):
    """(tag, header length, content length) of the DER element at b[i]."""
    tag, n = b[i], b[i + 1]
    if n < 0x80:
        return tag, 2, n
    k = n & 0x7F
    return tag, 2 + k, int.from_bytes(b[i + 2:i + 2 + k], "big")


def names_of(cert):
    """The issuer and subject Name DER of a DER certificate."""
    _, h, _ = der_tlv(cert, 0)
    i = h  # tbsCertificate
    _, h, _ = der_tlv(cert, i)
    i += h
    out = []
    for field in range(6):  # [0] version, serial, signature, issuer, validity, subject
        tag, h, n = der_tlv(cert, i)
        if field == 0 and tag != 0xA0:
            field += 1
        if field in (3, 5) or (tag == 0x30 and field in (3, 5)):
            out.append(cert[i:i + h + n])
        i += h + n
    return out


# --- path: first byte 0 = escapedSlashes reject, 1 = keep
for n, p in enumerate([
    "/", "/admin/secret", "/%61dmin/secret", "/ADMIN%2fsecret", "/public/../admin/secret",
    "/public/%2e%2e/admin", "//admin//secret", "/admin;x/secret", "/..;/admin", "/a/./b/../c",
    "/%7euser/%41%42", "/a%2Fb", "/a%5cb", "/a\\b", "/%00", "/%zz", "/.well-known/acme",
    "/a/b/c/d/e/f/../../../../..", "/x/%2E%2E/%2e%2E/admin", "/%c3%a9t%C3%A9",
]):
    put("path", f"{n:02}", bytes([n % 2]) + p.encode())

# --- host
for n, h in enumerate([
    "a.test", "A.TEST.", "a.test:443", "[::1]:8443", "127.0.0.1", "x.w.test", "X.W.TEST.:1",
    "u@a.test", "a.test:443.", "a..test", "*.w.test", "[::ffff:1.2.3.4]", "other.test:65535",
]):
    put("host", f"{n:02}", h)

# --- certificates, keys, CSRs, CRLs, PKCS#12 made by openssl and portcullis
subjects = [
    ("/CN=client/O=Acme\\, Inc./OU=ops", "DNS:a.test,URI:spiffe://td/ns/x,IP:127.0.0.1,email:a@b.test"),
    ("/CN=a+b\\=c/O=x;y/C=DE", "DNS:*.w.test,URI:https://x.test/?a=b;c"),
    ("/CN=\\#hash \\\\back\\\\/L=Zürich", "DNS:xn--zrich-kva.test"),
    ("/DC=test/DC=w/CN=multi+UID=7", "URI:spiffe://td/\"quoted\""),
]
keys = {
    "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "rsa": ["-newkey", "rsa:2048"],
    "ed": ["-newkey", "ed25519"],
}
for i, (subj, san) in enumerate(subjects):
    kind = list(keys)[i % 3]
    sh("openssl", "req", "-x509", "-nodes", *keys[kind], "-keyout", f"k{i}.pem", "-out", f"c{i}.pem",
       "-subj", subj, "-multivalue-rdn", "-utf8", "-days", "30", "-addext", f"subjectAltName={san}",
       "-addext", "extendedKeyUsage=clientAuth")
    sh("openssl", "x509", "-in", f"c{i}.pem", "-outform", "DER", "-out", f"c{i}.der")
    der = open(os.path.join(TMP, f"c{i}.der"), "rb").read()
    pem = open(os.path.join(TMP, f"c{i}.pem"), "rb").read()
    key = open(os.path.join(TMP, f"k{i}.pem"), "rb").read()
    put("x509", f"cert{i}", der)
    for j, name in enumerate(names_of(der)):
        put("dn", f"name{i}{j}", name)
    put("material", f"cert{i}", b"\x00" + pem)
    put("material", f"key{i}", b"\x01" + key)
    manifest = ("apiVersion: v1\nkind: Secret\nmetadata: { name: s, namespace: default }\n"
                "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n"
                % (base64.b64encode(pem).decode(), base64.b64encode(key).decode()))
    put("material", f"secret{i}", b"\x02" + manifest.encode())
    sh("openssl", "req", "-new", "-key", f"k{i}.pem", "-subj", subj, "-multivalue-rdn", "-utf8",
       "-addext", f"subjectAltName={san}", "-out", f"r{i}.pem")
    sh("openssl", "req", "-in", f"r{i}.pem", "-outform", "DER", "-out", f"r{i}.der")
    put("csr", f"pem{i}", bytes([i % 3]) + open(os.path.join(TMP, f"r{i}.pem"), "rb").read())
    put("csr", f"der{i}", bytes([i % 3]) + open(os.path.join(TMP, f"r{i}.der"), "rb").read())
    for legacy in ([], ["-legacy"]):
        out = f"p{i}{len(legacy)}.p12"
        sh("openssl", "pkcs12", "-export", *legacy, "-in", f"c{i}.pem", "-inkey", f"k{i}.pem",
           "-passout", "pass:fuzz", "-out", out)
        put("p12", out[:-4], open(os.path.join(TMP, out), "rb").read())
sh("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sec1.pem")
put("material", "sec1", b"\x01" + open(os.path.join(TMP, "sec1.pem"), "rb").read())
sh("openssl", "genrsa", "-traditional", "-out", "pkcs1.pem", "2048")
put("material", "pkcs1", b"\x01" + open(os.path.join(TMP, "pkcs1.pem"), "rb").read())
# Structured CSRs: 0x80 | profile, then names (see src/fuzz/files.rs).
for n, seed in enumerate([b"\x80\x03\x00\x06client\x00\x01\x04Acme\x01\x01\x00\x06a.test",
                          b"\x81\x01\x00\x05a?b,c\x01\x01\x01\x0espiffe://td/x",
                          b"\x82\x02\x03\x02DE\x01\x02\x03\x03a\"b\x02\x00\x00"]):
    put("csr", f"built{n}", seed)

# CRLs: an empty one and one revoking a certificate, PEM and DER.
sh(BIN, "ca", "init", "--out", "ca", "--cn", "Fuzz CA")
sh(BIN, "cert", "issue", "--ca", "ca", "--profile", "client", "--cn", "gone", "--out", "gone")
put("crl", "empty.pem", open(os.path.join(TMP, "ca", "ca.crl"), "rb").read())
sh(BIN, "cert", "revoke", "--ca", "ca", "--cert", "gone.crt")
put("crl", "revoked.pem", open(os.path.join(TMP, "ca", "ca.crl"), "rb").read())
sh("openssl", "crl", "-in", "ca/ca.crl", "-outform", "DER", "-out", "revoked.der")
put("crl", "revoked.der", open(os.path.join(TMP, "revoked.der"), "rb").read())

# tickets: a key file with a comment and two keys (one unpadded), one with a
# key too short, and bytes shaped like a sealed ticket (id, nonce, body, tag).
import base64
put("tickets", "keys.txt", ("# rotated\n" + base64.b64encode(bytes(range(48))).decode() + "\n"
    + base64.b64encode(bytes([9] * 32)).decode().rstrip("=") + "\n").encode())
put("tickets", "short-key.txt", (base64.b64encode(bytes(16)).decode() + "\n").encode())
put("tickets", "ticket.bin", bytes([0x11] * 8) + bytes(12) + bytes(range(40)) + bytes(16))

# --- xfcc and proxy_v2: structured inputs (see src/fuzz/identity.rs).
def text(s):
    b = s.encode()
    return bytes([len(b)]) + b

put("xfcc", "plain", b"\x01" + text("spiffe://td/gw") + text("CN=client,O=Acme") + b"\x01"
    + text("spiffe://td/x") + b"\x01" + text("a.test") + b"\x00\x00\x01\x01\x01")
put("xfcc", "quotes", b"\x02" + text("by;1") + text("b\\") + text('CN=a\\,b,O=\\"q\\"\\\\')
    + b"\x02" + text("https://x/?a=b;c") + text('u"\\') + b"\x01" + text("d,\\") + b"\x01\x01\x01\x01\x01" + b"\x30\x03\x02\x01\x00")
put("xfcc", "cert", b"\x00" + text("") + b"\x00\x00\x01\x01\x00\x00\x00" + open(os.path.join(TMP, "c0.der"), "rb").read())

def v2(v6, mixed, authority, alpn, version, cipher, cn, flags, cert):
    out = bytes([v6, 7 if mixed else 0, 0x01, 0xBB, 9])
    for f in (authority, alpn, version, cipher, cn):
        out += b"\x00" if f is None else b"\x01" + text(f) if isinstance(f, str) else b"\x01" + bytes([len(f)]) + f
    out += bytes(flags)
    out += b"\x00" if cert is None else b"\x01" + cert
    return out

c0 = open(os.path.join(TMP, "c0.der"), "rb").read()
put("proxy_v2", "full", v2(0, False, "a.test", b"h2", "TLSv1.3", "TLS13_AES_128_GCM_SHA256", "client", [1, 0, 1], c0))
put("proxy_v2", "v6", v2(1, False, "b.test", b"http/1.1", "TLSv1.2", "ECDHE", "𝔞" * 10, [1, 1, 1], None))
put("proxy_v2", "mixed", v2(0, True, None, None, None, None, None, [0, 0, 0], None))
put("proxy_v2", "anon", v2(1, False, None, None, "TLSv1.3", None, None, [0, 0, 0], None))

# --- config: every YAML block of the docs, and a few broken ones
n = 0
for doc in ["README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs")))]:
    text_ = open(os.path.join(ROOT, doc)).read()
    for block in re.findall(r"```yaml\n(.*?)```", text_, re.S):
        put("config", f"doc{n:02}", block)
        n += 1
put("config", "broken0", "listeners:\n  - name: a\n    adress: 1\n")
put("config", "broken1", "certificates: { s: { certFile: a, keyFile: b, keyFile: c } }\n")
put("config", "broken2", "listeners: [ {name: x, protocol: https, hosts: [{hostnames: ['*'], clientAuth: {mode: require}}]} ]\n")

# --- import: Ingress manifests (with Secrets)
ing = open(os.path.join(ROOT, "tests", "it", "import.rs")).read()
tutorial = re.search(r'const TUTORIAL_INGRESS: &str = "(.*?)";', ing, re.S).group(1).replace('\\"', '"')
put("import", "tutorial", tutorial)
put("import", "with_secret", tutorial + "---\napiVersion: v1\nkind: Secret\nmetadata: { name: ca-secret, namespace: default }\n"
    "data:\n  ca.crt: %s\n" % base64.b64encode(open(os.path.join(TMP, "c0.pem"), "rb").read()).decode())
put("import", "annotations", tutorial.replace(
    'auth-tls-pass-certificate-to-upstream: "true"',
    'auth-tls-pass-certificate-to-upstream: "true"\n    nginx.ingress.kubernetes.io/auth-tls-match-cn: "CN=(a|b)"\n'
    '    nginx.ingress.kubernetes.io/auth-tls-error-page: "https://x"\n'
    '    nginx.ingress.kubernetes.io/ssl-passthrough: "false"\n'
    '    nginx.ingress.kubernetes.io/rewrite-target: /$2\n'
    '    nginx.ingress.kubernetes.io/backend-protocol: HTTPS'))
put("import", "list", "apiVersion: v1\nkind: List\nitems:\n- " + tutorial.replace("\n", "\n  ").rstrip() + "\n")
put("import", "default_backend", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: d}\nspec:\n  defaultBackend:\n    service: {name: s, port: {name: http}}\n")

shutil.rmtree(TMP)
