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
  if (document.querySelector("form.zone")) {
    // A name the picker does not list may be an old one (Chromium says Asia/Calcutta for
    // Asia/Kolkata): the server knows it by its current name, or else keeps its default.
    var url = new URL(window.location.href);
    if (url.searchParams.has("tz")) return;  // asked once already
    url.searchParams.set("tz", zone);
    if (!known) url.searchParams.set("tz_from", "browser");
    window.location.replace(url.toString());
    return;
  }
  if (!known) return;
  pickers.forEach(function (picker) { picker.value = zone; });
})();
