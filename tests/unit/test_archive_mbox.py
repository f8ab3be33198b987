"""Moving an archive in and out: import-archive (plain, Mailman 2 and 3 mbox files),
export-mbox, and the archive verb, through the real command."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import mailbox
import random
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_archive_support import CLERK, ArchiveWorld, build_template, make_world, sign_in

from citymail.cli import main
from listservs.archive_mbox import mbox_message, read_mbox
from mailer.db import reading
from mailer.models import Outbound, Post

pytestmark = pytest.mark.filterwarnings("ignore:The Result.tuples:DeprecationWarning")

# A Mailman 2 LIST.mbox: mboxo quoting, an unquoted "From " line inside a body (no date on
# it, so it starts no message), a message with no Date (its From_ line dates it), a reply,
# and one message that is not a message at all.
MAILMAN2 = b"""\
From alice@example.org  Mon Jan  6 09:00:00 2025
From: Alice Clerk <alice@example.org>
Subject: [Clerks] Minutes template
Date: Mon, 06 Jan 2025 09:00:00 -0800
Message-ID: <tmpl@example.org>

Does anyone have a minutes template for special meetings?
>From the last meeting: nobody did.

From here on we use the county's.

From bob@example.org  Tue Jan  7 10:30:00 2025
From: Bob <bob@example.org>
Subject: Re: [Clerks] Minutes template
Message-ID: <re-tmpl@example.org>
In-Reply-To: <tmpl@example.org>
References: <tmpl@example.org>

Ours is attached to the shared drive.

From broken@example.org  Wed Jan  8 11:00:00 2025
this line is not a header field and there is no header block

From carol@example.org  Thu Feb  6 08:00:00 2025
From: carol@example.org
Subject: Public records act request fees
Date: Thu, 06 Feb 2025 08:00:00 -0800
Message-ID: <fees@example.org>
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

What do you charge per page for a public records act request? Caf=E9 rules.
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("archive-template"))


@pytest.fixture
def world(tmp_path: Path, template: Path) -> Iterator[ArchiveWorld]:
    yield from make_world(tmp_path, template)


