"""Self-signed TLS certificate for the local API (the CLEMAP edge serves HTTPS on :7000).

Generated once into the data directory and reused afterwards, so clients that pin it keep working.

An existing pair is checked with the standard library (:mod:`ssl` loads it exactly as the server
will). Generation needs ``cryptography``; it runs in a short-lived child interpreter
(``python -m fuseguard.api.tls``), so the long-running edge process never maps that library (about
8 MB of resident memory on a small edge device).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CERT_NAME = "local-api.crt"
KEY_NAME = "local-api.key"
#: The subjectAltName entries the pair was generated for (one per line).
NAMES_NAME = "local-api.names"
VALIDITY_DAYS = 3650
#: Upper bound for the child that generates the key and certificate.
GENERATE_TIMEOUT_S = 60.0


def ensure_self_signed_cert(
    data_dir: Path,
    hostnames: list[str],
    *,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Return ``(cert, key)`` paths in ``data_dir``, generating them on first use.

    ``hostnames`` go into the subjectAltName (IP literals as IP entries); ``localhost`` and
    ``127.0.0.1`` are always included. ``now`` is the notBefore reference (defaults to the wall
    clock: a certificate's validity is wall time, not control time). An existing pair that does
    not load (unparsable, or key and certificate do not match) is replaced; one that loads is kept
    (clients may pin it), with a warning when it lacks a configured name (``local-api.names``
    lists the names it was made for). The key is created 0600.
    """
    data_dir = Path(data_dir)
    cert_path = data_dir / CERT_NAME
    key_path = data_dir / KEY_NAME
    names_path = data_dir / NAMES_NAME
    names = list(dict.fromkeys([*hostnames, "localhost", "127.0.0.1"]))
    if cert_path.is_file() and key_path.is_file():
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as exc:
            log.warning("tls_cert_unusable", device=str(cert_path), reason=str(exc))
        else:
            generated = _generated_for(names_path)
            if generated is not None and not set(names) <= generated:
                # kept: clients may pin it; the operator decides when to replace it
                log.warning(
                    "tls_cert_names_missing",
                    device=str(cert_path),
                    reason="the certificate was generated for other names; delete "
                    f"{CERT_NAME} and {KEY_NAME} to generate one for the configured names",
                    missing=sorted(set(names) - generated),
                )
            return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True)
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [sys.executable, "-m", __name__, str(data_dir), start.isoformat(), *names],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        msg = f"generating the TLS certificate failed: {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)
    _write_atomic(names_path, "".join(f"{n}\n" for n in names).encode(), mode=0o644)
    log.info("tls_cert_generated", device=str(cert_path), reason="first start", names=names)
    return cert_path, key_path


def _generated_for(names_path: Path) -> set[str] | None:
    """The names of an existing pair; None when they were not kept."""
    try:
        return {n for n in names_path.read_text(encoding="utf-8").splitlines() if n}
    except OSError:
        return None


def generate_self_signed_cert(data_dir: Path, names: list[str], start: dt.datetime) -> None:
    """Write a new EC P-256 key and a self-signed certificate for ``names`` (in this process)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fuseguard edge"),
        ]
    )
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(data_dir / KEY_NAME, key_pem, mode=0o600)
    _write_atomic(data_dir / CERT_NAME, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


if __name__ == "__main__":  # the child of ensure_self_signed_cert: DATA_DIR START NAME...
    generate_self_signed_cert(
        Path(sys.argv[1]), sys.argv[3:], dt.datetime.fromisoformat(sys.argv[2])
    )
