"""Reading and writing roster files as Excel writes them (pure: no database)."""

from __future__ import annotations

import io

import pytest

from mailer.errors import InvalidInput
from mailer.rostercsv import RosterRow, read_roster, write_roster

LISTS = {"advocate", "western-city", "city-clerks", "legislative-alerts"}
HEADER = "email,name,title,role,city,county,division,caucuses,lists"


def rows_of(data: bytes) -> dict[str, RosterRow]:
    return {r.email: r for r in read_roster(data, known_lists=LISTS).rows}


def test_excel_csv_utf8_with_bom_and_crlf_is_read() -> None:
    text = f"{HEADER}\r\nJosé@Example.org,José Núñez,Clerk,City Clerk,San José,Santa Clara,,,\r\n"
    got = read_roster(b"\xef\xbb\xbf" + text.encode(), known_lists=LISTS)
    assert got.encoding == "utf-8-sig"
    assert [(r.email, r.name, r.city) for r in got.rows] == [
        ("josé@example.org", "José Núñez", "San José")]


def test_windows_1252_file_is_read_when_not_utf8() -> None:
    text = f"{HEADER}\r\nana@example.org,Ana Muñoz,Clerk – II,City Clerk,Sacramento,,,,\r\n"
    got = read_roster(text.encode("cp1252"), known_lists=LISTS)
    assert got.encoding == "cp1252"
    assert got.rows[0].name == "Ana Muñoz"
    assert got.rows[0].title == "Clerk – II"


def test_semicolon_and_tab_delimiters_are_sniffed_from_the_header() -> None:
    semi = "E-mail;Full Name;Department;City\r\nbob@example.org;Bob Lee;Mayor;Fresno\r\n"
    tab = "Email Address\tName\tRole/Department\r\ncarol@example.org\tCarol\tFire Chief\r\n"
    assert rows_of(semi.encode())["bob@example.org"].role == "Mayor"
    assert read_roster(semi.encode()).delimiter == ";"
    utf16 = read_roster(tab.encode("utf-16"), known_lists=LISTS)
    assert (utf16.encoding, utf16.rows[0].role) == ("utf-16", "Fire Chief")


def test_bad_rows_are_reported_by_row_number_and_column() -> None:
    text = (f"{HEADER}\n"
            "ok@example.org,Ok,,,,,,,\n"
            "bob@,Bob,,,,,,,\n"
            ",Nobody,,,,,,,\n"
            "dan@example.org,Dan,,,,,,,no-such-list; advocate\n"
            f"eve@example.org,{'E' * 201},,,,,,,\n")
    got = read_roster(text.encode(), known_lists=LISTS)
    assert [r.email for r in got.rows] == ["ok@example.org"]
    assert got.bad_rows == (3, 4, 5, 6)
    messages = [str(e) for e in got.errors]
    assert messages[0].startswith("row 3, email: 'bob@' is not a valid email address")
    assert messages[1] == "row 4, email: is empty; every row needs an address"
    assert messages[2] == ("row 5, lists: no list or newsletter named 'no-such-list' "
                           "(see: citymail lists show)")
    assert messages[3] == "row 6, name: is longer than 200 characters"


def test_unquoted_delimiter_in_a_cell_is_an_error_not_a_silent_loss() -> None:
    text = "email;name;lists\r\nann@example.org;Ann;advocate;city-clerks\r\n"
    got = read_roster(text.encode(), known_lists=LISTS)
    assert got.rows == ()
    assert "has 4 cells but the header names 3" in str(got.errors[0])


def test_duplicate_addresses_are_merged_and_reported() -> None:
    text = (f"{HEADER}\n"
            "ann@example.org,Ann,Clerk,City Clerk,Davis,,,Women's Caucus,\n"
            "other@example.org,Other,,,,,,,\n"
            "ANN@example.org,Ann Smith,,,,,,Latino Caucus,legislative-alerts\n")
    got = read_roster(text.encode(), known_lists=LISTS)
    ann = {r.email: r for r in got.rows}["ann@example.org"]
    assert (ann.row, ann.name, ann.title, ann.role) == (2, "Ann Smith", "Clerk", "City Clerk")
    assert ann.caucuses == ("Women's Caucus", "Latino Caucus")
    assert ann.lists == ("legislative-alerts",)
    assert [str(d) for d in got.duplicates] == [
        "row 4 repeats ann@example.org from row 2: merged (its name replaced the earlier value)"]


def test_one_county_per_city_within_a_file() -> None:
    text = (f"{HEADER}\n"
            "a@example.org,A,,,Anaheim,Orange,,,\n"
            "b@example.org,B,,,Anaheim,Los Angeles,,,\n")
    got = read_roster(text.encode(), known_lists=LISTS)
    assert [str(e) for e in got.errors] == [
        "row 3, county: 'Los Angeles' differs from 'Orange' given for Anaheim on row 2"]


def test_files_without_an_email_column_or_empty_are_refused_whole() -> None:
    with pytest.raises(InvalidInput, match="no email column"):
        read_roster(b"name,city\nAnn,Davis\n")
    with pytest.raises(InvalidInput, match="empty"):
        read_roster(b"\xef\xbb\xbf\r\n")
    with pytest.raises(InvalidInput, match="neither UTF-8 nor Windows-1252"):
        read_roster(b"email\n\x81\x8d@example.org\n")


def test_blank_rows_and_unknown_columns_are_skipped_and_named() -> None:
    text = "email,Phone,name\r\n,,\r\nann@example.org,555-1234,Ann\r\n , ,\r\n\r\n"
    got = read_roster(text.encode())
    assert (got.records, got.ignored_columns, got.errors) == (1, ("Phone",), ())
    assert [r.email for r in got.rows] == ["ann@example.org"]


def test_written_roster_reads_back_identically_even_with_formula_like_cells() -> None:
    rows = [RosterRow(0, "ann@example.org", "=HYPERLINK(\"x\")", "Clerk, II", "City Clerk",
                      "Davis", "Yolo", "Sacramento Valley", ("Women's Caucus",),
                      ("advocate", "city-clerks")),
            RosterRow(0, "bob@example.org", "Bob \"B\" Lee", "", "", "", "", "", (), ())]
    out = io.StringIO()
    assert write_roster(rows, out) == 2
    written = out.getvalue()
    assert "'=HYPERLINK" in written  # Excel shows it as text instead of running it
    back = read_roster(written.encode(), known_lists=LISTS)
    assert [r.__dict__ | {"row": 0} for r in back.rows] == [r.__dict__ for r in rows]
