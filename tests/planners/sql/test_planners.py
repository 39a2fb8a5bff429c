"""The deterministic planner pieces: prompts, SQL extraction, selection, linking helpers."""

from __future__ import annotations

from sloflow.planners.sql.extract import extract_sql
from sloflow.planners.sql.linking import bridge_tables, linked_tables, match_values, shown_columns
from sloflow.planners.sql.prompts import SchemaTable, candidate_messages, link_json_schema, revision_messages, schema_ddl
from sloflow.planners.sql.select import Candidate, result_signature, select_candidate

SINGER = SchemaTable("singer", [("id", "INTEGER"), ("name", "TEXT"), ("home town", "TEXT")], ["id"], {"name": ["Joe", "Ann"]})
CONCERT = SchemaTable("concert", [("id", "INTEGER"), ("singer_id", "INTEGER")], ["id"])


# --- extraction ---------------------------------------------------------------------------


def test_extract_from_fenced_block_with_prose_around() -> None:
    text = "Sure! Here is the query:\n```sql\nSELECT name FROM singer WHERE age > 30;\n```\nIt lists names."
    assert extract_sql(text) == "SELECT name FROM singer WHERE age > 30"


def test_extract_without_fence_stops_at_blank_line_and_semicolon() -> None:
    assert extract_sql("SELECT count(*) FROM t\n\nThis counts rows.") == "SELECT count(*) FROM t"
    assert extract_sql("select a from t; drop table t") == "select a from t"


def test_extract_keeps_semicolons_inside_strings_and_drops_comment_lines() -> None:
    text = "```sql\n-- the names\nSELECT name FROM t WHERE note = 'a;b'\n```"
    assert extract_sql(text) == "SELECT name FROM t WHERE note = 'a;b'"


def test_extract_with_cte_and_other_fences() -> None:
    text = "```python\nprint(1)\n```\n```\nWITH x AS (SELECT 1 AS a) SELECT a FROM x\n```"
    assert extract_sql(text) == "WITH x AS (SELECT 1 AS a) SELECT a FROM x"


def test_extract_returns_none_when_there_is_no_query() -> None:
    assert extract_sql("I cannot answer that.") is None
    assert extract_sql("") is None


# --- prompts ------------------------------------------------------------------------------


def test_schema_ddl_quotes_odd_names_shows_values_and_only_relevant_join_keys() -> None:
    ddl = schema_ddl([SINGER, CONCERT], ["concert.singer_id = singer.id", "ticket.concert_id = concert.id"])
    assert 'CREATE TABLE singer (' in ddl and '"home town" TEXT' in ddl
    assert "'Joe', 'Ann'" in ddl and "PRIMARY KEY (id)" in ddl
    assert "concert.singer_id = singer.id" in ddl and "ticket" not in ddl


def test_candidates_and_revisions_of_a_question_share_everything_before_the_variant() -> None:
    schema = schema_ddl([SINGER, CONCERT])
    calls = [candidate_messages(schema, "How many singers?", v) for v in range(3)]
    calls.append(revision_messages(schema, "How many singers?", "SELECT x FROM singer", "no such column x"))
    # the system message (what calls share) is identical; the user message starts with the question
    assert {(c[0].role, c[0].content) for c in calls} == {("system", calls[0][0].content)}
    system, question = calls[0][0].content, "Question: How many singers?"
    assert system.index("CREATE TABLE") < system.index("Examples") and question not in system
    for c in calls:
        assert [m.role for m in c] == ["system", "user"] and c[1].content.startswith(question)
    assert "no such column x" in calls[-1][1].content and "SELECT x FROM singer" in calls[-1][1].content


def test_prompts_of_two_questions_on_one_schema_differ_only_after_the_question_starts() -> None:
    schema = schema_ddl([SINGER])
    a = candidate_messages(schema, "How many singers?")
    b = candidate_messages(schema, "List the names.")
    assert a[0] == b[0] and "CREATE TABLE singer" in a[0].content
    assert a[1].content != b[1].content


def test_link_schema_allows_only_known_tables() -> None:
    schema = link_json_schema(["singer", "concert"])
    assert schema["properties"]["tables"]["items"]["enum"] == ["singer", "concert"]


# --- selection ----------------------------------------------------------------------------


