/* Live pages of django-edgejobs' admin: no framework, no full-page reload.
 *
 * A page with an element [data-ej-live="SECONDS"] fetches itself every SECONDS (while the tab
 * is visible and the user has not paused it), parses the answer and puts the new content of
 * each [data-ej-live-region] (matched by id) in place. In the job list the rows are updated
 * cell by cell, the selection checkboxes left alone, so a selection and the admin's actions
 * keep working; when the rows themselves changed (new jobs, other order) the page says so and
 * offers a reload instead of moving rows under the pointer. The pause is remembered
 * (localStorage). The HTML comes from the same page, escaped by the server as it always is. */
(function () {
  "use strict";
  const root = document.querySelector("[data-ej-live]");
  if (!root) {
    return;
  }
  const every = Math.max(2, parseInt(root.dataset.ejLive, 10) || 5) * 1000;
  const storageKey = "edgejobs.live.paused";
  const toggle = document.getElementById("ej-live-toggle");
  const stamp = document.getElementById("ej-live-stamp");
  const notice = document.getElementById("ej-live-changed");
  let paused = window.localStorage.getItem(storageKey) === "1";
  let busy = false;

  function showState() {
    if (toggle) {
      toggle.textContent = paused ? "Live: paused (resume)" : "Live: on (pause)";
      toggle.setAttribute("aria-pressed", String(!paused));
    }
    root.dataset.ejLiveState = paused ? "paused" : "on";
  }

  function rowKey(row) {
    const box = row.querySelector("input.action-select");
    return box ? box.value : row.textContent;
  }

  function updateRows(table, fresh) {
    const rows = table.tBodies.length ? Array.from(table.tBodies[0].rows) : [];
    const freshRows = fresh.tBodies.length ? Array.from(fresh.tBodies[0].rows) : [];
    const same = rows.length === freshRows.length &&
      rows.every(function (row, i) { return rowKey(row) === rowKey(freshRows[i]); });
    if (!same) {
      if (notice) {
        notice.hidden = false;
      }
      return;
    }
    rows.forEach(function (row, i) {
      Array.from(row.cells).forEach(function (cell, j) {
        const freshCell = freshRows[i].cells[j];
        if (!freshCell || cell.querySelector("input.action-select")) {
          return;
        }
        if (cell.innerHTML !== freshCell.innerHTML) {
          cell.innerHTML = freshCell.innerHTML;
        }
      });
    });
  }

  function apply(doc) {
    document.querySelectorAll("[data-ej-live-region]").forEach(function (region) {
      const fresh = doc.getElementById(region.id);
      if (fresh && region.innerHTML !== fresh.innerHTML) {
        region.innerHTML = fresh.innerHTML;
      }
    });
    const table = document.getElementById("result_list");
    const freshTable = doc.getElementById("result_list");
    if (table && freshTable) {
      updateRows(table, freshTable);
    }
    if (stamp) {
      stamp.textContent = new Date().toLocaleTimeString();
    }
    root.dataset.ejLiveRefreshes = String((parseInt(root.dataset.ejLiveRefreshes, 10) || 0) + 1);
  }

  async function refresh() {
    if (paused || busy || document.hidden) {
      return;
    }
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: {"X-Requested-With": "XMLHttpRequest"},
      });
      if (response.ok && !response.redirected) {
        apply(new DOMParser().parseFromString(await response.text(), "text/html"));
      }
    } catch (error) {
      // The server is away (a deploy): try again at the next interval.
    } finally {
      busy = false;
    }
  }

  if (toggle) {
    toggle.addEventListener("click", function (event) {
      event.preventDefault();
      paused = !paused;
      window.localStorage.setItem(storageKey, paused ? "1" : "0");
      showState();
    });
  }
  showState();
  window.setInterval(refresh, every);
})();
