"""The instance's secrets: the API key and a ``base_url``'s credentials (docs/configuration.md).

They are checked once, at construction, and kept out of everything the instance shows or
writes: fields, ``repr``, dumps, logs, exception texts and pickles.

- A key with a control character (the trailing newline of a key read from a file, a CR or a
  NUL) could never be sent as a header: it is a ``ValueError`` that names the problem, not
  the key.
- ``http://user:password@host/v1`` (a server behind a proxy that wants Basic auth): the
  credentials are taken out of the URL and sent as httpx sends URL credentials (HTTP Basic
  auth, ``_http``); the URL the instance keeps shows the password masked,
  as httpx's own ``URL`` repr does (``http://user:[secure]@host/v1``).
- A pickle carries neither secret, only a token. Unpickled in the same process, or in a
  process forked from it while the original instance lives, the token finds the secrets
  again; anywhere else (a spawned worker) the key comes from the environment as for a new
  instance, and a key or password that cannot be found is a ``ValueError`` that says so, raised
  by the copy's first call (unpickling succeeds: see ``AI21.__setstate__``).
- A credential header in ``default_headers`` (:func:`is_credential_header`: ``X-Api-Key``, a
  gateway's ``Authorization``, ...) is held as the key is: the field shows its value as the
  mask (:func:`split_headers`), requests send the value held (:func:`sent_headers`), and a
  pickle finds it again by the token as it finds the key.
- A credential the user put in a header (their own client's, ``default_headers``, a call's
  ``extra_headers``, an ``auth=`` of their client) is masked in an exception's text as well,
  read from the request as it was sent, and only when there is an exception to mask
  (:func:`header_forms`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import unicodedata
import urllib.request
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias
from urllib.parse import quote

import httpx

MASK = "[secure]"  # httpx's URL repr writes a password as this


def check_api_key(key: object, source: str) -> str:
    """``key`` if it can be sent as a header; a ``ValueError`` naming the problem, never the
    key, if not."""
    if not isinstance(key, str):
        raise ValueError(f"{source} must be a string, got {type(key).__name__}")
    for position, char in enumerate(key):
        if not char.isascii():
            # httpx writes header values as ASCII: its UnicodeEncodeError would quote the whole
            # header, key included, in its repr (a pasted key often carries a smart quote or
            # a non-breaking space).
            raise ValueError(
                f"{source} contains the non-ASCII character U+{ord(char):04X} at position "
                f"{position}; a key is sent in an HTTP header, which carries ASCII only"
            )
        if unicodedata.category(char) == "Cc":
            what = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL"}.get(
                char, f"the control character U+{ord(char):04X}"
            )
            where = "at its end" if position == len(key) - 1 else f"at position {position}"
            raise ValueError(
                f"{source} contains {what} {where} (a key read from a file keeps its trailing "
                "newline: strip it); a key must be printable text"
            )
    if key != key.strip(" "):
        # A header value cannot start or end with a space (RFC 9110 section 5.5): h11 refused
        # it on the sync path, while aiohttp sent it and the server stripped it.
        where = "at its end" if key.endswith(" ") else "at its start"
        raise ValueError(f"{source} has a space {where} (copied with the key?): strip it")
    return key


@dataclass(frozen=True)
class URLCredentials:
    """The user name and password of a ``base_url`` (repr shows neither)."""

    username: str = field(repr=False)
    password: str = field(repr=False)


def split_credentials(url: httpx.URL) -> tuple[httpx.URL, URLCredentials | None]:
    """``url`` without credentials, and the credentials it had (``None`` if none)."""
    if not url.username and not url.password:
        return url, None
    if url.password == MASK:
        raise ValueError(
            f"base_url's password is {MASK!r}, the mask this package (like httpx) shows in "
            "place of a password: pass the URL with the real password"
        )
    credentials = URLCredentials(url.username, url.password or "")
    return url.copy_with(username=None, password=None), credentials


def _userinfo_password(text: str) -> tuple[str, str, str] | None:
    """``text`` split around the password of its userinfo (``scheme://user:`` + password +
    ``@host...``), read as loosely as a URL that may not parse needs; ``None``: no password."""
    head, separator, rest = text.rpartition("://") if "://" in text else ("", "", text)
    if "@" not in rest:
        return None
    userinfo, host = rest.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return None
    return f"{head}{separator}{user}:", password, f"@{host}"


def shown_url(text: str, detail: str = "") -> tuple[str, str]:
    """``text``, a URL given by the user that may not even parse, and ``detail`` (a parser's
    message about it), for an error message: any password in them masked, as httpx's repr
    masks it (``user:[secure]@host``)."""
    parts = _userinfo_password(text)
    if parts is None:
        return text, detail
    before, password, after = parts
    # A parser that read the URL differently may quote a piece of the password (httpx reads
    # http://user:pass/word@host's "pass" as a port): every quoted piece of it is masked too.
    detail = re.sub(r"'([^']+)'", lambda m: MASK if m[1] in password else m[0], detail)
    return before + MASK + after, detail.replace(password, MASK)


def masked(url: httpx.URL) -> str:
    """``url`` as httpx's repr shows it: the password replaced by ``[secure]``."""
    if not url.password:
        return str(url)
    return repr(url)[len("URL('") : -len("')")]


