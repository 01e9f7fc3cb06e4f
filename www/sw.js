// Offline after the first visit: every same-origin GET goes to the network first (so a
// rebuilt page is picked up at once) and falls back to what the last successful load cached.
// The page, both wasm builds and the bundled weights are cached when the worker installs.
const CACHE = 'kiln-v1';
const SHELL = [
  './', 'index.html', 'app.js', 'kiln.js', 'worker.js', 'style.css', 'favicon.svg',
  'vendor/uPlot.min.css', 'vendor/uPlot.esm.js',
  'pkg/kiln.js', 'pkg/kiln_bg.wasm', 'pkg-threads/kiln.js', 'pkg-threads/kiln_bg.wasm',
  'weights/efficientnet_lite0.kiln',
];

self.addEventListener('install', (event) => {
  // A file that is missing (e.g. a build without threads) must not stop the others.
  event.waitUntil(caches.open(CACHE).then((cache) => Promise.all(SHELL.map((f) => cache.add(f).catch(() => {})))).then(() => self.skipWaiting()));
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
