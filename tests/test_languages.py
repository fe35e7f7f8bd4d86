"""Every member's language: one template per message, gettext catalogs (en, fr, es, ar, pt),
plural forms, right to left, an organizer's own wording, and what `coalition check` says of a
catalog."""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po
from starlette.testclient import TestClient

from scheduler import config
from scheduler.config import BUILTIN_TEMPLATES
from scheduler.core.recurrence import Occurrence, Status
from scheduler.core.timetable import local_time
from scheduler.delivery.catalogs import (
    PYTHON_SOURCES,
    Catalogs,
    plural_count,
    po_file,
    pot_file,
    read,
    template_catalog,
)
from scheduler.delivery.render import (
    ACCOUNT_SAMPLE,
    EMAIL_ONLY,
    TEMPLATES,
    CallFacts,
    Message,
    RenderError,
    Templates,
    channels_of,
    message_context,
    sample_context,
)
from scheduler.delivery.translate import FSI, PDI, RLM
from scheduler.errors import ConfigError
from scheduler.store import db
from scheduler.web.app import create_app
from tests.conftest import ROOT, Coalition

SHIPPED = ["ar", "en", "es", "fr", "pt"]
TRANSLATED = ["ar", "es", "fr", "pt"]
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2018, 11, 13, 15, tzinfo=UTC)
CALL = CallFacts(
    slug="jfa", title="Justice For All coalition call", description="",
    register_url="https://example.org/register", join_url="https://example.org/join",
    zones=("America/New_York", "Europe/Brussels", "Africa/Cairo", "Asia/Jakarta"),
    feed_url="https://calls.example.org/calendars/jfa.ics",
)
ZONES = [
    pytest.param("America/New_York", id="new-york"),
    pytest.param("Africa/Cairo", id="cairo"),
    pytest.param("Asia/Jakarta", id="jakarta"),
    pytest.param("Asia/Kathmandu", id="kathmandu"),  # UTC+05:45
    pytest.param("Pacific/Chatham", id="chatham"),  # UTC+13:45: the next day
]
# Words of the English templates that a translated message must not keep.
ENGLISH = ("the", "call", "calls", "starts", "tomorrow", "today", "Unsubscribe", "Register",
           "Hello", "join", "your", "time", "moved", "cancelled", "hope", "later", "next",
           "free", "recording", "invited", "changed", "who")
SECRET = "s" * 40


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates([BUILTIN_TEMPLATES])


def occurrence(status: Status = Status.CONFIRMED, start: datetime = START) -> Occurrence:
    moved = status is Status.MOVED
    begins = start + timedelta(days=1) if moved else start
    return Occurrence(id=start, start=begins, end=begins + timedelta(hours=1), zone=NEW_YORK,
                      status=status)


def every_message(templates: Templates, lang: str, reader: ZoneInfo
                  ) -> Iterator[tuple[str, Message, dict[str, Any]]]:
    """Every template, channel and variant a reader can get, 30 minutes before the call."""
    for status in (Status.CONFIRMED, Status.MOVED, Status.CANCELLED):
        happening = occurrence(status)
        context = message_context(CALL, happening, lang=lang, reader=reader,
                                  now=happening.start - timedelta(minutes=30),
                                  recording_url="https://example.org/recording")
        for one, again in ((True, False), (False, True), (False, False)):
            context["invite"] = {"one_occurrence": one, "again": again, "change": "series"}
            for name in TEMPLATES + EMAIL_ONLY:
                if status is Status.CANCELLED and name not in ("changed", "cancellation"):
                    continue
                if (one, again) != (True, False) and name not in EMAIL_ONLY:
                    continue
                for channel in channels_of(name):
                    label = f"{status.value} {name} {channel} {one} {again}"
                    yield label, templates.render(name, channel, lang, context), context
    for account in (ACCOUNT_SAMPLE, {**ACCOUNT_SAMPLE, "name": "", "calls": [], "hours": 1}):
        yield "confirm", templates.email("confirm", lang, account), dict(account)


def whole(message: Message) -> str:
    return "\n".join(part for part in (message.subject, message.text, message.html) if part)


