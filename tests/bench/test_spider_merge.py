"""The merge behind `bench text2sql --merge`: clashing tables renamed, gold SQL and join keys rewritten to match."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sloflow.bench.spider_eval import DevSet, Question, run_readonly
from sloflow.bench.spider_merge import MERGED, merge_devset, rename_tables_in_sql, table_names


def _db(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()


def test_clashing_tables_are_renamed_and_gold_sql_is_rewritten_to_the_same_rows(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _db(src / "db" / "music.sqlite", """
        CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT);
        CREATE TABLE album (id INTEGER PRIMARY KEY, singer_id INTEGER, title TEXT);
        INSERT INTO singer VALUES (1, 'Ada', 'France'), (2, 'Bo', 'Peru');
        INSERT INTO album VALUES (1, 1, 'Blue'), (2, 1, 'Red'), (3, 2, 'Green');""")
    _db(src / "db" / "opera.sqlite", """
        CREATE TABLE Singer (id INTEGER PRIMARY KEY, name TEXT, voice TEXT);
        CREATE TABLE house (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO Singer VALUES (1, 'Cy', 'tenor'), (2, 'Di', 'alto'), (3, 'Ed', 'bass');
        INSERT INTO house VALUES (1, 'Scala');""")
    questions = [
        Question("m1", "music", "Albums per singer from France", "SELECT singer.name, count(*) FROM singer JOIN album AS a ON singer.id = a.singer_id WHERE singer.country = 'France' GROUP BY singer.name"),
        Question("m2", "music", "Titles", "SELECT T1.title FROM album AS T1 JOIN singer AS T2 ON T1.singer_id = T2.id ORDER BY T1.title"),
        Question("o1", "opera", "Tenors", "SELECT name FROM Singer WHERE voice = 'tenor'"),
        Question("o2", "opera", "Houses", "SELECT count(*) FROM house"),
    ]
    dev = DevSet(src, questions, {"music": ["album.singer_id = singer.id"], "opera": []})
    merged = merge_devset(dev, tmp_path / "out")

    path = merged.dev.db_path(MERGED)
    assert sorted(table_names(path)) == sorted(["music__singer", "album", "opera__Singer", "house"])
    assert merged.renamed == {"music.singer": "music__singer", "opera.Singer": "opera__Singer"}
    assert merged.tables == 4 and merged.gold_rewritten == 3 and merged.gold_mismatch == []
    gold = {q.id: q.gold_sql for q in merged.dev.questions}
    assert "music__singer.name" in gold["m1"] and " singer" not in gold["m1"].replace("music__singer", "")
    assert "FROM opera__Singer" in gold["o1"] and gold["o2"] == questions[3].gold_sql  # untouched: no clash
    assert {q.db_id for q in merged.dev.questions} == {MERGED} and merged.origin == {"m1": "music", "m2": "music", "o1": "opera", "o2": "opera"}
    assert merged.dev.foreign_keys[MERGED] == ["album.singer_id = music__singer.id"]
    for q in questions:  # every rewritten gold query returns what the original did on its own database
        assert run_readonly(path, gold[q.id]) == run_readonly(dev.db_path(q.db_id), q.gold_sql)
    assert merged.summary()["databases"] == 2


def test_aliases_and_columns_of_other_tables_are_left_alone() -> None:
    sql = "SELECT T1.name, house.name FROM singer AS T1 JOIN house ON T1.id = house.id"
    out = rename_tables_in_sql(sql, {"singer": "opera__Singer"})
    assert out == "SELECT T1.name, house.name FROM opera__Singer AS T1 JOIN house ON T1.id = house.id"
    assert rename_tables_in_sql(sql, {}) == sql
