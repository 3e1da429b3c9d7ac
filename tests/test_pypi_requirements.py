"""The pip: section's syntax: what pip accepts, what needs a build (refused in one line), credentials hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_conda.errors import SpecError
from oci_conda.pypi.requirements import parse_pip_section


def parse(*lines: str, base: Path = Path("."), environ: dict[str, str] | None = None):
    return parse_pip_section([(t, f"environment.yml:{10 + i}") for i, t in enumerate(lines)], base_dir=base,
                             environ=environ or {})


def refused(*lines: str, base: Path = Path("."), environ: dict[str, str] | None = None) -> str:
    with pytest.raises(SpecError) as err:
        parse(*lines, base=base, environ=environ)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_pep508_extras_markers_and_options() -> None:
    s = parse('requests[socks,security] >=2.31 ; python_version >= "3.8"', "Flask==3.0.*", "--pre",
              "--extra-index-url https://extra.example/simple", "--only-binary :all:", "--no-binary=:none:")
    r = s.requirements[0]
    assert r.name == "requests" and r.req.extras == {"socks", "security"} and str(r.req.specifier) == ">=2.31"
    assert str(r.req.marker) == 'python_version >= "3.8"' and r.where == "environment.yml:10"
    assert s.requirements[1].name == "flask"
    assert s.pre and s.extra_index_urls == ("https://extra.example/simple",) and s.index_url is None
    assert not s.require_hashes


def test_nested_files_relative_to_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.txt").write_text("# comment\nidna>=3  # trailing\n-r more.txt\n"
                                                "-c ../constraints.txt\n--find-links ./wheels\n")
    (tmp_path / "reqs" / "more.txt").write_text("certifi \\\n  >=2024\n")
    (tmp_path / "constraints.txt").write_text("urllib3<3\n")
    s = parse("-r reqs/base.txt", "requests", base=tmp_path)
    assert [r.name for r in s.requirements] == ["idna", "certifi", "requests"]
    assert s.requirements[0].where == f"{tmp_path / 'reqs' / 'base.txt'}:2"
    assert s.requirements[1].where == f"{tmp_path / 'reqs' / 'more.txt'}:1" and str(s.requirements[1].req) == \
        "certifi>=2024"
    assert [str(c.req) for c in s.constraints] == ["urllib3<3"]
    assert s.find_links == (str(tmp_path / "reqs" / "wheels"),)


def test_include_loop_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    msg = refused("-r a.txt", base=tmp_path)
    assert "loop" in msg and "a.txt -> b.txt -> a.txt" in msg
    assert "environment.yml:10" not in msg or "b.txt:1" in msg


def test_missing_file_names_the_line(tmp_path: Path) -> None:
    msg = refused("requests", "-r nope.txt", base=tmp_path)
    assert msg.startswith("environment.yml:11: cannot read") and "nope.txt" in msg


@pytest.mark.parametrize("line, words", [
    ("-e .", "editable"),
    ("-e git+https://github.example/o/r.git@main#egg=clip", "editable"),
    ("git+https://github.example/pydantic/pydantic", "version-control"),
    ("deepobs @ git+https://git@github.example/f/DeepOBS.git@develop", "version-control"),
    ("./src/mypkg", "not a wheel"),
    (".", "not a wheel"),
    ("pkg-1.0.tar.gz", "not a wheel"),
    ("x @ https://files.example/x-1.0.tar.gz", "not a wheel"),
    ("--no-binary :all:", "build from source"),
    ("--no-binary numpy", "build from source"),
])
def test_needs_a_build_is_one_line(line: str, words: str) -> None:
    msg = refused("requests", line)
    assert msg.startswith("environment.yml:11: pip") and words in msg
    assert "wheel" in msg


def test_unknown_option_and_bad_requirement() -> None:
    assert "--global-option is not supported" in refused("--global-option=x")
    assert "not a valid requirement" in refused("requests >= >= 2")
    assert "only --hash" in refused("requests --no-deps")


def test_direct_wheel_urls_and_local_wheels(tmp_path: Path) -> None:
    s = parse("foo @ https://files.example/p/foo-1.0-py3-none-any.whl#sha256=" + "a" * 64,
              "https://files.example/bar-2.0-py3-none-any.whl ; sys_platform == 'linux'",
              "dist/baz-3.0-py3-none-any.whl", base=tmp_path)
    foo, bar, baz = s.requirements
    assert foo.req.url.endswith("#sha256=" + "a" * 64)
    assert bar.name == "bar" and bar.req.url == "https://files.example/bar-2.0-py3-none-any.whl"
    assert str(bar.req.marker) == 'sys_platform == "linux"'
    assert baz.req.url == (tmp_path / "dist" / "baz-3.0-py3-none-any.whl").as_uri()


def test_hash_checking_mode() -> None:
    h = "sha256:" + "b" * 64
    s = parse(f"requests==2.32.3 --hash={h} --hash sha256:{'c' * 64}",
              "foo @ https://files.example/foo-1.0-py3-none-any.whl#sha256=" + "a" * 64)
    assert s.require_hashes and s.requirements[0].hashes == (h, "sha256:" + "c" * 64)
    assert "--hash=sha256:" in s.requirements[0].pip_line()
    msg = refused(f"requests==2.32.3 --hash={h}", "idna==3.7")
    assert msg.startswith("environment.yml:11:") and "idna==3.7" in msg and "--hash" in msg
    msg = refused(f"requests>=2 --hash={h}")
    assert "pinned with ==" in msg
    assert "expected sha256" in refused("requests==2 --hash=md5:abc")
    assert "needs --hash" in refused("--require-hashes", "idna==3.7")


def test_credentials_hidden_but_kept() -> None:
    s = parse("--index-url https://alice:t0psecret@idx.example/simple", "--extra-index-url ${EXTRA}",
              "foo @ https://tok3n-abc@files.example/foo-1.0-py3-none-any.whl", environ={
                  "EXTRA": "https://bob:hunter22@extra.example/simple"})
    assert s.index_url == "https://alice:t0psecret@idx.example/simple"
    creds = s.credentials()
    assert creds.for_url("https://idx.example/simple/x/") == ("alice", "t0psecret")
    assert creds.for_url("https://extra.example/f.whl") == ("bob", "hunter22")
    assert creds.for_url("https://files.example/foo-1.0-py3-none-any.whl") == ("tok3n-abc", "")
    assert creds.for_url("https://other.example/x") is None
    assert creds.for_url("http://idx.example/simple") is None  # another scheme is another origin
    text = repr(s) + " ".join(r.display() for r in s.requirements)
    for secret in ("t0psecret", "hunter22", "tok3n-abc"):
        assert secret not in text
        assert secret not in creds.scrub(f"failed for https://x:{secret}@h and {secret}")
    msg = refused("x @ git+https://carol:pw-s3cr3t@git.example/r.git")
    assert "pw-s3cr3t" not in msg and "carol" not in msg


def test_index_from_environment() -> None:
    env = {"PIP_INDEX_URL": "https://u:envsecret@idx.example/simple",
           "PIP_EXTRA_INDEX_URL": "https://a.example/simple https://b.example/simple"}
    s = parse("requests", environ=env)
    assert s.index_url == env["PIP_INDEX_URL"]
    assert s.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert parse("-i https://mine.example/simple", "requests", environ=env).index_url == \
        "https://mine.example/simple"
