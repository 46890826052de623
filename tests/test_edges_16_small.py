"""Issue 16, item 6: the small things that cost a newcomer time, without a devnet. Each command runs as a person
runs it: the CLI in its own process, on a fresh ATTEST_HOME."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from attest.cli import cli as attest_cli
from attest.cli.config import CONFIG_TABLES_GROUP
from attest.cli.output import short
from attest.flow.export import COLUMNS, render
from tests.support.ports import free_port
from tests.test_edges_16_failures import KB_DOCS, QUESTION, cli, one_line_failure


@pytest.fixture
def home(tmp_path: Path) -> Path:
    made = tmp_path / "home"
    made.mkdir()
    return made


def add_kb(home: Path) -> None:
    added = cli("kb", "add", str(KB_DOCS), home=home)
    assert added.returncode == 0, added.stderr


def test_ask_on_an_empty_kb_refuses_before_starting_a_devnet(home: Path) -> None:
    port = free_port()
    result = cli("ask", QUESTION, home=home, ATTEST_DEVNET_PORT=str(port))
    one_line_failure(result, "knowledge base is empty", "attest kb add")
    assert not (home / "devnet" / "node.json").exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nothing listens there: no devnet was started


def test_kb_add_skips_a_pipe_named_like_a_document(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_bytes((KB_DOCS / "guide.md").read_bytes())
    os.mkfifo(folder / "pipe.md")  # reading it would block for ever: nobody writes to it
    added = cli("kb", "add", str(folder), home=home)
    assert added.returncode == 0, added.stderr
    assert "1 document(s): 1 added" in added.stdout
    one_line_failure(cli("kb", "add", str(folder / "pipe.md"), home=home), "not a regular file")


def test_kb_add_skip_bad_names_and_skips_empty_and_binary_files(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_bytes((KB_DOCS / "guide.md").read_bytes())
    (folder / "empty.md").write_bytes(b"")
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 4)
    refused = cli("kb", "add", str(folder), home=home)
    one_line_failure(refused, "--skip-bad", "nothing was added")
    assert "empty" in cli("kb", "list", home=home).stdout  # "The knowledge base is empty; ..."
    added = cli("kb", "add", "--skip-bad", str(folder), home=home)
    assert added.returncode == 0, added.stderr
    assert "skipped docs/empty.md: " in added.stderr and "skipped docs/blob.txt: " in added.stderr
    assert "1 document(s): 1 added" in added.stdout
    assert [d["source"] for d in json.loads(cli("kb", "list", "--json", home=home).stdout)] == ["docs/guide.md"]


def test_kb_remove_accepts_the_absolute_path_that_was_added(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("guide.md", "notes.txt"):
        (folder / name).write_bytes((KB_DOCS / name).read_bytes())
    assert cli("kb", "add", str(folder), home=home).returncode == 0
    removed = cli("kb", "remove", str(folder / "guide.md"), home=home)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "removed docs/guide.md"
    assert [d["source"] for d in json.loads(cli("kb", "list", "--json", home=home).stdout)] == ["docs/notes.txt"]
    one_line_failure(cli("kb", "remove", str(tmp_path / "elsewhere.md"), home=home), "kb list")


def test_ask_reads_the_question_from_stdin_or_a_file(home: Path, tmp_path: Path) -> None:
    add_kb(home)
    piped = cli("ask", "-", "--no-assert", "--json", home=home, stdin=QUESTION + "\n")
    assert piped.returncode == 0, piped.stderr
    question = tmp_path / "question.txt"
    question.write_text(QUESTION + "\n")
    from_file = cli("ask", "--query-file", str(question), "--no-assert", "--json", home=home)
    assert from_file.returncode == 0, from_file.stderr
    listed = json.loads(cli("list", "--json", home=home).stdout)
    assert [row["query"] for row in listed] == [QUESTION, QUESTION]
    one_line_failure(cli("ask", "--no-assert", home=home), "attest ask -", "--query-file")


def test_ask_help_names_commands_and_ranges_that_exist(home: Path) -> None:
    text = cli("ask", "--help", home=home).stdout
    assert "networks list" not in text and "`attest networks`" in text
    assert cli("networks", home=home).returncode == 0
    assert "1-50" in " ".join(text.split())
    refused = cli("ask", QUESTION, "-k", "0", "--no-assert", home=home)
    assert refused.returncode == 2 and "1<=x<=50" in refused.stderr


def test_export_dash_writes_stdout_and_tsv_keeps_newlines(home: Path, tmp_path: Path) -> None:
    add_kb(home)
    answer = "First line.\nSecond\tline with a tab and a back\\slash."
    asked = cli("ask", QUESTION, "--answer", answer, "--no-assert", home=home)
    assert asked.returncode == 0, asked.stderr
    work = tmp_path / "work"
    work.mkdir()
    exported = cli("export", "--format", "tsv", "-o", "-", home=home, cwd=str(work))
    assert exported.returncode == 0, exported.stderr
    assert not (work / "-").exists() and list(work.iterdir()) == []
    header, row = exported.stdout.rstrip("\n").split("\n")
    cells = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    unescaped = cells["answer"].replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")
    assert unescaped == answer


def test_tsv_cells_escape_what_would_split_them() -> None:
    row = dict.fromkeys(COLUMNS) | {"id": 1, "query": "a\tb\r\nc\\", "context": [{"text": "x\ny"}]}
    lines = render([row], "tsv").splitlines()
    assert len(lines) == 2 and lines[1].count("\t") == len(COLUMNS) - 1
    assert "a\\tb\\r\\nc\\\\" in lines[1] and '"text": "x\\\\ny"' in lines[1]


def test_verify_takes_a_ledger_number(home: Path) -> None:
    add_kb(home)
    asked = json.loads(cli("ask", QUESTION, "--no-assert", "--json", home=home).stdout)
    verified = cli("verify", "1", home=home)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{asked['record_cid']}: all checks passed" in verified.stdout
    one_line_failure(cli("verify", "7", home=home), "no attestation #7")


def test_status_and_list_escape_terminal_controls_from_a_query(home: Path) -> None:
    add_kb(home)
    hostile = "How often\a should the \u202ewick\x1b[2J be trimmed?"
    assert cli("ask", hostile, "--no-assert", home=home).returncode == 0
    for command in (("list",), ("status", "1")):
        shown = cli(*command, home=home)
        assert shown.returncode == 0, shown.stderr
        assert not {"\a", "\u202e", "\x1b"} & set(shown.stdout), shown.stdout
        assert "\\x07" in shown.stdout and "\\u202e" in shown.stdout
    assert short("a\u2066b\x00", 20) == "a\\u2066b\\x00"


def test_a_disputer_flag_value_error_names_the_flag_not_the_config_file(home: Path) -> None:
    for flag, value in (("--metrics-port", "99999"), ("--poll-interval", "-1")):
        error = one_line_failure(cli("run", "--once", flag, value, home=home, tool="disputer"), flag)
        assert "config.toml" not in error and "[disputer] table" not in error


def test_devnet_up_help_names_the_port_setting(home: Path) -> None:
    text = " ".join(cli("devnet", "up", "--help", home=home).stdout.split())
    assert "ATTEST_DEVNET_PORT" in text and "last `up`" in text


@pytest.fixture
def config_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry points of pyproject.toml as an install writes them, where the environment was installed before
    the `attest.config_tables` group existed (an editable install reads its entry points at install time)."""
    from importlib.metadata import entry_points

    if any(e.name == "disputer" for e in entry_points(group=CONFIG_TABLES_GROUP)):
        return
    import tomllib

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    group = declared["project"]["entry-points"][CONFIG_TABLES_GROUP]
    info = tmp_path / "site" / "llm_attest_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm-attest-entry-points\nVersion: 0\n")
    lines = [f"[{CONFIG_TABLES_GROUP}]", *(f"{name} = {target}" for name, target in group.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def test_config_show_prints_the_disputer_defaults(
    home: Path, config_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTEST_HOME", str(home))
    (home / "config.toml").write_text("[disputer]\nthreshold = 0.4\n")
    shown = CliRunner().invoke(attest_cli, ["config", "show", "--json"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    table = json.loads(shown.output)["config"]["disputer"]
    assert table["threshold"] == 0.4  # the file's value
    assert table["safety_margin_s"] == 600 and table["samples"] == 3 and table["attempts"] == 3  # the defaults
    text = CliRunner().invoke(attest_cli, ["config", "show"], catch_exceptions=False).output
    assert "[disputer]\nthreshold = 0.4\nsafety_margin_s = 600" in text