# A request's headers: httpx's ``Headers`` (a Mapping), a dict, or (name, value) pairs.
Headers: TypeAlias = "Mapping[str, str] | Iterable[tuple[str, str]]"

# Which headers hold a credential. httpx masks Authorization and Proxy-Authorization in its
# Headers repr (``SENSITIVE_HEADERS``), openai-python's log filter Authorization and Azure's
# ``api-key``; Sentry's default scrubbing denylist (from its Relay) goes further, by word:
# password, secret, api_key, auth, credentials, token, session, cookie. A gateway's own header
# is named anything (``X-Api-Key``, ``X-Auth-Token``, ``Ocp-Apim-Subscription-Key``), so a name
# counts when it contains one of these words, whatever its case. Masking a header that held no
# secret costs only that value's quotes in an error.
CREDENTIAL_WORDS = (
    "auth",
    "cookie",
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "session",
    "credential",
)

HEADER_FORM_MIN = 8  # characters; a value of a credential header shorter than this is left

# RFC 9110 section 11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]. The
# scheme (Bearer, Basic, ...) says nothing secret and stays readable: ``Bearer [secure]``.
_SCHEME = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +(\S.*)")


def is_credential_header(name: str) -> bool:
    """Whether a header named ``name`` counts as holding a credential (:data:`CREDENTIAL_WORDS`)."""
    lowered = name.lower()
    return any(word in lowered for word in CREDENTIAL_WORDS)


def header_forms(headers: Headers) -> list[str]:
    """The secrets among ``headers`` as a server could quote them back: the value of each
    credential header (:func:`is_credential_header`); of an ``Authorization`` or
    ``Proxy-Authorization``, what follows the scheme, and for ``Basic`` its password too;
    of a ``Cookie``, each cookie's value; each of at least :data:`HEADER_FORM_MIN` characters.
    Computed only when an exception is masked: a call that succeeds pays nothing for it."""
    if isinstance(headers, httpx.Headers):
        items: Iterable[tuple[str, str]] = headers.multi_items()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    forms: list[str] = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if not is_credential_header(name):
            continue
        lowered = name.lower()
        scheme = _SCHEME.fullmatch(value) if lowered.endswith("authorization") else None
        if lowered == "cookie":
            for pair in value.split(";"):
                cookie, equals, cookie_value = pair.strip().partition("=")
                forms.append(cookie_value.strip() if equals else cookie)
        elif scheme is not None:
            forms.append(scheme[2])
            if scheme[1].lower() == "basic":
                forms.append(_basic_password(scheme[2]))
        else:
            forms.append(value)
    # A header is taken for a credential by its name alone, so a short value may be none
    # (``X-Auth-Mode: none``, ``X-Api-Key-Version: 2024``): masking it everywhere would garble
    # the message. Keys and tokens are longer than this.
    return [form for form in forms if len(form) >= HEADER_FORM_MIN]


