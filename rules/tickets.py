"""Ticket tokens: a compact payload signed with the organizer's Ed25519 key.

A token is ``base64url(version || payload || signature)`` without padding
(``docs/ticket-tokens.md`` has the sizes and the reasons):

- ``version``: one byte, :data:`TOKEN_VERSION`; an unknown version is malformed.
- ``payload``: :class:`TicketClaims` as a msgpack array (key id, event, ticket,
  order, seat ordinal or GA area, issued-at in Unix seconds).
- ``signature``: 64 bytes of Ed25519 over ``DOMAIN || version || payload``; the
  domain prefix keeps an organizer's ticket key from signing anything else.

Verification needs only the organizer's public keys (:class:`KeyRing`), so a
scanner verifies offline. Keys rotate: new tickets are signed with the ring's
active key, tokens of a *retired* key still verify, tokens of a *revoked* key
do not. :func:`verify` raises exactly one of the :class:`TicketTokenError`
kinds: malformed, unknown key, revoked key, bad signature. Encoding is
canonical: a token that decodes but does not re-encode to itself is malformed,
so changing any character fails.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Annotated, Final, Literal

import msgspec
import segno
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from rules.errors import BadSignature, KeyRingError, RevokedKey, TokenMalformed, UnknownKey

TOKEN_VERSION: Final = 1
DOMAIN: Final = b"seatwise/ticket\x00"
SIGNATURE_SIZE: Final = 64
MAX_TOKEN_CHARS: Final = 600  # longer input is refused before any decoding (ids are at most 64 chars)

KeyState = Literal["active", "retired", "revoked"]
TokenId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
KeyId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,16}$")]

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class TicketClaims(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """What a verified token says. ``place`` is the seat's ordinal in the event's
    seat map when the token was issued (a ticket keeps its former ordinals when the
    event moves to another seat-map version: holds/lua/remap.lua) or the GA area id."""

    key_id: KeyId
    event_id: TokenId
    ticket_id: TokenId
    order_id: TokenId
    place: int | TokenId
    issued_at: int  # Unix seconds


_claims_encoder = msgspec.msgpack.Encoder()
_claims_decoder = msgspec.msgpack.Decoder(TicketClaims)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64url without padding; a non-canonical spelling is refused."""
    if not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise TokenMalformed("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenMalformed("not base64url") from exc
    if _b64encode(data) != text:
        raise TokenMalformed("not canonical base64url")
    return data


# ---- keys ----------------------------------------------------------------------------------------


class TicketKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A public key as published to scanners (``GetTicketKeys``)."""

    key_id: KeyId
    public_key: str  # the raw 32-byte Ed25519 public key, base64url without padding
    state: KeyState
    created_at: int  # Unix seconds

    def to_jwk(self) -> dict[str, str]:
        """The key as a JSON Web Key (RFC 8037), for scanners that speak JOSE."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.public_key,
            "kid": self.key_id,
            "use": "sig",
            "alg": "EdDSA",
        }


