"""Static checks of ``web/``: the WebSocket client speaks the contract, and pages keep the CSP and a11y rules.

The pages run under a strict Content-Security-Policy (no inline script or style, no eval) and render every
user-supplied string as text; these tests keep code that would break either out of ``web/``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from capturestream import messages

WEB = Path(__file__).resolve().parents[3] / "web"
OWN_JS = sorted((WEB / "js").glob("*.js"))
PAGES = sorted(WEB.glob("*.html"))


def _js_array(source: str, name: str) -> list[str]:
    match = re.search(rf"export const {name} = \[(.*?)\];", source, re.S)
    assert match, f"{name} not found in ws-client.js"
    return re.findall(r"'([^']+)'", match.group(1))


def test_ws_client_message_types_mirror_the_contract():
    source = (WEB / "js" / "ws-client.js").read_text()
    assert tuple(_js_array(source, "CLIENT_MESSAGE_TYPES")) == messages.CLIENT_MESSAGE_TYPES
    assert tuple(_js_array(source, "SERVER_MESSAGE_TYPES")) == messages.SERVER_MESSAGE_TYPES


def test_pages_send_only_contract_message_types():
    sent = set()
    for path in OWN_JS:
        if path.name == "golive.js":  # the ingest node's go-live socket has its own protocol
            continue
        sent |= set(re.findall(r"send\(\{\s*type:\s*'([^']+)'", path.read_text()))
    assert sent, "no send({type: ...}) calls found"
    assert sent <= set(messages.CLIENT_MESSAGE_TYPES)


@pytest.mark.parametrize("path", OWN_JS, ids=lambda p: p.name)
def test_scripts_never_build_html_from_strings(path: Path):
    source = path.read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert forbidden not in source, f"{path.name} uses {forbidden}"
    assert "setAttribute('style'" not in source  # inline style attributes are blocked by the CSP


class _PageAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.labelled_inputs: list[str] = []
        self.inputs: list[tuple[str, dict[str, str | None]]] = []
        self.in_label = 0
        self.lang = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if "id" in attributes:
            if attributes["id"] in self.ids:
                self.problems.append(f"duplicate id {attributes['id']}")
            self.ids.add(attributes["id"] or "")
        if "style" in attributes:
            self.problems.append(f"inline style on <{tag}>")
        for name in attributes:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name} on <{tag}>")
        if tag == "script" and not attributes.get("src"):
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        if tag == "label":
            self.in_label += 1
            if attributes.get("for"):
                self.label_for.add(attributes["for"] or "")
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            if self.in_label:
                self.labelled_inputs.append(attributes.get("id") or "")
            else:
                self.inputs.append((tag, attributes))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_are_csp_clean_and_labelled(page: Path):
    audit = _PageAudit()
    audit.feed(page.read_text())
    assert audit.lang == "en"
    assert not audit.problems, audit.problems
    for tag, attributes in audit.inputs:
        labelled = (
            attributes.get("id") in audit.label_for or attributes.get("aria-label") or attributes.get("aria-labelledby")
        )
        assert labelled, f"<{tag} id={attributes.get('id')}> in {page.name} has no label"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_reference_only_files_that_exist(page: Path):
    for ref in re.findall(r'(?:src|href)="([^"#?:]+)"', page.read_text()):
        assert (WEB / ref).is_file(), f"{page.name} references missing {ref}"


def test_vendored_libraries_carry_their_licences():
    for library in ("hls.js", "uplot", "mpegts.js"):
        folder = WEB / "vendor" / library
        assert (folder / "LICENSE.txt").is_file() and (folder / "VERSION.txt").is_file(), library
    # the minified bundle's header points at the notice of what it bundles (es6-promise, MIT)
    mpegts = WEB / "vendor" / "mpegts.js"
    assert "see mpegts.js.LICENSE.txt" in (mpegts / "mpegts.js").read_text()[:200]
    assert (mpegts / "mpegts.js.LICENSE.txt").is_file()
    assert "mpegts.js 1.8.2" in (mpegts / "VERSION.txt").read_text()


def test_pages_stay_small_before_the_player_library():
    own = sum(p.stat().st_size for p in [*PAGES, *OWN_JS, *(WEB / "css").glob("*.css")])
    assert own < 300_000, own


def test_flv_player_is_loaded_only_when_a_viewer_picks_it():
    """mpegts.js (275 KB) is no page's <script>: player.js adds the vendored file on first use of HTTP-FLV."""
    for page in PAGES:
        assert "mpegts" not in page.read_text(), page.name
    player = (WEB / "js" / "player.js").read_text()
    match = re.search(r"new URL\('([^']+)', import\.meta\.url\)", player)
    assert match, "player.js does not name the vendored mpegts.js"
    assert ((WEB / "js") / match.group(1)).resolve() == (WEB / "vendor" / "mpegts.js" / "mpegts.js").resolve()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_latency_modes_map_to_the_node_urls_and_remember_only_known_modes():
    """watch.html's radios are latency-mode.js's MODES (a typo would be a dead button); nodeSource() spells the
    ingest node's contract; storedMode() ignores what it does not know."""
    script = """
      const store = new Map();
      globalThis.localStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
      const m = await import(process.argv[1]);
      const out = [m.nodeSource('flv', 'http://n:1', 'a b'), m.nodeSource('ll-hls', 'http://n:1', 'x'),
                   m.nodeSource('standard', 'http://n:1', 'x'), m.storedMode()];
      store.set('capturestream.latencyMode', 'toString'); out.push(m.storedMode());
      store.set('capturestream.latencyMode', 'flv'); out.push(m.storedMode());
      console.log(JSON.stringify([Object.keys(m.MODES), out]));
    """
    module = (WEB / "js" / "latency-mode.js").as_uri()
    run = subprocess.run(
        ["node", "--input-type=module", "-e", script, module], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    modes, out = json.loads(run.stdout)
    assert re.findall(r'name="latency-mode" value="([^"]+)"', (WEB / "watch.html").read_text()) == modes
    assert out == [
        "http://n:1/live/a%20b.flv",
        "http://n:1/live/x/ll.m3u8",
        None,
        "standard",
        "standard",
        "flv",
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("path", OWN_JS, ids=lambda p: p.name)
def test_scripts_parse_as_es_modules(path: Path):
    checked = subprocess.run(
        ["node", "--input-type=module", "--check"], input=path.read_bytes(), capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr.decode()
