"""The ``pip:`` section, read as conda and pip read it: a requirements file, one entry per line.

conda writes the section to a temporary requirements file beside the environment file and runs ``pip install -r``,
so the syntax is pip's requirements-file syntax: PEP 508 requirements (extras, markers, ``name @ URL``), ``--hash``,
``-r``/``-c`` files relative to the environment file's directory, index options and ``${VAR}`` expansion.
We install wheels only, never building anything, so everything that needs a build (``-e``, VCS URLs, source archives,
local source trees, ``--no-binary``) is refused here, with one line naming the entry and its ``file:line``.
Index URLs may carry credentials: they are kept for requests and hidden in every message and ``repr``.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from ..credentials import redact_url
from ..errors import SpecError
from .hosts import HostCredentials

if TYPE_CHECKING:
    from packaging.requirements import Requirement

_VCS = ("git+", "hg+", "svn+", "bzr+")
_ARCHIVES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_HASH = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
#: Options that change nothing for a wheel-only, ignore-installed resolve.
_NO_OPS = {"-U", "--upgrade", "--prefer-binary", "--no-cache-dir", "-q", "--quiet", "-v", "--verbose"}


class SourceLine(Protocol):
    """One entry of the section: its text and where it sits (``environment.yml:12``), as ``spec`` carries it."""

    text: str
    where: str


@dataclass(frozen=True)
class PipRequirement:
    """A requirement (or constraint) with the hashes pip would check and the place it was written."""

    req: Requirement = field(repr=False)  #: its ``url`` may carry credentials: use :meth:`display`
    where: str
    hashes: tuple[str, ...] = ()  #: ``"sha256:<hex>"``

    @property
    def name(self) -> str:
        from packaging.utils import canonicalize_name

        return canonicalize_name(self.req.name)

    def pip_line(self) -> str:
        """The line handed to pip (credentials included: only ever written to a private temporary file)."""
        return " ".join([str(self.req), *(f"--hash={h}" for h in self.hashes)])

    def display(self) -> str:
        """The requirement for messages: any URL redacted."""
        text = str(self.req)
        return text.replace(self.req.url, redact_url(self.req.url)) if self.req.url else text

    def __repr__(self) -> str:
        return f"PipRequirement({self.display()!r}, where={self.where!r})"


@dataclass(frozen=True)
class PipSection:
    """Everything the section asks of pip, flattened over nested ``-r``/``-c`` files."""

    requirements: tuple[PipRequirement, ...] = ()
    constraints: tuple[PipRequirement, ...] = ()
    index_url: str | None = field(default=None, repr=False)  #: ``None``: pip's default index
    extra_index_urls: tuple[str, ...] = field(default=(), repr=False)
    find_links: tuple[str, ...] = field(default=(), repr=False)  #: URLs or absolute paths
    no_index: bool = False
    pre: bool = False
    trusted_hosts: tuple[str, ...] = ()
    require_hashes: bool = False

    def credentials(self) -> HostCredentials:
        """Credentials of every index, find-links and direct URL, scoped to their hosts."""
        urls = [*([self.index_url] if self.index_url else []), *self.extra_index_urls, *self.find_links]
        urls += [r.req.url for r in (*self.requirements, *self.constraints) if r.req.url]
        return HostCredentials(urls)


class _Reader:
    """Accumulates one section; :func:`parse_pip_section` is its only user."""

    def __init__(self, base_dir: Path, environ: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.environ = environ
        self.requirements: list[PipRequirement] = []
        self.constraints: list[PipRequirement] = []
        self.index_url: str | None = None
        self.extra: list[str] = []
        self.find_links: list[str] = []
        self.trusted: list[str] = []
        self.no_index = self.pre = self.require_hashes = False
        self.stack: list[Path] = []

    def read_file(self, path: Path, where: str, constraint: bool) -> None:
        resolved = path.resolve()
        if resolved in self.stack:
            chain = " -> ".join(p.name for p in [*self.stack, resolved])
            raise SpecError(f"{where}: requirements files include each other in a loop ({chain})")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{where}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        self.stack.append(resolved)
        saved = self.base_dir
        self.base_dir = path.parent
        try:
            for lineno, line in _logical_lines(text):
                self.line(line, f"{path}:{lineno}", constraint)
        finally:
            self.base_dir = saved
            self.stack.pop()

    def line(self, raw: str, where: str, constraint: bool) -> None:
        text = _COMMENT.sub("", raw).strip()
        if not text:
            return
        text = _ENV_VAR.sub(lambda m: self.environ.get(m.group(1), m.group(0)), text)
        # As pip: requirement words run up to the first word starting with "-"; the rest are options (``--hash``).
        words = text.split()
        first_opt = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        try:
            tokens = shlex.split(" ".join(words[first_opt:]), posix=True)
        except ValueError:
            raise SpecError(f"{where}: cannot split {_redacted(text)!r} into words (unbalanced quotes?)") from None
        if first_opt == 0:
            self.options(tokens, where, constraint)
            return
        hashes = self.hash_options(tokens, where)
        self.requirement(" ".join(words[:first_opt]), hashes, where, constraint)

    def options(self, tokens: list[str], where: str, constraint: bool) -> None:
        opt, value, rest = _split_option(tokens)
        if rest:
            raise SpecError(f"{where}: unexpected {_redacted(' '.join(rest))!r} after {opt}")
        if opt in ("-e", "--editable"):
            raise SpecError(f"{where}: pip: -e {_redacted(value or '')} is an editable source install; "
                            "only wheels can be installed (build a wheel and list it instead)")
        if opt in ("-r", "--requirement", "-c", "--constraint"):
            nested = self.base_dir / _need(opt, value, where)
            self.read_file(nested, where, constraint=opt in ("-c", "--constraint"))
        elif opt in ("-i", "--index-url"):
            self.index_url = _need(opt, value, where)
        elif opt == "--extra-index-url":
            self.extra.append(_need(opt, value, where))
        elif opt in ("-f", "--find-links"):
            link = _need(opt, value, where)
            self.find_links.append(link if "://" in link else str((self.base_dir / link).resolve()))
        elif opt == "--trusted-host":
            self.trusted.append(_need(opt, value, where))
        elif opt == "--no-index":
            self.no_index = True
        elif opt == "--pre":
            self.pre = True
        elif opt == "--require-hashes":
            self.require_hashes = True
        elif opt == "--no-binary":
            if _need(opt, value, where) != ":none:":
                raise SpecError(f"{where}: pip: --no-binary {value} asks to build from source; "
                                "only wheels can be installed (a wheel is needed)")
        elif opt == "--only-binary":
            _need(opt, value, where)  # every package is binary-only here already
        elif opt in _NO_OPS:
            pass
        else:
            raise SpecError(f"{where}: pip option {opt} is not supported in a pip: section")

    def hash_options(self, tokens: list[str], where: str) -> tuple[str, ...]:
        hashes: list[str] = []
        while tokens:
            opt, value, tokens = _split_option(tokens)
            if opt != "--hash":
                raise SpecError(f"{where}: pip option {opt} is not allowed after a requirement (only --hash)")
            h = _need(opt, value, where).lower()
            if not _HASH.match(h):
                raise SpecError(f"{where}: --hash={value}: expected sha256:<hex> (or sha384/sha512)")
            hashes.append(h)
        return tuple(hashes)

    def requirement(self, text: str, hashes: tuple[str, ...], where: str, constraint: bool) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        text = self.bare_url_or_path(text, where)
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise SpecError(f"{where}: pip: {_redacted(text)!r} is not a valid requirement: "
                            f"{_redacted(str(exc).splitlines()[0])}") from None
        if req.url:
            req.url = self.check_url(req.url, req.name, where)
        entry = PipRequirement(req, where, hashes)
        (self.constraints if constraint else self.requirements).append(entry)

    def bare_url_or_path(self, text: str, where: str) -> str:
        """pip also takes a bare URL or path; turn a wheel into ``name @ URL`` and refuse anything else."""
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        head = text.split(";", 1)[0].strip()
        named = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^]]*\])?\s*(@\s|@$|[<>=!~(]|$)", head)
        if named and (named.group(2).startswith("@") or ("/" not in head and not head.endswith(_ARCHIVES))):
            return text
        if head.startswith(_VCS):
            raise SpecError(f"{where}: pip: {redact_url(head)} is a version-control source; "
                            "only wheels can be installed (a wheel is needed)")
        is_url = "://" in head
        path = urlsplit(head).path if is_url else head
        name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
        if not name.endswith(".whl"):
            shown = redact_url(head) if is_url else head
            raise SpecError(f"{where}: pip: {shown} is a source tree or archive, not a wheel; "
                            "only wheels can be installed (a wheel is needed)")
        try:
            dist = parse_wheel_filename(name)[0]
        except InvalidWheelFilename:
            raise SpecError(f"{where}: pip: {name} is not a valid wheel file name") from None
        url = head if is_url else (self.base_dir / head).resolve().as_uri()
        marker = text.split(";", 1)[1] if ";" in text else ""
        return f"{dist} @ {url}" + (f" ; {marker.strip()}" if marker else "")

    def check_url(self, url: str, name: str, where: str) -> str:
        if url.startswith(_VCS):
            raise SpecError(f"{where}: pip: {name} @ {redact_url(url)} is a version-control source; "
                            "only wheels can be installed (a wheel is needed)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "file"):
            raise SpecError(f"{where}: pip: {name} @ {redact_url(url)}: unsupported URL scheme {parts.scheme!r}")
        if not unquote(parts.path).endswith(".whl"):
            raise SpecError(f"{where}: pip: {name} @ {redact_url(url)} is a source archive or tree, not a wheel; "
                            "only wheels can be installed (a wheel is needed)")
        if parts.scheme == "file" and not parts.path.startswith("/"):
            return (self.base_dir / unquote(parts.netloc + parts.path)).resolve().as_uri()
        return url

    def finish(self) -> PipSection:
        index_url = self.index_url or self.environ.get("PIP_INDEX_URL") or None
        extra = [*self.environ.get("PIP_EXTRA_INDEX_URL", "").split(), *self.extra]
        section = PipSection(
            requirements=tuple(self.requirements),
            constraints=tuple(self.constraints),
            index_url=index_url,
            extra_index_urls=tuple(dict.fromkeys(extra)),
            find_links=tuple(dict.fromkeys(self.find_links)),
            no_index=self.no_index,
            pre=self.pre,
            trusted_hosts=tuple(dict.fromkeys(self.trusted)),
            require_hashes=self.require_hashes or any(r.hashes for r in self.requirements),
        )
        if section.require_hashes:
            _check_hash_mode(section)
        return section


def parse_pip_section(
    lines: Iterable[SourceLine | tuple[str, str]],
    *,
    base_dir: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> PipSection:
    """Read the section's entries (text, ``file:line``); ``-r``/``-c``/``-f`` paths are relative to ``base_dir``
    (the environment file's directory). ``environ`` (default ``os.environ``) supplies ``${VAR}`` and the
    ``PIP_INDEX_URL``/``PIP_EXTRA_INDEX_URL`` defaults. Raises :class:`SpecError` with one line on bad input."""
    reader = _Reader(Path(base_dir), os.environ if environ is None else environ)
    for line in lines:
        text, where = line if isinstance(line, tuple) else (line.text, line.where)
        reader.line(text, where, constraint=False)
    return reader.finish()


def _check_hash_mode(section: PipSection) -> None:
    """pip's hash-checking mode: once one requirement has a hash, every one must be pinned and hashed."""
    for r in section.requirements:
        pinned = r.req.url is not None or any(s.operator in ("==", "===") and "*" not in s.version
                                                for s in r.req.specifier)
        has_hash = bool(r.hashes) or (r.req.url is not None and "sha256=" in urlsplit(r.req.url).fragment)
        if not pinned:
            raise SpecError(f"{r.where}: pip: {r.display()}: in hash-checking mode every requirement must be "
                            "pinned with ==")
        if not has_hash:
            raise SpecError(f"{r.where}: pip: {r.display()}: in hash-checking mode every requirement needs "
                            "--hash=sha256:...")


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines with ``\\`` continuations joined, each with the number of its first physical line."""
    buf: list[str] = []
    start = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if line.endswith("\\") and not _COMMENT.search(line):
            buf.append(line[:-1])
            continue
        buf.append(line)
        yield start, " ".join(buf)
        buf = []
    if buf:
        yield start, " ".join(buf)


def _split_option(tokens: list[str]) -> tuple[str, str | None, list[str]]:
    """``(--opt, value, rest)`` from ``--opt=value``, ``--opt value`` or ``-rFILE``."""
    head, rest = tokens[0], tokens[1:]
    if head.startswith("--"):
        if "=" in head:
            opt, value = head.split("=", 1)
            return opt, value, rest
        takes_value = head not in ("--no-index", "--pre", "--require-hashes", *_NO_OPS)
    else:
        if len(head) > 2:
            return head[:2], head[2:], rest
        takes_value = head not in _NO_OPS
    if takes_value and rest and not rest[0].startswith("-"):
        return head, rest[0], rest[1:]
    return head, None, rest


def _need(opt: str, value: str | None, where: str) -> str:
    if not value:
        raise SpecError(f"{where}: pip option {opt} needs a value")
    return value


def _redacted(text: str) -> str:
    """``text`` with any URL inside it redacted (for echoing user input in messages)."""
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact_url(m.group(0)), text)
