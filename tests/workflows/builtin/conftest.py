from tests.retrieval.conftest import embedder, shop_db, sources  # noqa: F401  (shared fixtures)
