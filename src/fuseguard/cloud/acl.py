"""Per-edge broker credentials and ACLs for Mosquitto (password file + ACL file).

Each edge gets its own user, named after its edge id, that may only write its own state, status
and acks and only read its own commands, so one edge cannot speak for another. The cloud user
reads every edge's state, status and acks and writes commands.

Password file lines use Mosquitto 2's ``$7$`` format (PBKDF2-SHA512, 101 iterations, 12-byte
salt), the same as ``mosquitto_passwd`` writes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fuseguard.cloud.protocol import Topics

_ITERATIONS = 101


def mosquitto_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """``$7$101$<salt>$<hash>`` as Mosquitto 2 stores it."""
    salt_bytes = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt_bytes, _ITERATIONS)
    return (
        f"$7${_ITERATIONS}${base64.b64encode(salt_bytes).decode()}"
        f"${base64.b64encode(digest).decode()}"
    )


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """The two files Mosquitto needs (``password_file`` and ``acl_file``)."""

    passwords: str
    acl: str


def edge_acl(topics: Topics, edge_device_id: str) -> list[str]:
    """ACL lines of one edge user (named after the edge)."""
    root = topics.edge_root(edge_device_id)
    return [
        f"user {edge_device_id}",
        f"topic write {root}/state",
        f"topic write {root}/evses/+/status",
        f"topic write {root}/ack/+",
        f"topic read {root}/cmd",
    ]


def cloud_acl(topics: Topics, cloud_user: str) -> list[str]:
    """ACL lines of the cloud user (every replica logs in as it)."""
    return [
        f"user {cloud_user}",
        f"topic read {topics.prefix}/edges/+/state",
        f"topic read {topics.prefix}/edges/+/evses/+/status",
        f"topic read {topics.prefix}/edges/+/ack/+",
        f"topic write {topics.prefix}/edges/+/cmd",
    ]


def mosquitto_files(
    topics: Topics,
    edge_passwords: Mapping[str, str],
    cloud_user: str,
    cloud_password: str,
) -> BrokerFiles:
    """Password and ACL files for ``edge_passwords`` (edge id -> password) and the cloud user."""
    if cloud_user in edge_passwords:
        msg = f"cloud user {cloud_user!r} collides with an edge id"
        raise ValueError(msg)
    pw_lines = [f"{cloud_user}:{mosquitto_password_hash(cloud_password)}"]
    acl_lines = [*cloud_acl(topics, cloud_user), ""]
    for edge_id, password in sorted(edge_passwords.items()):
        pw_lines.append(f"{edge_id}:{mosquitto_password_hash(password)}")
        acl_lines.extend([*edge_acl(topics, edge_id), ""])
    return BrokerFiles("\n".join(pw_lines) + "\n", "\n".join(acl_lines))


def new_edge_passwords(edge_ids: Iterable[str]) -> dict[str, str]:
    """A fresh random password per edge."""
    return {edge_id: secrets.token_urlsafe(24) for edge_id in edge_ids}