@pytest.fixture
def run(world: ArchiveWorld, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    """``citymail ARGS…`` in this process; returns (exit code, stdout, stderr)."""
    env = {"CITYMAIL_DATABASE_URL": world.settings.database_url,
           "CITYMAIL_VAR_DIR": str(world.settings.var_dir),
           "CITYMAIL_SECRET_KEY": world.settings.secret_keys[0],
           "CITYMAIL_BASE_URL": world.settings.base_url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_mbox_quoting_round_trips_exactly() -> None:
    raws = [b"From: a@example.org\r\nSubject: x\r\n\r\nFrom here\r\n>From there\r\n\r\n",
            b"From: b@example.org\r\n\r\nlast line without an end"]
    when = dt.datetime(2025, 1, 6, 9, tzinfo=dt.UTC)
    data = b"".join(mbox_message(r, sender="a@example.org", when=when) for r in raws)
    assert b"\n>From here\n>>From there\n" in data  # mboxrd
    back = list(read_mbox(data))
    assert [m.raw for m in back] == [raws[0], raws[1] + b"\r\n"]
    assert all(m.envelope_date == when for m in back)
    takeout = b"From 1793@xxx Mon Jan 06 09:00:00 +0000 2025\nSubject: a\n\nb\n"
    assert [m.envelope_date for m in read_mbox(takeout)] == [when]
    with pytest.raises(ValueError, match="not an mbox"):
        list(read_mbox(b"Subject: hello\n\nnot an mbox\n"))


def test_import_keeps_dates_and_threads_sends_nothing_and_is_idempotent(
        world: ArchiveWorld, run, tmp_path: Path) -> None:
    path = tmp_path / "clerks.mbox"
    path.write_bytes(MAILMAN2)
    code, out, _ = run("lists", "import-archive", "city-clerks", str(path))
    assert code == 0, out
    assert "imported 3" in out and "bad 1" in out and "message 3 (line 21): no header fields" in out
    code, out, _ = run("lists", "import-archive", "city-clerks", str(path), "--json")
    report = json.loads(out)
    assert (report["imported"], report["already"], len(report["bad"])) == (0, 3, 1)
    with reading(world.engine) as conn:
        assert conn.scalar(select(func.count()).select_from(Post)) == 3
        assert conn.scalar(select(func.count()).select_from(Outbound)) == 0  # no mail
    code, out, _ = run("lists", "archive", "city-clerks", "--json")
    assert [(m["month"], m["posts"]) for m in json.loads(out)] == [("2025-02", 1),
                                                                    ("2025-01", 2)]
    code, out, _ = run("lists", "archive", "city-clerks", "--month", "2025-01", "--json")
    posts = json.loads(out)
    assert [p["subject"] for p in posts] == ["[Clerks] Minutes template",
                                             "Re: [Clerks] Minutes template"]
    assert posts[0]["date"].startswith("2025-01-06T17:00")  # the Date header, in UTC
    assert posts[1]["date"].startswith("2025-01-07T10:30")  # no Date: the From_ line's
    code, out, _ = run("lists", "archive", "city-clerks", "--search", '"records act"',
                       "--json")
    assert [h["subject"] for h in json.loads(out)] == ["Public records act request fees"]
    assert "Café" in json.loads(out)[0]["snippet"]
    with world.client() as http:
        sign_in(http, world.settings, CLERK)
        threads = http.get("/lists/city-clerks/archive/2025-01/thread").text
        assert threads.index("Minutes template") < threads.index('class="replies"') < (
            threads.index("Re: [Clerks] Minutes template"))
        page = http.get(f"/lists/city-clerks/archive/msg/{posts[0]['id']}").text
        # Mailman's ">From" quoting is taken off; the unquoted line stayed in its message.
        assert "\nFrom the last meeting: nobody did." in page and "From here on we" in page


def test_mailman3_gzip_export_and_pipermail_text_are_read(world: ArchiveWorld, run,
                                                          tmp_path: Path) -> None:
    hyperkitty = (b"From MAILER-DAEMON Fri Mar  7 12:00:00 2025\n"
                  b"From: Dana <dana@example.org>\nSubject: Zoning hearing notice\n"
                  b"Date: Fri, 07 Mar 2025 12:00:00 +0000\nMessage-ID: <zone@example.org>\n\n"
                  b"Notice goes out ten days before.\n\n")
    pipermail = (b"From erin at example.org  Sat Mar  8 12:00:00 2025\n"
                 b"From: erin at example.org (Erin)\nDate: Sat, 08 Mar 2025 12:00:00 +0000\n"
                 b"Subject: [Clerks] Seal custody\nMessage-ID: <seal@example.org>\n\n"
                 b"Who keeps the city seal?\n")
    (tmp_path / "export.mbox.gz").write_bytes(gzip.compress(hyperkitty))
    (tmp_path / "2025-March.txt").write_bytes(pipermail)
    for name in ("export.mbox.gz", "2025-March.txt"):
        code, out, _ = run("lists", "import-archive", "city-clerks", str(tmp_path / name))
        assert code == 0 and "imported 1" in out, out
    code, out, _ = run("lists", "archive", "city-clerks", "--month", "2025-03", "--json")
    assert [(p["from"], p["subject"]) for p in json.loads(out)] == [
        ("dana@example.org", "Zoning hearing notice"), ("erin@example.org",
                                                        "[Clerks] Seal custody")]
    (tmp_path / "junk.mbox").write_bytes(b"\x00\x01 not mail at all")
    code, _, err = run("lists", "import-archive", "city-clerks", str(tmp_path / "junk.mbox"))
    assert code == 2 and "not an mbox file" in err and "Traceback" not in err


def test_export_mbox_round_trips_through_mailbox(world: ArchiveWorld, run,
                                                 tmp_path: Path) -> None:
    bodies = ["First post.\nFrom the county: nothing.", "Second post, >From quoted.",
              "Third post."]
    for i, body in enumerate(bodies):
        world.post(f"Post {i}", body.replace("\n", "\r\n"),
                   date=f"Tue, 0{4 + i} Mar 2025 10:00:00 -0800")
    out_file = tmp_path / "out.mbox"
    code, _, err = run("lists", "export-mbox", "city-clerks", "--month", "2025-03",
                       "-o", str(out_file))
    assert code == 0 and "wrote 3 messages" in err
    box = mailbox.mbox(str(out_file), create=False)
    try:
        got = sorted(box, key=lambda m: m["Subject"])
    finally:
        box.close()
    assert [m["Subject"] for m in got] == ["Post 0", "Post 1", "Post 2"]
    assert got[2].get_payload().rstrip("\n") == "Third post."
    # mailbox reads mboxrd without taking the quoting off; citymail's reader does.
    mine = [message_from_bytes(m.raw, policy=policy.default) for m in
            read_mbox(out_file.read_bytes())]
    assert [m.get_content().replace("\r\n", "\n").rstrip("\n") for m in mine] == bodies
    code, out, _ = run("lists", "import-archive", "fire-chiefs", str(out_file))
    assert "imported 3" in out
    with world.client() as http:  # the web download is the same file
        sign_in(http, world.settings, CLERK)
        web = http.get("/lists/city-clerks/archive/2025-03.mbox")
        assert web.headers["content-type"].startswith("application/mbox")
        assert web.headers["content-disposition"].startswith("attachment")
        assert web.content == out_file.read_bytes()


def test_an_archive_is_read_as_a_stream_not_all_at_once() -> None:
    # Moving day brings archives of hundreds of megabytes: the first message must come out
    # long before the file has been read to its end, compressed or not.
    import io

    when = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    rng = random.Random(7)  # bodies that do not compress to nothing
    data = b"".join(mbox_message(b"Subject: one\r\n\r\n" + b"".join(
        rng.randbytes(30).hex().encode() + b"\r\n" for _ in range(60)),
        sender="a@example.org", when=when) for _ in range(400))

    class Counting(io.BytesIO):
        def __init__(self, payload: bytes) -> None:
            super().__init__(payload)
            self.served = 0

        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            self.served += len(chunk)
            return chunk

    for payload in (data, gzip.compress(data)):
        stream = Counting(payload)
        messages = read_mbox(stream)
        first = next(messages)
        assert first.raw.startswith(b"Subject: one\r\n") and first.envelope_date == when
        assert stream.served < len(payload) / 4
        assert sum(1 for _ in messages) == 399
