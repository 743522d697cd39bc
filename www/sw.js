// The offline cache: the page, its code, the shipped models and the app's icons are kept on
// the device so that a second visit, or the installed app, works without a network. Photos
// are never fetched, so they are never cached (nor sent anywhere).
//
// Every request of the site goes to the network first, so a new release, or a new model
// behind the same URL, shows at once (the browser's HTTP cache still answers what is fresh);
// when the network fails, the stored copy answers. Install stores the page, every file it names,
// the build of the page's code in use (Trunk gives the script and the wasm hashed names, read
// here from index.html), the models, and the icons the web app manifest names.
// Install never fails on a missing file, so the page never waits for it.
const CACHE = "catdog";
const MODELS = ["./model/catdog.bpk", "./model/catdog-small.bpk"];

// The files a page's HTML names with relative URLs (`./...`).
function named(html) {
  const found = html.matchAll(/(?:href|src|module_or_path:)\s*=?\s*["'](\.\/[^"']+)["']/g);
  return [...found].map((match) => new URL(match[1], self.registration.scope).href);
}

// The icons the page's web app manifest names (the app is opened offline with them), as
// absolute URLs; none if there is no manifest. `read` gets the manifest: from the network at
// install, from the offline copy when pruning.
async function appIcons(html, read) {
  const manifest = named(html).find((url) => url.endsWith(".webmanifest"));
  if (!manifest) {
    return [];
  }
  const response = await read(manifest);
  if (!response?.ok) {
    throw new Error(`${manifest}: ${response ? `HTTP ${response.status}` : "not stored"}`);
  }
  const icons = (await response.json()).icons ?? [];
  return icons.map((icon) => new URL(icon.src, manifest).href);
}

// The page's builds (with and without WebGPU; index.html starts one) and their files:
// `{ webgpu: [script, wasm], cpu: [...] }`, from the list Trunk writes into the HTML.
function builds(html) {
  const list = html.match(/<script id="catdog-builds" type="application\/json">([^<]*)<\/script>/);
  const files = {};
  for (const [name, build] of Object.entries(list ? JSON.parse(list[1]) : {})) {
    files[name] = [build.js, build.wasm].map((url) => new URL(url, self.registration.scope).href);
  }
  return files;
}

// The build the page that registered this worker runs (`sw.js?build=cpu`): the one stored at
// install. A visitor without WebGPU never downloads the WebGPU build, not even for the cache.
const BUILD = new URL(self.location.href).searchParams.get("build");

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const page = await fetch("./", { cache: "no-cache" });
        if (page.ok) {
          const html = await page.clone().text();
          await cache.put("./", page);
          // A worker registered without `?build=` (by a release before there were two) stores
          // no code here: the fetch handler below stores whichever build the page then loads.
          const code = builds(html)[BUILD] ?? [];
          await Promise.allSettled([...named(html), ...code, ...MODELS].map((url) => cache.add(url)));
          const icons = await appIcons(html, (url) => fetch(url, { cache: "no-cache" })).catch(() => []);
          await Promise.allSettled(icons.map((url) => cache.add(url)));
        }
      } catch (error) {
        console.warn("catdog: offline copy not stored:", error);
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Drops stored files a new release no longer names (old hashed script and wasm). Only for the
// page itself: another document of the site opened in a tab names none of them.
async function prune(cache, html) {
  const code = Object.values(builds(html)).flat();
  if (code.length === 0) {
    return;
  }
  // From the stored manifest (stored at install, with the page's other files): the page's
  // response waits for this, so it asks the network for nothing more.
  let icons;
  try {
    icons = await appIcons(html, (url) => cache.match(url));
  } catch {
    return; // The icons in use are unknown: keep everything.
  }
  const models = MODELS.map((url) => new URL(url, self.registration.scope).href);
  const keep = new Set([...named(html), ...code, ...models, ...icons]);
  for (const request of await cache.keys()) {
    const url = new URL(request.url);
    const isPage = url.href === self.registration.scope || url.pathname.endsWith("/index.html");
    if (!isPage && !keep.has(url.href)) {
      await cache.delete(request);
    }
  }
}

async function fromNetwork(request, isPage) {
  const response = await fetch(request);
  if (response.ok) {
    try {
      const cache = await caches.open(CACHE);
      await cache.put(request, response.clone());
      if (isPage) {
        await prune(cache, await response.clone().text());
      }
    } catch (error) {
      // A full disk must not cost the visitor the response itself.
      console.warn("catdog: not stored for offline use:", request.url, error);
    }
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) {
    return;
  }
  const isPage = request.mode === "navigate";
  event.respondWith(
    fromNetwork(request, isPage).catch(async () => {
      const stored =
        (await caches.match(request, { ignoreSearch: true })) ||
        (isPage ? await caches.match("./") : undefined);
      return stored || Response.error();
    }),
  );
});