def _basic_password(token: str) -> str:
    """The password of a ``Basic`` token (base64 of ``user:password``), as a server that
    decoded it could quote it; ``""`` if it is not one."""
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return ""
    return decoded.partition(":")[2]


def _longest_first(forms: Iterable[str]) -> list[str]:
    """The forms worth masking, longest first: a short one masked first could break a longer
    one it is part of and leave the rest of that one shown. Shorter than 4 characters is left
    alone (masking it everywhere would garble the message, and it guards nothing), and so is a
    piece of the mask itself (``secure``), which masking would nest. Each is masked as a JSON
    string quotes it too (an error body is often JSON): quotes and backslashes escaped,
    non-ASCII as ``\\u`` escapes or not, and ``/`` as ``\\/`` (PHP's ``json_encode`` writes it
    so by default, and a base64 token may hold one)."""
    kept: set[str] = set()
    for form in forms:
        if len(form) < 4 or form in MASK:
            continue
        for ascii_only in (True, False):
            quoted = json.dumps(form, ensure_ascii=ascii_only)[1:-1]
            kept |= {form, quoted, quoted.replace("/", "\\/")}
    return sorted(kept, key=len, reverse=True)


# Where a message cuts what a server said at a limit ("...", after a repr's closing quote or
# not; or its end: an error body is kept to its first 64 KiB), the cut may fall inside a
# secret: the piece shown is masked too.
_CUT = re.compile(r"'?\.\.\.|\Z")


