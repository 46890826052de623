// Live updates for the assertions list: new rows, rendered by the server, are put on top of the first page.
// Without JavaScript the page is complete; reloading shows the same rows.
(function () {
  "use strict";
  var table = document.getElementById("assertions");
  if (!table || table.dataset.live !== "1") return;
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var newest = Number(table.dataset.newest || 0);
  var query = table.dataset.query;
  function poll() {
    fetch("/live?after=" + newest + (query ? "&" + query : ""), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data || !data.count) return;
        var holder = document.createElement("tbody");
        holder.innerHTML = data.html;  // server-rendered and escaped by the same template as the page
        var rows = Array.prototype.slice.call(holder.rows);
        rows.reverse().forEach(function (row) { row.classList.add("fresh"); body.insertBefore(row, body.firstChild); });
        newest = data.newest;
        status.textContent = data.count + " new assertion" + (data.count === 1 ? "" : "s");
      })
      .catch(function () { status.textContent = "live updates paused: the dashboard is not answering"; })
      .then(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
