// The offline cache: the page, its code and the shipped models are kept on the device so that
// a second visit works without a network. Photos are never fetched, so they are never cached
// (nor sent anywhere).
//
// Every request of the site goes to the network first, so a new release, or a new model
// behind the same URL, shows at once (the browser's HTTP cache still answers what is fresh);
// when the network fails, the stored copy answers. Install stores the page, every file it names
// (Trunk gives the script and the wasm hashed names, read here from index.html) and the models.
// Install never fails on a missing file, so the page never waits for it.
const CACHE = "catdog";
const MODELS = ["./model/catdog.bpk", "./model/catdog-small.bpk"];

// The files a page's HTML names with relative URLs (`./...`).
function named(html) {
  const found = html.matchAll(/(?:href|src|module_or_path:)\s*=?\s*["'](\.\/[^"']+)["']/g);
  return [...found].map((match) => new URL(match[1], self.registration.scope).href);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const page = await fetch("./", { cache: "no-cache" });
        if (page.ok) {
          const html = await page.clone().text();
          await cache.put("./", page);
          await Promise.allSettled([...named(html), ...MODELS].map((url) => cache.add(url)));
        }
      } catch (error) {
        console.warn("catdog: offline copy not stored:", error);
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// Drops stored files a new release no longer names (old hashed script and wasm).
async function prune(cache, html) {
  const keep = new Set([...named(html), ...MODELS.map((url) => new URL(url, self.registration.scope).href)]);
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
