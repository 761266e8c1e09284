"""``type: sql``: a SQLAlchemy ``url`` and a ``query``; rows streamed, never loaded whole.

Options: ``url`` (``sqlite:///shop.db`` relative to the policy's folder, ``postgresql://…``
with the ``sql`` extra), ``query``, ``params`` (bound parameters, ``:name`` in the query),
``batch_size`` (rows fetched per round trip, default 2000), ``connect_timeout`` (seconds,
default 10) and ``statement_timeout`` (seconds, default 300; PostgreSQL). Rows are read
through a server-side cursor (``stream_results`` + ``yield_per``). Position: the row number.

The database is connected when the source is opened, before any namespace is written:
a database that is down or refuses the credentials stops warm before it changes anything,
and a server that accepts TCP but never answers is given up after ``connect_timeout``.

``lookup`` (optional): a query that returns the row of one key, its parameters the key
template's placeholders (``SELECT * FROM products WHERE id = :id``); ``cachectl verify``
runs it once per key checked instead of reading the whole query (``open_lookup``). A
database that cannot be reached raises SourceUnavailableError (exit 3).

Ctrl-C or SIGTERM while a query is running (waiting on a lock, in a long scan) cancels
it (``interrupt``, called by warm's watchdog thread): PostgreSQL through psycopg's
``cancel_safe()`` (``cancel()`` before psycopg 3.2, psycopg2), SQLite through
``Connection.interrupt()``; the read raises ReadInterrupted and warm exits 130 at once
rather than after ``statement_timeout``. SQLite runs a query in C without the GIL, where
Python's signal handlers cannot run: a no-op progress handler every
``SQLITE_PROGRESS_OPS`` virtual-machine steps lets them in.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

from cachectl import secrets
from cachectl.errors import SourceError, SourceUnavailableError, install_extra_hint
from cachectl.warm.sources import (
    BadRow,
    Position,
    ReadInterrupted,
    Row,
    SourceContext,
    check_options,
    option,
    positive_number,
)

DEFAULT_BATCH = 2000
OPTIONAL = ("params", "batch_size", "lookup", "connect_timeout", "statement_timeout")
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_STATEMENT_TIMEOUT_S = 300.0
INSTALL_HINT = f"install the sql extra: {install_extra_hint('sql')}"
# SQLite steps between two calls of the progress handler, where a pending Python signal
# handler gets its turn: 10-20 ms of a scan (a recursive CTE here), about 60 calls a second
SQLITE_PROGRESS_OPS = 1_000_000


def _let_signals_in() -> int:
    """SQLite's progress handler: returns 0 (go on); calling Python at all is its point."""
    return 0


def _cancel(driver: Any, timeout_s: float) -> None:
    """Cancel the statement ``driver`` (a DBAPI connection) is running, from another thread."""
    if callable(getattr(driver, "cancel_safe", None)):
        driver.cancel_safe(timeout=timeout_s)  # psycopg >= 3.2: bounded, never blocks forever
    elif callable(getattr(driver, "cancel", None)):
        driver.cancel()  # psycopg < 3.2, psycopg2
    elif callable(getattr(driver, "interrupt", None)):
        driver.interrupt()  # sqlite3


def _interrupted(display: str) -> ReadInterrupted:
    return ReadInterrupted(f"sql source {display}: the query was cancelled (interrupted)")


def _import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise SourceError("a sql warm source needs SQLAlchemy", hint=INSTALL_HINT) from None
    return sqlalchemy


class _QueryRows(ABC):
    """What both SQL sources share: rows come from ``tuple_batches``, counted from 1."""

    display: str

    @property
    def description(self) -> str:
        return f"sql {self.display}"

    def locate(self, position: Position) -> str:
        return f"row {position} of the query"

    def estimated_rows(self) -> int | None:
        return None

    def rows(self) -> Iterator[tuple[Position, Row | BadRow]]:
        for first, names, batch in self.tuple_batches():
            for number, values in enumerate(batch, first):
                yield number, dict(zip(names, values, strict=True))

    @abstractmethod
    def tuple_batches(self) -> Iterator[tuple[Position, list[str], list[Any]]]:
        """(first row's number, column names, rows' values) per fetched batch."""


