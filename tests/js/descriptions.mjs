// Expand every event of an .ics file between two instants with ical.js (Thunderbird's parser)
// and print each occurrence's start and DESCRIPTION as JSON: [{start, description}], in time
// order, cancelled ones left out. usage: node descriptions.mjs FILE.ics FROM TO
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const [file, from, to] = process.argv.slice(2);
const root = new ICAL.Component(ICAL.parse(readFileSync(file, "utf8")));
for (const vtimezone of root.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(vtimezone);
}
const rangeStart = ICAL.Time.fromJSDate(new Date(from), true);
const rangeEnd = ICAL.Time.fromJSDate(new Date(to), true);
const iso = (time) => time.toJSDate().toISOString().replace(".000Z", "Z");

const masters = new Map();
const exceptions = [];
for (const vevent of root.getAllSubcomponents("vevent")) {
  const event = new ICAL.Event(vevent);
  if (event.isRecurrenceException()) exceptions.push(event);
  else masters.set(event.uid, event);
}
for (const exception of exceptions) masters.get(exception.uid)?.relateException(exception);

const found = [];
const cancelled = (e) => (e.component.getFirstPropertyValue("status") || "") === "CANCELLED";
for (const event of masters.values()) {
  if (!event.isRecurring()) {
    if (event.startDate.compare(rangeStart) >= 0 && event.startDate.compare(rangeEnd) < 0
        && !cancelled(event)) {
      found.push({ start: iso(event.startDate), description: event.description });
    }
    continue;
  }
  const iterator = event.iterator();
  for (let next = iterator.next(); next; next = iterator.next()) {
    if (next.compare(rangeEnd) >= 0) {
      const yearOn = rangeEnd.clone(); yearOn.addDuration(ICAL.Duration.fromSeconds(366 * 86400));
      if (next.compare(yearOn) >= 0) break;
    }
    const details = event.getOccurrenceDetails(next);
    if (details.startDate.compare(rangeStart) < 0 || details.startDate.compare(rangeEnd) >= 0) continue;
    if (cancelled(details.item)) continue;
    found.push({ start: iso(details.startDate), description: details.item.description });
  }
}
found.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
console.log(JSON.stringify(found));
