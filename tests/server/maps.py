"""Tiny seat maps for API tests, as native JSON bytes."""

from __future__ import annotations

import json


def small_map(rows: int = 2, seats_per_row: int = 6, ga_capacity: int = 5) -> bytes:
    """A square section of ``rows`` x ``seats_per_row`` seats (ids r<row>-<n>) and a GA floor."""
    seats_rows = [
        {
            "id": f"row{r}",
            "label": str(r + 1),
            "seats": [
                {"id": f"r{r}-{n}", "label": str(n + 1), "position": [100 + 60 * n, 100 + 60 * r],
                 "category": "front" if r == 0 else "back"}
                for n in range(seats_per_row)
            ],
        }
        for r in range(rows)
    ]  # fmt: skip
    width = 200 + 60 * seats_per_row
    height = 200 + 60 * rows
    doc = {
        "name": "Small hall",
        "categories": [{"key": "front", "label": "Front"}, {"key": "back", "label": "Back"},
                       {"key": "floor", "label": "Floor"}],
        "sections": [{"id": "main", "label": "Main", "rows": seats_rows,
                      "outline": [[0, 0], [width, 0], [width, height], [0, height]]}],
        "ga_areas": [{"id": "floor", "label": "Floor", "capacity": ga_capacity, "category": "floor",
                      "outline": [[width + 100, 0], [width + 600, 0], [width + 600, 500],
                                  [width + 100, 500]]}],
        "focal_point": [width / 2, -200],
    }  # fmt: skip
    return json.dumps(doc).encode()
