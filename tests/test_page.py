"""The web page of `genlab serve` in a real headless browser: Debian's chromium, driven by
Selenium through chromium-driver (no browser download). It generates an image and a text from
the page, searches, and checks what the page shows.

GENLAB_PAGE_SCREENSHOT=path/to.png saves a screenshot of the page at the end (the one in
docs/img/serve-page.png was taken so)."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from test_serve import TOKEN, Server, make_runs  # noqa: E402

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/postgres.sh installs "
    "them as root)",
)


@pytest.fixture(scope="module")
def page(tmp_path_factory, tiny_text):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    from conftest import FEATURE_STEPS
    from genlab.serve.app import create_app

    root = make_runs(tmp_path_factory.mktemp("runs"), tiny_text)
    app = create_app(root, str(root / "store"), token=TOKEN, judge_steps=FEATURE_STEPS)
    server = Server(app)
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1400"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.get(server.url + "/")
    yield driver
    driver.quit()
    server.stop()


def wait(driver, condition, timeout: float = 300):
    """condition's value once truthy; on a timeout, an error that shows what the page says."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        said = driver.execute_script(
            "return [document.getElementById('status').textContent,"
            " document.getElementById('info').textContent,"
            " document.getElementById('hits').textContent]"
        )
        logs = driver.get_log("browser")
        raise AssertionError(f"the page did not get there; it shows {said}; log {logs}") from None


def choose(driver, select: str, value: str) -> None:
    """Pick an option of a <select> as a user does (Selenium's option click does not reach
    headless chromium's select in every chromium-driver version)."""
    driver.execute_script(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change'));",
        select,
        value,
    )
    assert (
        driver.execute_script("return document.getElementById(arguments[0]).value", select) == value
    )


def test_generate_image_and_text_then_search(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = page
    by_id = lambda i: d.find_element(By.ID, i)  # noqa: E731
    wait(d, lambda _: "token is required" in by_id("info").text)
    assert by_id("token-note").is_displayed()  # the page says a token is needed
    by_id("token").send_keys(TOKEN)
    d.execute_script("document.getElementById('token').dispatchEvent(new Event('change'))")
    wait(d, lambda _: len(Select(by_id("run")).options) == 2)

    # an image
    choose(d, "run", "vae")
    by_id("n").clear()
    by_id("n").send_keys("4")
    by_id("generate").click()
    img = wait(d, lambda _: d.find_elements(By.CSS_SELECTOR, "img#generated"))[0]
    wait(d, lambda _: d.execute_script("return arguments[0].naturalWidth", img) > 0)
    wait(d, lambda _: "new in the store" in by_id("status").text)
    assert by_id("status").text.startswith("done; 4 new") or "duplicates" in by_id("status").text

    # a text, streamed
    choose(d, "run", "gpt")
    by_id("n").clear()
    by_id("n").send_keys("1")
    prompt = by_id("prompt-like")
    prompt.clear()
    prompt.send_keys("JULIET:")
    by_id("opt-max_new_tokens").clear()
    by_id("opt-max_new_tokens").send_keys("12")
    by_id("generate").click()
    wait(d, lambda _: by_id("status").text == "done")
    text = by_id("generated-text").text
    assert text.startswith("JULIET:") and len(text) > len("JULIET:")

    # search past generations: the text just made, then the images
    by_id("q").send_keys("JULIET")
    by_id("search").click()
    hit = wait(d, lambda _: d.find_elements(By.CSS_SELECTOR, "#hits .hit pre"))[0]
    assert hit.text == text.strip()
    choose(d, "kind", "image")
    by_id("q").clear()
    by_id("q").send_keys("vae")
    by_id("search").click()
    wait(d, lambda _: len(d.find_elements(By.CSS_SELECTOR, "#hits .hit img")) >= 1)
    imgs = d.find_elements(By.CSS_SELECTOR, "#hits .hit img")
    wait(d, lambda _: all(d.execute_script("return arguments[0].naturalWidth", i) > 0
                          for i in imgs))  # fmt: skip
    shot = os.environ.get("GENLAB_PAGE_SCREENSHOT")
    if shot:
        d.save_screenshot(shot)
