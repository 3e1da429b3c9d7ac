"""Channel specs -> canonical URLs: names under the alias, defaults, URLs with credentials, file URLs and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_conda.conda.channel import (
    DEFAULT_CHANNEL_ALIAS,
    DEFAULTS_CHANNELS,
    Channel,
    file_url_to_path,
    resolve_channel,
    resolve_channels,
)
from oci_conda.errors import ChannelError, OciCondaError
from oci_conda.credentials import redact_url


@pytest.fixture(autouse=True)
def _no_alias_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCI_CONDA_CHANNEL_ALIAS", raising=False)


@pytest.mark.parametrize("name", ["conda-forge", "bioconda", "pytorch/label/nightly"])
def test_names_go_under_the_default_alias(tmp_path: Path, name: str) -> None:
    c = resolve_channel(name, tmp_path)
    assert c == Channel(name=name, url=f"{DEFAULT_CHANNEL_ALIAS}/{name}", auth_url=f"{DEFAULT_CHANNEL_ALIAS}/{name}")
    assert c.subdir_url("linux-64") == f"{DEFAULT_CHANNEL_ALIAS}/{name}/linux-64"


def test_alias_argument_and_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_CONDA_CHANNEL_ALIAS", "http://127.0.0.1:9/mirror/")
    assert resolve_channel("conda-forge", tmp_path).url == "http://127.0.0.1:9/mirror/conda-forge"
    # an explicit alias (the CLI's --channel-alias) beats the environment
    assert resolve_channel("conda-forge", tmp_path, "http://127.0.0.1:8/m").url == "http://127.0.0.1:8/m/conda-forge"


def test_token_in_alias_stays_out_of_the_canonical_url(tmp_path: Path) -> None:
    c = resolve_channel("private", tmp_path, "https://127.0.0.1:8443/t/SECRET")
    assert c.url == "https://127.0.0.1:8443/private"
    assert c.auth_url == "https://127.0.0.1:8443/t/SECRET/private"
    assert c.subdir_url("noarch", auth=True) == "https://127.0.0.1:8443/t/SECRET/private/noarch"
    assert "SECRET" not in repr(c) and "SECRET" not in str(c) and "SECRET" not in c.subdir_url("noarch")
    # a plain URL under the alias is the same channel and gets the alias token
    same = resolve_channel("https://127.0.0.1:8443/private", tmp_path, "https://127.0.0.1:8443/t/SECRET")
    assert same == c


def test_full_urls_with_credentials(tmp_path: Path) -> None:
    c = resolve_channel("https://user:pw@Example.ORG/t/tk-123/chan/linux-64/", tmp_path)
    assert c.url == "https://example.org/chan"
    assert c.name == "https://example.org/chan"
    assert c.auth_url == "https://user:pw@example.org/t/tk-123/chan"
    assert "pw" not in repr(c)
    c2 = resolve_channel("http://127.0.0.1:8000/chan", tmp_path)
    assert (c2.url, c2.auth_url) == ("http://127.0.0.1:8000/chan", "http://127.0.0.1:8000/chan")
    # under the alias a URL is named like the short name
    assert resolve_channel(f"{DEFAULT_CHANNEL_ALIAS}/conda-forge", tmp_path).name == "conda-forge"


def test_defaults_and_nodefaults(tmp_path: Path) -> None:
    chans = resolve_channels(["conda-forge", "defaults", "nodefaults", "conda-forge"], tmp_path)
    assert [c.url for c in chans] == [f"{DEFAULT_CHANNEL_ALIAS}/conda-forge"] + [u for _, u in DEFAULTS_CHANNELS]
    assert [c.name for c in chans[1:]] == ["pkgs/main", "pkgs/r"]
    assert resolve_channels(["nodefaults"], tmp_path) == []
    with pytest.raises(ChannelError):
        resolve_channel("defaults", tmp_path)


def test_local_paths_relative_absolute_and_file_urls(tmp_path: Path) -> None:
    chan = tmp_path / "my channel"
    (chan / "noarch").mkdir(parents=True)
    envdir = tmp_path / "env"
    envdir.mkdir()
    expected = chan.resolve().as_uri()
    assert "%20" in expected
    for spec in (str(chan), "../my channel", "../my channel/noarch", expected, expected + "/"):
        c = resolve_channel(spec, envdir)
        assert (c.url, c.auth_url, c.is_local) == (expected, expected, True), spec
        assert c.path == chan.resolve()
    assert resolve_channel(".", chan).url == expected
    assert file_url_to_path(expected) == chan.resolve()


def test_a_percent_in_a_channel_directory_is_decoded_once(tmp_path: Path) -> None:
    chan = tmp_path / "chan%41 x"
    (chan / "noarch").mkdir(parents=True)
    c = resolve_channel(str(chan), tmp_path)
    assert c.url.endswith("/chan%2541%20x") and c.path == chan.resolve()
    assert file_url_to_path(c.url) == chan.resolve()


def test_missing_path_is_a_channel_error_naming_it(tmp_path: Path) -> None:
    for spec in ("./nope", str(tmp_path / "gone"), (tmp_path / "gone2").as_uri()):
        with pytest.raises(ChannelError) as ei:
            resolve_channel(spec, tmp_path)
        msg = str(ei.value)
        assert "\n" not in msg and ("nope" in msg or "gone" in msg)
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ChannelError, match="not a directory"):
        resolve_channel(str(f), tmp_path)


@pytest.mark.parametrize("spec", ["", "s3://bucket/chan", "has space", "https:///nohost"])
def test_bad_specs(tmp_path: Path, spec: str) -> None:
    with pytest.raises(OciCondaError):
        resolve_channel(spec, tmp_path)


@pytest.mark.parametrize("url, shown", [
    ("https://u:p@h.example/t/tok/c/linux-64/x.conda", "https://***@h.example/t/***/c/linux-64/x.conda"),
    ("https://h.example/t/tok", "https://h.example/t/***"),
    ("http://127.0.0.1:8000/chan/noarch", "http://127.0.0.1:8000/chan/noarch"),
    ("file:///srv/chan", "file:///srv/chan"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
