/* web2app landing script: reports a visit that came from a TikTok ad to the worker's click collector.
 *   <script async src="https://WORKER/landing.js" data-app-id="com.example.app"></script>
 * Pasted inline instead, add data-collector="https://WORKER/collect". Sends nothing unless the URL
 * carries a ttclid. Dispatches "web2app:click" on document with {status} (202: recorded). */
(function () {
  var script = document.currentScript;
  var appId = script.getAttribute("data-app-id");
  var collector = script.getAttribute("data-collector") || new URL("/collect", script.src).href;
  var waitForPixelMs = 2000; // the TikTok pixel sets _ttp after it loads

  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : undefined;
  }

  function report(status) {
    document.dispatchEvent(new CustomEvent("web2app:click", {detail: {status: status}}));
  }

  function send() {
    var click = {app_id: appId, url: location.href, ttp: cookie("_ttp"), referrer: document.referrer || undefined,
                 locale: navigator.language};
    // text/plain keeps it a simple request: no CORS preflight before the click is sent.
    fetch(collector, {method: "POST", body: JSON.stringify(click), keepalive: true, credentials: "omit",
                      headers: {"Content-Type": "text/plain"}})
      .then(function (response) { report(response.status); }, function () { report(0); });
  }

  function sendOnceThePixelHasRun(started) {
    if (cookie("_ttp") || Date.now() - started > waitForPixelMs) { send(); return; }
    setTimeout(function () { sendOnceThePixelHasRun(started); }, 100);
  }

  if (!appId || !/[?&#]ttclid=/.test(location.href)) return;
  sendOnceThePixelHasRun(Date.now());
})();
