"""Branding rules (rules/branding.py) and the plan-limit thresholds (rules/fees.py), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.branding import FIELDS, check_branding
from rules.errors import InvalidBranding
from rules.fees import threshold_crossed

label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
tld = st.from_regex(r"[a-z]{2,10}", fullmatch=True)
domains = st.builds(lambda parts, top: ".".join([*parts, top]), st.lists(label, min_size=1, max_size=4), tld)


@given(domains)
def test_host_names_are_accepted_and_lowered(domain: str) -> None:
    assert check_branding({"custom_domain": domain.upper()}) == {"custom_domain": domain}
    assert (
        check_branding({"logo_url": f"https://{domain}/logo.png"})["logo_url"] == f"https://{domain}/logo.png"
    )
    assert check_branding({"support_email": f"help@{domain.upper()}"}) == {"support_email": f"help@{domain}"}


@given(st.text(max_size=80))
def test_any_input_is_accepted_normalised_or_refused_naming_its_field(value: str) -> None:
    for field in FIELDS:
        out, refused = _check(field, value)
        if refused is not None:
            assert refused == field
        else:
            assert set(out) == {field}
            assert check_branding(out) == out  # normalising is idempotent


def _check(field: str, value: str) -> tuple[dict[str, str], str | None]:
    try:
        return check_branding({field: value}), None
    except InvalidBranding as exc:
        return {}, exc.field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("custom_domain", "localhost"),
        ("custom_domain", "a_b.example"),
        ("custom_domain", "x" * 64 + ".example"),
        ("custom_domain", "tickets.example."),
        ("logo_url", 'https://tickets.example/"onload=x'),
        ("logo_url", "https://user@tickets.example/"),
        ("logo_url", "https://tickets.example:99999/"),
        ("logo_url", "https://" + "a" * 2050 + ".example/"),
        ("primary_color", "#GGGGGG"),
        ("accent_color", "#ffffff00"),
        ("support_email", "a..b@tickets.example"),
        ("sender_email", "@tickets.example"),
        ("header_text", "line\u2028break"),
        ("display_name", ""),  # empty clears: accepted (below)
    ],
)
def test_bad_values_name_their_field(field: str, value: str) -> None:
    if value == "":
        assert check_branding({field: value}) == {field: ""}
        return
    with pytest.raises(InvalidBranding) as err:
        check_branding({field: value})
    assert err.value.field == field


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidBranding) as err:
        check_branding({"colour": "#000000"})
    assert err.value.field == "colour"


@pytest.mark.parametrize(
    ("before", "after", "limit", "crossed"),
    [
        (3, 4, 5, (80,)),  # exactly 80 %
        (4, 5, 5, (100,)),  # exactly 100 %
        (0, 5, 5, (80, 100)),
        (1, 2, 2, (80, 100)),
        (0, 3, 5, ()),  # 60 %
        (4, 4, 5, ()),
        (7, 8, 10, (80,)),
        (8, 9, 10, ()),
        (0, 100, 0, ()),  # no limit
    ],
)
def test_thresholds_at_exactly_80_and_100_percent(
    before: int, after: int, limit: int, crossed: tuple[int, ...]
) -> None:
    assert threshold_crossed(before, after, limit) == crossed


@given(st.lists(st.integers(1, 7), max_size=30), st.integers(1, 60))
def test_each_threshold_is_crossed_at_most_once_by_growing_usage(steps: list[int], limit: int) -> None:
    seen: list[int] = []
    usage = 0
    for step in steps:
        seen += threshold_crossed(usage, usage + step, limit)
        usage += step
    assert seen == sorted(set(seen))
    assert (80 in seen) == (usage * 100 >= 80 * limit)
    assert (100 in seen) == (usage >= limit)
