"""Strings from a run cannot change the explorer page: a planted script stays text in a real browser."""

from __future__ import annotations

from pathlib import Path

import torch

# --- strings from the run inside the page ---------------------------------------------------

HOSTILE = '</script><script>document.title="pwned";fetch("http://127.0.0.1:9/x")</script><img src=x onerror=alert(1)>'


def test_strings_from_a_run_cannot_change_the_explorer_page(tmp_path):
    """A data path and a title holding </script> and HTML stay text: the page keeps one script
    block of its own, its CSP, and, in a real browser, runs no planted script and makes no request."""

    from vaekit.config import ModelConfig
    from vaekit.explorer.page import explore
    from vaekit.models import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vae", hidden=[8], latent_dim=2), (1, 8, 8)).eval()
    x = torch.rand(30, 1, 8, 8)
    page = explore(model, x, tmp_path / "p", y=torch.arange(30) % 3, title=HOSTILE, points=30)
    html = page.read_text()
    assert "default-src 'none'" in html  # the CSP: nothing may be fetched, whatever runs
    assert html.count("<script") == 4 and html.count("</script>") == 4  # the page's own four blocks, no planted one
    assert "<img" not in html and "&lt;/script&gt;&lt;script&gt;document.title" in html  # the title as text
    _browser_runs_nothing_planted(page)


def _browser_runs_nothing_planted(page: Path) -> None:
    import shutil as sh

    assert sh.which("chromium"), "Debian's chromium is not installed (the README's test command installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=sh.which("chromium"), args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            requests, dialogs = [], []
            tab.on("request", lambda r: requests.append(r.url))
            tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            tab.goto(page.as_uri())
            tab.wait_for_timeout(500)
            assert tab.title() == f"vaekit explorer: {HOSTILE}" and not dialogs  # shown as text, never run
            assert HOSTILE in tab.inner_text("h1")
            assert (
                tab.evaluate("JSON.parse(document.getElementById('vaekit-spec').textContent).models[0].title")
                == HOSTILE
            )
            assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
        finally:
            browser.close()
