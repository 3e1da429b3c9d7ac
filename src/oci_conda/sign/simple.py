"""containers "simple signing" (OpenPGP): what podman and skopeo verify under a ``signedBy`` policy.

A signature is an OpenPGP signed message (``gpg --sign``, binary) whose content is the simple-signing payload
with type ``atomic container signature``. It is stored in a "lookaside" directory laid out as skopeo's
registries.d ``lookaside`` reads it: ``DIR/<repository path>@sha256=<hex>/signature-<N>``, N counting from 1, the
repository path being the reference without its registry host. Signing and verifying run the ``gpg`` program;
verification uses a private, temporary GNUPGHOME holding only the given keyring, so no other key is trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..cache import atomic_write
from .errors import SignError
from .payload import ATOMIC_TYPE, Claim, make_payload, parse_payload

MAX_SIGNATURES = 128


@dataclass(frozen=True)
class DockerRef:
    """``host[:port]/path[:tag]`` split into its parts (a digest reference is not needed here)."""

    host: str
    path: str
    tag: str | None

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.path}"

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "")


def parse_ref(ref: str) -> DockerRef:
    """A fully qualified reference (``127.0.0.1:5000/team/app:1``); bare Docker Hub names are not expanded."""
    ref = ref.split("@", 1)[0]
    host, sep, rest = ref.partition("/")
    if not sep or not rest or not ("." in host or ":" in host or host == "localhost"):
        raise SignError(f"{ref!r}: give the full reference with its registry host (host/path[:tag])")
    path, tag = rest, None
    m = re.match(r"^(.*):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$", rest)
    if m and "/" not in m.group(2):
        path, tag = m.group(1), m.group(2)
    return DockerRef(host, path, tag)


def signature_dir(lookaside: str | os.PathLike[str], ref: DockerRef, digest: str) -> Path:
    alg, _, hexpart = digest.partition(":")
    return Path(lookaside) / f"{ref.path}@{alg}={hexpart}"


def lookaside_path(lookaside: str | os.PathLike[str], ref: DockerRef, digest: str, index: int) -> Path:
    """``DIR/<path>@sha256=<hex>/signature-<index>`` (index from 1)."""
    return signature_dir(lookaside, ref, digest) / f"signature-{index}"


def _gpg(args: list[str], data: bytes | None, home: str | None, gpg: str,
         interactive: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run gpg; ``interactive`` leaves out ``--batch`` so gpg-agent may ask for a protected key's passphrase
    (pinentry talks to the terminal, never through us)."""
    exe = shutil.which(gpg)
    if exe is None:
        raise SignError(f"the {gpg!r} program is not installed")
    env = dict(os.environ)
    if home is not None:
        env["GNUPGHOME"] = home
    mode = [] if interactive else ["--batch", "--no-tty"]
    return subprocess.run([exe, *mode, *args], input=data, capture_output=True, env=env,
                          check=False)


