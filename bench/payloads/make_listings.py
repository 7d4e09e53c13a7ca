#!/usr/bin/env python3
"""Writes bench/payloads/listing.json, catalog.json and listing-escaped.json: messages that look like
users' messages (decimal prices and coordinates with long fractions, int64 and
uint64 as strings, enums, maps, repeated nested messages, timestamps,
durations, unicode). Deterministic (a fixed seed), so the committed files are
what this prints; rerun after changing it.

listing-escaped.json is a listing as a PHP client writes it (json_encode's
defaults: non-ASCII as \\u escapes, emoji as surrogate pairs, every slash as
\\/), with quotes and a line break in its text and null for the wrappers it
leaves out.

Numbers are written the way protobuf prints them (shortest form that reads
back), so both transcoders echo the same text and the bench's equality check
holds.
"""

import base64
import hashlib
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
rng = random.Random(20261203)

TITLES = ["Café crème grinder", "Kaffeemühle „Präzision“", "手挽きコーヒーミル", "Молотая кофемолка",
          "Moka pot — 6 cups", "Électrique 1200 W", "Balança de precisão ±0,1 g", "מטחנת קפה ידנית"]
COLORS = ["black", "steel", "red", "oak", "white", "copper"]
STATUSES = ["STATUS_PENDING", "STATUS_PAID", "STATUS_SHIPPED", "STATUS_DELIVERED"]
REGIONS = ["FR", "DE", "JP", "US", "BR", "IL", "UA", "IN"]


def price() -> float:
    return round(rng.uniform(1, 500), 2)


def long_fraction() -> float:
    # Computed values: sums and products of decimals print with 16-17 digits.
    return rng.uniform(0, 5) * 1.1 + 0.1


def listing(i: int) -> dict:
    return {
        "id": f"listing-{i:06d}",
        "title": rng.choice(TITLES),
        "description": " ".join(rng.choice(TITLES) for _ in range(3)),
        "price": price(),
        "rating": round(rng.uniform(1, 5), 1),
        "latitude": rng.uniform(-90, 90),
        "longitude": rng.uniform(-180, 180),
        "views": str(rng.randrange(10**12)),
        "revision": str(rng.randrange(2**63, 2**64)),
        "status": rng.choice(STATUSES),
        "regionalPrices": {r: price() for r in rng.sample(REGIONS, 4)},
        "variants": [{
            "sku": f"SKU-{i:04d}-{v}",
            "price": price() + 0.1 + 0.2,
            "weightKg": round(rng.uniform(0.1, 20), 3),
            "stock": rng.randrange(1, 1000),
            "colors": rng.sample(COLORS, 2),
            "availability": rng.choice(STATUSES),
        } for v in range(3)],
        "listedAt": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
                    f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z",
        "shippingTime": f"{rng.randrange(3600, 864000)}.{rng.randrange(1, 1000):03d}s",
        "scoreHistory": [long_fraction() for _ in range(6)],
        "attributes": {"material": "acier inoxydable", "origin": "日本", "warranty": "2 ans"},
        "tags": ["coffee", "kitchen", rng.choice(COLORS)],
        **({"discount": round(rng.uniform(0, 0.5), 2)} if i % 2 else {"coupon": f"SPRING-{i}"}),
        "maxPerOrder": rng.choice([0, 1, 5]),
        "minAge": rng.choice([0, 12, 18]),
        **({"subtitle": rng.choice(TITLES)} if i % 3 else {}),
        "checksum": base64.b64encode(hashlib.sha256(f"listing-{i}".encode()).digest()).decode(),
        # Native Envoy 1.40 crashes on map entries holding default values: none here.
        "stockByWarehouse": {str(w): rng.randrange(1, 500) for w in rng.sample(range(1, 40), 3)},
    }


def dump(name: str, value: dict) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    (HERE / name).write_text(text + "\n", encoding="utf-8")
    print(f"{name}: {len(text.encode())} bytes")


dump("listing.json", listing(1))
dump("catalog.json", {"pageToken": "page-0002", "listings": [listing(i) for i in range(2, 22)], "total": "1234"})


def dump_escaped(name: str, value: dict) -> None:
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")
    (HERE / name).write_text(text + "\n", encoding="ascii")
    print(f"{name}: {len(text.encode())} bytes")


escaped = listing(22)
escaped["description"] = 'The "Moka" pot\nTwo lines: 6 cups \u2014 caf\u00e9 cr\u00e8me \U0001F600 <b>bold</b> https://example.com/moka'
escaped["subtitle"] = None
escaped["minAge"] = None
dump_escaped("listing-escaped.json", escaped)
