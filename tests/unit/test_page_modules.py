"""The router's pages are plain ES modules, served as JavaScript, with no state at module level.

No bundler and no npm: each ``static/*.js`` is a module the browser fetches as it is. A
small scanner (comments, strings, templates and regular expressions skipped; brackets
counted) reads each module's top level, where only imports, constants, functions, classes
and the entry call may stand: a ``let`` or ``var`` there, a ``const`` bound to an object
that is not frozen, or an assignment is state shared by every recording the page makes.
The browser test (``tests/integration/test_browser_page.py``) loads the page itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from asrpool_router.app import STATIC, create_app
from asrpool_router.settings import RouterSettings

MODULES = sorted(STATIC.glob("*.js"))
PAGES = sorted(STATIC.glob("*.html"))
# The recorder page's modules: the split this test holds (a module lost is a test to fix).
RECORDER_MODULES = {"recorder.js", "capture.js", "live.js", "upload.js", "pcm.js"}

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
# After these a "/" starts a regular expression, not a division.
_BEFORE_REGEX = set("(,=:[!&|?{};+-*%<>~^") | {
    "return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void", "throw",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_NUMBER = re.compile(r"\d[\w.]*")
_PUNCT = re.compile(r"=>|===|!==|==|!=|<=|>=|\*\*=|[-+*/%&|^]=|&&=|\|\|=|\?\?=|\.\.\.|\S")


@dataclass(frozen=True)
class Token:
    text: str  # a word, number or punctuator; "<str>" for a string or template
    depth: int  # brackets open around it
    line: int


def tokens(source: str) -> list[Token]:
    """The code's tokens with their bracket depth; raises if the brackets do not balance."""
    out: list[Token] = []
    stack: list[str] = []  # open brackets; "`" for a template's ${ … }
    i, line, n = 0, 1, len(source)

    def significant() -> str | None:
        return out[-1].text if out else None

    def skip_template(start: int) -> int:
        """From just after a ` (or a ${…}'s }), to just after the closing ` or an opening ${."""
        j = start
        while j < n:
            c = source[j]
            if c == "\\":
                j += 2
                continue
            if c == "`":
                return j + 1
            if c == "$" and source.startswith("${", j):
                stack.append("`")
                return j + 2
            j += 1
        raise ValueError("unterminated template")

    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            end = source.index("*/", i + 2) + 2
            line += source.count("\n", i, end)
            i = end
        elif c in "'\"":
            j = i + 1
            while source[j] != c:
                if source[j] == "\n":
                    raise ValueError(f"line {line}: unterminated string")
                j += 2 if source[j] == "\\" else 1
            out.append(Token("<str>", len(stack), line))
            i = j + 1
        elif c == "`":
            out.append(Token("<str>", len(stack), line))
            end = skip_template(i + 1)
            line += source.count("\n", i, end)
            i = end
        elif c == "/" and (significant() is None or significant() in _BEFORE_REGEX):
            j, in_class = i + 1, False
            while in_class or source[j] != "/":
                if source[j] == "\n":
                    raise ValueError(f"line {line}: unterminated regular expression")
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            j += 1
            while j < n and source[j].isalpha():
                j += 1  # flags
            out.append(Token("<str>", len(stack), line))
            i = j
        elif c in _OPEN:
            out.append(Token(c, len(stack), line))
            stack.append(c)
            i += 1
        elif c in _CLOSE:
            if not stack:
                raise ValueError(f"line {line}: {c} closes nothing")
            opened = stack.pop()
            if opened == "`" and c == "}":
                end = skip_template(i + 1)  # back in the template's text
                line += source.count("\n", i, end)
                i = end
                continue
            if opened != _CLOSE[c]:
                raise ValueError(f"line {line}: {c} closes {opened}")
            out.append(Token(c, len(stack), line))
            i += 1
        else:
            match = _WORD.match(source, i) or _NUMBER.match(source, i) or _PUNCT.match(source, i)
            assert match is not None
            out.append(Token(match.group(), len(stack), line))
            i = match.end()
    if stack:
        raise ValueError(f"unclosed {stack[-1]}")
    return out


