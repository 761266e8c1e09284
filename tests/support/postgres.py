"""The PostgreSQL at 127.0.0.1:5432 (trust auth): its user, and a throwaway database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest


def pg_user() -> str:
    """The first of postgres/root the server lets in; skips the test when there is none."""
    for user in ("postgres", "root"):
        try:
            psycopg.connect(f"postgresql://{user}@127.0.0.1:5432/postgres", connect_timeout=3).close()
            return user
        except psycopg.OperationalError:
            continue
    pytest.skip("no PostgreSQL on 127.0.0.1:5432 with trust auth")


def pg_url(db: str) -> str:
    return f"postgresql://{pg_user()}@127.0.0.1:5432/{db}"


def pg_admin() -> psycopg.Connection[Any]:
    return psycopg.connect(f"postgresql://{pg_user()}@127.0.0.1:5432/postgres", autocommit=True)


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """CREATE a database with a unique name, yield the name, always DROP it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = pg_admin()
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
