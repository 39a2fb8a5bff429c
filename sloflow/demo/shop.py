"""The demo database `shop`: customers, products, orders and their items, built deterministically.

Same seed, same rows: the file is rebuilt from code (never shipped as data) and written to a
temporary name first, so a half-written file never looks like a finished one.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sloflow.demo.sqlite_file import write_database

DEMO_DB_NAME = "shop"

_SCHEMA = """
CREATE TABLE customer (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  city TEXT NOT NULL,
  country TEXT NOT NULL,
  joined DATE NOT NULL
);
CREATE TABLE product (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price REAL NOT NULL
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customer(id),
  ordered DATE NOT NULL,
  status TEXT NOT NULL
);
CREATE TABLE order_item (
  order_id INTEGER NOT NULL REFERENCES orders(id),
  product_id INTEGER NOT NULL REFERENCES product(id),
  quantity INTEGER NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
"""

_FIRST = "Ada Alan Grace Edsger Barbara Donald Frances Ken Margaret Dennis Radia Leslie Niklaus Sophie Tim".split()
_LAST = "Lovelace Turing Hopper Dijkstra Liskov Knuth Allen Thompson Hamilton Ritchie Perlman Lamport Wirth Wilson Berners".split()
_CITIES = [("Paris", "France"), ("Lyon", "France"), ("Berlin", "Germany"), ("Munich", "Germany"),
           ("Madrid", "Spain"), ("Lisbon", "Portugal"), ("Rome", "Italy"), ("Milan", "Italy"),
           ("London", "United Kingdom"), ("Dublin", "Ireland")]  # fmt: skip
_PRODUCTS = {
    "books": ["SQL Basics", "Deep Learning", "The Art of Computer Programming", "Clean Code", "Dune"],
    "electronics": ["Headphones", "Keyboard", "Mouse", "Monitor", "USB Cable", "Webcam"],
    "kitchen": ["Coffee Mill", "Teapot", "Chef Knife", "Cutting Board"],
    "garden": ["Rake", "Watering Can", "Seeds Pack", "Gloves", "Hose"],
}
_STATUS = ["delivered"] * 6 + ["shipped"] * 2 + ["pending", "cancelled"]


def _rows(seed: int) -> dict[str, list[tuple]]:
    rng = random.Random(seed)
    customers = []
    for i in range(1, 61):
        city, country = rng.choice(_CITIES)
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        customers.append((i, name, city, country, str(date(2022, 1, 1) + timedelta(days=rng.randrange(730)))))
    products, pid = [], 0
    for category, names in _PRODUCTS.items():
        for name in names:
            pid += 1
            products.append((pid, name, category, round(rng.uniform(3, 150), 2)))
    orders, items = [], []
    for oid in range(1, 201):
        customer = rng.randrange(1, len(customers) + 1)
        ordered = date(2024, 1, 1) + timedelta(days=rng.randrange(366))
        orders.append((oid, customer, str(ordered), rng.choice(_STATUS)))
        for product in rng.sample(range(1, len(products) + 1), rng.randint(1, 3)):
            items.append((oid, product, rng.randint(1, 4)))
    return {"customer": customers, "product": products, "orders": orders, "order_item": items}


def build_demo_db(path: Path, seed: int = 7) -> Path:
    """Write the demo database to `path` (replacing it) and return the path."""

    def fill(conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        for table, rows in _rows(seed).items():
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)

    return write_database(path, fill)


def register_demo_db(databases: Any, home: Path) -> Any:
    """Build the demo database under `home`/demo once and register it as `shop` (a `DatabaseRegistry`)."""
    path = Path(home) / "demo" / "shop.sqlite"
    if not path.exists():
        build_demo_db(path)
    if DEMO_DB_NAME in databases.names():
        return databases.get(DEMO_DB_NAME)
    return databases.add(DEMO_DB_NAME, f"sqlite:///{path}")
