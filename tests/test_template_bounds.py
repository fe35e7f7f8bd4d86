"""Issue 10: an organizer's template that works or grows without end (nested `range(100000)`
loops, `{{ 9**(9**9) }}`, `'x' * 10**9`, `range(10**9)` in a page) is stopped by a budget per
render: `coalition check` names its file and line on one line, and the daemon fails that message
alone, with the reason, and sends the others."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from scheduler.config import BUILTIN_TEMPLATES
from scheduler.delivery.budget import BudgetExceeded, Limits
from scheduler.delivery.render import Templates, sample_contexts
from scheduler.delivery.sandbox import BoundedSandbox, TemplateFolder
from tests.conftest import DATA, Coalition

CASES = DATA / "templates"
DUE = "2018-11-06T15:00:30Z"  # issue 13's announcement: five emails and a forum post


def use_folder(coalition: Coalition, case: str) -> None:
    """tests/data/templates/<case>/ as the organizers' own folder ("mine")."""
    shutil.copytree(CASES / case, coalition.folder / "mine")
    config = coalition.config
    config.write_text(config.read_text().replace('folder = ""', 'folder = "mine"'))


def render(source: str, limits: Limits | None = None, **context: Any) -> str:
    env = BoundedSandbox(undefined=StrictUndefined, limits=limits)
    return env.from_string(source).render(context)


def checked(case: str) -> list[str]:
    """`check`'s lines for the message templates of tests/data/templates/<case>/."""
    return Templates([CASES / case, BUILTIN_TEMPLATES]).check(["en"], sample_contexts)


# --- coalition check and the daemon


@pytest.mark.parametrize(("case", "where", "what"), [
    pytest.param("nested_loops", "mine/forum/tomorrow.en.md line 2", "too much work: over",
                 id="nested-range-loops"),
    pytest.param("huge_power", "mine/forum/today.en.md line 2", "too large: a number",
                 id="nine-to-the-nine-to-the-nine"),
    pytest.param("huge_string", "mine/forum/followup.en.md line 2", "too large: a value",
                 id="a-billion-x"),
])
def test_issue_10_check_refuses_a_runaway_message_template_on_one_line(
    coalition: Coalition, case: str, where: str, what: str
) -> None:
    use_folder(coalition, case)
    ran = coalition("check")
    assert ran.exit_code == 2
    (line,) = ran.stderr.splitlines()
    assert where in line and what in line


@pytest.mark.parametrize(("case", "what"), [
    pytest.param("huge_range_page", "line 3 ({lang}): too large: Range too big",
                 id="range-of-a-billion"),
    pytest.param("page_divides_by_zero", "line 3 ({lang}): ZeroDivisionError",
                 id="divides-by-zero"),
])
def test_issue_10_check_refuses_a_failing_page_once_per_language(
    coalition: Coalition, case: str, what: str
) -> None:
    """Was exit 1 with a traceback: only Jinja's own errors were caught for pages."""
    use_folder(coalition, case)
    ran = coalition("check")
    assert ran.exit_code == 2
    lines = ran.stderr.splitlines()
    for line, lang in zip(lines, ("en", "fr", "es", "ar", "pt"), strict=True):
        assert f"mine/web/notice.html {what.format(lang=lang)}" in line


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("issue_13")


def test_issue_10_a_runaway_template_fails_its_readers_alone_and_the_rest_go_out(
    members: Coalition,
) -> None:
    """The French announcement loops 10^10 times: its two readers fail with the reason; the
    English emails and the forum post go out in the same pass."""
    use_folder(members, "hostile_announcement")
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 1
    rows = {d["recipient"]: d for d in members.deliveries()}
    for french in ("bea@example.org", "élodie@exemple.fr"):
        assert rows[french]["status"] == "failed"
        assert rows[french]["last_error"].endswith(
            "/mine/email/announcement.fr.txt line 3: too much work: over 200,000 loop steps "
            "and calls in one render")
    assert rows["topic"]["status"] == "sent"
    written = Counter(str(m["To"]).rpartition("<")[2].rstrip(">") for m in members.inbox())
    assert written == Counter(["ada@example.org", "carl@example.org", "dina@example.org"])


# --- what a template may not do, and where it is said


@pytest.mark.parametrize(("case", "expected"), [
    pytest.param("include_loop", "include_loop/forum/today.en.md line 2: too deep: ",
                 id="includes-itself"),
    pytest.param("extends_itself", "extends_itself/forum/today.en.md line 2: it extends itself",
                 id="extends-itself"),
    pytest.param("not_utf8", "not_utf8/forum/today.en.md line 2: not UTF-8 text (byte 0xe0)",
                 id="latin-1-file"),
])
def test_check_names_the_line_of_a_template_that_cannot_end_or_be_read(
    case: str, expected: str
) -> None:
    """Each was exit 1 with a traceback (RecursionError, UnicodeDecodeError)."""
    (problem,) = checked(case)
    assert expected in problem