class SqlSource(_QueryRows):
    """The rows of one query."""

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        ns = context.namespace
        check_options("sql", ns, options, ("url", "query"), OPTIONAL)
        sa = _import_sqlalchemy()
        raw_url = option(options, "url", str, ns, "sql")
        secrets.register_url(raw_url)
        self.query: str = option(options, "query", str, ns, "sql")
        self.params: dict[str, Any] = dict(option(options, "params", dict, ns, "sql", {}))
        self.batch_size: int = option(options, "batch_size", int, ns, "sql", DEFAULT_BATCH)
        self.lookup: str | None = option(options, "lookup", str, ns, "sql")
        if self.batch_size < 1:
            raise SourceError(f"namespace {ns}: sql batch_size must be at least 1")
        connect_s = positive_number(options, "connect_timeout", ns, "sql",
                                    DEFAULT_CONNECT_TIMEOUT_S)
        statement_s = positive_number(options, "statement_timeout", ns, "sql",
                                      DEFAULT_STATEMENT_TIMEOUT_S)
        try:
            url = sa.engine.make_url(raw_url)
        except sa.exc.ArgumentError:
            raise SourceError(f"namespace {ns}: sql url is not a SQLAlchemy URL",
                              hint="e.g. sqlite:///seeds/shop.db or "
                              "postgresql://user@host/dbname") from None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not url.database.startswith("file:"):
            from pathlib import Path

            db = Path(url.database).expanduser()
            if not db.is_absolute():
                db = context.base_dir / db
            if not db.is_file():
                raise SourceError(f"warm source {url.database} (sqlite) does not exist",
                                  hint="relative sqlite paths start at the policy file's folder")
            url = url.set(database=str(db))
        if url.drivername in ("postgresql", "postgres") and importlib.util.find_spec(
                "psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is what the extra installs
        self.url = url
        if url.password:
            secrets.register(str(url.password))
        self.display = url.render_as_string(hide_password=True)
        self.connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql":
            self.connect_args = {"connect_timeout": max(1, round(connect_s)),
                                 "options": f"-c statement_timeout={round(statement_s * 1000)}"}
        elif url.get_backend_name() == "sqlite":
            self.connect_args = {"timeout": connect_s}
        self.connect_s = connect_s
        self._interrupted = False
        self._engine, self._conn = self.connect()
        self._driver: Any = None  # the DBAPI connection the query runs on (for interrupt)
        try:
            self._driver = self._conn.connection.driver_connection
        except sa.exc.SQLAlchemyError as exc:
            self.close()
            raise self.failure(exc) from None
        if callable(getattr(self._driver, "set_progress_handler", None)):  # sqlite3
            self._driver.set_progress_handler(_let_signals_in, SQLITE_PROGRESS_OPS)

    def connect(self) -> tuple[Any, Any]:
        """An engine and one open connection (the timeouts applied); raises ``failure``."""
        sa = _import_sqlalchemy()
        try:
            engine = sa.create_engine(self.url, connect_args=self.connect_args)
        except ImportError as exc:
            raise SourceError(f"no database driver for {self.display} ({exc.name or exc})",
                              hint=INSTALL_HINT) from None
        except sa.exc.NoSuchModuleError:
            raise SourceError(f"SQLAlchemy has no dialect for {self.display}",
                              hint=INSTALL_HINT) from None
        try:
            return engine, engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise self.failure(exc) from None

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def interrupt(self) -> None:
        """Cancel the query running (called from warm's watchdog thread on Ctrl-C/SIGTERM);
        the read then raises ReadInterrupted."""
        self._interrupted = True
        if self._driver is not None:
            _cancel(self._driver, self.connect_s)

    def tuple_batches(self) -> Iterator[tuple[Position, list[str], list[Any]]]:
        """The query's rows as fetched: (the first row's number, the column names, the
        rows' values, tuple-like), ``batch_size`` rows at a time (cachectl.warm.bulk
        takes them so)."""
        sa = _import_sqlalchemy()
        try:
            result = self._conn.execution_options(
                stream_results=True, yield_per=self.batch_size).execute(
                    sa.text(self.query), self.params)
            if not result.returns_rows:
                raise SourceError("the sql query returns no rows",
                                  hint="warm needs a SELECT (or a statement that returns rows)")
            # plain tuples zipped with the column names: RowMapping objects cost more
            # than the rest of a row's work
            names = list(result.keys())
            number = 1
            for partition in result.partitions(self.batch_size):
                yield number, names, partition
                number += len(partition)
        except sa.exc.SQLAlchemyError as exc:
            if self._interrupted:
                raise _interrupted(self.display) from None
            raise self.failure(exc) from None
        finally:
            self.close()

    def failure(self, exc: Exception) -> SourceError:
        """The SourceError for a SQLAlchemy error: SourceUnavailableError when the database
        could not be reached or dropped the connection (OperationalError)."""
        sa = _import_sqlalchemy()
        detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["error"])[0]
        detail = secrets.scrub(detail, [str(self.url.password or "")])
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            return SourceUnavailableError(f"sql source {self.display} cannot be used: {detail}",
                                          hint="check that the database is up and reachable "
                                          "(connect_timeout bounds the wait)")
        return SourceError(f"sql source {self.display}: {detail}",
                           hint="check the url, the query and that the database is up")

    def open_lookup(self) -> SqlLookup | None:
        """The ``lookup`` query on one open connection, or None without one."""
        return None if self.lookup is None else SqlLookup(self, self.lookup)