def readable(text: str) -> str:
    """The words a reader reads: no HTML tags, URLs, Discourse markup or the call's title."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"\b(https?|webcal)://\S+", " ", text)
    text = re.sub(r"\[date=[^\]]*\]", " ", text)
    for name in (CALL.title, "Sample call", "Google Calendar", "Apple", "Outlook",
                 "Thunderbird", "Amina", "amina@example.org"):
        text = text.replace(name, " ")
    return text


# --- every template in every language


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("lang", SHIPPED)
def test_every_message_names_the_readers_own_time_and_the_calls_link(
        templates: Templates, lang: str, zone: str) -> None:
    """Each message about an occurrence to come gives the time where the reader is, in their
    language's own format, and a way in (registration or the join link)."""
    reader = ZoneInfo(zone)
    for label, message, context in every_message(templates, lang, reader):
        body = whole(message)
        if label == "confirm":
            assert context["link"] in message.text, label
            continue
        name = label.split()[1]
        if name == "followup":
            assert "https://example.org/recording" in body, label
        elif "cancelled" not in label and name != "cancellation":
            when = occurrence(Status.MOVED if label.startswith("moved") else Status.CONFIRMED)
            mine = local_time(when.start.astimezone(reader), lang)
            assert mine in message.text, (label, mine)
            if label.split()[1:3] != ["changed", "forum"]:  # a short notice, in the topic
                assert "https://example.org/register" in body or "https://example.org/join" \
                    in body, label


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_english_word_stands_in_a_translated_message(templates: Templates, lang: str) -> None:
    """Only the call's own title (and product names, links and markup) stays as it is."""
    words = re.compile(r"\b(" + "|".join(ENGLISH) + r")\b", re.IGNORECASE)
    for zone in ("Asia/Kathmandu", "Pacific/Chatham"):
        for label, message, _ in every_message(templates, lang, ZoneInfo(zone)):
            found = words.findall(readable(whole(message)))
            assert not found, (label, found)


def test_the_first_of_the_month_is_written_as_each_language_writes_it(
        templates: Templates) -> None:
    first = datetime(2018, 11, 1, 14, tzinfo=UTC)
    said = {}
    for lang in ("en", "fr", "pt", "es"):
        context = message_context(CALL, occurrence(start=first), lang=lang, reader=NEW_YORK,
                                  now=first - timedelta(days=7))
        said[lang] = templates.render("announcement", "email", lang, context).text
    assert "Thursday, November 1, 2018" in said["en"]
    assert "jeudi 1er novembre 2018" in said["fr"]
    assert "quinta-feira, 1º de novembro de 2018" in said["pt"]
    assert "jueves, 1 de noviembre de 2018" in said["es"]


@pytest.mark.parametrize(("hours", "words"), [
    (0, "0 ساعة"), (1, "ساعة واحدة"), (2, "ساعتين"), (3, "3 ساعات"), (11, "11 ساعة"),
    (100, "100 ساعة"),
])
def test_arabic_counts_with_its_six_plural_forms(templates: Templates, hours: int,
                                                 words: str) -> None:
    assert plural_count("ar") == 6
    text = templates.email("confirm", "ar", {**ACCOUNT_SAMPLE, "hours": hours}).text
    assert f"(الرابط صالح لمدة {words.replace(str(hours), f'{FSI}{hours}{PDI}')}):" in text


@pytest.mark.parametrize(("coming", "words"), [
    (1, "أكّد عضو واحد حضوره."), (2, "أكّد عضوان حضورهما."), (3, "أكّد 3 أعضاء حضورهم."),
    (11, "أكّد 11 عضوًا حضورهم."), (100, "أكّد 100 عضو حضورهم."),
])
def test_arabic_says_how_many_are_coming_in_its_own_plural_forms(templates: Templates,
                                                                  coming: int,
                                                                  words: str) -> None:
    context = message_context(CALL, occurrence(), lang="ar", reader=NEW_YORK,
                              now=START - timedelta(hours=3), coming=coming)
    for name in ("announcement", "today"):
        text = templates.render(name, "email", "ar", context).text
        assert words.replace(str(coming), f"{FSI}{coming}{PDI}") in text


@pytest.mark.parametrize(("lang", "one", "many"), [
    ("en", "it works for 1 hour)", "it works for 48 hours)"),
    ("fr", "il est valable 1 heure)", "il est valable 48 heures)"),
    ("es", "funciona durante una hora)", "funciona durante 48 horas)"),
    ("pt", "ele vale por 1 hora)", "ele vale por 48 horas)"),
])
def test_plural_forms_follow_each_languages_rules(templates: Templates, lang: str, one: str,
                                                  many: str) -> None:
    def text(hours: int) -> str:
        return templates.email("confirm", lang, {**ACCOUNT_SAMPLE, "hours": hours}).text
    assert one in text(1) and many in text(48)


