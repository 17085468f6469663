"""README.md cannot drift from the code: every fenced Python block runs (in order, one namespace, as written),
lines marked `# -> value` must evaluate to that value, and every `vla-ood` command the README shows parses with
the real command line (flags, choices, numbers), every `python -m` module exists and every script named exists.

A Python block that needs an optional extra or long work may be preceded by `<!-- skip-test: reason -->`; such
blocks are reported as skipped with their reason."""

import ast
import importlib.util
import re
import shlex
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from vla_ood_envs.cli import build_parser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SKIP = re.compile(r"<!--\s*skip-test:\s*(.*?)\s*-->\s*$")
CHECK = re.compile(r"^(\s*)(\S.*?)\s+# -> (.+?)(?:\s{2,}\(.*\))?\s*$")


def _blocks():
    """(language, code, first line number, skip reason or None) of each fenced block."""
    out = []
    for m in FENCE.finditer(README):
        line = README.count("\n", 0, m.start()) + 1
        before = README[: m.start()].rstrip("\n").splitlines()
        skip = SKIP.search(before[-1]) if before else None
        out.append((m.group(1), m.group(2), line, skip.group(1) if skip else None))
    return out


PYTHON = [(code, line, skip) for lang, code, line, skip in _blocks() if lang == "python"]
SHELL = [(code, line) for lang, code, line, _ in _blocks() if lang in ("bash", "sh")]
# Plain blocks: only their `vla-ood` lines are commands (the command list; the layout block is not code).
PLAIN = [(code, line) for lang, code, line, _ in _blocks() if lang == ""]


def _checked(code: str) -> str:
    """`expr  # -> literal` lines become assertions that expr == literal."""
    lines = []
    for text in code.splitlines():
        m = CHECK.match(text)
        if m:
            indent, expr, expected = m.groups()
            ast.literal_eval(expected)  # the README's value must be a Python literal
            text = f"{indent}__readme_check__({expr}, {expected!r}, {expr!r})"
        lines.append(text)
    return "\n".join(lines)


def _readme_check(value, expected: str, expr: str) -> None:
    want = ast.literal_eval(expected)
    assert value == want, f"README says {expr} -> {expected}, but it is {value!r}"


_STATE = {"namespace": {"__readme_check__": _readme_check, "__name__": "readme"}, "ran": set()}


def _run_through(index: int) -> None:
    """Run the README's Python blocks up to `index`, each once, in one namespace (later blocks use earlier
    imports, as a reader pasting them in order would)."""
    for i, (code, line, skip) in enumerate(PYTHON[: index + 1]):
        if i in _STATE["ran"] or skip:
            continue
        _STATE["ran"].add(i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(_checked(code), f"README.md:{line}", "exec"), _STATE["namespace"])


@pytest.fixture(scope="module", autouse=True)
def _close_envs():
    yield
    for value in _STATE["namespace"].values():
        if isinstance(value, gym.Env):
            value.close()


def test_the_readme_has_python_blocks_with_checked_values():
    assert len(PYTHON) >= 5
    assert sum(bool(CHECK.match(t)) for code, _, _ in PYTHON for t in code.splitlines()) >= 4


@pytest.mark.parametrize("index", range(len(PYTHON)), ids=[f"line{line}" for _, line, _ in PYTHON])
def test_python_block_runs(index):
    code, line, skip = PYTHON[index]
    if skip:
        pytest.skip(f"README.md:{line} marked skip-test: {skip}")
    _run_through(index)


def _commands():
    """Every command the README shows: lines of shell blocks, `inline code` spans that start with vla-ood."""
    out = []
    for code, line in SHELL + PLAIN:
        lines, k = code.splitlines(), 0
        while k < len(lines):
            start, text = k, lines[k]
            while text.rstrip().endswith("\\") and k + 1 < len(lines):  # a command continued on the next line
                k += 1
                text = text.rstrip()[:-1] + " " + lines[k].strip()
            k += 1
            if (code, line) in PLAIN and not text.startswith("vla-ood "):
                continue
            text = text.split("#", 1)[0].strip()
            for part in filter(None, (p.strip() for p in text.split("&&"))):
                out.append((part, line + 1 + start))
    for m in re.finditer(r"`((?:\.venv/bin/)?vla-ood [^`]*)`", README):
        out.append((m.group(1), README.count("\n", 0, m.start()) + 1))
    return out


COMMANDS = _commands()


@pytest.mark.parametrize("command, line", COMMANDS, ids=[f"line{line}" for _, line in COMMANDS])
def test_shell_command_matches_the_code(command, line):
    words = shlex.split(command.replace("[", "").replace("]", ""))
    # "--algo ppo|grpo|dpo" shows alternatives: every one of them must parse.
    alternatives = [w for w in words if "|" in w and not w.startswith("-")]
    if alternatives:
        for choice in alternatives[0].split("|"):
            test_shell_command_matches_the_code(command.replace(alternatives[0], choice, 1), line)
        return
    program = words[0].rsplit("/", 1)[-1]
    if program == "vla-ood":
        if len(words) == 1:
            return
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exc:
            pytest.fail(f"README.md:{line}: `{command}` does not parse (exit {exc.code})")
    elif program.startswith("python") and words[1] == "-m":
        assert importlib.util.find_spec(words[2]) is not None, f"README.md:{line}: no module {words[2]}"
    elif program.startswith("python") and words[1].endswith(".py"):
        assert (ROOT / words[1]).is_file(), f"README.md:{line}: no script {words[1]}"
    elif program == "torchrun":
        # torchrun [its options] -m MODULE args: the module exists, and the package's CLI parses its arguments.
        assert "-m" in words, f"README.md:{line}: `{command}`: torchrun without -m MODULE"
        module = words[words.index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, f"README.md:{line}: no module {module}"
        if module == "vla_ood_envs.cli":
            try:
                build_parser().parse_args(words[words.index("-m") + 2:])
            except SystemExit as exc:
                pytest.fail(f"README.md:{line}: `{command}` does not parse (exit {exc.code})")
    elif program == "bash":
        assert (ROOT / words[1]).is_file(), f"README.md:{line}: no script {words[1]}"
    else:
        pytest.fail(f"README.md:{line}: `{command}`: the test does not know how to check {program!r}")