def top_level_state(source: str) -> list[str]:
    """What at the module's top level holds mutable state: one line per finding."""
    found: list[str] = []
    top = tokens(source)
    for k, tok in enumerate(top):
        if tok.depth != 0:
            continue
        before = top[k - 1].text if k else None
        if tok.text in ("let", "var") and before in (None, ";", "}", "export"):
            found.append(f"line {tok.line}: top-level {tok.text} {top[k + 1].text}")
        elif tok.text == "const" and before in (None, ";", "}", "export"):
            name, eq = top[k + 1].text, top[k + 2].text
            if eq != "=":
                found.append(f"line {tok.line}: const {name} destructures (unchecked)")
            elif _mutable(_initializer(top, k + 3)):
                found.append(f"line {tok.line}: top-level const {name} holds a mutable value")
        elif tok.text.endswith("=") and tok.text not in ("==", "===", "!=", "!==", "<=", ">="):
            # An assignment at the top level, other than a const's own initializer.
            start = max(
                (j for j in range(k) if top[j].depth == 0 and top[j].text in (";", "}")),
                default=-1,
            )
            if not (start + 1 < k and top[start + 1].text in ("const", "let", "var", "export")):
                found.append(f"line {tok.line}: top-level assignment ({before} {tok.text} …)")
    return found


def _initializer(top: list[Token], start: int) -> list[Token]:
    """A top-level const's initializer: its tokens up to the statement's end."""
    end = next(
        (j for j in range(start, len(top)) if top[j].depth == 0 and top[j].text == ";"), len(top)
    )
    return top[start:end]


def _mutable(init: list[Token]) -> bool:
    """Whether a top-level initializer may make something anyone can change: an object or
    array literal, a `new`, or a call's result. A function (arrow) or Object.freeze(…) of
    a literal may not; nor may a plain value."""
    texts = [t.text for t in init]
    outer = [t for t in init if t.depth == 0]
    if any(t.text == "=>" for t in outer):
        return False  # a function
    if texts[:4] == ["Object", ".", "freeze", "("] and texts[-1] == ")" and len(outer) == 5:
        return False  # Object . freeze ( … ): one call, nothing after it
    calls = any(
        t.text == "("
        and k > 0
        and (_WORD.fullmatch(outer[k - 1].text) or outer[k - 1].text in ")]")
        for k, t in enumerate(outer)
    )
    return calls or any(t.text in ("{", "[", "new") for t in outer)


# The state the recorder page kept before it was split (a shortened copy of its top level).
OLD_RECORDER = """
import { Transcript } from "./transcript.js";
const KEY_STORAGE = "asrpool.apiKey";
const MICROPHONE = { channelCount: 1, echoCancellation: false };
const ui = { start: document.getElementById("start") };
class UserError extends Error {}
function setState(name) { ui.state.dataset.state = name; }
let transcript = new Transcript();
let current = null; // {capture, session?, pieces?} while recording
async function start() { transcript = new Transcript(); current = { live: true }; }
init();
"""


def test_the_scanner_finds_the_old_recorders_module_state() -> None:
    assert top_level_state(OLD_RECORDER) == [
        "line 4: top-level const MICROPHONE holds a mutable value",
        "line 5: top-level const ui holds a mutable value",
        "line 8: top-level let transcript",
        "line 9: top-level let current",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "var cache = {};",
        "export let count = 0;",
        "const seen = new Set();",
        "const list = [1, 2];",
        "const ui = lookup(document);",
        "window.page = 1;",
        "main(); state += 1;",
    ],
)
def test_the_scanner_refuses_each_kind_of_module_state(source: str) -> None:
    assert top_level_state(source), source


