"""The static leaderboard site in a real headless Chromium (Selenium): loads cleanly, sorts, links, images.

The site is built from hand-made result rows of a small two-setting suite (no agent runs), served from a
loopback ``http.server`` on a free port. Skipped (with the reason) only when Chromium, chromedriver or
Selenium is not installed.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import numpy as np
import pytest
from hbgym.leaderboards.bundle import Collection
from hbgym.leaderboards.suites import Setting, Suite

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium / chromium-driver not installed (apt-get install chromium chromium-driver)",
)

SUITE = Suite(
    "sitetest",
    1,
    "online",
    (
        Setting("HierGaussianMAB-v0", {}, 20, ("hier-gaussian", "k-armed")),
        Setting("MultiBandit-v0", {}, 20, ("multi-bandit",), oracle="optimal"),
    ),
    num_seeds=4,
    chunk=4,
    log_points=4,
)

# agent -> mean final regret per setting (Uniform worst); "Partial" plays only the first setting
REGRETS = {
    "Uniform": (40.0, 50.0),
    "OracleTS": (5.0, None),
    "Good": (10.0, 12.0),
    "Bad": (30.0, 35.0),
    "Partial": (20.0, None),
}


def _records() -> list[dict]:
    records = []
    rng = np.random.default_rng(0)
    for agent, finals in REGRETS.items():
        role = {"Uniform": "uniform", "OracleTS": "oracle"}.get(agent, "agent")
        for setting, final in zip(SUITE.settings, finals):
            if final is None:
                continue
            rows = []
            for seed in range(4):
                f = final + rng.normal()
                rows.append(
                    {
                        "agent": agent,
                        "setting": setting.key,
                        "seed": seed,
                        "status": "ok",
                        "final_regret": f,
                        "steps": [1, 5, 10, 20],
                        "cum_regret": [f / 20, f / 4, f / 2, f],
                        "oracle": agent == "OracleTS",
                    }
                )
            records.append(
                {
                    "cell": {"id": f"{agent}__{setting.key}__s0", "role": role, "agent_name": agent},
                    "rows": rows,
                }
            )
    return records


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from hbgym.leaderboards.site import write_site

    out = tmp_path_factory.mktemp("site")
    meta = {
        a: {"code_hash": "ab" * 32, "verification": "5 of 9 cells re-run and reproduced"} for a in REGRETS
    }
    write_site(Collection(SUITE, _records(), meta), out)
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _ranking_agents(browser) -> list[str]:
    rows = browser.find_elements("css selector", "#ranking-0 tbody tr")
    return [r.find_elements("tag name", "td")[1].text.strip() for r in rows]


def test_index_loads_without_console_errors(site, browser):
    browser.get(site + "/index.html")
    assert "Leaderboard" in browser.title
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # like with like: the full-coverage ranking holds exactly the agents that played both settings
    assert set(_ranking_agents(browser)) == {"Uniform", "Good", "Bad"}
    partial = browser.find_elements("css selector", "#ranking-1 tbody tr")
    assert {r.find_elements("tag name", "td")[1].text.strip() for r in partial} == {
        "OracleTS (oracle)",
        "Partial",
    }


def test_clicking_a_header_reorders_rows(site, browser):
    browser.get(site + "/index.html")
    assert _ranking_agents(browser) == ["Good", "Bad", "Uniform"]  # by IQM, best first
    header = browser.find_elements("css selector", "#ranking-0 thead th")[1]  # "agent"
    header.click()
    assert _ranking_agents(browser) == ["Bad", "Good", "Uniform"]  # alphabetical
    header.click()
    assert _ranking_agents(browser) == ["Uniform", "Good", "Bad"]  # reversed
    score = browser.find_elements("css selector", "#ranking-0 thead th")[2]  # "IQM score", ascending first
    score.click()
    assert _ranking_agents(browser) == ["Uniform", "Bad", "Good"]


def test_agent_link_opens_its_page(site, browser):
    browser.get(site + "/index.html")
    browser.find_element("link text", "Good").click()
    assert browser.current_url.endswith("/agents/Good.html")
    assert browser.find_element("tag name", "h1").text == "Good"
    assert "ab" * 6 in browser.find_element("id", "info").text  # the code hash is shown
    rows = browser.find_elements("css selector", "#per-setting tbody tr")
    assert len(rows) == 2


@pytest.mark.parametrize("page", ["/index.html", "/agents/Good.html"])
def test_every_image_loads(site, browser, page):
    browser.get(site + page)
    images = browser.find_elements("tag name", "img")
    assert images, "the page shows plots"
    widths = [
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
        for img in images
    ]
    assert all(w and w > 0 for w in widths), widths


def test_no_external_resources(site, browser):
    browser.get(site + "/index.html")
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function(e){return e.name;})"
    )
    assert urls and all(u.startswith(site) for u in urls), urls


def test_hostile_agent_name_is_escaped(tmp_path, browser):
    from hbgym.leaderboards.site import write_site

    records = _records()
    evil = "<img src=x onerror=alert(1)>"
    for rec in records:
        if rec["cell"]["agent_name"] == "Bad":
            rec["cell"]["agent_name"] = evil
            for r in rec["rows"]:
                r["agent"] = evil
    write_site(Collection(SUITE, records, {}), tmp_path)
    browser.get((tmp_path / "index.html").as_uri())
    assert evil in _ranking_agents(browser)  # shown as text, not parsed as markup
    assert all(
        "onerror" not in (img.get_attribute("outerHTML") or "")
        for img in browser.find_elements("tag name", "img")
    )
