"""The demo's moving parts: a throwaway server to run against, and a shopper workload.

``cachectl demo`` (cli/demo.py) narrates the steps; this module provides what the
steps need and returns plain results. Nothing here touches a server the user did
not name: without ``--url``/``REDIS_URL`` it starts its own and stops it.
"""

from __future__ import annotations

import bisect
import csv
import json
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cachectl.errors import CachectlError, UsageError, install_extra_hint

# shipped as package data (cachectl/demo_data); the checkout's policies/ecommerce.yaml and
# examples/seeds/* are symlinks to these files, so the README and the demo read one copy
_DATA = Path(str(resources.files("cachectl") / "demo_data"))
DEMO_POLICY = _DATA / "policies" / "ecommerce.yaml"
SEEDS = _DATA / "examples" / "seeds"


@dataclass(frozen=True)
class DemoServer:
    """The server the demo runs against, and how it came to be."""

    url: str
    kind: str  # "given", "redis-server", "embedded"
    description: str


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


def _wait_for_ping(port: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"*1\r\n$4\r\nPING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def demo_server(url: str | None, *, embedded: bool = False) -> Iterator[DemoServer]:
    """Use ``url`` if given; else start a throwaway redis-server; else an embedded one."""
    if url:
        from cachectl.connection import redact_url

        yield DemoServer(url, "given", f"using the server you named: {redact_url(url)}")
        return
    binary = shutil.which("redis-server")
    if binary and not embedded:
        with _throwaway_redis(binary) as server:
            yield server
        return
    with _embedded_redis() as server:
        yield server


@contextmanager
def _throwaway_redis(binary: str) -> Iterator[DemoServer]:
    workdir = tempfile.mkdtemp(prefix="cachectl-demo-")
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own redis-server binary, fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru",
         "--latency-tracking", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        if not _wait_for_ping(port):
            raise CachectlError("the throwaway redis-server did not start",
                                hint="pass --url to use a server you run")
        version = subprocess.run(  # noqa: S603 - the same binary
            [binary, "--version"], capture_output=True, text=True,
                                 check=False).stdout.split()[2:3]
        yield DemoServer(
            f"redis://127.0.0.1:{port}/0", "redis-server",
            f"started a throwaway redis-server {''.join(version).removeprefix('v=')} "
            f"on 127.0.0.1:{port} (maxmemory 256mb, allkeys-lru); it is stopped at the end")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _embedded_redis() -> Iterator[DemoServer]:
    try:
        from fakeredis import TcpFakeServer
    except ImportError:
        raise UsageError(
            "no redis-server binary and no embedded server (fakeredis) available",
            hint=f"install redis-server, or `{install_extra_hint('demo')}`, or pass --url",
        ) from None
    port = _free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis", server_version=(7, 2))
    thread = threading.Thread(target=server.serve_forever, name="cachectl-demo-server",
                              daemon=True)
    thread.start()
    try:
        if not _wait_for_ping(port):
            raise CachectlError("the embedded server did not start")
        yield DemoServer(f"redis://127.0.0.1:{port}/0", "embedded",
                         f"no redis-server binary found: started an embedded in-process server "
                         f"(fakeredis) on 127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- the shop


@dataclass
class Catalogue:
    """The shop's "database": the seed rows, served with an origin latency."""

    products: dict[str, dict[str, Any]]
    categories: dict[str, dict[str, Any]]
    prices: dict[str, dict[str, Any]]
    stock: dict[str, dict[str, Any]]
    origin_latency_s: float = 0.003

    def load(self, table: str, key: str) -> dict[str, Any]:
        """Read one row as an origin would (with latency); KeyError when absent."""
        time.sleep(self.origin_latency_s)
        row: dict[str, Any] = getattr(self, table)[key]
        return row


def load_catalogue(seeds: Path = SEEDS) -> Catalogue:
    """Read examples/seeds into memory."""
    if not (seeds / "products.jsonl").exists():
        raise UsageError(f"the demo catalogue is missing from {seeds}",
                         hint=f"reinstall: {install_extra_hint('demo')}")
    products = {}
    with (seeds / "products.jsonl").open() as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                products[str(row["id"])] = row
    categories_doc = json.loads((seeds / "categories.json").read_text())
    categories = {str(c["slug"]): c for c in categories_doc["categories"]}

    def read_csv(name: str) -> dict[str, dict[str, Any]]:
        with (seeds / name).open(newline="") as fh:
            return {row["sku"]: dict(row) for row in csv.DictReader(fh)}

    return Catalogue(products, categories, read_csv("prices.csv"), read_csv("stock.csv"))


class Zipf:
    """Draw from ``items`` with probability proportional to 1 / rank**s."""

    def __init__(self, items: list[str], s: float = 1.0, rng: random.Random | None = None) -> None:
        self.items = items
        self.rng = rng or random.Random()
        total, cumulative = 0.0, []
        for rank in range(1, len(items) + 1):
            total += 1 / rank**s
            cumulative.append(total)
        self._cumulative = cumulative
        self._total = total

    def draw(self) -> str:
        return self.items[bisect.bisect_left(self._cumulative, self.rng.random() * self._total)]


SEARCH_QUERIES = [
    "running shoes", "wireless earbuds", "rain jacket", "coffee grinder", "yoga mat",
    "phone case", "backpack", "desk lamp", "water bottle", "sunglasses", "kids toys",
    "winter boots", "smart watch", "bluetooth speaker", "t-shirt", "cookware set",
]


@dataclass
class NamespaceTraffic:
    requests: int = 0
    loads_in_caller: int = 0
    loads_in_background: int = 0

    @property
    def served_from_cache(self) -> int:
        return self.requests - self.loads_in_caller

    @property
    def hit_rate(self) -> float | None:
        return self.served_from_cache / self.requests if self.requests else None


@dataclass
class WorkloadResult:
    seconds: float
    shoppers: int
    requests: int
    errors: int
    traffic: dict[str, NamespaceTraffic] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_shoppers(
    cache: Any,
    catalogue: Catalogue,
    *,
    seconds: float,
    shoppers: int = 4,
    seed: int = 7,
    on_tick: Callable[[Mapping[str, NamespaceTraffic]], None] | None = None,
    namespaces: tuple[str, ...] | None = None,
) -> WorkloadResult:
    """Drive a zipf-distributed shopper workload through ``cache`` for ``seconds``.

    Each shopper browses products, categories and search, checks prices and stock,
    and updates a cart and a session, all through ``cache.get_or_load``/``cache.set``.
    """
    product_ids = list(catalogue.products)
    skus = list(catalogue.prices)
    slugs = list(catalogue.categories)
    traffic: dict[str, NamespaceTraffic] = {}
    lock = threading.Lock()
    errors = 0
    deadline = time.monotonic() + seconds
    local = threading.local()

    def count(ns: str, field_name: str) -> None:
        with lock:
            t = traffic.setdefault(ns, NamespaceTraffic())
            setattr(t, field_name, getattr(t, field_name) + 1)

    def loader(ns: str, table: str, key: str) -> Callable[[], Any]:
        def load() -> Any:
            in_caller = getattr(local, "shopper", False)
            count(ns, "loads_in_caller" if in_caller else "loads_in_background")
            return catalogue.load(table, key)
        return load

    def search_results(query: str, page: int) -> Callable[[], Any]:
        def load() -> Any:
            count("search", "loads_in_caller" if getattr(local, "shopper", False)
                  else "loads_in_background")
            time.sleep(catalogue.origin_latency_s * 3)  # search is the slowest origin
            rng = random.Random(f"{query}:{page}")
            return {"query": query, "page": page,
                    "ids": [rng.choice(product_ids) for _ in range(20)]}
        return load

    def shopper(index: int) -> None:
        nonlocal errors
        local.shopper = True
        rng = random.Random(seed + index)
        products = Zipf(product_ids, 1.0, rng)
        sku_pick = Zipf(skus, 1.0, rng)
        slug_pick = Zipf(slugs, 1.0, rng)
        query_pick = Zipf(SEARCH_QUERIES, 1.0, rng)
        user = f"u{index}"

        def view_product() -> None:
            pid = products.draw()
            count("product", "requests")
            cache.get_or_load("product", loader("product", "products", pid), id=pid)

        def view_category() -> None:
            slug = slug_pick.draw()
            count("category", "requests")
            cache.get_or_load("category", loader("category", "categories", slug), slug=slug)

        def check_price() -> None:
            sku = sku_pick.draw()
            count("price", "requests")
            cache.get_or_load("price", loader("price", "prices", sku), sku=sku)

        def check_stock() -> None:
            sku = sku_pick.draw()
            count("stock", "requests")
            cache.get_or_load("stock", loader("stock", "stock", sku), sku=sku)

        def search() -> None:
            query, page = query_pick.draw(), 1 if rng.random() < 0.8 else 2
            count("search", "requests")
            cache.get_or_load("search", search_results(query, page), query=query, page=page)

        def update_cart() -> None:
            cache.set("cart", {"items": [products.draw() for _ in range(rng.randint(1, 4))]},
                      user_id=user)

        table = [(0.40, "product", view_product), (0.12, "category", view_category),
                 (0.18, "price", check_price), (0.12, "stock", check_stock),
                 (0.13, "search", search), (0.05, "cart", update_cart)]
        if namespaces is not None:
            table = [row for row in table if row[1] in namespaces]
        actions = [fn for _, _, fn in table]
        weights = [w for w, _, _ in table]
        while time.monotonic() < deadline:
            action = rng.choices(actions, weights)[0]
            try:
                action()
            except CachectlError:
                with lock:
                    errors += 1

    threads = [threading.Thread(target=shopper, args=(i,), name=f"shopper-{i}")
               for i in range(shoppers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.25)
        if on_tick is not None:
            with lock:
                snapshot = {k: NamespaceTraffic(**vars(v)) for k, v in traffic.items()}
            on_tick(snapshot)
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    total = sum(t.requests for t in traffic.values())
    return WorkloadResult(elapsed, shoppers, total, errors, traffic)
