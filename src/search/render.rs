//! Text renderings: what a person would write about an incident or a detection. They feed BM25
//! and the sentence encoder alike, so numbers also appear as words ("very large", "dry").

use chrono::{DateTime, Datelike};

use crate::event::{FireEventV2, HistoricalIncident};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// "8 November 2018".
pub fn date_words(ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?;
    Some(format!(
        "{} {} {}",
        t.day(),
        MONTHS[t.month0() as usize],
        t.year()
    ))
}

/// Size class of a fire in acres, in the words an analyst uses.
pub fn size_words(acres: f64) -> &'static str {
    match acres {
        a if a >= 100_000.0 => "a megafire, one of the very largest",
        a if a >= 10_000.0 => "a very large fire",
        a if a >= 1_000.0 => "a large fire",
        a if a >= 100.0 => "a medium fire",
        _ => "a small fire",
    }
}

/// The incident as a paragraph.
pub fn incident_text(i: &HistoricalIncident) -> String {
    let mut parts = vec![i.name.clone()];
    if !i.counties.is_empty() {
        parts.push(format!(
            "in {} County, California",
            i.counties.join(" and ")
        ));
    } else {
        parts.push("in California".into());
    }
    if !i.location.is_empty() {
        parts.push(format!("({})", i.location));
    }
    let mut text = parts.join(" ");
    if let Some(start) = i.started_ms.and_then(date_words) {
        text.push_str(&format!(". Started {start}"));
    }
    if let Some(acres) = i.acres {
        text.push_str(&format!(
            ". Burned {} acres, {}",
            thousands(acres),
            size_words(acres)
        ));
    }
    match i.structures_destroyed {
        Some(n) if n > 0 => text.push_str(&format!(". {n} structures destroyed")),
        _ => {}
    }
    match i.fatalities {
        Some(n) if n > 0 => text.push_str(&format!(". {n} fatalities")),
        _ => {}
    }
    if !i.admin_unit.is_empty() {
        text.push_str(&format!(". {}", i.admin_unit));
    }
    text.push('.');
    if !i.description.is_empty() {
        text.push(' ');
        text.push_str(&i.description);
    }
    text
}

/// The detection as a sentence or two.
pub fn event_text(e: &FireEventV2) -> String {
    let fc = &e.fire_characteristics;
    let place = region_words(e.location.latitude, e.location.longitude);
    let near = e
        .weather_conditions
        .as_ref()
        .map(|w| format!(" near {}", title_case(&w.station_name)))
        .unwrap_or_default();
    let when = date_words(e.detection_time).unwrap_or_default();
    let part = if fc.daytime { "daytime" } else { "night-time" };
    let intensity = match fc.frp_mw {
        f if f >= 500.0 => "extremely intense",
        f if f >= 100.0 => "very intense",
        f if f >= 30.0 => "intense",
        f if f >= 10.0 => "moderate",
        _ => "weak",
    };
    let mut text = format!(
        "{} {} fire detection in {place}{near} on {when}, {part}: {intensity}, fire radiative power {:.0} MW, {} confidence.",
        e.source.satellite, e.source.instrument, fc.frp_mw, fc.confidence
    );
    if let Some(w) = &e.weather_conditions {
        let mut bits = Vec::new();
        if let Some(t) = w.max_temp_c {
            let feel = match t {
                t if t >= 35.0 => "hot",
                t if t >= 25.0 => "warm",
                t if t >= 15.0 => "mild",
                _ => "cool",
            };
            bits.push(format!("{feel} ({t:.0} °C)"));
        }
        if let Some(h) = w.rh_3pm_pct {
            let feel = match h {
                h if h < 20.0 => "very dry",
                h if h < 40.0 => "dry",
                h if h < 70.0 => "moderately humid",
                _ => "humid",
            };
            bits.push(format!("{feel} ({h:.0} % humidity)"));
        }
        if let Some(v) = w.wind_3pm_kmh {
            let feel = match v {
                v if v >= 40.0 => "strong wind",
                v if v >= 20.0 => "moderate wind",
                _ => "light wind",
            };
            bits.push(format!("{feel} ({v:.0} km/h)"));
        }
        match w.rain_mm {
            Some(r) if r >= 1.0 => bits.push(format!("rain ({r:.1} mm)")),
            Some(_) => bits.push("no rain".into()),
            None => {}
        }
        if let Some(f) = &w.fire_weather {
            let class = f.danger_class.replace('_', " ");
            bits.push(format!("{class} fire danger (FWI {:.0})", f.fwi));
        }
        if !bits.is_empty() {
            text.push_str(&format!(" Weather: {}.", bits.join(", ")));
        }
    }
    text
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn title_case(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Coarse region names by box: enough for "fires in Victoria" or "in California".
pub fn region_words(lat: f64, lon: f64) -> &'static str {
    REGIONS
        .iter()
        .find(|r| lat >= r.1 && lat <= r.2 && lon >= r.3 && lon <= r.4)
        .map_or("an unnamed region", |r| r.0)
}

/// (name, min lat, max lat, min lon, max lon); first match wins, so smaller boxes come first.
pub const REGIONS: [(&str, f64, f64, f64, f64); 12] = [
    ("Tasmania, Australia", -44.0, -39.5, 143.5, 149.0),
    ("Victoria, Australia", -39.2, -34.0, 141.0, 150.0),
    (
        "the Australian Capital Territory",
        -35.95,
        -35.1,
        148.7,
        149.4,
    ),
    ("New South Wales, Australia", -37.6, -28.1, 141.0, 154.0),
    ("Queensland, Australia", -29.2, -10.0, 138.0, 154.0),
    (
        "the Northern Territory, Australia",
        -26.0,
        -10.0,
        129.0,
        138.0,
    ),
    ("South Australia", -38.1, -26.0, 129.0, 141.0),
    ("Western Australia", -35.2, -13.5, 112.5, 129.0),
    ("California, United States", 32.5, 42.0, -124.5, -114.1),
    ("Hawaii, United States", 18.5, 22.5, -160.5, -154.5),
    ("the United States", 24.0, 49.5, -125.0, -66.5),
    ("Australia", -44.0, -10.0, 112.0, 154.0),
];
