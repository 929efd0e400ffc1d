"""Pure business rules: money, fees, statements and ticket tokens.

What belongs here is a rule that can be stated without storage or transport:
a function of its inputs (msgspec Structs and integers), no Redis, no gRPC, no
clock or randomness it does not take as an argument (key generation aside), no
files. Each module is property-tested with hypothesis in ``tests/rules/``
without a server; ``holds/`` stores what these rules compute and ``server/``
serves it.

- :mod:`rules.money` -- integer minor units, ISO-4217 exponents, the one rounding function
- :mod:`rules.fees` -- fee plans, the per-ticket split, refund reversals, who owes whom
- :mod:`rules.statements` -- an organizer's statement for a period, the platform roll-up, CSV
- :mod:`rules.tickets` -- signed ticket tokens (Ed25519), key rings and rotation, QR codes
- :mod:`rules.errors` -- every exception the package raises

The decisions behind them: ``docs/money.md`` and ``docs/ticket-tokens.md``.
"""
