// Expand every event of an .ics file between two instants with ical.js (Thunderbird's parser)
// and print them as JSON: [{uid, id, start, end, status, description}], times in UTC ISO 8601.
// usage: node occurrences.mjs FILE.ics FROM TO
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
  (event.isRecurrenceException() ? exceptions : []).push(event);
  if (!event.isRecurrenceException()) masters.set(event.uid, event);
}
for (const exception of exceptions) masters.get(exception.uid)?.relateException(exception);

const found = [];
for (const event of masters.values()) {
  const status = (e) => (e.component.getFirstPropertyValue("status") || "CONFIRMED").toLowerCase();
  if (!event.isRecurring()) {
    if (event.startDate.compare(rangeStart) >= 0 && event.startDate.compare(rangeEnd) < 0) {
      found.push({ uid: event.uid, id: iso(event.startDate), start: iso(event.startDate),
                   end: iso(event.endDate), status: status(event),
                   description: event.description || "" });
    }
    continue;
  }
  const iterator = event.iterator();
  for (let next = iterator.next(); next; next = iterator.next()) {
    if (next.compare(rangeEnd) >= 0 && next.compare(rangeStart) > 0) {
      // originals far past the range can still be moved into it; stop a year on
      const yearOn = rangeEnd.clone(); yearOn.addDuration(ICAL.Duration.fromSeconds(366 * 86400));
      if (next.compare(yearOn) >= 0) break;
    }
    const details = event.getOccurrenceDetails(next);
    if (details.startDate.compare(rangeStart) < 0 || details.startDate.compare(rangeEnd) >= 0) continue;
    found.push({ uid: event.uid, id: iso(details.recurrenceId), start: iso(details.startDate),
                 end: iso(details.endDate), status: status(details.item),
                 description: details.item.description || "" });
  }
}
found.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
console.log(JSON.stringify(found));
