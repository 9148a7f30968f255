#!/usr/bin/env python3
"""Weather coverage of the bundled FIRMS archive by join outcome, computed independently of the
service (plain Python over the three sample CSVs), so the service's counts can be checked
against it. Prints one line per `weather_status` and why the unjoined ones are unjoined.

Usage: python3 scripts/weather_coverage.py [max_station_km]
"""
import csv
import datetime as dt
import math
import re
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
RADIUS_KM = float(sys.argv[1]) if len(sys.argv) > 1 else 150.0


def great_circle_km(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def stations():
    out = {}
    with open(SAMPLE / "australia_bom_weather_stations.csv", encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            out[int(row["STN_NUM"])] = (" ".join(row["NAME"].upper().split()),
                                        float(row["LATITUDE"]), float(row["LONGITUDE"]))
    return out


def observed_days(listed):
    """station -> sorted local days with a daily summary (a wrong number resolves by name)."""
    by_name = {}
    for sid, (name, _, _) in listed.items():
        by_name.setdefault(name, []).append(sid)
    days = {}
    path = SAMPLE / "australia_bom_daily_weather_2019-05_2020-06.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            label = row["Station"]
            match = re.search(r"\{station\s*(\d+)", label)
            if not match or not row["Date"].strip():
                continue
            sid = int(match.group(1))
            if sid not in listed:
                candidates = by_name.get(" ".join(label[: label.index("{")].split()).upper(), [])
                if len(candidates) != 1:
                    continue
                sid = candidates[0]
            month = next(i + 1 for i, m in enumerate(MONTHS)
                         if row["Month"].strip().lower().startswith(m))
            days.setdefault(sid, set()).add(dt.date(int(row["Year"]), month, int(row["Date"])))
    return {sid: sorted(d) for sid, d in days.items()}


def main():
    listed = stations()
    days = observed_days(listed)
    counts = {}
    with open(SAMPLE / "fire_archive_M6_96619.csv", newline="") as f:
        for row in csv.DictReader(f):
            hhmm = int(row["acq_time"])
            at = dt.datetime.strptime(row["acq_date"], "%Y-%m-%d").replace(
                hour=hhmm // 100, minute=hhmm % 100)
            lat, lon = float(row["latitude"]), float(row["longitude"])
            near = [sid for sid, (_, slat, slon) in listed.items()
                    if abs(slat - lat) <= RADIUS_KM / 110.0
                    and great_circle_km(lat, lon, slat, slon) <= RADIUS_KM]
            if not near:
                status = "no_station_in_range"
            else:
                reporting = [sid for sid in near if sid in days]
                status = "no_reporting_station"
                for sid in reporting:
                    # A daily summary is valid for its station's local solar day.
                    day = (at + dt.timedelta(seconds=round(listed[sid][2] * 240.0))).date()
                    if day in days[sid]:
                        status = "matched"
                        break
                    if days[sid][0] < day:
                        status = "stale_observation"
                    elif status != "stale_observation":
                        status = "no_recent_observation"
            counts[status] = counts.get(status, 0) + 1
    total = sum(counts.values())
    why = {
        "matched": "a reporting station within range has a summary for the detection's day",
        "no_station_in_range": f"no listed station within {RADIUS_KM:g} km",
        "no_reporting_station": "listed stations within range, none in the weather file",
        "stale_observation": "a reporting station within range, but its last summary is older than a day",
        "no_recent_observation": "reporting stations within range, all of them only later",
    }
    print(f"{total} detections, stations within {RADIUS_KM:g} km, "
          f"{len(days)} of {len(listed)} listed stations reporting")
    for status in why:
        n = counts.get(status, 0)
        print(f"{status:<24} {n:>6} {100.0 * n / total:5.1f} %  {why[status]}")


if __name__ == "__main__":
    main()
