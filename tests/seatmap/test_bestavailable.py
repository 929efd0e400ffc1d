from __future__ import annotations

import random
from collections import Counter

import msgspec
import numpy as np
import pytest

from seatmap.bestavailable import (
    MAX_QUANTITY,
    SPREAD,
    BestAvailableRequest,
    Candidate,
    InvalidRequest,
    best_available,
    choose,
)
from seatmap.index import BoolArray, SeatIndex, UnknownCategory, UnknownSection
from seatmap.model import Point
from tests.seatmap.maps import grid_map, table_map


def free(index: SeatIndex, sold: list[int] | None = None) -> BoolArray:
    mask = np.ones(len(index), dtype=np.bool_)
    mask[sold or []] = False
    return mask


def request(quantity: int, **kwargs: object) -> BestAvailableRequest:
    return BestAvailableRequest(quantity=quantity, **kwargs)  # type: ignore[arg-type]


def row_of(index: SeatIndex, ordinals: tuple[int, ...]) -> set[int]:
    return {int(index.group_of[o]) for o in ordinals}


@pytest.fixture(scope="module")
def grid() -> SeatIndex:
    return SeatIndex(grid_map(rows=4, seats_per_row=10))  # focal point centred in front of row 0


def brute_orphans(index: SeatIndex, available: BoolArray, seats: tuple[int, ...]) -> int:
    after = available.copy()
    after[list(seats)] = False
    near = {n for o in seats for n in index.row_neighbours(o) if n >= 0 and after[n]}
    return sum(1 for n in near if not any(m >= 0 and after[m] for m in index.row_neighbours(n)))


def test_best_block_is_contiguous_centred_in_the_front_row(grid: SeatIndex) -> None:
    found = best_available(grid, free(grid), request(3))
    best = found[0]
    assert best.tier == "row"
    assert best.ordinals == (3, 4, 5)  # centred (4, 5, 6 ties on distance; lower ordinal wins)
    assert best.orphans == 0
    assert best.mean_distance == pytest.approx(grid.focal_distance[[3, 4, 5]].mean())


def test_candidates_are_disjoint_contiguous_and_ranked(grid: SeatIndex) -> None:
    found = best_available(grid, free(grid), request(2), limit=12)
    assert len(found) == 12
    seen: set[int] = set()
    for c in found:
        assert len(row_of(grid, c.ordinals)) == 1
        assert list(c.ordinals) == list(range(c.ordinals[0], c.ordinals[0] + 2))
        assert seen.isdisjoint(c.ordinals)
        seen.update(c.ordinals)
    keys = [(c.penalty, round(c.mean_distance, 4)) for c in found]
    assert keys == sorted(keys)


def test_block_that_strands_a_seat_is_ranked_below() -> None:
    # Four seats, stage between seats 1 and 2: (1, 2) is the closest pair but would
    # leave seats 0 and 3 alone.
    index = SeatIndex(grid_map(rows=1, seats_per_row=4, focal=Point(100, 0)))
    found = best_available(index, free(index), request(2))
    assert [c.ordinals for c in found] == [(0, 1), (2, 3)]
    assert all(c.orphans == 0 for c in found)
    # With seat 0 sold, (1, 2) strands seat 3 and (2, 3) strands seat 1: both have one orphan.
    found = best_available(index, free(index, [0]), request(2), limit=1)
    assert found[0].orphans == 1
    assert found[0].ordinals == (1, 2)


def test_orphans_are_counted_exactly() -> None:
    index = SeatIndex(grid_map(rows=3, seats_per_row=9))
    rng = np.random.default_rng(5)
    for _ in range(40):
        available = rng.random(len(index)) < 0.6
        for quantity in (1, 2, 3):
            for c in best_available(index, available, request(quantity), limit=16):
                assert c.orphans == brute_orphans(index, available, c.ordinals)


def test_first_candidate_is_the_optimum_of_all_blocks() -> None:
    index = SeatIndex(grid_map(rows=5, seats_per_row=12))
    rng = np.random.default_rng(11)
    for _ in range(30):
        available = rng.random(len(index)) < 0.5
        quantity = int(rng.integers(1, 4))
        found = best_available(index, available, request(quantity))
        blocks = []
        for row in range(5):
            for start in range(12 - quantity + 1):
                seats = tuple(range(row * 12 + start, row * 12 + start + quantity))
                if available[list(seats)].all():
                    orphans = brute_orphans(index, available, seats)
                    blocks.append((orphans, round(float(index.focal_distance[list(seats)].mean()), 4), seats))
        if not blocks:
            assert found == []
            continue
        orphans, dist, seats = min(blocks)
        assert (found[0].orphans, round(found[0].mean_distance, 4), found[0].ordinals) == (
            orphans,
            dist,
            seats,
        )


