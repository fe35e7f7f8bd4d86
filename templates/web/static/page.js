// The reader's time zone, as the browser knows it: on the first visit the page is shown in
// the coalition's default zone; this asks for it again in the reader's own zone (once; the
// server keeps the choice in a cookie). The sign-up form's zone is preset the same way.
(function () {
  "use strict";
  if (document.documentElement.dataset.zoneChosen === "yes") return;
  var zone;
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
  if (!zone) return;
  var pickers = document.querySelectorAll("select[data-zone-picker]");
  var known = Array.prototype.some.call(pickers, function (picker) {
    return Array.prototype.some.call(picker.options, function (o) { return o.value === zone; });
  });
  if (!known) return;
  if (document.querySelector("form.zone")) {
    var url = new URL(window.location.href);
    url.searchParams.set("tz", zone);
    window.location.replace(url.toString());
    return;
  }
  pickers.forEach(function (picker) { picker.value = zone; });
})();
