"""The README's and the docs pages' commands stay true.

Every ```bash block of README.md and of the topic pages in docs/ is read; every ``colorgan``
command in them (and every inline code span that starts with ``colorgan ``) must name a real
subcommand and only options that subcommand takes, checked against the real click command
behind the Typer app. The README's ``colorgan colorize`` commands (its first five minutes) are
run for real, in a temporary folder, on generated gray photos, with the bundled default model.
Relative links of these pages must lead to files. Nothing here installs, serves or trains.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The topic pages (docs/RESULTS.md and docs/MODEL_CARD.md are measurement records, not how-to pages).
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in ("RESULTS.md", "MODEL_CARD.md"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


# --- reading the commands ------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One ``colorgan ...`` invocation found in a page: its arguments (after ``colorgan``)."""

    page: Path
    line: str
    args: tuple[str, ...]
    inline: bool = False  # an inline code span of the prose, which may name an option without its value

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}: {self.line}"


def bash_lines(page: Path) -> Iterator[str]:
    """The command lines of a page's ```bash blocks, continuation lines joined, comments removed."""
    in_bash, pending = False, ""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_bash, pending = line.strip() in ("```bash", "```sh", "```shell"), ""
            continue
        if not in_bash:
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        command, pending = strip_comment(pending).strip(), ""
        if command:
            yield command


def strip_comment(line: str) -> str:
    """``line`` without its shell comment: a ``#`` outside quotes that starts a word (``--hint 1,2,#fff`` keeps its color)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def colorgan_args(tokens: list[str]) -> Iterator[tuple[str, ...]]:
    """The arguments of each ``colorgan`` (or ``python -m colorgan``, ``accelerate launch ... -m colorgan``)
    in one shell line, split at ``&&``, ``||``, ``;`` and ``|``."""
    segment: list[str] = []
    for token in [*tokens, "&&"]:
        if token not in ("&&", "||", ";", "|"):
            segment.append(token)
            continue
        if segment and segment[0] == "colorgan":
            yield tuple(segment[1:])
        elif "colorgan" in segment and segment.index("colorgan") > 0 and segment[segment.index("colorgan") - 1] == "-m":
            yield tuple(segment[segment.index("colorgan") + 1 :])
        segment = []


def page_commands(page: Path) -> list[Command]:
    return [Command(page, line, args) for line in bash_lines(page) for args in colorgan_args(shlex.split(line))]


def inline_commands(page: Path) -> list[Command]:
    """``colorgan ...`` inline code spans of a page's prose (outside code blocks; a span may run over a line break)."""
    prose = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    found = []
    for span in re.findall(r"`([^`]+)`", prose):
        span = " ".join(span.split())
        if span.startswith("colorgan "):
            found += [Command(page, span, args, inline=True) for args in colorgan_args(shlex.split(span.replace("\\|", "|")))]
    return found


# --- the real command line -----------------------------------------------------------------


def root_command():
    import typer

    from colorgan.commands import app

    return typer.main.get_command(app)


def resolve(args: tuple[str, ...]) -> tuple[list[str], object, list[str]]:
    """(the subcommand's path, its click command, the arguments after it); the root group for none."""
    command = root_command()
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest[0]
        if name not in command.commands:
            raise LookupError(f"colorgan {' '.join([*path, name])}: no such command")
        command, path, rest = command.commands[name], [*path, name], rest[1:]
    return path, command, rest


def options_of(command) -> dict[str, bool]:
    """Every option string a command takes -> whether it takes a value (``--help`` included)."""
    params = command.get_params(command.context_class(command, info_name=command.name))
    return {opt: not (p.is_flag or p.count)
            for p in params if p.param_type_name == "option" for opt in (*p.opts, *p.secondary_opts)}


