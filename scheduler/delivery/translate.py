"""Jinja's i18n extension, speaking the catalogs' languages, right to left where they are.

`install` gives an environment `_()`, `gettext`, `ngettext`, `pgettext`, `npgettext` and
`{% trans %}` (new style: `_("Hello %(name)s", name=...)`, and `%(num)s` in plurals), the
`isolate` filter and `line_direction()`. The language is the one `speaking` sets around a
render, so that macros and included templates speak it too; a template rendered outside
`speaking` speaks English.

What a translation may do is narrower than Python's `%`: it uses the English string's
`%(name)s` placeholders (in any order, or not at all) and `%%` for a percent sign. Anything
else (`%(name)999999999s`, a name the template does not give) stops the render with a
`TranslationError` that names the string, as a broken template does.

Right to left (Arabic): every placeholder is isolated from the sentence around it, so that a
time ("10:00 AM"), a city, a Latin-script title or a number keeps its own order: `<bdi>` in
HTML, U+2068 FIRST STRONG ISOLATE ... U+2069 POP DIRECTIONAL ISOLATE in text and Markdown. A
URL in text or Markdown is the exception: mail programs and Discourse would take U+2069 into
the link, so a URL is left bare (the catalogs put it at the end of its line, where the bidi
algorithm keeps it whole; HTML puts it in href). Left-to-right languages get nothing added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from babel.support import NullTranslations
from jinja2 import Environment, pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from markupsafe import Markup, escape

from scheduler.delivery.catalogs import PLACEHOLDER, SOURCE, Speaker, right_to_left

FSI, PDI, RLM = "\u2068", "\u2069", "\u200f"
URL = re.compile(r"(https?|webcal|mailto):", re.IGNORECASE)

_ENGLISH = Speaker(lang=SOURCE, translations=NullTranslations(), rtl=False)
_speaker: ContextVar[Speaker | None] = ContextVar("template_language", default=None)


class TranslationError(TemplateRuntimeError):
    """A translation that cannot be filled in: says which string, in which language."""


@contextmanager
def speaking(speaker: Speaker) -> Iterator[None]:
    """Render in `speaker`'s language inside this block."""
    token = _speaker.set(speaker)
    try:
        yield
    finally:
        _speaker.reset(token)


def current(context: Context | None = None) -> Speaker:
    speaker = _speaker.get()
    if speaker is not None:
        return speaker
    lang = context.get("lang") if context is not None else None
    if isinstance(lang, str) and right_to_left(lang):
        return Speaker(lang=lang, translations=NullTranslations(), rtl=True)
    return _ENGLISH


def isolated(value: Any, *, html: bool) -> Any:
    """`value` kept apart from the right-to-left text around it."""
    if html:
        return Markup("<bdi>%s</bdi>") % value
    text = str(value)
    if not text or URL.match(text):
        return text
    return f"{FSI}{text}{PDI}"


def fill(text: str, variables: Mapping[str, Any], *, speaker: Speaker, html: bool,
         msgid: str) -> str:
    """`text` (a translation of `msgid`) with its `%(name)s` placeholders filled; in HTML
    the translation is markup and the values are escaped, as Jinja's new-style gettext does."""

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name is None:
            if found.group(0) == "%%":
                return "%"
            bad = text[found.start():found.start() + 4]
            raise TranslationError(f"the {speaker.lang} translation of {msgid!r} has {bad!r}: "
                                   "placeholders are written %(name)s, a percent sign %%")
        if name not in variables:
            given = ", ".join(f"%({n})s" for n in sorted(variables)) or "none"
            raise TranslationError(f"the {speaker.lang} translation of {msgid!r} has "
                                   f"%({name})s, which the template does not give ({given})")
        item = variables[name]
        if html:
            item = escape(item)
        if speaker.rtl:
            item = isolated(item, html=html)
        return str(item)

    filled = PLACEHOLDER.sub(value, text)
    return Markup(filled) if html else filled


@pass_context
def _gettext(__context: Context, __string: str, **variables: Any) -> str:
    speaker = current(__context)
    return fill(speaker.translations.gettext(__string), variables, speaker=speaker,
                html=__context.eval_ctx.autoescape, msgid=__string)


@pass_context
def _ngettext(__context: Context, __singular: str, __plural: str, __num: int,
              **variables: Any) -> str:
    variables.setdefault("num", __num)
    speaker = current(__context)
    return fill(speaker.translations.ngettext(__singular, __plural, __num), variables,
                speaker=speaker, html=__context.eval_ctx.autoescape, msgid=__singular)


@pass_context
def _pgettext(__context: Context, __string_ctx: str, __string: str, **variables: Any) -> str:
    speaker = current(__context)
    return fill(str(speaker.translations.pgettext(__string_ctx, __string)), variables,
                speaker=speaker, html=__context.eval_ctx.autoescape, msgid=__string)


@pass_context
def _npgettext(__context: Context, __string_ctx: str, __singular: str, __plural: str,
               __num: int, **variables: Any) -> str:
    variables.setdefault("num", __num)
    speaker = current(__context)
    return fill(speaker.translations.npgettext(__string_ctx, __singular, __plural, __num),
                variables, speaker=speaker, html=__context.eval_ctx.autoescape,
                msgid=__singular)


@pass_context
def _isolate(__context: Context, value: Any) -> Any:
    """{{ z.time|isolate }}: kept apart from right-to-left text; unchanged otherwise."""
    if not current(__context).rtl:
        return value
    return isolated(value, html=__context.eval_ctx.autoescape)


@pass_context
def _line_direction(__context: Context) -> str:
    """{{ line_direction() }} at the start of a text line made only of isolated pieces (a
    row of times): U+200F RIGHT-TO-LEFT MARK in right-to-left text, so that the line reads
    right to left like the text around it; nothing in other languages, and nothing in HTML
    (its dir attribute does that)."""
    if current(__context).rtl and not __context.eval_ctx.autoescape:
        return RLM
    return ""


def install(environment: Environment) -> None:
    """Jinja's i18n extension, new style, with our gettext functions, `isolate` and
    `line_direction()`."""
    environment.add_extension("jinja2.ext.i18n")
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    environment.globals.update(gettext=_gettext, ngettext=_ngettext, pgettext=_pgettext,
                               npgettext=_npgettext, line_direction=_line_direction)
    environment.filters["isolate"] = _isolate
