"""Schema-aware name repair and the hints a revision prompt gets."""

from __future__ import annotations

from sloflow.planners.sql.repair import name_hints, repair_names

PETS = {
    "Student": ["StuID", "LName", "Age", "city_code"],
    "Has_Pet": ["StuID", "PetID"],
    "Pets": ["PetID", "PetType", "pet_age", "weight"],
}
FLIGHTS = {"airports": ["City", "AirportCode", "AirportName"], "flights": ["Airline", "FlightNo", "SourceAirport", "DestAirport"]}


def test_case_and_underscore_misspellings_are_repaired() -> None:
    sql, fixes = repair_names("SELECT pet_type, max(weight) FROM pets GROUP BY pet_type", PETS)
    assert sql == "SELECT PetType, MAX(weight) FROM pets GROUP BY PetType"
    assert fixes == ["column pet_type -> PetType", "column pet_type -> PetType"]


def test_a_column_taken_from_the_wrong_table_moves_to_the_one_that_has_it() -> None:
    sql, fixes = repair_names(
        "SELECT DISTINCT A.Airline FROM airports AS A JOIN flights AS F ON A.AirportCode = F.DestAirport WHERE F.DestAirport = 'AHD'",
        FLIGHTS,
    )
    assert "SELECT DISTINCT F.Airline FROM" in sql
    assert fixes == ["column A.Airline -> F.Airline"]


def test_a_column_several_tables_are_joined_on_is_taken_from_the_first() -> None:
    sql, fixes = repair_names("SELECT count(DISTINCT StuID) FROM Student JOIN Has_Pet ON Student.StuID = Has_Pet.StuID", PETS)
    assert sql == "SELECT COUNT(DISTINCT Student.StuID) FROM Student JOIN Has_Pet ON Student.StuID = Has_Pet.StuID"
    assert fixes == ["column StuID -> Student.StuID"]
    # Held by both tables but not joined on: which one is meant is the model's call.
    cross = "SELECT StuID FROM Student JOIN Has_Pet ON Student.Age = Has_Pet.PetID"
    assert repair_names(cross, PETS) == (cross, [])


def test_join_conditions_and_ambiguous_names_are_left_alone() -> None:
    wrong_join = "SELECT T1.Age FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID"
    assert repair_names(wrong_join, PETS) == (wrong_join, [])
    ambiguous = "SELECT stu_id FROM Student JOIN Has_Pet ON Student.StuID = Has_Pet.StuID"
    assert repair_names(ambiguous, PETS) == (ambiguous, [])  # StuID is in both tables
    alias = "SELECT count(*) AS pet_count FROM Pets ORDER BY pet_count"
    assert repair_names(alias, PETS) == (alias, [])
    assert repair_names("SELEC nonsense", PETS) == ("SELEC nonsense", [])


def test_hints_say_where_a_missing_name_lives() -> None:
    hints = name_hints("SELECT T1.weight FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID ORDER BY T2.age", PETS)
    assert hints == ["age is a column of Student, not of Has_Pet"]
    hints = name_hints("SELECT T3.song_name FROM singer AS T1 JOIN song AS T3 ON T1.id = T3.id", {"singer": ["id", "Song_Name"]})
    assert hints[0] == "there is no table song; similar names: singer.Song_Name"
    assert name_hints("SELECT colour FROM Pets", PETS) == ["no table has a column colour"]
    assert name_hints("SELECT PetType FROM Pets", PETS) == []


CARS = {"cars_data": ["Id", "Horsepower", "Year"], "car_names": ["MakeId", "Model", "Make"], "model_list": ["ModelId", "Maker", "Model"]}
CAR_KEYS = ["cars_data.Id = car_names.MakeId", "car_names.Model = model_list.Model"]


def test_a_join_on_columns_the_tables_lack_takes_the_one_join_key_between_them() -> None:
    sql, fixes = repair_names(
        "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.MakeId = T2.Make ORDER BY T1.Horsepower", CARS, CAR_KEYS
    )
    assert sql == "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.Id = T2.MakeId ORDER BY T1.Horsepower"
    assert fixes == ["join T1.MakeId = T2.Make -> T1.Id = T2.MakeId"]
    runnable = "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.Id = T2.Make"  # wrong but runs: the model's call
    assert repair_names(runnable, CARS, CAR_KEYS) == (runnable, [])
    unlinked = "SELECT T1.Year FROM cars_data AS T1 JOIN model_list AS T2 ON T1.ModelId = T2.ModelId"  # no key between them
    assert repair_names(unlinked, CARS, CAR_KEYS)[1] == []


def test_hints_give_the_join_path_to_a_column_and_respect_sub_query_scope() -> None:
    hints = name_hints("SELECT Model FROM car_names WHERE Year > 1980", CARS, CAR_KEYS)
    assert hints == ["Year is a column of cars_data, not of car_names (join on cars_data.Id = car_names.MakeId)"]
    # The outer query cannot see the sub-query's table, so Id is missing there.
    hints = name_hints("SELECT Model FROM car_names WHERE Id = (SELECT Id FROM cars_data ORDER BY Horsepower LIMIT 1)", CARS, CAR_KEYS)
    assert hints == ["Id is a column of cars_data, not of car_names (join on cars_data.Id = car_names.MakeId)"]
