"""A small demo SQLite database that sloflow builds itself, so a new user can ask questions at once."""

from sloflow.demo.shop import DEMO_DB_NAME, build_demo_db, register_demo_db

__all__ = ["DEMO_DB_NAME", "build_demo_db", "register_demo_db"]
