"""The shop policy, seed rows and keyspace the topology and fault tests run commands on.

Keys outside the cache (``other:*``) and cachectl's own keys are written too, so every
test can check that a command touched nothing outside its namespace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

PREFIX = "shop"
FOREIGN = {b"other:product:1": b"not ours", b"other:session:x": b"not ours either"}
PRODUCTS = 40
PRICES = 25

POLICY = """\
version: 1
redis: {{key_prefix: shop{cluster}}}
defaults: {{ttl: 10m}}
namespaces:
  product:
    key: "product:{{id}}"
    ttl: 1h
    stale: 10m
    jitter: 10%
    critical: true
    tags: [catalog]
    warm:
      source: {{type: jsonl, path: seeds/products.jsonl}}
  price: {{key: "price:{{sku}}", ttl: 5m, stale: 1m, tags: [catalog]}}
  cart:  {{key: "cart:{{user_id}}", ttl: 30m}}
"""


def write_policy(directory: Path, *, cluster: bool = False, products: int = PRODUCTS) -> Path:
    """Write cachectl.yaml and seeds/products.jsonl (``products`` rows) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = directory / "seeds"
    seeds.mkdir(exist_ok=True)
    rows = (json.dumps({"id": i, "name": f"product {i}", "price_cents": 100 + i})
            for i in range(products))
    (seeds / "products.jsonl").write_text("\n".join(rows) + "\n")
    path = directory / "cachectl.yaml"
    path.write_text(POLICY.format(cluster=", cluster: true" if cluster else ""))
    return path


def product_keys(n: int = PRODUCTS) -> set[bytes]:
    return {f"{PREFIX}:product:{i}".encode() for i in range(n)}


def price_keys(n: int = PRICES) -> set[bytes]:
    return {f"{PREFIX}:price:sku-{i}".encode() for i in range(n)}


def seed(client: Any, *, products: int = PRODUCTS, prices: int = PRICES) -> None:
    """Cache keys with TTLs (products, prices, one cart) plus foreign keys without."""
    pipe = client.pipeline(transaction=False)
    for key in product_keys(products):
        pipe.set(key, b'{"name": "p"}', px=3_600_000)
    for key in price_keys(prices):
        pipe.set(key, b"100", px=300_000)
    pipe.set(f"{PREFIX}:cart:u1".encode(), b"[]", px=1_800_000)
    for key, value in FOREIGN.items():
        pipe.set(key, value)
    pipe.execute()


def all_keys(nodes: list[Any]) -> set[bytes]:
    """Every key on the given standalone clients (e.g. every primary of a cluster)."""
    found: set[bytes] = set()
    for node in nodes:
        found.update(node.scan_iter(count=1000))
    return found


def foreign_intact(nodes: list[Any]) -> bool:
    """The keys outside the cache are still there, unchanged and without a TTL."""
    values: dict[bytes, Any] = {}
    ttls: dict[bytes, int] = {}
    for node in nodes:
        for key in FOREIGN:
            try:
                value = node.get(key)
            except redis.ResponseError:  # MOVED: a cluster node that does not own it
                continue
            if value is not None:
                values[key] = value
                ttls[key] = node.pttl(key)
    return values == FOREIGN and all(t == -1 for t in ttls.values())