# --- right to left


def test_arabic_html_email_is_right_to_left_and_keeps_times_and_names_whole(
        templates: Templates) -> None:
    context = message_context(CALL, occurrence(), lang="ar", reader=ZoneInfo("Asia/Kathmandu"),
                              now=START - timedelta(days=1))
    email = templates.render("tomorrow", "email", "ar", context)
    assert email.html is not None
    assert '<html lang="ar" dir="rtl">' in email.html
    assert "<bdi><strong>Justice For All coalition call</strong></bdi>" in email.html
    assert "<bdi>8:45 م</bdi>" in email.html and "<bdi>كاتماندو</bdi>" in email.html
    assert f"«{FSI}Justice For All coalition call{PDI}»" in email.text
    assert f"{FSI}8:45 م{PDI}" in email.text
    rows = [line for line in email.text.splitlines() if "نيويورك" in line and "10:00" in line]
    assert rows and all(row.lstrip().startswith(RLM) for row in rows)


@pytest.mark.parametrize("channel", ["email", "forum"])
def test_links_in_right_to_left_text_are_left_whole_for_mail_programs_and_discourse(
        templates: Templates, channel: str) -> None:
    """A closing isolate right after a URL would be taken into the link by linkifiers."""
    context = message_context(CALL, occurrence(), lang="ar", reader=NEW_YORK,
                              now=START - timedelta(days=7))
    text = templates.render("announcement", channel, "ar", context).text
    assert re.search(r"https?://[^\s)]*[\u2066-\u2069]", text) is None
    assert "https://example.org/join" in text


def test_discourse_local_dates_markup_works_inside_an_arabic_post(templates: Templates) -> None:
    context = message_context(CALL, occurrence(), lang="ar", reader=NEW_YORK,
                              now=START - timedelta(hours=3))
    for name in ("announcement", "today", "tomorrow", "starts-soon"):
        post = templates.render(name, "forum", "ar", context).text
        assert ('[date=2018-11-13 time=15:00:00 timezone="UTC" timezones="America/New_York|'
                'Europe/Brussels|Africa/Cairo|Asia/Jakarta"]') in post


@pytest.mark.parametrize("lang", ["en", "fr", "es", "pt"])
def test_left_to_right_messages_carry_no_direction_marks(templates: Templates,
                                                         lang: str) -> None:
    for label, message, _ in every_message(templates, lang, ZoneInfo("Asia/Jakarta")):
        assert not set(whole(message)) & {FSI, PDI, RLM, "\u2066", "\u2067"}, label
        assert message.html is None or 'dir="rtl"' not in message.html


# --- what an organizer can change