def _masked(text: str, forms: list[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return _cut_masked(text, forms) if forms else text


def _cut_masked(text: str, forms: list[str]) -> str:
    """``text`` with the start of a secret that a cut (``...``, or the end) ends masked:
    ``sk-a1b2...`` reads ``[secure]...``. Pieces under 4 characters are left, as short secrets
    are."""
    # The last 4 characters of a piece before a cut are 4 of some secret's: one look-up per
    # cut finds the secrets worth comparing, so that a hostile body of cuts stays cheap
    # (64 KiB of "..." or of a secret's start and "..." in a few tens of milliseconds).
    # 4 characters -> (secret, n) for each start of a secret, secret[:n], ending in them (the
    # starts themselves are sliced only when compared: a JWT's would be megabytes).
    starts: dict[str, list[tuple[str, int]]] = {}
    for form in forms:
        for end in range(4, len(form)):
            starts.setdefault(form[end - 4 : end], []).append((form, end))
    pieces, done = [], 0
    for cut in _CUT.finditer(text):
        before = text[done : cut.start()]
        candidates = starts.get(before[-4:], ())
        size = max((n for form, n in candidates if before.endswith(form[:n])), default=0)
        pieces += [before[: len(before) - size], MASK if size else "", cut[0]]
        done = cut.end()
    return "".join([*pieces, text[done:]])


def _scrub(exc: BaseException, forms: list[str]) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and forms:
        seen.add(id(current))
        current.args = tuple(
            _masked(arg, forms) if isinstance(arg, str) else arg for arg in current.args
        )
        details = getattr(current, "details", None)
        if isinstance(details, str):
            current.details = _masked(details, forms)  # type: ignore[attr-defined]
        current = current.__cause__ or current.__context__


def _credential_forms(credentials: URLCredentials) -> list[str]:
    """A URL's password as a server could echo it: as written, as percent-encoded in a URL,
    and in the Basic token sent for ``user:password`` (httpx's ``BasicAuth``: UTF-8, base64)."""
    user, password = credentials.username, credentials.password
    basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return [password, quote(password, safe=""), basic]


def proxy_forms() -> list[str]:
    """The credentials of the environment's proxies (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``; httpx reads them with the same stdlib function). httpcore writes their
    ``Proxy-Authorization`` below the request the package sees, so the request's headers do
    not hold them; a forward proxy may quote them back. Read only when an exception is masked."""
    forms: list[str] = []
    for scheme, url in urllib.request.getproxies().items():
        if scheme == "no" or "@" not in url:
            continue
        try:
            credentials = split_credentials(httpx.URL(url if "://" in url else f"http://{url}"))[1]
        except (httpx.InvalidURL, TypeError, ValueError):
            continue  # not a URL httpx would use either
        if credentials is not None:
            forms += _credential_forms(credentials)
    return forms


def scrub_headers(exc: BaseException, headers: Headers) -> None:
    """Mask the credentials among ``headers`` (a request's, as sent), and the environment's
    proxies', in the texts of ``exc`` and the exceptions chained to it, in place (see
    :meth:`Secrets.scrub`)."""
    _scrub(exc, _longest_first([*header_forms(headers), *proxy_forms()]))


def split_headers(
    headers: Mapping[str, str], held: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """``headers`` as a field shows them, each credential header's value (by
    :func:`is_credential_header`, the rule that masks them in errors) replaced by the mask, and
    those values by name. A value that is the mask (the field's own, assigned back with a
    header added) stands for the value ``held`` under that name, in any case; with none held it
    stays the mask, which :func:`masked_header` finds before any request."""
    shown: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, value in headers.items():
        if not value or not is_credential_header(name):
            shown[name] = value  # an empty value hides nothing
            continue
        shown[name] = MASK
        if value == MASK:
            lowered = name.lower()
            found = held.get(name)
            if found is None:
                found = next((v for n, v in held.items() if n.lower() == lowered), None)
            if found is None:
                continue
            value = found
        values[name] = value
    return shown, values


def sent_headers(shown: Mapping[str, str], held: Mapping[str, str]) -> dict[str, str]:
    """The headers a field shows (:func:`split_headers`) as requests send them: each masked
    value replaced by the value held under its name."""
    return {
        name: held[name] if value == MASK and name in held else value
        for name, value in shown.items()
    }


def masked_header(header: tuple[str, str]) -> bool:
    """Whether a header to send is a credential header whose value is the mask: none was held
    for it (a dump loaded again, a masked value assigned to a new name)."""
    return header[1] == MASK and is_credential_header(header[0])


class Secrets:
    """One instance's secrets, findable by a token while the instance lives (pickling): the
    key, a ``base_url``'s credentials, and the values of ``default_headers``' credential
    headers (by name)."""

    __slots__ = ("__weakref__", "api_key", "credentials", "headers", "token")

    def __init__(
        self,
        api_key: str | None,
        credentials: URLCredentials | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.credentials = credentials
        self.headers = dict(headers or {})
        self.token = secrets.token_hex(16)
        _LIVE[self.token] = self

    def __repr__(self) -> str:
        return "Secrets(...)"

    def __copy__(self) -> Secrets:
        """The same secrets under a token of their own (an instance's copy holds its own)."""
        return Secrets(self.api_key, self.credentials, self.headers)

    def __deepcopy__(self, memo: dict[int, object]) -> Secrets:
        return self.__copy__()

    def _forms(self) -> list[str]:
        """Each secret as a server could echo it: the key, and the ``base_url`` password's
        forms (:func:`_credential_forms`)."""
        forms = [self.api_key or ""]
        if self.credentials is not None:
            forms += _credential_forms(self.credentials)
        return forms

    def scrub(self, exc: BaseException, headers: Headers = ()) -> None:
        """Mask the secrets in the texts of ``exc`` and the exceptions chained to it, in place:
        the instance's, and the credentials among ``headers`` (the request's, as sent).

        A server may quote what it was sent (its ``Authorization`` header) in an error body, a
        stream's error event or a broken answer, which the exception quotes in turn
        (``ai21.errors`` keep it as ``details``).
        """
        _scrub(exc, _longest_first([*self._forms(), *header_forms(headers), *proxy_forms()]))


# Weak values: an entry goes with the instance that holds it.
_LIVE: weakref.WeakValueDictionary[str, Secrets] = weakref.WeakValueDictionary()


def find(token: object) -> Secrets | None:
    """The live secrets for a pickled token (``None`` if they are gone or unknown here)."""
    return _LIVE.get(token) if isinstance(token, str) else None