class SqlLookup:
    """The rows of the ``lookup`` query for one key's placeholder values, on one connection."""

    def __init__(self, source: SqlSource, query: str) -> None:
        sa = _import_sqlalchemy()
        self.source = source
        self.statement = sa.text(query)
        self._engine: Any = None
        self._conn: Any = None

    def find(self, params: Mapping[str, str]) -> list[Row]:
        """Every row the lookup returns for ``params`` (none: the key has no row)."""
        sa = _import_sqlalchemy()
        try:
            if self._conn is None:
                self._engine, self._conn = self.source.connect()
            result = self._conn.execute(self.statement, dict(params))
            names = list(result.keys())
            return [dict(zip(names, values, strict=True)) for values in result]
        except sa.exc.SQLAlchemyError as exc:
            raise self.source.failure(exc) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()
        self._conn = self._engine = None


class SqliteSource(_QueryRows):
    """A ``sqlite:///path`` source read with the standard library, when SQLAlchemy is absent."""

    def __init__(self, options: Mapping[str, Any], context: SourceContext) -> None:
        from pathlib import Path

        ns = context.namespace
        check_options("sql", ns, options, ("url", "query"), OPTIONAL)
        raw_url: str = option(options, "url", str, ns, "sql")
        self.query: str = option(options, "query", str, ns, "sql")
        self.params: dict[str, Any] = dict(option(options, "params", dict, ns, "sql", {}))
        self.batch_size: int = option(options, "batch_size", int, ns, "sql", DEFAULT_BATCH)
        db = Path(raw_url.removeprefix("sqlite:///").split("?", 1)[0]).expanduser()
        if not db.is_absolute():
            db = context.base_dir / db
        if not db.is_file():
            raise SourceError(f"warm source {raw_url} (sqlite) does not exist",
                              hint="relative sqlite paths start at the policy file's folder")
        self.path = db
        self.display = raw_url
        self.lookup: str | None = option(options, "lookup", str, ns, "sql")
        self._conn: Any = None  # the connection a read runs on (for interrupt)
        self._interrupted = False

    def interrupt(self) -> None:
        """``SqlSource.interrupt`` for the standard library's sqlite3."""
        self._interrupted = True
        if self._conn is not None:
            self._conn.interrupt()

    def open_lookup(self) -> SqliteLookup | None:
        """The ``lookup`` query on one read-only connection, or None without one."""
        return None if self.lookup is None else SqliteLookup(self, self.lookup)

    def tuple_batches(self) -> Iterator[tuple[Position, list[str], list[Any]]]:
        """The query's rows as fetched: (the first row's number, the column names, the
        rows' values), ``batch_size`` rows at a time (cachectl.warm.bulk takes them so)."""
        import sqlite3

        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        conn.set_progress_handler(_let_signals_in, SQLITE_PROGRESS_OPS)
        self._conn = conn
        try:
            cursor = conn.execute(self.query, self.params)
            if cursor.description is None:
                raise SourceError("the sql query returns no rows",
                                  hint="warm needs a SELECT (or a statement that returns rows)")
            names = [d[0] for d in cursor.description]
            number = 1
            while batch := cursor.fetchmany(self.batch_size):
                yield number, names, batch
                number += len(batch)
        except sqlite3.Error as exc:
            if self._interrupted:
                raise _interrupted(self.display) from None
            raise SourceError(f"sql source {self.display}: {exc}",
                              hint="check the query and the database file") from None
        finally:
            self._conn = None
            conn.close()


class SqliteLookup:
    """``SqlLookup`` through the standard library's sqlite3."""

    def __init__(self, source: SqliteSource, query: str) -> None:
        import sqlite3

        self.source = source
        self.query = query
        self._conn = sqlite3.connect(f"file:{source.path}?mode=ro", uri=True)

    def find(self, params: Mapping[str, str]) -> list[Row]:
        import sqlite3

        try:
            cursor = self._conn.execute(self.query, dict(params))
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise SourceError(f"sql source {self.source.display}: lookup: {exc}",
                              hint="check the lookup query and the database file") from None

    def close(self) -> None:
        self._conn.close()


def open_source(options: Mapping[str, Any], context: SourceContext) -> SqlSource | SqliteSource:
    """SQLAlchemy for any URL; without it, ``sqlite:///`` URLs through the standard library."""
    url = options.get("url")
    if isinstance(url, str) and url.startswith("sqlite:///"):
        try:
            import sqlalchemy  # noqa: F401
        except ImportError:
            return SqliteSource(options, context)
    return SqlSource(options, context)
