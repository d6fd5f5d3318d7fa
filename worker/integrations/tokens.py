"""Access tokens encrypted at rest on the integrations topic, pure but for reading the key file.

The CLI encrypts a record's `access_token` before publishing it; the worker decrypts it in
memory. An encrypted token stays a string in the `access_token` field, `enc:v1:` and a
Fernet token (AES-128-CBC with HMAC-SHA256), so every record still is an integration v1.
A record whose token is in plain text (from before encryption was set up) is taken as it is
until `integrations rotate` encrypts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from worker.integrations.config import InvalidIntegration
from worker.settings import Settings

ENCRYPTED_PREFIX = "enc:v1:"


class UndecryptableToken(InvalidIntegration):
    """The record's token is encrypted with no key this process has; the message never holds a key or token."""


def token_keys(settings: Settings) -> MultiFernet | None:
    """The keys from TOKEN_ENCRYPTION_KEYS or TOKEN_ENCRYPTION_KEYS_FILE (the first encrypts), or None."""
    if settings.token_encryption_keys and settings.token_encryption_keys_file:
        raise SystemExit("set TOKEN_ENCRYPTION_KEYS or TOKEN_ENCRYPTION_KEYS_FILE, not both")
    source, raw = "TOKEN_ENCRYPTION_KEYS", settings.token_encryption_keys
    if settings.token_encryption_keys_file:
        source = "TOKEN_ENCRYPTION_KEYS_FILE"
        try:
            raw = Path(settings.token_encryption_keys_file).read_text()
        except OSError as exc:
            raise SystemExit(f"TOKEN_ENCRYPTION_KEYS_FILE cannot be read: {exc.strerror}") from None
    keys = raw.replace("\n", ",").split(",")
    fernets = []
    for number, key in enumerate((k.strip() for k in keys if k.strip()), start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise SystemExit(f"{source}: key {number} is not a Fernet key (32 url-safe base64-encoded bytes)") from None
    return MultiFernet(fernets) if fernets else None


def is_encrypted(record: dict[str, Any]) -> bool:
    return isinstance(record.get("access_token"), str) and record["access_token"].startswith(ENCRYPTED_PREFIX)


def encrypt_token(record: dict[str, Any], keys: MultiFernet) -> dict[str, Any]:
    """The record with its token encrypted with the first key, from plain text or from any of the keys."""
    token = keys.encrypt(decrypt_token(record, keys)["access_token"].encode()).decode()
    return {**record, "access_token": ENCRYPTED_PREFIX + token}


def decrypt_token(record: Any, keys: MultiFernet | None) -> Any:
    """The record with its token in plain text; anything but an encrypted record is returned as it is."""
    if not isinstance(record, dict) or not is_encrypted(record):
        return record
    if keys is None:
        raise UndecryptableToken(
            f"{record.get('app_id')}: access_token is encrypted and TOKEN_ENCRYPTION_KEYS is not set")
    try:
        token = keys.decrypt(record["access_token"].removeprefix(ENCRYPTED_PREFIX).encode())
    except InvalidToken:
        raise UndecryptableToken(
            f"{record.get('app_id')}: access_token is encrypted with none of the TOKEN_ENCRYPTION_KEYS") from None
    return {**record, "access_token": token.decode()}

