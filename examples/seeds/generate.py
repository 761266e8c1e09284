"""Generate the demo shop's seed catalogue (deterministic: the same files every run).

Writes, next to this script:
  products.jsonl   one product per line (namespace product, key product:{id})
  categories.json  {"categories": [...]} (namespace category, key category:{slug})
  prices.csv       sku,amount_cents,currency,... (namespace price, key price:{sku})
  stock.csv        sku,quantity,warehouse,...    (namespace stock, key stock:{sku})

    python examples/seeds/generate.py                 # the committed seeds (~3,000 products)
    python examples/seeds/generate.py --products 1000000 --out /tmp/big   # a large set

``product_rows(n, seed)`` is importable (benchmarks/warm.py streams a million rows from it).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 20240601

DEPARTMENTS: dict[str, list[str]] = {
    "Electronics": ["Phones", "Headphones", "Speakers", "Smart Watches", "Tablets", "Chargers",
                    "Cameras", "Laptops"],
    "Home & Kitchen": ["Cookware", "Coffee", "Lighting", "Bedding", "Storage", "Cleaning",
                       "Small Appliances"],
    "Fashion": ["T-Shirts", "Jackets", "Jeans", "Dresses", "Sneakers", "Boots", "Sunglasses",
                "Bags"],
    "Sports & Outdoors": ["Running", "Yoga", "Cycling", "Camping", "Swimming", "Fitness"],
    "Beauty": ["Skincare", "Haircare", "Fragrance", "Makeup"],
    "Toys & Kids": ["Building Sets", "Puzzles", "Plush", "Baby Care", "Board Games"],
    "Books & Media": ["Fiction", "Cookbooks", "Children's Books", "Vinyl"],
    "Garden": ["Plants", "Tools", "Outdoor Furniture"],
    "Grocery": ["Snacks", "Tea", "Pantry"],
}
BRANDS = ["Northwind", "Acme", "Lumen", "Kestrel", "Orchard & Oak", "Bluefin", "Solace", "Vanta",
          "Pioneer Lane", "Harbor", "Copperleaf", "Nimbus", "Tidewater", "Everly", "Granite",
          "Fjordline", "Marigold", "Quillon", "Sable", "Juniper"]
ADJECTIVES = ["Classic", "Ultra", "Compact", "Pro", "Essential", "Everyday", "Lightweight",
              "Premium", "Eco", "Smart", "Travel", "Deluxe", "Mini", "Max", "Urban", "Trail"]
COLOURS = ["black", "white", "navy", "sage", "sand", "red", "graphite", "ocean", "rose", "olive"]
FEATURES = ["water-resistant", "recycled materials", "two-year warranty", "machine washable",
            "fast charging", "ergonomic design", "dishwasher safe", "vegan leather",
            "noise cancelling", "adjustable fit", "BPA free", "energy efficient", "gift boxed"]
WAREHOUSES = ["AMS1", "FRA2", "MAD1", "WAW1"]


def slugify(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in out.split("-") if part)


def singular(name: str) -> str:
    """A product noun from a category name: "Dresses" -> "Dress", "Puzzles" -> "Puzzle"."""
    for plural, single in (("sses", "ss"), ("ches", "ch"), ("shes", "sh"), ("ies", "y")):
        if name.endswith(plural):
            return name[: -len(plural)] + single
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def categories() -> list[dict[str, Any]]:
    """About 60 categories: one per department and its children (slug, name, parent)."""
    rows: list[dict[str, Any]] = []
    for position, (dept, children) in enumerate(DEPARTMENTS.items()):
        dept_slug = slugify(dept)
        rows.append({"slug": dept_slug, "name": dept, "parent": None, "position": position,
                     "path": [dept_slug]})
        for child_pos, child in enumerate(children):
            slug = f"{dept_slug}-{slugify(child)}"
            rows.append({"slug": slug, "name": child, "parent": dept_slug, "position": child_pos,
                         "path": [dept_slug, slug]})
    return rows


def leaf_categories() -> list[dict[str, Any]]:
    return [c for c in categories() if c["parent"] is not None]


def product_rows(count: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """``count`` products, the same ones for the same seed."""
    rng = random.Random(seed)
    leaves = leaf_categories()
    for n in range(1, count + 1):
        category = rng.choice(leaves)
        brand = rng.choice(BRANDS)
        adjective = rng.choice(ADJECTIVES)
        colour = rng.choice(COLOURS)
        noun = singular(category["name"])
        name = f"{brand} {adjective} {noun}"
        sku = f"{slugify(brand)[:3].upper()}-{n:07d}"
        features = rng.sample(FEATURES, 3)
        price_cents = rng.choice([499, 999, 1499, 1999, 2499, 2999, 3999, 4999, 7999, 9999,
                                  12999, 19999, 29999]) + rng.choice([0, 0, 0, 500, -100])
        yield {
            "id": n,
            "sku": sku,
            "name": name,
            "brand": brand,
            "category": category["slug"],
            "colour": colour,
            "description": f"The {name} in {colour}: {', '.join(features)}.",
            "images": [f"https://cdn.example-shop.test/p/{n}/{i}.webp"
                       for i in range(1, rng.randint(2, 4))],
            "rating": round(rng.uniform(2.8, 5.0), 1),
            "reviews": int(rng.paretovariate(1.3) * 3) - 3,
            "price_cents": price_cents,
            "currency": "EUR",
            "in_stock": rng.random() > 0.08,
        }


def write(out: Path, products: int, seed: int = SEED) -> dict[str, int]:
    """Write the four seed files into ``out``; returns rows written per file."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed + 1)
    counts = {"products.jsonl": 0, "prices.csv": 0, "stock.csv": 0}
    with (out / "products.jsonl").open("w", encoding="utf-8", newline="\n") as prod, \
            (out / "prices.csv").open("w", encoding="utf-8", newline="") as prices_fh, \
            (out / "stock.csv").open("w", encoding="utf-8", newline="") as stock_fh:
        prices = csv.writer(prices_fh, lineterminator="\n")
        stock = csv.writer(stock_fh, lineterminator="\n")
        prices.writerow(["sku", "amount_cents", "currency", "was_cents", "promotion"])
        stock.writerow(["sku", "quantity", "warehouse", "restock_days"])
        for row in product_rows(products, seed):
            prod.write(json.dumps(row, separators=(",", ":"), ensure_ascii=False) + "\n")
            promo = rng.random() < 0.15
            was = row["price_cents"]
            amount = int(was * rng.choice([0.7, 0.8, 0.9])) if promo else was
            prices.writerow([row["sku"], amount, "EUR", was if promo else "",
                             "spring-sale" if promo else ""])
            quantity = 0 if not row["in_stock"] else int(rng.expovariate(1 / 40)) + 1
            stock.writerow([row["sku"], quantity, rng.choice(WAREHOUSES),
                            rng.randint(2, 21) if quantity == 0 else ""])
            counts["products.jsonl"] += 1
            counts["prices.csv"] += 1
            counts["stock.csv"] += 1
    cats = categories()
    (out / "categories.json").write_text(
        json.dumps({"version": 1, "categories": cats}, indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8")
    counts["categories.json"] = len(cats)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for name, rows in write(args.out, args.products, args.seed).items():
        print(f"{args.out / name}: {rows:,} rows")  # noqa: T201 - a script's output


if __name__ == "__main__":
    main()
