"""Could the page let the browser decode photos? Compares the browser's own decoder
(`createImageBitmap`, read back through a canvas without colour conversion or premultiplied
alpha: what the page would hand the model instead of decoding in wasm) with the model crate's
decoding (`decode_photo`, the same in the page and the trainer), value by value, and prints a
table: per photo the largest and mean difference in 8-bit levels, and the share of values more
than one level apart. The wasm parity test holds the page's input tensors to the native ones
within 1/255 (`web/tests/wasm_preprocess.rs`), so a photo whose largest difference is above 1
would break it.

    source scripts/env.sh && python3 bench/decode_parity.py [PHOTO_OR_FOLDER ...]
    # default: the fixture photos (tests/fixtures/*.jpg, *.png)

Runs `tests/benches/decode_rgb.rs` (`cargo bench --bench decode_rgb`) for the model crate's
side; needs Debian's `chromium` and `chromium-driver` and NumPy.
"""

import base64
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from profile_page import SERVER_PORT, browser_session, call

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAGE = """<!doctype html><meta charset="utf-8"><title>decode</title>
<script>
window.decodeRgb = async (name) => {
  const blob = await (await fetch(name)).blob();
  const started = performance.now();
  const bitmap = await createImageBitmap(blob, {
    colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
  const decodedMs = performance.now() - started;
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) rgb.set(rgba.subarray(i, i + 3), j);
  let text = "";
  for (let i = 0; i < rgb.length; i += 8192) text += String.fromCharCode(...rgb.subarray(i, i + 8192));
  return { width: bitmap.width, height: bitmap.height, rgb: btoa(text), ms: decodedMs };
};
</script>
"""


def photos(args):
    found = []
    for arg in args or [os.path.join(ROOT, "tests", "fixtures")]:
        if os.path.isdir(arg):
            found += sorted(glob.glob(os.path.join(arg, "*.jpg")) + glob.glob(os.path.join(arg, "*.png")))
        else:
            found.append(arg)
    return found


def model_crate_decodes(paths, out):
    subprocess.run(["cargo", "bench", "--locked", "--quiet", "-p", "catdog-tests",
                    "--bench", "decode_rgb", "--", out, *paths], cwd=ROOT, check=True)


def main():
    paths = photos(sys.argv[1:])
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as reference:
        model_crate_decodes(paths, reference)
        for path in paths:
            shutil.copy(path, site)
        with open(os.path.join(site, "index.html"), "w") as page:
            page.write(PAGE)
        print("| photo | size | largest difference | mean | values > 1 apart | browser's decode |")
        print("|---|---:|---:|---:|---:|---:|")
        largest = []
        with browser_session(site) as session:
            call("POST", f"/session/{session}/url", {"url": f"http://127.0.0.1:{SERVER_PORT}/"})
            for path in paths:
                name = os.path.basename(path)
                got = call("POST", f"/session/{session}/execute/async", {
                    "script": "const done = arguments[1]; "
                              "decodeRgb(arguments[0]).then(done, (e) => done({error: String(e)}));",
                    "args": [name]})
                if "error" in got:
                    print(f"| {name} | | the browser could not decode it: {got['error']} | | | |")
                    continue
                with open(os.path.join(reference, name + ".rgb"), "rb") as f:
                    size, raw = f.read().split(b"\n", 1)
                width, height = map(int, size.split(b"x"))
                if (width, height) != (got["width"], got["height"]):
                    print(f"| {name} | {width}x{height} | the browser's is "
                          f"{got['width']}x{got['height']} | | | |")
                    continue
                ours = np.frombuffer(raw, np.uint8).astype(int)
                browser = np.frombuffer(base64.b64decode(got["rgb"]), np.uint8).astype(int)
                difference = np.abs(ours - browser)
                largest.append(int(difference.max()))
                print(f"| {name} | {width}x{height} | {difference.max()} | {difference.mean():.3f} "
                      f"| {(difference > 1).mean() * 100:.2f} % | {got['ms']:.1f} ms |")
        print(f"\n{len(largest)} photos compared; largest difference over all: {max(largest)} levels; "
              f"{sum(d > 1 for d in largest)} photos beyond the parity test's 1/255")


if __name__ == "__main__":
    main()
