# Copyright: zerotrust.aks contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cookie secret rules shared by the cookie_secret module and its tests.

This module is private to the collection: its names may change in any release.

oauth2-proxy turns its ``--cookie-secret`` into an AES key with this rule
(``pkg/encryption/utils.go``, ``SecretBytes``): strip trailing ``=``, decode
as unpadded base64url; if that works and gives 16, 24 or 32 bytes, the
decoded bytes are the key. Otherwise the raw string's bytes are the key, and
their length must then be 16, 24 or 32. ``key_length`` below follows the same
rule so that a value accepted here is accepted there, and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets

AES_KEY_LENGTHS = (16, 24, 32)
ENCODINGS = ("base64url", "hex")

_BASE64URL_ALPHABET = re.compile(r"\A[A-Za-z0-9_-]*\Z")
_HEX = re.compile(r"\A(?:[0-9a-f][0-9a-f])+\Z")


def _decode_base64url(value: str) -> bytes | None:
    """Decode like Go's ``base64.RawURLEncoding.DecodeString`` (non-strict).

    Go skips carriage returns and newlines while decoding, rejects every other
    character outside the URL-safe alphabet, and rejects a length that leaves
    a single dangling character (length % 4 == 1).
    """
    text = value.rstrip("=").replace("\r", "").replace("\n", "")
    if not _BASE64URL_ALPHABET.match(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def key_length(value: str) -> tuple[int, bool]:
    """Return ``(length, decoded)``: the AES key length oauth2-proxy derives.

    ``decoded`` tells whether the base64url reading was used. A value is valid
    when ``length`` is in ``AES_KEY_LENGTHS``.
    """
    decoded = _decode_base64url(value)
    if decoded is not None and len(decoded) in AES_KEY_LENGTHS:
        return len(decoded), True
    return len(value.encode("utf-8")), False


def is_valid(value: str) -> bool:
    return key_length(value)[0] in AES_KEY_LENGTHS


def invalid_reason(value: str) -> str:
    """Explain why ``value`` is rejected, without repeating any of it."""
    decoded = _decode_base64url(value)
    raw = len(value.encode("utf-8"))
    if decoded is None:
        as_base64 = "it is not unpadded base64url"
    else:
        as_base64 = f"as base64url it decodes to {len(decoded)} bytes"
    return f"{as_base64} and its raw length is {raw} bytes; oauth2-proxy needs a key of 16, 24 or 32 bytes"


def detect_encoding(value: str) -> str:
    """Name the encoding an existing value appears to use (for metadata only)."""
    if _HEX.match(value):
        return "hex"
    if key_length(value)[1]:
        return "base64url"
    return "raw"


def generate(size: int, encoding: str) -> str:
    """Make a new secret from the operating system's CSPRNG.

    ``base64url`` encodes ``size`` random bytes without padding, so the value
    decodes back to exactly ``size`` bytes. ``hex`` exists for secrets made
    like ``openssl rand -hex 16``: 32 hex characters, which oauth2-proxy reads
    as base64url and so uses as a 24-byte key. Hex of 24 or 32 bytes (48 or 64
    characters) is not a valid oauth2-proxy secret, so it is refused.
    """
    if size not in AES_KEY_LENGTHS:
        raise ValueError(f"size must be one of 16, 24 or 32, got {size!r}")
    if encoding == "base64url":
        return base64.urlsafe_b64encode(secrets.token_bytes(size)).decode("ascii").rstrip("=")
    if encoding == "hex":
        if size != 16:
            raise ValueError(
                f"encoding=hex is only valid with size=16: {size} random bytes are {2 * size} hex "
                "characters, which oauth2-proxy rejects (it needs 16, 24 or 32 bytes "
                "after base64url decoding, or a raw length of 16, 24 or 32)"
            )
        return secrets.token_hex(size)
    raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")


def fingerprint(value: str) -> str:
    """A short, non-reversible tag that shows in logs whether the secret changed."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
