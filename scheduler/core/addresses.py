"""Email addresses: checked where they enter, and written the way each transport needs them.

Every address typed by someone (`coalition subscriber add` and `import`, `coalition invite
--to`, the sign-up form) goes through `mailbox` or `with_name`, which use email-validator
(syntax only: no DNS lookup). What is stored is normalized: the part before the @ in Unicode
NFC and lower case (as addresses were stored before), the domain in its IDNA (ASCII) form, so
`ada@exémple.fr` is stored and sent as `ada@xn--exmple-cva.fr`. A part before the @ in letters
beyond ASCII (`élodie@exemple.fr`) is accepted: such a message needs a mail server that offers
SMTPUTF8 (RFC 6531), and its header carries the address in UTF-8 (RFC 6532).
"""

from __future__ import annotations

import unicodedata
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.utils import formataddr, parseaddr

from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from scheduler.errors import InvalidValue


class InvalidAddress(InvalidValue):
    """Not an address we can send to; `text` is what was typed, `reason` what is wrong."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{text!r} is not an email address: {reason}")
        self.text, self.reason = text, reason


def _validated(text: str) -> ValidatedEmail:
    try:
        return validate_email(text.strip(), check_deliverability=False, allow_display_name=True)
    except EmailNotValidError as e:
        raise InvalidAddress(text, str(e)) from e


def _stored(found: ValidatedEmail) -> str:
    return f"{unicodedata.normalize('NFC', found.local_part.lower())}@{found.ascii_domain}"


def mailbox(text: str) -> str:
    """The address alone, normalized as it is stored ('Ada <Ada@Exémple.fr>' gives
    'ada@xn--exmple-cva.fr'), or `InvalidAddress`."""
    return _stored(_validated(text))


def with_name(text: str) -> str:
    """'Ada <ada@example.org>' or 'ada@example.org', checked; the address normalized as
    `mailbox` does, the name kept."""
    found = _validated(text)
    return formatted(found.display_name or "", _stored(found))


def formatted(name: str, address: str) -> str:
    """'Name <address>' for a header: the name quoted, or RFC 2047-encoded when it is not
    ASCII; the address as it is (`formataddr` refuses one that is not ASCII)."""
    if not name:
        return address
    return formataddr((name, "x@x"), charset="utf-8").removesuffix("<x@x>") + f"<{address}>"


def header(name: str, address: str) -> Address:
    """The To of a message the email package builds: an `Address`, never a string. Given
    "Name <address>" as a string, the package parses it again and, for a name beyond ASCII
    with a comma or "<...>" in it, writes it back unquoted ("To: Smith, =?utf-8?q?Jos=C3=A9?=
    <...>": two recipients, or one the name chose)."""
    local, _, domain = address.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def header_of(text: str) -> Address:
    """`header` of a 'Name <address>' that `with_name` or `formatted` wrote."""
    name, address = parseaddr(text)
    return header(str(make_header(decode_header(name))) if name else "", address)


def needs_smtputf8(address: str) -> bool:
    """True for an address that SMTP can carry only with the SMTPUTF8 extension."""
    return not address.isascii()


def for_sending(address: str) -> str:
    """A stored address as it goes on the wire: its domain in IDNA form (rows stored before
    addresses were normalized may hold a Unicode domain). One that does not pass is returned
    unchanged, for the transport to refuse on its own."""
    if address.isascii():
        return address
    try:
        found = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address
    return f"{found.local_part}@{found.ascii_domain}"
