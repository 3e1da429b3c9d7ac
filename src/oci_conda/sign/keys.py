"""cosign's key files: ``cosign.key`` (an ECDSA P-256 key, PKCS#8 DER, encrypted with a passphrase) and
``cosign.pub`` (the PKIX public key in PEM).

The private key file is PEM of type ``ENCRYPTED SIGSTORE PRIVATE KEY`` (cosign also reads the older ``ENCRYPTED
COSIGN PRIVATE KEY``) whose body is the JSON document of go-securesystemslib's ``encrypted`` package:
``{"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": B64}, "cipher": {"name":
"nacl/secretbox", "nonce": B64}, "ciphertext": B64}``, the secretbox key being scrypt(passphrase, salt) of 32 bytes.
The passphrase comes from ``COSIGN_PASSWORD`` or a terminal prompt, as cosign does; it is never printed or stored.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..cache import atomic_write
from .errors import SignError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
LEGACY_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
#: scrypt costs go-securesystemslib accepts (legacy, standard, OWASP); new keys use the standard one, as cosign
SCRYPT_PARAMS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
DEFAULT_SCRYPT = (65536, 8, 1)
PRIVATE_NAME, PUBLIC_NAME = "cosign.key", "cosign.pub"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes = b""
    public_pem: bytes = b""

    def __repr__(self) -> str:  # never show key material in tracebacks or logs
        return "KeyPair(<private key hidden>, public_pem=...)"


def _kdf(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def _pem(kind: str, body: bytes) -> bytes:
    b64 = base64.b64encode(body).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode()


def _unpem(data: bytes, what: str) -> tuple[str, bytes]:
    text = data.decode("ascii", "replace")
    start = text.find("-----BEGIN ")
    if start < 0:
        raise SignError(f"{what}: not a PEM file")
    head_end = text.find("-----", start + 11)
    kind = text[start + 11:head_end]
    end = text.find(f"-----END {kind}-----", head_end)
    if end < 0:
        raise SignError(f"{what}: truncated PEM block {kind!r}")
    body = "".join(line.strip() for line in text[head_end + 5:end].splitlines() if ":" not in line)
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise SignError(f"{what}: PEM block {kind!r} is not base64") from None


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes,
                        scrypt_params: tuple[int, int, int] = DEFAULT_SCRYPT) -> bytes:
    """The ``cosign.key`` bytes for ``key`` under ``passphrase``."""
    import nacl.secret
    import nacl.utils
    from cryptography.hazmat.primitives import serialization

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    salt = nacl.utils.random(32)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    n, r, p = scrypt_params
    box = nacl.secret.SecretBox(_kdf(passphrase, salt, n, r, p))
    sealed = box.encrypt(der, nonce).ciphertext  # tag + ciphertext, as Go's secretbox.Seal
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    return _pem(PEM_TYPE, json.dumps(doc, separators=(",", ":")).encode())


def decrypt_private_key(data: bytes, passphrase: bytes, what: str = PRIVATE_NAME) -> ec.EllipticCurvePrivateKey:
    """The ECDSA key in a ``cosign.key`` file; a wrong passphrase is a clear error, not a traceback."""
    import nacl.exceptions
    import nacl.secret
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    kind, body = _unpem(data, what)
    if kind not in (PEM_TYPE, LEGACY_PEM_TYPE):
        raise SignError(f"{what}: PEM type {kind!r} is not a cosign encrypted private key")
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = (int(kdf["params"]["N"]), int(kdf["params"]["r"]), int(kdf["params"]["p"]))
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        sealed = base64.b64decode(doc["ciphertext"])
    except (ValueError, KeyError, TypeError):
        raise SignError(f"{what}: malformed encrypted key document") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise SignError(f"{what}: unsupported kdf {kdf.get('name')!r} or cipher {cipher.get('name')!r}")
    if params not in SCRYPT_PARAMS:
        raise SignError(f"{what}: unsupported scrypt parameters N={params[0]} r={params[1]} p={params[2]}")
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise SignError(f"{what}: bad nonce size")
    try:
        der = nacl.secret.SecretBox(_kdf(passphrase, salt, *params)).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise SignError(f"{what}: wrong passphrase (decryption failed)") from None
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise SignError(f"{what}: decrypted key is not PKCS#8") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SignError(f"{what}: only ECDSA keys are supported")
    return key


def public_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes, what: str = PUBLIC_NAME) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SignError(f"{what}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignError(f"{what}: only ECDSA public keys are supported")
    return key


def generate_key_pair(passphrase: bytes) -> KeyPair:
    """A new P-256 key pair: ``cosign.key`` bytes (encrypted) and ``cosign.pub`` bytes."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(encrypt_private_key(key, passphrase), public_pem(key))


def read_passphrase(confirm: bool = False, env: Mapping[str, str] | None = None) -> bytes:
    """``COSIGN_PASSWORD`` (may be empty, as cosign allows), else a prompt on a terminal (twice when creating a
    key); on a non-terminal without the variable, a clear error instead of hanging."""
    env = os.environ if env is None else env
    if "COSIGN_PASSWORD" in env:
        return env["COSIGN_PASSWORD"].encode()
    if not sys.stdin.isatty():
        raise SignError("no passphrase: set COSIGN_PASSWORD or run on a terminal")
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise SignError("passwords do not match")
    return first.encode()


def write_key_pair(directory: str | os.PathLike[str], pair: KeyPair, force: bool = False) -> tuple[Path, Path]:
    """Write ``cosign.key`` (mode 0600) and ``cosign.pub`` atomically into ``directory``; an existing key is kept
    unless ``force``, so a second ``keygen`` never destroys the only copy of a key."""
    d = Path(directory)
    priv, pub = d / PRIVATE_NAME, d / PUBLIC_NAME
    if not force:
        for p in (priv, pub):
            if p.exists():
                raise SignError(f"{p}: already exists; remove it first")
    with atomic_write(priv) as f:  # mkstemp: created 0600
        os.fchmod(f.fileno(), 0o600)
        f.write(pair.private_pem)
    with atomic_write(pub) as f:
        os.fchmod(f.fileno(), 0o644)
        f.write(pair.public_pem)
    return priv, pub


def load_private_key(path: str | os.PathLike[str], passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SignError(f"{path}: cannot read key ({e.strerror})") from None
    return decrypt_private_key(data, passphrase, str(path))
