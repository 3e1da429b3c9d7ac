"""environment.yml reading: conda's format, our image: section, and errors that name file, line and field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from oci_conda.errors import SpecError
from oci_conda.spec import SCHEMA_PATH, load_spec, with_overrides

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "environment.yml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_full_file(tmp_path: Path) -> None:
    p = write(tmp_path, """\
name: demo
channels:
  - conda-forge
  - ./local
  - nodefaults
dependencies:
  - python 3.12.*
  - conda-forge::numpy >=2
variables:
  OMP_NUM_THREADS: 1
image:
  base: oci-archive:base.tar:v1
  prefix: /opt/env
  entrypoint: [/opt/env/bin/python]
  cmd: ["-c", "print(1)"]
  env: {LANG: C.UTF-8}
  workdir: /work
  user: "1000"
  labels: {a: b}
  annotations: {x: y}
  tag: example.com/demo:1
  virtual_packages: {glibc: "2.36"}
""")
    s = load_spec(p)
    assert s.name == "demo"
    assert s.channels == ("conda-forge", "./local", "nodefaults")
    assert s.specs == ("python 3.12.*", "conda-forge::numpy >=2")
    assert s.variables == (("OMP_NUM_THREADS", "1"),)
    img = s.image
    assert img.base == f"oci-archive:{tmp_path / 'base.tar'}:v1"
    assert img.prefix == "/opt/env"
    assert img.entrypoint == ("/opt/env/bin/python",)
    assert img.cmd == ("-c", "print(1)")
    assert img.env == (("LANG", "C.UTF-8"),)
    assert img.labels == (("a", "b"),) and img.annotations == (("x", "y"),)
    assert img.virtual_packages == (("glibc", "2.36"),)
    assert s.base_dir == tmp_path.resolve()


def test_defaults(tmp_path: Path) -> None:
    s = load_spec(write(tmp_path, "dependencies: [tk]\n"))
    assert s.channels == ("conda-forge",)
    assert s.image.base == "scratch" and s.image.prefix == "/opt/conda"
    assert s.image.entrypoint is None and s.image.cmd is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: [x\n", r"environment.yml:2: invalid YAML"),
        ("dependencies:\n  - tk\ndependencies: [xz]\n", r"environment.yml:3: duplicate key 'dependencies'"),
        ("dependencies:\n  - tk\nimage:\n  prefx: /x\n", r"environment.yml:4: image.prefx: unknown field 'prefx'"),
        ("dependencies:\n  - tk\n  - 3.10\n", r"environment.yml:3: dependencies\[1\]: expected a string spec"),
        ("dependencies:\n  - tk\n  - pip:\n    - requests\n    - ' '\n", r"environment.yml:5: dependencies\[1\].pip\[1\]: empty pip entry"),
        ("dependencies:\n  - tk\n  - pip:\n    - 3\n", r"environment.yml:4: dependencies\[1\].pip\[0\]: expected string"),
        ("dependencies:\n  - tk  # [linux64 or macos]\n", r"environment.yml:2: dependencies\[0\]: invalid selector \[linux64 or macos\]: 'macos' is not a platform selector"),
        ("dependencies:\n  - tk  # [linux and]\n", r"environment.yml:2: dependencies\[0\]: invalid selector \[linux and\]: incomplete"),
        ("dependencies:\n  - tk\n  - pip:\n    - x  # [py>=38]\n", r"environment.yml:4: dependencies\[1\].pip\[0\]: invalid selector"),
        ("dependencies: [tk]\nplatforms:\n  - linux-64\n  - macos-64\n", r"environment.yml:4: platforms\[1\]: unknown platform 'macos-64'"),
        ("dependencies: [tk]\nplatforms: linux-64\n", r"environment.yml:2: platforms: expected array"),
        ("dependencies: [tk]\ncategory: [dev]\n", r"environment.yml:2: category: expected string"),
        ("dependencies:\n  - tk\n  - pip: [a]\n    foo: 1\n", r"environment.yml:4: dependencies\[1\].foo: unknown field 'foo' \(allowed: pip\)"),
        ("dependencies:\n  - tk\n  - sel(bsd): b\n", r"environment.yml:3: dependencies\[1\].sel\(bsd\): unknown selector 'sel\(bsd\)'"),
        ("dependencies:\n  - pip:\n    - a\n", r"environment.yml:2: dependencies: nothing to install with conda \(pip: entries need python and pip"),
        ("dependencies: []\n", r"dependencies: nothing to install"),
        ("- tk\n", r"expected a mapping"),
        ("", r"the file is empty"),
        ("dependencies: [tk]\nimage:\n  prefix: opt/conda\n", r"environment.yml:3: image.prefix"),
        ("dependencies: [tk]\nimage:\n  prefix: /opt/../etc\n", r"image.prefix: prefix '/opt/../etc' must be a normalised"),
        ("dependencies: [tk]\nimage:\n  entrypoint: /bin/sh\n", r"environment.yml:3: image.entrypoint: expected array"),
        ("dependencies: [tk]\nvariables:\n  1BAD: x\n", r"environment.yml:3: variables"),
        ("channels:\n  - https://h/t/${NOPE_TOKEN_X}/c\ndependencies: [tk]\n", r"environment.yml:2: channels\[0\]: environment variable NOPE_TOKEN_X is not set"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(SpecError, match=expected) as e:
        load_spec(p, env={})
    assert "\n" not in str(e.value)
    assert str(p) in str(e.value)


def test_micromamba_selectors_apply_per_target_platform(tmp_path: Path) -> None:
    s = load_spec(write(tmp_path, "dependencies:\n  - sel(linux): a\n  - sel(unix): b\n  - sel(win): c\n  - d\n"))
    assert s.specs_for("linux-aarch64") == ("a", "b", "d")
    assert s.specs_for("osx-arm64") == ("b", "d")
    assert s.specs_for("win-64") == ("c", "d")


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "e.yml"
    p.write_bytes(b"dependencies: [\xff]\n")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(p)


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    p = write(tmp_path, "dependencies: [tk]\nimage:\n  labels: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(SpecError):
        load_spec(p)


def test_channel_token_from_environment(tmp_path: Path) -> None:
    p = write(tmp_path, "channels:\n  - https://h/t/${TOK}/c\ndependencies: [tk]\n")
    assert load_spec(p, env={"TOK": "s3cr3t"}).channels == ("https://h/t/s3cr3t/c",)


def test_cli_overrides(tmp_path: Path) -> None:
    s = load_spec(write(tmp_path, "channels: [conda-forge]\ndependencies: [tk]\n"))
    s2 = with_overrides(s, prefix="/env", tag="a:b", channels=["./mine", "conda-forge"], base=None)
    assert s2.image.prefix == "/env" and s2.image.tag == "a:b"
    assert s2.channels == ("./mine", "conda-forge")
    with pytest.raises(SpecError, match="--prefix"):
        with_overrides(s, prefix="relative")


def test_schema_is_valid_and_shipped() -> None:
    schema = json.loads((REPO / "schemas" / "environment.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert SCHEMA_PATH.read_bytes() == (REPO / "schemas" / "environment.schema.json").read_bytes()


def _real_env_files() -> list[Path]:
    d = Path(os.environ.get("OCI_CONDA_SHARED", REPO.parent / "shared")) / "realdata" / "envs"
    return sorted(p for p in d.rglob("*") if p.suffix in (".yml", ".yaml") and "lock" not in p.parent.name) if d.is_dir() else []


@pytest.mark.parametrize("path", _real_env_files() or [None], ids=lambda p: p.name if p else "no-realdata")
def test_real_environment_files(path: Path | None) -> None:
    """Every real-world environment file either loads or fails with one clean line (e.g. its pip: section)."""
    if path is None:
        pytest.skip("../shared/realdata not present")
    try:
        s = load_spec(path, env={"CONDA_TOKEN": "t", "OTHER_KEY": "k"})
    except SpecError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) in msg
        assert any(k in msg for k in ("not set",)), msg
    else:
        assert s.specs


def test_conda_lock_keys(tmp_path: Path) -> None:
    """platforms: becomes the default targets (as conda subdirs); category: and prefix: are noted, not refused."""
    p = write(tmp_path, """\
