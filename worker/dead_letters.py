"""The dead-letter record, pure: what could not be processed, why, and where it was read."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

# A dead letter carries at most this much of the original value (and key), base64-encoded, with its size
# and SHA-256: the whole record always fits Kafka's default 1 MB limit.
DEAD_LETTER_MAX_BYTES = 256 * 1024


def dead_letter(reason: str, detail: str, topic: str, partition: int, offset: int,
                key: bytes | None, raw: bytes | None, at: str) -> dict[str, Any]:
    """The dead-letter record: why, where from, and the original key and value: their bytes (base64),
    whole up to DEAD_LETTER_MAX_BYTES and a prefix past it (`*_truncated`), their size and SHA-256."""
    return {
        "reason": reason,
        "error": detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        **_kept("key", key),
        **_kept("value", raw),
        "dead_lettered_at": at,
    }


def _kept(name: str, raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        return {f"{name}_b64": None}
    return {f"{name}_b64": base64.b64encode(raw[:DEAD_LETTER_MAX_BYTES]).decode(),
            f"{name}_truncated": len(raw) > DEAD_LETTER_MAX_BYTES,
            f"{name}_size": len(raw),
            f"{name}_sha256": hashlib.sha256(raw).hexdigest()}
