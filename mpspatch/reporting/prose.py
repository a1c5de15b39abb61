"""The parts of the documents only a person can write: docs/prose/<name>.md under [render].prose."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.reporting.text import relative

PROSE = ("summary", "motivation", "alternatives", "limitations")  # the sections when config lists none
# A fragment holding only HTML comments (the guidance line of `mpspatch init`'s skeletons) is not written yet.
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True)
class ProseFragment:
    name: str
    path: str  # relative to the config folder
    text: str | None  # None when the file is missing or blank
    required: bool = True  # a missing required section is a gap

    @property
    def present(self) -> bool:
        return self.text is not None

    @property
    def heading(self) -> str:
        return section_heading(self.name)


def read_prose(config: Config) -> tuple[ProseFragment, ...]:
    """Every section `[render].sections` lists, in that order."""
    folder = config.render.prose_dir
    fragments = []
    for name in config.render.sections:
        required = name not in config.render.optional_sections
        if folder is None:
            fragments.append(ProseFragment(name, f"(no [render].prose folder)/{name}.md", None, required))
            continue
        path = folder / f"{name}.md"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder; the prose fragment must be a Markdown file") from None
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise InputError(f"{path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8 "
                             f"(e.g. `iconv -f latin1 -t utf-8`)") from None
        unwritten = not _COMMENT.sub("", text).strip()
        fragments.append(ProseFragment(name, relative(path, config.root), None if unwritten else text, required))
    return tuple(fragments)


# ------------------------------------------------------------------------------ what the prose claims

# The heading a section renders under in the PR description (templates/pr_description.md.j2). A section not
# named here is headed by its name: "related-work" renders as "## Related work".
SECTION_HEADINGS = {
    "summary": "Summary",
    "motivation": "Motivation",
    "design": "Design",
    "performance": "Performance",
    "compatibility": "Backward compatibility",
    "environment": "New environment variables",
    "alternatives": "Alternatives",
    "limitations": "Known limitations",
    "related": "Related work",
    "example": "What it enables",
}


def section_heading(name: str) -> str:
    known = SECTION_HEADINGS.get(name)
    if known is not None:
        return known
    words = name.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


_BACKTICKED = re.compile(r"`([^`\n]+)`")
# A bare token with at least one folder and a file extension: `aten/src/ATen/mps/MPSStream.mm`. Not preceded by
# a word character, a slash or a dot, so the middle of a URL or of a longer token never matches.
_BARE_PATH = re.compile(r"(?<![\w/.:~-])((?:[\w.-]+/)+[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]*)(?![\w/])")
_FILE_LIKE = re.compile(r"(?:[\w.-]+/)+[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]*")
_DIR_LIKE = re.compile(r"(?:[\w.-]+/)+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*+] |\d+[.)] |\|))")
# Words that say the named change is no longer the series': it was dropped, or upstream has it now.
_NOT_OURS = re.compile(r"\b(?:remov\w*|delet\w*|absorb\w*|dropped|drops|landed|already upstream|upstream already)\b",
                       re.IGNORECASE)


@dataclass(frozen=True)
class NamedPath:
    path: str  # as written, a folder keeps its trailing slash
    fragment: str  # the fragment's path, relative to the config folder


def named_paths(text: str) -> tuple[tuple[str, str], ...]:
    """Repository paths the text names, each with the sentence it stands in, in order, without repeats.

    A path is a backticked token that looks like a file (`a/b.ext`) or a folder (`a/b/`), or a bare token with
    a folder and a file extension. URLs and absolute paths are not repository paths.
    """
    found: dict[str, tuple[int, str]] = {}

    def context(at: int) -> str:
        """The sentence around offset `at`; a list item or a table row ends one too."""
        begin = max((m.end() for m in _SENTENCE_END.finditer(text, 0, at)), default=0)
        end_match = _SENTENCE_END.search(text, at)
        return text[begin:end_match.start() if end_match else len(text)]

    blanked = list(text)
    for match in _BACKTICKED.finditer(text):
        token = match.group(1).strip()
        blanked[match.start():match.end()] = " " * (match.end() - match.start())
        if "://" in token or token.startswith(("/", "~")) or " " in token:
            continue
        token = token.removeprefix("./")
        if _FILE_LIKE.fullmatch(token) or _DIR_LIKE.fullmatch(token):
            found.setdefault(token, (match.start(), context(match.start())))
    for match in _BARE_PATH.finditer("".join(blanked)):
        found.setdefault(match.group(1), (match.start(), context(match.start())))
    return tuple((path, around) for path, (_, around) in sorted(found.items(), key=lambda item: item[1][0]))


def paths_not_in_series(fragments: Sequence[ProseFragment], touched: Iterable[str]) -> tuple[NamedPath, ...]:
    """Paths the prose names that the series does not touch, unless the same sentence (list item, table row)
    says the change was removed, absorbed or is already upstream. A folder counts when the series touches a file
    under it."""
    files = set(touched)
    wrong: list[NamedPath] = []
    for fragment in fragments:
        for path, around in named_paths(fragment.text or ""):
            ours = any(f.startswith(path) for f in files) if path.endswith("/") else path in files
            if not ours and not _NOT_OURS.search(around):
                wrong.append(NamedPath(path, fragment.path))
    return tuple(wrong)


def sections_asked(title: str) -> tuple[str, ...]:
    """The fragments a checklist title names ("summary, motivation, alternatives and known limitations")."""
    lowered = title.lower()
    return tuple(name for name in PROSE if re.search(rf"\b{name}\b", lowered))


_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def missing_sections(markdown: str, names: Sequence[str]) -> tuple[str, ...]:
    """The headings (section_heading) of `names` that `markdown` lacks; a heading counts when its text is the
    section's heading or contains the section's name as a word."""
    headings = [h.strip().lower() for h in _HEADING.findall(markdown)]
    missing = []
    for name in names:
        wanted = section_heading(name).lower()
        if not any(h == wanted or re.search(rf"\b{re.escape(name)}\b", h) for h in headings):
            missing.append(section_heading(name))
    return tuple(missing)
