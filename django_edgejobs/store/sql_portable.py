"""Named SQL of the portable store: the raw fragments its ORM verbs need.

The tag conditions use ``json_each`` (SQLite's JSON table function; PostgreSQL has its own,
``sql_postgres.py``). Builders take the number of tags: one ``%s`` each."""

from __future__ import annotations

from ..models import Job

#: The job table's tags column (a tag condition is embedded in a query of that table).
TAGS = f'"{Job._meta.db_table}"."tags"'


def select_sql(expression: str) -> str:
    """One value, e.g. the database's clock (``db_now``)."""
    return "SELECT " + expression


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count) or "NULL"


def tags_any_sql(count: int) -> str:
    """A job carries one of the tags. Params: the tags."""
    return f"EXISTS (SELECT 1 FROM json_each({TAGS}) WHERE value IN ({_marks(count)}))"


def tags_none_sql(count: int) -> str:
    """A job carries none of the tags. Params: the tags."""
    return f"NOT {tags_any_sql(count)}"


#: A job carries no tag at all (``exact`` with no tags). No params.
TAGS_EMPTY_SQL = f"NOT EXISTS (SELECT 1 FROM json_each({TAGS}))"


def tags_all_sql(count: int) -> str:
    """A job carries every tag. Params: the tags, their number."""
    return (f"(SELECT COUNT(DISTINCT value) FROM json_each({TAGS}) "
            f"WHERE value IN ({_marks(count)})) = %s")


def tags_exact_sql(count: int) -> str:
    """A job carries every tag and no other. Params: the tags, their number, the tags."""
    other = (f"NOT EXISTS (SELECT 1 FROM json_each({TAGS}) "
             f"WHERE value NOT IN ({_marks(count)}))")
    return f"({tags_all_sql(count)} AND {other})"
