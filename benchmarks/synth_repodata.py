"""Synthetic conda-forge-shaped repodata for solver tests and benchmarks.

Real conda-forge repodata (≈ 600k records for linux-64 + noarch) is far larger than anything we can ship, so this
generates channels with the same shape: C libraries pinned by ``run_exports``-style ranges (``>=1.2.3,<2.0a0``),
a ``python`` with several minor series and ``python_abi`` builds, compiled python packages with one build per
python minor (``py311h1234567_0``), ``noarch: python`` packages, build-number bumps, ``constrains``, a few
``track_features`` variants, and a ``python numpy pandas`` core shaped like the real one.

Deterministic for a given (n_records, seed). ``python -m benchmarks.synth_repodata OUT_DIR 100000`` writes
``OUT_DIR/linux-64/repodata.json`` and ``OUT_DIR/noarch/repodata.json``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

PY_MINORS = ["3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]
_SYL = ["py", "lib", "ar", "tor", "ex", "qu", "ran", "zo", "mi", "cel", "dat", "geo", "net", "xml", "sci", "kit",
        "ui", "fast", "io", "plot", "stat", "ml", "bio", "ast", "jet", "num", "vox", "ter", "fa", "lo", "gra", "mu"]


def _hash7(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:7]


class _Gen:
    def __init__(self, n_records: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = n_records
        self.linux: dict[str, dict[str, Any]] = {}
        self.noarch: dict[str, dict[str, Any]] = {}
        self.ts = 1_600_000_000_000
        self.libs: list[tuple[str, list[str]]] = []  # C libraries: name, versions (old -> new)

    # -- helpers -------------------------------------------------------------------------------------------------
    def add(self, name: str, version: str, build: str, bn: int, depends: list[str], subdir: str = "linux-64",
            constrains: list[str] | None = None, track_features: str = "", noarch: str | None = None,
            ext: str = ".conda") -> None:
        self.ts += self.rng.randint(1, 10_000_000)
        d: dict[str, Any] = {
            "name": name, "version": version, "build": build, "build_number": bn, "depends": depends,
            "subdir": subdir, "timestamp": self.ts, "license": "MIT",
            "sha256": hashlib.sha256(f"{name}{version}{build}{subdir}".encode()).hexdigest(),
            "md5": hashlib.md5(f"{name}{version}{build}{subdir}".encode()).hexdigest(),
            "size": self.rng.randint(5_000, 50_000_000),
        }
        if constrains:
            d["constrains"] = constrains
        if track_features:
            d["track_features"] = track_features
        if noarch:
            d["noarch"] = noarch
        (self.noarch if subdir == "noarch" else self.linux)[f"{name}-{version}-{build}{ext}"] = d

    def count(self) -> int:
        return len(self.linux) + len(self.noarch)

    def versions(self, k: int) -> list[str]:
        rng = self.rng
        major, minor, patch = rng.randint(0, 3), rng.randint(0, 12), 0
        out = []
        for _ in range(k):
            r = rng.random()
            if r < 0.6:
                patch += 1
            elif r < 0.9:
                minor, patch = minor + 1, 0
            else:
                major, minor, patch = major + 1, 0, 0
            out.append(f"{major}.{minor}.{patch}")
        return out

    @staticmethod
    def pin(v: str) -> str:
        major = int(v.split(".")[0])
        return f">={v},<{major + 1}.0a0"

    def libdeps(self, k: int, upto: int | None = None) -> list[str]:
        pool = self.libs[:upto] if upto else self.libs
        out = []
        for name, vers in self.rng.sample(pool, min(k, len(pool))):
            out.append(f"{name} {self.pin(self.rng.choice(vers[-4:]))}")
        return out

    # -- the layers ----------------------------------------------------------------------------------------------
    def base(self) -> None:
        self.add("_libgcc_mutex", "0.1", "conda_forge", 0, [], ext=".tar.bz2")
        for v in ["11.2.0", "12.3.0", "13.2.0", "14.1.0"]:
            for bn in range(3):
                h = _hash7("gcc", v, bn)
                self.add("libgcc-ng", v, f"h{h}_{bn}", bn, ["_libgcc_mutex 0.1 conda_forge", "__glibc >=2.17,<3.0.a0"],
                         constrains=[f"libstdcxx-ng {v}.*"])
                self.add("libstdcxx-ng", v, f"h{h}_{bn}", bn, [f"libgcc-ng {v} h{h}_{bn}"])
                self.add("libgfortran-ng", v, f"h{h}_{bn}", bn, [f"libgcc-ng >={v}"])
        self.libs.append(("libgcc-ng", ["11.2.0", "12.3.0", "13.2.0", "14.1.0"]))
        for name in ["libzlib", "openssl", "xz", "bzip2", "libffi", "ncurses", "readline", "tk", "libsqlite",
                     "libuuid", "libnsl", "libxcrypt", "libexpat"]:
            vers = self.versions(self.rng.randint(15, 40))
            for v in vers:
                for bn in range(self.rng.randint(1, 3)):
                    self.add(name, v, f"h{_hash7(name, v, bn)}_{bn}", bn, ["libgcc-ng >=12", "__glibc >=2.17"] +
                             (self.libdeps(1, 1 + len(self.libs) // 2) if self.libs[1:] else []))
            self.libs.append((name, vers))
        # blas with a mkl variant carrying track_features (deprioritised unless asked for)
        for v in ["3.9.0", "3.9.1"]:
            for bn, impl in enumerate(["openblas", "mkl"]):
                tf = "blas_mkl" if impl == "mkl" else ""
                for lib in ["libblas", "libcblas", "liblapack"]:
                    dep = [] if lib == "libblas" else [f"libblas {v} *_{impl}"]
                    self.add(lib, v, f"{20 + bn}_linux64_{impl}", 20 + bn, dep, track_features=tf,
                             constrains=[f"blas * {impl}"])
            for impl in ["openblas", "mkl"]:
                self.add("blas", "2.1" + v[-1], impl, 0, [f"libblas {v} *_{impl}", f"libcblas {v} *_{impl}"])

    def python(self) -> None:
        libs = dict(self.libs)
        deps = [f"{n} {self.pin(libs[n][-3])}" if len(libs[n]) >= 3 else n
                for n in ["bzip2", "libffi", "libsqlite", "libuuid", "libzlib", "ncurses", "openssl", "readline", "tk",
                          "xz", "libnsl", "libxcrypt", "libexpat"]] + ["libgcc-ng >=12", "tzdata", "__glibc >=2.17"]
        for minor in PY_MINORS:
            for patch in range(self.rng.randint(8, 20)):
                v = f"{minor}.{patch}"
                for bn in range(2):
                    self.add("python", v, f"h{_hash7('py', v, bn)}_{bn}_cpython", bn,
                             deps + [f"python_abi {minor}.* *_cp{minor.replace('.', '')}"])
            self.add("python_abi", minor, f"4_cp{minor.replace('.', '')}", 4, [],
                     constrains=[f"python {minor}.* *_cpython"])
        self.add("tzdata", "2024a", "h0c530f3_0", 0, [], subdir="noarch", noarch="generic")
        for v in ["23.3", "24.0", "24.2"]:
            self.add("pip", v, "pyhd8ed1ab_0", 0, ["python >=3.8", "setuptools", "wheel"], subdir="noarch", noarch="python")
        for v in ["68.0.0", "69.5.1", "70.1.0"]:
            self.add("setuptools", v, "pyhd8ed1ab_0", 0, ["python >=3.8"], subdir="noarch", noarch="python")
        self.add("wheel", "0.43.0", "pyhd8ed1ab_1", 1, ["python >=3.8"], subdir="noarch", noarch="python")

    def compiled_py(self, name: str, vers: list[str], extra: list[str], minors: list[str] | None = None,
                    constrains: list[str] | None = None) -> None:
        for i, v in enumerate(vers):
            lo = 1 + i * len(PY_MINORS) // (2 * len(vers))
            n_builds = self.rng.randint(1, 2)  # a rebuild bumps the build number of every python variant
            for minor in (minors or PY_MINORS[lo:]):
                cp = minor.replace(".", "")
                for bn in range(n_builds):
                    self.add(name, v, f"py{cp}h{_hash7(name, v, minor, bn)}_{bn}", bn,
                             [f"python >={minor},<{_next_minor(minor)}.0a0",
                              f"python_abi {minor}.* *_cp{cp}", "libgcc-ng >=12"] + extra, constrains=constrains)

    def scipy_core(self) -> None:
        # history: conda-forge keeps every old build, and old builds pin old libraries
        for minor_v in range(10, 22):
            for patch in range(5):
                v = f"1.{minor_v}.{patch}"
                lo = min(minor_v - 10, 12) * 4 // 12  # python window moves with numpy
                self.compiled_py("numpy", [v], ["libblas >=3.8.0,<4.0a0", "libcblas >=3.8.0,<4.0a0",
                                                "liblapack >=3.8.0,<4.0a0", "libstdcxx-ng >=7.5.0"],
                                 minors=PY_MINORS[lo:lo + 4])
        for minor_v in range(20, 26):
            for patch in range(4):
                self.compiled_py("pandas", [f"0.{minor_v}.{patch}"], ["numpy >=1.13.3", "python-dateutil >=2.5",
                                                                      "pytz >=2017.2"], minors=PY_MINORS[:3])
        for minor_v in range(0, 5):
            for patch in range(4):
                self.compiled_py("pandas", [f"1.{minor_v}.{patch}"], [f"numpy >=1.{16 + minor_v},<2.0a0",
                                                                      "python-dateutil >=2.7.3", "pytz >=2017.3"],
                                 minors=PY_MINORS[1 + minor_v // 2:6])
        np_vers = ["1.22.4", "1.23.5", "1.24.4", "1.25.2", "1.26.4", "2.0.2", "2.1.3"]
        for v in np_vers:
            self.compiled_py("numpy", [v], ["libblas >=3.9.0,<4.0a0", "libcblas >=3.9.0,<4.0a0",
                                            "liblapack >=3.9.0,<4.0a0", "libstdcxx-ng >=12"],
                             minors=[m for m in PY_MINORS[2:] if not (v.startswith("2") and m == "3.8")
                                     and not (v < "1.26" and m in ("3.12", "3.13"))],
                             constrains=["numpy-base <0a0"])
        for v in ["1.5.3", "2.0.3", "2.1.4", "2.2.2"]:
            self.compiled_py("pandas", [v], [f"numpy >={'1.22.4' if v > '2' else '1.21'},<2.0a0" if v < "2.2"
                                             else "numpy >=1.22.4", "python-dateutil >=2.8.1", "pytz >=2020.1",
                                             "tzdata >=2022a", "libstdcxx-ng >=12"],
                             minors=[m for m in PY_MINORS[2:] if m != "3.13"])
        for name, vers in [("python-dateutil", ["2.8.2", "2.9.0"]), ("pytz", ["2023.3", "2024.1"]),
                           ("six", ["1.16.0", "1.17.0"])]:
            for v in vers:
                self.add(name, v, "pyhd8ed1ab_0", 0, ["python >=3.6"] + (["six >=1.5"] if name == "python-dateutil"
                                                                        else []), subdir="noarch", noarch="python")

    def filler(self) -> None:
        """Random libraries and python packages until the target size is reached."""
        rng = self.rng
        names: list[str] = []
        pynames: list[tuple[str, list[str]]] = []
        i = 0
        while self.count() < self.n:
            i += 1
            name = "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 3))) + f"-{i}"
            kind = rng.random()
            nvers = max(1, int(rng.paretovariate(1.3)))
            nvers = min(nvers, 40)
            vers = self.versions(nvers)
            if kind < 0.3:  # C library
                for v in vers:
                    for bn in range(rng.randint(1, 3)):
                        self.add(name, v, f"h{_hash7(name, v, bn)}_{bn}", bn, ["libgcc-ng >=12"] + self.libdeps(
                            rng.randint(0, 3)))
                self.libs.append((name, vers))
            elif kind < 0.7:  # noarch python
                deps = ["python >=3." + str(rng.choice([6, 7, 8, 9, 10]))]
                for other, ovs in rng.sample(pynames, min(len(pynames), rng.randint(0, 4))):
                    deps.append(f"{other} >={rng.choice(ovs)}" if rng.random() < 0.7 else other)
                cons = [f"{rng.choice(pynames)[0]} <{rng.randint(1, 5)}"] if pynames and rng.random() < 0.1 else None
                for v in vers:
                    self.add(name, v, f"pyhd8ed1ab_{rng.randint(0, 2)}", 0, deps, subdir="noarch", noarch="python",
                             constrains=cons)
                pynames.append((name, vers))
            else:  # compiled python package
                extra = self.libdeps(rng.randint(0, 2))
                if rng.random() < 0.5:
                    extra.append(f"numpy >={rng.choice(['1.22', '1.23', '1.26'])}")
                self.compiled_py(name, vers, extra)
                pynames.append((name, vers))
            names.append(name)

    def run(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self.base()
        self.python()
        self.scipy_core()
        self.filler()
        return ({"info": {"subdir": "linux-64"}, "packages": self._split(self.linux, ".tar.bz2"),
                 "packages.conda": self._split(self.linux, ".conda"), "repodata_version": 1},
                {"info": {"subdir": "noarch"}, "packages": self._split(self.noarch, ".tar.bz2"),
                 "packages.conda": self._split(self.noarch, ".conda"), "repodata_version": 1})

    @staticmethod
    def _split(d: dict[str, Any], ext: str) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k.endswith(ext)}


def _next_minor(minor: str) -> str:
    a, b = minor.split(".")
    return f"{a}.{int(b) + 1}"


def generate(n_records: int, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(linux-64 repodata, noarch repodata) with about ``n_records`` records in total."""
    return _Gen(n_records, seed).run()


def write_channel(out: str | Path, n_records: int, seed: int = 0, indent: int | None = None) -> Path:
    """Write a local channel directory (``linux-64`` and ``noarch``) and return it.

    ``indent=None`` writes one line (``json.dumps`` defaults); ``indent=1`` or ``2`` lays it out as conda-index does.
    """
    out = Path(out)
    linux, noarch = generate(n_records, seed)
    for sub, data in (("linux-64", linux), ("noarch", noarch)):
        (out / sub).mkdir(parents=True, exist_ok=True)
        (out / sub / "repodata.json").write_text(json.dumps(data, indent=indent, sort_keys=indent is not None))
    return out


if __name__ == "__main__":
    write_channel(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
                  indent=int(sys.argv[3]) if len(sys.argv) > 3 else None)