def parse(args: tuple[str, ...], *, values: bool = True) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(subcommand path, {option: [values]}, positional arguments) of one command, or a LookupError
    naming the subcommand or option that does not exist. ``values=False`` lets an option that takes
    a value appear without one, as prose names an option (`colorgan colorize --hints`)."""
    path, command, rest = resolve(args)
    takes_value = options_of(command)
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    tokens = iter(rest)
    for token in tokens:
        if token.startswith("-") and token != "-":
            name, _, inline = token.partition("=")
            if name not in takes_value:
                raise LookupError(f"colorgan {' '.join(path)}: no option {name}")
            value = inline if inline or not takes_value[name] else next(tokens, None)
            if takes_value[name] and value is None and values:
                raise LookupError(f"colorgan {' '.join(path)}: {name} needs a value")
            options.setdefault(name, []).append(value or "")
        else:
            positional.append(token)
    if positional and not any(p.param_type_name == "argument" for p in command.params):
        raise LookupError(f"colorgan {' '.join(path)} takes no arguments, got {positional}")
    return path, options, positional


ALL_BLOCK_COMMANDS = [c for page in [README, *PAGES] for c in page_commands(page)]
ALL_INLINE_COMMANDS = [c for page in [README, *PAGES] for c in inline_commands(page)]


def test_the_readme_starts_with_the_two_lines():
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block == 'pip install -e . && colorgan colorize\npip install -e ".[dev]" && pytest -q\n'
    assert text.index("```bash") < text.index("\n## "), "the two lines come before any section"


def test_the_readme_stays_short():
    words = len(README.read_text(encoding="utf-8").split())
    assert 600 <= words <= 1000, f"README.md has {words} words; the issue asks for about 800 (the rest goes to docs/)"


def test_the_pages_have_commands_and_the_parser_finds_them():
    assert {p.name for p in PAGES} >= {"colorize.md", "hints.md", "film.md", "cluster.md", "training.md", "evaluate.md",
                                       "serve.md", "python-api.md", "development.md", "install.md"}
    names = {(c.page.name, c.args[0]) for c in ALL_BLOCK_COMMANDS if c.args}
    assert {("README.md", "colorize"), ("README.md", "serve"), ("training.md", "train"), ("evaluate.md", "evaluate"),
            ("install.md", "export")} <= names
    hint_lines = [c for c in ALL_BLOCK_COMMANDS if c.page == README and "--hint" in c.args]
    assert hint_lines and all("#" in c.args[c.args.index("--hint") + 1] for c in hint_lines), "a hint keeps its color"


@pytest.mark.parametrize("command", ALL_BLOCK_COMMANDS + ALL_INLINE_COMMANDS, ids=str)
def test_every_documented_command_and_option_exists(command: Command):
    try:
        path, options, _ = parse(command.args, values=not command.inline)
    except LookupError as exc:
        pytest.fail(f"{command}: {exc}")
    assert path or "--version" in options or "--help" in options, f"{command}: no subcommand"


def test_each_documented_subcommand_answers_help():
    from typer.testing import CliRunner

    from colorgan.commands import app

    paths = {tuple(resolve(c.args)[0]) for c in ALL_BLOCK_COMMANDS + ALL_INLINE_COMMANDS}
    assert ("colorize",) in paths and ("train",) in paths and ("export", "bundle") in paths
    for path in sorted(paths):
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output, (path, result.output)


def test_the_checker_refuses_what_does_not_exist():
    with pytest.raises(LookupError, match="no option --colour"):
        parse(("colorize", "a.jpg", "--colour", "red"))
    with pytest.raises(LookupError, match="no such command"):
        parse(("paint", "a.jpg"))
    assert parse(("colorize", "a.jpg", "-o", "b.png", "--hint", "0.1,0.2,#fff", "--keep-color"))[1:] == (
        {"-o": ["b.png"], "--hint": ["0.1,0.2,#fff"], "--keep-color": [""]}, ["a.jpg"])
    assert strip_comment("colorgan colorize a.jpg --hint 1,2,#fff  # a comment") == "colorgan colorize a.jpg --hint 1,2,#fff  "


# --- running the README ----------------------------------------------------------------------


def gray_photo(path: Path, seed: int, *, bits: int = 8) -> None:
    """A small gray photo: a gradient with a disc, different for each seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:72, 0:96]
    pixels = xx / 95 * 0.7 + 0.15
    pixels[(yy - rng.integers(20, 52)) ** 2 + (xx - rng.integers(20, 76)) ** 2 < 15**2] = rng.uniform(0.05, 0.95)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits == 16:
        Image.fromarray((pixels * 65535).astype(np.uint16)).save(path)
    else:
        Image.fromarray((pixels * 255).astype(np.uint8), "L").save(path)