@pytest.mark.parametrize(("case", "expected"), [
    pytest.param("include_missing", "include_missing/forum/today.en.md line 2: no template "
                 "forum/_nope.md", id="includes-a-missing-template"),
    pytest.param("dict_changes_while_looped", "dict_changes_while_looped/forum/today.en.md "
                 "line 2: RuntimeError: dictionary changed size", id="python-runtime-error"),
    pytest.param("deeply_nested", "deeply_nested/forum/today.en.md: too deeply nested",
                 id="3000-parentheses"),
])
def test_check_says_on_one_line_what_else_an_override_got_wrong(case: str,
                                                                expected: str) -> None:
    """The last two were exit 1 with a traceback: only some of Python's errors were caught;
    the first said only the missing template's name."""
    (problem,) = checked(case)
    assert expected in problem


def test_a_template_file_that_cannot_be_read_is_one_line_of_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Permissions (the tests may run as root, so the loader is made to fail)."""
    def refuse(self: TemplateFolder, environment: object, template: str) -> Any:
        raise PermissionError(13, "Permission denied", f"{self.folder}/{template}")

    monkeypatch.setattr(TemplateFolder, "get_source", refuse)
    problems = Templates([BUILTIN_TEMPLATES]).check(["en"], sample_contexts)
    assert problems and all(p.endswith(": cannot read: Permission denied") for p in problems)


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                 "{% endfor %}", "too much work: over 200,000 loop steps", id="nested-ranges"),
    pytest.param("{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}"
                 "{% endfor %}", "too much work", id="nested-loops-over-a-string"),
    pytest.param("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
                 "{% endmacro %}{{ f(40) }}", "too much work", id="macro-calls-itself-twice"),
    pytest.param("{% for x in [1] recursive %}{% if loop.depth < 3 %}"
                 "{{ loop(range(100000)) }}{% endif %}{% endfor %}", "too much work",
                 id="recursive-loop"),
    pytest.param("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "too deep",
                 id="macro-calls-itself"),
    pytest.param("{{ 9 ** (9 ** 9) }}", "too large: a number of over 65,536 bits",
                 id="power"),
    pytest.param("{% set ns = namespace(n=7) %}{% for i in range(30) %}"
                 "{% set ns.n = ns.n * ns.n %}{% endfor %}", "too large: a number",
                 id="squaring"),
    pytest.param("{{ 'x' * 10 ** 9 }}", "too large: a value of over 1,000,000", id="repeat"),
    pytest.param("{{ [[1, 2, 3]] * 10 ** 6 }}", "too large: a value", id="repeat-a-list"),
    pytest.param("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "too large: a value",
                 id="doubling-by-tilde"),
    pytest.param("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                 "{% set ns.s = ns.s + ns.s %}{% endfor %}", "too large: a value",
                 id="doubling-by-plus"),
    pytest.param("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}",
                 "too large: a value", id="list-extends-itself"),
    pytest.param("{{ range(10 ** 9) }}", "too large: Range too big", id="range"),
    pytest.param("{{ 2.0 ** 100000 }}", "too large: Numerical result out of range",
                 id="float-overflow"),
    pytest.param("{{ 'x'|center(10 ** 9) }}", "too large: a width", id="center"),
    pytest.param("{{ 'x'.ljust(10 ** 9) }}", "too large: a width", id="ljust"),
    pytest.param("{{ '%0999999999d' % 1 }}", "too large: a width", id="percent-width"),
    pytest.param("{{ '%*d' % (10 ** 9, 1) }}", "too large: a width", id="percent-star"),
    pytest.param("{{ '%0*d'|format(10 ** 9, 1) }}", "too large: a width", id="format-filter"),
    pytest.param("{{ '{:>999999999}'.format(1) }}", "too large: a width", id="str-format"),
    pytest.param("{{ '{:>{}}'.format(1, 10 ** 9) }}", "too large: a width",
                 id="str-format-nested"),
    pytest.param("{{ range(100000)|join('x' * 100000) }}", "too large: a value",
                 id="join-filter"),
    pytest.param("{{ ('x' * 100000).join(range(100000)|map('string')) }}",
                 "too large: a value", id="str-join"),
    pytest.param("{{ ('x' * 1000)|replace('', 'y' * 10000) }}", "too large: a value",
                 id="replace-filter"),
    pytest.param("{{ ('x' * 1000).replace('', 'y' * 10000) }}", "too large: a value",
                 id="str-replace"),
    pytest.param("{{ ('a\n' * 100000)|indent(100) }}", "too large: a value", id="indent"),
    pytest.param("{{ ('x' * 200000)|wordwrap(1) }}", "too large: wordwrap", id="wordwrap"),
    pytest.param("{{ [1]|batch(10 ** 9, 0)|list }}", "too large: a width", id="batch"),
    pytest.param("{{ [1]|slice(10 ** 9)|list }}", "too large: a width", id="slice"),
    pytest.param("{{ [1]|tojson(indent=10 ** 9) }}", "too large: a width", id="tojson"),
    pytest.param("{{ 1.5|round(10 ** 9, 'floor') }}", "too large: a precision", id="round"),
    pytest.param("{{ ([[1] * 1000] * 1000)|sum(start=[]) }}", "too large: a value",
                 id="sum-of-lists"),
    pytest.param("{{ (1).to_bytes(10 ** 9, 'big') }}", "too large: a width", id="to-bytes"),
    pytest.param("{{ 'a\tb'.expandtabs(10 ** 9) }}", "too large: a value", id="expandtabs"),
    pytest.param("{{ lipsum(10 ** 9) }}", "too large: a width", id="lipsum"),
    pytest.param("{% for i in range(100000) %}" + "y" * 100 + "{% endfor %}",
                 "too large: over 4,000,000 characters of output", id="text-in-a-loop"),
    pytest.param("{% macro m() %}{% for i in range(100000) %}{{ 'x' * 999999 }}{% endfor %}"
                 "{% endmacro %}{{ m()|length }}", "too large: over 4,000,000 characters",
                 id="macro-buffer"),
])
def test_a_runaway_template_is_stopped(source: str, expected: str) -> None:
    with pytest.raises(BudgetExceeded, match=expected.replace("(", r"\(")):
        render(source)


def test_work_is_counted_per_render() -> None:
    """41 steps (the loop and its 40 items) fit in 50, again and again."""
    env = BoundedSandbox(limits=Limits(steps=50))
    template = env.from_string("{% for i in range(40) %}{% endfor %}.")
    assert template.render() == template.render() == "."
    with pytest.raises(BudgetExceeded, match="over 50 loop steps"):
        env.from_string("{% for i in range(50) %}{% endfor %}").render()


def test_a_render_past_its_time_stops_on_the_environments_clock() -> None:
    """A clock that moves a second at each reading: the third step is past 2 s."""
    seconds: Iterator[float] = iter(range(1000))
    env = BoundedSandbox(clock=lambda: next(seconds))
    with pytest.raises(BudgetExceeded, match="over 2 s in one render"):
        env.from_string("{% for i in range(3) %}{% endfor %}").render()


def test_output_is_counted_with_what_macros_buffer() -> None:
    with pytest.raises(BudgetExceeded, match="over 100 characters of output"):
        render("{% macro m() %}{% for i in range(60) %}xx{% endfor %}{% endmacro %}"
               "{{ m()|length }}", Limits(output=100))
    assert render("{% for i in range(30) %}abc{% endfor %}", Limits(output=100)) == "abc" * 30


# --- everything else renders as before


FEATURES = [
    "{% for x in xs %}{{ loop.index }}/{{ loop.length }}/{{ loop.revindex }}"
    "{{ loop.last }}{{ loop.cycle('a', 'b') }}{{ loop.previtem|default('-') }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% else %}none{% endfor %}",
    "{% for x in xs if x > 1 %}{{ x }}{% else %}none{% endfor %}{% for x in [] %}{% else %}-"
    "{% endfor %}",
    "{% for n in tree recursive %}{{ n.name }}({{ loop(n.kids) }}){% endfor %}",
    "{% macro m(a, b=2) %}[{{ a ~ b }}{{ caller() if caller is defined }}]{% endmacro %}{{ m(1) }}"
    "{% call m(3) %}in{% endcall %}",
    "{% set s %}block {{ xs|join(', ') }}{% endset %}{{ s|upper }}{% filter center(20) %}"
    "x{% endfilter %}",
    "{{ 'a' ~ 1 ~ none }}{{ '%s-%05.1f' % ('x', 2.5) }}{{ '{}:{:>4}'.format('a', 'b') }}"
    "{{ 'x' * 3 }}{{ 2 ** 10 }}{{ [1] + [2] }}{{ 7 % 3 }}{{ 'x' + 'y' }}",
    "{{ xs|sum }}{{ xs|batch(2)|list }}{{ xs|slice(2)|list }}{{ d|tojson }}{{ 2.55|round(1) }}"
    "{{ 'a b c'|replace(' ', '-') }}{{ 'l1\nl2'|indent(2, true) }}{{ 'x y z'|wordwrap(3) }}"
    "{{ '%d'|format(3) }}{{ 'http://x.org'|urlize }}{{ [[1], [2]]|sum(start=[]) }}",
    "{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}"
    "{{ ns.n }}{{ range(3)|list }}{{ cycler('a', 'b').next() }}{{ d.keys()|list }}",
    "{{ 'ab'.center(6, '*') }}{{ ','.join(['a', 'b']) }}{{ 'a\tb'.expandtabs(2) }}"
    "{{ 'aXb'.replace('X', 'yy') }}{{ (5).to_bytes(2, 'big') }}{{ xs.append(4) }}{{ xs }}",
]


@pytest.mark.parametrize("source", FEATURES, ids=lambda s: s[:30])
def test_a_normal_template_renders_as_in_jinjas_sandbox(source: str) -> None:
    def context() -> dict[str, Any]:
        return {"xs": [1, 2, 3], "d": {"a": 1, "b": 2},
                "tree": [{"name": "r", "kids": [{"name": "k", "kids": []}]}]}

    expected = SandboxedEnvironment(undefined=StrictUndefined).from_string(source)
    assert render(source, **context()) == expected.render(context())