@pytest.mark.parametrize(
    "source",
    [
        "const RATE = 16000; const TEXT = Object.freeze({ a: 'x' }); const HALF = RATE / 2;",
        "const ignore = () => {}; function f() { let x = 1; x += 1; return x; }",
        "class A { constructor() { this.items = new Map(); } }\nnew A().init();",
        "const re = /[/}]+/g; const t = `a ${ {b: 1}.b } }`; // let x = 1\n/* var y */",
        "for (let i = 0; i < 3; i++) f(i);",
    ],
)
def test_the_scanner_lets_constants_functions_and_classes_be(source: str) -> None:
    assert top_level_state(source) == [], source


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_keeps_mutable_state_at_its_top_level(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert top_level_state(source) == []
    # The scanner saw the module as it is: every line that starts a top-level statement
    # holds a token at depth 0 (a string or a comment it misread would hide them).
    starts = re.compile(r"^(?:export |import |const |let |var |class |function |async )")
    lines = {n for n, text in enumerate(source.splitlines(), 1) if starts.match(text)}
    assert lines
    assert lines <= {t.line for t in tokens(source) if t.depth == 0}


def test_the_recorder_page_is_split_into_modules() -> None:
    assert {p.name for p in MODULES} >= RECORDER_MODULES
    # Each part is its own module: the page imports them, they do not reach for the DOM.
    recorder = (STATIC / "recorder.js").read_text(encoding="utf-8")
    for name in ("capture.js", "live.js", "upload.js"):
        assert f'from "./{name}"' in recorder, name
        assert "document." not in (STATIC / name).read_text(encoding="utf-8"), name


_IMPORT = re.compile(r"^import\s*(?:\{([^}]*)\}\s*from\s*)?\"([^\"]+)\";", re.M)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_imports_are_relative_files_that_export_the_names(path: Path) -> None:
    """No bare specifiers (nothing resolves them without a bundler) and no name missing."""
    for names, spec in _IMPORT.findall(path.read_text(encoding="utf-8")):
        assert spec.startswith("./") and spec.endswith(".js"), spec
        target = STATIC / spec[2:]
        assert target.is_file(), spec
        text = target.read_text(encoding="utf-8")
        for name in filter(None, (n.strip() for n in names.split(","))):
            declared = rf"^export (?:const|let|function|async function|class) {re.escape(name)}\b"
            assert re.search(declared, text, re.M), f"{spec} exports no {name}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_pages_load_their_scripts_as_modules_from_the_router(path: Path) -> None:
    scripts = re.findall(r"<script\b[^>]*>", path.read_text(encoding="utf-8"))
    assert scripts
    for tag in scripts:
        assert 'type="module"' in tag, tag
        src = re.search(r'src="static/([^"]+)"', tag)
        assert src is not None and (STATIC / src.group(1)).is_file(), tag


def test_the_static_folder_is_flat() -> None:
    # /static/{name} serves STATIC's own files and pyproject's package-data is "static/*".
    assert [p.name for p in STATIC.iterdir() if p.is_dir()] == []


def test_the_router_serves_every_module_as_javascript() -> None:
    client = TestClient(create_app(RouterSettings(auth=False)))
    for path in MODULES:
        response = client.get(f"/static/{path.name}")
        assert response.status_code == 200, path.name
        assert response.headers["content-type"].startswith("text/javascript"), path.name
        assert response.text == path.read_text(encoding="utf-8")
    assert client.get("/static/recorder.css").headers["content-type"].startswith("text/css")
    for route in ("/", "/dashboard"):
        page = client.get(route)
        assert page.headers["content-type"].startswith("text/html")
        # Module scripts come from the router itself: a policy, if one is ever set, says so.
        policy = page.headers.get("content-security-policy")
        if policy is not None:
            scripts = re.search(r"(?:script-src|default-src)([^;]*)", policy)
            assert scripts is not None and "'self'" in scripts.group(1), policy
    assert client.get("/static/nothing.js").status_code == 404