name: x
category: dev
prefix: /home/me/envs/x
platforms:
  - linux-64
  - linux/arm64   # an OCI spelling is fine too
  - osx-arm64
  - linux-64
dependencies: [tk]
""")
    s = load_spec(p)
    assert s.platforms == ("linux-64", "linux-aarch64", "osx-arm64")
    assert s.warnings == (
        f"{p}:2: category: conda-lock's category 'dev' is ignored; every dependency of this file is installed",
        f"{p}:3: prefix: conda's local install path is ignored; the image's environment lives at image.prefix "
        "(/opt/conda)",
    )
    assert s.image.prefix == "/opt/conda"
    assert load_spec(write(tmp_path, "dependencies: [tk]\n", "b.yml")).platforms == ()


def test_unknown_sections_warn_like_conda(tmp_path: Path) -> None:
    p = write(tmp_path, "dependencies: [tk]\nfoo: {a: 1}\nprefix: null\n")
    s = load_spec(p)
    assert s.warnings == (f"{p}:2: foo: section not used by oci-conda; ignored",)
    assert all("\n" not in w for w in s.warnings)


def test_pip_lines_are_carried_with_their_location(tmp_path: Path) -> None:
    p = write(tmp_path, """\
dependencies:
  - python
  - pip:
    - requests[socks] >=2  # [linux]
    - "-e git+https://example.invalid/x.git#egg=x"
    - psutil  # [osx]
    - flit-core === 3.9.0 --hash=sha256:1234
  - pip:
    - six
