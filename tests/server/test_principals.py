"""KnownPrincipals: resolved callers kept while what they came from is fresh."""

from __future__ import annotations

from server import principals
from server.auth import Principal
from server.principals import KnownPrincipals

ORGANIZER = Principal("k1", "organizer", "acme")


class World:
    def __init__(self) -> None:
        self.now = 1000.0
        self.generation = 0

    def clock(self) -> float:
        return self.now

    def current_generation(self) -> int:
        return self.generation


def _known(world: World) -> KnownPrincipals:
    return KnownPrincipals(world.current_generation, world.clock)


def test_a_principal_is_kept_until_its_records_stop_being_fresh() -> None:
    world = World()
    known = _known(world)
    digest = known.digest("Bearer sw_k1_secret", "")
    known.put(digest, ORGANIZER, fresh_until=1003.0, generation=known.generation())
    world.now = 1002.9
    assert known.get(digest) == ORGANIZER
    world.now = 1003.0
    assert known.get(digest) is None


def test_a_change_made_by_this_process_drops_every_kept_principal() -> None:
    world = World()
    known = _known(world)
    digest = known.digest("Bearer sw_k1_secret", "")
    known.put(digest, ORGANIZER, fresh_until=2000.0, generation=known.generation())
    world.generation += 1  # e.g. a key revoked here
    assert known.get(digest) is None


def test_a_resolution_overtaken_by_a_change_is_stale_at_once() -> None:
    world = World()
    known = _known(world)
    digest = known.digest("Bearer sw_k1_secret", "")
    started = known.generation()  # read before resolving
    world.generation += 1  # a revocation lands while the caller is being resolved
    known.put(digest, ORGANIZER, fresh_until=2000.0, generation=started)
    assert known.get(digest) is None


def test_the_digest_tells_keys_and_named_organizers_apart_and_hides_the_secret() -> None:
    digests = {
        KnownPrincipals.digest("Bearer sw_a_secret", ""),
        KnownPrincipals.digest("Bearer sw_a_secret", "acme"),
        KnownPrincipals.digest("Bearer sw_a_secret", "beta"),
        KnownPrincipals.digest("Bearer sw_a_other", ""),
        KnownPrincipals.digest("Bearer sw_a_secretacme", ""),
        KnownPrincipals.digest("Bearer sw_a_secre", "tacme"),
    }
    assert len(digests) == 6
    assert all(b"secret" not in d for d in digests)


def test_kept_principals_are_bounded() -> None:
    world = World()
    known = _known(world)
    for i in range(principals.MAX_ENTRIES + 1):
        known.put(known.digest(f"Bearer sw_{i}_s", ""), ORGANIZER, 2000.0, 0)
    assert known.get(known.digest("Bearer sw_0_s", "")) is None
    assert known.get(known.digest(f"Bearer sw_{principals.MAX_ENTRIES}_s", "")) == ORGANIZER
