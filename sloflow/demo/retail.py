"""The demo retail store `retail`: users, orders and products as functions over its own SQLite
database, and its return policy as a document index, for the `reaper` and `react` workflows.

The store is built deterministically from code (never shipped as data). The same tables also
load a tau2-bench `db.json` (users, orders, products), so the REAPER benchmark calls the very
functions the demo registers, over the benchmark's data. The function names and outputs follow
tau2's read-only retail tools.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from sloflow.demo.sqlite_file import write_database
from sloflow.errors import NotFound

RETAIL_DB_NAME = "retail"
POLICY_INDEX = "retail_policy"

_SCHEMA = """
CREATE TABLE users (user_id TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, zip TEXT, email TEXT, doc TEXT NOT NULL);
CREATE TABLE orders (order_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE products (product_id TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX users_name_zip ON users (first_name, last_name, zip);
CREATE INDEX users_email ON users (email);
"""

POLICY = """# Returns, exchanges and cancellations

## Returns
A delivered order can be returned. Only orders whose status is "delivered" can be returned; the
items come back to us and the refund goes to the original payment method or to a gift card. A
return is requested once per order, listing every item to return.

## Exchanges
Items of a delivered order can be exchanged for another variant of the same product (another
colour or size, for example) that is available. The price difference is paid or refunded.

## Pending, processed and cancelled orders
A pending order can still be cancelled or changed (address, payment method, item options).
A processed order has left the warehouse: it can be neither cancelled nor changed, and it can be
returned only after it has been delivered. A cancelled order cannot be returned or exchanged.

## Shipping
Orders are shipped within two business days. Every fulfilment has a tracking number.
"""

_FIRST = "Ada Alan Grace Edsger Barbara Donald Frances Ken Margaret Dennis Radia Leslie Niklaus Sophie".split()
_LAST = "Lovelace Turing Hopper Dijkstra Liskov Knuth Allen Thompson Hamilton Ritchie Perlman Lamport Wirth Wilson".split()
_ZIPS = ["10001", "19122", "60601", "73301", "94105", "98101", "02108", "30301"]
_PRODUCTS = {
    "T-Shirt": {"color": ["blue", "red", "black"], "size": ["S", "M", "L", "XL"]},
    "Running Shoes": {"size": ["8", "9", "10", "11"], "color": ["white", "black"]},
    "Mechanical Keyboard": {"switch type": ["linear", "clicky", "tactile"], "backlight": ["none", "RGB"]},
    "Water Bottle": {"capacity": ["500ml", "1000ml"], "material": ["glass", "stainless steel"]},
    "Desk Lamp": {"color": ["white", "black"], "brightness": ["low", "high"]},
    "Backpack": {"color": ["green", "grey", "navy"], "size": ["small", "large"]},
    "Headphones": {"type": ["over-ear", "in-ear"], "connectivity": ["wired", "wireless"]},
    "Coffee Maker": {"capacity": ["4 cups", "8 cups"], "type": ["drip", "espresso"]},
}
_STATUS = ["delivered"] * 5 + ["processed"] * 2 + ["pending"] * 2 + ["cancelled"]


def _demo_data(seed: int) -> dict[str, dict[str, Any]]:
    """Users, orders and products in tau2's `db.json` shape, from a seed."""
    rng = random.Random(seed)
    products: dict[str, Any] = {}
    for n, (name, options) in enumerate(_PRODUCTS.items()):
        pid = str(6000000000 + n * 7919)
        variants = {}
        for v in range(6):
            item_id = str(1000000000 + n * 1000 + v)
            chosen = {key: rng.choice(values) for key, values in options.items()}
            variants[item_id] = {"item_id": item_id, "options": chosen, "available": rng.random() < 0.8, "price": round(rng.uniform(15, 250), 2)}
        products[pid] = {"name": name, "product_id": pid, "variants": variants}
    users: dict[str, Any] = {}
    for u in range(40):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        user_id = f"{first.lower()}_{last.lower()}_{1000 + u}"
        card = f"credit_card_{rng.randrange(10**6, 10**7)}"
        users[user_id] = {
            "user_id": user_id,
            "name": {"first_name": first, "last_name": last},
            "address": {"address1": f"{rng.randrange(1, 999)} Main Street", "city": "Springfield", "country": "USA", "zip": rng.choice(_ZIPS)},
            "email": f"{first.lower()}.{last.lower()}{u}@example.com",
            "payment_methods": {card: {"source": "credit_card", "id": card}},
            "orders": [],
        }
    orders: dict[str, Any] = {}
    user_ids = list(users)
    for o in range(80):
        order_id = f"#W{1001 + o}"
        user_id = rng.choice(user_ids)
        items = []
        for pid in rng.sample(list(products), rng.randint(1, 3)):
            variant = rng.choice(list(products[pid]["variants"].values()))
            items.append({"name": products[pid]["name"], "product_id": pid, "item_id": variant["item_id"], "price": variant["price"], "options": variant["options"]})
        status = "delivered" if o == 0 else rng.choice(_STATUS)  # the README's example order is returnable
        card = next(iter(users[user_id]["payment_methods"]))
        orders[order_id] = {
            "order_id": order_id,
            "user_id": user_id,
            "address": users[user_id]["address"],
            "items": items,
            "status": status,
            "fulfillments": [] if status in ("pending", "cancelled") else [{"tracking_id": [str(rng.randrange(10**11, 10**12))], "item_ids": [i["item_id"] for i in items]}],
            "payment_history": [{"transaction_type": "payment", "amount": round(sum(i["price"] for i in items), 2), "payment_method_id": card}],
        }
        users[user_id]["orders"].append(order_id)
    return {"users": users, "orders": orders, "products": products}


def build_retail_db(path: Path, data: dict[str, dict[str, Any]] | None = None, seed: int = 11) -> Path:
    """Write the store to `path` (replacing it): the demo's own data, or a tau2 `db.json` dict."""
    data = data or _demo_data(seed)

    def fill(conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        users = data["users"].items()
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
            [(u, d["name"]["first_name"], d["name"]["last_name"], d["address"]["zip"], d["email"], json.dumps(d)) for u, d in users],
        )
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", [(o, d["user_id"], d["status"], json.dumps(d)) for o, d in data["orders"].items()])
        conn.executemany("INSERT INTO products VALUES (?, ?, ?)", [(p, d["name"], json.dumps(d)) for p, d in data["products"].items()])

    return write_database(path, fill)


# The forms of the store's values: a planner's grammar admits such a value or a reference to a step
# that returns one, and a call with anything else is refused with the form to use.
UserId = Annotated[str, Field(pattern=r"^[a-z]+_[a-z]+_[0-9]+$", description="a user id like ana_diaz_1234: the one the question gives, else from find_user_id_by_*")]
OrderId = Annotated[str, Field(pattern=r"^#?W[0-9]+$", description="an order id like #W1234567")]
ProductId = Annotated[str, Field(pattern=r"^[0-9]{10}$", description="a product id (ten digits), from an order's items or list_all_product_types")]
Email = Annotated[str, Field(pattern=r"^[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+[.][A-Za-z]+$", description="an email address like ana.diaz@example.com")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z .'-]*$", description="a person's name as the question spells it")]
Zip = Annotated[str, Field(pattern=r"^[0-9]{5}$", description="a five-digit zip code")]


class RetailStore:
    """tau2's read-only retail tools over one store database (read-only connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _one(self, sql: str, args: tuple[Any, ...], what: str) -> Any:
        row = self._conn().execute(sql, args).fetchone()
        if row is None:
            raise NotFound(f"{what} not found")
        return row[0]

    def find_user_id_by_email(self, email: Email) -> str:
        """Find a user id by the user's email address."""
        return self._one("SELECT user_id FROM users WHERE lower(email) = lower(?)", (email.strip(),), f"user with email {email!r}")

    def find_user_id_by_name_zip(self, first_name: Name, last_name: Name, zip: Zip) -> str:
        """Find a user id by first name, last name and zip code."""
        return self._one(
            "SELECT user_id FROM users WHERE lower(first_name) = lower(?) AND lower(last_name) = lower(?) AND zip = ?",
            (first_name.strip(), last_name.strip(), zip.strip()),
            f"user {first_name} {last_name} in zip {zip}",
        )

    def get_user_details(self, user_id: UserId) -> dict[str, Any]:
        """A user's profile: name, address, email, payment methods and order ids."""
        return json.loads(self._one("SELECT doc FROM users WHERE user_id = ?", (user_id.strip(),), f"user {user_id!r}"))

    def get_order_details(self, order_id: OrderId) -> dict[str, Any]:
        """An order's status, items (name, product_id, item_id, options, price), fulfilments and payments."""
        order_id = order_id.strip()
        order_id = order_id if order_id.startswith("#") else f"#{order_id}"
        return json.loads(self._one("SELECT doc FROM orders WHERE order_id = ?", (order_id,), f"order {order_id!r}"))

    def get_product_details(self, product_id: ProductId) -> dict[str, Any]:
        """A product's name and its variants (item_id, options, availability, price)."""
        return json.loads(self._one("SELECT doc FROM products WHERE product_id = ?", (str(product_id).strip(),), f"product {product_id!r}"))

    def list_all_product_types(self) -> dict[str, str]:
        """Every product name with its product id."""
        return dict(sorted(self._conn().execute("SELECT name, product_id FROM products").fetchall()))


def _object(**fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": fields}


_TEXT: dict[str, Any] = {"type": "string"}
_ITEM = _object(name=_TEXT, product_id=_TEXT, item_id=_TEXT, price={"type": "number"}, options={"type": "object"})

# What each function returns, so a plan may reference fields (`$var2.items.product_id$`) or lists of them.
OUTPUTS: dict[str, dict[str, Any]] = {
    "find_user_id_by_email": {"type": "string", "description": "the user id"},
    "find_user_id_by_name_zip": {"type": "string", "description": "the user id"},
    "get_user_details": _object(
        user_id=_TEXT, name=_object(first_name=_TEXT, last_name=_TEXT), address={"type": "object"}, email=_TEXT,
        payment_methods={"type": "object"}, orders={"type": "array", "items": _TEXT, "description": "order ids"},
    ),
    "get_order_details": _object(
        order_id=_TEXT, user_id=_TEXT, address={"type": "object"}, items={"type": "array", "items": _ITEM}, status=_TEXT,
        fulfillments={"type": "array"}, payment_history={"type": "array"},
    ),
    "get_product_details": _object(name=_TEXT, product_id=_TEXT, variants={"type": "object", "description": "item id -> variant"}),
    "list_all_product_types": {"type": "object", "description": "product name -> product id"},
}


def register_retail(sources: Any, store: RetailStore) -> list[str]:
    """Register the store's functions as sources of a `SourceRegistry`; return their names."""
    known = {s.name for s in sources.catalog()}
    for name, output in OUTPUTS.items():
        if name not in known:
            sources.register_function(name, getattr(store, name), output=output)
    return list(OUTPUTS)


def register_retail_demo(sources: Any, home: Path) -> list[str]:
    """Build the demo store under `home`/demo once; register its functions and its policy index."""
    from sloflow.retrieval.chunking import Document
    from sloflow.retrieval.document_index import IndexConfig

    path = Path(home) / "demo" / "retail.sqlite"
    if not path.exists():
        build_retail_db(path)
    names = register_retail(sources, RetailStore(path))
    if POLICY_INDEX not in sources.indexes.names():
        config = IndexConfig(faiss_kind="flat", description="the retail store's return, exchange and cancellation policy")
        sources.indexes.create(POLICY_INDEX, config).add_documents([Document("return-policy", POLICY)])
    return [*names, POLICY_INDEX]