def test_the_row_search_is_exhaustive_whatever_the_filter_leaves_and_the_quantity() -> None:
    """The best candidate is the optimum of a brute-force scan of every row block of the
    filtered seats, whether the filter leaves the start, the middle or the end of the map,
    for quantities on both sides of the window test's switch (ANDs up to 12, counts above)."""
    sections, rows, per_row = 3, 2, 16
    index = SeatIndex(
        grid_map(
            rows=rows, seats_per_row=per_row, sections=sections, categories_by_section=["std", "vip", "std"]
        )
    )
    rng = np.random.default_rng(23)
    for _ in range(80):
        available = rng.random(len(index)) < rng.choice([0.5, 0.9, 1.0])
        quantity = int(rng.integers(1, per_row + 1))
        chosen = frozenset(
            rng.choice(["s0", "s1", "s2"], size=int(rng.integers(1, 3)), replace=False).tolist()
        )
        by_category = rng.random() < 0.3
        wanted = (
            request(quantity, categories=frozenset({"vip"}))
            if by_category
            else request(quantity, sections=chosen)
        )
        kept = {"s1"} if by_category else chosen
        blocks = []
        for k in range(sections):
            if f"s{k}" not in kept:
                continue
            for row in range(rows):
                ordinals = [index.ordinal_of[f"s{k}-{row}-{i}"] for i in range(per_row)]
                for start in range(per_row - quantity + 1):
                    seats = tuple(ordinals[start : start + quantity])
                    if available[list(seats)].all():
                        orphans = brute_orphans(index, available, seats)
                        distance = round(float(index.focal_distance[list(seats)].mean()), 4)
                        blocks.append((orphans, distance, seats))
        found = best_available(index, available, wanted)
        if not blocks:
            assert found == []
            continue
        best = min(blocks)
        assert (found[0].orphans, round(found[0].mean_distance, 4), found[0].ordinals) == best
        for c in found:
            assert c.orphans == brute_orphans(index, available, c.ordinals)


def test_closer_to_the_focal_point_first() -> None:
    index = SeatIndex(grid_map(rows=3, seats_per_row=4, focal=Point(100, 1000)))  # stage behind row 2
    found = best_available(index, free(index), request(4))
    assert [c.ordinals[0] for c in found] == [8, 4, 0]


def test_filters() -> None:
    index = SeatIndex(
        grid_map(rows=2, seats_per_row=6, sections=3, categories_by_section=["std", "vip", "std"])
    )
    vip = best_available(index, free(index), request(2, categories=frozenset({"vip"})))
    assert vip
    assert all(index.section_code[o] == 1 for c in vip for o in c.ordinals)
    s2 = best_available(index, free(index), request(2, sections=frozenset({"s2"})))
    assert s2
    assert all(index.section_code[o] == 2 for c in s2 for o in c.ordinals)
    none = best_available(
        index, free(index), request(2, categories=frozenset({"vip"}), sections=frozenset({"s0"}))
    )
    assert none == []
    with pytest.raises(UnknownCategory):
        best_available(index, free(index), request(2, categories=frozenset({"gold"})))
    with pytest.raises(UnknownSection):
        best_available(index, free(index), request(2, sections=frozenset({"s9"})))


@pytest.fixture(scope="module")
def accessible() -> SeatIndex:
    flags = {
        (3, 0): {"wheelchair": True},
        (3, 1): {"companion": True},
        (3, 8): {"companion": True},
        (3, 9): {"wheelchair": True},
    }
    return SeatIndex(grid_map(rows=4, seats_per_row=10, flags=flags))


def test_wheelchair_spaces_with_their_companions(accessible: SeatIndex) -> None:
    found = best_available(accessible, free(accessible), request(2, accessible=1))
    assert [c.ordinals for c in found] == [(30, 31), (38, 39)]
    assert all(c.penalty == 0 for c in found)
    # With companion seat 38 sold, space 39 has no free neighbour left: one block remains.
    found = best_available(accessible, free(accessible, [38]), request(2, accessible=1))
    assert [c.ordinals for c in found] == [(30, 31)]
    both = best_available(accessible, free(accessible), request(2, accessible=2, adjacency="preferred"))
    assert both[0].tier == "section"
    assert sorted(both[0].ordinals) == [30, 39]


def test_companions_beat_a_closer_plain_neighbour() -> None:
    flags = {(0, 4): {"wheelchair": True}, (0, 5): {"companion": True}}
    index = SeatIndex(grid_map(rows=1, seats_per_row=10, flags=flags, focal=Point(150, 0)))
    found = best_available(index, free(index), request(2, accessible=1))
    assert [(c.ordinals, c.penalty) for c in found] == [((4, 5), 0)]  # disjoint: (3, 4) overlaps
    found = best_available(index, free(index, [5]), request(2, accessible=1))
    assert [(c.ordinals, c.penalty) for c in found] == [((3, 4), 1)]


