"""Between two sources doing the same job, the step takes the one whose name the question uses."""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.plan import parse_plan
from sloflow.planners.plans.synonyms import prefer_named_sources


def _source(name: str, required: list[str], optional: tuple[str, ...] = (), output: tuple[str, ...] = ("lyrics",)) -> PlanSource:
    properties = {n: {"type": "string"} for n in (*required, *optional)}
    return PlanSource(name, "the lyrics of a song", {"type": "object", "properties": properties, "required": required}, {"type": "object", "properties": {o: {"type": "string"} for o in output}})


SOURCES = [
    _source("get_song_lyrics", ["artist", "title"]),
    _source("find_song_lyrics", ["title", "artist"]),
    _source("find_lyrics_by_album", ["album"]),  # same output, other arguments: another job
    _source("find_song_chords", ["title", "artist"], output=("chords",)),  # same arguments, other output
]


def _plan(name: str) -> object:
    return parse_plan([{"label": "var1", "name": name, "arguments": {"artist": "Queen", "title": "Bohemian Rhapsody"}}, {"name": "var_result", "arguments": {"x": "$var1$"}}])


def test_the_twin_the_question_names_replaces_the_planners_choice() -> None:
    tidied, changes = prefer_named_sources(_plan("get_song_lyrics"), "Then, find the lyrics of the song 'Bohemian Rhapsody' by Queen.", SOURCES)
    assert tidied.calls[0].name == "find_song_lyrics" and tidied.calls[0].arguments == {"artist": "Queen", "title": "Bohemian Rhapsody"}
    assert len(changes) == 1 and "get_song_lyrics became find_song_lyrics" in changes[0]


def test_a_tie_or_a_source_without_a_twin_keeps_the_planners_choice() -> None:
    plan = _plan("get_song_lyrics")
    assert prefer_named_sources(plan, "What are the lyrics of Bohemian Rhapsody by Queen?", SOURCES) == (plan, [])
    chords = _plan("find_song_chords")
    assert prefer_named_sources(chords, "get the song lyrics and chords", SOURCES) == (chords, [])
