"""The members' page's words that the code chooses (a notice's title and line, an error, a
button), by key, in English; the catalogs translate them (`make messages` finds them here).

A key's words are a string, or (singular, plural, name) for words with a number in them:
`name` is the placeholder that holds the number. Placeholders are `%(name)s`, filled by
`Words.say`. The pages' own words are in their templates (`_("...")`); pages written for an
older version may still read these as `t.<key>`.
"""

from __future__ import annotations

from typing import Any

from scheduler.delivery import translate
from scheduler.delivery.catalogs import Speaker, language_name


def N_(message: str) -> str:
    """Marks a string for the catalogs; translated where it is used."""
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:  # gettext's naming
    """Marks a string with plural forms."""
    return singular, plural


WORDS: dict[str, str | tuple[str, str, str]] = {
    "site_title": N_("Coalition calls"),
    "skip": N_("Skip to the calls"),
    "language": N_("Language"),
    "intro": N_("The coalition's next calls, in your own time zone. Put them in your calendar, "
                "or get reminders by email."),
    "your_zone": N_("Your time zone"),
    "show_times": N_("Show times"),
    "zone_guess": N_("Not your zone? Choose yours above."),
    "email_cta": N_("Get reminders by email"),
    "subscribe_all": N_("Subscribe to all calls in your calendar"),
    "register": N_("Register"),
    "cancelled": N_("Cancelled"),
    "moved": N_("Moved"),
    "add_to_calendar": N_("Add to calendar"),
    "subscribe_calendar": N_("Subscribe in your calendar"),
    "apple_outlook": N_("Apple Calendar, Outlook, Thunderbird"),
    "google": N_("Google Calendar"),
    "feed_address": N_("Calendar address, for other apps"),
    "no_calls": N_("No calls are planned at the moment."),
    "signup_title": N_("Reminders by email"),
    "signup_intro": N_("We email you before each call, with its time in your zone and in your "
                       "language. Every email has a link that unsubscribes you in one click."),
    "form_error": N_("Please check the form:"),
    "email_field": N_("Email address"),
    "name_field": N_("Name (optional)"),
    "language_field": N_("Language of the emails"),
    "zone_field": N_("Your time zone"),
    "calls_field": N_("Which calls"),
    "all_calls": N_("All calls, including new ones"),
    "send": N_("Send me a confirmation email"),
    "back": N_("Back to the calls"),
    "every_call": N_("every call"),
    "sent_title": N_("Check your inbox"),
    "sent_text": (*Nn_("If %(email)s can receive email, a confirmation link is on its way. "
                       "Open it within %(hours)s hour to start your reminders.",
                       "If %(email)s can receive email, a confirmation link is on its way. "
                       "Open it within %(hours)s hours to start your reminders."), "hours"),
    "confirm_title": N_("Confirm your reminders"),
    "confirm_text": N_("Reminders for %(calls)s will go to %(email)s, with times for %(zone)s."),
    "confirm_button": N_("Confirm"),
    "confirmed_title": N_("You are subscribed"),
    "confirmed_text": N_("Reminders for %(calls)s will go to %(email)s. Every email has a link "
                         "to stop them."),
    "unsubscribe_link": N_("Changed your mind? Unsubscribe"),
    "unsubscribe_title": N_("Unsubscribe"),
    "unsubscribe_text": N_("Stop all reminders about coalition calls to this address?"),
    "unsubscribe_button": N_("Unsubscribe"),
    "unsubscribed_title": N_("Unsubscribed"),
    "unsubscribed_text": N_("%(email)s will get no more reminders."),
    "problem_title": N_("Something is not right"),
    "link_invalid": N_("This link is not valid. It may have been cut in two by your email "
                       "program: try copying the whole address."),
    "form_expired": N_("This form has expired or was not sent from this site. Please send it "
                       "again."),
    "too_many": (*Nn_("Too many sign-ups in a short time. Please try again in %(minutes)s "
                      "minute.",
                      "Too many sign-ups in a short time. Please try again in %(minutes)s "
                      "minutes."), "minutes"),
    "send_failed": N_("We could not send the email just now. Please try again in a few "
                      "minutes."),
    "not_found": N_("There is nothing at this address."),
    "bad_request": N_("This request is not one we understand."),
    "server_error": N_("Something went wrong on our side. Please try again later."),
    "confirm_invalid": N_("This confirmation link is not valid. It may have been cut in two by "
                          "your email program: try copying the whole address, or sign up "
                          "again."),
    "confirm_expired": N_("This confirmation link has expired. Please sign up again."),
    "confirm_after_unsubscribe": N_("You unsubscribed after this link was sent. To come back, "
                                    "please sign up again."),
    "invalid_email": N_("The email address is not valid."),
    "email_unusable": N_("We cannot send email to this address: our mail server does not "
                         "accept it. Please use another address."),
    "invalid_name": N_("The name must be one line of at most 200 characters."),
    "invalid_language": N_("Please choose a language from the list."),
    "invalid_zone": N_("Please choose a time zone from the list."),
    "invalid_calls": N_("Please choose at least one call, or all calls."),
}


class Words:
    """The words of `WORDS` in one language."""

    def __init__(self, speaker: Speaker, languages: tuple[str, ...] | list[str]) -> None:
        self.speaker = speaker
        self.languages = list(languages)

    def __contains__(self, key: object) -> bool:
        return key in WORDS

    def say(self, key: str, **fill: Any) -> str:
        """The words for `key` with their placeholders filled; a string that is not a key is
        said as it is (an error's own message)."""
        words = WORDS.get(key)
        if words is None:
            return key
        translations = self.speaker.translations
        if isinstance(words, tuple):
            singular, plural, count = words
            text = translations.ngettext(singular, plural, int(fill.get(count, 2)))
            msgid = singular
        else:
            text, msgid = translations.gettext(words), words
        if not fill and "%" not in text:
            return text
        return str(translate.fill(text, fill, speaker=self.speaker, html=False, msgid=msgid))

    def table(self) -> dict[str, str]:
        """Every key without placeholders as `t.<key>` for templates, and `language_<code>`
        for the languages offered."""
        found = {key: self.say(key) for key, words in WORDS.items()
                 if isinstance(words, str) and "%(" not in words}
        found.update({f"language_{code}": language_name(code) for code in self.languages})
        return found
