"""The pure time core: zones and the DST policy, recurrence, the reminder planner, ICS and
VTIMEZONE writing, the zone timetable, and checks of what organizers type.

Nothing here touches a database, the network, the clock, a file or Jinja
(tests/test_layers.py holds it to that): `now` and every window are parameters.
"""
