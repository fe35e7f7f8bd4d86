"""Translation catalogs: what the templates say, in every language, as gettext files.

English is the source language: the templates are written in it (`_("...")`, `{% trans %}`)
and its words are the catalogs' msgids. Every other language is one `.po` file, read when it
is first needed (no build step, no `.mo` file) and kept until the file changes:

    <templates folder>/locale/messages.pot                    every string (`make messages`)
    <templates folder>/locale/<lang>/LC_MESSAGES/messages.po  one language's translations

The built-in folder ships fr, es, ar and pt. An organizer's folder (`[templates] folder`) may
hold a `.po` too: its translated, non-fuzzy entries replace the shipped ones of the same msgid,
and a language only it has becomes one the coalition can offer. `problems` is what `coalition
check` says of a language: strings missing or fuzzy, and translations whose `%(name)s`
placeholders are not the English ones, each with its `.po` file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po
from babel.support import NullTranslations, Translations
from jinja2.ext import babel_extract

from scheduler import __version__
from scheduler.errors import SchedulerError

SOURCE = "en"  # the language the templates are written in
LOCALE = "locale"
DOMAIN = "messages"
TEMPLATE_SUFFIXES = (".txt", ".html", ".md")
# How templates are read (the same options as the environments that render them), so that
# extraction finds the strings as Jinja sees them.
JINJA_OPTIONS = {"trim_blocks": "true", "lstrip_blocks": "true",
                 "keep_trailing_newline": "true", "newstyle_gettext": "true"}
# N_("...") marks a string in Python; Nn_("one", "many") a string with plural forms.
KEYWORDS = {**DEFAULT_KEYWORDS, "Nn_": (1, 2)}
COMMENT_TAGS = ("Translators:",)
PLACEHOLDER = re.compile(r"%(?:\((\w+)\)[sd]|%)?")
# The Python modules that name strings of the catalogs (relative to the repository).
PYTHON_SOURCES = ("scheduler/delivery/render.py", "scheduler/web/words.py")


class CatalogError(SchedulerError):
    """A .po file that cannot be read; says which, and at what line."""


def po_file(folder: Path, lang: str) -> Path:
    return folder / LOCALE / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def pot_file(folder: Path) -> Path:
    return folder / LOCALE / f"{DOMAIN}.pot"


def known_language(lang: str) -> bool:
    """Whether CLDR (through Babel) has dates, times and plural rules for `lang`."""
    try:
        Locale.parse(lang)
    except (UnknownLocaleError, ValueError):
        return False
    return True


@lru_cache(maxsize=64)
def right_to_left(lang: str) -> bool:
    try:
        return Locale.parse(lang).character_order == "right-to-left"
    except (UnknownLocaleError, ValueError):
        return False


def direction(lang: str) -> str:
    """"rtl" or "ltr", for HTML's dir attribute."""
    return "rtl" if right_to_left(lang) else "ltr"


def language_name(lang: str) -> str:
    """The language's own name for itself, as a menu shows it: "English", "Français",
    "العربية"."""
    try:
        name = Locale.parse(lang).get_display_name(lang) or lang
    except (UnknownLocaleError, ValueError):
        return lang
    return name[:1].upper() + name[1:]


def placeholders(text: str) -> tuple[set[str], list[str]]:
    """The `%(name)s` names in `text`, and whatever else follows a `%` (not `%%`): a
    translation may only use placeholders written `%(name)s`."""
    names, odd = set(), []
    for found in PLACEHOLDER.finditer(text):
        if found.group(1):
            names.add(found.group(1))
        elif found.group(0) == "%":
            odd.append(text[found.start():found.start() + 4])
    return names, odd


@dataclass(frozen=True, kw_only=True)
class Speaker:
    """One language, as the templates speak it: its translations and its direction."""

    lang: str
    translations: NullTranslations
    rtl: bool


