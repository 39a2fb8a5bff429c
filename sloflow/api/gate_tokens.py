"""Access tokens a solved gate earns: signed, short-lived, bound to one key and one route group.

`base64url(claims) "." base64url(HMAC-SHA256(secret, claims))`, claims being compact JSON with the
key id, the scope, the expiry, how many requests it admits and a token id. Stateless to verify;
the uses spent are counted by the gatekeeper, in memory, until the token expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

HEADER = "X-Sloflow-Gate-Token"


@dataclass(frozen=True)
class TokenClaims:
    """What a token says: whose it is, for which route group, until when, for how many requests."""

    key_id: str
    scope: str
    expires_at: float
    uses: int
    token_id: str


class BadToken(Exception):
    """A token that is malformed, forged, expired, or not this key's or this scope's; the message says which."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies access tokens with a key derived from the server secret."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"gate access tokens", hashlib.sha256).digest()

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def issue(self, key_id: str, scope: str, expires_at: float, uses: int) -> tuple[str, TokenClaims]:
        """A new token and its claims."""
        claims = TokenClaims(key_id, scope, expires_at, uses, secrets.token_hex(8))
        body = json.dumps({"k": key_id, "s": scope, "e": round(expires_at, 3), "u": uses, "j": claims.token_id}, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}", claims

    def verify(self, token: str, key_id: str, scope: str, now: float) -> TokenClaims:
        """The claims of a genuine, unexpired token of `key_id` for `scope`; `BadToken` otherwise."""
        body_text, _, sig_text = token.partition(".")
        try:
            body, sig = _unb64(body_text), _unb64(sig_text)
        except (binascii.Error, ValueError):
            raise BadToken("the gate token is not two base64url parts joined by '.'") from None
        if not sig_text or not hmac.compare_digest(sig, self._sign(body)):
            raise BadToken("the gate token's signature is wrong (it was altered, or not issued by this server)")
        raw = json.loads(body)
        claims = TokenClaims(raw["k"], raw["s"], raw["e"], raw["u"], raw["j"])
        if claims.key_id != key_id:
            raise BadToken("the gate token was issued to another API key; solve a gate with this key")
        if claims.scope != scope:
            raise BadToken(f"the gate token is for /v1/{claims.scope}, not /v1/{scope}; solve this route's gate")
        if claims.expires_at <= now:
            raise BadToken(f"the gate token expired {now - claims.expires_at:.0f} s ago; solve a new gate")
        return claims