def gpg_sign(payload: bytes, fingerprint: str, gnupghome: str | None = None, gpg: str = "gpg") -> bytes:
    """``payload`` as a binary OpenPGP signed message made by the key ``fingerprint``. On a terminal gpg may
    prompt for the key's passphrase; elsewhere it runs in batch mode (a protected key then needs gpg-agent to
    have the passphrase already)."""
    with tempfile.TemporaryDirectory(prefix="oci-conda-sign-") as tmp:
        src = Path(tmp) / "payload.json"
        src.write_bytes(payload)
        r = _gpg(["--local-user", fingerprint, "--sign", "--output", "-", str(src)], None, gnupghome, gpg,
                 interactive=sys.stdin.isatty())
    if r.returncode != 0 or not r.stdout:
        last = (r.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise SignError(f"gpg could not sign with key {fingerprint}: {last}")
    return r.stdout


def sign_image(reference: str, digest: str, fingerprint: str, lookaside: str | os.PathLike[str],
               gnupghome: str | None = None, timestamp: int | None = None, gpg: str = "gpg") -> Path:
    """Sign the image ``reference`` (host/path:tag, as pulled) with manifest ``digest`` and store the signature
    at the next free ``signature-N`` of the lookaside directory. Returns the file written."""
    ref = parse_ref(reference)
    optional = {"creator": f"oci-conda {__version__}", "timestamp": int(time.time() if timestamp is None else timestamp)}
    blob = gpg_sign(make_payload(str(ref), digest, ATOMIC_TYPE, optional), fingerprint, gnupghome, gpg)
    d = signature_dir(lookaside, ref, digest)
    d.mkdir(parents=True, exist_ok=True)
    for n in range(1, MAX_SIGNATURES + 1):
        path = d / f"signature-{n}"
        if not path.exists():
            with atomic_write(path) as f:
                os.fchmod(f.fileno(), 0o644)
                f.write(blob)
            return path
    raise SignError(f"{d}: already holds {MAX_SIGNATURES} signatures")


@dataclass(frozen=True)
class Verified:
    claim: Claim
    fingerprint: str
    path: Path


def gpg_verify(signature: bytes, keyring: str | os.PathLike[str], gpg: str = "gpg") -> tuple[bytes, str]:
    """The signed content and the signing key's fingerprint, if ``signature`` is a good signature by a key in
    ``keyring`` (armored or binary public keys); else ``SignError``."""
    with tempfile.TemporaryDirectory(prefix="oci-conda-gpg-") as home:
        os.chmod(home, 0o700)
        try:
            keys = Path(keyring).read_bytes()
        except OSError as e:
            raise SignError(f"{keyring}: cannot read keyring ({e.strerror})") from None
        r = _gpg(["--import"], keys, home, gpg)
        if r.returncode != 0:
            raise SignError(f"{keyring}: gpg cannot import it as public keys")
        r = _gpg(["--status-fd", "2", "--output", "-", "--decrypt"], signature, home, gpg)
        status = r.stderr.decode("utf-8", "replace")
        good = re.search(r"^\[GNUPG:\] GOODSIG ", status, re.MULTILINE)
        valid = re.search(r"^\[GNUPG:\] VALIDSIG ([0-9A-F]{40,64}) (.*)$", status, re.MULTILINE)
        if r.returncode != 0 or not good or not valid:
            why = "no key in the keyring made it" if "NO_PUBKEY" in status else "bad or missing signature"
            raise SignError(f"OpenPGP signature not accepted: {why}")
        fields = valid.group(2).split()
        # the primary key's fingerprint is the last field when a subkey made the signature
        primary = fields[8] if len(fields) > 8 and re.fullmatch(r"[0-9A-F]{40,64}", fields[8]) else valid.group(1)
        return r.stdout, primary


def _identity_matches(signed: str, ref: DockerRef) -> bool:
    """containers/image's default rule (matchRepoDigestOrExact): a tag reference must be signed exactly as that
    tag; a reference without a tag only by its repository."""
    try:
        s = parse_ref(signed)
    except SignError:
        return False
    if ref.tag:
        return s.repository == ref.repository and s.tag == ref.tag
    return s.repository == ref.repository


def verify_image(reference: str, digest: str, keyring: str | os.PathLike[str], lookaside: str | os.PathLike[str],
                 gpg: str = "gpg") -> list[Verified]:
    """Every lookaside signature of ``reference``@``digest`` that is good by a key of ``keyring`` and names this
    image and digest. None is an error saying why."""
    ref = parse_ref(reference)
    out, reasons = [], []
    for n in range(1, MAX_SIGNATURES + 1):
        path = lookaside_path(lookaside, ref, digest, n)
        if not path.is_file():
            break
        try:
            content, fpr = gpg_verify(path.read_bytes(), keyring, gpg)
            claim = parse_payload(content, ATOMIC_TYPE)
        except SignError as e:
            reasons.append(f"{path.name}: {e}")
            continue
        if claim.digest != digest:
            reasons.append(f"{path.name}: signed digest {claim.digest} is not {digest}")
        elif not _identity_matches(claim.reference, ref):
            reasons.append(f"{path.name}: signed for {claim.reference}, not {ref}")
        else:
            out.append(Verified(claim, fpr, path))
    if not out:
        detail = "; ".join(reasons) if reasons else f"none under {signature_dir(lookaside, ref, digest)}"
        raise SignError(f"no valid signature for {ref}@{digest}: {detail}")
    return out