def test_wheelchair_spaces_are_not_offered_to_other_buyers(accessible: SeatIndex) -> None:
    found = best_available(accessible, free(accessible), request(10), limit=16)
    assert [c.ordinals[0] for c in found] == [0, 10, 20]  # row 3 holds wheelchair spaces
    sold = [*range(30), 33, 34, 35, 36]  # left: spaces 30, 39 and seats 31, 32, 37, 38
    scattered = best_available(accessible, free(accessible, sold), request(3, adjacency="preferred"))
    assert scattered[0].tier == "section"
    assert set(scattered[0].ordinals) < {31, 32, 37, 38}


def test_companion_seats_are_kept_for_last() -> None:
    index = SeatIndex(
        grid_map(rows=1, seats_per_row=4, flags={(0, 1): {"companion": True}}, focal=Point(75, 0))
    )
    found = best_available(index, free(index), request(2))
    assert found[0].ordinals == (2, 3)  # (0, 1) is as close but uses a companion seat
    assert found[1].penalty == 1


def test_quantity_larger_than_any_row() -> None:
    index = SeatIndex(grid_map(rows=3, seats_per_row=6))
    assert best_available(index, free(index), request(8)) == []
    split = best_available(index, free(index), request(8, adjacency="preferred"))
    assert split[0].tier == "two_rows"
    front, back = split[0].ordinals[:4], split[0].ordinals[4:]
    assert front == (0, 1, 2, 3)
    assert back == (6, 7, 8, 9)
    odd = best_available(index, free(index), request(7, adjacency="preferred"))
    assert odd[0].tier == "two_rows"
    assert sorted(len(row_of(index, (o,))) for o in odd[0].ordinals) == [1] * 7
    rows = Counter(int(index.group_of[o]) for o in odd[0].ordinals)
    assert sorted(rows.values()) == [3, 4]
    assert sorted(rows) in ([0, 1], [1, 2])
    whole = best_available(index, free(index), request(14, adjacency="preferred"))
    assert whole[0].tier == "section"
    assert len(set(whole[0].ordinals)) == 14


def test_relaxations_in_order() -> None:
    index = SeatIndex(grid_map(rows=3, seats_per_row=6, sections=2))
    # Section s0: only seats 0, 2 (row 0) and 7 (row 1) free; s1: 18, 20, 22 (row 0).
    available = np.zeros(len(index), dtype=np.bool_)
    available[[0, 2, 7, 18, 20, 22]] = True
    assert best_available(index, available, request(2)) == []
    pair = best_available(index, available, request(2, adjacency="preferred"))
    assert pair[0].tier == "two_rows"
    assert sorted(pair[0].ordinals) in ([0, 7], [2, 7])
    three = best_available(index, available, request(3, adjacency="preferred"))
    assert {c.tier for c in three} == {"section"}
    assert {c.ordinals for c in three} == {(0, 2, 7), (18, 20, 22)}
    four = best_available(index, available, request(4, adjacency="preferred"))
    assert [c.tier for c in four] == ["anywhere"]
    assert len(four[0].ordinals) == 4
    assert set(four[0].ordinals) <= {0, 2, 7, 18, 20, 22}
    assert best_available(index, available, request(7, adjacency="preferred")) == []


def test_nothing_available(grid: SeatIndex) -> None:
    none = np.zeros(len(grid), dtype=np.bool_)
    assert best_available(grid, none, request(1, adjacency="preferred")) == []
    assert choose([], random.Random(1)) is None


def test_tables_wrap_around_and_whole_tables_sell_whole() -> None:
    index = SeatIndex(table_map(book_whole=True, count=6))
    t1, t2 = index.seats_by_table("hall", "T1"), index.seats_by_table("hall", "T2")
    available = free(index, [0, 1, 2, 3, t1[2], t1[3]])  # the row is sold; T1 has 4, 5, 0, 1 free
    found = best_available(index, available, request(4))
    assert found[0].ordinals == (t1[4], t1[5], t1[0], t1[1])  # around the table
    six = best_available(index, free(index, [0, 1, 2, 3]), request(6))
    assert [c.ordinals for c in six] == [tuple(t1), tuple(t2)]
    three = best_available(index, free(index), request(3), limit=64)
    assert not {o for c in three for o in c.ordinals} & set(t2)
    scattered = best_available(index, free(index, [0, 1, 2, 3, *t1]), request(2, adjacency="preferred"))
    assert scattered == []  # whole tables are never broken up


