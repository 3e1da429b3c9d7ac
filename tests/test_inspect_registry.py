"""inspect and diff take every reference ``--base`` takes: a registry image is read like a local one (its packages,
layers and pip packages from the layers themselves), and diff compares across places."""

from __future__ import annotations

import json
from pathlib import Path

from realenv import oci_conda
from registry_cli import HELLO_ENV, cli_env
from registry_fixtures import Servers, servers  # noqa: F401  (fixture)


def test_inspect_and_diff_a_registry_image(servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    reg = servers.registry()
    env = cli_env(tmp_path)
    out = tmp_path / "hello.tar"
    ref = f"{reg.host}/team/hello:1"
    oci_conda("build", str(HELLO_ENV), "-o", str(out), "--push", ref, "-q", env=env)

    local = json.loads(oci_conda("inspect", str(out), "--json", env=env).stdout)
    remote = json.loads(oci_conda("inspect", ref, "--json", env=env).stdout)
    assert [p["manifest_digest"] for p in remote["platforms"]] == [p["manifest_digest"] for p in local["platforms"]]
    assert remote["platforms"][0]["packages"] == local["platforms"][0]["packages"]
    assert sorted(p["name"] for p in remote["platforms"][0]["packages"]) == ["hello", "hello-data"]
    assert remote["platforms"][0]["layers"] == local["platforms"][0]["layers"]
    text = oci_conda("inspect", ref, env=env).stdout
    assert "hello 1.0 0" in text and "hello-data 1.0 0" in text

    d = json.loads(oci_conda("diff", str(out), ref, "--json", env=env).stdout)
    plat = d["platforms"]["linux/amd64"]
    assert plat["added"] == plat["removed"] == plat["changed"] == [] and not plat["config_changed"]
    assert plat["bytes_only_in_a"] == plat["bytes_only_in_b"] == 0
