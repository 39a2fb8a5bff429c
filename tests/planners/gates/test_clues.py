"""Reading and vetting clues: a clue that names its answer is blanked or refused, and the checker's
guesses and the solver's answers are read whatever the model's layout."""

from __future__ import annotations

import re

from sloflow.planners.gates.prompts import (
    CHECK_GUESSES, clue_length, clue_messages, read_answers, read_candidates, read_guesses, read_solution, solve_by_vote, solve_messages, vote,
)
from sloflow.planners.gates.puzzle import BLANK, blank_out, domains, gives_away


def test_a_clue_naming_its_answer_in_any_form_gives_it_away() -> None:
    assert gives_away("Vein carries blood to the heart", "vein")
    assert gives_away("Veins carry blood to the heart", "vein")  # a plural
    assert gives_away("A nocturnal piece for piano", "nocturne")  # a form sharing its first five letters
    assert gives_away("Sun-flower of the prairie", "sunflower") and gives_away("A sun flower", "sunflower")  # run together
    assert not gives_away("Carries blood back to the heart", "vein")


def test_a_short_answer_counts_only_as_a_whole_word() -> None:
    assert not gives_away("Egyptian sun god, worshipped for rain", "ra")  # 'ra' inside 'rain' names nothing
    assert gives_away("Ra, the Egyptian sun god", "ra")


def test_blanking_removes_every_word_that_names_the_answer_and_keeps_the_rest() -> None:
    clue = "Balder's brother Balder, Norse god of light"
    blanked = blank_out(clue, "balder")
    assert not gives_away(blanked, "balder") and blanked.count(BLANK) == 2 and blanked.endswith("Norse god of light")
    assert blank_out("Carries blood back to the heart", "vein") == "Carries blood back to the heart"


def test_no_term_of_the_data_files_gives_itself_away_once_blanked() -> None:
    for domain, terms in domains().items():
        for term in terms:
            blanked = blank_out(f"{term.title()}: a thing of {domain}, {term}s and all", term)
            assert not gives_away(blanked, term), (domain, term, blanked)


def test_guesses_are_whole_answers_in_order_and_at_most_the_limit() -> None:
    assert read_guesses("Chamber music, Nocturne") == ["chambermusic", "nocturne"]
    assert read_guesses("1. Artery\n2. Vein\n3. Aorta\n4. Capillary") == ["artery", "vein", "aorta"]
    assert read_guesses("Answers: Hel or Odin; Loki.") == ["hel", "odin", "loki"]
    assert len(read_guesses(", ".join(["x"] * 9))) == CHECK_GUESSES and read_guesses("") == []


def test_the_writer_is_asked_last_for_this_term_after_a_worked_example_from_outside_the_data() -> None:
    messages = clue_messages("vein", "anatomy", "plain")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"] and "Answer: vein." in messages[-1]["content"]
    example = re.search(r"Answer: (\w+)\.", messages[1]["content"]).group(1)
    assert example not in {t for terms in domains().values() for t in terms} and not gives_away(messages[2]["content"], example)


def test_a_solution_is_the_initials_of_all_its_answers_else_its_word_line() -> None:
    reply = "1. professions: carpenter\n2. (mythology) Achilles\n3. **liver**\n4. Marathon (8)\nWORD: marathon"
    assert read_answers(reply) == {1: "carpenter", 2: "Achilles", 3: "liver", 4: "Marathon"}
    assert read_solution(reply, 4) == "calm"  # the small model spells its answers' initials wrong, not the answers
    assert read_solution("1. kettle\nWORD: kit", 3) == "kit" and read_solution("no answer", 4) == ""
    assert read_candidates("1. Kettle, teapot; boiler\n2. (buildings) Igloo or hut\n3. ") == {1: ["kettle", "teapot", "boiler"], 2: ["igloo", "hut"]}
    assert clue_length("It spins on its point (3)") == 3 and clue_length("no count") is None


def test_the_solver_sees_a_worked_gate_from_outside_the_data_before_the_gate() -> None:
    messages = solve_messages([("anatomy", "It filters the blood (5)"), ("music", "Night piece (8)")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"] and "It filters the blood" in messages[-1]["content"]
    shown = read_candidates(messages[2]["content"])
    assert not {a for answers in shown.values() for a in answers} & {t for terms in domains().values() for t in terms}
    assert vote([messages[2]["content"]], [len(shown[i][0]) for i in sorted(shown)]) == "".join(shown[i][0][0] for i in sorted(shown))


def test_a_vote_ranks_each_clues_answers_of_its_length_and_spells_a_listed_word() -> None:
    lamp = [4, 5, 4, 5]  # 'lamp' is a hidden word: lion, apple, mars, piano
    assert vote(["1. tiger, lion\n2. apple\n3. mars\n4. piano"], lamp) == "lamp"  # 'tiger' has 5 letters, not 4
    assert vote(["1. lion\n2. apple\n3. kiwi, mars\n4. piano"], lamp) == "lamp"  # 'lakp' is no listed word; 'mars' makes one
    greedy, sample = "1. kettle\n2. hut\n3. top", "1. kettle\n2. inn\n3. top"  # 3 letters: no listed word, the initials stand
    assert vote([greedy, sample], [6, 3, 3]) == "kht"  # a tie keeps the greedy reply's order ...
    assert vote([greedy, sample, sample], [6, 3, 3]) == "kit"  # ... and more replies outvote it
    assert vote(["1. kettle\n2. hut\n3. top"], [6, 3, 3]) == "kht"  # no listed word of 3 letters: the first answers' initials
    assert vote(["WORD: lamp", "1. lion\nWORD: calm", "WORD: lamp"], lamp) == "lamp"  # a clue nobody answered: the commonest word line
    assert vote([], lamp) == "" and vote(["no idea"], lamp) == ""


async def test_a_client_votes_over_as_many_replies_as_the_difficulty_asks_the_first_greedy() -> None:
    from sloflow.planners.gates.puzzle import SOLVE_SAMPLES

    asked: list[dict] = []

    async def reply(messages: list, settings: dict) -> tuple[str, int]:
        asked.append(settings)
        return ("1. kettle\n2. hut\n3. top" if settings["temperature"] == 0 else "1. kettle\n2. igloo\n3. top"), 7

    clues = [("household objects", "It whistles (6)"), ("buildings", "A snow house (5)"), ("toys", "It spins (3)")]
    assert await solve_by_vote(reply, clues, 1) == ("kht", 7) and asked == [{"temperature": 0.0}]
    asked.clear()
    assert await solve_by_vote(reply, clues, 2) == ("kit", 7 * SOLVE_SAMPLES[1])
    assert len({a["seed"] for a in asked[1:]}) == len(asked) - 1 == SOLVE_SAMPLES[1] - 1  # samples, each its own seed
