// Read the VTIMEZONEs of an .ics file with ical.js and print each zone's UTC offset (seconds)
// at the given instants: {"Zone/Name": [offset, ...]}.
// usage: node offsets.mjs FILE.ics INSTANT...   (instants in UTC ISO 8601)
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const [file, ...instants] = process.argv.slice(2);
const root = new ICAL.Component(ICAL.parse(readFileSync(file, "utf8")));
const result = {};
for (const vtimezone of root.getAllSubcomponents("vtimezone")) {
  const zone = new ICAL.Timezone(vtimezone);
  result[zone.tzid] = instants.map((instant) => {
    const utc = ICAL.Time.fromJSDate(new Date(instant), true);
    return zone.utcOffset(utc.convertToZone(ICAL.Timezone.utcTimezone));
  });
}
console.log(JSON.stringify(result));
