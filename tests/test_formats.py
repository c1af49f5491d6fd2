"""CI output formats, each read back with the consuming format's own rules.

SARIF against the official 2.1.0 schema (a copy in tests/data), JUnit with an XML parser,
GitHub annotations with the workflow-command grammar, GitLab Code Quality JSON with the
fields GitLab requires.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from trainlint.cli import main
from trainlint.registry import all_rules
from trainlint.report import FORMATS
from trainlint.report.github import escape_data, escape_property

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"

TRAIN = """\
import torch
BATCH_SIZE = 16


class Warm:
    def __init__(self, steps=[]):
        self.iters = -1

    def step(self):
        self.iters = 1
        return self.iters


def loss(x, target):
    return x.view(16, 1) + x.view(16, 1)
"""
FIXED_SAFE = TRAIN.replace("x.view(16, 1)", "x.view(-1, 1)")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLINT_OUTPUT_FORMAT", raising=False)
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def output(fmt: str, *paths: str) -> str:
    result = run("--output-format", fmt, *(paths or ("train.py",)))
    assert result.exit_code in (1, 2), result.output
    return result.output


# ----------------------------------------------------------------------------- SARIF


def sarif_validator():
    # Not a skip: the copy of the official schema is part of the repository.
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_sarif_schema_copy_is_the_official_one():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    jsonschema.Draft4Validator.check_schema(schema)


def _apply_sarif_fixes(text: str, results: list[dict]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(row, col):
        return starts[row - 1] + col - 1

    edits = []
    for r in results:
        for fix in r.get("fixes", []):
            for change in fix["artifactChanges"]:
                for rep in change["replacements"]:
                    reg = rep["deletedRegion"]
                    edits.append(
                        (
                            offset(reg["startLine"], reg["startColumn"]),
                            offset(reg["endLine"], reg["endColumn"]),
                            rep["insertedContent"]["text"],
                        )
                    )
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def test_sarif_is_valid_and_complete(project):
    doc = json.loads(output("sarif"))
    sarif_validator().validate(doc)
    assert doc["version"] == "2.1.0"
    (run_,) = doc["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.code for r in all_rules()]
    for descriptor, rule in zip(rules, all_rules()):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"]
        assert descriptor["fullDescription"]["text"] == rule.summary()
        assert "## Why is this bad?" in descriptor["help"]["markdown"]
    results = run_["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results] == [
        ("TL005", 6), ("TL001", 10), ("TL002", 15), ("TL002", 15)
    ]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        loc = r["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"] == {"uri": "train.py", "uriBaseId": "%SRCROOT%"}
        assert r["message"]["text"]
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 6, "startColumn": 30, "endLine": 6, "endColumn": 32}


def test_sarif_fixes_are_the_text_edits_of_the_fix(project):
    doc = json.loads(output("sarif"))
    results = doc["runs"][0]["results"]
    tl002 = [r for r in results if r["ruleId"] == "TL002"]
    assert all(r["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"] == "-1"
               for r in tl002)
    assert all(r["properties"]["fixApplicability"] == "safe" for r in tl002)
    # Applying the SARIF replacements of the safe fixes gives what `--fix` writes.
    assert _apply_sarif_fixes(TRAIN, tl002) == FIXED_SAFE
    assert run("--fix", "train.py").exit_code == 1
    assert (project / "train.py").read_text() == FIXED_SAFE
    # Unsafe fixes are described too (a viewer offers them; trainlint applies them only on request).
    everything = _apply_sarif_fixes(TRAIN, results)
    assert "self.iters += 1" in everything and "steps=None" in everything


def test_sarif_with_unreadable_file_and_odd_names(project):
    (project / "broken file.py").write_text("def f(:\n")
    (project / "other dir").mkdir()
    (project / "other dir" / "m,x.py").write_text(TRAIN)
    result = run("--output-format", "sarif", "broken file.py", "other dir")
    assert result.exit_code == 2
    doc = json.loads(result.output)
    sarif_validator().validate(doc)
    results = doc["runs"][0]["results"]
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    error = next(r for r in results if r["ruleId"] == "TL000")
    assert rules[error["ruleIndex"]]["id"] == "TL000"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"broken%20file.py", "other%20dir/m%2Cx.py"}


def test_sarif_without_diagnostics(project):
    (project / "clean.py").write_text("x = 1\n")
    result = run("--output-format", "sarif", "clean.py")
    assert result.exit_code == 0
    doc = json.loads(result.output)
    sarif_validator().validate(doc)
    assert doc["runs"][0]["results"] == []


# ----------------------------------------------------------------------------- GitHub

_COMMAND = re.compile(r"^::(?P<cmd>\w+) (?P<props>[^:]*)::(?P<message>.*)$")


def _unescape(value: str) -> str:
    return (value.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":")
            .replace("%2C", ",").replace("%25", "%"))


def parse_github(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        m = _COMMAND.match(line)
        assert m, f"not a workflow command: {line!r}"
        props = dict(p.split("=", 1) for p in m["props"].split(","))
        out.append({"cmd": m["cmd"], **{k: _unescape(v) for k, v in props.items()},
                    "message": _unescape(m["message"])})
    return out


def test_github_annotations(project):
    text = output("github")
    annotations = parse_github(text)
    assert [(a["title"], a["line"], a["col"]) for a in annotations] == [
        ("trainlint (TL005)", "6", "30"),
        ("trainlint (TL001)", "10", "9"),
        ("trainlint (TL002)", "15", "19"),
        ("trainlint (TL002)", "15", "35"),
    ]
    first = annotations[0]
    assert first == {
        "cmd": "error", "title": "trainlint (TL005)", "file": "train.py", "line": "6", "col": "30",
        "endLine": "6", "endColumn": "32", "message": first["message"],
    }
    assert first["message"].startswith("Mutable default `[]` for parameter `steps`")
    assert "\nhelp: " in first["message"]  # the newline reached GitHub escaped, as %0A
    assert "\n" not in text.rstrip("\n").replace("\n::", "")


def test_github_escaping():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a,b:c%\n") == "a%2Cb%3Ac%25%0A"


def test_github_file_property_is_escaped(project):
    (project / "a,b: c.py").write_text(TRAIN)
    (annotation, *_) = parse_github(output("github", "a,b: c.py"))
    assert annotation["file"] == "a,b: c.py"


def test_github_empty_when_clean(project):
    (project / "clean.py").write_text("x = 1\n")
    result = run("--output-format", "github", "clean.py")
    assert result.exit_code == 0 and result.output == ""


# ----------------------------------------------------------------------------- JUnit


def test_junit_one_testcase_per_diagnostic(project):
    (project / "broken.py").write_text("def f(:\n")
    result = run("--output-format", "junit", "train.py", "broken.py")
    assert result.exit_code == 2
    root = ET.fromstring(result.output.encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "4", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"train.py", "broken.py"}
    cases = suites["train.py"].findall("testcase")
    assert len(cases) == 4 == int(suites["train.py"].get("tests"))
    assert [c.get("line") for c in cases] == ["6", "10", "15", "15"]
    assert len({c.get("name") for c in cases}) == 4  # dashboards key test cases by name
    failure = cases[1].find("failure")
    assert failure.get("type") == "TL001"
    assert failure.get("message").startswith("`self.iters` is reset to 1")
    assert failure.text.startswith("train.py:10:9: TL001 ")
    (broken,) = suites["broken.py"].findall("testcase")
    assert broken.find("error").get("type") == "TL000" and broken.find("failure") is None


def test_junit_clean_run_has_a_passing_testcase(project):
    (project / "clean.py").write_text("x = 1\n")
    result = run("--output-format", "junit", "clean.py")
    assert result.exit_code == 0
    root = ET.fromstring(result.output.encode())
    (case,) = root.iter("testcase")
    assert list(case) == [] and root.get("failures") == "0"


def test_junit_escapes_markup(project):
    (project / "a&b<c>.py").write_text(TRAIN)
    result = run("--output-format", "junit", "a&b<c>.py")
    root = ET.fromstring(result.output.encode())
    assert root.find("testsuite").get("name") == "a&b<c>.py"


# ----------------------------------------------------------------------------- GitLab

REQUIRED = {"description", "check_name", "fingerprint", "severity", "location"}


def test_gitlab_code_quality(project):
    issues = json.loads(output("gitlab"))
    assert len(issues) == 4
    for item in issues:
        assert REQUIRED <= set(item)
        assert item["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert item["location"]["path"] == "train.py"
        assert isinstance(item["location"]["lines"]["begin"], int)
        assert re.fullmatch(r"[0-9a-f]{32}", item["fingerprint"])
    assert [i["check_name"] for i in issues] == ["TL005", "TL001", "TL002", "TL002"]
    assert [i["location"]["lines"]["begin"] for i in issues] == [6, 10, 15, 15]
    assert len({i["fingerprint"] for i in issues}) == 4


def test_gitlab_fingerprints_are_stable(project):
    before = [i["fingerprint"] for i in json.loads(output("gitlab"))]
    assert [i["fingerprint"] for i in json.loads(output("gitlab"))] == before
    (project / "train.py").write_text('"""Docstring added above."""\n\n' + TRAIN)
    moved = json.loads(output("gitlab"))
    assert [i["fingerprint"] for i in moved] == before
    assert moved[0]["location"]["lines"]["begin"] == 8


def test_gitlab_error_is_critical(project):
    (project / "broken.py").write_text("def f(:\n")
    (issue,) = json.loads(output("gitlab", "broken.py"))
    assert issue["check_name"] == "TL000" and issue["severity"] == "critical"


# ----------------------------------------------------------------------------- CLI wiring


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_output_file_and_env_var(project, fmt):
    result = run("-o", "report.out", "train.py", env={"TRAINLINT_OUTPUT_FORMAT": fmt})
    assert result.exit_code == 1
    assert result.output == ""
    written = (project / "report.out").read_text(encoding="utf-8")
    assert written == output(fmt)


def test_every_format_is_offered():
    assert {"text", "json", "sarif", "github", "junit", "gitlab"} <= set(FORMATS)
    result = run("check", "--help")
    for fmt in ("sarif", "github", "junit", "gitlab"):
        assert fmt in result.output