""")
    s = load_spec(p)
    assert s.specs == ("python",)  # pip itself is not added for you
    assert [(x.text, x.where, x.selector) for x in s.pip] == [
        ("requests[socks] >=2", f"{p}:4", "linux"),
        ("-e git+https://example.invalid/x.git#egg=x", f"{p}:5", None),
        ("psutil", f"{p}:6", "osx"),
        ("flit-core === 3.9.0 --hash=sha256:1234", f"{p}:7", None),
        ("six", f"{p}:9", None),
    ]
    assert [x.text for x in s.pip_for("linux-64")] == ["requests[socks] >=2",
                                                       "-e git+https://example.invalid/x.git#egg=x",
                                                       "flit-core === 3.9.0 --hash=sha256:1234", "six"]
    assert "psutil" in [x.text for x in s.pip_for("osx-arm64")]


def test_conda_lock_selector_comments(tmp_path: Path) -> None:
    """conda-lock's '# [sel]' comments (conda-build platform names, with and/or/not) pick specs per target."""
    s = load_spec(write(tmp_path, """\
dependencies:
  - python <3.11
  - clang_osx-arm64  # [arm64]
  - clang_osx-64  # [osx64]
  - gcc_linux-64>=6  # [linux64]
  - "quoted"  # [linux and not aarch64]
  - sel(unix): both  # [linux or (osx and x86_64)]
  - plain  # a comment, no selector
  - flow  # see [docs] about it
""".replace("  - flow  # see [docs] about it\n", "")))
    assert s.specs_for("linux-64") == ("python <3.11", "gcc_linux-64>=6", "quoted", "both", "plain")
    assert s.specs_for("linux-aarch64") == ("python <3.11", "both", "plain")
    assert s.specs_for("osx-arm64") == ("python <3.11", "clang_osx-arm64", "plain")
    assert s.specs_for("osx-64") == ("python <3.11", "clang_osx-64", "both", "plain")
    assert s.specs_for("win-64") == ("python <3.11", "plain")
