"""Where the page's time goes: loads a built site in headless Chromium under its sampling
profiler (the DevTools `Profiler` domain, through ChromeDriver's `goog/cdp/execute` command)
until the model is ready, optionally gives it photos, and prints the functions with the
most time (self and inclusive). Use the test-profile site (`trunk build`): its wasm keeps its
function names, the release one's `wasm-opt` drops them.

    python3 bench/profile_page.py DIST [QUERY] [PHOTO[,PHOTO...]] [ROWS]
    python3 bench/profile_page.py dist '?model=accurate&backend=cpu' tests/fixtures/cat.jpg

With PHOTO, the load and the first photo are profiled and printed apart; PHOTO may be several
paths joined by commas, and the photos after the first are then profiled together (warm). Needs
Debian's `chromium` and `chromium-driver` (scripts/install-tools system); serves DIST on
127.0.0.1.
"""

import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

SERVER_PORT, DRIVER_PORT = 8765, 9516
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def call(method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{DRIVER_PORT}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["value"]


def wait_for(session, script, timeout=120):
    """Polls `script` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = call("POST", f"/session/{session}/execute/sync", {"script": script, "args": []})
        if value:
            return value
        time.sleep(0.02)
    sys.exit(f"timed out waiting for: {script}")


def report(profile, rows):
    """Self and inclusive milliseconds per function name, most first."""
    nodes = {node["id"]: node for node in profile["nodes"]}
    parent = {child: node["id"] for node in profile["nodes"] for child in node.get("children", [])}
    sampled = collections.Counter()
    for node, delta in zip(profile["samples"], profile["timeDeltas"]):
        sampled[node] += delta / 1000
    own, inclusive = collections.Counter(), collections.Counter()
    for node, ms in sampled.items():
        frame = nodes[node]["callFrame"]
        own[frame["functionName"] or f"({frame['url'].rsplit('/', 1)[-1]})"] += ms
        seen, at = set(), node
        while at is not None:  # each name once per sample, however deep it recurses
            name = nodes[at]["callFrame"]["functionName"]
            if name and name not in seen:
                inclusive[name] += ms
                seen.add(name)
            at = parent.get(at)
    print(f"sampled: {sum(sampled.values()):.0f} ms")
    for title, counts in (("self", own), ("inclusive", inclusive)):
        print(f"\n| {title} ms | function |\n|---:|---|")
        for name, ms in counts.most_common(rows):
            print(f"| {ms:.1f} | `{name[:140]}` |")


@contextlib.contextmanager
def browser_session(site):
    """Serves SITE on 127.0.0.1 and yields the id of a WebDriver session of headless Chromium
    with a fresh profile; closes all three afterwards."""
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(SERVER_PORT), "--bind", "127.0.0.1", "-d", site],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = subprocess.Popen(["chromedriver", f"--port={DRIVER_PORT}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        for ready in (lambda: call("GET", "/status"),
                      lambda: urllib.request.urlopen(f"http://127.0.0.1:{SERVER_PORT}/")):
            while True:
                try:
                    ready()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        with tempfile.TemporaryDirectory() as profile_dir:
            options = {"binary": "/usr/bin/chromium",
                       "args": CHROMIUM_FLAGS + [f"--user-data-dir={profile_dir}"]}
            session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]
            try:
                yield session
            finally:
                call("DELETE", f"/session/{session}")
    finally:
        driver.terminate()
        server.terminate()


def main():
    dist = sys.argv[1]
    query = sys.argv[2] if len(sys.argv) > 2 else "?backend=cpu"
    photos = [os.path.abspath(path) for path in sys.argv[3].split(",")] if len(sys.argv) > 3 else []
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    with browser_session(dist) as session:

        def devtools(command, params=None):
            return call("POST", f"/session/{session}/goog/cdp/execute",
                        {"cmd": command, "params": params or {}})

        devtools("Profiler.enable")
        devtools("Profiler.setSamplingInterval", {"interval": 200})  # microseconds
        devtools("Profiler.start")
        call("POST", f"/session/{session}/url",
             {"url": f"http://127.0.0.1:{SERVER_PORT}/{query}"})
        ready = wait_for(session, "const s = document.querySelector("
                         "'#model-status[data-backend]'); return s && s.dataset.readyMs")
        print(f"## the load: model ready at {ready} ms (the page's clock)\n")
        report(devtools("Profiler.stop")["profile"], rows)
        if not photos:
            return
        found = call("POST", f"/session/{session}/element",
                     {"using": "css selector", "value": "#photo-input"})
        element = next(iter(found.values()))

        def classify(paths, first_card):
            """Gives the page `paths`; returns the page's timings of their cards."""
            devtools("Profiler.start")
            call("POST", f"/session/{session}/element/{element}/value",
                 {"text": "\n".join(paths)})
            last = first_card + len(paths) - 1
            wait_for(session, "const c = document.querySelector("
                     f"'#photo-{last}[data-state=done]'); return c && c.dataset.ms")
            return [call("POST", f"/session/{session}/execute/sync", {
                "script": f"return document.querySelector('#photo-{card}').dataset.ms",
                "args": []}) for card in range(first_card, last + 1)]

        [ms] = classify(photos[:1], 1)
        print(f"\n## the first photo: {ms} ms (the page's timing)\n")
        report(devtools("Profiler.stop")["profile"], rows)
        if len(photos) > 1:
            timings = classify(photos[1:], 2)
            print(f"\n## the next {len(timings)} photos, warm: "
                  f"{', '.join(map(str, timings))} ms (the page's timings)\n")
            report(devtools("Profiler.stop")["profile"], rows)


if __name__ == "__main__":
    main()