def _signature(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


@lru_cache(maxsize=128)
def _read(path: str, mtime_ns: int, size: int, lang: str | None) -> Catalog:
    """One .po or .pot file (cached until it changes)."""
    try:
        with open(path, "rb") as f:
            return read_po(f, locale=lang, abort_invalid=True)
    except PoFileError as e:
        raise CatalogError(f"{path} line {e.lineno}: {str(e).rsplit(' on ', 1)[0]}") from e
    except OSError as e:
        raise CatalogError(f"{path}: cannot read: {e.strerror or e}") from e
    except (UnknownLocaleError, ValueError, UnicodeDecodeError) as e:
        raise CatalogError(f"{path}: cannot read: {e}") from e


def read(path: Path, lang: str | None = None) -> Catalog:
    try:
        stat = path.stat()
    except OSError as e:
        raise CatalogError(f"{path}: cannot read: {e.strerror or e}") from e
    return _read(str(path), stat.st_mtime_ns, stat.st_size, lang)


def usable(message: Message) -> bool:
    """A translation a reader may see: not fuzzy, and every plural form written."""
    if message.fuzzy or not message.id:
        return False
    forms = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return all(forms)


def _key(message: Message) -> tuple[str, str | None]:
    msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
    return str(msgid), message.context


@lru_cache(maxsize=32)
def _compiled(signature: tuple[tuple[str, int, int], ...], lang: str) -> NullTranslations:
    """The .po files of `signature`, highest priority first, as one gettext catalog."""
    catalogs = [_read(*entry, lang) for entry in signature]
    chosen: dict[tuple[str, str | None], Message] = {}
    for catalog in catalogs:  # the first usable translation of each string wins
        for message in catalog:
            if usable(message):
                chosen.setdefault(_key(message), message)
    merged = Catalog(locale=lang, domain=DOMAIN)
    if catalogs:
        merged.mime_headers = catalogs[-1].mime_headers  # the shipped one's plural forms
    for message in chosen.values():
        merged.add(message.id, message.string, context=message.context)
    data = BytesIO()
    write_mo(data, merged)
    data.seek(0)
    return Translations(fp=data, domain=DOMAIN)


class Catalogs:
    """The catalogs of a list of template folders (the organizer's first, then the built-in
    one), as `Speaker`s and as problems."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)

    def files(self, lang: str) -> list[Path]:
        """The .po files for `lang` that exist, highest priority first."""
        return [path for path in (po_file(folder, lang) for folder in self.folders)
                if path.is_file()]

    def languages(self) -> list[str]:
        """English, and every language some folder has a .po for."""
        found = {SOURCE}
        for folder in self.folders:
            base = folder / LOCALE
            if base.is_dir():
                found |= {path.parent.parent.name
                          for path in base.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
        return sorted(found)

    def speaker(self, lang: str) -> Speaker:
        """`lang` as the templates speak it (English words where it has no translation)."""
        signature = _signature(po_file(folder, lang) for folder in self.folders)
        translations = (_compiled(signature, lang) if signature and known_language(lang)
                        else NullTranslations())
        return Speaker(lang=lang, translations=translations, rtl=right_to_left(lang))

    # --- what `coalition check` says

    def expected(self) -> list[Message]:
        """Every string the templates may ask for: the shipped messages.pot, and what the
        organizer's own templates add."""
        found: dict[tuple[str, str | None], Message] = {}
        for folder in self.folders:
            pot = pot_file(folder)
            if pot.is_file():
                for message in read(pot):
                    if message.id:
                        found.setdefault(_key(message), message)
        for folder in self.folders[:-1]:  # an organizer's templates: their own strings too
            for message in _extracted(folder, folder, silent=True):
                found.setdefault(_key(message), message)
        return list(found.values())

    def problems(self, lang: str, expected: Sequence[Message] | None = None) -> list[str]:
        """One line per string of `lang` that a reader would see wrong: missing or fuzzy (the
        English is shown), or with placeholders that are not the English ones."""
        if not known_language(lang):
            return [f"{lang}: not a language CLDR knows (no dates, times or plural rules)"]
        files = self.files(lang)
        if not files and lang != SOURCE:
            places = " or ".join(str(po_file(f, lang)) for f in self.folders)
            return [f"{lang}: no translation catalog (looked for {places})"]
        if not files:
            return []
        problems: list[str] = []
        catalogs = []
        for path in files:
            try:
                catalogs.append((path, read(path, lang)))
            except CatalogError as e:
                problems.append(f"{e} ({lang})")
        expected = self.expected() if expected is None else expected
        for message in expected:
            if not message.id:
                continue
            entries = []
            for path, catalog in catalogs:
                entry = catalog.get(message.id, context=message.context)
                if entry is not None:
                    entries.append((path, catalog, entry))
            for path, catalog, entry in entries:
                where = f"{path} line {entry.lineno} ({lang})"
                if entry.fuzzy:
                    problems.append(f"{where}: fuzzy, so it is not used: {_quoted(message.id)}")
                elif usable(entry):
                    problems.extend(f"{where}: {problem}"
                                    for problem in _placeholder_problems(entry, catalog))
            if lang == SOURCE or any(usable(entry) for _, _, entry in entries):
                continue
            empty = [(path, entry) for path, _, entry in entries if not entry.fuzzy]
            if empty:
                path, entry = empty[0]
                problems.append(f"{path} line {entry.lineno} ({lang}): not translated: "
                                f"{_quoted(message.id)}")
            elif not entries:
                problems.append(f"{files[0]} ({lang}): missing: {_quoted(message.id)}")
        return problems


def _quoted(msgid: Any) -> str:
    text = msgid[0] if isinstance(msgid, tuple | list) else msgid
    text = " ".join(str(text).split())
    return f'"{text[:70]}…"' if len(text) > 70 else f'"{text}"'


def _placeholder_problems(entry: Message, catalog: Catalog) -> Iterator[str]:
    """A translation's placeholders against its msgid's: none dropped, none misspelt, none
    written other than %(name)s. A plural form may leave out a placeholder (Arabic says "two
    hours" in one word) but the last form, for most numbers, must have them all."""
    ids = entry.id if isinstance(entry.id, tuple | list) else (entry.id,)
    wanted: set[str] = set()
    for text in ids:
        wanted |= placeholders(text)[0]
    forms = entry.string if isinstance(entry.string, tuple | list) else (entry.string,)
    if len(ids) > 1 and len(forms) != catalog.num_plurals:
        yield (f"the translation has {len(forms)} plural forms where the catalog's "
               f"Plural-Forms has {catalog.num_plurals}, in {_quoted(entry.id)}")
    for index, form in enumerate(forms):
        names, odd = placeholders(form or "")
        which = f"form {index} " if len(forms) > 1 else ""
        for bad in odd:
            yield (f"the translation {which}has {bad!r}: placeholders are written %(name)s "
                   f"and a percent sign %%, in {_quoted(entry.id)}")
        for name in sorted(names - wanted):
            yield (f"the translation {which}has %({name})s, which {_quoted(entry.id)} does not "
                   f"have (it has {', '.join(f'%({n})s' for n in sorted(wanted)) or 'none'})")
        if len(forms) == 1 or index == len(forms) - 1:
            for name in sorted(wanted - names):
                yield f"the translation {which}drops %({name})s of {_quoted(entry.id)}"


# --- extraction: the .pot file, from the templates and the Python that names strings


def _extracted(folder: Path, root: Path, *, silent: bool) -> Iterator[Message]:
    """Every translatable string of the templates under `folder` (locations relative to
    `root`)."""
    options = {**JINJA_OPTIONS, "silent": "true" if silent else "false"}
    for path in sorted(folder.rglob("*")):
        if path.suffix not in TEMPLATE_SUFFIXES or LOCALE in path.relative_to(folder).parts:
            continue
        try:
            with path.open("rb") as f:
                found = list(extract(babel_extract, f, KEYWORDS,  # type: ignore[arg-type]
                                     COMMENT_TAGS, options))
        except Exception:  # a broken template: rendering says what is wrong
            if not silent:
                raise
            continue
        for lineno, message, comments, context in found:
            yield Message(message, locations=[(path.relative_to(root).as_posix(), lineno)],
                          auto_comments=comments, context=context)


def _from_python(path: Path, root: Path) -> Iterator[Message]:
    with path.open("rb") as f:
        for lineno, message, comments, context in extract("python", f, KEYWORDS, COMMENT_TAGS):
            yield Message(message, locations=[(path.relative_to(root).as_posix(), lineno)],
                          auto_comments=comments, context=context)


def template_catalog(templates: Path, python: Sequence[Path], root: Path) -> Catalog:
    """What `make messages` writes to messages.pot: the strings of every template under
    `templates` and of the `python` modules, with where each is used."""
    catalog = Catalog(project="coalition-scheduler", version=__version__, domain=DOMAIN,
                      copyright_holder="the coalition-scheduler authors", charset="utf-8",
                      msgid_bugs_address="the coalition-scheduler authors", fuzzy=False)
    messages = [*_extracted(templates, root, silent=False)]
    for path in python:
        messages.extend(_from_python(path, root))
    for message in messages:
        catalog.add(message.id, locations=message.locations,
                    auto_comments=message.auto_comments, context=message.context)
    return catalog


def write_messages(root: Path) -> list[Path]:
    """`make messages`: templates/locale/messages.pot from the templates and PYTHON_SOURCES,
    then every shipped .po brought up to date with it (new strings empty, changed ones fuzzy,
    as msgmerge does). Returns the files written."""
    templates = root / "templates"
    pot = template_catalog(templates, [root / name for name in PYTHON_SOURCES], root)
    written = [pot_file(templates)]
    with pot_file(templates).open("wb") as f:
        write_po(f, pot, width=100)
    for path in sorted((templates / LOCALE).glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        lang = path.parent.parent.name
        with path.open("rb") as f:
            catalog = read_po(f, locale=lang)
        catalog.update(pot, update_creation_date=False)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True)
        written.append(path)
    return written


def plural_count(lang: str) -> int:
    """How many plural forms a .po for `lang` has (Arabic: six)."""
    return Catalog(locale=lang).num_plurals