def test_largest_agreeing_group_wins_regardless_of_row_order() -> None:
    cands = [
        Candidate("SELECT a FROM t ORDER BY a", 0, rows=[[1], [2]]),
        Candidate("SELECT a FROM t", 1, rows=[[2], [1]]),
        Candidate("SELECT b FROM t", 2, rows=[[9]]),
    ]
    best, agreement = select_candidate(cands)
    assert agreement == 2 and best is not None and best.sql == "SELECT a FROM t"


def test_ties_go_to_the_cheapest_query_and_failures_never_win() -> None:
    cands = [
        Candidate("SELECT a FROM t JOIN u ON t.id = u.id", 0, rows=[[1]]),
        Candidate("SELECT b FROM t", 1, rows=[[2]]),
        Candidate("SELECT zzz FROM t", 2, error="no such column"),
        Candidate(None, 3, error="no SQL"),
    ]
    best, agreement = select_candidate(cands)
    assert best is not None and best.sql == "SELECT b FROM t" and agreement == 1


def test_an_empty_result_is_an_answer_like_any_other_and_settled_ones_need_no_revision() -> None:
    cands = [Candidate("SELECT a FROM t WHERE 0", i, rows=[]) for i in range(2)] + [Candidate("SELECT a FROM t", 2, rows=[[1]])]
    best, agreement = select_candidate(cands)
    assert best is not None and best.rows == [] and agreement == 2
    assert cands[0].needs_revision and not Candidate("SELECT 1", rows=[], settled=True).needs_revision


def test_nothing_ran_means_no_choice() -> None:
    assert select_candidate([Candidate("SELEC", 0, error="parse")]) == (None, 0)


def test_signature_treats_3_and_3_0_as_the_same_answer() -> None:
    assert result_signature([[3, "a"]]) == result_signature([[3.0, "a"]])
    assert result_signature([[3]]) != result_signature([["3x"]])


# --- linking ------------------------------------------------------------------------------


def test_question_words_match_stored_values_as_whole_words() -> None:
    values = {"singer.country": ["France", "United States", "Fr"], "singer.name": ["Joe Sharp", "the"]}
    found = match_values("How many singers from the United States or France?", values)
    assert found == {"singer.country": ["United States", "France"]}


def test_bridge_tables_adds_the_join_path_between_kept_tables() -> None:
    keys = ["singer_in_concert.singer_id = singer.id", "singer_in_concert.concert_id = concert.id"]
    kept = bridge_tables({"singer", "concert"}, ["singer", "concert", "singer_in_concert", "stadium"], keys)
    assert kept == {"singer", "concert", "singer_in_concert"}


def test_linked_tables_unions_model_choice_with_value_tables_in_database_order() -> None:
    tables = ["concert", "singer", "stadium"]
    got = linked_tables(tables, ["stadium"], ["singer.country"], ["concert"], [])
    assert got == ["singer", "stadium"]
    assert linked_tables(tables, [], [], ["concert"], []) == ["concert"]


def test_answer_sentence_reads_a_single_value_and_summarises_many_rows() -> None:
    from sloflow.planners.sql.prompts import answer_sentence

    assert answer_sentence(["count(*)"], [[6]], False) == "The answer is 6."
    many = answer_sentence(["name"], [[f"n{i}"] for i in range(8)], True)
    assert many.startswith("8 row(s)") and "n0" in many and "3 more" in many and "row limit" in many
    assert answer_sentence([], [], False) == "The query returned no rows."


def test_a_filtered_table_keeps_its_keys_its_matched_values_and_its_best_searched_columns() -> None:
    columns = ["id", "name", "country", "age", "band_id", "notes"]
    joins = ["singer.band_id = band.id", "concert.singer_id = singer.id"]
    # keys: id (primary), band_id (a join key of its own); singer_id is concert's side, not this table's
    shown = shown_columns("singer", columns, ["id"], joins, ["singer.country", "band.country"], ["age", "notes", "name"], limit=1)
    assert shown == ["id", "country", "age", "band_id"]  # in table order; the second and third searched columns are over the limit
    assert shown_columns("Singer", columns, [], [], [], ["NAME"], limit=5) == ["name"]  # names compared case-insensitively
    assert shown_columns("singer", columns, [], [], [], ["name", "age"], limit=0) == []
