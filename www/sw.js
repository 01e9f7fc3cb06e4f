// Offline after the first visit: every same-origin GET goes to the network first (so a
// rebuilt page is picked up at once) and falls back to what the last successful load cached.
const CACHE = 'kiln-v1';
// The file list comes from the build (scripts/build-web.sh writes precache.json): the page, both
// wasm builds with the thread pool's helper script, and the bundled weights.
self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const files = await (await fetch('precache.json', { cache: 'no-store' })).json();
    // A file that fails must not stop the others (the page still works online).
    await Promise.all(['./', ...files].map((f) => cache.add(new Request(f, { cache: 'no-store' })).catch(() => {})));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(
    fetch(req)
      .then((res) => {
        if (res.ok && res.type === 'basic') {
          const copy = res.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(req, copy)));
        }
        return res;
      })
      .catch(async () => (await caches.match(req, { ignoreSearch: req.mode === 'navigate' })) || Response.error()),
  );
});
