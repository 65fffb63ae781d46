"""API keys: random, shown once, stored only as a SHA-256 hash (they carry 256 bits of entropy)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class NewApiKey:
    key: str  # shown to the caller once, never stored
    prefix: str
    key_hash: str


def generate_api_key(prefix: str = "bk") -> NewApiKey:
    secret = secrets.token_urlsafe(32)
    key = f"{prefix}_{secret}"
    return NewApiKey(key=key, prefix=key[: len(prefix) + 9], key_hash=hash_api_key(key))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
