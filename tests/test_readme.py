"""The README tells the truth about the program (issue 15, item 4): its usage lines name
every command the CLI has, with options the CLI takes, and its counts are the
program's."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from connectors.registry import available
from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command, by its words (``("connectors", "show")``)."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands(sub, (*path, name)))
            return found
    return {path: parser}


def usage_lines() -> list[str]:
    """The lines of README's code blocks that show a command (``gateway ...``), a
    continuation joined to its command."""
    lines: list[str] = []
    for block in README.split("```")[1::2]:
        for line in block.splitlines():
            text = line.split("#", 1)[0].rstrip()
            if text.startswith("gateway "):
                lines.append(text)
            elif text.strip().startswith("[") and lines:
                lines[-1] += " " + text.strip()
    return lines


def words_of(line: str, leaves: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """``gateway connectors pause|resume ID`` -> [("connectors", "pause"), ("connectors",
    "resume")]: the words that name commands (``topics check|create`` names one, whose
    argument takes either)."""
    prefixes = {leaf[:i] for leaf in leaves for i in range(len(leaf) + 1)}
    paths: list[tuple[str, ...]] = [()]
    for word in line.split()[1:]:
        longer = [(*p, w) for p in paths for w in word.split("|")]
        if not all(p in prefixes for p in longer):
            break
        paths = longer
    return paths


def test_the_usage_block_names_every_command_with_options_it_takes() -> None:
    parser = build_parser()
    leaves = {**commands(parser), (): parser}  # (): `gateway --version`
    documented: set[tuple[str, ...]] = set()
    for line in usage_lines():
        for path in words_of(line, set(leaves)):
            assert path in leaves, f"README names `gateway {' '.join(path)}`: no such command"
            documented.add(path)
            known = {o for a in leaves[path]._actions for o in a.option_strings}
            for option in re.findall(r"--[a-z][a-z-]*", line):
                assert option in known, f"`gateway {' '.join(path)}` takes no {option}"
    missing = sorted(" ".join(p) for p in set(leaves) - documented)
    assert not missing, f"commands missing from README's usage: {missing}"


def test_the_readmes_counts_are_the_programs() -> None:
    types = len(available())
    said = re.findall(r"(\d+) (?:connector )?types", README)
    assert said, "README says how many connector types there are"
    assert {int(n) for n in said} == {types}, f"README says {said}; the program has {types}"
    assert "--version" in README
