"""A hostile registry on 127.0.0.1 against the registry client: credentials stay with their one origin, nothing is
sent over a downgrade, every body and wait is bounded, and each refusal is one line (issue 12, classes 1-3)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest
from hostile import run_bounded
from registry_fixtures import Answer, Seen, endless, hostile, make_tls  # noqa: F401

from oci_conda.oci.blobs import digest_bytes
from oci_conda.oci.image import Descriptor
from oci_conda.oci.registry import client as client_mod
from oci_conda.oci.registry.auth import Credentials
from oci_conda.oci.registry.client import RegistryClient, RegistryError, RegistryOptions, parse_challenge
from oci_conda.oci.registry.pull import get_blob_bytes, get_manifest
from oci_conda.oci.registry.push import PushStats, put_monolithic, start_upload

SECRET = "s3cret-Pa55"
BASIC = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
PUSH = ("repository:r:pull,push",)
PULL = ("repository:r:pull",)


def _client(host: str, **kw: object) -> RegistryClient:
    c = RegistryClient(host, RegistryOptions(retries=1, backoff=0.01, **kw))  # type: ignore[arg-type]
    c.set_credentials(Credentials("alice", SECRET))
    return c


def _basic_gate(seen: Seen) -> Answer | None:
    if seen.headers.get("Authorization") != BASIC:
        return Answer(401, {"WWW-Authenticate": 'Basic realm="r"'})
    return None


def test_upload_location_on_another_port_gets_no_credentials(hostile) -> None:  # noqa: F811
    other = hostile(lambda s: Answer(201, {"Docker-Content-Digest": DIGEST}))

    def route(s: Seen) -> Answer:
        return _basic_gate(s) or Answer(202, {"Location": f"{other.url}/upload/1?state=x"})

    reg = hostile(route)
    c = _client(reg.host)
    loc = start_upload(c, "r", PUSH, "push")
    assert loc is not None and loc.startswith(other.url)
    put_monolithic(c, "r", loc, BODY, Descriptor("application/octet-stream", DIGEST, len(BODY)), PUSH, "push",
                   PushStats())
    assert BASIC in reg.authorizations()  # the registry itself did get them
    assert other.seen and other.authorizations() == []  # the other origin never did


BODY = b"hello blob"
DIGEST = digest_bytes(BODY)


def test_tls_registry_with_plain_http_token_realm_gets_no_basic_credentials(hostile, tmp_path: Path) -> None:  # noqa: F811
    tls = make_tls(tmp_path / "tls")
    token = hostile(lambda s: Answer(200, {"Content-Type": "application/json"}, b'{"token": "t"}'))
    reg = hostile(lambda s: Answer(401, {"WWW-Authenticate": f'Bearer realm="{token.url}/token",service="x"'}), tls)
    c = _client(reg.host, ca_file=str(tls.ca))
    with pytest.raises(RegistryError, match="over plain HTTP") as e:
        get_manifest(c, "r", "latest")
    assert SECRET not in str(e.value)
    assert token.seen == []


def test_tls_to_http_blob_redirect_is_refused(hostile, tmp_path: Path) -> None:  # noqa: F811
    tls = make_tls(tmp_path / "tls")
    plain = hostile(lambda s: Answer(200, {}, BODY))

    def route(s: Seen) -> Answer:
        return _basic_gate(s) or Answer(307, {"Location": f"{plain.url}/blob"})

    reg = hostile(route, tls)
    c = _client(reg.host, ca_file=str(tls.ca))
    with pytest.raises(RegistryError, match="from HTTPS to plain HTTP"):
        get_blob_bytes(c, "r", Descriptor("application/octet-stream", DIGEST, len(BODY)))
    assert plain.seen == []


def test_redirect_to_another_host_is_followed_without_credentials(hostile) -> None:  # noqa: F811
    storage = hostile(lambda s: Answer(200, {}, BODY))

    def route(s: Seen) -> Answer:
        return _basic_gate(s) or Answer(307, {"Location": f"{storage.url}/blob?sig=1"})

    reg = hostile(route)
    got = get_blob_bytes(_client(reg.host), "r", Descriptor("application/octet-stream", DIGEST, len(BODY)))
    assert got == BODY
    assert storage.seen and storage.authorizations() == []


def test_redirect_loop_is_one_line(hostile) -> None:  # noqa: F811
    reg = hostile(lambda s: Answer(302, {"Location": s.path}))
    with pytest.raises(RegistryError, match="redirect loop") as e:
        get_manifest(_client(reg.host), "r", "latest")
    assert "\n" not in str(e.value)
    assert len(reg.seen) <= client_mod.MAX_REDIRECTS + 2


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "abc def", "abc\n"])
def test_token_with_cr_lf_is_refused(hostile, token: str) -> None:  # noqa: F811
    ts = hostile(lambda s: Answer(200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()))
    reg = hostile(lambda s: Answer(401, {"WWW-Authenticate": f'Bearer realm="{ts.url}/token",service="x"'}))
    with pytest.raises(RegistryError, match="characters a header cannot carry") as e:
        get_manifest(_client(reg.host), "r", "latest")
    assert "\n" not in str(e.value) and "Injected" not in str(e.value)


def test_huge_www_authenticate_is_refused_fast(hostile) -> None:  # noqa: F811
    header = "Bearer " + "a" * 60000
    reg = hostile(lambda s: Answer(401, {"WWW-Authenticate": header}))
    t0 = time.monotonic()
    with pytest.raises(RegistryError, match="WWW-Authenticate header"):
        get_manifest(_client(reg.host), "r", "latest")
    assert time.monotonic() - t0 < 5


def test_challenge_parse_is_linear() -> None:
    for evil in ("a" * 60000, 'a="' + "b " * 30000, "a=" * 30000, ",=" * 30000):
        t0 = time.monotonic()
        parse_challenge("Bearer " + evil)
        assert time.monotonic() - t0 < 1.0
    assert parse_challenge('Bearer realm="https://h/t", service=reg,scope="repository:a:pull"') == (
        "bearer", {"realm": "https://h/t", "service": "reg", "scope": "repository:a:pull"})


def test_retry_after_is_capped(hostile, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    waits: list[float] = []
    monkeypatch.setattr(client_mod.time, "sleep", waits.append)
    reg = hostile(lambda s: Answer(503, {"Retry-After": "100000"}))
    with pytest.raises(RegistryError, match="HTTP 503"):
        get_manifest(_client(reg.host), "r", "latest")
    assert waits and max(waits) <= 30


def test_http_session_caps_retry_after() -> None:
    from urllib3 import HTTPResponse

    from oci_conda.http import MAX_RETRY_AFTER, CappedRetry

    r = HTTPResponse(body=b"", headers={"Retry-After": "100000"}, status=503)
    assert CappedRetry(total=1).get_retry_after(r) == MAX_RETRY_AFTER


BOUNDED = """
import sys
from oci_conda.oci.registry.client import RegistryClient, RegistryError, RegistryOptions
from oci_conda.oci.registry.pull import get_manifest, list_tags
c = RegistryClient(sys.argv[1], RegistryOptions(retries=0))
try:
    (list_tags if sys.argv[2] == "tags" else get_manifest)(c, "r", *(["latest"] if sys.argv[2] != "tags" else []))
except RegistryError as e:
    print(e)
    sys.exit(3)
"""


@pytest.mark.parametrize("what,answer", [
    ("manifest", Answer(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, endless())),
    ("manifest", Answer(200, {"Content-Length": str(1 << 30)}, b"{")),
    ("tags", Answer(200, {"Content-Type": "application/json"}, endless(b'"tag", ' * 8192))),
])
def test_endless_or_huge_bodies_are_refused_within_bounded_memory(hostile, what: str, answer: Answer) -> None:  # noqa: F811
    reg = hostile(lambda s: answer)
    p = run_bounded(["-c", BOUNDED, reg.host, what], mem=600 << 20, seconds=60, env=dict(os.environ))
    assert p.returncode == 3, p.stderr[-2000:]
    assert "limit" in p.stdout and p.stdout.count("\n") == 1