def own_po(folder: Path, lang: str, changes: dict[str, str], *, source: str | None = None,
           fuzzy: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Path:
    """`folder`/locale/<lang>/LC_MESSAGES/messages.po: the entries of the shipped catalog of
    `source` (or none), with `changes`, `fuzzy` entries marked fuzzy and `drop` left out."""
    catalog = Catalog(locale=lang, domain="messages")
    if source is not None:
        for message in read(po_file(BUILTIN_TEMPLATES, source), source):
            if message.id and message.id not in drop:
                catalog[message.id] = copy.deepcopy(message)
    for msgid, text in changes.items():
        catalog.delete(msgid)  # `add` would keep the string of an entry already there
        catalog.add(msgid, text)
    for msgid in fuzzy:
        entry = catalog[msgid]
        assert entry is not None
        entry.flags.add("fuzzy")
    path = po_file(folder, lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog)
    return path


def test_an_organizers_file_for_one_language_replaces_the_shared_template_there_only(
        tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "announcement.fr.txt").write_text(
        "{% block subject %}À nous : {{ call.title }}{% endblock %}\n"
        "{% block body %}{% include 'email/_footer.' ~ lang ~ '.txt' %}{% endblock %}\n")
    own = Templates([tmp_path, BUILTIN_TEMPLATES])
    context = message_context(CALL, occurrence(), lang="fr", reader=NEW_YORK,
                              now=START - timedelta(days=7))
    french = own.render("announcement", "email", "fr", context)
    assert french.subject == "À nous : Justice For All coalition call"
    assert "Inscription (gratuite) : https://example.org/register" in french.text
    assert french.html is not None and "Rejoignez-nous" in french.html  # the shared .html
    spanish = own.render("announcement", "email", "es",
                         {**context, "lang": "es"})
    assert spanish.subject is not None and spanish.subject.startswith("Justice For All")


def test_an_organizers_po_replaces_the_shipped_wording_entry_by_entry(tmp_path: Path) -> None:
    own_po(tmp_path, "es", {"We hope to see you there!": "¡Nos vemos en la llamada!"})
    own = Templates([tmp_path, BUILTIN_TEMPLATES])
    context = message_context(CALL, occurrence(), lang="es", reader=NEW_YORK,
                              now=START - timedelta(days=7))
    text = own.render("announcement", "email", "es", context).text
    assert "¡Nos vemos en la llamada!" in text and "¡Esperamos verte allí!" not in text
    assert "Te esperamos en la sesión de noviembre" in text  # the shipped entries stay
    assert own.catalogs.problems("es") == []


def test_a_sixth_language_needs_only_a_po_file(tmp_path: Path) -> None:
    """Catalan from a .po alone (its words borrowed from the Spanish catalog here): dates,
    times and cities come from CLDR; config accepts it; check finds nothing missing."""
    own_po(tmp_path / "own", "ca", {}, source="es")
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    path.write_text(path.read_text().replace('folder = ""', 'folder = "own"').replace(
        'languages = ["en", "fr", "es", "ar", "pt"]', 'languages = ["en", "fr", "ca"]'))
    settings = config.load(path)
    assert settings.calls.languages == ("en", "fr", "ca")
    own = Templates(settings.template_folders)
    assert own.catalogs.problems("ca") == []
    context = message_context(CALL, occurrence(), lang="ca", reader=NEW_YORK,
                              now=START - timedelta(days=1))
    text = own.render("tomorrow", "email", "ca", context).text
    assert "dimarts, 13 de novembre del 2018" in text and "Nova York" in text


def test_a_language_without_a_catalog_is_refused_naming_those_there_are(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    path.write_text(path.read_text().replace('languages = ["en", "fr", "es", "ar", "pt"]',
                                             'languages = ["en", "fr", "de"]'))
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    (line,) = str(raised.value).splitlines()
    assert "[calls] languages: no translation catalog for 'de'" in line
    assert line.endswith("available: ar, en, es, fr, pt")


# --- what check says of a catalog


def test_check_names_missing_fuzzy_and_wrong_placeholders_with_file_and_line(
        tmp_path: Path) -> None:
    hope, hello = "We hope to see you there!", "Hello %(name)s,"
    join = ("Join us for the %(month)s %(title)s on %(date)s, at %(time)s your time (%(city)s):")
    subject = "%(title)s: %(date)s, %(time)s %(city)s"
    path = own_po(tmp_path, "ca", {
        join: "Us esperem a la sessió %(month)s de «%(title)s», el %(date)s:",  # dropped
        subject: "%(titol)s: %(date)s, %(time)s (%(city)s)",  # misspelt
        "Hello,": "Hola %(nom)s 100% segur,",  # not a placeholder, and one it does not give
    }, source="es", fuzzy=(hope,), drop=(hello,))
    problems = Catalogs([tmp_path, BUILTIN_TEMPLATES]).problems("ca")
    catalog = read(path, "ca")

    def at(msgid: str) -> str:
        entry = catalog[msgid]
        assert entry is not None
        return f"{path} line {entry.lineno} (ca): "

    expected = [
        f"{path} (ca): missing: \"Hello %(name)s,\"",
        f"{at(hope)}fuzzy, so it is not used: \"{hope}\"",
        f"{at(join)}the translation drops %(time)s of",
        f"{at(join)}the translation drops %(city)s of",
        f"{at(subject)}the translation has %(titol)s, which",
        f"{at(subject)}the translation drops %(title)s of",
        f"{at('Hello,')}the translation has '% se'",
        f"{at('Hello,')}the translation has %(nom)s",
    ]
    for start in expected:
        assert [p for p in problems if p.startswith(start)], (start, problems)
    assert len(problems) == len(expected)


def test_coalition_check_reports_a_broken_translation(coalition: Coalition) -> None:
    folder = coalition.folder / "own"
    own_po(folder, "fr", {"tomorrow": "demain, %(jour)s"})
    config_file = coalition.config
    config_file.write_text(config_file.read_text().replace('folder = ""', 'folder = "own"'))
    ran = coalition("check")
    assert ran.exit_code == 2
    assert f"{po_file(folder, 'fr')} line " in ran.stderr
    assert "(fr): the translation has %(jour)s" in ran.stderr


def test_a_translation_naming_a_placeholder_the_template_lacks_fails_that_render(
        tmp_path: Path) -> None:
    own_po(tmp_path, "es", {"Hello,": "¡Hola, %(nombre)s!"})
    own = Templates([tmp_path, BUILTIN_TEMPLATES])
    context = message_context(CALL, occurrence(), lang="es", reader=NEW_YORK,
                              now=START - timedelta(days=7))
    with pytest.raises(RenderError, match=r"announcement\.txt line \d+: the es translation of "
                                          r"'Hello,' has %\(nombre\)s"):
        own.render("announcement", "email", "es", context)


def test_a_translation_cannot_ask_for_a_huge_width(tmp_path: Path) -> None:
    own_po(tmp_path, "es", {"Hello %(name)s,": "¡Hola, %(name)999999999s!"})
    own = Templates([tmp_path, BUILTIN_TEMPLATES])
    with pytest.raises(RenderError, match="placeholders are written"):
        own.email("confirm", "es", ACCOUNT_SAMPLE)


def test_the_pot_lists_every_string_the_templates_and_the_code_use() -> None:
    """Run `make messages` after changing a template's words."""
    fresh = template_catalog(ROOT / "templates", [ROOT / p for p in PYTHON_SOURCES], ROOT)
    shipped = read(pot_file(BUILTIN_TEMPLATES))
    assert {(m.id, m.context) for m in fresh if m.id} == \
        {(m.id, m.context) for m in shipped if m.id}


# --- the members' page, sign-up and the CLI


@pytest.fixture
def offered(organizer: Callable[[str], Coalition]) -> Coalition:
    coalition = organizer("members")
    path = coalition.config
    assert 'languages = ["en", "fr", "es", "ar", "pt"]' in path.read_text()  # as shipped
    return coalition


@pytest.fixture
def client(offered: Coalition) -> Iterator[TestClient]:
    settings = config.load(offered.config)
    engine = db.open_database(settings.database_url())
    with TestClient(create_app(settings, engine, secret=SECRET)) as test_client:
        yield test_client
    engine.dispose()


@pytest.mark.parametrize(("accept", "lang", "direction", "words"), [
    ("ar-EG,ar;q=0.9", "ar", "rtl", "اجتماعات الائتلاف"),
    ("es-MX,es;q=0.9", "es", "ltr", "Llamadas de la coalición"),
    ("pt-BR", "pt", "ltr", "Chamadas da coalizão"),
    ("fr-CD", "fr", "ltr", "Appels de la coalition"),
])
def test_the_page_speaks_the_browsers_language_in_its_direction(
        client: TestClient, accept: str, lang: str, direction: str, words: str) -> None:
    page = client.get("/", params={"tz": "Africa/Cairo"}, headers={"Accept-Language": accept})
    assert page.status_code == 200
    assert f'<html lang="{lang}" dir="{direction}"' in page.text
    assert f"<h1>{words}</h1>" in page.text
    assert 'hreflang="ar" lang="ar" dir="rtl">العربية</a>' in page.text or lang == "ar"


def test_the_arabic_page_keeps_times_and_offsets_whole(client: TestClient) -> None:
    page = client.get("/", params={"lang": "ar", "tz": "Asia/Kathmandu"}).text
    assert "<bdi>UTC+05:45</bdi>" in page
    assert "<bdi><strong>8:45 م</strong></bdi>" in page
    assert "(<bdi>10:00 ص</bdi> في <bdi>نيويورك</bdi>)" in page


def test_a_language_not_offered_is_refused_naming_those_that_are(client: TestClient) -> None:
    page = client.get("/", params={"lang": "de"})
    assert page.status_code == 400
    assert "(this site speaks en, fr, es, ar, pt)" in page.text


def test_the_sign_up_form_offers_every_language_by_its_own_name(client: TestClient) -> None:
    form = client.get("/subscribe", params={"lang": "es"}).text
    for code, name in (("en", "English"), ("fr", "Français"), ("es", "Español"),
                       ("ar", "العربية"), ("pt", "Português")):
        assert f'<option value="{code}" lang="{code}"' in form and f">{name}</option>" in form


def test_subscriber_add_takes_an_offered_language_and_refuses_another(
        offered: Coalition) -> None:
    added = offered("subscriber", "add", "nour@example.org", "--lang", "ar", "--tz",
                    "Africa/Cairo")
    assert added.exit_code == 0, added.stderr
    refused = offered("subscriber", "add", "hans@example.org", "--lang", "de")
    assert refused.exit_code == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "language 'de' is not one of en, fr, es, ar, pt" in line


def test_an_arabic_reader_gets_an_arabic_reminder(offered: Coalition) -> None:
    offered("subscriber", "add", "nour@example.org", "--lang", "ar", "--tz", "Africa/Cairo")
    ran = offered("render", "justice", "--on", "2030-11-12", "--template", "tomorrow",
                  "--channel", "email", "--lang", "ar", "--now", "2030-11-11T15:00:00Z",
                  "--tz", "Africa/Cairo")
    assert ran.exit_code == 0, ran.stderr
    assert "غدًا" in ran.stdout and "القاهرة" in ran.stdout


def test_a_title_that_looks_like_a_placeholder_is_printed_as_it_is(
        templates: Templates) -> None:
    odd = replace(CALL, title="100% %(title)s {{ x }}")
    context = message_context(odd, occurrence(), lang="ar", reader=NEW_YORK,
                              now=START - timedelta(days=1))
    email = templates.render("tomorrow", "email", "ar", context)
    assert f"«{FSI}100% %(title)s {{{{ x }}}}{PDI}»" in email.text


def test_check_says_an_old_words_file_is_no_longer_read(
        coalition: Coalition, caplog: pytest.LogCaptureFixture) -> None:
    """Before the catalogs, the page's words were in web/text.<lang>.toml; an organizer's copy
    would be silently ignored now. A warning, not a problem: an install upgraded with one
    still starts, its pages in the shipped words."""
    own = coalition.folder / "own" / "web"
    own.mkdir(parents=True)
    (own / "text.fr.toml").write_text('site_title = "Nos appels"\n')
    config_file = coalition.config
    config_file.write_text(config_file.read_text().replace('folder = ""', 'folder = "own"'))
    ran = coalition("check")
    assert ran.exit_code == 0, ran.stderr
    (warned,) = [r.getMessage() for r in caplog.records if "no longer read" in r.getMessage()]
    assert "own/web/text.fr.toml: no longer read" in warned
    assert "own/locale/fr/LC_MESSAGES/messages.po" in warned


def test_a_page_written_for_the_old_words_files_still_renders(offered: Coalition) -> None:
    """Pages an organizer wrote before the catalogs read their words as `t.<key>`."""
    own = offered.folder / "own" / "web"
    own.mkdir(parents=True)
    (own / "notice.html").write_text(
        '{% extends "web/_layout.html" %}\n{% block main %}<p>{{ t.site_title }} · '
        '{{ t["language_" ~ lang] }} · {{ text }}</p>{% endblock %}\n')
    path = offered.config
    path.write_text(path.read_text().replace('folder = ""', 'folder = "own"'))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    with TestClient(create_app(settings, engine, secret=SECRET)) as own_client:
        page = own_client.get("/nowhere", params={"lang": "pt"})
    engine.dispose()
    assert page.status_code == 404
    assert "<p>Chamadas da coalizão · Português · Não há nada neste endereço.</p>" in page.text


@pytest.mark.parametrize(
    ("lang", "line"),
    [
        pytest.param("fr", "Se désabonner de ces rappels : https://x.org/unsubscribe/T",
                     id="fr"),
        pytest.param("es", "Darse de baja de estos recordatorios: https://x.org/unsubscribe/T",
                     id="es"),
        pytest.param("pt", "Cancelar a inscrição nestes lembretes: https://x.org/unsubscribe/T",
                     id="pt"),
        pytest.param("ar", "إلغاء الاشتراك في هذه التذكيرات: https://x.org/unsubscribe/T",
                     id="ar-url-left-bare"),
    ],
)
def test_issue_17_plain_text_email_ends_with_unsubscribe_in_its_language(
    lang: str, line: str
) -> None:
    """French emails ended with an English "Unsubscribe: http://..." line."""
    for name in ("announcement", "tomorrow", "today", "starts-soon", "followup", "changed"):
        context = sample_context(lang)
        context["unsubscribe"] = "https://x.org/unsubscribe/T"
        text = Templates([BUILTIN_TEMPLATES]).render(name, "email", lang, context).text
        assert text.endswith(f"\n\n{line}\n"), name
