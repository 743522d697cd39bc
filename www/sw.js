// The offline cache: the page, its code and its models are kept on the device so a second
// visit works without a network. Photos are never fetched, so they are never cached (nor sent
// anywhere).
//
// On install it stores the page and every file the page names (Trunk gives the script and the
// wasm hashed names, read here from index.html) plus the default model. Afterwards:
// - models (.bpk): from the cache at once, refreshed in the background for the next visit;
// - everything else: from the network when there is one (a new release shows at once), from
//   the cache when not.
const CACHE = "catdog-v1";
const DEFAULT_MODEL = "./model/catdog.bpk";

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const page = await fetch("./", { cache: "no-cache" });
      const html = await page.clone().text();
      await cache.put("./", page);
      const named = [...html.matchAll(/(?:href|src|module_or_path:)\s*=?\s*["'](\.\/[^"']+)["']/g)].map((m) => m[1]);
      await cache.addAll([...new Set([...named, DEFAULT_MODEL])]);
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

async function store(request, response) {
  if (response.ok) {
    const cache = await caches.open(CACHE);
    await cache.put(request, response.clone());
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET" || new URL(request.url).origin !== self.location.origin) {
    return;
  }
  if (new URL(request.url).pathname.endsWith(".bpk")) {
    event.respondWith(
      (async () => {
        const cached = await caches.match(request);
        const fresh = fetch(request).then((response) => store(request, response));
        if (cached) {
          event.waitUntil(fresh.catch(() => {}));
          return cached;
        }
        return fresh;
      })(),
    );
    return;
  }
  event.respondWith(
    fetch(request)
      .then((response) => store(request, response))
      .catch(async () => (await caches.match(request, { ignoreSearch: true })) || Response.error()),
  );
});
