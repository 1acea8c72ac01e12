#!/usr/bin/env python3
"""The dashboard in a real browser (Debian's chromium, driven by selenium through chromedriver).

Usage: dashboard-browser.py BASE_URL TOKEN PROJECT_ID CACHED_BUILD_ID LIVE_BUILD_ID SCREENSHOT_DIR FIRST_BUILD_ID

Signs in with TOKEN, follows LIVE_BUILD_ID (running when this starts) to its end on its page,
opens every page, checks that what users control shows as text and never runs, creates and
revokes a token, changes the cache policy, deletes a tag through its confirmation, signs out.
Every page is saved as a screenshot at desktop and phone widths into SCREENSHOT_DIR.
Exits non-zero with the reason on the first failed check.
"""
import json
import os
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

base, token, project, cached_build, live_build, shots, first_build = sys.argv[1:8]
os.makedirs(shots, exist_ok=True)

options = Options()
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(arg)
options.binary_location = next(p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p))
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver_path = next(p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p))
driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
driver.set_page_load_timeout(60)
checks = 0


def check(condition, message):
    global checks
    checks += 1
    if not condition:
        raise AssertionError(message)


def gone_with_its_page(error):
    """chromedriver's other word for a stale element: the element was found on the page that was
    there, and read after the browser had moved to the next (seen once in CI, as the live build's
    page went to its ?done=canceled address between find_element and .text)."""
    return isinstance(error, WebDriverException) and "does not belong to the document" in (error.msg or "")


def wait_for(condition, timeout, message):
    def attempt(_):
        try:
            return condition()
        except WebDriverException as error:
            if gone_with_its_page(error):
                return False
            raise
    try:
        # A page that reloads or navigates mid-check drops its elements: look again.
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(attempt)
    except Exception as error:  # TimeoutException, or the condition failing while the page reloads
        raise AssertionError(f"{message} (waited {timeout}s; page {driver.current_url}: {error!r})")


def shoot(name):
    """The page at desktop and phone widths."""
    for label, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        driver.set_window_size(width, height)
        total = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
        driver.set_window_size(width, min(total + 140, 6000))
        driver.save_screenshot(os.path.join(shots, f"{name}-{label}.png"))
    driver.set_window_size(1280, 900)


def no_script_ran():
    """Nothing a user wrote ran: the markers the injected scripts would set are unset."""
    ran = driver.execute_script("return [window.__xss, window.__xss2, window.__xss3]")
    check(ran == [None, None, None], f"an injected script ran on {driver.current_url}: {ran}")
    inline = driver.execute_script("return document.querySelectorAll('script:not([src])').length")
    check(inline == 0, f"{driver.current_url} has {inline} inline script element(s)")
    injected = driver.execute_script("return document.querySelectorAll('img[src=\"x\"], b.injected').length")
    check(injected == 0, f"user text became elements on {driver.current_url}")


def body_text():
    return driver.find_element(By.TAG_NAME, "body").text


def open_page(path):
    driver.get(base + path)
    check(driver.execute_script("return document.readyState") == "complete", f"{path} did not load")


