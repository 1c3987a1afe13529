/* django-edgejobs: follow a job from a web page, without a framework.
 *
 *   <script src="{% static 'django_edgejobs/edgejobs-status.js' %}"></script>
 *   watchJob("{{ status_url }}", {
 *     onUpdate: (job) => { ... },   // each new state: {id, status, progress, updated_at, ...}
 *     onDone: (job) => { ... },     // once, when the job is completed, failed or cancelled
 *     onError: (err) => { ... },    // the link expired (410) or is not valid (403), or gone
 *     interval: 2000,               // ms between polls (default 2000)
 *   });
 *
 * Polls the status URL with the last ETag (the server answers 304 while nothing changed),
 * calls onUpdate when something did, and stops at a finished job or an error. A network error
 * is retried at the next interval. Returns a function that stops the polling. */
(function (global) {
  "use strict";

  function watchJob(url, options) {
    var opts = options || {};
    var interval = opts.interval || 2000;
    var etag = null;
    var timer = null;
    var stopped = false;

    function stop() {
      stopped = true;
      if (timer !== null) { clearTimeout(timer); }
    }

    function next() {
      if (!stopped) { timer = setTimeout(poll, interval); }
    }

    function poll() {
      var headers = { "Accept": "application/json" };
      if (etag) { headers["If-None-Match"] = etag; }
      fetch(url, { headers: headers, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 304) { next(); return null; }
          if (!response.ok) {
            return response.json().catch(function () { return {}; }).then(function (body) {
              stop();
              if (opts.onError) {
                opts.onError({ status: response.status, error: body.error || "http_error",
                               message: body.message || response.statusText });
              }
              return null;
            });
          }
          etag = response.headers.get("ETag");
          return response.json().then(function (job) {
            if (opts.onUpdate) { opts.onUpdate(job); }
            if (job.finished) {
              stop();
              if (opts.onDone) { opts.onDone(job); }
            } else {
              next();
            }
          });
        })
        .catch(function () { next(); });  // the network: try again at the next interval
    }

    poll();
    return stop;
  }

  global.watchJob = watchJob;
})(window);