def provide_inputs(inputs: list[str], cwd: Path) -> None:
    """Make what a README command reads: the package's bundled photos where it names
    ``src/colorgan/assets/...``, a generated gray photo for a photo name, a folder of generated
    gray photos (a subfolder and a 16-bit PNG included) for a folder name."""
    import colorgan

    for item in inputs:
        target = cwd / item
        if target.exists() or any(c in item for c in "*?["):
            continue
        if item.startswith("src/colorgan/assets/"):
            assets = Path(colorgan.__file__).parent / "assets"
            for folder in ("examples", "samples"):
                shutil.copytree(assets / folder, cwd / "src/colorgan/assets" / folder, dirs_exist_ok=True)
        elif Path(item).suffix.lower() in IMAGE_SUFFIXES:
            gray_photo(target, seed=len(item))
        else:
            gray_photo(target / "a.jpg", seed=1)
            gray_photo(target / "b.png", seed=2)
            gray_photo(target / "old" / "c.png", seed=3, bits=16)
        assert (cwd / item).exists(), item


def png_bit_depth(path: Path) -> int:
    return path.read_bytes()[24]  # IHDR's bit depth


README_COLORIZE = [c for c in page_commands(README) if c.args[:1] == ("colorize",)]


def test_the_readme_shows_a_photo_a_folder_a_hint_and_the_web_page():
    kinds = set()
    for command in README_COLORIZE:
        _, options, positional = parse(command.args)
        kinds.add("hint" if "--hint" in options else "folder" if positional and Path(positional[0]).suffix == ""
                  else "photo" if positional else "sample")
    assert kinds >= {"sample", "photo", "folder", "hint"}, kinds
    assert any(c.args[:1] == ("serve",) for c in page_commands(README))


def test_the_readme_colorize_commands_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    """Each ``colorgan colorize`` of the README, verbatim, through the real CLI and the bundled
    model, in order (a later command may skip what an earlier one made, as a re-run does)."""
    monkeypatch.chdir(tmp_path)
    assert len(README_COLORIZE) >= 4
    for command in README_COLORIZE:
        _, options, positional = parse(command.args)
        provide_inputs(positional, tmp_path)
        code, out, err = cli(*command.args)
        assert code == 0, f"{command}\n{out}\n{err}"
        assert "0 failed" in out, f"{command}\n{out}\n{err}"
        out_option = (options.get("-o") or options.get("--out") or ["colorized"])[-1]
        output = tmp_path / out_option
        if not positional:  # the bundled sample
            assert (tmp_path / "colorized" / "camera.jpg").is_file(), command
        elif Path(out_option).suffix.lower() in IMAGE_SUFFIXES:  # one photo, one file: same size as its input
            assert output.is_file(), command
            with Image.open(tmp_path / positional[0]) as source, Image.open(output) as result:
                assert result.size == source.size and result.mode == "RGB", command
        else:  # a folder: every photo mirrored, subfolders included, 16 bits kept in a PNG
            sources = [p for p in (tmp_path / positional[0]).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
            for source in sources:
                mirrored = output / source.relative_to(tmp_path / positional[0])
                assert mirrored.is_file(), (command, mirrored)
                if source.suffix == ".png" and png_bit_depth(source) == 16:
                    assert png_bit_depth(mirrored) == 16, (command, mirrored)
            assert not (output / ".colorgan-lock").exists(), "the lock is removed when the job ends"
        if "--report" in options:
            report = json.loads((tmp_path / options["--report"][-1]).read_text(encoding="utf-8"))
            assert report["summary"]["failed"] == 0 and report["files"], command
    fixed = [c for c in README_COLORIZE if "--hint" in c.args]
    plain = [c for c in README_COLORIZE if "--hint" not in c.args and c.args[1:2] == fixed[0].args[1:2]]
    if plain:  # the same photo with and without hints: the hints changed its colors
        a = np.asarray(Image.open(tmp_path / parse(plain[0].args)[1]["-o"][-1]), np.int16)
        b = np.asarray(Image.open(tmp_path / parse(fixed[0].args)[1]["-o"][-1]), np.int16)
        assert np.abs(a - b).mean() > 0.5


# --- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    broken = [t for t in targets
              if not re.match(r"[a-z]+:", t) and not t.startswith("#") and not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.name}: links to nothing: {broken}"