class SigningKey:
    """An organizer's private ticket key. ``seed()`` is the secret to store (encrypted)."""

    __slots__ = ("_private", "created_at", "key_id")

    def __init__(self, key_id: str, private: Ed25519PrivateKey, created_at: int) -> None:
        if not re.match(r"^[A-Za-z0-9_-]{1,16}$", key_id):
            raise KeyRingError(f"invalid key id {key_id!r}")
        self.key_id = key_id
        self.created_at = created_at
        self._private = private

    @classmethod
    def generate(cls, created_at: int, key_id: str | None = None) -> SigningKey:
        """A new random key; its id is 8 random base64url characters unless given."""
        return cls(key_id or secrets.token_urlsafe(6), Ed25519PrivateKey.generate(), created_at)

    @classmethod
    def from_seed(cls, key_id: str, seed: bytes, created_at: int) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.from_private_bytes(seed), created_at)

    def seed(self) -> bytes:
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public(self, state: KeyState = "active") -> TicketKey:
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return TicketKey(self.key_id, _b64encode(raw), state, self.created_at)

    def sign_message(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:  # never the secret
        return f"SigningKey({self.key_id!r})"


class KeyRing:
    """An organizer's (or a scanner's) public ticket keys with their states.

    Immutable: :meth:`rotate`, :meth:`retire` and :meth:`revoke` return a new
    ring. At most one key is active (the one new tickets are signed with); key
    ids are unique. Public keys are parsed once, when the ring is built.
    """

    __slots__ = ("_keys", "_public")

    def __init__(self, keys: Iterable[TicketKey] = ()) -> None:
        self._keys: dict[str, TicketKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise KeyRingError(f"duplicate key id {key.key_id!r}")
            try:
                raw = _b64decode(key.public_key)
                self._public[key.key_id] = Ed25519PublicKey.from_public_bytes(raw)
            except (TokenMalformed, ValueError) as exc:
                raise KeyRingError(f"key {key.key_id!r} is not a raw Ed25519 public key") from exc
            self._keys[key.key_id] = key
        if sum(key.state == "active" for key in self._keys.values()) > 1:
            raise KeyRingError("more than one active key")

    def __iter__(self) -> Iterator[TicketKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def active(self) -> TicketKey | None:
        return next((key for key in self._keys.values() if key.state == "active"), None)

    def get(self, key_id: str) -> TicketKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKey(key_id) from None

    def _with_state(self, key_id: str, state: KeyState) -> KeyRing:
        key = self.get(key_id)
        if key.state == "revoked" and state != "revoked":
            raise KeyRingError(f"key {key_id!r} is revoked for good")
        return KeyRing(msgspec.structs.replace(k, state=state) if k.key_id == key_id else k for k in self)

    def rotate(self, new: TicketKey) -> KeyRing:
        """``new`` becomes the active key; the previously active one is retired (still verifies)."""
        if new.key_id in self._keys:
            raise KeyRingError(f"duplicate key id {new.key_id!r}")
        kept = [msgspec.structs.replace(k, state="retired") if k.state == "active" else k for k in self]
        return KeyRing([*kept, msgspec.structs.replace(new, state="active")])

    def retire(self, key_id: str) -> KeyRing:
        """Sign nothing new with ``key_id``; its tickets still verify."""
        return self._with_state(key_id, "retired")

    def revoke(self, key_id: str) -> KeyRing:
        """Tickets signed with ``key_id`` no longer verify (a leaked key)."""
        return self._with_state(key_id, "revoked")

    def encode(self) -> bytes:
        """The published form: a JSON array of :class:`TicketKey`, oldest first."""
        return _keys_encoder.encode(sorted(self, key=lambda k: (k.created_at, k.key_id)))

    @classmethod
    def decode(cls, data: bytes) -> KeyRing:
        try:
            return cls(_keys_decoder.decode(data))
        except msgspec.DecodeError as exc:
            raise KeyRingError(f"not a key list: {exc}") from exc

    def check_signature(self, key_id: str, message: bytes, signature: bytes) -> None:
        """:class:`UnknownKey`, :class:`RevokedKey` or :class:`BadSignature` unless ``key_id`` signed it."""
        key = self.get(key_id)
        if key.state == "revoked":
            raise RevokedKey(key.key_id)
        try:
            self._public[key.key_id].verify(signature, message)
        except InvalidSignature:
            raise BadSignature("signature does not match") from None


_keys_encoder = msgspec.json.Encoder()
_keys_decoder = msgspec.json.Decoder(list[TicketKey])


def rotate(ring: KeyRing, created_at: int) -> tuple[KeyRing, SigningKey]:
    """A new signing key and the ring where it is active and the former active key retired."""
    key = SigningKey.generate(created_at)
    while key.key_id in {k.key_id for k in ring}:  # 48 random bits: practically never
        key = SigningKey.generate(created_at)
    return ring.rotate(key.public()), key


# ---- tokens --------------------------------------------------------------------------------------


def sign(
    key: SigningKey, *, event_id: str, ticket_id: str, order_id: str, place: int | str, issued_at: int
) -> str:
    """The token of one ticket, signed with ``key`` (the organizer's active key)."""
    claims = TicketClaims(key.key_id, event_id, ticket_id, order_id, place, issued_at)
    body = bytes([TOKEN_VERSION]) + _claims_encoder.encode(claims)
    return _b64encode(body + key.sign_message(DOMAIN + body))


def verify(token: str, keyring: KeyRing) -> TicketClaims:
    """The claims of ``token`` if one of ``keyring``'s keys signed it and is not revoked.

    Raises :class:`~rules.errors.TokenMalformed`, :class:`~rules.errors.UnknownKey`,
    :class:`~rules.errors.RevokedKey` or :class:`~rules.errors.BadSignature`.
    Whether the ticket is for this event, still valid or already checked in is
    the caller's business: this says only who issued it and what it says.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenMalformed("not a ticket token")
    raw = _b64decode(token)
    if len(raw) <= 1 + SIGNATURE_SIZE:
        raise TokenMalformed("too short")
    if raw[0] != TOKEN_VERSION:
        raise TokenMalformed(f"unsupported token version {raw[0]}")
    body, signature = raw[:-SIGNATURE_SIZE], raw[-SIGNATURE_SIZE:]
    try:
        claims = _claims_decoder.decode(body[1:])
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets invalid UTF-8 through as is
        raise TokenMalformed(f"bad payload: {exc}") from exc
    keyring.check_signature(claims.key_id, DOMAIN + body, signature)
    return claims


# ---- QR ------------------------------------------------------------------------------------------


def _qr(token: str) -> segno.QRCode:
    # Byte mode, error correction M at least (segno raises it when that costs no size).
    return segno.make_qr(token, error="m", mode="byte")


def qr_payload(token: str) -> str:
    """What the QR code holds: the token itself, so a scanner passes it to :func:`verify` as read."""
    return token


def qr_png(token: str, *, scale: int = 8, border: int = 4) -> bytes:
    """A PNG of the token's QR code: ``scale`` pixels per module, a quiet zone of ``border`` modules."""
    out = io.BytesIO()
    _qr(qr_payload(token)).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_version(token: str) -> int:
    """The QR version (size class, 1-40) the token needs: ``17 + 4 * version`` modules a side."""
    version = _qr(qr_payload(token)).version
    return int(version)