def test_request_validation() -> None:
    for field, bad in (
        ("quantity", {"quantity": 0}),
        ("quantity", {"quantity": MAX_QUANTITY + 1}),
        ("accessible", {"quantity": 2, "accessible": 3}),
        ("accessible", {"quantity": 2, "accessible": -1}),
        ("adjacency", {"quantity": 2, "adjacency": "maybe"}),
        ("categories", {"quantity": 2, "categories": frozenset()}),
        ("sections", {"quantity": 2, "sections": frozenset()}),
    ):
        with pytest.raises(InvalidRequest) as err:
            BestAvailableRequest(**bad)
        assert err.value.field == field
    decoded = msgspec.json.decode(
        b'{"quantity": 4, "categories": ["vip"], "adjacency": "preferred"}', type=BestAvailableRequest
    )
    assert decoded == request(4, categories=frozenset({"vip"}), adjacency="preferred")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"quantity": 0}', type=BestAvailableRequest)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"quantity": 1, "colour": "red"}', type=BestAvailableRequest)


def test_mask_and_limit_validation(grid: SeatIndex) -> None:
    with pytest.raises(InvalidRequest):
        best_available(grid, np.ones(len(grid) - 1, dtype=np.bool_), request(1))
    with pytest.raises(InvalidRequest):
        best_available(grid, np.ones(len(grid), dtype=np.int8), request(1))
    with pytest.raises(InvalidRequest) as err:
        best_available(grid, free(grid), request(1), limit=0)
    assert err.value.field == "limit"


def test_deterministic(grid: SeatIndex) -> None:
    available = np.random.default_rng(2).random(len(grid)) < 0.7
    first = best_available(grid, available, request(2))
    assert best_available(grid, available.copy(), request(2)) == first
    picks = [choose(first, random.Random(seed)) for seed in range(20)]
    assert picks == [choose(first, random.Random(seed)) for seed in range(20)]


def test_choose_spreads_buyers_over_the_best_candidates() -> None:
    index = SeatIndex(grid_map(rows=6, seats_per_row=30, focal=Point(750, -400)))  # stage 10 rows ahead
    found = best_available(index, free(index), request(2))
    counts = Counter(choose(found, random.Random(seed)) for seed in range(600))
    assert len(counts) >= 4  # many buyers, several distinct blocks
    assert set(counts) <= set(found[:SPREAD])
    assert counts.most_common(1)[0][0] == found[0]  # the best stays the most likely


def test_choose_never_trades_down() -> None:
    good = Candidate((0, 1), "row", 0, 0, 10.0)
    far = Candidate((2, 3), "row", 0, 0, 100.0)
    orphaning = Candidate((4, 5), "row", 4, 1, 10.0)
    split = Candidate((6, 7), "two_rows", 0, 0, 10.0)
    picks = {choose([good, orphaning, split, far], random.Random(seed)) for seed in range(100)}
    assert picks == {good}
    assert choose([good, far], random.Random(0), tolerance=10.0) in (good, far)
    assert {choose([good, far], random.Random(s), tolerance=10.0) for s in range(50)} == {good, far}
    assert {choose([good, far], random.Random(s), spread=1, tolerance=10.0) for s in range(50)} == {good}


def test_stadium_scale_is_fast() -> None:
    import time

    index = SeatIndex(grid_map(rows=50, seats_per_row=60, sections=10))  # 30k seats
    available = np.random.default_rng(0).random(len(index)) >= 0.9
    best_available(index, available, request(4))
    t0 = time.perf_counter()
    for _ in range(20):
        best_available(index, available, request(4))
    assert (time.perf_counter() - t0) / 20 < 0.02  # generous: CI machines are slow


@pytest.mark.parametrize("venue", ["theatre", "arena"])
def test_generated_venues_give_valid_candidates(venue: str) -> None:
    generate = pytest.importorskip("seatmap.generate")
    index = SeatIndex(getattr(generate, venue)())
    rng = np.random.default_rng(1)
    for sold in (0.0, 0.6, 0.97):
        available = rng.random(len(index)) >= sold
        for quantity, accessible in ((1, 0), (2, 0), (4, 0), (6, 0), (2, 1)):
            req = request(quantity, accessible=accessible, adjacency="preferred")
            found = best_available(index, available, req)
            used: set[int] = set()
            for c in found:
                assert len(c.ordinals) == quantity
                assert available[list(c.ordinals)].all()
                assert int(index.wheelchair[list(c.ordinals)].sum()) == accessible
                assert used.isdisjoint(c.ordinals)
                used.update(c.ordinals)
                if c.tier == "row":
                    assert len(row_of(index, c.ordinals)) == 1
                    assert all(
                        index.row_neighbours(a)[1] == b
                        for a, b in zip(c.ordinals[:-1], c.ordinals[1:], strict=True)
                    )