try:
    # Signed out: the sign-in page with its token field.
    open_page("/")
    field = driver.find_element(By.NAME, "token")
    shoot("01-sign-in")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/signin'] button").click()
    wait_for(lambda: driver.find_elements(By.ID, "signout"), 15, "signing in did not reach a signed-in page")
    cookie = driver.get_cookie("drydock_session")
    check(cookie is not None and cookie.get("httpOnly") is True, f"the session cookie is not HttpOnly: {cookie}")
    check(driver.execute_script("return document.cookie").find("drydock_session") < 0, "the page's script can read the session cookie")

    # The live build (it prints a line a second for ten minutes), followed on its page as it runs.
    open_page(f"/builds/{live_build}")
    badge = driver.find_element(By.ID, "build-status").text
    check(badge in ("queued", "running"), f"the live build was already {badge} when its page opened")
    driver.execute_script("window.__samePage = true")
    def ticks():
        return len(re.findall(r"tick \d+", driver.find_element(By.ID, "log").text))

    first_ticks = ticks()
    # The script appends lines as the builder reports them, without reloading the page.
    wait_for(lambda: driver.execute_script("return window.__samePage === true")
             and ticks() > first_ticks,
             120, f"no new log line appeared on the open page (had {first_ticks} ticks)")
    followed = ticks()
    print(f"followed the log live: {first_ticks} tick line(s) at load, {followed} later on the same page")
    shoot("02-build-live-running")
    # End it from the page: Cancel, and the page follows the build until it has stopped.
    driver.find_element(By.ID, "cancel").click()
    wait_for(lambda: "Cancel requested" in body_text(), 15, "cancelling showed no confirmation")
    # The open page shows the final status and reloads itself (marking its body data-finished
    # first): the page to read is the one the server rendered for the ended build, unmarked.
    wait_for(lambda: driver.find_element(By.ID, "build-status").text == "canceled"
             and driver.execute_script("return document.readyState === 'complete' && !document.body.dataset.finished"), 180,
             "the live build's page never showed it canceled")
    check(ticks() >= followed, "the ended build's page lost log lines")
    check(len(driver.find_elements(By.CSS_SELECTOR, "svg.timeline g.step")) >= 2, "the ended build has no step timeline")
    check(not driver.find_elements(By.ID, "cancel"), "an ended build still offers Cancel")
    shoot("02-build-live-canceled")

    # The fully cached rebuild: cached steps marked, the time they saved, escaped user text.
    open_page(f"/builds/{cached_build}")
    check(len(driver.find_elements(By.CSS_SELECTOR, "svg.timeline g.step.cached")) >= 2, "cached steps are not marked on the timeline")
    saved = driver.find_element(By.ID, "saved").text
    check(saved not in ("0 ms", ""), f"the cached build shows no saved time: {saved!r}")
    text = body_text()
    check("<script>window.__xss=1</script><b class=\"injected\">bold</b>" in text,
          "the log's HTML does not show as text on the build page")
    check("<img src=x onerror=window.__xss2=1>" in text, "the build argument's HTML does not show as text")
    no_script_ran()
    shoot("03-build-cached")

    # The first (uncached) build: the echoed HTML is a line of its log, shown as text.
    open_page(f"/builds/{first_build}")
    log_lines = driver.find_element(By.ID, "log").text.split("\n")
    check('<script>window.__xss=1</script><b class="injected">bold</b>' in log_lines,
          "the HTML the build printed is not a line of its log on the page")
    check("<img src=x onerror=window.__xss2=1>" in log_lines, "the build argument the build printed is not a line of its log")
    no_script_ran()
    shoot("03-build-first")

    # Overview, project, registry, usage, members: each opens, nothing injected runs.
    for index, (path, expect) in enumerate([
        ("/", "Projects"), (f"/projects/{project}", "Builds"), (f"/projects/{project}/registry", "Registry of"),
        ("/usage", "Minutes per day"), ("/members", "Members"), ("/tokens", "Tokens"),
    ]):
        open_page(path)
        check(expect in body_text(), f"{path} does not show {expect!r}")
        no_script_ran()
        shoot(f"{index + 4:02d}-{path.strip('/').replace('/', '-') or 'overview'}")
    open_page(f"/projects/{project}")
    check("yes" in body_text() or "no" in body_text(), "the builds list has no isolated column")
    check(driver.find_elements(By.CSS_SELECTOR, "table.builds tbody tr"), "the project lists no build")
    open_page("/usage")
    check(driver.find_elements(By.CSS_SELECTOR, "svg.bars g.day"), "the usage page has no bar per day")
    check(driver.find_element(By.ID, "csv").get_attribute("href").endswith(".csv?month=" + time.strftime("%Y-%m", time.gmtime())),
          "no CSV download link for this month")

    # Create a token: its secret on that page only; a name with HTML stays text; then revoke it.
    open_page("/tokens")
    driver.find_element(By.ID, "token-name").send_keys("<script>window.__xss3=1</script>ci")
    Select(driver.find_element(By.ID, "token-kind")).select_by_value("project")
    Select(driver.find_element(By.ID, "token-project")).select_by_value(project)
    driver.find_element(By.ID, "create-token").click()
    secret = wait_for(lambda: driver.find_elements(By.ID, "secret") and driver.find_element(By.ID, "secret").text, 15,
                      "creating a token showed no secret")
    check(secret.startswith("ddp_"), f"the new project token's secret looks wrong: {secret[:8]}…")
    no_script_ran()
    shoot("10-token-created")
    open_page("/tokens")
    check(secret not in driver.page_source, "the token list shows the secret again")
    check("<script>window.__xss3=1</script>ci" in body_text(), "the token's name does not show as text")
    no_script_ran()
    revoke = [b for b in driver.find_elements(By.CSS_SELECTOR, "button[id^='revoke-']")
              if "__xss3" in b.find_element(By.XPATH, "./ancestor::tr").text]
    check(len(revoke) == 1, "no Revoke button for the new token")
    revoke[0].click()
    wait_for(lambda: "Token revoked." in body_text(), 15, "revoking showed no confirmation")
    row = [r for r in driver.find_elements(By.CSS_SELECTOR, "tr.revoked") if "__xss3" in r.text]
    check(len(row) == 1, "the revoked token is not marked revoked")
    shoot("11-token-revoked")

    # Change the cache policy.
    open_page(f"/projects/{project}")
    days = driver.find_element(By.ID, "keepDays")
    days.clear()
    days.send_keys("5")
    driver.find_element(By.ID, "save-settings").click()
    wait_for(lambda: "Settings saved." in body_text(), 15, "saving the settings showed no confirmation")
    check(driver.find_element(By.ID, "keepDays").get_attribute("value") == "5", "the cache policy did not change")
    shoot("12-settings-saved")

    # Delete a tag, through its confirmation page.
    open_page(f"/projects/{project}/registry")
    links = [a for a in driver.find_elements(By.CSS_SELECTOR, "a.danger") if "tag=v2" in a.get_attribute("href")]
    check(len(links) == 1, "no Delete link for the tag v2")
    links[0].click()
    wait_for(lambda: driver.find_elements(By.ID, "confirm-tag"), 15, "no confirmation page")
    shoot("13-delete-confirm")
    driver.find_element(By.ID, "confirm-tag").click()
    wait_for(lambda: "Deleted." in body_text(), 15, "deleting showed no confirmation")
    check(not [a for a in driver.find_elements(By.CSS_SELECTOR, "a.danger") if "tag=v2" in a.get_attribute("href")],
          "the tag v2 is still listed")

    # Sign out: back to the sign-in page, and the pages need a session again.
    driver.find_element(By.ID, "signout").click()
    wait_for(lambda: driver.find_elements(By.NAME, "token"), 15, "signing out did not show the sign-in page")
    open_page(f"/projects/{project}")
    check(driver.find_elements(By.NAME, "token"), "a page opened after signing out")

    # The browser saw no CSP violation (an inline script or style the policy blocked).
    violations = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    check(not violations, f"the browser reported Content-Security-Policy violations: {violations[:3]}")
    print(json.dumps({"checks": checks, "screenshots": sorted(os.listdir(shots))}))
finally:
    driver.quit()
