"""A real registry (CNCF distribution, Debian's ``docker-registry``) on loopback for tests, with what goes around it:
a counting (and fault-injecting) HTTP proxy in front, a token server signing JWTs the registry verifies, a private CA
for TLS, htpasswd users. Every process and server started here is stopped by the fixture that made it."""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from conftest import need_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------------------
# keys and certificates


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


@dataclass
class TLSFiles:
    ca: Path  # the private CA's certificate (what --ca-file gets)
    cert: Path  # the server's certificate, for 127.0.0.1, signed by the CA
    key: Path


def make_tls(d: Path) -> TLSFiles:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    import ipaddress

    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(_name("oci-conda test CA")).issuer_name(_name("oci-conda test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TLSFiles(d / "ca.pem", d / "cert.pem", d / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, files.key)
    return files


# ---------------------------------------------------------------------------------------------------------------
# the registry


@dataclass
class Registry:
    """``docker-registry serve`` with its own config and storage under ``root``."""

    root: Path
    auth: dict | None = None
    tls: TLSFiles | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> Path:
        http_cfg: dict = {"addr": self.host, "secret": "oci-conda-test-secret",
                          "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http_cfg["tls"] = {"certificate": str(self.tls.cert), "key": str(self.tls.key)}
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}, "delete": {"enabled": True}},
            "http": http_cfg,
        }
        if self.auth:
            cfg["auth"] = self.auth
        path = self.root / "config.yml"
        path.write_text(json.dumps(cfg))  # JSON is YAML
        return path

    def start(self) -> "Registry":
        need_tool("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self._config()
        log = open(self.root / "registry.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                r = requests.get(self.url + "/v2/", timeout=1, verify=str(self.tls.ca) if self.tls else True)
                if r.status_code in (200, 401):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not come up in 15 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return (self.root / "registry.log").read_text(errors="replace")


# ---------------------------------------------------------------------------------------------------------------
# a counting proxy in front of it


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _forward(self) -> None:
        proxy: CountingProxy = self.server.proxy  # type: ignore[attr-defined]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        proxy.record(self.command, self.path, len(body))
        verdict = proxy.before(self.command, self.path) if proxy.before is not None else None
        if verdict is False:
            self.close_connection = True  # as if the registry died: no answer at all
            return
        if isinstance(verdict, tuple):  # (status, headers): answer in the registry's place
            status, extra = verdict
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            conn.request(self.command, self.path, body=body if (n or self.command in ("PUT", "POST", "PATCH")) else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
        except OSError:
            self.close_connection = True
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)) if self.command != "HEAD" else
                         resp.getheader("Content-Length", "0"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


class CountingProxy:
    """Forwards to a plain-HTTP registry and records every request; ``before(method, path)`` returning False drops
    the connection without an answer (a registry dying mid-request), returning ``(status, headers)`` answers in the
    registry's place (a 503, a 429, a redirect)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.httpd.daemon_threads = True
        self.httpd.proxy = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.before: Callable[[str, str], object] | None = None
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def record(self, method: str, path: str, size: int) -> None:
        with self.lock:
            self.requests.append((method, path, size))

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def uploads(self) -> dict[str, list]:
        """Upload traffic: sessions started, mounts asked for, PATCH chunks and blob digests completed by PUT."""
        with self.lock:
            reqs = list(self.requests)
        out: dict[str, list] = {"started": [], "mounts": [], "patches": [], "completed": []}
        for method, path, size in reqs:
            parsed = urllib.parse.urlsplit(path)
            q = urllib.parse.parse_qs(parsed.query)
            if method == "POST" and "/blobs/uploads/" in parsed.path:
                (out["mounts"] if "mount" in q else out["started"]).append(path)
            elif method == "PATCH":
                out["patches"].append(size)
            elif method == "PUT" and "/blobs/uploads/" in parsed.path:
                out["completed"].append(q.get("digest", [""])[0])
        return out

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------------------------------------------------------
# a token server (Docker token auth, as Docker Hub or GHCR do it)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id distribution matches a JWT's ``kid`` against: base32 of 240 bits of the SPKI's sha256, in 4s."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        ts: TokenServer = self.server.ts  # type: ignore[attr-defined]
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if ts.users.get(u) != p:
                ts.log.append(("refused", u, q.get("scope", [])))
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            user = u
        scopes = q.get("scope", [])
        ts.log.append(("token", user, scopes))
        access = []
        for scope in scopes:
            for part in scope.split(" "):
                typ, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                granted = [a for a in actions.split(",") if user is not None or (ts.anonymous_pull and a == "pull")]
                access.append({"type": typ, "name": name, "actions": granted})
        body = json.dumps({"token": ts.sign(user or "", access), "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _token_post(self: _TokenHandler) -> None:
    """OAuth2 refresh-token grant (what a Docker ``identitytoken`` is used for)."""
    ts: TokenServer = self.server.ts  # type: ignore[attr-defined]
    n = int(self.headers.get("Content-Length") or 0)
    form = urllib.parse.parse_qs(self.rfile.read(n).decode())
    user = ts.refresh_tokens.get(form.get("refresh_token", [""])[0])
    if form.get("grant_type") != ["refresh_token"] or user is None:
        ts.log.append(("refused", None, form.get("scope", [])))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
    scopes = form.get("scope", [""])[0].split()
    ts.log.append(("refresh", user, scopes))
    access = []
    for part in scopes:
        typ, _, rest = part.partition(":")
        name, _, actions = rest.rpartition(":")
        access.append({"type": typ, "name": name, "actions": actions.split(",")})
    body = json.dumps({"access_token": ts.sign(user, access), "expires_in": 300}).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)


_TokenHandler.do_POST = _token_post  # type: ignore[attr-defined]


class TokenServer:
    """Issues RS256 JWTs for ``users`` (Basic auth on the token endpoint); anonymous callers get pull only."""

    service = "oci-conda-test"
    issuer = "oci-conda-test-issuer"

    def __init__(self, d: Path, users: dict[str, str], anonymous_pull: bool = True):
        d.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.refresh_tokens: dict[str, str] = {}  # identity token -> user
        self.anonymous_pull = anonymous_pull
        self.log: list = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name("token signer")).issuer_name(_name("token signer"))
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                .sign(self.key, hashes.SHA256()))
        self.cert = d / "token-signer.pem"
        self.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self.httpd.daemon_threads = True
        self.httpd.ts = self  # type: ignore[attr-defined]
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, sub: str, access: list) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {"iss": self.issuer, "sub": sub, "aud": self.service, "exp": now + 300, "nbf": now - 60,
                  "iat": now - 60, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                          "rootcertbundle": str(self.cert)}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def htpasswd(d: Path, user: str, password: str) -> dict:
    """An htpasswd file (bcrypt, via apache2-utils) and the registry ``auth:`` section using it."""
    need_tool("htpasswd")
    d.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True).stdout
    path = d / "htpasswd"
    path.write_text(out)
    return {"htpasswd": {"realm": "basic-realm", "path": str(path)}}


# ---------------------------------------------------------------------------------------------------------------
# fixtures


class Servers:
    """Starts registries, proxies and token servers for one test (or module); stops them all at the end."""

    def __init__(self, root: Path):
        self.root = root
        self.items: list = []

    def registry(self, name: str = "reg", **kw: object) -> Registry:
        r = Registry(self.root / name, **kw)  # type: ignore[arg-type]
        self.items.append(r)
        return r.start()

    def proxy(self, registry: Registry) -> CountingProxy:
        p = CountingProxy(registry.port)
        self.items.append(p)
        return p

    def token_server(self, users: dict[str, str], **kw: object) -> TokenServer:
        t = TokenServer(self.root / f"token{len(self.items)}", users, **kw)  # type: ignore[arg-type]
        self.items.append(t)
        return t

    def close(self) -> None:
        for item in reversed(self.items):
            item.stop()
        self.items.clear()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path / "servers")
    yield s
    s.close()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    s = Servers(tmp_path_factory.mktemp("servers"))
    yield s
    s.close()


# ---------------------------------------------------------------------------------------------------------------
# a hostile registry: every answer scripted by the test


@dataclass
class Answer:
    """What the hostile server sends: a status, headers, and a body (bytes, or chunks sent with chunked encoding,
    which may never end)."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    body: "bytes | Callable[[], Iterator[bytes]]" = b""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        hs: HostileServer = self.server.hostile  # type: ignore[attr-defined]
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        seen = Seen(self.command, self.path, dict(self.headers.items()))
        with hs.lock:
            hs.seen.append(seen)
        a = hs.route(seen)
        self.send_response(a.status)
        for k, v in a.headers.items():
            self.send_header(k, v)
        try:
            if callable(a.body):
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in a.body():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            else:
                if "Content-Length" not in a.headers:
                    self.send_header("Content-Length", str(len(a.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(a.body)
        except OSError:  # the client hung up on an endless or oversized answer, as it should
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer


class HostileServer:
    """An HTTP(S) server on 127.0.0.1 answering whatever ``route(seen)`` says, recording every request with its
    headers (to prove which credentials reached which origin)."""

    def __init__(self, route: Callable[[Seen], Answer], tls: TLSFiles | None = None):
        import ssl

        self.route = route
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileHandler)
        self.httpd.daemon_threads = True
        self.httpd.hostile = self  # type: ignore[attr-defined]
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls.cert), str(tls.key))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def authorizations(self) -> list[str]:
        with self.lock:
            return [s.headers.get("Authorization", "") for s in self.seen if s.headers.get("Authorization")]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def endless(chunk: bytes = b"[" * 65536) -> Callable[[], Iterator[bytes]]:
    """A body that never ends."""

    def gen() -> Iterator[bytes]:
        while True:
            yield chunk

    return gen


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[..., HostileServer]]:
    """``hostile(route, tls=None)`` starts a :class:`HostileServer`; all are stopped after the test."""
    made: list[HostileServer] = []

    def start(route: Callable[[Seen], Answer], tls: TLSFiles | None = None) -> HostileServer:
        s = HostileServer(route, tls)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()
