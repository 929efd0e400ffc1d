from __future__ import annotations

import base64
import io
import secrets

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rules.errors import BadSignature, KeyRingError, RevokedKey, TicketTokenError, TokenMalformed, UnknownKey
from rules.tickets import (
    MAX_TOKEN_CHARS,
    KeyRing,
    SigningKey,
    TicketClaims,
    TicketKey,
    qr_png,
    qr_version,
    rotate,
    sign,
    verify,
)

NOW = 1_767_225_600
KEY = SigningKey.generate(NOW)
RING = KeyRing([KEY.public()])


def _token(key: SigningKey = KEY, place: int | str = 1234) -> str:
    # ids shaped like the service's own: holds/ids.py, holds/inventory.py
    return sign(
        key,
        event_id="ev" + secrets.token_urlsafe(9),
        ticket_id=f"t{secrets.token_hex(6)}-12",
        order_id="o" + secrets.token_urlsafe(12),
        place=place,
        issued_at=NOW,
    )


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ids = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:.é", min_size=1, max_size=64)


@settings(max_examples=100, deadline=None)
@given(ids, ids, ids, st.integers(0, 2**31) | ids, st.integers(0, 2**40))
def test_round_trip(event_id: str, ticket_id: str, order_id: str, place: int | str, issued_at: int) -> None:
    token = sign(
        KEY, event_id=event_id, ticket_id=ticket_id, order_id=order_id, place=place, issued_at=issued_at
    )
    assert len(token) <= MAX_TOKEN_CHARS
    assert verify(token, RING) == TicketClaims(KEY.key_id, event_id, ticket_id, order_id, place, issued_at)


def test_token_size_for_the_service_ids() -> None:
    seat, ga = _token(place=1234), _token(place="standing-floor")
    print(f"token chars: seat {len(seat)}, GA {len(ga)}; QR versions {qr_version(seat)}, {qr_version(ga)}")
    assert len(seat) <= 180
    assert len(ga) <= 200
    assert qr_version(seat) <= 9  # 53 x 53 modules


def test_tampering_with_any_byte_or_character_fails() -> None:
    token = _token()
    raw = _raw(token)
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            tampered = bytearray(raw)
            tampered[index] ^= bit
            with pytest.raises(TicketTokenError):
                verify(_encode(bytes(tampered)), RING)
    for index in range(len(token)):
        replacement = "A" if token[index] != "A" else "B"
        with pytest.raises(TicketTokenError):
            verify(token[:index] + replacement + token[index + 1 :], RING)
    with pytest.raises(BadSignature):  # a changed signature is exactly that
        verify(_encode(raw[:-1] + bytes([raw[-1] ^ 1])), RING)


@pytest.mark.parametrize(
    "token",
    ["", "!", "a", "AAAA", "AQ==", "A" * 100, "A" * (MAX_TOKEN_CHARS + 1), _encode(b"\x02" + bytes(80))],
)
def test_malformed(token: str) -> None:
    with pytest.raises(TokenMalformed):
        verify(token, RING)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=300))
def test_any_input_fails_only_with_a_token_error(garbage: bytes | str) -> None:
    raw = garbage if isinstance(garbage, bytes) else None
    candidates = [_encode(raw), _encode(b"\x01" + raw)] if raw is not None else [str(garbage)]
    for candidate in candidates:
        with pytest.raises(TicketTokenError):
            verify(candidate, RING)


def test_a_token_that_is_not_canonical_base64url_is_malformed() -> None:
    token = _token()
    assert len(_raw(token)) % 3 == 1  # 133 bytes: the last character carries 4 unused bits
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sloppy = token[:-1] + last[last.index(token[-1]) + 1]
    assert _raw(sloppy) == _raw(token)
    with pytest.raises(TokenMalformed):
        verify(sloppy, RING)


def test_wrong_key() -> None:
    other = SigningKey.generate(NOW)
    with pytest.raises(UnknownKey):
        verify(_token(), KeyRing([other.public()]))
    impostor = SigningKey.generate(NOW, key_id=KEY.key_id)  # same id, another key
    with pytest.raises(BadSignature):
        verify(_token(impostor), RING)


def test_rotation_retired_verifies_revoked_fails() -> None:
    ring, first = rotate(KeyRing(), NOW)
    old = _token(first)
    ring, second = rotate(ring, NOW + 86_400)
    assert ring.active is not None
    assert ring.active.key_id == second.key_id
    assert ring.get(first.key_id).state == "retired"
    new = _token(second)
    assert verify(new, ring).key_id == second.key_id  # new tickets use the new key
    assert verify(old, ring).key_id == first.key_id  # retired: still verifies
    revoked = ring.revoke(first.key_id)
    with pytest.raises(RevokedKey):
        verify(old, revoked)
    assert verify(new, revoked).key_id == second.key_id
    with pytest.raises(KeyRingError):
        revoked.retire(first.key_id)  # a revoked key stays revoked
    assert revoked.retire(second.key_id).active is None


def test_published_keys_round_trip_and_verify_offline() -> None:
    ring, key = rotate(KeyRing(), NOW)
    token = _token(key)
    published = ring.encode()
    scanner = KeyRing.decode(published)
    assert verify(token, scanner).key_id == key.key_id
    jwk = next(iter(scanner)).to_jwk()
    assert (jwk["kty"], jwk["crv"], jwk["kid"], len(base64.urlsafe_b64decode(jwk["x"] + "="))) == (
        "OKP",
        "Ed25519",
        key.key_id,
        32,
    )


def test_seed_round_trip() -> None:
    restored = SigningKey.from_seed(KEY.key_id, KEY.seed(), KEY.created_at)
    assert restored.public() == KEY.public()
    assert "seed" not in repr(restored)
    claims = {"event_id": "e", "ticket_id": "t", "order_id": "o", "place": 1, "issued_at": NOW}
    assert sign(restored, **claims) == sign(KEY, **claims)  # type: ignore[arg-type]  # Ed25519 is deterministic


def test_key_ring_rules() -> None:
    a, b = SigningKey.generate(NOW), SigningKey.generate(NOW)
    with pytest.raises(KeyRingError):
        KeyRing([a.public(), b.public()])  # two active keys
    with pytest.raises(KeyRingError):
        KeyRing([a.public(), a.public("retired")])
    with pytest.raises(KeyRingError):
        KeyRing([TicketKey("k1", "AAAA", "active", NOW)])
    with pytest.raises(KeyRingError):
        KeyRing.decode(b"[{}]")
    with pytest.raises(KeyRingError):
        KeyRing().rotate(a.public()).rotate(a.public())


def test_qr_png_decodes_to_the_token() -> None:
    token = _token()
    png = qr_png(token)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size[0] == image.size[1] == 8 * (17 + 4 * qr_version(token) + 2 * 4)
    results = zxingcpp.read_barcodes(image)
    assert [(r.format, r.text) for r in results] == [(zxingcpp.BarcodeFormat.QRCode, token)]
    assert verify(results[0].text, RING).key_id == KEY.key_id
